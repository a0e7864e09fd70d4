#!/usr/bin/env node
/**
 * Several controllers on one PostgreSQL database: for each count in --controllers (default 1,2,3), that
 * many built controllers as child processes (`node bin/driftwarden.js controller --config FILE`, one
 * config, each its own port and pool) on a fresh schema, driven over real HTTP by this one process, the
 * fleet's requests spread across them (worker w talks to controller w mod N, one report in flight per
 * host, seq growing).
 *
 *   node bench/multi-controller.mjs [--controllers 1,2,3] [--hosts 2000] [--concurrency 64]
 *       [--phase-seconds 10] [--dev-sets 8] [--pg-url postgres://postgres@127.0.0.1:5432/test] [--out FILE]
 *
 * Per count: setup (tokens, a signed manifest of 2,000 files / 500 packages / 1,000 sysctl / 20 cron,
 * --hosts enrolled, one clean scan each), then two closed-loop phases of --phase-seconds each:
 *   heartbeat  clean heartbeats (digests equal to the manifest's)
 *   scan-50    drift scans of 50 deviations (30 files, 15 packages, 5 sysctl), --dev-sets distinct sets
 * and per phase, in the same run: total reports/s, errors (any non-2xx), p50/p99, the controllers' CPU
 * (sum of utime+stime from /proc/PID/stat) per request, this generator's CPU (process.cpuUsage), and
 * PostgreSQL's CPU two ways: the backends serving these controllers (found by an application_name of
 * this run's own in pg_stat_activity) and every postgres process on the machine (which includes other
 * users of the server and its WAL writer/checkpointer); plus machine busy % and load average.
 * Reuses bench/lib/load.mjs; needs a built dist/ (npm run build). Work files: bench/work/multi-controller/.
 */
import { createHash, createPrivateKey, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Pool } from 'undici';
import {
  buildManifest,
  call,
  deviationSet,
  f0,
  f1,
  f2,
  monitor,
  prepareStore,
  startServer,
  stats,
  tokenCreate,
  writeResults,
} from './lib/load.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const WORK = join(HERE, 'work', 'multi-controller');

function parseArgs(argv) {
  const o = {
    controllers: [1, 2, 3],
    hosts: 2000,
    concurrency: 64,
    phaseSeconds: 10,
    devSets: 8,
    pgUrl: process.env.DRIFTWARDEN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    out: join(WORK, 'latest.md'),
  };
  const num = {
    '--hosts': 'hosts',
    '--concurrency': 'concurrency',
    '--phase-seconds': 'phaseSeconds',
    '--dev-sets': 'devSets',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a in num) {
      o[num[a]] = Number(val());
      if (!Number.isFinite(o[num[a]]) || o[num[a]] <= 0) throw new Error(`${a} needs a positive number`);
    } else if (a === '--controllers') {
      o.controllers = val().split(',').map(Number);
      if (o.controllers.some((n) => !Number.isInteger(n) || n < 1 || n > 8))
        throw new Error('--controllers: counts from 1 to 8, e.g. 1,2,3');
    } else if (a === '--pg-url') o.pgUrl = val();
    else if (a === '--out') o.out = resolve(val());
    else if (a === '-h' || a === '--help') {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0] + '*/\n');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  if (o.hosts < o.concurrency)
    throw new Error('--hosts must be at least --concurrency (one request in flight per host)');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const log = (s) => process.stderr.write(`[multi] ${s}\n`);
const md5 = (s) => createHash('md5').update(s).digest('hex');
const CLK_TCK = 100;

function ticks(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

/** Every postgres process on this machine, by pid: utime+stime in ticks. */
function postgresTicks() {
  const out = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== 'postgres') continue;
    } catch {
      continue;
    }
    const t = ticks(d);
    if (t !== null) out.set(d, t);
  }
  return out;
}

/** CPU seconds between two samples of a pid→ticks map (a process that started in between counts whole). */
function cpuBetween(a, b, only = null) {
  let sum = 0;
  for (const [pid, t1] of b) {
    if (only && !only.has(pid)) continue;
    sum += t1 - (a.get(pid) ?? 0);
  }
  return sum / CLK_TCK;
}

