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
import { spawn, spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Pool } from 'undici';
import pg from 'pg';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');
const WORK = join(HERE, 'work', 'controller-load');
const CLI = join(REPO, 'bin', 'driftwarden.js');
const dist = (p) => import(pathToFileURL(join(REPO, 'dist', p)).href);

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
  const num = { '--hosts': 'hosts', '--big-hosts': 'bigHosts', '--concurrency': 'concurrency', '--hb-count': 'hbCount', '--scan-count': 'scanCount', '--phase-seconds': 'phaseSeconds', '--rate': 'rate', '--rate-seconds': 'rateSeconds', '--scan-share': 'scanShare', '--dev-sets': 'devSets' };
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
  if (o.hosts < o.concurrency) throw new Error('--hosts must be at least --concurrency (one request in flight per host)');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const log = (s) => process.stderr.write(`[bench] ${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const md5 = (s) => createHash('md5').update(s).digest('hex');
const hexOf = (s) => createHash('sha256').update(s).digest('hex');

const { sealManifest } = await dist('shared/manifest.js');
const { generateKeyPair } = await dist('shared/sign.js');
const { applyDeviations } = await dist('shared/diff.js');
const { digestOf } = await dist('shared/canonical.js');
const { defaultRules } = await dist('shared/schema/rules.js');

// ---------------------------------------------------------------- manifest and deviation sets

function buildManifest(privateKey) {
  const files = [];
  const dirs = ['/etc', '/etc/ssh', '/etc/systemd/system', '/opt/app/bin', '/opt/app/lib', '/usr/bin', '/usr/lib/x86_64-linux-gnu', '/usr/share/doc'];
  for (let i = 0; i < 2000; i++) {
    const d = dirs[i % dirs.length];
    files.push({ key: `${d}/f${String(i).padStart(5, '0')}`, type: 'file', mode: d.endsWith('bin') ? '0755' : '0644', uid: 0, gid: 0, size: 1000 + ((i * 7919) % 90_000), sha256: hexOf(`file ${i}`) });
  }
  const packages = [];
  for (let i = 0; i < 500; i++) {
    const name = `pkg-${String(i).padStart(4, '0')}`;
    packages.push({ key: `${name}:amd64`, manager: 'dpkg', name, arch: 'amd64', version: `1.${i % 17}.${i % 5}-1`, state: 'installed' });
  }
  const sysctl = [];
  for (let i = 0; i < 1000; i++) {
    const declared = i % 10 === 0;
    sysctl.push({ key: `net.ipv4.param_${String(i).padStart(4, '0')}`, runtime: String(i % 3), declared: declared ? String(i % 3) : null, declaredIn: declared ? '/etc/sysctl.d/99-bench.conf' : null });
  }
  const cron = [];
  for (let i = 0; i < 20; i++) cron.push({ key: `/etc/cron.d/job${i}#0`, kind: 'entry', file: `/etc/cron.d/job${i}`, schedule: `${i} * * * *`, user: 'root', command: `/usr/bin/job${i}` });
  const byKey = (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  return sealManifest(
    {
      schema: 'driftwarden/manifest/v1',
      image: { id: 'ami-bench-controller-load', name: 'bench', version: '1', source: 'bench/controller-load.mjs' },
      os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
      createdAt: new Date().toISOString(),
      builder: { agentVersion: '0.1.0', hostname: 'bake' },
      rules: defaultRules(),
      sections: { packages: { items: packages.sort(byKey) }, sysctl: { items: sysctl.sort(byKey) }, cron: { items: cron.sort(byKey) }, files: { items: files.sort(byKey) } },
    },
    privateKey,
  );
}

const bodyOf = (item) => {
  const { key: _k, ...rest } = item;
  return rest;
};

/** Set s: 30 files (content changed), 15 packages (upgraded), 5 sysctl (runtime changed); digests that add up. */
function deviationSet(manifest, s) {
  const pick = (items, n, stride) => Array.from({ length: n }, (_, j) => items[(s * 101 + j * stride) % items.length]);
  const devs = [];
  for (const f of pick(manifest.sections.files.items, 30, 61)) {
    const actual = { ...bodyOf(f), size: f.size + 17, sha256: hexOf(`${f.key} drifted ${s}`) };
    devs.push({ collector: 'files', key: f.key, change: 'modified', expected: bodyOf(f), actual, fields: ['sha256', 'size'], severity: 'high' });
  }
  for (const p of pick(manifest.sections.packages.items, 15, 29)) {
    devs.push({ collector: 'packages', key: p.key, change: 'modified', expected: bodyOf(p), actual: { ...bodyOf(p), version: `${p.version}+hotfix${s}` }, fields: ['version'], severity: 'high' });
  }
  for (const k of pick(manifest.sections.sysctl.items, 5, 197)) {
    devs.push({ collector: 'sysctl', key: k.key, change: 'modified', expected: bodyOf(k), actual: { ...bodyOf(k), runtime: `${k.runtime}9` }, fields: ['runtime'], severity: 'medium' });
  }
  const digests = {};
  for (const [name, section] of Object.entries(manifest.sections)) {
    const mine = devs.filter((d) => d.collector === name);
    digests[name] = mine.length ? digestOf(applyDeviations(name, section.items, mine)) : manifest.digests.sections[name];
  }
  return { devs, digests };
}

// ---------------------------------------------------------------- process and machine sampling

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function procTicks(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime (fields 14 and 15)
  } catch {
    return NaN;
  }
}
function procRssMB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}
function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  return { total: f.reduce((a, b) => a + b, 0), idle };
}

