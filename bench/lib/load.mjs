/**
 * Pieces for controller load generators (bench/controller-load.mjs, bench/scale-sim.mjs): a synthetic
 * signed manifest of a real host's size (generated deterministically), deviation sets whose digests add
 * up, a work dir with a store (SQLite file or a PostgreSQL schema of its own) and a controller config
 * (optionally HTTPS with a self-signed certificate), the controller as a child process, transports to it
 * (one keep-alive pool, or one connection per agent), /proc sampling of its CPU and RSS, of this
 * generator and of the database, latency percentiles, the commit measured, and a refusal to report
 * what was not measured. Needs a built dist/ (npm run build).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { Client, Pool } from 'undici';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO, 'bin', 'driftwarden.js');
export const dist = (p) => import(pathToFileURL(join(REPO, 'dist', p)).href);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const hexOf = (s) => createHash('sha256').update(s).digest('hex');

const { sealManifest } = await dist('shared/manifest.js');
const { generateKeyPair } = await dist('shared/sign.js');
const { applyDeviations } = await dist('shared/diff.js');
const { canonicalJson, digestOf } = await dist('shared/canonical.js');
const { defaultRules } = await dist('shared/schema/rules.js');

/** The shape of a real host's image (a Debian server: ~130k files under /usr, /etc, /opt). */
export const REAL_SIZE = { files: 130_000, packages: 1_000, sysctl: 1_000, cron: 20 };

/**
 * A signed image manifest of `size` items (default REAL_SIZE). Deterministic: the same size gives the same
 * sections and digests on every run (only the signature differs, by key), so figures compare across runs.
 * `declaredSysctl`: every tenth parameter also declared in a sysctl.d file (as controller-load has it).
 */
