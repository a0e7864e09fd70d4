#!/usr/bin/env node
/**
 * Database growth and retention: how many bytes a host costs per day, and what a retention pass gives
 * back. A real controller (dist/controller/server.js, in this process, its clock injected so simulated
 * days pass in minutes) ingests over HTTP, through the real enrollment and report routes:
 *
 *   node bench/db-growth.mjs [--store sqlite,postgres] [--hosts 200] [--days 1] [--heartbeat 300]
 *       [--scan-every 1800] [--drift 0.01] [--concurrency 32] [--pg-url postgres://postgres@127.0.0.1:5432/test]
 *
 * Per store: N hosts enroll and send a first clean scan (the baseline size), 31 days before now. Then
 * --days simulated days: every host heartbeats every --heartbeat s and scans every --scan-every s
 * (the agent's default is a scan every 30 minutes), and --drift of the fleet per day drifts (10
 * deviations: 8 files, 2 packages; tainted; its later scans carry them). Size after those days gives
 * bytes per host per day. Then the clock jumps to now (every host heartbeats and scans once more), the
 * controller stops, and `driftwarden retention run --config FILE` (the real CLI, real clock) prunes
 * with retention { reports 30d / 2,000 per host, events 30d, audit 30d } (events and audit shortened
 * from their 90d/365d defaults so this run prunes them too), checkpoints signed with the anchors key;
 * then `driftwarden audit verify --checkpoint-key` proves the kept chains. Sizes: the SQLite file (WAL
 * checkpointed) and the pages in use (the file keeps freed pages for reuse until VACUUM); on PostgreSQL
 * the sum of pg_total_relation_size over the schema's tables (dead rows are reused after VACUUM, the
 * files do not shrink). Work files go to bench/work/db-growth/ (gitignored).
 */
import { spawnSync } from 'node:child_process';
import { createPrivateKey, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { pino } from 'pino';
import { Pool } from 'undici';
import { buildManifest, CLI, call, deviationSet, dist, prepareStore } from './lib/load.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const WORK = join(HERE, 'work', 'db-growth');
const DAY = 86_400_000;

const { startController } = await dist('controller/server.js');
const { loadControllerConfig } = await dist('controller/config.js');
const { openStore } = await dist('controller/store/index.js');
const { createToken } = await dist('controller/routes/tokens.js');

function parseArgs(argv) {
  const o = {
    store: ['sqlite', 'postgres'],
    hosts: 200,
    days: 1,
    heartbeat: 300,
    scanEvery: 1800,
    drift: 0.01,
    concurrency: 32,
    pgUrl: process.env.DRIFTWARDEN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--store') o.store = v.split(',');
    else if (k === '--pg-url') o.pgUrl = v;
    else if (k === '--scan-every') o.scanEvery = Number(v);
    else if (['--hosts', '--days', '--heartbeat', '--drift', '--concurrency'].includes(k)) o[k.slice(2)] = Number(v);
    else throw new Error(`unknown option ${k}`);
  }
  return o;
}

const log = (s) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const mb = (b) => (b / 1024 / 1024).toFixed(2);

/** SQLite: file bytes after a WAL checkpoint, and the bytes of pages in use. */
function sqliteSize(file) {
  const db = new Database(file);
  db.pragma('wal_checkpoint(TRUNCATE)');
  const pageSize = db.pragma('page_size', { simple: true });
  const pages = db.pragma('page_count', { simple: true });
  const free = db.pragma('freelist_count', { simple: true });
  let tables = {};
  try {
    for (const r of db.prepare('select name, sum(pgsize) as bytes from dbstat group by name').all())
      tables[r.name] = r.bytes;
  } catch {
    tables = {};
  }
  db.close();
  const wal = existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0;
  return { file: statSync(file).size + wal, used: (pages - free) * pageSize, tables };
}

async function pgSize(url, schema) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query(
      `select tablename as t, pg_total_relation_size(format('%I.%I', schemaname, tablename)::regclass)::bigint as b
         from pg_tables where schemaname = $1`,
      [schema],
    );
    const tables = Object.fromEntries(r.rows.map((x) => [x.t, Number(x.b)]));
    const total = Object.values(tables).reduce((a, b) => a + b, 0);
    return { file: total, used: total, tables };
  } finally {
    await c.end();
  }
}

