/**
 * The agent when the controller stops accepting its host credential (401), end to end: the real agent
 * as a child process and real controllers over HTTP. Nothing spooled is set aside or lost; with an
 * enrollment token the agent enrolls again where the controller allows it (it has forgotten the host),
 * and otherwise it keeps spooling, says so in its log and in `agent status`, and delivers once the
 * credential is good again.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { hashSecret } from '../../controller/auth.js';
import {
  agentFor,
  bake,
  HOST_ID,
  killAll,
  publishedController,
  until,
  type AgentHost,
  type AgentOptions,
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

const controller = (port = 0): Promise<Controller> => publishedController(baked, controllers, port);

/** How many requests the controller refused for want of a valid credential (its own metric). */
async function refusedRequests(c: Controller): Promise<number> {
  const res = await request(`${c.url}/metrics`, { headers: { authorization: `Bearer ${c.adminToken}` } });
  const m = /^driftwarden_requests_rejected_total\{code="DW_ERR_UNAUTHORIZED"\} (\d+)$/m.exec(await res.body.text());
  return m ? Number(m[1]) : 0;
}
const host = (c: Controller, opts: Partial<AgentOptions> = {}): AgentHost => agentFor(baked, c, opts);

async function clean(c: Controller, a: AgentHost): Promise<void> {
  await until(
    async () => (await c.host())?.host.state === 'clean',
    () => `host clean\n${a.log.slice(-2000)}`,
    20_000,
  );
}

describe('driftwarden agent: a refused host credential', () => {
  it('enrolls again with its enrollment token when a new controller does not know it, and delivers what it spooled meanwhile', async () => {
    const old = await controller();
    const a = host(old, { scan: '*/1 * * * * *', heartbeat: '200ms', watch: null });
    a.start();
    await clean(old, a);
    const credential = readFileSync(join(a.stateDir, 'credential'), 'utf8').trim();
    // The controller is rebuilt on an empty store at the same address, with a new enrollment token.
    await old.stop();
    await until(
      () => a.spooled().filter((e) => e.kind === 'scan').length >= 2,
      () => `two scans spooled\n${a.log.slice(-2000)}`,
      20_000,
    );
    const fresh = await controller(old.port);
    writeFileSync(a.tokenFile, fresh.enrollToken + '\n');
    const mustArrive = a
      .spooled()
      .filter((e) => e.kind === 'scan')
      .map((e) => e.seq);

    await until(
      async () => {
        const stored = new Set((await fresh.reports()).map((r) => r.seq));
        return mustArrive.every((q) => stored.has(q));
      },
      () => `the spooled scans stored by the new controller\n${a.log.slice(-3000)}`,
      20_000,
    );
    expect((await fresh.host())!.host.state).toBe('clean');
    expect(a.count('the controller refused the host credential; re-enrolled with the enrollment token')).toBe(1);
    expect(readFileSync(join(a.stateDir, 'credential'), 'utf8').trim()).not.toBe(credential);
    expect(readdirSync(a.rejectedDir())).toEqual([]);
    const status = await a.status();
    expect(status.enrolled).toBe(true);
    expect(status.credentialRefused).toBeUndefined();
    const seqs = (await fresh.reports()).map((r) => r.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(a.exits).toEqual([]);
  });

  it('keeps spooling and shows the refusal while the controller still knows the host under another credential, and delivers once it is restored', async () => {
    const c = await controller();
    const a = host(c, { heartbeat: '200ms' });
    a.start();
    await clean(c, a);
    const credential = readFileSync(join(a.stateDir, 'credential'), 'utf8').trim();
    // What a credential rotation or revocation on the controller leaves behind: the host's record
    // holds another credential's hash.
    await c.running!.store.setHostCredential(HOST_ID, hashSecret('dwh_rotated-elsewhere'));
    writeFileSync(join(a.root, 'etc/ssh/sshd_config'), 'PermitRootLogin yes\n');
    await until(
      () => a.spooled().some((e) => e.kind === 'event'),
      () => `the event spooled\n${a.log.slice(-2000)}`,
    );
    const refused = await until(
      async () => {
        const s = await a.status();
        return s.credentialRefused?.reenroll?.startsWith('refused') ? s : null;
      },
      () => `agent status shows the refusal\n${a.log.slice(-2000)}`,
    );
    expect(refused.enrolled).toBe(true);
    expect(refused.credentialRefused).toMatchObject({
      reason: '401: unknown host credential',
      reenroll: expect.stringMatching(/: 409: host .* is already enrolled/),
    });
    expect(a.log).toContain('the controller refuses this host credential; reports stay spooled and are retried');
    // Nothing set aside, nothing lost, the old credential kept, the host's state untouched.
    expect(readdirSync(a.rejectedDir())).toEqual([]);
    expect(readFileSync(join(a.stateDir, 'credential'), 'utf8').trim()).toBe(credential);
    expect((await c.host())!.host.state).toBe('clean');
    // Re-enrollment is paced by the backoff, not tried on every heartbeat (5 a second here).
    // Each attempt is logged once (backoff 1 s, 2 s, 4 s, ... with jitter): over the next 15 refused
    // requests (the heartbeats' own 401s, counted by the controller), fewer than 8 attempts.
    const refusedBefore = await refusedRequests(c);
    await until(
      async () => (await refusedRequests(c)) >= refusedBefore + 15,
      () => `15 more refused requests\n${a.log.slice(-2000)}`,
      20_000,
    );
    expect(a.count('the controller refuses this host credential')).toBeLessThan(8);
    expect(a.spooled().some((e) => e.kind === 'event')).toBe(true);

    await c.running!.store.setHostCredential(HOST_ID, hashSecret(credential));
    await until(
      async () => (await c.host())!.host.state === 'tainted' && a.spooled().length === 0,
      () => `the event delivered\n${a.log.slice(-3000)}`,
      20_000,
    );
    expect((await c.reports()).map((r) => r.kind)).toContain('event');
    expect((await a.status()).credentialRefused).toBeUndefined();
    expect(a.exits).toEqual([]);
  });

  it('--once exits 2 naming the refused credential, and leaves the report spooled', async () => {
    const c = await controller();
    const a = host(c);
    expect(await a.once()).toMatchObject({ code: 0 });
    await c.running!.store.setHostCredential(HOST_ID, hashSecret('dwh_rotated-elsewhere'));
    const r = await a.once();
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /the controller refuses this host's credential \(401: unknown host credential; re-enrollment: refused at .*409: host .* is already enrolled.*\); 1 report\(s\) stay spooled/,
    );
    expect(a.spooled().map((e) => e.kind)).toEqual(['scan']);
  });
});