export function buildManifest(
  privateKey,
  imageId,
  { source = 'bench/lib/load.mjs', declaredSysctl = false, size = REAL_SIZE } = {},
) {
  const files = [];
  const dirs = [
    '/etc',
    '/etc/ssh',
    '/etc/systemd/system',
    '/opt/app/bin',
    '/opt/app/lib',
    '/usr/bin',
    '/usr/lib/python3/dist-packages',
    '/usr/lib/x86_64-linux-gnu',
    '/usr/share/doc',
    '/usr/share/locale',
  ];
  for (let i = 0; i < size.files; i++) {
    const d = dirs[i % dirs.length];
    files.push({
      key: `${d}/d${String(i % 997).padStart(3, '0')}/f${String(i).padStart(6, '0')}`,
      type: 'file',
      mode: d.endsWith('bin') ? '0755' : '0644',
      uid: 0,
      gid: 0,
      size: 1000 + ((i * 7919) % 90_000),
      sha256: hexOf(`file ${i}`),
    });
  }
  const packages = [];
  for (let i = 0; i < size.packages; i++) {
    const name = `pkg-${String(i).padStart(4, '0')}`;
    packages.push({
      key: `${name}:amd64`,
      manager: 'dpkg',
      name,
      arch: 'amd64',
      version: `1.${i % 17}.${i % 5}-1`,
      state: 'installed',
    });
  }
  const sysctl = [];
  for (let i = 0; i < size.sysctl; i++) {
    const declared = declaredSysctl && i % 10 === 0;
    sysctl.push({
      key: `net.ipv4.param_${String(i).padStart(4, '0')}`,
      runtime: String(i % 3),
      declared: declared ? String(i % 3) : null,
      declaredIn: declared ? '/etc/sysctl.d/99-bench.conf' : null,
    });
  }
  const cron = [];
  for (let i = 0; i < size.cron; i++)
    cron.push({
      key: `/etc/cron.d/job${i}#0`,
      kind: 'entry',
      file: `/etc/cron.d/job${i}`,
      schedule: `${i} * * * *`,
      user: 'root',
      command: `/usr/bin/job${i}`,
    });
  const byKey = (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  return sealManifest(
    {
      schema: 'driftwarden/manifest/v1',
      image: { id: imageId, name: 'bench', version: '1', source },
      os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
      createdAt: '2026-01-01T00:00:00.000Z',
      builder: { agentVersion: '0.1.0', hostname: 'bake' },
      rules: defaultRules(),
      sections: {
        packages: { items: packages.sort(byKey) },
        sysctl: { items: sysctl.sort(byKey) },
        cron: { items: cron.sort(byKey) },
        files: { items: files.sort(byKey) },
      },
    },
    privateKey,
  );
}

const bodyOf = (item) => {
  const { key: _k, ...rest } = item;
  return rest;
};

/**
 * Section digests with some items replaced, without re-serializing the section each time: the canonical
 * form of a section is `[item,item,...]`, so each item's canonical JSON is computed once and a set's
 * digest hashes those pieces with its own items in their place (what the controller's digestOf of
 * applyDeviations gives for modified items; checked against it for the first set of each section).
 */
function sectionDigester(name, items) {
  const BLOCK = 1024;
  const pieces = items.map((it) => canonicalJson(it));
  const index = new Map(items.map((it, i) => [it.key, i]));
  // blocks of items already joined and encoded: a set re-joins only the blocks it changes
  const blocks = [];
  for (let i = 0; i < pieces.length; i += BLOCK) blocks.push(Buffer.from(pieces.slice(i, i + BLOCK).join(',')));
  const comma = Buffer.from(',');
  let checked = false;
  return (devs) => {
    const swap = new Map(devs.map((d) => [index.get(d.key), canonicalJson({ ...d.actual, key: d.key })]));
    const touched = new Set([...swap.keys()].map((i) => Math.floor(i / BLOCK)));
    const h = createHash('sha256').update('[');
    for (let b = 0; b < blocks.length; b++) {
      if (b) h.update(comma);
      if (!touched.has(b)) h.update(blocks[b]);
      else {
        const part = [];
        for (let i = b * BLOCK; i < Math.min(pieces.length, (b + 1) * BLOCK); i++) part.push(swap.get(i) ?? pieces[i]);
        h.update(part.join(','));
      }
    }
    const digest = `sha256:${h.update(']').digest('hex')}`;
    if (!checked) {
      checked = true;
      const slow = digestOf(applyDeviations(name, items, devs));
      if (slow !== digest) throw new Error(`bench: the fast digest of section ${name} disagrees with digestOf`);
    }
    return digest;
  };
}

/**
 * `count` deviation sets (set s: `files` files with changed content, `packages` upgraded packages,
 * `sysctl` changed kernel parameters; the changed values carry s, so no two sets are alike), with
 * digests that add up.
 */
export function deviationSets(manifest, count, { files = 8, packages = 2, sysctl = 0 } = {}) {
  const digesters = {};
  const out = [];
  for (let s = 0; s < count; s++) {
    // n distinct items (stride coprime to the length); the values carry s, so no two sets are equal
    const pick = (items, n) => {
      let stride = 61;
      while (gcd(stride, items.length) !== 1) stride += 2;
      return Array.from({ length: Math.min(n, items.length) }, (_, j) => items[(s * 101 + j * stride) % items.length]);
    };
    const devs = [];
    for (const f of pick(manifest.sections.files.items, files)) {
      devs.push({
        collector: 'files',
        key: f.key,
        change: 'modified',
        expected: bodyOf(f),
        actual: { ...bodyOf(f), size: f.size + 17, sha256: hexOf(`${f.key} drifted ${s}`) },
        fields: ['sha256', 'size'],
        severity: 'high',
      });
    }
    for (const p of pick(manifest.sections.packages.items, packages)) {
      devs.push({
        collector: 'packages',
        key: p.key,
        change: 'modified',
        expected: bodyOf(p),
        actual: { ...bodyOf(p), version: `${p.version}+hotfix${s}` },
        fields: ['version'],
        severity: 'high',
      });
    }
    for (const k of pick(manifest.sections.sysctl.items, sysctl)) {
      devs.push({
        collector: 'sysctl',
        key: k.key,
        change: 'modified',
        expected: bodyOf(k),
        actual: { ...bodyOf(k), runtime: `${k.runtime}9` },
        fields: ['runtime'],
        severity: 'medium',
      });
    }
    const digests = {};
    for (const [name, section] of Object.entries(manifest.sections)) {
      const mine = devs.filter((d) => d.collector === name);
      if (!mine.length) digests[name] = manifest.digests.sections[name];
      else {
        digesters[name] ??= sectionDigester(name, section.items);
        digests[name] = digesters[name](mine);
      }
    }
    out.push({ devs, digests });
  }
  return out;
}

const gcd = (a, b) => (b ? gcd(b, a % b) : a);

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

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
  return { total: f.reduce((a, b) => a + b, 0), idle: f[3] + f[4] };
}

