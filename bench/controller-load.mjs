#!/usr/bin/env node
/**
 * Controller load benchmark: the built controller as a child process (`node bin/driftwarden.js controller
 * --config FILE`, as in production), driven by this one process with undici, on SQLite (temp file) and
 * PostgreSQL (a schema of its own, dropped at the end), over HTTPS with one connection per agent by default.
 *
 *   npm run bench:controller -- [--store sqlite,postgres] [--hosts 1000] [--big-hosts 100000]
 *       [--concurrency 32] [--hb-count 60000] [--scan-count 15000] [--phase-seconds 20]
 *       [--rate 1000] [--rate-seconds 15] [--scan-share 0.1] [--dev-sets HOSTS] [--manifest-files 130000]
 *       [--transport https-per-agent|http-pool] [--max-open 4096] [--cpu-prof]
 *       [--pg-url postgres://postgres@127.0.0.1:5432/test] [--out FILE]
 *
 * Per store:
 *   setup     temp config (HTTPS with a self-signed certificate unless --transport http-pool),
 *             `driftwarden token create` (admin, agent), a signed manifest of a real host's size built
 *             in-process and deterministically (--manifest-files files, default 130,000; 1,000 packages,
 *             1,000 sysctl, 20 cron) published over the API, --hosts hosts enrolled over the API
 *             concurrently, one clean scan each (hosts become clean)
 *   heartbeat closed loop, --concurrency requests in flight (one per host at a time: seq must grow),
 *             digests equal to the manifest's, no deviations; bounded by --hb-count and --phase-seconds
 *   scan-50   closed loop, scans of 50 deviations each (30 files, 15 packages, 5 sysctl, modified);
 *             --dev-sets distinct sets (default: one per host), digests that add up; the controller's
 *             digest-memo hits and misses (from its /metrics) are reported for the phase
 *   open-loop --rate reports/s paced by the clock (not by replies) for --rate-seconds: heartbeats and a
 *             --scan-share of 50-deviation scans; latency is measured from the scheduled send time, so a
 *             stalled server cannot hide its queue (no coordinated omission)
 *   list      GET /api/v1/hosts?limit=100, first page and a deep page (after=), with --hosts hosts
 *   fleet     with --big-hosts above --hosts: the other hosts enroll over the API too (each its own
 *             host id, credential and connection), send a first clean scan, and then every one of the
 *             --big-hosts distinct hosts sends one heartbeat (a full round, not a time-boxed sample);
 *             the list pages are measured again at that size
 * Transports: `https-per-agent` (default) gives each simulated host its own connection, at most --max-open
 * open at once (least recently used closed, so at fleet size most requests pay a new TLS handshake, as
 * agents reconnecting would); `http-pool` is one plain-HTTP keep-alive pool of 256 shared by all hosts
 * (the old bench's traffic: cheaper than any real fleet).
 * Every phase reports the controller's CPU (its process tree, utime+stime from /proc over wall time;
 * 100 % = one core) and CPU ms per request, max RSS, this generator's CPU, the database's CPU (PostgreSQL:
 * the backends serving this controller, by application_name, and every postgres process on the machine;
 * SQLite runs inside the controller), whole-machine busy % and the load average, with the commit measured.
 * It prints the targets of issue 14 and says met or missed. A phase that answered nothing, fewer hosts
 * than asked, or a deviation set that does not add up stops the bench (exit 2) instead of reporting.
 * --cpu-prof runs the controller under `node --cpu-prof` (profiles in the work dir, top functions printed).
 * Needs a built dist/ (npm run build). Work files go to bench/work/controller-load/ (gitignored).
 */
import { createHash, createPrivateKey, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildManifest,
  commitOf,
  deviationSets,
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
  REPO,
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
    devSets: null,
    manifestFiles: REAL_SIZE.files,
    transport: 'https-per-agent',
    maxOpen: 4096,
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
    '--manifest-files': 'manifestFiles',
    '--max-open': 'maxOpen',
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
    else if (a === '--transport') o.transport = val();
    else if (a === '--cpu-prof') o.cpuProf = true;
    else if (a === '--pg-url') o.pgUrl = val();
    else if (a === '--out') o.out = resolve(val());
    else if (a === '-h' || a === '--help') {
      process.stdout.write(helpOf(fileURLToPath(import.meta.url)));
      process.exit(0);
    } else throw new Error(`unknown option ${a} (see --help)`);
  }
  for (const s of o.stores) if (s !== 'sqlite' && s !== 'postgres') throw new Error(`--store: unknown store ${s}`);
  if (!['https-per-agent', 'http-pool'].includes(o.transport))
    throw new Error('--transport: https-per-agent or http-pool');
  if (o.hosts < o.concurrency)
    throw new Error('--hosts must be at least --concurrency (one request in flight per host)');
  o.devSets ??= o.hosts;
  if (!(o.devSets >= 1)) throw new Error('--dev-sets must be at least 1');
  if (o.manifestFiles < 1000) throw new Error('--manifest-files: at least 1000');
  return o;
}

