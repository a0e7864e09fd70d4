#!/usr/bin/env node
/**
 * Fleet drift-report export benchmark: a SQLite store seeded with --hosts hosts (default 20,000) of
 * --devs current deviations each (default 5: one package shared by every host, a cron file shared by
 * 50 hosts each, the rest unique files), then for each format the built controller is started in a
 * child process of its own (so its peak RSS, VmHWM, belongs to that one export) and
 * GET /api/v1/drift-report?scope=fleet&format=F is timed to the last byte.
 *
 *   npm run build && node bench/drift-report.mjs [--hosts 20000] [--devs 5] [--formats json,csv,jsonl]
 *
 * Work files go to bench/work/drift-report/ (gitignored). Prints a Markdown table for bench/RESULTS.md.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { mustMeasure, parseCli } from './lib/cli.mjs';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const dist = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);
const args = parseCli(import.meta.url, { hosts: 'value', devs: 'value', formats: 'value' });
const HOSTS = Number(args.hosts ?? 20_000);
const DEVS = Number(args.devs ?? 5);
const FORMATS = (args.formats ?? 'json,csv,jsonl').split(',');
const WORK = join(ROOT, 'bench/work/drift-report');

const { openStore } = await dist('controller/store/index.js');
const { actualDigest } = await dist('controller/store/migration-0003.js');
const { createToken } = await dist('controller/routes/tokens.js');

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const file = join(WORK, 'controller.db');

// ---- seed ----
const t0 = performance.now();
let secret;
{
  const store = await openStore(`sqlite:${file}`);
  ({ secret } = await store.transaction((tx) =>
    createToken(tx, { name: 'bench', role: 'viewer' }, 'bench', new Date()),
  ));
  await store.close();
}
const db = new Database(file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = OFF');
const at = '2026-03-10T08:00:00.000Z';
const insHost =
  db.prepare(`insert into hosts (id, credential_hash, hostname, image_id, host_group, state, state_since, enrolled_at, last_seen_at, last_report_at, last_seq, deviation_count, tainted_at, agent_version, manifest_digest, inventory)
  values (?, ?, ?, ?, ?, 'tainted', ?, ?, ?, ?, 10, ?, ?, '0.1.0', null, null)`);
const insDev = db.prepare(
  `insert into host_deviations (host_id, collector, item_key, change, expected, actual, severity, action, decided_by, first_seen_at, last_seen_at, actual_digest) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
);
const sslExpected = { manager: 'dpkg', name: 'openssl', arch: 'amd64', version: '3.0.11-1', state: 'installed' };
const sslActual = { ...sslExpected, version: '3.0.13-1' };
const fileItem = (n) => ({
  type: 'file',
  mode: '0644',
  uid: 0,
  gid: 0,
  size: 20 + (n % 1000),
  sha256: String(n).padStart(64, '0'),
});
let deviations = 0;
db.transaction(() => {
  for (let i = 0; i < HOSTS; i++) {
    const id = `host-${String(i).padStart(6, '0')}`;
    const devs = [
      ['packages', 'openssl:amd64', 'modified', sslExpected, sslActual, 'high', 'taint', 'rule:default/packages'],
    ];
    if (DEVS > 1)
      devs.push([
        'cron',
        `/etc/cron.d/job-${i % 50}`,
        'added',
        null,
        { user: 'root', schedule: '*/5 * * * *', command: `/usr/local/bin/job-${i % 50}` },
        'high',
        'taint',
        'rule:default/cron',
      ]);
    for (let j = 2; j < DEVS; j++)
      devs.push([
        'files',
        `/opt/app/releases/${i}/lib-${j}.so`,
        'added',
        null,
        fileItem(i * DEVS + j),
        'critical',
        'taint',
        'rule:default/system-files',
      ]);
    insHost.run(
      id,
      `cred-${id}`,
      `${id}.example.internal`,
      `ami-web-${i % 5}`,
      `asg-${i % 20}`,
      at,
      at,
      at,
      at,
      devs.length,
      at,
    );
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
        at,
        at,
        actualDigest(actual),
      );
      deviations++;
    }
  }
})();
db.close();
const seedSeconds = (performance.now() - t0) / 1000;

// ---- one controller per export ----
const RUNNER = `
const { pathToFileURL } = require('node:url');
(async () => {
  const { startController } = await import(pathToFileURL(process.argv[1] + '/dist/controller/server.js').href);
  const { ControllerConfigSchema } = await import(pathToFileURL(process.argv[1] + '/dist/controller/config.js').href);
  const { pino } = await import('pino');
  const config = ControllerConfigSchema.parse({ listen: '127.0.0.1:0', store: 'sqlite:' + process.argv[2] });
  const ctl = await startController(config, { log: pino({ level: 'warn' }) });
  process.stdout.write(ctl.url + '\\n');
})();
`;

function startChild() {
  return new Promise((resolveStart, reject) => {
    const child = spawn(process.execPath, ['-e', RUNNER, ROOT, file], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b) => {
      out += b;
      if (out.includes('\n')) resolveStart({ child, url: out.trim() });
    });
    child.on('exit', (code) => reject(new Error(`controller exited with ${code}`)));
  });
}
const statusOf = (pid, field) =>
  Number(
    /(\d+) kB/.exec(
      readFileSync(`/proc/${pid}/status`, 'utf8')
        .split('\n')
        .find((l) => l.startsWith(field)) ?? '',
    )?.[1] ?? NaN,
  ) / 1024;

mustMeasure(deviations === HOSTS * DEVS && HOSTS > 0, `seeded ${deviations} deviations, ${HOSTS * DEVS} were asked`);
const rows = [];
for (const format of FORMATS) {
  const { child, url } = await startChild();
  const idle = statusOf(child.pid, 'VmRSS:');
  const s = performance.now();
  let first = null;
  const r = await request(`${url}/api/v1/drift-report?scope=fleet&format=${format}`, {
    headers: { authorization: `Bearer ${secret}` },
  });
  let bytes = 0;
  for await (const chunk of r.body) {
    first ??= performance.now() - s;
    bytes += chunk.length;
  }
  const ms = performance.now() - s;
  if (r.statusCode !== 200) throw new Error(`${format}: ${r.statusCode}`);
  // an export shorter than its header line holds no deviation: not a figure
  mustMeasure(bytes > 1000, `${format}: the export is ${bytes} bytes`);
  const peak = statusOf(child.pid, 'VmHWM:');
  child.removeAllListeners('exit');
  child.kill('SIGTERM');
  rows.push({ format, ms, first, bytes, idle, peak });
}

console.log(
  `\n${HOSTS} hosts × ${DEVS} deviations = ${deviations} current deviations, seeded in ${seedSeconds.toFixed(1)} s; 1-min load ${loadavg()[0].toFixed(2)}\n`,
);
console.log('| fleet export | size | first byte | last byte | controller RSS idle → peak |');
console.log('|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.format} | ${(r.bytes / 1e6).toFixed(1)} MB | ${(r.first / 1000).toFixed(2)} s | ${(r.ms / 1000).toFixed(2)} s | ${r.idle.toFixed(0)} → ${r.peak.toFixed(0)} MB |`,
  );