/** Every process's [ppid, ticks, comm] from /proc. */
function procTable() {
  const t = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = st.lastIndexOf(')');
      const f = st.slice(close + 2).split(' ');
      t.set(Number(name), {
        ppid: Number(f[1]),
        ticks: Number(f[11]) + Number(f[12]),
        comm: st.slice(st.indexOf('(') + 1, close),
      });
    } catch {
      // gone meanwhile
    }
  }
  return t;
}

/** pid and every descendant of it (a controller that forks workers is measured whole). */
function treeOf(table, pid) {
  const out = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, e] of table)
      if (!out.has(p) && out.has(e.ppid)) {
        out.add(p);
        grew = true;
      }
  }
  return out;
}

/**
 * CPU ticks of a changing set of processes over a phase: each process counts from its ticks when first
 * seen (from 0 if it started during the phase) to its ticks when last seen. Sampled every 500 ms, so a
 * process that lives less than that is missed.
 */
function tickTracker() {
  const first = new Map();
  const last = new Map();
  let started = false;
  return {
    see(pids, table) {
      for (const p of pids) {
        const e = table.get(p);
        if (!e) continue;
        if (!first.has(p)) first.set(p, started ? 0 : e.ticks);
        last.set(p, e.ticks);
      }
    },
    start() {
      started = true;
    },
    ticks: () => [...last].reduce((n, [p, t]) => n + t - first.get(p), 0),
  };
}

/**
 * Samples the controller (its process tree: CPU from utime+stime over wall time, 100 % = one core; max VmRSS
 * of the main process every 200 ms), this generator (process.cpuUsage), the machine (/proc/stat) and, with
 * `db` = {pgUrl, appName}, the database: `dbCpu` the PostgreSQL backends serving this controller (found
 * by application_name in pg_stat_activity), `pgAllCpu` every postgres process on the machine (other
 * users' included). On SQLite the database runs inside the controller (dbCpu is NaN: it is in serverCpu).
 */
