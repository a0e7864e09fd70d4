#!/usr/bin/env node
/**
 * Scale simulation: one load generator speaking the agent protocol for a fleet that grows from 1,000
 * to 100,000 hosts, against one controller (a child process, `driftwarden controller --config FILE`)
 * on SQLite and on PostgreSQL. Reports throughput, latency percentiles, controller CPU and RSS, and
 * how they grow with the fleet.
 *
 *   npm run bench:scale -- [--store sqlite,postgres] [--steps 1000,10000,100000] [--seconds 20]
 *       [--concurrency 64] [--heartbeat 60] [--scan-every 1800] [--event-every 3600] [--drift-share 0.3]
 *       [--dev-sets 1000] [--manifest-files 130000] [--transport http-pool|https-per-agent]
 *       [--pg-url postgres://postgres@127.0.0.1:5432/test] [--out FILE]
 *
 * Per store (a temp SQLite file, or a schema of its own on the PostgreSQL server, dropped at the end):
 *   enroll    the first step's hosts enroll over the API (POST /api/v1/enroll, the agent's enrollment
 *             token) and send a first clean scan each, concurrently: the measured enrollment path
 *   bulk      each further step adds hosts in bulk through the store module (dist/controller/store,
 *             1,000 per transaction, with credentials whose secrets the generator holds, as a
 *             provisioning pipeline pre-registering an auto-scaling group would; on PostgreSQL the
 *             hosts table is then ANALYZEd); the controller is restarted on the bigger store
 *             (start-up time recorded)
 *   mix       closed loop, --concurrency requests in flight, hosts picked at random with at most one
 *             report in flight per host (seq must grow): heartbeats, scans and events in the proportion
 *             of the agent's defaults (heartbeat every --heartbeat s, scan every --scan-every s, an
 *             event every --event-every s); --drift-share of scans carry 10 deviations (files and
 *             packages, digests that add up), the rest are clean; for --seconds: the ceiling
 *   nominal   open loop at the rate that many hosts produce on those schedules (at 100,000 hosts
 *             about 1,750 reports/s), for --seconds; latency from each report's scheduled send time,
 *             so a controller that falls behind shows it (no coordinated omission)
 * The manifest is of a real host's size (--manifest-files, default 130,000, generated deterministically);
 * drifted scans use --dev-sets distinct deviation sets (host i gets set i mod N), and each phase reports
 * the controller's digest-memo hits and misses. Hosts added in bulk are real hosts with credentials,
 * reached over the API like the enrolled ones, but they did not enroll: bench/controller-load.mjs enrolls
 * every host. --transport https-per-agent gives each host its own HTTPS connection (see controller-load).
 * During each phase: controller CPU % (its process tree, utime+stime from /proc, 100 % = one core) and
 * CPU ms per request, max RSS, this generator's CPU, the database's CPU (PostgreSQL backends of this
 * controller, and all postgres processes), whole-machine busy % and the load average, with the commit.
 * Targets of issue 14, printed met or missed: the ceiling of the agent mix (about 97 % heartbeats)
 * against ≥ 5,000 heartbeats/s on SQLite and ≥ 3,000 on PostgreSQL; the nominal load answered in full
 * with 0 errors and p99 ≤ 50 ms. A phase that answered nothing is not reported (exit 2).
 * Work files go to bench/work/scale-sim/ (gitignored); the table is printed and written to --out.
 */