/** Issue 14's targets on this 2-core machine, load generator included. */
const TARGETS = {
  sqlite: { hb: 5000, scan: 1000, p99: 50, hbCpuMs: 0.1, scanCpuMs: 0.5 },
  postgres: { hb: 3000, scan: 600, p99: 50, hbCpuMs: null, scanCpuMs: null },
};

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
  const https = opts.transport === 'https-per-agent';
  const { dir, keys, configFile, dropStore, caPem, appName } = await prepareStore(WORK, kind, {
    pgUrl: opts.pgUrl,
    schemaPrefix: 'dwbench',
    log,
    tls: https,
  });
  const db = kind === 'postgres' ? { pgUrl: opts.pgUrl, appName } : null;

  const rows = [];
  const lists = [];
  const entry = { kind, rows, lists, dir, commit: commitOf(), uptimeBefore: uptime(), uptimeAfter: null };
  all.push(entry); // partial results survive a failed run
  let server = null;
  let net = null;
  const cleanup = (activeCleanup = async () => {
    activeCleanup = null;
    await net?.destroy().catch(() => {});
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
    const connect = () => transport(server.url, { mode: https ? 'per-agent' : 'pool', caPem, maxOpen: opts.maxOpen });
    net = connect();

    // -- manifest
    const t0 = performance.now();
    const manifest = buildManifest(createPrivateKey(keys.privateKeyPem), 'ami-bench-controller-load', {
      source: 'bench/controller-load.mjs',
      declaredSysctl: true,
      size: { ...REAL_SIZE, files: opts.manifestFiles },
    });
    const manifestBody = JSON.stringify({ manifest });
    const pub = await net.call(-1, 'POST', '/api/v1/manifests', admin, manifestBody);
    if (pub.status !== 201) throw new Error(`manifest publish: ${pub.status} ${pub.text.slice(0, 300)}`);
    const got = await net.call(-1, 'GET', `/api/v1/manifests/${manifest.image.id}`, admin);
    mustMeasure(got.status === 200, `the published manifest cannot be read back (${got.status})`);
    const stored = JSON.parse(got.text);
    const storedFiles = (stored.manifest ?? stored).sections?.files?.items?.length;
    mustMeasure(
      storedFiles === opts.manifestFiles,
      `the controller holds ${storedFiles} files of the manifest, ${opts.manifestFiles} were asked`,
    );
    const imageId = manifest.image.id;
    const sets = deviationSets(manifest, opts.devSets, { files: 30, packages: 15, sysctl: 5 });
    mustMeasure(
      sets.length === opts.devSets && sets.every((x) => x.devs.length === 50),
      'a deviation set with fewer than 50 deviations',
    );
    log(
      `${kind}: manifest of ${opts.manifestFiles} files (${(Buffer.byteLength(manifestBody) / 1e6).toFixed(1)} MB) published, ${opts.devSets} deviation sets in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const collectors = ['packages', 'sysctl', 'cron', 'files'].map((c) => ({
      collector: c,
      ok: true,
      durationMs: 850,
      items: manifest.sections[c].items.length,
    }));

    // -- hosts and report bodies (the constant part serialized once, the rest spliced in)
    const fleet = Math.max(opts.hosts, opts.bigHosts);
    const ids = Array.from({ length: fleet }, (_, i) => md5(`bench-host-${i}`));
    const creds = new Array(fleet);
    const seq = new Int32Array(fleet);
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
    // bodies of the drifted reports are built on first use: one set per host (by default)
    const driftHb = new Array(sets.length);
    const driftScan = new Array(sets.length);
    let nowIso = new Date().toISOString();
    const clockTimer = setInterval(() => (nowIso = new Date().toISOString()), 50);
    const report = (i, t) =>
      `{"reportId":"${randomUUID()}","hostId":"${ids[i]}","seq":${++seq[i]},"scannedAt":"${nowIso}",${t}`;
    const setOf = (i) => i % sets.length;
    /** The deviation set host i last sent in a scan (-1: none), so its heartbeats carry that scan's digests. */
    const lastSet = new Int32Array(fleet).fill(-1);
    const bodies = {
      cleanHb: (i) => report(i, cleanHb),
      cleanScan: (i) => report(i, cleanScan),
      hb: (i) => {
        const k = lastSet[i];
        if (k < 0) return report(i, cleanHb);
        driftHb[k] ??= tail('heartbeat', sets[k].digests, []);
        return report(i, driftHb[k]);
      },
      driftScan: (i) => {
        const k = setOf(i);
        driftScan[k] ??= tail('scan', sets[k].digests, sets[k].devs);
        lastSet[i] = k;
        return report(i, driftScan[k]);
      },
    };
    log(
      `${kind}: scan-50 body ${Buffer.byteLength(bodies.driftScan(0))} bytes, heartbeat ${Buffer.byteLength(bodies.cleanHb(0))} bytes, transport ${opts.transport}`,
    );
    seq[0] = 0;
    lastSet[0] = -1;

    /** Memo counters around a phase (-1: none read). */
    const memo = () => memoCounters(net, admin);

    const finishRow = async (name, lat, ok, errors, wall, mon, memo0, extra, afterStop = async () => ({})) => {
      const res = await mon.stop();
      const more = await afterStop();
      const memo1 = await memo();
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
        ...perRequest(res, ok),
        memoHits: memo1.hits - memo0.hits,
        memoMisses: memo1.misses - memo0.misses,
        connects: net.connects,
        ...extra,
        ...more,
      };
      rows.push(row);
      log(
        `${kind} ${name}: ${ok} ok${errors ? `, ${errors} errors` : ''} in ${wall.toFixed(1)} s = ${row.rate.toFixed(0)}/s, p99 ${row.p99.toFixed(1)} ms, server ${res.serverCpu.toFixed(0)} % (${row.serverMsPerReq.toFixed(2)} ms/req), gen ${res.genCpu.toFixed(0)} %, db ${f0(res.dbCpu)} %, memo ${f0(row.memoHits)} hit / ${f0(row.memoMisses)} miss`,
      );
      return row;
    };

    /**
     * Closed loop: `concurrency` workers, each owning the hosts i ≡ w (mod concurrency) of [from, to),
     * cycling through them (`once`: each host exactly once), so no host ever has two reports in flight.
     */
    async function closedLoop(
      name,
      { count, seconds, from = 0, to = opts.hosts, once = false, path, token, body, check, record = true },
    ) {
      const lat = [];
      let ok = 0;
      let errors = 0;
      let firstError = null;
      let issued = 0;
      const connects0 = net.connects;
      const memo0 = await memo();
      const mon = await monitor(server.child.pid, db);
      const t0 = performance.now();
      const deadline = t0 + seconds * 1000;
      const concurrency = Math.min(opts.concurrency, to - from);
      await Promise.all(
        Array.from({ length: concurrency }, async (_, w) => {
          const n = Math.ceil((to - from - w) / concurrency);
          for (let j = 0; once ? j < n : issued < count && performance.now() < deadline; j++) {
            issued++;
            const i = from + w + (j % n) * concurrency;
            const s = performance.now();
            try {
              const r = await net.call(i, 'POST', path, token(i), body(i));
              lat.push(performance.now() - s);
              if (r.status >= 200 && r.status < 300 && (!check || check(r.text, i))) ok++;
              else {
                errors++;
                firstError ??= `${r.status} ${r.text.slice(0, 300)}`;
              }
            } catch (err) {
              lat.push(performance.now() - s);
              errors++;
              firstError ??= String(err);
            }
          }
        }),
      );
      const wall = (performance.now() - t0) / 1000;
      if (firstError) log(`${kind} ${name}: ${errors} errors, first: ${firstError}`);
      mustMeasure(ok > 0, `${kind} ${name}: no request was answered (first error: ${firstError})`);
      if (once)
        mustMeasure(
          ok === to - from,
          `${kind} ${name}: ${ok} of ${to - from} hosts answered (first error: ${firstError})`,
        );
      const row = await finishRow(name, lat, ok, errors, wall, mon, memo0, {
        mode: `closed, ${concurrency} in flight, hosts ${from}–${to - 1}`,
        hostsDriven: once ? ok : Math.min(issued, to - from),
        newConnections: net.connects - connects0,
      });
      if (!record) rows.pop();
      return row;
    }

    /** Seconds until the controller answers /healthz within a second again, after dropping every connection. */
    async function drain() {
      const t0 = performance.now();
      await net.destroy();
      net = connect();
      for (;;) {
        const s = performance.now();
        const r = await net.call(-1, 'GET', '/healthz').catch(() => null);
        if (r?.status === 200 && performance.now() - s < 1000) break;
        if (performance.now() - t0 > 900_000)
          throw new Error('the controller did not recover within 15 min of the open loop');
        serverAlive();
        await sleep(1000);
      }
      const sec = (performance.now() - t0) / 1000;
      log(`${kind}: the controller answered promptly again ${sec.toFixed(0)} s after the open loop`);
      return sec;
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
          addresses: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`],
        },
      });
    const enroll = (name, from, to) =>
      closedLoop(name, {
        once: true,
        from,
        to,
        path: '/api/v1/enroll',
        token: () => agent,
        body: enrollBody,
        check: (text, i) => {
          creds[i] = JSON.parse(text).credential;
          return !!creds[i];
        },
      });
    const firstScan = (name, from, to) =>
      closedLoop(name, {
        once: true,
        from,
        to,
        path: '/api/v1/reports',
        token: hostToken,
        body: bodies.cleanScan,
        check: noMismatch,
      });
    await enroll('enroll', 0, opts.hosts);
    // -- first report of every host: a clean scan (pending -> clean); also warms the scan route
    await firstScan('scan-0 (first report)', 0, opts.hosts);
    // warm-up of the heartbeat route, not recorded
    await closedLoop('warm-up', {
      count: Math.min(3000, opts.hbCount),
      seconds: 10,
      path: '/api/v1/reports',
      token: hostToken,
      body: bodies.cleanHb,
      check: accepted,
      record: false,
    });

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
      let over = false;
      const launch = (sched, isScan) => {
        if (over) return;
        if (freeHead >= free.length) {
          waiting.push([sched, isScan]);
          return;
        }
        const i = free[freeHead++];
        net
          .call(i, 'POST', '/api/v1/reports', creds[i], isScan ? bodies.driftScan(i) : bodies.hb(i))
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
            if (waiting.length && !over) launch(...waiting.shift());
            if (++done === total) finish();
          });
      };
      const memo0 = await memo();
      const connects0 = net.connects;
      const mon = await monitor(server.child.pid, db);
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
      // the phase is over: send nothing more that waited for a free host
      over = true;
      const neverSent = waiting.length;
      waiting.length = 0;
      if (firstError) log(`${kind} open-loop: ${errors} errors, first: ${firstError}`);
      mustMeasure(ok > 0, `${kind} open loop: nothing answered (first error: ${firstError})`);
      const row = await finishRow(
        `open loop ${opts.rate}/s (${Math.round(opts.scanShare * 100)} % scan-50)`,
        lat,
        ok,
        errors,
        wall,
        mon,
        memo0,
        {
          mode: `open, ${total} offered, ${scans} scans${done < total ? `, ${total - done} unanswered 60 s after the last send (${neverSent} of them never sent: no host was free)` : ''}`,
          offered: total,
          unanswered: total - done,
          hostsDriven: Math.min(opts.hosts, total),
          newConnections: net.connects - connects0,
        },
        // An overloaded controller keeps working through what it accepted: cut the generator's
        // connections and wait until it answers /healthz promptly again, so the next phase starts clean.
        async () => (done < total ? { drainSeconds: await drain() } : {}),
      );
      row.openLoop = true;
    }

    // -- 4. host list pages
    const measureList = async (nHosts, allIds) => {
      const sorted = [...allIds].sort();
      const deep = Math.max(0, sorted.length - 150);
      const pages = [
        ['first page', '/api/v1/hosts?limit=100', Math.min(100, sorted.length)],
        ['deep page', `/api/v1/hosts?limit=100&after=${sorted[deep]}`, Math.min(100, sorted.length - deep - 1)],
      ];
      for (const [label, path, want] of pages) {
        for (let w = 0; w < 20; w++) await net.call(-1, 'GET', path, admin);
        const lat = [];
        let bad = 0;
        const mon = await monitor(server.child.pid, db);
        for (let r = 0; r < 300; r++) {
          const s = performance.now();
          const res = await net.call(-1, 'GET', path, admin);
          lat.push(performance.now() - s);
          if (res.status !== 200 || JSON.parse(res.text).hosts.length !== want) bad++;
        }
        const m = await mon.stop();
        mustMeasure(bad < 300, `${kind} list ${label}: no page of the hosts asked came back`);
        const st = stats(lat);
        lists.push({ store: kind, hosts: nHosts, page: label, ...st, bad, serverRssMB: m.serverRssMB });
        log(
          `${kind} list ${nHosts} hosts ${label}: p50 ${st.p50.toFixed(2)} p99 ${st.p99.toFixed(2)} ms${bad ? `, ${bad} bad` : ''}`,
        );
      }
    };
    await measureList(opts.hosts, ids.slice(0, opts.hosts));

    // -- 5. the fleet: every further host enrolls and scans over the API, then all of them heartbeat once
    if (opts.bigHosts > opts.hosts) {
      await enroll(`enroll hosts ${opts.hosts}–${opts.bigHosts - 1}`, opts.hosts, opts.bigHosts);
      await firstScan(`first scan of hosts ${opts.hosts}–${opts.bigHosts - 1}`, opts.hosts, opts.bigHosts);
      await closedLoop(`heartbeat round of all ${opts.bigHosts} hosts`, {
        once: true,
        from: 0,
        to: opts.bigHosts,
        path: '/api/v1/reports',
        token: hostToken,
        body: bodies.hb,
        check: accepted,
      });
      await measureList(opts.bigHosts, ids);
    }
    clearInterval(clockTimer);
    entry.uptimeAfter = uptime();
    return entry;
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
log(`machine: ${cpus().length} cores, ${cpuModel}, node ${process.version}, ${uptime()}`);