async function rowCounts(kind, storeUrl, file, schema, url) {
  const tables = ['reports', 'events', 'audit', 'transitions', 'host_deviations', 'chain_checkpoints'];
  const out = {};
  if (kind === 'sqlite') {
    const db = new Database(file, { readonly: true });
    for (const t of tables) out[t] = db.prepare(`select count(*) as n from ${t}`).get().n;
    db.close();
  } else {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    for (const t of tables) out[t] = Number((await c.query(`select count(*) as n from ${schema}.${t}`)).rows[0].n);
    await c.end();
  }
  return out;
}

async function pgVacuum(url, schema) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const r = await c.query(`select tablename as t from pg_tables where schemaname = $1`, [schema]);
  for (const { t } of r.rows) await c.query(`vacuum ${schema}.${t}`);
  await c.end();
}

function cli(args) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

async function runStore(kind, o) {
  const prep = await prepareStore(WORK, kind, { pgUrl: o.pgUrl, schemaPrefix: 'dwgrowth', log });
  const { dir, keys, storeUrl, pgSchema } = prep;
  const anchors = join(dir, 'anchors');
  mkdirSync(anchors);
  writeFileSync(join(dir, 'audit.key.pem'), keys.privateKeyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'audit.pub.pem'), keys.publicKeyPem);
  const configFile = join(dir, 'controller.yaml');
  writeFileSync(
    configFile,
    [
      'listen: 127.0.0.1:0',
      `store: "${storeUrl}"`,
      `trustedKeys: [${join(dir, 'bench.pub.pem')}]`,
      'silentAfter: 1h',
      'taintSilentAfter: 48h',
      'rateLimit: { enroll: { max: 1000000, per: 1s } }',
      'retention:',
      '  reports: { maxAge: 30d, maxPerHost: 2000 }',
      '  events: { maxAge: 30d }',
      '  audit: { maxAge: 30d }',
      '  resolvedFindings: { maxAge: 90d }',
      `audit: { anchors: { dir: ${anchors}, keyFile: ${join(dir, 'audit.key.pem')}, every: 24h } }`,
      '',
    ].join('\n'),
  );
  const sqliteFile = kind === 'sqlite' ? storeUrl.slice('sqlite:'.length) : null;
  const size = () => (kind === 'sqlite' ? sqliteSize(sqliteFile) : pgSize(o.pgUrl, pgSchema));
  const counts = () => rowCounts(kind, storeUrl, sqliteFile, pgSchema, o.pgUrl);

  let now = Date.now() - 31 * DAY;
  const clock = () => new Date(now);
  const config = loadControllerConfig(configFile);
  const quiet = pino({ level: 'warn' });
  // As `driftwarden token create` makes them, but on the simulated clock: the audit chain is pruned as a
  // prefix, and a token.create row stamped with the real time would stop the walk at once.
  const tokens = await openStore(storeUrl);
  const made = await tokens.transaction(async (tx) => ({
    admin: await createToken(tx, { name: 'bench-admin', role: 'admin' }, 'cli:root', clock()),
    agent: await createToken(
      tx,
      { name: 'bench-agent', role: 'agent', maxUses: 'unlimited', expiresIn: 'never' },
      'cli:root',
      clock(),
    ),
  }));
  await tokens.close();
  const admin = made.admin.secret;
  const agentToken = made.agent.secret;
  let ctl = await startController(config, { clock, log: quiet });
  let pool = new Pool(ctl.url, { connections: o.concurrency, pipelining: 1 });
  const restart = async () => {
    await pool.close();
    await ctl.close();
    now += 1000; // the anchor written at start is named by time: a restart must not reuse the name
    ctl = await startController(config, { clock, log: quiet });
    pool = new Pool(ctl.url, { connections: o.concurrency, pipelining: 1 });
  };

  const manifest = buildManifest(createPrivateKey(keys.privateKeyPem), `ami-growth-${randomBytes(3).toString('hex')}`);
  const pub = await call(pool, 'POST', '/api/v1/manifests', admin, JSON.stringify({ manifest }));
  if (pub.status !== 201) throw new Error(`manifest publish: ${pub.status} ${pub.text}`);
  const sets = Array.from({ length: 16 }, (_, s) => deviationSet(manifest, s));
  const collectors = ['packages', 'sysctl', 'cron', 'files'].map((c) => ({
    collector: c,
    ok: true,
    durationMs: 850,
    items: manifest.sections[c].items.length,
  }));
  const n = o.hosts;
  const ids = Array.from({ length: n }, (_, i) => `${randomBytes(4).toString('hex')}${String(i).padStart(24, '0')}`);
  const creds = new Array(n);
  const seq = new Int32Array(n);
  const drift = new Int16Array(n).fill(-1);
  let errors = 0;
  let firstError = '';
  let sent = { heartbeat: 0, scan: 0 };
  const report = (i, kind) => {
    const d = drift[i];
    const s = d < 0 ? null : sets[d];
    return JSON.stringify({
      schema: 'driftwarden/report/v1',
      kind,
      reportId: randomUUID(),
      hostId: ids[i],
      imageId: manifest.image.id,
      manifestDigest: manifest.digests.overall,
      agentVersion: '0.1.0',
      seq: ++seq[i],
      scannedAt: new Date(now).toISOString(),
      digests: s ? s.digests : manifest.digests.sections,
      collectors: kind === 'scan' ? collectors : [],
      deviations: kind === 'scan' && s ? s.devs : [],
    });
  };
  const send = async (i, kind) => {
    const r = await call(pool, 'POST', '/api/v1/reports', creds[i], report(i, kind));
    sent[kind]++;
    if (r.status !== 200) {
      errors++;
      firstError ||= `${kind} ${r.status} ${r.text.slice(0, 200)}`;
    }
  };
  /** Runs fn(i) for every host, `concurrency` at a time. */
  const each = async (fn) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        for (let i = next++; i < n; i = next++) await fn(i);
      }),
    );
  };

  log(`${kind}: enrolling ${n} hosts`);
  await each(async (i) => {
    const r = await call(
      pool,
      'POST',
      '/api/v1/enroll',
      agentToken,
      JSON.stringify({
        hostId: ids[i],
        hostname: `web-${i}`,
        imageId: manifest.image.id,
        group: `asg-${i % 8}`,
        agentVersion: '0.1.0',
        inventory: {
          hostId: ids[i],
          hostname: `web-${i}`,
          os: 'Debian GNU/Linux 12 (bookworm)',
          kernel: '6.1.0-18-amd64',
          addresses: [`10.0.${(i >> 8) & 255}.${i & 255}`],
        },
      }),
    );
    if (r.status !== 201) throw new Error(`enroll: ${r.status} ${r.text}`);
    creds[i] = JSON.parse(r.text).credential;
    await send(i, 'scan');
  });
  await restart();
  const s0 = await size();
  const c0 = await counts();
  log(`${kind}: baseline ${mb(s0.used)} MB in use`);

  const rounds = Math.round((o.days * DAY) / (o.heartbeat * 1000));
  const scanEveryRounds = Math.max(1, Math.round(o.scanEvery / o.heartbeat));
  const driftPerDay = Math.max(1, Math.round(n * o.drift));
  const roundsPerDay = Math.round(DAY / (o.heartbeat * 1000));
  const driftAt = new Map(); // round -> hosts that drift then
  for (let d = 0; d < o.days; d++)
    for (let k = 0; k < driftPerDay; k++) {
      const r = d * roundsPerDay + Math.floor(Math.random() * roundsPerDay);
      const list = driftAt.get(r) ?? [];
      list.push(Math.floor(Math.random() * n));
      driftAt.set(r, list);
    }
  const start = now;
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    now = start + (r + 1) * o.heartbeat * 1000;
    for (const i of driftAt.get(r) ?? []) if (drift[i] < 0) drift[i] = i % sets.length;
    await each(async (i) => {
      await send(i, 'heartbeat');
      // Scans spread over the interval, as agents started at different times.
      if ((r + i) % scanEveryRounds === 0) await send(i, 'scan');
    });
    if (r % 48 === 47) log(`${kind}: simulated ${((r + 1) * o.heartbeat) / 3600} h, ${errors} errors`);
  }
  const ingestSeconds = (performance.now() - t0) / 1000;
  await restart();
  const s1 = await size();
  const c1 = await counts();
  const drifted = drift.filter((d) => d >= 0).length;
  log(`${kind}: after ${o.days} day(s) ${mb(s1.used)} MB in use (${drifted} hosts drifted)`);

  // Thirty-one days later: every host reports once more, then retention runs with the real clock.
  now = Date.now();
  await each(async (i) => {
    await send(i, 'heartbeat');
    await send(i, 'scan');
  });
  await pool.close();
  await ctl.close();
  const s2 = await size();
  const c2 = await counts();
  const prune = cli(['retention', 'run', '--config', configFile, '--json']);
  if (prune.status !== 0) throw new Error(`retention run: ${prune.stderr}`);
  const pruned = JSON.parse(prune.stdout);
  const s3 = await size();
  const c3 = await counts();
  const verify = cli([
    'audit',
    'verify',
    '--config',
    configFile,
    '--checkpoint-key',
    join(dir, 'audit.pub.pem'),
    '--json',
  ]);
  const verified = JSON.parse(verify.stdout || '{}');
  if (kind === 'sqlite') {
    const db = new Database(sqliteFile);
    db.exec('vacuum');
    db.close();
  } else await pgVacuum(o.pgUrl, pgSchema);
  const s4 = await size();
  await prep.dropStore();
  return {
    kind,
    n,
    days: o.days,
    drifted,
    sent,
    errors,
    firstError,
    ingestSeconds,
    sizes: { baseline: s0, afterDays: s1, beforePrune: s2, afterPrune: s3, afterVacuum: s4 },
    counts: { baseline: c0, afterDays: c1, beforePrune: c2, afterPrune: c3 },
    pruned,
    pruneSeconds: pruned.seconds,
    verify: { status: verify.status, ok: verified.ok, chains: verified.chains },
  };
}