export async function monitor(pid, db = null) {
  let pgc = null;
  if (db) {
    pgc = new pg.Client({ connectionString: db.pgUrl });
    await pgc.connect();
  }
  const server = tickTracker();
  const backends = tickTracker();
  const allPg = tickTracker();
  const sample = async () => {
    const table = procTable();
    server.see(treeOf(table, pid), table);
    if (pgc) {
      const r = await pgc.query('select pid from pg_stat_activity where application_name = $1', [db.appName]);
      backends.see(
        r.rows.map((x) => x.pid),
        table,
      );
      allPg.see(
        [...table].filter(([, e]) => e.comm === 'postgres').map(([p]) => p),
        table,
      );
    }
  };
  await sample();
  server.start();
  backends.start();
  allPg.start();
  const t0 = performance.now();
  const mach0 = machineTicks();
  const gen0 = process.cpuUsage();
  const load1 = loadavg()[0];
  let rssMax = procRssMB(pid);
  let sampling = Promise.resolve();
  let n = 0;
  const timer = setInterval(() => {
    const r = procRssMB(pid);
    if (r > rssMax) rssMax = r;
    if (++n % 5 === 0) sampling = sampling.then(sample).catch(() => {});
  }, 100);
  return {
    async stop() {
      clearInterval(timer);
      const wall = (performance.now() - t0) / 1000;
      const gen = process.cpuUsage(gen0);
      const mach1 = machineTicks();
      await sampling;
      await sample();
      await pgc?.end();
      const r = procRssMB(pid);
      if (r > rssMax) rssMax = r;
      const dt = mach1.total - mach0.total;
      const pctOf = (ticks) => (ticks / CLK_TCK / wall) * 100;
      return {
        wall,
        serverCpu: pctOf(server.ticks()),
        serverCpuS: server.ticks() / CLK_TCK,
        serverRssMB: rssMax,
        genCpu: ((gen.user + gen.system) / 1e6 / wall) * 100,
        genCpuS: (gen.user + gen.system) / 1e6,
        dbCpu: pgc ? pctOf(backends.ticks()) : NaN,
        dbCpuS: pgc ? backends.ticks() / CLK_TCK : NaN,
        pgAllCpu: pgc ? pctOf(allPg.ticks()) : NaN,
        machineBusy: dt > 0 ? (1 - (mach1.idle - mach0.idle) / dt) * 100 : NaN,
        load1,
      };
    },
  };
}

/** CPU milliseconds per answered request of the server, the generator and the database. */
export function perRequest(res, ok) {
  const per = (sec) => (ok > 0 ? (sec * 1000) / ok : NaN);
  return { serverMsPerReq: per(res.serverCpuS), genMsPerReq: per(res.genCpuS), dbMsPerReq: per(res.dbCpuS) };
}

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export function stats(lat) {
  const s = Float64Array.from(lat).sort();
  return { p50: pct(s, 50), p95: pct(s, 95), p99: pct(s, 99), max: s.length ? s[s.length - 1] : NaN };
}

