/**
 * @module The controller as a real server: startController on an ephemeral port with a SQLite file,
 * and `driftwarden controller` as a child process that is SIGKILLed in the middle of a burst of
 * reports (nothing acknowledged is lost, nothing is half-written) or SIGTERMed with a request in
 * flight (it completes, the process exits 0).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ControllerConfigSchema } from '../../controller/config.js';
import { createToken } from '../../controller/routes/tokens.js';
import { startController } from '../../controller/server.js';
import { openStore } from '../../controller/store/index.js';
import type { Role } from '../../controller/store/types.js';
import { sectionDigests } from '../../shared/manifest.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import type { Manifest } from '../../shared/schema/manifest.js';
import { REPORT_SCHEMA_ID, type Report } from '../../shared/schema/report.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { bakeKey, bakeManifest, file, silentLog, type BakeKey } from './harness.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Resolves once undici has written a chunk of a request body to its socket. */
function bodyChunkSent(): Promise<void> {
  const ch = diagnosticsChannel.channel('undici:request:bodyChunkSent');
  return new Promise((resolve) => {
    const on = () => {
      ch.unsubscribe(on);
      resolve();
    };
    ch.subscribe(on);
  });
}

/** One GET on a fresh connection: its status, or a rejection if the connection is refused or hangs. */
async function statusOf(url: string): Promise<number> {
  const r = await request(url, { headersTimeout: 2_000, reset: true });
  await r.body.dump();
  return r.statusCode;
}
const BIN = join(REPO, 'bin/driftwarden.js');
const IMAGE = 'ami-web-1';

// ---------------------------------------------------------------------------------------------
// The built CLI: the child process runs dist/, so dist must be at least as new as the sources the
// controller loads (`npm test` builds first; a developer running this file alone may not have).
// ---------------------------------------------------------------------------------------------

function* tsFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield p;
  }
}

function staleDistFiles(): string[] {
  const sources = [join(REPO, 'cli.ts'), ...tsFiles(join(REPO, 'controller')), ...tsFiles(join(REPO, 'shared'))];
  return sources.filter((src) => {
    const out = join(REPO, 'dist', relative(REPO, src).replace(/\.ts$/, '.js'));
    try {
      return statSync(out).mtimeMs < statSync(src).mtimeMs;
    } catch {
      return true;
    }
  });
}

beforeAll(() => {
  const stale = staleDistFiles();
  if (stale.length === 0) return;
  const r = spawnSync('npm', ['run', 'build'], { cwd: REPO, encoding: 'utf8' });
  // tsc emits despite type errors elsewhere (`npm test` runs the type check itself); what matters
  // here is that the controller's code in dist/ is now current.
  const still = staleDistFiles();
  if (still.length > 0)
    throw new Error(
      `dist/ is older than ${relative(REPO, still[0]!)} and \`npm run build\` did not fix it (exit ${r.status}):\n${r.stdout}${r.stderr}`,
    );
}, 120_000);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

interface Setup {
  dir: string;
  db: string;
  configFile: string;
  key: BakeKey;
  manifest: Manifest;
  tokens: Record<Role, string>;
}

/** A controller's files: bake key, config, and a database with one token per role (as `token create` makes them). */
async function setup(): Promise<Setup> {
  const dir = tempDir('dw-server-');
  const key = bakeKey();
  writeFileSync(join(dir, 'bake.pub'), key.publicKeyPem);
  const db = join(dir, 'controller.db');
  const configFile = join(dir, 'controller.yaml');
  writeFileSync(
    configFile,
    stringify({ listen: '127.0.0.1:0', store: `sqlite:${db}`, trustedKeys: [join(dir, 'bake.pub')] }),
  );
  const store = await openStore(`sqlite:${db}`);
  const tokens = {} as Record<Role, string>;
  try {
    for (const role of ['admin', 'operator', 'viewer', 'agent'] as const) {
      tokens[role] = (
        await store.transaction((tx) =>
          createToken(
            tx,
            role === 'agent' ? { name: role, role, maxUses: 'unlimited' } : { name: role, role },
            'cli:test',
            new Date(),
          ),
        )
      ).secret;
    }
  } finally {
    await store.close();
  }
  return { dir, db, configFile, key, manifest: bakeManifest(IMAGE, key.privateKey), tokens };
}

interface Http {
  status: number;
  body: any;
}

