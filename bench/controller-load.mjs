#!/usr/bin/env node
/**
 * Controller load benchmark: the built controller as a child process (`node bin/driftwarden.js controller
 * --config FILE`, as in production), driven over real HTTP on 127.0.0.1 by this one process with undici,
 * on SQLite (temp file) and PostgreSQL (a schema of its own, dropped at the end).
 *
 *   npm run bench:controller -- [--store sqlite,postgres] [--hosts 1000] [--big-hosts 100000]
 *       [--concurrency 32] [--hb-count 60000] [--scan-count 15000] [--phase-seconds 20]
 *       [--rate 1000] [--rate-seconds 15] [--scan-share 0.1] [--dev-sets 8] [--cpu-prof]
 *       [--pg-url postgres://postgres@127.0.0.1:5432/test] [--out FILE]
 *
 * Per store:
 *   setup     temp config, `driftwarden token create` (admin, agent), a signed manifest built in-process
 *             (2,000 files, 500 packages, 1,000 sysctl, 20 cron) published over the API, --hosts hosts
 *             enrolled concurrently, one clean scan each (hosts become clean)
 *   heartbeat closed loop, --concurrency requests in flight (one per host at a time: seq must grow),
 *             digests equal to the manifest's, no deviations; bounded by --hb-count and --phase-seconds
 *   scan-50   closed loop, scans of 50 deviations each (30 files, 15 packages, 5 sysctl, modified), one
 *             of --dev-sets distinct sets per host, digests computed with applyDeviations + digestOf
 *   open-loop --rate reports/s paced by the clock (not by replies) for --rate-seconds: heartbeats and a
 *             --scan-share of 50-deviation scans; latency is measured from the scheduled send time, so a
 *             stalled server cannot hide its queue (no coordinated omission)
 *   list      GET /api/v1/hosts?limit=100, first page and a deep page (after=), sequential, with --hosts
 *             hosts; then the controller is stopped, hosts are added up to --big-hosts directly through
 *             the store module (dist/controller/store/index.js), the controller restarted, and the list
 *             (and a short heartbeat run) measured again
 * During every phase: server CPU % (utime+stime from /proc/PID/stat over wall time; 100 % = one core),
 * max RSS (VmRSS sampled every 200 ms), this generator's CPU % (process.cpuUsage), whole-machine busy %
 * (/proc/stat) and the 1-minute load average at the start.
 * --cpu-prof runs the controller under `node --cpu-prof` (profiles in the work dir, top functions printed).
 * Needs a built dist/ (npm run build). Work files go to bench/work/controller-load/ (gitignored).
 */