const all = [];
const failed = [];
let refused = null;
for (const kind of opts.stores) {
  try {
    await runStore(kind);
  } catch (err) {
    if (err instanceof NotMeasured) {
      refused = err.message;
      log(`${kind}: ${err.message}`);
      all.pop();
      break;
    }
    log(`${kind}: run failed: ${err.stack ?? err}`);
    failed.push(`${kind}: ${String(err.message ?? err).split('\n')[0]}`);
    process.exitCode = 1;
  }
}
if (refused) {
  // nothing half-measured is written: the figures of a run that did not do what was asked mislead
  process.stderr.write(`controller-load: ${refused}\n`);
  process.exit(2);
}

/** Issue 14's targets against one store's rows: [target, wanted, measured, verdict]. */
function targetRows(kind, rows) {
  const t = TARGETS[kind];
  const hb = rows.find((r) => r.phase === 'heartbeat');
  const scan = rows.find((r) => r.phase === 'scan-50');
  const open = rows.find((r) => r.openLoop);
  const errors = rows.reduce((n, r) => n + r.errors, 0) + (open?.unanswered ?? 0);
  const out = [];
  const add = (what, wanted, value, unit, ok) =>
    out.push(`| ${kind} | ${what} | ${wanted} | ${value === null ? '–' : `${value}${unit}`} | ${verdict(ok)} |`);
  if (hb) add('heartbeats/s (closed loop)', `≥ ${t.hb.toLocaleString('en')}`, f0(hb.rate), '', hb.rate >= t.hb);
  if (scan)
    add(
      'drift scans/s (50 deviations, closed loop)',
      `≥ ${t.scan.toLocaleString('en')}`,
      f0(scan.rate),
      '',
      scan.rate >= t.scan,
    );
  if (open)
    add(
      `p99 at an offered ${opts.rate}/s (${Math.round(opts.scanShare * 100)} % scans)`,
      `≤ ${t.p99} ms`,
      f1(open.p99),
      ' ms',
      opts.rate >= 1000 && opts.scanShare >= 0.1 && open.unanswered === 0
        ? open.p99 <= t.p99
        : open.unanswered
          ? false
          : null,
    );
  add('errors (every phase)', '0', String(errors), '', errors === 0);
  if (t.hbCpuMs !== null && hb)
    add(
      'controller CPU per heartbeat',
      `≤ ${t.hbCpuMs} ms`,
      f2(hb.serverMsPerReq),
      ' ms',
      hb.serverMsPerReq <= t.hbCpuMs,
    );
  if (t.scanCpuMs !== null && scan)
    add(
      'controller CPU per drift scan',
      `≤ ${t.scanCpuMs} ms`,
      f2(scan.serverMsPerReq),
      ' ms',
      scan.serverMsPerReq <= t.scanCpuMs,
    );
  return out;
}