/** Starts sampling a server process; stop() returns the phase's resource figures. */
function monitor(pid) {
  const t0 = performance.now();
  const ticks0 = procTicks(pid);
  const mach0 = machineTicks();
  const gen0 = process.cpuUsage();
  const load1 = loadavg()[0];
  let rssMax = procRssMB(pid);
  const timer = setInterval(() => {
    const r = procRssMB(pid);
    if (r > rssMax) rssMax = r;
  }, 200);
  return {
    stop() {
      clearInterval(timer);
      const wall = (performance.now() - t0) / 1000;
      const r = procRssMB(pid);
      if (r > rssMax) rssMax = r;
      const mach1 = machineTicks();
      const gen = process.cpuUsage(gen0);
      const dt = mach1.total - mach0.total;
      return {
        serverCpu: ((procTicks(pid) - ticks0) / CLK_TCK / wall) * 100,
        serverRssMB: rssMax,
        genCpu: ((gen.user + gen.system) / 1e6 / wall) * 100,
        machineBusy: dt > 0 ? (1 - (mach1.idle - mach0.idle) / dt) * 100 : NaN,
        load1,
      };
    },
  };
}

// ---------------------------------------------------------------- latency statistics

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
function stats(lat) {
  const s = Float64Array.from(lat).sort();
  return { p50: pct(s, 50), p95: pct(s, 95), p99: pct(s, 99), max: s.length ? s[s.length - 1] : NaN };
}

// ---------------------------------------------------------------- the controller child