import { createHash, createPrivateKey, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import {
  buildManifest,
  call,
  deviationSet,
  dist,
  f0,
  f1,
  f2,
  hexOf,
  monitor,
  prepareStore,
  REPO,
  sendAtRate,
  sleep,
  startServer,
  stats,
  tokenCreate,
  writeResults,
} from './lib/load.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const WORK = join(HERE, 'work', 'controller-load');

function parseArgs(argv) {
  const o = {
    stores: ['sqlite', 'postgres'],
    hosts: 1000,
    bigHosts: 100_000,
    concurrency: 32,
    hbCount: 60_000,
    scanCount: 15_000,
    phaseSeconds: 20,
    rate: 1000,
    rateSeconds: 15,
    scanShare: 0.1,
    devSets: 8,
    cpuProf: false,
    pgUrl: process.env.DRIFTWARDEN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    out: join(WORK, 'latest.md'),
  };
  const num = {
    '--hosts': 'hosts',
    '--big-hosts': 'bigHosts',
    '--concurrency': 'concurrency',
    '--hb-count': 'hbCount',
    '--scan-count': 'scanCount',
    '--phase-seconds': 'phaseSeconds',
    '--rate': 'rate',
    '--rate-seconds': 'rateSeconds',
    '--scan-share': 'scanShare',
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
      if (!Number.isFinite(o[num[a]]) || o[num[a]] < 0) throw new Error(`${a} needs a non-negative number`);
    } else if (a === '--store') o.stores = val().split(',');
    else if (a === '--cpu-prof') o.cpuProf = true;
    else if (a === '--pg-url') o.pgUrl = val();
    else if (a === '--out') o.out = resolve(val());
    else if (a === '-h' || a === '--help') {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0] + '*/\n');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  for (const s of o.stores) if (s !== 'sqlite' && s !== 'postgres') throw new Error(`--store: unknown store ${s}`);
  if (o.hosts < o.concurrency)
    throw new Error('--hosts must be at least --concurrency (one request in flight per host)');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const log = (s) => process.stderr.write(`[bench] ${s}\n`);
const md5 = (s) => createHash('md5').update(s).digest('hex');

// ---------------------------------------------------------------- runs for one store

/** The controller child, under `node --cpu-prof` with --cpu-prof (profiles in DIR/prof). */
const startController = (dir, configFile, tag) =>
  startServer(dir, configFile, tag, log, {
    nodeArgs: opts.cpuProf
      ? ['--cpu-prof', '--cpu-prof-dir', join(dir, 'prof'), '--cpu-prof-name', `controller-${tag}.cpuprofile`]
      : [],
  });

async function runStore(kind) {
  const { dir, keys, storeUrl, configFile, dropStore } = await prepareStore(WORK, kind, {
    pgUrl: opts.pgUrl,
    schemaPrefix: 'dwbench',
    log,
  });

  const rows = [];
  const lists = [];
  all.push({ rows, lists, dir }); // partial results survive a failed run
  let server = null;
  const cleanup = (activeCleanup = async () => {
    activeCleanup = null;
    await server?.stop().catch(() => {});
    await dropStore();
  });
  try {
    const admin = tokenCreate(configFile, 'admin');
    const agent = tokenCreate(configFile, 'agent');
    server = await startController(dir, configFile, '1');
    const serverAlive = () => {
      const c = server?.child;
      if (c && (c.exitCode !== null || c.signalCode !== null))
        throw new Error(`the controller (pid ${c.pid}) exited (${c.signalCode ?? c.exitCode}); see its log in ${dir}`);
    };
    let pool = new Pool(server.url, {
      connections: 256,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
    });

    // -- manifest
    const manifest = buildManifest(createPrivateKey(keys.privateKeyPem), 'ami-bench-controller-load', {
      source: 'bench/controller-load.mjs',
      declaredSysctl: true,
    });
    const pub = await call(pool, 'POST', '/api/v1/manifests', admin, JSON.stringify({ manifest }));
    if (pub.status !== 201) throw new Error(`manifest publish: ${pub.status} ${pub.text}`);
    const imageId = manifest.image.id;
    const sets = Array.from({ length: opts.devSets }, (_, s) =>
      deviationSet(manifest, s, { files: 30, packages: 15, sysctl: 5 }),
    );
    const collectors = ['packages', 'sysctl', 'cron', 'files'].map((c) => ({
      collector: c,
      ok: true,
      durationMs: 850,
      items: manifest.sections[c].items.length,
    }));

    // -- hosts and report bodies (the constant part serialized once, the rest spliced in)
    const ids = Array.from({ length: opts.hosts }, (_, i) => md5(`bench-host-${i}`));
    const creds = new Array(opts.hosts);
    const seq = new Int32Array(opts.hosts);
    const common = {
      schema: 'driftwarden/report/v1',
      imageId,
      manifestDigest: manifest.digests.overall,
      agentVersion: '0.1.0',
      collectors,
    };
    const tail = (kindName, digests, deviations) =>
      JSON.stringify({ ...common, kind: kindName, digests, deviations }).slice(1);
    const cleanHb = tail('heartbeat', manifest.digests.sections, []);
    const cleanScan = tail('scan', manifest.digests.sections, []);
    const driftHb = sets.map((s) => tail('heartbeat', s.digests, []));
    const driftScan = sets.map((s) => tail('scan', s.digests, s.devs));
    let nowIso = new Date().toISOString();
    const clockTimer = setInterval(() => (nowIso = new Date().toISOString()), 50);
    const report = (i, t) =>
      `{"reportId":"${randomUUID()}","hostId":"${ids[i]}","seq":${++seq[i]},"scannedAt":"${nowIso}",${t}`;
    const bodies = {
      cleanHb: (i) => report(i, cleanHb),
      cleanScan: (i) => report(i, cleanScan),
      driftHb: (i) => report(i, driftHb[i % sets.length]),
      driftScan: (i) => report(i, driftScan[i % sets.length]),
    };
    log(
      `${kind}: scan-50 body ${Buffer.byteLength(bodies.driftScan(0))} bytes, heartbeat ${Buffer.byteLength(bodies.cleanHb(0))} bytes`,
    );
    seq[0] = 0;

    /** Closed loop: `concurrency` workers, each owning the hosts i ≡ w (mod concurrency), cycling through them
     * (`once`: each host exactly once), so no host ever has two reports in flight. */
    async function closedLoop(
      name,
      { count, seconds, concurrency = opts.concurrency, once = false, path, token, body, check },
    ) {
      const lat = [];
      let ok = 0;
      let errors = 0;
      let firstError = null;
      let issued = 0;
      const mon = monitor(server.child.pid);
      const t0 = performance.now();
      const deadline = t0 + seconds * 1000;
      await Promise.all(
        Array.from({ length: concurrency }, async (_, w) => {
          const mine = [];
          for (let i = w; i < opts.hosts; i += concurrency) mine.push(i);
          for (let j = 0; once ? j < mine.length : issued < count && performance.now() < deadline; j++) {
            issued++;
            const i = mine[j % mine.length];
            const s = performance.now();
            try {
              const r = await call(pool, 'POST', path, token(i), body(i));
              lat.push(performance.now() - s);
              if (r.status >= 200 && r.status < 300 && (!check || check(r.text))) ok++;
              else {
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
      const res = mon.stop();
      if (firstError) log(`${kind} ${name}: ${errors} errors, first: ${firstError}`);
      serverAlive();
      const row = {
        store: kind,
        phase: name,
        requests: lat.length,
        ok,
        errors,
        seconds: wall,
        rate: ok / wall,
        ...stats(lat),
        ...res,
        mode: `closed, ${concurrency} in flight`,
      };
      rows.push(row);
      log(
        `${kind} ${name}: ${ok} ok in ${wall.toFixed(1)} s = ${row.rate.toFixed(0)}/s, p99 ${row.p99.toFixed(1)} ms, server CPU ${res.serverCpu.toFixed(0)} %, gen CPU ${res.genCpu.toFixed(0)} %`,
      );
      return row;
    }

    const hostToken = (i) => creds[i];
    const noMismatch = (text) => text.includes('"digestMismatch":[]');
    const accepted = (text) => text.includes('"status":"accepted"');

    // -- enrollment: one request per host, concurrently
    const enrollBody = (i) =>
      JSON.stringify({
        hostId: ids[i],
        hostname: `web-${i}`,
        imageId,
        group: `asg-${i % 4}`,
        agentVersion: '0.1.0',
        inventory: {
          hostId: ids[i],
          hostname: `web-${i}`,
          os: 'Debian GNU/Linux 12 (bookworm)',
          kernel: '6.1.0-18-amd64',
          addresses: [`10.0.${i >> 8}.${i & 255}`],
        },
      });
    await closedLoop('enroll', {
      once: true,
      count: opts.hosts,
      seconds: 300,
      path: '/api/v1/enroll',
      token: () => agent,
      body: enrollBody,
      check: (text) => {
        const r = JSON.parse(text);
        creds[ids.indexOf(r.hostId)] = r.credential;
        return true;
      },
    });
    for (let i = 0; i < opts.hosts; i++) if (!creds[i]) throw new Error(`enrollment failed for host ${i}`);

    // -- first report of every host: a clean scan (pending -> clean); also warms the scan route
    await closedLoop('scan-0 (first report)', {
      once: true,
      count: opts.hosts,
      seconds: 300,
      path: '/api/v1/reports',
      token: hostToken,
      body: bodies.cleanScan,
      check: noMismatch,
    });
    // warm-up of the heartbeat route, not recorded
    await closedLoop('warm-up', {
      count: Math.min(3000, opts.hbCount),
      seconds: 10,
      path: '/api/v1/reports',
      token: hostToken,
      body: bodies.cleanHb,
      check: accepted,
    });
    rows.pop();

    // -- 1. heartbeats
    await closedLoop('heartbeat', {
      count: opts.hbCount,
      seconds: opts.phaseSeconds,
      path: '/api/v1/reports',
      token: hostToken,
      body: bodies.cleanHb,
      check: (t) => accepted(t) && t.includes('"scanRequested":false'),
    });

    // -- 2. scans with 50 deviations
    await closedLoop('scan-50', {
      count: opts.scanCount,
      seconds: opts.phaseSeconds,
      path: '/api/v1/reports',
      token: hostToken,
      body: bodies.driftScan,
      check: (t) => accepted(t) && noMismatch(t),
    });

    // -- 3. open loop at a fixed rate
    {
      const total = Math.round(opts.rate * opts.rateSeconds);
      const lat = [];
      let ok = 0;
      let errors = 0;
      let firstError = null;
      let scans = 0;
      const free = Array.from({ length: opts.hosts }, (_, i) => i);
      let freeHead = 0;
      const waiting = [];
      let done = 0;
      let finish;
      const finished = new Promise((r) => (finish = r));
      const launch = (sched, isScan) => {
        if (freeHead >= free.length) {
          waiting.push([sched, isScan]);
          return;
        }
        const i = free[freeHead++];
        call(pool, 'POST', '/api/v1/reports', creds[i], isScan ? bodies.driftScan(i) : bodies.driftHb(i))
          .then(
            (r) => {
              lat.push(performance.now() - sched);
              if (r.status >= 200 && r.status < 300 && accepted(r.text)) ok++;
              else {
                errors++;
                firstError ??= `${r.status} ${r.text.slice(0, 300)}`;
              }
            },
            (err) => {
              lat.push(performance.now() - sched);
              errors++;
              firstError ??= String(err);
            },
          )
          .finally(() => {
            // the host goes to the back of the queue; compact the queue now and then
            if (freeHead > 4096) {
              free.splice(0, freeHead);
              freeHead = 0;
            }
            free.push(i);
            if (waiting.length) launch(...waiting.shift());
            if (++done === total) finish();
          });
      };
      const mon = monitor(server.child.pid);
      const start = performance.now();
      let acc = 0;
      await sendAtRate(start, opts.rate, total, (sched) => {
        acc += opts.scanShare;
        const isScan = acc >= 1;
        if (isScan) {
          acc -= 1;
          scans++;
        }
        launch(sched, isScan);
      });
      await Promise.race([finished, sleep(60_000)]);
      const wall = (performance.now() - start) / 1000;
      const res = mon.stop();
      if (firstError) log(`${kind} open-loop: ${errors} errors, first: ${firstError}`);
      serverAlive();
      const row = {
        store: kind,
        phase: `open loop ${opts.rate}/s (${Math.round(opts.scanShare * 100)} % scan-50)`,
        requests: lat.length,
        ok,
        errors,
        seconds: wall,
        rate: ok / wall,
        ...stats(lat),
        ...res,
        mode: `open, ${total} sent, ${scans} scans`,
      };
      rows.push(row);
      log(
        `${kind} open loop: ${ok}/${total} ok, achieved ${row.rate.toFixed(0)}/s, p50 ${row.p50.toFixed(1)} p95 ${row.p95.toFixed(1)} p99 ${row.p99.toFixed(1)} max ${row.max.toFixed(1)} ms`,
      );
    }

    // -- 4. host list pages
    const measureList = async (nHosts, allIds) => {
      const sorted = [...allIds].sort();
      const pages = [
        ['first page', '/api/v1/hosts?limit=100'],
        ['deep page', `/api/v1/hosts?limit=100&after=${sorted[Math.max(0, sorted.length - 150)]}`],
      ];
      for (const [label, path] of pages) {
        for (let w = 0; w < 20; w++) await call(pool, 'GET', path, admin);
        const lat = [];
        let bad = 0;
        const mon = monitor(server.child.pid);
        for (let r = 0; r < 300; r++) {
          const s = performance.now();
          const res = await call(pool, 'GET', path, admin);
          lat.push(performance.now() - s);
          if (res.status !== 200 || JSON.parse(res.text).hosts.length !== 100) bad++;
        }
        const m = mon.stop();
        const st = stats(lat);
        lists.push({ store: kind, hosts: nHosts, page: label, ...st, bad, serverRssMB: m.serverRssMB });
        log(
          `${kind} list ${nHosts} hosts ${label}: p50 ${st.p50.toFixed(2)} p99 ${st.p99.toFixed(2)} ms${bad ? `, ${bad} bad` : ''}`,
        );
      }
    };
    await measureList(opts.hosts, ids);

    // -- grow the fleet through the store module with the controller stopped, restart, measure again
    if (opts.bigHosts > opts.hosts) {
      await pool.close();
      await server.stop();
      server = null;
      const { openStore } = await dist('controller/store/index.js');
      const store = await openStore(storeUrl);
      const t0 = performance.now();
      const now = new Date().toISOString();
      const states = ['clean', 'clean', 'clean', 'clean', 'drifted', 'pending', 'tainted', 'silent'];
      const bigIds = [];
      const batch = 1000;
      const batches = [];
      for (let i = opts.hosts; i < opts.bigHosts; i += batch) batches.push(i);
      const insertBatch = (from) =>
        store.transaction(async (tx) => {
          for (let i = from; i < Math.min(from + batch, opts.bigHosts); i++) {
            const id = md5(`bench-host-${i}`);
            await tx.insertHost({
              id,
              hostname: `web-${i}`,
              imageId,
              group: `asg-${i % 4}`,
              state: states[i % states.length],
              stateSince: now,
              enrolledAt: now,
              lastSeenAt: now,
              lastReportAt: now,
              lastSeq: 1,
              deviationCount: 0,
              taintedAt: null,
              agentVersion: '0.1.0',
              manifestDigest: manifest.digests.overall,
              inventory: {
                hostId: id,
                hostname: `web-${i}`,
                os: 'Debian GNU/Linux 12 (bookworm)',
                kernel: '6.1.0-18-amd64',
                addresses: [`10.1.${(i >> 8) & 255}.${i & 255}`],
              },
              credentialHash: hexOf(`cred ${i}`),
            });
          }
        });
      // PostgreSQL takes several transactions at once; SQLite serializes them anyway.
      const lanes = kind === 'postgres' ? 4 : 1;
      let next = 0;
      await Promise.all(
        Array.from({ length: lanes }, async () => {
          while (next < batches.length) await insertBatch(batches[next++]);
        }),
      );
      await store.close();
      for (let i = opts.hosts; i < opts.bigHosts; i++) bigIds.push(md5(`bench-host-${i}`));
      log(
        `${kind}: inserted ${opts.bigHosts - opts.hosts} hosts through the store in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
      server = await startController(dir, configFile, '2');
      // the helpers above read `pool` when called
      pool = new Pool(server.url, {
        connections: 256,
        pipelining: 1,
        keepAliveTimeout: 60_000,
        keepAliveMaxTimeout: 600_000,
      });
      await measureList(opts.bigHosts, [...ids, ...bigIds]);
      await closedLoop(`heartbeat @ ${opts.bigHosts} hosts`, {
        count: opts.hbCount,
        seconds: Math.min(10, opts.phaseSeconds),
        path: '/api/v1/reports',
        token: hostToken,
        body: bodies.driftHb,
        check: accepted,
      });
    }
    clearInterval(clockTimer);
    await pool.close();
    return { rows, lists, dir };
  } finally {
    await cleanup();
  }
}

// ---------------------------------------------------------------- CPU profiles

/** Self time by function (and by file) from a .cpuprofile. */
function topFunctions(file, n = 15) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((nd) => [nd.id, nd]));
  const self = new Map();
  for (let i = 0; i < prof.samples.length; i++) {
    const nd = byId.get(prof.samples[i]);
    const dt = prof.timeDeltas[i] ?? 0;
    self.set(nd.id, (self.get(nd.id) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map();
  const mod = new Map();
  for (const [id, us] of self) {
    const cf = byId.get(id).callFrame;
    const where = cf.url
      ? cf.url
          .replace(/^file:\/\//, '')
          .replace(`${REPO}/`, '')
          .replace(/^.*node_modules\//, '')
      : '';
    const k = `${cf.functionName || '(anonymous)'} ${where ? `${where}:${cf.lineNumber + 1}` : ''}`.trim();
    fn.set(k, (fn.get(k) ?? 0) + us);
    const m = where
      ? where.startsWith('node:')
        ? where
        : where
            .split('/')
            .slice(0, where.startsWith('dist/') ? 3 : 1)
            .join('/')
      : `(${cf.functionName || 'native'})`;
    mod.set(m, (mod.get(m) ?? 0) + us);
  }
  const top = (map) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `${((us / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
  return `profile ${file} (${(total / 1e6).toFixed(1)} s sampled)\n-- self time by function\n${top(fn).join('\n')}\n-- self time by package / file\n${top(mod).join('\n')}\n`;
}

// ---------------------------------------------------------------- main

let activeCleanup = null;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    Promise.resolve(activeCleanup?.()).finally(() => process.exit(130));
  });
}

const cpuModel = cpus()[0]?.model ?? 'unknown';
const started = new Date();
log(`machine: ${cpus().length} cores, ${cpuModel}, node ${process.version}, load ${loadavg().map(f2).join(' ')}`);

const all = [];
for (const kind of opts.stores) {
  try {
    await runStore(kind);
  } catch (err) {
    log(`${kind}: run failed: ${err.stack ?? err}`);
    process.exitCode = 1;
  }
}

const lines = [];
lines.push(
  `Run ${started.toISOString()} on ${cpus().length} cores (${cpuModel}), Node ${process.version}; load average at start ${loadavg().map(f2).join(' ')} (now).`,
);
lines.push(
  `Options: ${opts.hosts} enrolled hosts, ${opts.concurrency} requests in flight (closed loop), ${opts.devSets} distinct deviation sets, open loop ${opts.rate}/s for ${opts.rateSeconds} s with ${Math.round(opts.scanShare * 100)} % scan-50.`,
);
lines.push('');
lines.push(
  '| store | phase | ok / sent | s | reports/s | p50 ms | p95 ms | p99 ms | max ms | server CPU % | server RSS MB | generator CPU % | machine busy % | load1 |',
);
lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const { rows } of all) {
  for (const r of rows) {
    lines.push(
      `| ${r.store} | ${r.phase} | ${r.ok} / ${r.requests} | ${f1(r.seconds)} | ${f0(r.rate)} | ${f1(r.p50)} | ${f1(r.p95)} | ${f1(r.p99)} | ${f1(r.max)} | ${f0(r.serverCpu)} | ${f0(r.serverRssMB)} | ${f0(r.genCpu)} | ${f0(r.machineBusy)} | ${f2(r.load1)} |`,
    );
  }
}
lines.push('');
lines.push('| store | registered hosts | GET /api/v1/hosts?limit=100 | p50 ms | p95 ms | p99 ms | max ms |');
lines.push('|---|---:|---|---:|---:|---:|---:|');
for (const { lists } of all)
  for (const l of lists)
    lines.push(
      `| ${l.store} | ${l.hosts} | ${l.page}${l.bad ? ` (${l.bad} bad)` : ''} | ${f2(l.p50)} | ${f2(l.p95)} | ${f2(l.p99)} | ${f2(l.max)} |`,
    );
writeResults(opts.out, lines.join('\n') + '\n', { started, cpuModel, node: process.version, opts, results: all }, log);

if (opts.cpuProf) {
  for (const { dir } of all) {
    const pdir = join(dir, 'prof');
    if (!existsSync(pdir)) continue;
    for (const f of readdirSync(pdir).filter((x) => x.endsWith('.cpuprofile')))
      process.stdout.write(`\n${topFunctions(join(pdir, f))}`);
  }
}
