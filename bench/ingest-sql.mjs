#!/usr/bin/env node
/**
 * Ingest cost per report, in-process: the built controller (dist/, startController on a SQLite file in
 * bench/work/), 200 hosts enrolled, then heartbeats, 50-deviation scans (each host's first drift) and
 * the same scans again, one request at a time through app.inject (no HTTP, no concurrency). Prints CPU
 * and wall time per request and the wall time of each SQL statement (better-sqlite3's prepare wrapped).
 *
 *   npm run build && node bench/ingest-sql.mjs [HOSTS]
 */
import { createPrivateKey, randomUUID, createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { buildManifest, deviationSet, dist, REPO } from './lib/load.mjs';
const require = createRequire(import.meta.url);
const Database = require(REPO + '/node_modules/better-sqlite3');
const stmtTime = new Map();
const origPrepare = Database.prototype.prepare;
Database.prototype.prepare = function (src) {
  const st = origPrepare.call(this, src);
  for (const m of ['run', 'all', 'get']) {
    const f = st[m].bind(st);
    st[m] = (...a) => {
      const t = performance.now();
      try {
        return f(...a);
      } finally {
        const k = src.slice(0, 90);
        const e = stmtTime.get(k) ?? [0, 0];
        e[0] += performance.now() - t;
        e[1]++;
        stmtTime.set(k, e);
      }
    };
  }
  return st;
};
const dir = REPO + '/bench/work/ingest-sql-' + process.pid;
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const { generateKeyPair } = await dist('shared/sign.js');
const keys = generateKeyPair();
writeFileSync(dir + '/k.pub', keys.publicKeyPem);
const { loadControllerConfig } = await dist('controller/config.js');
writeFileSync(
  dir + '/c.yaml',
  `listen: 127.0.0.1:0\nstore: "sqlite:${dir}/c.db"\ntrustedKeys: [${dir}/k.pub]\nrateLimit: { enroll: { max: 1000000, per: 1s } }\n`,
);
const { startController } = await dist('controller/server.js');
const { pino } = await import(REPO + '/node_modules/pino/pino.js');
const c = await startController(loadControllerConfig(dir + '/c.yaml'), { log: pino({ level: 'warn' }) });
const { hashSecret } = await dist('controller/auth.js');
const admin = 'admintoken-' + randomUUID();
const agent = 'agenttoken-' + randomUUID();
const now = new Date().toISOString();
for (const [id, s, role] of [
  ['a', admin, 'admin'],
  ['b', agent, 'agent'],
])
  await c.store.insertToken({
    id,
    hash: hashSecret(s),
    name: id,
    role,
    createdAt: now,
    createdBy: 'x',
    expiresAt: null,
    revokedAt: null,
    lastUsedAt: null,
    uses: 0,
    maxUses: null,
    groups: null,
    legacy: false,
  });
const inj = (method, url, token, body) =>
  c.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: body,
  });
const manifest = buildManifest(createPrivateKey(keys.privateKeyPem), 'ami-x', { declaredSysctl: true });
let r = await inj('POST', '/api/v1/manifests', admin, JSON.stringify({ manifest }));
if (r.statusCode !== 201) throw new Error(r.body);
const N = Number(process.argv[2] ?? 200);
const ids = [],
  creds = [],
  seq = [];
for (let i = 0; i < N; i++) {
  const id = createHash('md5')
    .update('h' + i)
    .digest('hex');
  ids.push(id);
  seq.push(0);
  r = await inj(
    'POST',
    '/api/v1/enroll',
    agent,
    JSON.stringify({ hostId: id, hostname: 'w' + i, imageId: 'ami-x', group: 'g', agentVersion: '0.1.0' }),
  );
  if (r.statusCode >= 300) throw new Error(r.body);
  creds.push(JSON.parse(r.body).credential);
}
const sets = Array.from({ length: 8 }, (_, s) => deviationSet(manifest, s, { files: 30, packages: 15, sysctl: 5 }));
const collectors = ['packages', 'sysctl', 'cron', 'files'].map((cc) => ({
  collector: cc,
  ok: true,
  durationMs: 850,
  items: manifest.sections[cc].items.length,
}));
const body = (i, kind, digests, deviations) =>
  JSON.stringify({
    schema: 'driftwarden/report/v1',
    reportId: randomUUID(),
    hostId: ids[i],
    seq: ++seq[i],
    scannedAt: new Date().toISOString(),
    imageId: 'ami-x',
    manifestDigest: manifest.digests.overall,
    agentVersion: '0.1.0',
    collectors,
    kind,
    digests,
    deviations,
  });
for (let i = 0; i < N; i++) {
  r = await inj('POST', '/api/v1/reports', creds[i], body(i, 'scan', manifest.digests.sections, []));
  if (r.statusCode >= 300) throw new Error(r.body);
}
async function phase(name, n, mk) {
  stmtTime.clear();
  const bodies = Array.from({ length: n }, (_, k) => mk(k % N));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let k = 0; k < n; k++) {
    const rr = await inj('POST', '/api/v1/reports', creds[k % N], bodies[k]);
    if (rr.statusCode >= 300) throw new Error(rr.body);
  }
  const cu = process.cpuUsage(c0);
  const wall = performance.now() - t0;
  console.log(
    `${name}: ${n} in ${wall.toFixed(0)} ms wall = ${(wall / n).toFixed(3)} ms each, cpu ${((cu.user + cu.system) / 1000 / n).toFixed(3)} ms each`,
  );
  const sqlTotal = [...stmtTime.values()].reduce((a, b) => a + b[0], 0);
  console.log(`  SQL total ${(sqlTotal / n).toFixed(3)} ms each`);
  for (const [k, [t, cnt]] of [...stmtTime].sort((a, b) => b[1][0] - a[1][0]).slice(0, 12))
    console.log(`   ${(t / n).toFixed(3)} ms  x${(cnt / n).toFixed(1)}  ${k}`);
}
await phase('heartbeat', 3000, (i) => body(i, 'heartbeat', manifest.digests.sections, []));
await phase('scan-50', 400, (i) => body(i, 'scan', sets[i % 8].digests, sets[i % 8].devs));
await phase('scan-50 again', 400, (i) => body(i, 'scan', sets[i % 8].digests, sets[i % 8].devs));
await c.close();
await import('node:fs').then((fs) => fs.rmSync(dir, { recursive: true, force: true }));
