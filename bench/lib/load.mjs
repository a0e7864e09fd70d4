/**
 * Pieces for controller load generators (bench/controller-load.mjs, bench/scale-sim.mjs): a synthetic
 * signed manifest, deviation sets whose digests add up, a work dir with a store (SQLite file or a
 * PostgreSQL schema of its own) and a controller config, the controller as a child process, requests
 * to it, /proc sampling of its CPU and RSS, and latency percentiles. Needs a built dist/ (npm run build).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO, 'bin', 'driftwarden.js');
export const dist = (p) => import(pathToFileURL(join(REPO, 'dist', p)).href);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const hexOf = (s) => createHash('sha256').update(s).digest('hex');

const { sealManifest } = await dist('shared/manifest.js');
const { generateKeyPair } = await dist('shared/sign.js');
const { applyDeviations } = await dist('shared/diff.js');
const { digestOf } = await dist('shared/canonical.js');
const { defaultRules } = await dist('shared/schema/rules.js');

/**
 * An image of 2,000 files, 500 packages, 1,000 kernel parameters and 20 cron entries, signed.
 * `declaredSysctl`: every tenth parameter also declared in a sysctl.d file (as controller-load has it).
 */
export function buildManifest(privateKey, imageId, { source = 'bench/lib/load.mjs', declaredSysctl = false } = {}) {
  const files = [];
  const dirs = [
    '/etc',
    '/etc/ssh',
    '/etc/systemd/system',
    '/opt/app/bin',
    '/opt/app/lib',
    '/usr/bin',
    '/usr/lib/x86_64-linux-gnu',
    '/usr/share/doc',
  ];
  for (let i = 0; i < 2000; i++) {
    const d = dirs[i % dirs.length];
    files.push({
      key: `${d}/f${String(i).padStart(5, '0')}`,
      type: 'file',
      mode: d.endsWith('bin') ? '0755' : '0644',
      uid: 0,
      gid: 0,
      size: 1000 + ((i * 7919) % 90_000),
      sha256: hexOf(`file ${i}`),
    });
  }
  const packages = [];
  for (let i = 0; i < 500; i++) {
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
  for (let i = 0; i < 1000; i++) {
    const declared = declaredSysctl && i % 10 === 0;
    sysctl.push({
      key: `net.ipv4.param_${String(i).padStart(4, '0')}`,
      runtime: String(i % 3),
      declared: declared ? String(i % 3) : null,
      declaredIn: declared ? '/etc/sysctl.d/99-bench.conf' : null,
    });
  }
  const cron = [];
  for (let i = 0; i < 20; i++)
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
      createdAt: new Date().toISOString(),
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

/** Deviation set s: `files` files with changed content, `packages` upgraded packages and `sysctl` changed kernel parameters; digests that add up. */
export function deviationSet(manifest, s, { files = 8, packages = 2, sysctl = 0 } = {}) {
  const pick = (items, n, stride) => Array.from({ length: n }, (_, j) => items[(s * 101 + j * stride) % items.length]);
  const devs = [];
  for (const f of pick(manifest.sections.files.items, files, 61)) {
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
  for (const p of pick(manifest.sections.packages.items, packages, 29)) {
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
  for (const k of pick(manifest.sections.sysctl.items, sysctl, 197)) {
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
    digests[name] = mine.length
      ? digestOf(applyDeviations(name, section.items, mine))
      : manifest.digests.sections[name];
  }
  return { devs, digests };
}

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
  return { total: f.reduce((a, b) => a + b, 0), idle: f[3] + f[4] };
}

/** Samples a process (CPU from utime+stime over wall time, 100 % = one core; max VmRSS every 200 ms) and the machine. */
export function monitor(pid) {
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
      authorization: `Bearer ${token}`,
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
export async function prepareStore(work, kind, { pgUrl, schemaPrefix, log = () => {} }) {
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
    storeUrl = `${pgUrl}${pgUrl.includes('?') ? '&' : '?'}options=-csearch_path%3D${pgSchema}`;
  }
  const configFile = join(dir, 'controller.yaml');
  writeFileSync(
    configFile,
    [
      `listen: 127.0.0.1:0`,
      `store: "${storeUrl}"`,
      `trustedKeys: [${join(dir, 'bench.pub.pem')}]`,
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