import { createPrivateKey, randomBytes, randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import {
  buildManifest,
  commitOf,
  deviationSets,
  dist,
  f0,
  f1,
  f2,
  helpOf,
  memoCounters,
  monitor,
  mustMeasure,
  NotMeasured,
  perRequest,
  prepareStore,
  REAL_SIZE,
  sendAtRate,
  sleep,
  startServer,
  stats,
  tokenCreate,
  transport,
  uptime,
  verdict,
  writeResults,
} from './lib/load.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const WORK = join(HERE, 'work', 'scale-sim');

function parseArgs(argv) {
  const o = {
    stores: ['sqlite', 'postgres'],
    steps: [1000, 10_000, 100_000],
    seconds: 20,
    concurrency: 64,
    heartbeat: 60,
    scanEvery: 1800,
    eventEvery: 3600,
    driftShare: 0.3,
    devSets: 1000,
    manifestFiles: REAL_SIZE.files,
    transport: 'http-pool',
    pgUrl: process.env.DRIFTWARDEN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    out: join(WORK, 'latest.md'),
  };
  const num = {
    '--seconds': 'seconds',
    '--concurrency': 'concurrency',
    '--heartbeat': 'heartbeat',
    '--scan-every': 'scanEvery',
    '--event-every': 'eventEvery',
    '--drift-share': 'driftShare',
    '--dev-sets': 'devSets',
    '--manifest-files': 'manifestFiles',
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
    } else if (a === '--store') o.stores = val().split(',');
    else if (a === '--steps') o.steps = val().split(',').map(Number);
    else if (a === '--pg-url') o.pgUrl = val();
    else if (a === '--out') o.out = resolve(val());
    else if (a === '--transport') o.transport = val();
    else if (a === '-h' || a === '--help') {
      process.stdout.write(helpOf(fileURLToPath(import.meta.url)));
      process.exit(0);
    } else throw new Error(`unknown option ${a} (see --help)`);
  }
  for (const s of o.stores) if (s !== 'sqlite' && s !== 'postgres') throw new Error(`--store: unknown store ${s}`);
  if (!['https-per-agent', 'http-pool'].includes(o.transport))
    throw new Error('--transport: https-per-agent or http-pool');
  if (o.steps.some((n, i) => !Number.isInteger(n) || n < o.concurrency || (i > 0 && n <= o.steps[i - 1])))
    throw new Error('--steps: increasing host counts, each at least --concurrency');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const log = (s) => process.stderr.write(`[scale] ${s}\n`);
const { openStore } = await dist('controller/store/index.js');
const { hashSecret } = await dist('controller/auth.js');

/** What one host sends, in the proportion of the agent's schedules. */
function mixShares() {
  const hb = 1 / opts.heartbeat;
  const scan = 1 / opts.scanEvery;
  const event = 1 / opts.eventEvery;
  const all = hb + scan + event;
  return { perHostPerSecond: all, scan: scan / all, event: event / all };
}

async function runStore(kind, results) {
  const https = opts.transport === 'https-per-agent';
  const { dir, keys, storeUrl, pgSchema, configFile, dropStore, caPem, appName } = await prepareStore(WORK, kind, {
    pgUrl: opts.pgUrl,
    schemaPrefix: 'dwscale',
    log,
    tls: https,
  });
  const db = kind === 'postgres' ? { pgUrl: opts.pgUrl, appName } : null;
  const connect = () => transport(server.url, { mode: https ? 'per-agent' : 'pool', caPem });

  let server = null;
  let pool = null;
  try {
    const admin = tokenCreate(configFile, 'admin');
    const agentToken = tokenCreate(configFile, 'agent');
    server = await startServer(dir, configFile, 'start', log);
    pool = connect();
    const manifest = buildManifest(
      createPrivateKey(keys.privateKeyPem),
      `ami-scale-${randomBytes(3).toString('hex')}`,
      {
        size: { ...REAL_SIZE, files: opts.manifestFiles },
      },
    );
    const pub = await pool.call(-1, 'POST', '/api/v1/manifests', admin, JSON.stringify({ manifest }));
    if (pub.status !== 201) throw new Error(`manifest publish: ${pub.status} ${pub.text.slice(0, 300)}`);
    const imageId = manifest.image.id;
    const sets = deviationSets(manifest, opts.devSets);
    log(`${kind}: manifest of ${opts.manifestFiles} files published, ${sets.length} deviation sets`);
    const collectors = ['packages', 'sysctl', 'cron', 'files'].map((c) => ({
      collector: c,
      ok: true,
      durationMs: 850,
      items: manifest.sections[c].items.length,
    }));

    const max = opts.steps.at(-1);
    const ids = Array.from(
      { length: max },
      (_, i) => `${randomBytes(4).toString('hex')}${String(i).padStart(24, '0')}`,
    );
    const creds = new Array(max);
    const seq = new Int32Array(max);
    /** Deviation set of the host's last scan, -1 when clean: heartbeats carry that scan's digests. */
    const drift = new Int16Array(max).fill(-1);
    const busy = new Uint8Array(max);
    const common = {
      schema: 'driftwarden/report/v1',
      imageId,
      manifestDigest: manifest.digests.overall,
      agentVersion: '0.1.0',
    };
    const tail = (k, digests, deviations, cols) =>
      JSON.stringify({ ...common, kind: k, digests, collectors: cols, deviations }).slice(1);
    const cleanHb = tail('heartbeat', manifest.digests.sections, [], []);
    const cleanScan = tail('scan', manifest.digests.sections, [], collectors);
    const driftHb = sets.map((s) => tail('heartbeat', s.digests, [], []));
    const driftScan = sets.map((s) => tail('scan', s.digests, s.devs, collectors));
    const events = sets.map((s) => tail('event', s.digests, s.devs.slice(0, 1), []));
    let nowIso = new Date().toISOString();
    const clock = setInterval(() => (nowIso = new Date().toISOString()), 50);
    const head = (i) => `{"reportId":"${randomUUID()}","hostId":"${ids[i]}","seq":${++seq[i]},"scannedAt":"${nowIso}",`;
    const shares = mixShares();
    /** One report of the mix for host i: [kind, body]. */
    const mixReport = (i) => {
      const r = Math.random();
      if (r < shares.scan) {
        const d = Math.random() < opts.driftShare ? i % sets.length : -1;
        drift[i] = d;
        return ['scan', head(i) + (d < 0 ? cleanScan : driftScan[d])];
      }
      if (r < shares.scan + shares.event) return ['event', head(i) + events[i % sets.length]];
      return ['heartbeat', head(i) + (drift[i] < 0 ? cleanHb : driftHb[drift[i]])];
    };

    const alive = () => {
      const c = server.child;
      if (c.exitCode !== null || c.signalCode !== null)
        throw new Error(`the controller exited (${c.signalCode ?? c.exitCode}); see its log in ${dir}`);
    };
    const row = (hosts, phase, lat, ok, errors, wall, mon, extra = {}) => {
      mustMeasure(ok > 0, `${kind} ${hosts} ${phase}: no request was answered`);
      const r = {
        store: kind,
        hosts,
        phase,
        requests: lat.length,
        ok,
        errors,
        seconds: wall,
        rate: ok / wall,
        ...stats(lat),
        ...mon,
        ...perRequest(mon, ok),
        ...extra,
      };
      results.push(r);
      log(
        `${kind} ${hosts} ${phase}: ${ok}/${lat.length} ok in ${wall.toFixed(1)} s = ${r.rate.toFixed(0)}/s, p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)} ms, server CPU ${mon.serverCpu.toFixed(0)} %, RSS ${mon.serverRssMB.toFixed(0)} MB`,
      );
      return r;
    };

    /** Closed loop over hosts [from, to): each exactly once (`once`), or random ones until the time is up. */
    async function closed(
      hosts,
      phase,
      { from = 0, to = hosts, once = false, path = '/api/v1/reports', token = (i) => creds[i], body, check },
    ) {
      const lat = [];
      let ok = 0;
      let errors = 0;
      let firstError = null;
      let next = from;
      const memo0 = await memoCounters(pool, admin);
      const mon = await monitor(server.child.pid, db);
      const t0 = performance.now();
      const deadline = t0 + opts.seconds * 1000;
      await Promise.all(
        Array.from({ length: opts.concurrency }, async () => {
          for (;;) {
            let i;
            if (once) {
              if (next >= to) return;
              i = next++;
            } else {
              if (performance.now() >= deadline) return;
              do i = from + Math.floor(Math.random() * (to - from));
              while (busy[i]);
            }
            busy[i] = 1;
            const s = performance.now();
            try {
              const r = await pool.call(i, 'POST', path, token(i), body(i));
              lat.push(performance.now() - s);
              if (r.status < 300 && (!check || check(r.text, i))) ok++;
              else {
                errors++;
                firstError ??= `${r.status} ${r.text.slice(0, 300)}`;
              }
            } catch (err) {
              lat.push(performance.now() - s);
              errors++;
              firstError ??= String(err);
            } finally {
              busy[i] = 0;
            }
          }
        }),
      );
      const wall = (performance.now() - t0) / 1000;
      if (firstError) log(`${kind} ${phase}: ${errors} errors, first: ${firstError}`);
      alive();
      if (once) mustMeasure(ok === to - from, `${kind} ${phase}: ${ok} of ${to - from} hosts answered (${firstError})`);
      const res = await mon.stop();
      const memo1 = await memoCounters(pool, admin);
      return row(hosts, phase, lat, ok, errors, wall, res, {
        mode: `closed, ${opts.concurrency} in flight`,
        memoHits: memo1.hits - memo0.hits,
        memoMisses: memo1.misses - memo0.misses,
      });
    }

    /** Open loop at the rate `hosts` hosts produce; latency from the scheduled send time. */
    async function nominal(hosts) {
      const rate = hosts * shares.perHostPerSecond;
      const total = Math.max(1, Math.round(rate * opts.seconds));
      const lat = [];
      let ok = 0;
      let errors = 0;
      let firstError = null;
      let done = 0;
      let finish;
      const finished = new Promise((r) => (finish = r));
      const memo0 = await memoCounters(pool, admin);
      const mon = await monitor(server.child.pid, db);
      const start = performance.now();
      const send = (sched) => {
        let i;
        do i = Math.floor(Math.random() * hosts);
        while (busy[i]);
        busy[i] = 1;
        const [, body] = mixReport(i);
        pool
          .call(i, 'POST', '/api/v1/reports', creds[i], body)
          .then(
            (r) => {
              if (r.status < 300) ok++;
              else {
                errors++;
                firstError ??= `${r.status} ${r.text.slice(0, 300)}`;
              }
            },
            (err) => {
              errors++;
              firstError ??= String(err);
            },
          )
          .finally(() => {
            lat.push(performance.now() - sched);
            busy[i] = 0;
            if (++done === total) finish();
          });
      };
      await sendAtRate(start, rate, total, send);
      await Promise.race([finished, sleep(60_000)]);
      const wall = (performance.now() - start) / 1000;
      if (firstError) log(`${kind} nominal: ${errors} errors, first: ${firstError}`);
      alive();
      const late = total - done;
      const res = await mon.stop();
      const memo1 = await memoCounters(pool, admin);
      return row(
        hosts,
        `nominal ${rate.toFixed(0)}/s${late ? ` (${late} of ${total} unanswered ${((performance.now() - start) / 1000).toFixed(0)} s in)` : ''}`,
        lat,
        ok,
        errors,
        wall,
        res,
        {
          mode: 'open loop',
          offered: rate,
          unfinished: late,
          nominal: true,
          memoHits: memo1.hits - memo0.hits,
          memoMisses: memo1.misses - memo0.misses,
        },
      );
    }

    const enrollBody = (i) =>
      JSON.stringify({
        hostId: ids[i],
        hostname: `web-${i}`,
        imageId,
        group: `asg-${i % 8}`,
        agentVersion: '0.1.0',
        inventory: {
          hostId: ids[i],
          hostname: `web-${i}`,
          os: 'Debian GNU/Linux 12 (bookworm)',
          kernel: '6.1.0-18-amd64',
          addresses: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`],
        },
      });
    const sizes = [];
    let have = 0;
    for (const n of opts.steps) {
      if (have === 0) {
        await closed(n, 'enroll (API)', {
          once: true,
          to: n,
          path: '/api/v1/enroll',
          token: () => agentToken,
          body: enrollBody,
          check: (text, i) => {
            creds[i] = JSON.parse(text).credential;
            return !!creds[i];
          },
        });
        await closed(n, 'first scan', {
          once: true,
          to: n,
          body: (i) => head(i) + cleanScan,
          check: (t) => t.includes('"status":"accepted"'),
        });
      } else {
        await server.stop();
        await pool.destroy();
        const store = await openStore(storeUrl);
        const t0 = performance.now();
        const now = new Date().toISOString();
        const lanes = kind === 'postgres' ? 4 : 1;
        let next = have;
        await Promise.all(
          Array.from({ length: lanes }, async () => {
            while (next < n) {
              const from = next;
              next = Math.min(n, next + 1000);
              const upto = next;
              await store.transaction(async (tx) => {
                for (let i = from; i < upto; i++) {
                  creds[i] = `dwh_${randomBytes(24).toString('base64url')}`;
                  await tx.insertHost({
                    id: ids[i],
                    hostname: `web-${i}`,
                    imageId,
                    group: `asg-${i % 8}`,
                    state: 'clean',
                    stateSince: now,
                    enrolledAt: now,
                    lastSeenAt: now,
                    lastReportAt: now,
                    lastSeq: 0,
                    deviationCount: 0,
                    taintedAt: null,
                    agentVersion: '0.1.0',
                    manifestDigest: manifest.digests.overall,
                    inventory: JSON.parse(enrollBody(i)).inventory,
                    credentialHash: hashSecret(creds[i]),
                  });
                }
              });
            }
          }),
        );
        await store.close();
        if (pgSchema) {
          // What an operator does after registering many hosts at once; autovacuum may take minutes to.
          const c = new pg.Client({ connectionString: opts.pgUrl });
          await c.connect();
          await c.query(`analyze ${pgSchema}.hosts`);
          await c.end();
        }
        const s = (performance.now() - t0) / 1000;
        log(`${kind}: ${n - have} hosts added in bulk through the store in ${s.toFixed(1)} s`);
        results.push({
          store: kind,
          hosts: n,
          phase: `bulk add ${n - have} (store)`,
          requests: n - have,
          ok: n - have,
          errors: 0,
          seconds: s,
          rate: (n - have) / s,
          p50: NaN,
          p95: NaN,
          p99: NaN,
          max: NaN,
          serverCpu: NaN,
          serverRssMB: NaN,
          genCpu: NaN,
          machineBusy: NaN,
          load1: loadavg()[0],
        });
        server = await startServer(dir, configFile, `${n}`, log);
        results.push({
          store: kind,
          hosts: n,
          phase: 'controller start-up',
          requests: 1,
          ok: 1,
          errors: 0,
          seconds: server.startupMs / 1000,
          rate: NaN,
          p50: NaN,
          p95: NaN,
          p99: NaN,
          max: NaN,
          serverCpu: NaN,
          serverRssMB: NaN,
          genCpu: NaN,
          machineBusy: NaN,
          load1: loadavg()[0],
        });
        pool = connect();
      }
      have = n;
      await closed(n, 'mix (ceiling)', { body: (i) => mixReport(i)[1] });
      await nominal(n);
      sizes.push({ hosts: n, bytes: await storeBytes(kind, storeUrl, pgSchema, dir) });
    }
    clearInterval(clock);
    return sizes;
  } finally {
    // destroy, not close: an overloaded open loop can leave thousands of requests queued.
    await pool?.destroy().catch(() => {});
    await server?.stop().catch(() => {});
    await dropStore();
  }
}

async function storeBytes(kind, storeUrl, pgSchema, dir) {
  if (kind === 'sqlite') {
    let n = 0;
    for (const f of ['controller.db', 'controller.db-wal']) {
      try {
        n += statSync(join(dir, f)).size;
      } catch {
        // no WAL file at the moment
      }
    }
    return n;
  }
  const c = new pg.Client({ connectionString: opts.pgUrl });
  await c.connect();
  try {
    const r = await c.query(
      `select coalesce(sum(pg_total_relation_size(format('%I.%I', schemaname, tablename))), 0)::bigint as b from pg_tables where schemaname = $1`,
      [pgSchema],
    );
    return Number(r.rows[0].b);
  } finally {
    await c.end();
  }
}

const cpuModel = cpus()[0]?.model ?? 'unknown';
const started = new Date();
const commit = commitOf();
const uptimeBefore = uptime();
log(`machine: ${cpus().length} cores, ${cpuModel}, node ${process.version}, ${uptimeBefore}`);
const results = [];
const sizes = {};
for (const kind of opts.stores) {
  try {
    sizes[kind] = await runStore(kind, results);
  } catch (err) {
    if (err instanceof NotMeasured) {
      process.stderr.write(`scale-sim: ${err.message}\n`);
      process.exit(2);
    }
    log(`${kind}: run failed: ${err.stack ?? err}`);
    process.exitCode = 1;
  }
}
const shares = mixShares();
const TARGET_HB = { sqlite: 5000, postgres: 3000 };
const targets = [];
for (const r of results) {
  if (r.phase === 'mix (ceiling)')
    targets.push(
      `| ${r.store} | ${r.hosts} | ceiling of the agent mix vs heartbeats/s | ≥ ${TARGET_HB[r.store].toLocaleString('en')} | ${f0(r.rate)} | ${verdict(r.rate >= TARGET_HB[r.store])} |`,
    );
  if (r.nominal)
    targets.push(
      `| ${r.store} | ${r.hosts} | nominal ${f0(r.offered)}/s: all answered, 0 errors, p99 | ≤ 50 ms | ${f1(r.p99)} ms${r.unfinished ? `, ${r.unfinished} unanswered` : ''}${r.errors ? `, ${r.errors} errors` : ''} | ${verdict(!r.unfinished && !r.errors && r.p99 <= 50)} |`,
    );
}
const lines = [
  `Run ${started.toISOString()} on ${cpus().length} cores (${cpuModel}), Node ${process.version}, commit ${commit}; \`uptime\` before: ${uptimeBefore}; after: ${uptime()}.`,
  `Mix per host: a heartbeat every ${opts.heartbeat} s, a scan every ${opts.scanEvery} s (${Math.round(opts.driftShare * 100)} % with 10 deviations from ${opts.devSets} distinct sets), an event every ${opts.eventEvery} s (${(shares.scan * 100).toFixed(1)} % scans, ${(shares.event * 100).toFixed(1)} % events); manifest of ${opts.manifestFiles} files; transport ${opts.transport}; closed loop ${opts.concurrency} in flight, phases of ${opts.seconds} s.`,
  'CPU: % of one core over the phase, ms = CPU ms per answered request; DB = the PostgreSQL backends of this controller (SQLite: inside the controller); all-PG = every postgres process on the machine.',
  '',
  '| store | hosts | phase | ok / sent | s | reports/s | p50 ms | p95 ms | p99 ms | max ms | controller CPU % | controller ms/req | DB CPU % | all-PG CPU % | generator CPU % | memo hit / miss | controller RSS MB | machine busy % | load1 |',
  '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...results.map(
    (r) =>
      `| ${r.store} | ${r.hosts} | ${r.phase} | ${r.ok} / ${r.requests} | ${f1(r.seconds)} | ${f0(r.rate)} | ${f1(r.p50)} | ${f1(r.p95)} | ${f1(r.p99)} | ${f1(r.max)} | ${f0(r.serverCpu)} | ${f2(r.serverMsPerReq)} | ${f0(r.dbCpu)} | ${f0(r.pgAllCpu)} | ${f0(r.genCpu)} | ${r.memoHits ?? '–'} / ${r.memoMisses ?? '–'} | ${f0(r.serverRssMB)} | ${f0(r.machineBusy)} | ${f1(r.load1)} |`,
  ),
  '',
  '| store | hosts | store size MB |',
  '|---|---:|---:|',
  ...Object.entries(sizes).flatMap(([k, list]) =>
    (list ?? []).map((s) => `| ${k} | ${s.hosts} | ${f1(s.bytes / 1048576)} |`),
  ),
  '',
  'Targets (issue 14):',
  '',
  '| store | hosts | target | wanted | measured | |',
  '|---|---:|---|---|---|---|',
  ...targets,
];
writeResults(
  opts.out,
  lines.join('\n') + '\n',
  { started, commit, cpuModel, node: process.version, opts, results, sizes },
  log,
);
// open keep-alive handles must not keep the bench alive
process.exit(process.exitCode ?? 0);