const o = parseArgs(process.argv.slice(2));
mkdirSync(WORK, { recursive: true });
const results = [];
const up = () => spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
log(`uptime before: ${up()}`);
for (const kind of o.store) results.push(await runStore(kind, o));
const uptimeAfter = up();

const lines = [
  `commit ${commit}; ${o.hosts} hosts, ${o.days} simulated day(s), heartbeat every ${o.heartbeat} s, scan every ${o.scanEvery} s, drift ${o.drift * 100} %/day; load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}; uptime: ${uptimeAfter}`,
  '',
  '| store | reports/events/audit rows after the day(s) | bytes per host per day | of which reports | before prune (+1 round, 31 d later) | pruned (reports / events / audit) | after prune (in use) | after VACUUM | retention pass | audit verify |',
  '|---|---|---:|---:|---:|---|---:|---:|---:|---|',
];
for (const r of results) {
  const s = r.sizes;
  const perHostDay = (s.afterDays.used - s.baseline.used) / r.n / r.days;
  const repBytes =
    s.afterDays.tables.reports !== undefined
      ? ((s.afterDays.tables.reports ?? 0) - (s.baseline.tables.reports ?? 0)) / r.n / r.days
      : NaN;
  const c = r.counts.afterDays;
  lines.push(
    `| ${r.kind} | ${c.reports} / ${c.events} / ${c.audit} | ${Math.round(perHostDay).toLocaleString('en')} B | ${Number.isFinite(repBytes) ? `${Math.round(repBytes).toLocaleString('en')} B` : '–'} | ${mb(s.beforePrune.used)} MB | ${r.pruned.reports} / ${r.pruned.events} / ${r.pruned.audit} | ${mb(s.afterPrune.used)} MB (file ${mb(s.afterPrune.file)} MB) | ${mb(s.afterVacuum.file)} MB | ${r.pruneSeconds.toFixed(1)} s | ${r.verify.ok ? 'ok' : `FAILED (${r.verify.status})`} |`,
  );
}
const text = lines.join('\n');
process.stdout.write(`${text}\n`);
const out = join(WORK, `results-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(out, JSON.stringify({ options: o, commit, uptime: uptimeAfter, results }, null, 2));
log(`results: ${out}`);
for (const r of results) if (r.errors) log(`${r.kind}: ${r.errors} errors, first: ${r.firstError}`);
