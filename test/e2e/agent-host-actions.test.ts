/**
 * Operator actions against the real agent (a child process) and a real controller over HTTP: a
 * re-check makes the running agent scan once at its next heartbeat; a reset makes the controller
 * refuse its credential, the agent enrolls again by itself with its enrollment token (accepted once),
 * and keeps reporting under the new credential.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  agentFor,
  bake,
  HOST_ID,
  killAll,
  publishedController,
  until,
  type Baked,
  type Controller,
} from '../helpers/agent-host.js';

let baked: Baked;
beforeAll(() => {
  baked = bake();
}, 60_000);

const controllers: Controller[] = [];
afterEach(async () => {
  await killAll();
  for (const c of controllers.splice(0)) await c.stop();
});

// Scans only at start (and when asked): any later scan is the one the operator requested.
const RARELY = '0 0 0 1 1 *';
const scans = async (c: Controller) => (await c.reports()).filter((r) => r.kind === 'scan').length;
const auditText = async (c: Controller) => JSON.stringify((await c.api('GET', '/api/v1/audit?limit=1000')).body);

describe('driftwarden agent: reset and re-check by an operator', () => {
  it('a re-check is answered by exactly one scan at the next heartbeat', async () => {
    const c = await publishedController(baked, controllers);
    const a = agentFor(baked, c, { scan: RARELY, heartbeat: '200ms', watch: null });
    a.start();
    await until(
      async () => (await c.host())?.host.state === 'clean',
      () => `host clean\n${a.log.slice(-2000)}`,
      20_000,
    );
    const before = await scans(c);
    const r = await c.api('POST', `/api/v1/hosts/${HOST_ID}/recheck`, { reason: 'e2e' });
    expect(r.status).toBe(200);
    await until(
      async () => (await scans(c)) === before + 1,
      () => `one more scan\n${a.log.slice(-2000)}`,
      20_000,
    );
    await new Promise((res) => setTimeout(res, 1500)); // several more heartbeats
    expect(await scans(c)).toBe(before + 1);
    expect(
      (await c.api<{ host: { scanRequestedAt: string | null } }>('GET', `/api/v1/hosts/${HOST_ID}`)).body.host
        .scanRequestedAt,
    ).toBeNull();
    expect(a.exits).toEqual([]);
  });

  it('after a reset the agent enrolls again by itself, once, and reports under the new credential', async () => {
    const c = await publishedController(baked, controllers);
    const a = agentFor(baked, c, { scan: RARELY, heartbeat: '200ms', watch: null });
    a.start();
    await until(
      async () => (await c.host())?.host.state === 'clean',
      () => `host clean\n${a.log.slice(-2000)}`,
      20_000,
    );
    const credential = readFileSync(join(a.stateDir, 'credential'), 'utf8').trim();
    expect((await c.api('POST', `/api/v1/hosts/${HOST_ID}/reset`, { reason: 'e2e' })).status).toBe(200);
    await until(
      () => readFileSync(join(a.stateDir, 'credential'), 'utf8').trim() !== credential,
      () => `a new credential\n${a.log.slice(-2000)}`,
      20_000,
    );
    await until(
      async () =>
        (await c.api<{ host: { lifecycle: string; lastSeq: number } }>('GET', `/api/v1/hosts/${HOST_ID}`)).body.host
          .lastSeq > 0,
      () => `heartbeats accepted again\n${a.log.slice(-2000)}`,
      20_000,
    );
    const detail = (await c.api<{ host: { lifecycle: string; state: string } }>('GET', `/api/v1/hosts/${HOST_ID}`)).body
      .host;
    expect(detail).toMatchObject({ lifecycle: 'active', state: 'pending' });
    expect(a.count('the controller refused the host credential; re-enrolled with the enrollment token')).toBe(1);
    // A re-check brings it back to clean with a scan.
    expect((await c.api('POST', `/api/v1/hosts/${HOST_ID}/recheck`, {})).status).toBe(200);
    await until(
      async () => (await c.host())?.host.state === 'clean',
      () => `host clean again\n${a.log.slice(-2000)}`,
      20_000,
    );
    const log = await auditText(c);
    for (const action of ['host.reset', 'host.re-enroll', 'host.recheck']) expect(log).toContain(`"${action}"`);
    expect(a.exits).toEqual([]);
  });
});