export function tokenCreate(configFile, role) {
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      'token',
      'create',
      '--config',
      configFile,
      '--role',
      role,
      '--name',
      `bench-${role}`,
      ...(role === 'agent' ? ['--uses', 'unlimited', '--expires', 'never'] : []),
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`token create --role ${role} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * `driftwarden controller --config FILE` as a child; resolves once it listens. Its log goes to DIR/controller-TAG.log.
 * `nodeArgs` go to node before the CLI (e.g. --cpu-prof).
 */
export async function startServer(dir, configFile, tag, log = () => {}, { nodeArgs = [] } = {}) {
  const t0 = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'controller', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: process.env.DRIFTWARDEN_LOG_LEVEL ?? 'info' },
  });
  const logFile = createWriteStream(join(dir, `controller-${tag}.log`));
  child.stderr.pipe(logFile, { end: false });
  const url = await new Promise((resolveUrl, reject) => {
    let buf = '';
    let found = false;
    child.stdout.on('data', (chunk) => {
      logFile.write(chunk);
      if (found) return;
      buf += chunk;
      for (const line of buf.split('\n')) {
        if (!line.includes('controller listening')) continue;
        found = true;
        try {
          resolveUrl(JSON.parse(line).url);
        } catch (err) {
          reject(err);
        }
      }
    });
    child.once('exit', (code) =>
      reject(new Error(`controller exited with ${code} before listening; see ${join(dir, `controller-${tag}.log`)}`)),
    );
    setTimeout(() => reject(new Error('controller did not start within 120 s')), 120_000).unref();
  });
  const startupMs = performance.now() - t0;
  log(`controller ${tag} pid ${child.pid} listening at ${url} after ${(startupMs / 1000).toFixed(1)} s`);
  return {
    child,
    url,
    startupMs,
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

/** One request with a bearer token; the reply's status and body text. */
export async function call(pool, method, path, token, body) {
  const r = await pool.request({
    method,
    path,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body,
  });
  const text = await r.body.text();
  return { status: r.statusCode, text };
}

/**
 * A fresh work dir WORK/KIND-STAMP with a signing key pair (the public half trusted), a store (a SQLite file
 * there, or a new schema `PREFIX_PID_RANDOM` on the PostgreSQL server at pgUrl) and a controller config.
 * dropStore() drops the PostgreSQL schema (nothing for SQLite).
 */
export async function prepareStore(work, kind, { pgUrl, schemaPrefix, log = () => {}, tls = false }) {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = join(work, `${kind}-${stamp}`);
  mkdirSync(dir, { recursive: true });
  const keys = generateKeyPair();
  writeFileSync(join(dir, 'bench.pub.pem'), keys.publicKeyPem);
  let storeUrl;
  let pgSchema = null;
  if (kind === 'sqlite') storeUrl = `sqlite:${join(dir, 'controller.db')}`;
  else {
    pgSchema = `${schemaPrefix}_${process.pid}_${randomBytes(3).toString('hex')}`;
    const c = new pg.Client({ connectionString: pgUrl });
    await c.connect();
    await c.query(`create schema ${pgSchema}`);
    await c.end();
    // application_name in the URL overrides the store's own, so monitor() finds this controller's backends
    storeUrl = `${pgUrl}${pgUrl.includes('?') ? '&' : '?'}options=-csearch_path%3D${pgSchema}&application_name=${pgSchema}`;
  }
  let caPem = null;
  if (tls) {
    // A self-signed certificate for 127.0.0.1 (P-256, as a small deployment would make one)
    const r = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'tls.key'),
        '-out',
        join(dir, 'tls.crt'),
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`openssl req (TLS certificate) failed: ${r.stderr}`);
    caPem = readFileSync(join(dir, 'tls.crt'), 'utf8');
  }
  const configFile = join(dir, 'controller.yaml');
  writeFileSync(
    configFile,
    [
      `listen: 127.0.0.1:0`,
      `store: "${storeUrl}"`,
      `trustedKeys: [${join(dir, 'bench.pub.pem')}]`,
      ...(tls ? [`tls: { certFile: ${join(dir, 'tls.crt')}, keyFile: ${join(dir, 'tls.key')} }`] : []),
      `silentAfter: 1h`,
      `taintSilentAfter: 48h`,
      '# every simulated host enrolls from 127.0.0.1',
      `rateLimit: { enroll: { max: 1000000, per: 1s } }`,
      '',
    ].join('\n'),
  );
  log(`${kind}: work dir ${dir}${pgSchema ? `, schema ${pgSchema}` : ''}`);
  return {
    dir,
    keys,
    storeUrl,
    pgSchema,
    appName: pgSchema,
    caPem,
    configFile,
    async dropStore() {
      if (!pgSchema) return;
      const c = new pg.Client({ connectionString: pgUrl });
      await c.connect();
      await c.query(`drop schema if exists ${pgSchema} cascade`);
      await c.end();
      log(`${kind}: dropped schema ${pgSchema}`);
    },
  };
}

/** Table cells: a number to 0, 1 or 2 decimals, a dash when there is none. */
export const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '–');
export const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
export const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');

/**
 * Open-loop pacing: calls send(scheduled) `total` times at `rate` per second from `start`, by the clock and
 * not by replies, so latency measured from `scheduled` shows a server that falls behind; resolves once all are sent.
 */
export function sendAtRate(start, rate, total, send) {
  let k = 0;
  return new Promise((resolveSend) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
      while (k < due) send(start + (k++ * 1000) / rate);
      if (k < total) setTimeout(tick, 1);
      else resolveSend();
    };
    tick();
  });
}

/** Prints the results table and writes it to `out` (Markdown) and beside it as JSON. */
export function writeResults(out, table, json, log = () => {}) {
  process.stdout.write(`\n${table}`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, table);
  writeFileSync(out.replace(/\.md$/, '') + '.json', JSON.stringify(json, null, 2));
  log(`written ${out}`);
}

/**
 * How the generator reaches the controller. `pool`: one keep-alive pool of 256 connections shared by
 * every simulated host (cheap for both sides, unlike a fleet). `per-agent`: each host its own connection
 * (as the agent's transport keeps one socket), opened at its first request; at most `maxOpen` are open at
 * once (this process's file descriptors), past that the least recently used is closed, so a fleet larger
 * than that pays a new connection (over HTTPS a TLS handshake) per request, as agents reconnecting would.
 * call(i, method, path, token, body) → {status, text}; `connects` counts connections opened.
 */
export function transport(url, { mode = 'pool', caPem = null, maxOpen = 4096 } = {}) {
  // an agent waits up to 30 s (its transport timeout); undici's default connect timeout is 10 s
  const connect = { timeout: 30_000, ...(caPem ? { ca: caPem } : {}) };
  if (mode === 'pool') {
    const pool = new Pool(url, {
      connections: 256,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
      connect,
    });
    return {
      mode,
      connects: NaN,
      call: (_i, method, path, token, body) => call(pool, method, path, token, body),
      close: () => pool.close(),
      destroy: () => pool.destroy(),
    };
  }
  if (mode !== 'per-agent') throw new Error(`transport: unknown mode ${mode}`);
  const open = new Map(); // host -> Client, in least recently used order
  const t = {
    mode,
    connects: 0,
    call(i, method, path, token, body) {
      let c = open.get(i);
      if (c) open.delete(i);
      else {
        c = new Client(url, {
          pipelining: 1,
          keepAliveTimeout: 60_000,
          keepAliveMaxTimeout: 600_000,
          connect,
        });
        c.on('connect', () => t.connects++);
        if (open.size >= maxOpen) {
          const [oldest, oc] = open.entries().next().value;
          open.delete(oldest);
          oc.close().catch(() => {});
        }
      }
      open.set(i, c);
      return call(c, method, path, token, body);
    },
    async close() {
      await Promise.all([...open.values()].map((c) => c.close().catch(() => {})));
      open.clear();
    },
    async destroy() {
      await Promise.all([...open.values()].map((c) => c.destroy().catch(() => {})));
      open.clear();
    },
  };
  return t;
}

/** Counters from the controller's /metrics: digest memo hits and misses (NaN when it did not answer). */
export async function memoCounters(t, token) {
  let r;
  try {
    r = await t.call(-1, 'GET', '/metrics', token);
  } catch {
    return { hits: NaN, misses: NaN };
  }
  if (r.status !== 200) throw new Error(`GET /metrics: ${r.status} ${r.text.slice(0, 200)}`);
  const get = (result) => {
    const m = new RegExp(`^driftwarden_digest_memo_lookups_total\\{result="${result}"\\} (\\d+)`, 'm').exec(r.text);
    return m ? Number(m[1]) : NaN;
  };
  return { hits: get('hit'), misses: get('miss') };
}

/** The commit measured (with `+dirty` when the work tree has changes), for every figure. */
export function commitOf(repo = REPO) {
  const h = spawnSync('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['-C', repo, 'status', '--porcelain', '--untracked-files=no'], {
    encoding: 'utf8',
  }).stdout.trim();
  return `${h || 'unknown'}${dirty ? '+dirty' : ''}`;
}

/** `uptime` as printed, beside each figure (the machine is shared). */
export const uptime = () => spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();

/** A measurement that is empty or smaller than asked is not reported: the bench stops with exit 2. */
export class NotMeasured extends Error {}
export function mustMeasure(ok, what) {
  if (!ok) throw new NotMeasured(`refusing to report: ${what}`);
}

/** A verdict cell: `met` or **missed**, n/a when there is no figure. */
export const verdict = (ok) => (ok === null || ok === undefined ? 'n/a' : ok ? 'met' : '**missed**');

/** The comment block at the top of a script, for --help. */
export function helpOf(file) {
  return `${readFileSync(file, 'utf8').split('*/')[0]}*/\n`;
}
