/**
 * @module The scheduler through the API, on hosts tainted by real reports: dry-run decisions visible to
 * viewers, operator actions audited with their actor, roles enforced, the breaker and resume.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../controller/app.js';
import { createMetrics } from '../../../controller/metrics.js';
import { createScheduler } from '../../../controller/scheduler/index.js';
import { ControllerConfigSchema } from '../../../controller/config.js';
import { openStore } from '../../../controller/store/index.js';
import { Harness, inject, silentLog } from '../harness.js';
import { FakeProvider } from './fixtures.js';

describe('replacements API', () => {
  let h: Harness;
  let provider: FakeProvider;

  async function start(scheduler: Record<string, unknown>) {
    const store = await openStore('sqlite::memory:');
    h = await Harness.start(store, { config: { scheduler } });
    provider = new FakeProvider();
    const metrics = createMetrics();
    const config = ControllerConfigSchema.parse({ store: 'sqlite::memory:', scheduler });
    // The configured provider's type selects nothing here: every provider is the fake, so calls can be counted.
    const s = createScheduler({
      store,
      config,
      log: silentLog,
      clock: h.clock.now,
      registry: metrics.registry,
      makeProvider: () => provider,
    });
    await h.app.close();
    h.app = await buildApp({
      store,
      config,
      policy: h.policy,
      trustedKeys: [h.key.publicKey],
      log: silentLog,
      metrics,
      clock: h.clock.now,
      scheduler: s,
    });
  }

  /** `n` hosts of group web; the first `tainted` get a package upgrade, which the default policy taints on. */
  async function fleet(n: number, tainted: number) {
    for (let i = 0; i < n; i++) {
      const sim = await h.enroll(`web-${i}`, { group: 'web' });
      if (i < tainted) sim.upgrade('openssl', '3.0.99-1');
      expect((await sim.scan()).status).toBe(200);
    }
  }

  const tick = () => h.req('POST', '/api/v1/scheduler/tick', { token: h.tokens.admin });

  afterEach(async () => {
    await h.close();
  });

  describe('dry-run', () => {
    beforeEach(() => start({ budgets: [{ group: '*', maxUnavailable: 1 }], breaker: { taintedShare: 0.5 } }));

    it('shows what it would replace and why, and changes no host', async () => {
      await fleet(10, 2);
      expect((await tick()).body).toMatchObject({ queued: 2, wouldReplace: 1, scheduled: 0 });
      const r = await h.get('/api/v1/replacements');
      expect(r.status).toBe(200);
      expect(r.body.mode).toBe('dry-run');
      expect(
        r.body.replacements.map((x: { hostId: string; decision: string; severity: string }) => [
          x.hostId,
          x.decision,
          x.severity,
        ]),
      ).toEqual([
        ['web-0', 'would-replace', 'high'],
        ['web-1', 'waiting', 'high'],
      ]);
      expect(r.body.replacements[1].decisionReason).toBe(
        'budget "*": maxUnavailable 1, 0 unavailable; 1 going to hosts ahead in the queue',
      );
      expect(r.body.replacements[0].hostname).toBe('web-0.example.internal');
      expect((await h.host('web-0')).state).toBe('tainted');
      expect(provider.calls).toEqual([]);
      const groups = await h.get('/api/v1/replacement-groups');
      expect(groups.body.groups).toEqual([
        expect.objectContaining({
          name: 'web',
          mode: 'dry-run',
          paused: false,
          hosts: { total: 10, unavailable: 0, clean: 8 },
          allowedNow: 1,
          queue: expect.objectContaining({ queued: 2 }),
        }),
      ]);
    });

    it('lists the queue in keyset pages: next until the last page', async () => {
      await fleet(7, 7);
      await tick();
      const seen: string[] = [];
      let url = '/api/v1/replacements?limit=3';
      for (let pages = 0; ; pages++) {
        const r = await h.get(url);
        expect(r.status).toBe(200);
        seen.push(...r.body.replacements.map((x: { hostId: string; hostname: string }) => `${x.hostId}=${x.hostname}`));
        if (!r.body.next) break;
        expect(pages).toBeLessThan(5);
        url = `/api/v1/replacements?limit=3&after=${r.body.next}`;
      }
      expect(seen).toEqual(
        (await h.get('/api/v1/replacements')).body.replacements.map(
          (x: { hostId: string; hostname: string }) => `${x.hostId}=${x.hostname}`,
        ),
      );
      expect(seen).toHaveLength(7);
      expect(seen[0]).toBe('web-0=web-0.example.internal');
    });

    it('a viewer reads but cannot act; an operator requests and cancels, audited with the actor', async () => {
      await fleet(4, 0);
      expect(
        (
          await h.req('POST', '/api/v1/replacements', {
            token: h.tokens.viewer,
            body: { hostId: 'web-1', reason: 'x' },
          })
        ).status,
      ).toBe(403);
      expect((await h.req('POST', '/api/v1/scheduler/tick', { token: h.tokens.operator })).status).toBe(403);
      const made = await h.req('POST', '/api/v1/replacements', {
        token: h.tokens.operator,
        body: { hostId: 'web-1', reason: 'suspected compromise (INC-7)' },
      });
      expect(made.status).toBe(201);
      // A request is not drift: the host is not tainted for it, and the cancel below leaves it as it was.
      const before = (await h.host('web-1')).state;
      expect(before).not.toBe('tainted');
      const again = await h.req('POST', '/api/v1/replacements', {
        token: h.tokens.operator,
        body: { hostId: 'web-1', reason: 'again' },
      });
      expect(again.status).toBe(409);
      const c = await h.req('POST', `/api/v1/replacements/${made.body.id}/cancel`, {
        token: h.tokens.operator,
        body: { reason: 'false alarm' },
      });
      expect(c.body).toMatchObject({ state: 'cancelled' });
      expect((await h.host('web-1')).state).toBe(before);
      const audit = (await h.get('/api/v1/audit?limit=100')).body.audit as {
        action: string;
        actor: string;
        target: string;
      }[];
      expect(
        audit.filter((a) => a.action.startsWith('replacement.')).map((a) => [a.action, a.actor, a.target]),
      ).toEqual([
        ['replacement.request', h.actor('operator'), 'web-1'],
        ['replacement.cancel', h.actor('operator'), 'web-1'],
      ]);
      expect((await h.get('/api/v1/replacements/nope')).status).toBe(404);
      expect((await h.get('/api/v1/replacements?after=bm9wZQ')).status).toBe(400);
      expect((await h.get('/api/v1/replacements?state=bogus')).status).toBe(400);
    });
  });

  describe('enforce', () => {
    beforeEach(() =>
      start({
        mode: 'enforce',
        provider: { type: 'exec', command: ['/bin/false'] },
        budgets: [{ group: '*', maxUnavailable: 5 }],
        groups: { web: { requireApproval: true } },
      }),
    );

    it('waits for approval, then the provider replaces; the breaker pauses the group and an operator resumes it', async () => {
      await fleet(10, 1);
      await tick();
      const list = (await h.get('/api/v1/replacements')).body.replacements;
      expect(list[0]).toMatchObject({ hostId: 'web-0', state: 'awaiting-approval' });
      const ok = await h.req('POST', `/api/v1/replacements/${list[0].id}/approve`, { token: h.tokens.operator });
      expect(ok.body).toMatchObject({ approvedBy: h.actor('operator') });
      await tick();
      expect(provider.accepted).toEqual(['web-0']);
      expect((await h.host('web-0')).state).toBe('replacing');

      // Four more hosts tainted at once: 5 of 10 within the window, above 30%.
      for (const i of [1, 2, 3, 4])
        expect((await h.hosts.get(`web-${i}`)!.upgrade('curl', '8.0.0-1').scan()).status).toBe(200);
      expect((await tick()).body.tripped).toEqual(['web']);
      const g = (await h.get('/api/v1/replacement-groups')).body.groups[0];
      expect(g).toMatchObject({ name: 'web', paused: true, pausedBy: 'breaker', requireApproval: true });
      const metrics = await inject(h.app, 'GET', '/metrics', { token: h.tokens.viewer });
      expect(metrics.text).toContain('driftwarden_breaker_trips_total{group="web"} 1');
      expect(metrics.text).toContain('driftwarden_group_paused{group="web"} 1');
      expect((await h.req('POST', '/api/v1/replacement-groups/web/resume', { token: h.tokens.viewer })).status).toBe(
        403,
      );
      const resumed = await h.req('POST', '/api/v1/replacement-groups/web/resume', { token: h.tokens.operator });
      expect(resumed.body).toMatchObject({ paused: false, resumedBy: h.actor('operator') });
      expect((await h.req('POST', '/api/v1/replacement-groups/web/resume', { token: h.tokens.operator })).status).toBe(
        409,
      );
    });
  });
});