const lines = [];
if (failed.length)
  lines.push(
    `**INCOMPLETE, not a result: ${failed.join('; ')}.** The rows below are what was measured before the failure; no target is judged.`,
    '',
  );
lines.push(
  `Run ${started.toISOString()} on ${cpus().length} cores (${cpuModel}), Node ${process.version}, commit ${all[0]?.commit ?? commitOf()}.`,
);
for (const e of all)
  lines.push(`${e.kind}: \`uptime\` before: ${e.uptimeBefore}; after: ${e.uptimeAfter ?? '(run failed)'}.`);
lines.push(
  `Options: ${opts.hosts} hosts for the phases, ${Math.max(opts.hosts, opts.bigHosts)} enrolled in all, ${opts.concurrency} requests in flight (closed loop), manifest of ${opts.manifestFiles} files, ${opts.devSets} distinct deviation sets, transport ${opts.transport}${opts.transport === 'https-per-agent' ? ` (at most ${opts.maxOpen} connections open)` : ''}, open loop ${opts.rate}/s for ${opts.rateSeconds} s with ${Math.round(opts.scanShare * 100)} % scan-50.`,
);
lines.push(
  'CPU columns: % of one core over the phase; ms = CPU milliseconds per answered request. Controller = its process tree; DB = the PostgreSQL backends serving it (SQLite: inside the controller); all-PG = every postgres process on the machine (other users included).',
);
lines.push('');
lines.push(
  '| store | phase | ok / sent | s | reports/s | p50 ms | p95 ms | p99 ms | max ms | controller CPU % | controller ms/req | DB CPU % | DB ms/req | all-PG CPU % | generator CPU % | generator ms/req | memo hit / miss | new conns | controller RSS MB | machine busy % | load1 |',
);
lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const { rows } of all) {
  for (const r of rows) {
    lines.push(
      `| ${r.store} | ${r.phase} | ${r.ok} / ${r.requests}${r.unanswered ? ` (+${r.unanswered} unanswered${r.drainSeconds ? `; busy ${f0(r.drainSeconds)} s after` : ''})` : ''} | ${f1(r.seconds)} | ${f0(r.rate)} | ${f1(r.p50)} | ${f1(r.p95)} | ${f1(r.p99)} | ${f1(r.max)} | ${f0(r.serverCpu)} | ${f2(r.serverMsPerReq)} | ${f0(r.dbCpu)} | ${f2(r.dbMsPerReq)} | ${f0(r.pgAllCpu)} | ${f0(r.genCpu)} | ${f2(r.genMsPerReq)} | ${f0(r.memoHits)} / ${f0(r.memoMisses)} | ${f0(r.newConnections)} | ${f0(r.serverRssMB)} | ${f0(r.machineBusy)} | ${f2(r.load1)} |`,
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
lines.push('');
lines.push('Targets (issue 14; this 2-core machine, load generator on it):');
lines.push('');
lines.push('| store | target | wanted | measured | |');
lines.push('|---|---|---|---:|---|');
for (const { kind, rows } of all)
  if (!failed.some((f) => f.startsWith(`${kind}:`))) lines.push(...targetRows(kind, rows));
writeResults(opts.out, lines.join('\n') + '\n', { started, cpuModel, node: process.version, opts, results: all }, log);

if (opts.cpuProf) {
  for (const { dir } of all) {
    const pdir = join(dir, 'prof');
    if (!existsSync(pdir)) continue;
    for (const f of readdirSync(pdir).filter((x) => x.endsWith('.cpuprofile')))
      process.stdout.write(`\n${topFunctions(join(pdir, f))}`);
  }
}
// open keep-alive handles (a wedged controller's sockets) must not keep the bench alive
process.exit(process.exitCode ?? 0);