async function runCount(n) {
  const { dir, keys, storeUrl, pgSchema, configFile, dropStore } = await prepareStore(WORK, 'postgres', {
    pgUrl: opts.pgUrl,
    schemaPrefix: 'dwmulti',
    log,
  });
  // This run's own application_name (a URL parameter wins over the controller's default), so its
  // backends can be told from everyone else's on a shared server.
  const appName = `dwmulti_${process.pid}_${n}`;
  const url = `${storeUrl}&application_name=${appName}`;
  writeFileSync(configFile, readFileSync(configFile, 'utf8').replace(`store: "${storeUrl}"`, `store: "${url}"`));
  const admin = new pg.Client({ connectionString: opts.pgUrl });
  await admin.connect();
  const servers = [];
  const pools = [];
  const rows = [];
  try {
    const adminToken = tokenCreate(configFile, 'admin');
    const agentToken = tokenCreate(configFile, 'agent');
    for (let i = 0; i < n; i++) servers.push(await startServer(dir, configFile, `${n}-${i}`, log));
    for (const s of servers)
      pools.push(
        new Pool(s.url, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 }),
      );
    const alive = () => {
      for (const s of servers)
        if (s.child.exitCode !== null || s.child.signalCode !== null)
          throw new Error(`controller pid ${s.child.pid} exited; see its log in ${dir}`);
    };

    const manifest = buildManifest(createPrivateKey(keys.privateKeyPem), 'ami-bench-multi', {
      source: 'bench/multi-controller.mjs',
      declaredSysctl: true,
    });
    const pub = await call(pools[0], 'POST', '/api/v1/manifests', adminToken, JSON.stringify({ manifest }));
    if (pub.status !== 201) throw new Error(`manifest publish: ${pub.status} ${pub.text}`);
    const sets = Array.from({ length: opts.devSets }, (_, s) =>
      deviationSet(manifest, s, { files: 30, packages: 15, sysctl: 5 }),
    );
    const collectors = ['packages', 'sysctl', 'cron', 'files'].map((c) => ({
      collector: c,
      ok: true,
      durationMs: 850,
      items: manifest.sections[c].items.length,
    }));
    const ids = Array.from({ length: opts.hosts }, (_, i) => md5(`multi-host-${i}`));
    const creds = new Array(opts.hosts);
    const seq = new Int32Array(opts.hosts);
    const common = {
      schema: 'driftwarden/report/v1',
      imageId: manifest.image.id,
      manifestDigest: manifest.digests.overall,
      agentVersion: '0.1.0',
      collectors,
    };
    const tail = (kind, digests, deviations) => JSON.stringify({ ...common, kind, digests, deviations }).slice(1);
    const cleanHb = tail('heartbeat', manifest.digests.sections, []);
    const cleanScan = tail('scan', manifest.digests.sections, []);
    const driftScan = sets.map((s) => tail('scan', s.digests, s.devs));
    const report = (i, t) =>
      `{"reportId":"${randomUUID()}","hostId":"${ids[i]}","seq":${++seq[i]},"scannedAt":"${new Date().toISOString()}",${t}`;

    /** Closed loop: worker w owns hosts i ≡ w (mod concurrency) and talks to controller w mod n. */
    async function closedLoop(name, { seconds, once = false, path, token, body, record = true }) {
      const lat = [];
      let ok = 0;
      let errors = 0;
      let firstError = null;
      const serverTicks0 = servers.map((s) => ticks(s.child.pid));
      const pg0 = postgresTicks();
      const ours0 = await backends();
      const mon = monitor(servers[0].child.pid); // generator CPU, machine busy, load; server CPU is summed below
      const t0 = performance.now();
      const deadline = t0 + seconds * 1000;
      await Promise.all(
        Array.from({ length: opts.concurrency }, async (_, w) => {
          const pool = pools[w % n];
          const mine = [];
          for (let i = w; i < opts.hosts; i += opts.concurrency) mine.push(i);
          for (let j = 0; once ? j < mine.length : performance.now() < deadline; j++) {
            const i = mine[j % mine.length];
            const s = performance.now();
            try {
              const r = await call(pool, 'POST', path, token(i), body(i));
              lat.push(performance.now() - s);
              if (r.status >= 200 && r.status < 300) {
                ok++;
                if (path === '/api/v1/enroll') creds[i] = JSON.parse(r.text).credential;
              } else {
                errors++;
                firstError ??= `${r.status} ${r.text.slice(0, 300)}`;
              }
            } catch (err) {
              errors++;
              firstError ??= String(err);
            }
          }
        }),
      );
      const wall = (performance.now() - t0) / 1000;
      const m = mon.stop();
      const ours1 = await backends();
      const pg1 = postgresTicks();
      const serverCpuS = servers.reduce((a, s, k) => a + (ticks(s.child.pid) - serverTicks0[k]) / CLK_TCK, 0);
      const oursPids = new Set([...ours0, ...ours1]);
      const row = {
        controllers: n,
        phase: name,
        ok,
        errors,
        seconds: wall,
        rate: ok / wall,
        ...stats(lat),
        serverCpuPct: (serverCpuS / wall) * 100,
        serverMsPerReq: ok ? (serverCpuS * 1000) / ok : NaN,
        genCpuPct: m.genCpu,
        pgOursPct: (cpuBetween(pg0, pg1, oursPids) / wall) * 100,
        pgAllPct: (cpuBetween(pg0, pg1) / wall) * 100,
        pgOursMsPerReq: ok ? (cpuBetween(pg0, pg1, oursPids) * 1000) / ok : NaN,
        machineBusy: m.machineBusy,
        load1: m.load1,
      };
      if (firstError) log(`${n} controllers ${name}: ${errors} errors, first: ${firstError}`);
      alive();
      log(
        `${n} controllers ${name}: ${ok} ok / ${errors} errors in ${wall.toFixed(1)} s = ${row.rate.toFixed(0)}/s, p99 ${row.p99.toFixed(1)} ms, ` +
          `servers ${row.serverCpuPct.toFixed(0)} % (${row.serverMsPerReq.toFixed(2)} ms/req), gen ${row.genCpuPct.toFixed(0)} %, ` +
          `pg ours ${row.pgOursPct.toFixed(0)} % / all ${row.pgAllPct.toFixed(0)} %, load ${row.load1.toFixed(2)}`,
      );
      if (record) rows.push(row);
      return row;
    }
    async function backends() {
      const r = await admin.query('select pid::text as pid from pg_stat_activity where application_name = $1', [
        appName,
      ]);
      return r.rows.map((x) => x.pid);
    }

    await closedLoop('enroll', {
      once: true,
      seconds: 600,
      path: '/api/v1/enroll',
      token: () => agentToken,
      body: (i) =>
        JSON.stringify({
          hostId: ids[i],
          hostname: `web-${i}`,
          imageId: manifest.image.id,
          group: `asg-${i % 4}`,
          agentVersion: '0.1.0',
        }),
      record: false,
    });
    for (let i = 0; i < opts.hosts; i++) if (!creds[i]) throw new Error(`enrollment failed for host ${i}`);
    const hostToken = (i) => creds[i];
    await closedLoop('scan-0', {
      once: true,
      seconds: 600,
      path: '/api/v1/reports',
      token: hostToken,
      body: (i) => report(i, cleanScan),
      record: false,
    });
    await closedLoop('warm-up', {
      seconds: 3,
      path: '/api/v1/reports',
      token: hostToken,
      body: (i) => report(i, cleanHb),
      record: false,
    });
    await closedLoop('heartbeat', {
      seconds: opts.phaseSeconds,
      path: '/api/v1/reports',
      token: hostToken,
      body: (i) => report(i, cleanHb),
    });
    await closedLoop('scan-50', {
      seconds: opts.phaseSeconds,
      path: '/api/v1/reports',
      token: hostToken,
      body: (i) => report(i, driftScan[i % sets.length]),
    });
    // Nothing double-counted: the store holds each enrolled host once.
    const c = await admin.query(`select count(*)::int as n, count(distinct id)::int as d from ${pgSchema}.hosts`);
    if (c.rows[0].n !== opts.hosts || c.rows[0].d !== opts.hosts)
      throw new Error(`hosts table has ${c.rows[0].n} rows (${c.rows[0].d} distinct) for ${opts.hosts} hosts`);
    return rows;
  } finally {
    for (const p of pools) await p.close().catch(() => {});
    for (const s of servers) await s.stop().catch(() => {});
    await admin.end().catch(() => {});
    await dropStore();
  }
}