async function call(
  url: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
  dispatcher?: Agent,
): Promise<Http> {
  const res = await request(url + path, {
    method: method as 'GET',
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    ...(dispatcher ? { dispatcher } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : null };
}

/** An event report (the watcher saw one file appear): it adds a deviation without replacing others. */
function eventReport(manifest: Manifest, hostId: string, seq: number): Report {
  const added = file(`/home/alice/burst-${seq}.txt`, `${hostId} ${seq}\n`);
  const { key, ...actual } = added;
  const deviation: Deviation = { collector: 'files', key, change: 'added', expected: null, actual, severity: 'low' };
  return {
    schema: REPORT_SCHEMA_ID,
    kind: 'event',
    reportId: randomUUID(),
    hostId,
    imageId: IMAGE,
    manifestDigest: manifest.digests.overall,
    agentVersion: '0.1.0',
    seq,
    scannedAt: new Date().toISOString(),
    digests: sectionDigests(manifest.sections),
    collectors: [],
    deviations: [deviation],
  };
}

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) c.kill('SIGKILL');
});
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

interface Child {
  proc: ChildProcess;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: () => string;
}

/** `node bin/driftwarden.js controller --config FILE`, ready once it logs where it listens. */
async function spawnController(configFile: string): Promise<Child> {
  const proc = spawn(process.execPath, [BIN, 'controller', '--config', configFile], {
    env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let out = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`controller did not start in 15 s:\n${out}`)), 15_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`controller exited (${code ?? signal}) before listening:\n${out}`));
    });
  });
  return { proc, url, exited, output: () => out };
}

// ---------------------------------------------------------------------------------------------

