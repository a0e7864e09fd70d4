#!/usr/bin/env node
/**
 * Dashboard benchmark at fleet scale: a SQLite store seeded with --hosts hosts (default 100,000) by bulk
 * inserts (states, images, groups, current deviations, transitions and a hash-chained event stream, as
 * ingestion would leave them), the built controller started on it (in this process, 127.0.0.1), then:
 *   api    each dashboard API call --runs times in a row (after one warm-up): p50 / p95 / max
 *   pages  each dashboard page loaded in headless Chromium (playwright-core, /usr/bin/chromium) --runs
 *          times: from page.goto() to the page's data on screen (main[data-page] set by the router
 *          after its API calls rendered)
 *
 *   npm run build && node bench/dashboard.mjs [--hosts 100000] [--runs 10] [--out FILE]
 *
 * Work files go to bench/work/dashboard/ (gitignored). Prints a Markdown table for bench/RESULTS.md.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { chromium } from 'playwright-core';
import { request } from 'undici';
import { pino } from 'pino';
import { mustMeasure, parseCli } from './lib/cli.mjs';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const dist = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);
const args = parseCli(import.meta.url, { hosts: 'value', runs: 'value', out: 'value' });
const HOSTS = Number(args.hosts ?? 100_000);
const RUNS = Number(args.runs ?? 10);
const WORK = join(ROOT, 'bench/work/dashboard');

const { openStore } = await dist('controller/store/index.js');
const { chainHash, eventContent, GENESIS } = await dist('controller/store/chain.js');
const { actualDigest } = await dist('controller/store/migration-0003.js');
const { createToken } = await dist('controller/routes/tokens.js');
const { ControllerConfigSchema } = await dist('controller/config.js');
const { startController } = await dist('controller/server.js');

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const file = join(WORK, 'controller.db');

// ---- seed ----
const t0 = performance.now();
{
  const store = await openStore(`sqlite:${file}`);
  await store.close();
}
const db = new Database(file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = OFF');
const base = Date.parse('2026-03-01T00:00:00.000Z');
const iso = (ms) => new Date(ms).toISOString();
const pick = (i) => {
  const r = (i * 2654435761) % 1000;
  return r < 10 ? 'pending' : r < 30 ? 'silent' : r < 100 ? 'tainted' : r < 200 ? 'drifted' : 'clean';
};
const insHost =
  db.prepare(`insert into hosts (id, credential_hash, hostname, image_id, host_group, state, state_since, enrolled_at, last_seen_at, last_report_at, last_seq, deviation_count, tainted_at, agent_version, manifest_digest, inventory)
  values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '0.1.0', null, null)`);
const insDev = db.prepare(
  `insert into host_deviations (host_id, collector, item_key, change, expected, actual, severity, action, decided_by, first_seen_at, last_seen_at, actual_digest) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
);
const insTr = db.prepare(
  `insert into transitions (host_id, from_state, to_state, cause, actor, at, report_id) values (?, ?, ?, ?, ?, ?, null)`,
);
const insEv = db.prepare(
  `insert into events (at, kind, host_id, actor, detail, prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?)`,
);
let prev = GENESIS;
let events = 0;
let deviations = 0;
const event = (at, kind, hostId, actor, detail) => {
  const hash = chainHash(prev, eventContent({ at, kind, hostId, actor, detail }));
  insEv.run(at, kind, hostId, actor, JSON.stringify(detail), prev, hash);
  prev = hash;
  events++;
};
const sslExpected = {
  key: 'openssl:amd64',
  manager: 'dpkg',
  name: 'openssl',
  arch: 'amd64',
  version: '3.0.11-1',
  state: 'installed',
};
const sslActual = { ...sslExpected, version: '3.0.13-1' };
db.transaction(() => {
  for (let i = 0; i < HOSTS; i++) {
    const id = `host-${String(i).padStart(6, '0')}`;
    const state = pick(i);
    const image = `ami-web-${i % 5}`;
    const group = `asg-${i % 20}`;
    const enrolled = base + (i % 1440) * 60_000;
    const changed = enrolled + 86_400_000 * (1 + (i % 20));
    const devs = [];
    if (state === 'tainted') {
      devs.push([
        'packages',
        'openssl:amd64',
        'modified',
        sslExpected,
        sslActual,
        'high',
        'taint',
        'rule:default/packages',
      ]);
      devs.push([
        'files',
        `/etc/cron.d/job-${i % 50}`,
        'added',
        null,
        { type: 'file', mode: '0644', uid: 0, gid: 0, size: 20, sha256: String(i % 50).padStart(64, '0') },
        'high',
        'taint',
        'rule:default/etc',
      ]);
    }
    if (state === 'drifted')
      devs.push([
        'files',
        `/home/u${i % 100}/.bashrc`,
        'modified',
        { type: 'file', sha256: 'a'.repeat(64) },
        { type: 'file', sha256: String(i).padStart(64, 'b') },
        'medium',
        'report',
        'rule:default/everything-else',
      ]);
    insHost.run(
      id,
      `cred-${id}`,
      `${id}.example.internal`,
      image,
      group,
      state,
      iso(state === 'clean' || state === 'pending' ? enrolled : changed),
      iso(enrolled),
      iso(changed + 3_600_000),
      iso(changed),
      10,
      devs.length,
      state === 'tainted' ? iso(changed) : null,
    );
    insTr.run(id, null, 'pending', 'enrolled', 'token:bench(agent)', iso(enrolled));
    if (state !== 'pending')
      insTr.run(id, 'pending', 'clean', 'clean: first report matches the manifest', 'policy', iso(enrolled + 60_000));
    if (state !== 'pending' && state !== 'clean') {
      insTr.run(id, 'clean', state, `${state}: bench`, 'policy', iso(changed));
      event(iso(changed), 'state', id, 'policy', {
        hostname: `${id}.example.internal`,
        imageId: image,
        group,
        from: 'clean',
        to: state,
        cause: `${state}: bench`,
        reportId: null,
      });
    }
    for (const [collector, key, change, expected, actual, severity, action, decidedBy] of devs) {
      insDev.run(
        id,
        collector,
        key,
        change,
        expected && JSON.stringify(expected),
        actual && JSON.stringify(actual),
        severity,
        action,
        decidedBy,
        iso(changed),
        iso(changed),
        actualDigest(actual),
      );
      event(iso(changed), 'deviation', id, `host:${id}`, {
        hostname: `${id}.example.internal`,
        imageId: image,
        group,
        reportId: null,
        collector,
        key,
        change,
        severity,
        action,
        decidedBy,
        expected,
        actual,
      });
      deviations++;
    }
  }
})();
{
  const seeded = db.prepare('select count(*) as n from hosts').get().n;
  mustMeasure(HOSTS > 0 && seeded === HOSTS, `seeded ${seeded} hosts, ${HOSTS} were asked`);
}
db.close();
const seedSeconds = (performance.now() - t0) / 1000;

// ---- controller ----
const config = ControllerConfigSchema.parse({ listen: '127.0.0.1:0', store: `sqlite:${file}` });
const ctl = await startController(config, {
  log: pino({ level: 'warn' }),
  clock: () => new Date(base + 40 * 86_400_000),
});
const { secret } = await ctl.store.transaction((tx) =>
  createToken(tx, { name: 'bench', role: 'viewer' }, 'bench', new Date()),
);

async function timeGet(path) {
  const s = performance.now();
  const r = await request(`${ctl.url}${path}`, { headers: { authorization: `Bearer ${secret}` } });
  const body = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`${path}: ${r.statusCode} ${body.slice(0, 200)}`);
  return { ms: performance.now() - s, body };
}
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { p50: q(0.5), p95: q(0.95), max: s[s.length - 1] };
};
const fmt = (ms) => `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;

// A deep cursor: walk 200 pages of 100 (20,000 hosts in) by following next.
let deep = '';
{
  let after = null;
  for (let i = 0; i < 200; i++) {
    const r = JSON.parse(
      (await timeGet(`/api/v1/hosts?limit=100${after ? `&after=${encodeURIComponent(after)}` : ''}`)).body,
    );
    after = r.next;
  }
  deep = after;
}
const sevCursor = JSON.parse((await timeGet('/api/v1/hosts?limit=100&sort=deviations&order=desc')).body).next;
const finding = JSON.parse((await timeGet('/api/v1/findings?limit=1')).body).findings[0];
const tainted = JSON.parse((await timeGet('/api/v1/hosts?state=tainted&limit=1')).body).hosts[0].id;

const calls = [
  ['overview', '/api/v1/fleet/overview'],
  ['hosts, first page, with count', '/api/v1/hosts?limit=50&count=true'],
  ['hosts, page 201 (keyset cursor)', `/api/v1/hosts?limit=100&after=${encodeURIComponent(deep)}`],
  [
    'hosts, state=tainted, sorted by deviations, count',
    '/api/v1/hosts?state=tainted&sort=deviations&order=desc&limit=50&count=true',
  ],
  [
    'hosts, sorted by deviations, page 2',
    `/api/v1/hosts?sort=deviations&order=desc&limit=100&after=${encodeURIComponent(sevCursor)}`,
  ],
  ['hosts, collector=files, count', '/api/v1/hosts?collector=files&limit=50&count=true'],
  ['hosts, severity=high, image, count', '/api/v1/hosts?severity=high&image=ami-web-2&limit=50&count=true'],
  ['hosts, search prefix', '/api/v1/hosts?q=host-0999&limit=50&count=true'],
  ['findings (grouped deviations)', '/api/v1/findings?limit=100'],
  [
    'hosts of the largest finding',
    `/api/v1/findings/hosts?${new URLSearchParams({ collector: finding.collector, key: finding.key, change: finding.change, actualDigest: finding.actualDigest, limit: '200' })}`,
  ],
  ['host detail', `/api/v1/hosts/${tainted}`],
  ['host events', `/api/v1/hosts/${tainted}/events?limit=200`],
  ['audit, newest 100', `/api/v1/audit?beforeId=${Number.MAX_SAFE_INTEGER}&limit=100`],
  ['SIEM pull, 1,000 OCSF events', '/api/v1/events?since=0&limit=1000'],
  ['drift report, one host (HTML)', `/api/v1/drift-report?scope=host&id=${tainted}&format=html`],
];
const apiRows = [];
for (const [name, path] of calls) {
  await timeGet(path);
  const xs = [];
  for (let i = 0; i < RUNS; i++) xs.push((await timeGet(path)).ms);
  apiRows.push([name, stats(xs)]);
}

// ---- pages in Chromium ----
const browser = await chromium.launch({
  executablePath: process.env.DRIFTWARDEN_CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const page = await (await browser.newContext({ viewport: { width: 1360, height: 900 } })).newPage();
await page.goto(ctl.url);
await page.locator('input[name=token]').fill(secret);
await page.getByRole('button', { name: 'Sign in' }).click();
await page.locator('main[data-page=overview]').waitFor();
const pages = [
  ['overview', 'overview', '#/overview'],
  ['hosts', 'hosts', '#/hosts'],
  ['hosts, tainted, by deviations', 'hosts', '#/hosts?state=tainted&sort=deviations&order=desc'],
  ['host detail', 'host', `#/host/${tainted}`],
  ['findings', 'findings', '#/findings'],
  ['audit log', 'audit', '#/audit'],
];
const pageRows = [];
for (const [name, id, hash] of pages) {
  const xs = [];
  for (let i = 0; i <= RUNS; i++) {
    const s = performance.now();
    await page.goto(`${ctl.url}/?run=${i}${hash}`);
    await page.locator(`main[data-page="${id}"]`).waitFor();
    if (i > 0) xs.push(performance.now() - s); // the first load warms the module cache
  }
  pageRows.push([name, stats(xs)]);
}
await browser.close();
await ctl.close();

const load = loadavg()[0].toFixed(2);
let md = `### Dashboard at ${HOSTS.toLocaleString('en')} hosts (SQLite)\n\n`;
md += `\`node bench/dashboard.mjs --hosts ${HOSTS} --runs ${RUNS}\` — seeded ${HOSTS.toLocaleString('en')} hosts, ${deviations.toLocaleString('en')} current deviations, ${events.toLocaleString('en')} chained events in ${seedSeconds.toFixed(1)} s; 1-min load at the end ${load} (shared machine).\n\n`;
md += `| API call | p50 | p95 | max |\n|---|---|---|---|\n`;
for (const [n, s] of apiRows) md += `| ${n} | ${fmt(s.p50)} | ${fmt(s.p95)} | ${fmt(s.max)} |\n`;
md += `\n| page in Chromium (goto → data rendered) | p50 | p95 | max | target < 1 s |\n|---|---|---|---|---|\n`;
for (const [n, s] of pageRows)
  md += `| ${n} | ${fmt(s.p50)} | ${fmt(s.p95)} | ${fmt(s.max)} | ${s.max < 1000 ? 'yes' : '**no**'} |\n`;
process.stdout.write(md);
if (args.out) writeFileSync(args.out, md);
