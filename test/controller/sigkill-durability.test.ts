/**
 * @module Acknowledged means durable: `driftwarden controller` (a real process on SQLite, group commit
 * on) is SIGKILLed the moment it answers a 2xx, round after round with reports from several hosts in
 * flight; after each restart every report it acknowledged is there, scans and heartbeats alike.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../controller/routes/tokens.js';
import { openStore } from '../../controller/store/index.js';
import { sectionDigests } from '../../shared/manifest.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import { REPORT_SCHEMA_ID, type Report } from '../../shared/schema/report.js';
import { BIN, ensureBuilt } from '../helpers/built-cli.js';
import { tempDir } from '../helpers/tmp.js';
import { bakeKey, bakeManifest, file } from './harness.js';

const IMAGE = 'ami-web-1';
const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) c.kill('SIGKILL');
});
beforeAll(() => {
  expect(ensureBuilt()).toEqual([]);
}, 180_000);

async function start(configFile: string): Promise<{ proc: ChildProcess; url: string; exited: Promise<unknown> }> {
  const proc = spawn(process.execPath, [BIN, 'controller', '--config', configFile], {
    env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  void exited.then(() => children.delete(proc));
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    void exited.then(() => reject(new Error(`controller exited before listening:\n${out}`)));
  });
  return { proc, url, exited };
}

async function call(url: string, method: string, path: string, token: string, body?: unknown, dispatcher?: Agent) {
  const res = await request(url + path, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    ...(dispatcher ? { dispatcher } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : null };
}

describe('SIGKILL right after a 2xx', () => {
  it('every acknowledged report survives: five rounds of kill -9 on the first answers, restart, check', async () => {
    const dir = tempDir('dw-sigkill-');
    const key = bakeKey();
    writeFileSync(join(dir, 'bake.pub'), key.publicKeyPem);
    const db = join(dir, 'controller.db');
    const configFile = join(dir, 'controller.yaml');
    writeFileSync(
      configFile,
      stringify({ listen: '127.0.0.1:0', store: `sqlite:${db}`, trustedKeys: [join(dir, 'bake.pub')] }),
    );
    const manifest = bakeManifest(IMAGE, key.privateKey);
    const store = await openStore(`sqlite:${db}`);
    const secret = async (role: 'operator' | 'agent' | 'viewer') =>
      (
        await store.transaction((tx) =>
          createToken(
            tx,
            role === 'agent' ? { name: role, role, maxUses: 'unlimited' } : { name: role, role },
            'cli:test',
            new Date(),
          ),
        )
      ).secret;
    const tokens = { operator: await secret('operator'), agent: await secret('agent'), viewer: await secret('viewer') };
    await store.close();

    let ctl = await start(configFile);
    expect((await call(ctl.url, 'POST', '/api/v1/manifests', tokens.operator, { manifest })).status).toBe(201);
    const HOSTS = 8;
    const hosts: { id: string; credential: string; seq: number; acked: Report[] }[] = [];
    for (let i = 0; i < HOSTS; i++) {
      const r = await call(ctl.url, 'POST', '/api/v1/enroll', tokens.agent, { hostId: `kill-${i}`, imageId: IMAGE });
      expect(r.status).toBe(201);
      hosts.push({ id: `kill-${i}`, credential: r.body.credential, seq: 0, acked: [] });
    }
    // Scans carry a deviation of their own (a new file), heartbeats none: both must survive.
    const next = (h: (typeof hosts)[number]): Report => {
      const seq = ++h.seq;
      const kind = seq % 3 === 0 ? 'heartbeat' : 'event';
      const { key: path, ...actual } = file(`/home/alice/${h.id}-${seq}.txt`, `${seq}\n`);
      const deviations: Deviation[] =
        kind === 'heartbeat'
          ? []
          : [{ collector: 'files', key: path, change: 'added', expected: null, actual, severity: 'low' }];
      return {
        schema: REPORT_SCHEMA_ID,
        kind,
        reportId: randomUUID(),
        hostId: h.id,
        imageId: IMAGE,
        manifestDigest: manifest.digests.overall,
        agentVersion: '0.1.0',
        seq,
        scannedAt: new Date().toISOString(),
        digests: sectionDigests(manifest.sections),
        collectors: [],
        deviations,
      };
    };

    let total = 0;
    for (let round = 0; round < 5; round++) {
      const dispatcher = new Agent({ connections: HOSTS, pipelining: 0 });
      let killed = false;
      let answered = 0;
      await Promise.all(
        hosts.map(async (h) => {
          while (!killed) {
            const report = next(h);
            let res: { status: number; body: any };
            try {
              res = await call(ctl.url, 'POST', '/api/v1/reports', h.credential, report, dispatcher);
            } catch {
              return; // unanswered: not acknowledged, so nothing is owed (the agent would retry it)
            }
            expect(res.status, JSON.stringify(res.body)).toBe(200);
            h.acked.push(report);
            // Killed as soon as a few replies are in, with the other hosts' requests in flight.
            if (++answered >= 3 + round && !killed) {
              killed = true;
              ctl.proc.kill('SIGKILL');
            }
          }
        }),
      );
      expect(await ctl.exited).toEqual({ code: null, signal: 'SIGKILL' });
      await dispatcher.destroy();
      total += answered;

      ctl = await start(configFile);
      for (const h of hosts) {
        const detail = await call(ctl.url, 'GET', `/api/v1/hosts/${h.id}`, tokens.viewer);
        const stored = new Set(
          (
            (await call(ctl.url, 'GET', `/api/v1/hosts/${h.id}/reports?limit=500`, tokens.viewer)).body.reports as {
              reportId: string;
            }[]
          ).map((r) => r.reportId),
        );
        for (const r of h.acked) {
          // Heartbeats are not stored as reports: the host's seq says they were taken.
          if (r.kind === 'heartbeat') expect(detail.body.host.lastSeq).toBeGreaterThanOrEqual(r.seq);
          else
            expect(stored, `${h.id} seq ${r.seq} (${r.kind}) was acknowledged, round ${round}`).toContain(r.reportId);
        }
        // An unanswered report may have been stored too; the next one must be above whatever was.
        h.seq = Math.max(h.seq, detail.body.host.lastSeq);
      }
    }
    expect(total).toBeGreaterThanOrEqual(5 * 3);
    ctl.proc.kill('SIGTERM');
    await ctl.exited;
  }, 120_000);
});