describe('controller server', () => {
  it('serves the API over real HTTP on an ephemeral port, and keeps its data in the SQLite file across restarts', async () => {
    const s = await setup();
    const config = ControllerConfigSchema.parse({
      listen: '127.0.0.1:0',
      store: `sqlite:${s.db}`,
      trustedKeys: [join(s.dir, 'bake.pub')],
    });
    const ctl = await startController(config, { log: silentLog });
    try {
      expect(ctl.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(Number(new URL(ctl.url).port)).toBeGreaterThan(0);
      expect((await call(ctl.url, 'GET', '/healthz', '')).body).toEqual({ ok: true });
      expect((await call(ctl.url, 'GET', '/api/v1/hosts', '')).status).toBe(401);
      expect(
        (await call(ctl.url, 'POST', '/api/v1/manifests', s.tokens.operator, { manifest: s.manifest })).status,
      ).toBe(201);
      const enrolled = await call(ctl.url, 'POST', '/api/v1/enroll', s.tokens.agent, {
        hostId: 'web-1',
        imageId: IMAGE,
      });
      expect(enrolled.status).toBe(201);
      const r = await call(
        ctl.url,
        'POST',
        '/api/v1/reports',
        enrolled.body.credential,
        eventReport(s.manifest, 'web-1', 1),
      );
      expect(r).toMatchObject({ status: 200, body: { status: 'accepted', state: 'drifted' } });
    } finally {
      await ctl.close();
    }
    const again = await startController(config, { log: silentLog });
    try {
      const host = await call(again.url, 'GET', '/api/v1/hosts/web-1', s.tokens.viewer);
      expect(host.body.host).toMatchObject({ state: 'drifted', lastSeq: 1 });
    } finally {
      await again.close();
    }
  });

  it('SIGKILL in the middle of a burst: every acknowledged report is stored, none half-written, and the next seq is accepted', async () => {
    const s = await setup();
    const HOSTS = 6;
    let ctl = await spawnController(s.configFile);
    const dispatcher = new Agent({ connections: HOSTS * 2, pipelining: 0 });
    expect(
      (await call(ctl.url, 'POST', '/api/v1/manifests', s.tokens.operator, { manifest: s.manifest }, dispatcher))
        .status,
    ).toBe(201);
    const hosts: { id: string; credential: string; acked: Report[]; lost: Report | null }[] = [];
    for (let i = 0; i < HOSTS; i++) {
      const r = await call(
        ctl.url,
        'POST',
        '/api/v1/enroll',
        s.tokens.agent,
        { hostId: `burst-${i}`, imageId: IMAGE },
        dispatcher,
      );
      expect(r.status).toBe(201);
      hosts.push({ id: `burst-${i}`, credential: r.body.credential, acked: [], lost: null });
    }

    // Each host sends its reports one after another (seq order), all hosts at once; the process is
    // killed once enough have been acknowledged, with requests from every host in flight.
    const KILL_AFTER = 90;
    let acked = 0;
    let killed = false;
    const url = ctl.url;
    await Promise.all(
      hosts.map(async (h) => {
        for (let seq = 1; seq < 10_000; seq++) {
          const report = eventReport(s.manifest, h.id, seq);
          let res: Http;
          try {
            res = await call(url, 'POST', '/api/v1/reports', h.credential, report, dispatcher);
          } catch {
            h.lost = report; // no answer: the agent keeps it spooled and retries it later
            return;
          }
          expect(res.status, JSON.stringify(res.body)).toBe(200);
          h.acked.push(report);
          if (++acked >= KILL_AFTER && !killed) {
            killed = true;
            ctl.proc.kill('SIGKILL');
          }
        }
      }),
    );
    expect(await ctl.exited).toEqual({ code: null, signal: 'SIGKILL' });
    await dispatcher.close();
    expect(hosts.every((h) => h.lost !== null)).toBe(true);
    expect(acked).toBeGreaterThanOrEqual(KILL_AFTER);

    ctl = await spawnController(s.configFile);
    try {
      for (const h of hosts) {
        const detail = await call(ctl.url, 'GET', `/api/v1/hosts/${h.id}`, s.tokens.viewer);
        const stored = (await call(ctl.url, 'GET', `/api/v1/hosts/${h.id}/reports?limit=500`, s.tokens.viewer)).body
          .reports as { reportId: string; seq: number; body: { deviations: Deviation[] } }[];
        const storedIds = new Set(stored.map((r) => r.reportId));
        // Nothing acknowledged is lost.
        for (const r of h.acked) expect(storedIds, `${h.id} seq ${r.seq} was acknowledged`).toContain(r.reportId);
        // Nothing is half-written: the host's seq, its reports and its deviations agree.
        const seqs = stored.map((r) => r.seq).sort((a, b) => a - b);
        const lastSeq = detail.body.host.lastSeq as number;
        expect(lastSeq).toBe(seqs.at(-1) ?? 0);
        expect(seqs).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
        expect(
          lastSeq === h.acked.length || lastSeq === h.acked.length + 1,
          `${h.id}: lastSeq ${lastSeq}, acknowledged ${h.acked.length}`,
        ).toBe(true);
        const current = new Set((detail.body.deviations as { key: string }[]).map((d) => d.key));
        for (const r of stored)
          for (const d of r.body.deviations) expect(current, `${h.id} seq ${r.seq}`).toContain(d.key);
        expect(current.size).toBe(lastSeq);
        expect(detail.body.host.deviationCount).toBe(lastSeq);

        // The agent retries what got no answer: a duplicate if it was stored after all, else accepted.
        const retry = await call(ctl.url, 'POST', '/api/v1/reports', h.credential, h.lost);
        expect(retry.status).toBe(200);
        expect(retry.body.status).toBe(lastSeq === h.lost!.seq ? 'duplicate' : 'accepted');
        // And the next seq goes through.
        const next = await call(
          ctl.url,
          'POST',
          '/api/v1/reports',
          h.credential,
          eventReport(s.manifest, h.id, h.lost!.seq + 1),
        );
        expect(next.body).toMatchObject({ status: 'accepted' });
      }
    } finally {
      ctl.proc.kill('SIGTERM');
      await ctl.exited;
    }
  });

  it('SIGTERM with a request in flight: the request completes, new connections are refused, the process exits 0', async () => {
    const s = await setup();
    const ctl = await spawnController(s.configFile);
    // A manifest upload whose body arrives slowly: the request is in flight while the signal lands.
    const text = JSON.stringify({ manifest: s.manifest });
    const body = new PassThrough();
    const firstChunk = bodyChunkSent();
    const upload = request(`${ctl.url}/api/v1/manifests`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.tokens.operator}`, 'content-type': 'application/json' },
      body,
    });
    body.write(text.slice(0, 100));
    await firstChunk;
    // The upload's bytes were on the wire before this probe's connection existed: once the controller
    // answers the probe, it has taken the upload in too, and the request is in flight.
    expect(await statusOf(`${ctl.url}/healthz`)).toBe(200);
    ctl.proc.kill('SIGTERM');
    // New connections are refused while the upload is still open (its body is not finished yet).
    await until(
      async () =>
        await statusOf(`${ctl.url}/healthz`).then(
          () => false,
          () => true,
        ),
      `healthz refused after SIGTERM\n${ctl.output()}`,
      10_000,
    );
    body.end(text.slice(100));
    const res = await upload;
    expect(res.statusCode).toBe(201);
    expect(await res.body.json()).toMatchObject({ imageId: IMAGE, status: 'stored' });
    expect(await ctl.exited).toEqual({ code: 0, signal: null });
    expect(ctl.output()).toMatch(/shutting down: finishing in-flight requests/);

    // What it acknowledged on the way out is in the database.
    const store = await openStore(`sqlite:${s.db}`);
    try {
      expect((await store.getManifest(IMAGE))?.digest).toBe(s.manifest.digests.overall);
    } finally {
      await store.close();
    }
  });
});