const started = new Date();
const cpuModel = cpus()[0]?.model ?? 'unknown';
log(`machine: ${cpus().length} cores, ${cpuModel}, node ${process.version}, load ${loadavg().map(f2).join(' ')}`);
const all = [];
for (const n of opts.controllers) {
  try {
    all.push(...(await runCount(n)));
  } catch (err) {
    log(`${n} controllers: run failed: ${err.stack ?? err}`);
    process.exitCode = 1;
  }
}
const lines = [
  `Run ${started.toISOString()} on ${cpus().length} cores (${cpuModel}), Node ${process.version}; load average at the end ${loadavg().map(f2).join(' ')}.`,
  `Options: ${opts.hosts} enrolled hosts, ${opts.concurrency} requests in flight (closed loop, spread over the controllers), ${opts.phaseSeconds} s per phase, scan-50 = 50 deviations.`,
  '',
  '| controllers | phase | ok | errors | reports/s | p50 ms | p99 ms | servers CPU % | server CPU ms/req | generator CPU % | PG CPU % (our backends) | PG ms/req | all postgres CPU % | machine busy % | load1 |',
  '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...all.map(
    (r) =>
      `| ${r.controllers} | ${r.phase} | ${r.ok} | ${r.errors} | ${f0(r.rate)} | ${f1(r.p50)} | ${f1(r.p99)} | ${f0(r.serverCpuPct)} | ${f2(r.serverMsPerReq)} | ${f0(r.genCpuPct)} | ${f0(r.pgOursPct)} | ${f2(r.pgOursMsPerReq)} | ${f0(r.pgAllPct)} | ${f0(r.machineBusy)} | ${f2(r.load1)} |`,
  ),
];
writeResults(opts.out, lines.join('\n') + '\n', { started, cpuModel, node: process.version, opts, rows: all }, log);