function tokenCreate(configFile, role) {
  const r = spawnSync(process.execPath, [CLI, 'token', 'create', '--config', configFile, '--role', role, '--name', `bench-${role}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`token create --role ${role} failed: ${r.stderr}`);
  return r.stdout.trim();
}

async function startServer(dir, configFile, tag) {
  const args = [];
  if (opts.cpuProf) args.push('--cpu-prof', '--cpu-prof-dir', join(dir, 'prof'), '--cpu-prof-name', `controller-${tag}.cpuprofile`);
  args.push(CLI, 'controller', '--config', configFile);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: process.env.DRIFTWARDEN_LOG_LEVEL ?? 'info' } });
  const logFile = createWriteStream(join(dir, `controller-${tag}.log`));
  child.stderr.pipe(logFile, { end: false });
  const url = await new Promise((resolveUrl, reject) => {
    let buf = '';
    let found = false;
    const onData = (chunk) => {
      logFile.write(chunk);
      if (found) return;
      buf += chunk;
      for (const line of buf.split('\n')) {
        if (!line.includes('controller listening')) continue;
        try {
          found = true;
          resolveUrl(JSON.parse(line).url);
        } catch (err) {
          reject(err);
        }
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`controller exited with ${code} before listening; see ${join(dir, `controller-${tag}.log`)}`)));
    setTimeout(() => reject(new Error('controller did not start within 60 s')), 60_000).unref();
  });
  log(`controller ${tag} pid ${child.pid} listening at ${url}`);
  return {
    child,
    url,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      logFile.end();
    },
  };
}

// ---------------------------------------------------------------- HTTP

async function call(pool, method, path, token, body) {
  const r = await pool.request({ method, path, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, body });
  const text = await r.body.text();
  return { status: r.statusCode, text };
}

// ---------------------------------------------------------------- runs for one store

async function runStore(kind) {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = join(WORK, `${kind}-${stamp}`);
  mkdirSync(dir, { recursive: true });
  const keys = generateKeyPair();
  writeFileSync(join(dir, 'bench.pub.pem'), keys.publicKeyPem);
  let storeUrl;
  let pgSchema = null;
  if (kind === 'sqlite') storeUrl = `sqlite:${join(dir, 'controller.db')}`;
  else {
    pgSchema = `dwbench_${process.pid}_${randomBytes(3).toString('hex')}`;
    const c = new pg.Client({ connectionString: opts.pgUrl });
    await c.connect();
    await c.query(`create schema ${pgSchema}`);
    await c.end();
    storeUrl = `${opts.pgUrl}${opts.pgUrl.includes('?') ? '&' : '?'}options=-csearch_path%3D${pgSchema}`;
  }
  const configFile = join(dir, 'controller.yaml');
  writeFileSync(configFile, [`listen: 127.0.0.1:0`, `store: "${storeUrl}"`, `trustedKeys: [${join(dir, 'bench.pub.pem')}]`, `silentAfter: 1h`, `taintSilentAfter: 48h`, ''].join('\n'));
  log(`${kind}: work dir ${dir}${pgSchema ? `, schema ${pgSchema}` : ''}`);

  const rows = [];
  const lists = [];
  all.push({ rows, lists, dir }); // partial results survive a failed run
  let server = null;
  const cleanup = (activeCleanup = async () => {
    activeCleanup = null;
    await server?.stop().catch(() => {});
    if (pgSchema) {
      const c = new pg.Client({ connectionString: opts.pgUrl });
      await c.connect();
      await c.query(`drop schema if exists ${pgSchema} cascade`);
      await c.end();
      log(`${kind}: dropped schema ${pgSchema}`);
    }
  });
  try {
    const admin = tokenCreate(configFile, 'admin');
    const agent = tokenCreate(configFile, 'agent');
    server = await startServer(dir, configFile, '1');
    const serverAlive = () => {
      const c = server?.child;
      if (c && (c.exitCode !== null || c.signalCode !== null)) throw new Error(`the controller (pid ${c.pid}) exited (${c.signalCode ?? c.exitCode}); see its log in ${dir}`);
    };
    let pool = new Pool(server.url, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });

    // -- manifest
    const manifest = buildManifest(createPrivateKey(keys.privateKeyPem));
    const pub = await call(pool, 'POST', '/api/v1/manifests', admin, JSON.stringify({ manifest }));
    if (pub.status !== 201) throw new Error(`manifest publish: ${pub.status} ${pub.text}`);
    const imageId = manifest.image.id;
    const sets = Array.from({ length: opts.devSets }, (_, s) => deviationSet(manifest, s));
    const collectors = ['packages', 'sysctl', 'cron', 'files'].map((c) => ({ collector: c, ok: true, durationMs: 850, items: manifest.sections[c].items.length }));

    // -- hosts and report bodies (the constant part serialized once, the rest spliced in)
    const ids = Array.from({ length: opts.hosts }, (_, i) => md5(`bench-host-${i}`));
    const creds = new Array(opts.hosts);
    const seq = new Int32Array(opts.hosts);
    const common = { schema: 'driftwarden/report/v1', imageId, manifestDigest: manifest.digests.overall, agentVersion: '0.1.0', collectors };
    const tail = (kindName, digests, deviations) => JSON.stringify({ ...common, kind: kindName, digests, deviations }).slice(1);
    const cleanHb = tail('heartbeat', manifest.digests.sections, []);
    const cleanScan = tail('scan', manifest.digests.sections, []);
    const driftHb = sets.map((s) => tail('heartbeat', s.digests, []));
    const driftScan = sets.map((s) => tail('scan', s.digests, s.devs));
    let nowIso = new Date().toISOString();
    const clockTimer = setInterval(() => (nowIso = new Date().toISOString()), 50);
    const report = (i, t) => `{"reportId":"${randomUUID()}","hostId":"${ids[i]}","seq":${++seq[i]},"scannedAt":"${nowIso}",${t}`;
    const bodies = {
      cleanHb: (i) => report(i, cleanHb),
      cleanScan: (i) => report(i, cleanScan),
      driftHb: (i) => report(i, driftHb[i % sets.length]),
      driftScan: (i) => report(i, driftScan[i % sets.length]),
    };
    log(`${kind}: scan-50 body ${Buffer.byteLength(bodies.driftScan(0))} bytes, heartbeat ${Buffer.byteLength(bodies.cleanHb(0))} bytes`);
    seq[0] = 0;

    /** Closed loop: `concurrency` workers, each owning the hosts i ≡ w (mod concurrency), cycling through them
     * (`once`: each host exactly once), so no host ever has two reports in flight. */
    async function closedLoop(name, { count, seconds, concurrency = opts.concurrency, once = false, path, token, body, check }) {
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
      const row = { store: kind, phase: name, requests: lat.length, ok, errors, seconds: wall, rate: ok / wall, ...stats(lat), ...res, mode: `closed, ${concurrency} in flight` };
      rows.push(row);
      log(`${kind} ${name}: ${ok} ok in ${wall.toFixed(1)} s = ${row.rate.toFixed(0)}/s, p99 ${row.p99.toFixed(1)} ms, server CPU ${res.serverCpu.toFixed(0)} %, gen CPU ${res.genCpu.toFixed(0)} %`);
      return row;
    }

    const hostToken = (i) => creds[i];
    const noMismatch = (text) => text.includes('"digestMismatch":[]');
    const accepted = (text) => text.includes('"status":"accepted"');

    // -- enrollment: one request per host, concurrently
    const enrollBody = (i) =>
      JSON.stringify({ hostId: ids[i], hostname: `web-${i}`, imageId, group: `asg-${i % 4}`, agentVersion: '0.1.0', inventory: { hostId: ids[i], hostname: `web-${i}`, os: 'Debian GNU/Linux 12 (bookworm)', kernel: '6.1.0-18-amd64', addresses: [`10.0.${i >> 8}.${i & 255}`] } });
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
    await closedLoop('scan-0 (first report)', { once: true, count: opts.hosts, seconds: 300, path: '/api/v1/reports', token: hostToken, body: bodies.cleanScan, check: noMismatch });
    // warm-up of the heartbeat route, not recorded
    await closedLoop('warm-up', { count: Math.min(3000, opts.hbCount), seconds: 10, path: '/api/v1/reports', token: hostToken, body: bodies.cleanHb, check: accepted });
    rows.pop();

    // -- 1. heartbeats
    await closedLoop('heartbeat', { count: opts.hbCount, seconds: opts.phaseSeconds, path: '/api/v1/reports', token: hostToken, body: bodies.cleanHb, check: (t) => accepted(t) && t.includes('"scanRequested":false') });

    // -- 2. scans with 50 deviations
    await closedLoop('scan-50', { count: opts.scanCount, seconds: opts.phaseSeconds, path: '/api/v1/reports', token: hostToken, body: bodies.driftScan, check: (t) => accepted(t) && noMismatch(t) });

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
      let k = 0;
      let acc = 0;
      await new Promise((resolveSend) => {
        const tick = () => {
          const due = Math.min(total, Math.floor(((performance.now() - start) * opts.rate) / 1000) + 1);
          while (k < due) {
            const sched = start + (k * 1000) / opts.rate;
            k++;
            acc += opts.scanShare;
            const isScan = acc >= 1;
            if (isScan) {
              acc -= 1;
              scans++;
            }
            launch(sched, isScan);
          }
          if (k < total) setTimeout(tick, 1);
          else resolveSend();
        };
        tick();
      });
      await Promise.race([finished, sleep(60_000)]);
      const wall = (performance.now() - start) / 1000;
      const res = mon.stop();
      if (firstError) log(`${kind} open-loop: ${errors} errors, first: ${firstError}`);
      serverAlive();
      const row = { store: kind, phase: `open loop ${opts.rate}/s (${Math.round(opts.scanShare * 100)} % scan-50)`, requests: lat.length, ok, errors, seconds: wall, rate: ok / wall, ...stats(lat), ...res, mode: `open, ${total} sent, ${scans} scans` };
      rows.push(row);
      log(`${kind} open loop: ${ok}/${total} ok, achieved ${row.rate.toFixed(0)}/s, p50 ${row.p50.toFixed(1)} p95 ${row.p95.toFixed(1)} p99 ${row.p99.toFixed(1)} max ${row.max.toFixed(1)} ms`);
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
        log(`${kind} list ${nHosts} hosts ${label}: p50 ${st.p50.toFixed(2)} p99 ${st.p99.toFixed(2)} ms${bad ? `, ${bad} bad` : ''}`);
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
              inventory: { hostId: id, hostname: `web-${i}`, os: 'Debian GNU/Linux 12 (bookworm)', kernel: '6.1.0-18-amd64', addresses: [`10.1.${(i >> 8) & 255}.${i & 255}`] },
              credentialHash: hexOf(`cred ${i}`),
            });
          }
        });
      // PostgreSQL takes several transactions at once; SQLite serializes them anyway.
      const lanes = kind === 'postgres' ? 4 : 1;
      let next = 0;
      await Promise.all(Array.from({ length: lanes }, async () => {
        while (next < batches.length) await insertBatch(batches[next++]);
      }));
      await store.close();
      for (let i = opts.hosts; i < opts.bigHosts; i++) bigIds.push(md5(`bench-host-${i}`));
      log(`${kind}: inserted ${opts.bigHosts - opts.hosts} hosts through the store in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      server = await startServer(dir, configFile, '2');
      // the helpers above read `pool` when called
      pool = new Pool(server.url, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });
      await measureList(opts.bigHosts, [...ids, ...bigIds]);
      await closedLoop(`heartbeat @ ${opts.bigHosts} hosts`, { count: opts.hbCount, seconds: Math.min(10, opts.phaseSeconds), path: '/api/v1/reports', token: hostToken, body: bodies.driftHb, check: accepted });
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
    const where = cf.url ? cf.url.replace(/^file:\/\//, '').replace(`${REPO}/`, '').replace(/^.*node_modules\//, '') : '';
    const k = `${cf.functionName || '(anonymous)'} ${where ? `${where}:${cf.lineNumber + 1}` : ''}`.trim();
    fn.set(k, (fn.get(k) ?? 0) + us);
    const m = where ? (where.startsWith('node:') ? where : where.split('/').slice(0, where.startsWith('dist/') ? 3 : 1).join('/')) : `(${cf.functionName || 'native'})`;
    mod.set(m, (mod.get(m) ?? 0) + us);
  }
  const top = (map) => [...map].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `${((us / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
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

const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
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
lines.push(`Run ${started.toISOString()} on ${cpus().length} cores (${cpuModel}), Node ${process.version}; load average at start ${loadavg().map(f2).join(' ')} (now).`);
lines.push(`Options: ${opts.hosts} enrolled hosts, ${opts.concurrency} requests in flight (closed loop), ${opts.devSets} distinct deviation sets, open loop ${opts.rate}/s for ${opts.rateSeconds} s with ${Math.round(opts.scanShare * 100)} % scan-50.`);
lines.push('');
lines.push('| store | phase | ok / sent | s | reports/s | p50 ms | p95 ms | p99 ms | max ms | server CPU % | server RSS MB | generator CPU % | machine busy % | load1 |');
lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const { rows } of all) {
  for (const r of rows) {
    lines.push(`| ${r.store} | ${r.phase} | ${r.ok} / ${r.requests} | ${f1(r.seconds)} | ${f0(r.rate)} | ${f1(r.p50)} | ${f1(r.p95)} | ${f1(r.p99)} | ${f1(r.max)} | ${f0(r.serverCpu)} | ${f0(r.serverRssMB)} | ${f0(r.genCpu)} | ${f0(r.machineBusy)} | ${f2(r.load1)} |`);
  }
}
lines.push('');
lines.push('| store | registered hosts | GET /api/v1/hosts?limit=100 | p50 ms | p95 ms | p99 ms | max ms |');
lines.push('|---|---:|---|---:|---:|---:|---:|');
for (const { lists } of all) for (const l of lists) lines.push(`| ${l.store} | ${l.hosts} | ${l.page}${l.bad ? ` (${l.bad} bad)` : ''} | ${f2(l.p50)} | ${f2(l.p95)} | ${f2(l.p99)} | ${f2(l.max)} |`);
const table = lines.join('\n') + '\n';
process.stdout.write(`\n${table}`);
mkdirSync(dirname(opts.out), { recursive: true });
writeFileSync(opts.out, table);
writeFileSync(opts.out.replace(/\.md$/, '') + '.json', JSON.stringify({ started, cpuModel, node: process.version, opts, results: all }, null, 2));
log(`written ${opts.out}`);

if (opts.cpuProf) {
  for (const { dir } of all) {
    const pdir = join(dir, 'prof');
    if (!existsSync(pdir)) continue;
    for (const f of readdirSync(pdir).filter((x) => x.endsWith('.cpuprofile'))) process.stdout.write(`\n${topFunctions(join(pdir, f))}`);
  }
}
