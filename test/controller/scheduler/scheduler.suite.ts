/** @module The scheduler's behaviour on a real store (run on SQLite and PostgreSQL): queue, budgets, windows, breaker, modes, retries, restarts, operators. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SchedulerEvent } from '../../../controller/scheduler/scheduler-events.js';
import { replacementCursor, type ReplacementRow } from '../../../controller/store/replacements.js';
import type { Store } from '../../../controller/store/types.js';
import { FakeClock, HOUR, MINUTE } from '../harness.js';
import { Scheduler } from '../../../controller/scheduler/scheduler.js';
import { ProviderError, type Provider, type ReplacementTarget } from '../../../controller/providers/types.js';
import { FakeProvider, addHost, makeScheduler, schedulerConfig, silent, taint } from './fixtures.js';
import { until } from '../../helpers/wait.js';

const ENFORCE = { mode: 'enforce', quietFor: '2m' };

export function runSchedulerSuite(label: string, newStore: () => Promise<Store>): void {
  describe(`scheduler (${label})`, () => {
    let store: Store;
    let clock: FakeClock;
    beforeEach(async () => {
      store = await newStore();
      clock = new FakeClock();
    });
    afterEach(async () => {
      await store.close();
    });

    const rows = async (): Promise<ReplacementRow[]> => store.replacements.list({ limit: 1000 });
    const byHost = async (): Promise<Record<string, ReplacementRow>> =>
      Object.fromEntries((await rows()).map((r) => [r.hostId, r]));
    const hostState = async (id: string) => (await store.getHost(id))!.state;
    /** Time passes; hosts keep reporting, except those being replaced (a terminated instance falls quiet). */
    const advance = async (ms: number): Promise<void> => {
      clock.advance(ms);
      const { hosts } = await store.listHosts({ limit: 1000 });
      for (const h of hosts)
        if (h.state !== 'replacing' && h.state !== 'replaced' && h.state !== 'silent')
          await store.updateHost(h.id, { lastSeenAt: clock.iso() });
    };
    const quiet = () => advance(3 * MINUTE);

    async function fleet(n: number, tainted: number, o: { group?: string; prefix?: string } = {}): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const id = `${o.prefix ?? 'h'}${String(i).padStart(2, '0')}`;
        await addHost(store, clock, id, {
          group: o.group ?? 'web',
          state: i < tainted ? 'tainted' : 'clean',
          taintedAgoMs: HOUR - i * MINUTE,
        });
        ids.push(id);
      }
      return ids;
    }

    describe('modes', () => {
      it('dry-run (the default) records what it would replace and why, within budgets, and acts on nothing', async () => {
        await fleet(20, 3);
        const provider = new FakeProvider();
        const s = makeScheduler(store, clock, { budgets: [{ group: '*', maxUnavailable: 2 }] }, provider);
        expect(s.config.mode).toBe('dry-run');
        const r = await s.tick();
        expect(r).toMatchObject({ queued: 3, wouldReplace: 2, scheduled: 0, started: 0 });
        const q = await byHost();
        expect(q.h00).toMatchObject({ state: 'queued', decision: 'would-replace' });
        expect(q.h00!.decisionReason).toMatch(/within budgets/);
        expect(q.h01).toMatchObject({ decision: 'would-replace' });
        expect(q.h02).toMatchObject({ state: 'queued', decision: 'waiting' });
        expect(q.h02!.decisionReason).toBe(
          'budget "*": maxUnavailable 2, 0 unavailable; 2 going to hosts ahead in the queue',
        );
        expect(provider.calls).toEqual([]);
        expect(await hostState('h00')).toBe('tainted');
        // Recorded once, not on every tick.
        await s.tick();
        const audit = (await store.listAudit({ limit: 100 })).filter((a) => a.action === 'replacement.would-replace');
        expect(audit.map((a) => a.target).sort()).toEqual(['h00', 'h01']);
      });

      it('off queues nothing and calls nothing', async () => {
        await fleet(5, 2);
        const provider = new FakeProvider();
        const s = makeScheduler(store, clock, { mode: 'off' }, provider);
        await s.tick();
        expect(await rows()).toEqual([]);
        expect(provider.calls).toEqual([]);
      });

      it('a group can enforce while the rest of the fleet stays in dry-run, and a group can be off', async () => {
        await fleet(10, 1, { group: 'web', prefix: 'w' });
        await fleet(10, 1, { group: 'db', prefix: 'd' });
        await fleet(10, 1, { group: 'batch', prefix: 'b' });
        const provider = new FakeProvider();
        const s = makeScheduler(
          store,
          clock,
          { mode: 'dry-run', groups: { web: { mode: 'enforce' }, 'bat*': { mode: 'off' } } },
          provider,
        );
        await s.tick();
        const q = await byHost();
        expect(q.w00).toMatchObject({ state: 'replacing' });
        expect(q.d00).toMatchObject({ state: 'queued', decision: 'would-replace' });
        expect(q.b00).toMatchObject({ state: 'queued', decision: 'off' });
        expect(provider.accepted).toEqual(['w00']);
      });
    });

    describe('enforce and completion', () => {
      it('replaces the most severe, longest tainted hosts first, and completes once the provider confirms and the host is quiet', async () => {
        await fleet(20, 0);
        await addHost(store, clock, 'low-old', { state: 'tainted', severity: 'low', taintedAgoMs: 5 * HOUR });
        await addHost(store, clock, 'crit-new', { state: 'tainted', severity: 'critical', taintedAgoMs: MINUTE });
        await addHost(store, clock, 'crit-old', { state: 'tainted', severity: 'critical', taintedAgoMs: 2 * HOUR });
        const provider = new FakeProvider();
        const events: SchedulerEvent['type'][] = [];
        const s = makeScheduler(store, clock, { ...ENFORCE, budgets: [{ group: '*', maxUnavailable: 1 }] }, provider);
        s.events.on((e) => void events.push(e.type));
        await s.tick();
        expect(provider.accepted).toEqual(['crit-old']);
        expect(await hostState('crit-old')).toBe('replacing');
        const r1 = (await byHost())['crit-old']!;
        expect(r1).toMatchObject({ state: 'replacing', attempts: 1, provider: 'fake', providerRef: 'op-crit-old-1' });

        // Confirmed, but the host is still reporting: not replaced yet.
        provider.done.add('crit-old');
        await store.updateHost('crit-old', { lastSeenAt: clock.iso() });
        await s.tick();
        expect((await byHost())['crit-old']).toMatchObject({ state: 'replacing' });
        expect((await byHost())['crit-old']!.confirmedAt).not.toBeNull();

        // A new host of the group comes up clean; the old one goes quiet.
        await addHost(store, clock, 'successor', { state: 'clean' });
        await store.updateHost('successor', {});
        await quiet();
        const enrolledNow = clock.iso();
        await store.transaction(async (tx) => {
          await tx.insertHost({
            ...(await tx.getHost('successor'))!,
            id: 'successor-2',
            credentialHash: 'cred-s2',
            enrolledAt: enrolledNow,
            lastSeenAt: enrolledNow,
          } as never);
        });
        await s.tick();
        const done = (await byHost())['crit-old']!;
        expect(done).toMatchObject({ state: 'replaced', replacedBy: 'successor-2' });
        expect(await hostState('crit-old')).toBe('replaced');
        // The slot is free again: the next in line is crit-new, then low-old.
        expect(provider.accepted).toEqual(['crit-old', 'crit-new']);
        expect(events).toEqual(
          expect.arrayContaining([
            'replacement-queued',
            'replacement-scheduled',
            'replacement-started',
            'replacement-completed',
          ]),
        );
        const transitions = (await store.listTransitions('crit-old')).map((t) => t.to);
        expect(transitions.slice(-3)).toEqual(['replacement-scheduled', 'replacing', 'replaced']);
      });
    });

    describe('budgets', () => {
      it('maxUnavailable as a percentage rounds up, and hosts already silent or unheard-of count against it', async () => {
        await fleet(20, 5);
        const provider = new FakeProvider();
        // 10% of 20 = 2; one host has not reported for longer than silentAfter, one is silent.
        await store.updateHost('h19', { lastSeenAt: new Date(clock.now().getTime() - HOUR).toISOString() });
        await store.updateHost('h18', { state: 'silent' });
        const s = makeScheduler(
          store,
          clock,
          { ...ENFORCE, budgets: [{ group: '*', maxUnavailable: '10%' }] },
          provider,
        );
        await s.tick();
        expect(provider.accepted).toEqual([]);
        expect((await byHost()).h00!.decisionReason).toBe('budget "*": maxUnavailable 10% of 20 = 2, 2 unavailable');
        await store.updateHost('h18', { state: 'clean', lastSeenAt: clock.iso() });
        await s.tick();
        expect(provider.accepted).toEqual(['h00']);
      });

      it('every matching budget applies and the strictest wins; the overall budget spans groups', async () => {
        await fleet(10, 4, { group: 'web-a', prefix: 'a' });
        await fleet(10, 4, { group: 'web-b', prefix: 'b' });
        const provider = new FakeProvider();
        const s = makeScheduler(
          store,
          clock,
          {
            ...ENFORCE,
            budgets: [
              { group: '*', maxUnavailable: 5 },
              { group: 'web-*', maxUnavailable: 2 },
            ],
            overall: { maxUnavailable: 3 },
          },
          provider,
        );
        await s.tick();
        expect(provider.accepted).toHaveLength(3);
        const waiting = (await rows()).filter((r) => r.decision === 'waiting');
        expect(waiting.some((r) => r.decisionReason?.startsWith('overall budget: maxUnavailable 3'))).toBe(true);
        const perGroup = (g: string) => provider.accepted.filter((h) => h.startsWith(g)).length;
        expect(perGroup('a')).toBeLessThanOrEqual(2);
        expect(perGroup('b')).toBeLessThanOrEqual(2);
      });

      it('rate: at most N starts per interval, counted from the store (so also across a restart)', async () => {
        await fleet(10, 4);
        const provider = new FakeProvider();
        const cfg = { ...ENFORCE, budgets: [{ group: '*', maxUnavailable: 10, rate: { max: 1, per: '1h' } }] };
        await makeScheduler(store, clock, cfg, provider).tick();
        expect(provider.accepted).toEqual(['h00']);
        await advance(30 * MINUTE);
        // A restarted controller: a new scheduler on the same store.
        const again = makeScheduler(store, clock, cfg, provider);
        await again.tick();
        expect(provider.accepted).toEqual(['h00']);
        expect((await byHost()).h01!.decisionReason).toBe('budget "*": rate 1 per 1h, 1 started');
        await advance(31 * MINUTE);
        await again.tick();
        expect(provider.accepted).toEqual(['h00', 'h01']);
      });

      it('maintenance windows: nothing starts outside them; a start inside an open window', async () => {
        await fleet(10, 2);
        const provider = new FakeProvider();
        // T0 is 08:00 UTC on a Monday; the window opens at 02:00 for 3h on weekdays.
        const cfg = {
          ...ENFORCE,
          budgets: [{ group: '*', maxUnavailable: 5, windows: [{ schedule: '0 2 * * 1-5', duration: '3h' }] }],
        };
        const s = makeScheduler(store, clock, cfg, provider);
        await s.tick();
        expect(provider.accepted).toEqual([]);
        expect((await byHost()).h00!.decisionReason).toBe('budget "*": outside its maintenance windows');
        await advance(18 * HOUR + 30 * MINUTE); // Tuesday 02:30
        await s.tick();
        expect(provider.accepted).toEqual(['h00', 'h01']);
      });

      it('maintenance windows on the overall budget hold every group; a closed window is the reason even where another limit is also 0', async () => {
        await fleet(10, 1, { group: 'web', prefix: 'w' });
        await fleet(10, 1, { group: 'db', prefix: 'd' });
        const provider = new FakeProvider();
        const windows = [{ schedule: '0 2 * * 1-5', duration: '3h' }];
        const cfg = {
          ...ENFORCE,
          budgets: [
            { group: 'web', maxUnavailable: 5 },
            { group: 'db', maxUnavailable: 0, windows },
          ],
          overall: { maxUnavailable: 10, windows },
        };
        const s = makeScheduler(store, clock, cfg, provider);
        await s.tick();
        expect(provider.accepted).toEqual([]);
        const q = await byHost();
        expect(q.w00).toMatchObject({
          decision: 'waiting',
          decisionReason: 'overall budget: outside its maintenance windows',
        });
        expect(q.d00).toMatchObject({
          decision: 'waiting',
          decisionReason: 'budget "db": outside its maintenance windows',
        });
        await advance(18 * HOUR + 30 * MINUTE); // Tuesday 02:30: open; db's own maxUnavailable 0 still holds it
        await s.tick();
        expect(provider.accepted).toEqual(['w00']);
        expect((await byHost()).d00!.decisionReason).toBe('budget "db": maxUnavailable 0, 0 unavailable');
      });

      it('minClean: nothing starts while the group has fewer clean reporting hosts', async () => {
        await fleet(4, 3);
        const provider = new FakeProvider();
        const s = makeScheduler(
          store,
          clock,
          { ...ENFORCE, breaker: { taintedShare: 1 }, budgets: [{ group: '*', maxUnavailable: 4, minClean: 2 }] },
          provider,
        );
        await s.tick();
        expect(provider.accepted).toEqual([]);
        expect((await byHost()).h00!.decisionReason).toBe('budget "*": 1 clean hosts, fewer than minClean 2');
      });

      it('budgets hold across a restart: in-flight replacements are read from the store', async () => {
        await fleet(20, 6);
        const provider = new FakeProvider();
        const cfg = { ...ENFORCE, budgets: [{ group: '*', maxUnavailable: 2 }] };
        await makeScheduler(store, clock, cfg, provider).tick();
        expect(provider.accepted).toHaveLength(2);
        const restarted = makeScheduler(store, clock, cfg, provider);
        await restarted.tick();
        await restarted.tick();
        expect(provider.accepted).toHaveLength(2);
      });
    });

    describe('breaker', () => {
      it('pauses a group when more than taintedShare of it is tainted within the window, audits and alerts, until resumed', async () => {
        await fleet(10, 0);
        const provider = new FakeProvider();
        const events: SchedulerEvent[] = [];
        const s = makeScheduler(
          store,
          clock,
          { ...ENFORCE, breaker: { taintedShare: 0.3, window: '15m' }, budgets: [{ group: '*', maxUnavailable: 10 }] },
          provider,
        );
        s.events.on((e) => void events.push(e));
        for (const id of ['h00', 'h01', 'h02', 'h03']) {
          await taint(store, clock, id);
          await advance(MINUTE);
        }
        const r = await s.tick();
        expect(r.tripped).toEqual(['web']);
        expect(provider.calls).toEqual([]);
        const group = (await s.groups()).find((g) => g.name === 'web')!;
        expect(group).toMatchObject({ paused: true, pausedBy: 'breaker' });
        expect(group.pausedReason).toMatch(/4 of 10 hosts \(40%\) tainted within 15m/);
        expect((await byHost()).h00).toMatchObject({ decision: 'paused' });
        expect(events.find((e) => e.type === 'breaker-tripped')).toMatchObject({ group: 'web' });
        const audit = await store.listAudit({ limit: 100 });
        expect(audit.find((a) => a.action === 'replacement.breaker-trip')).toMatchObject({
          actor: 'controller',
          target: 'web',
        });

        await s.tick();
        expect(provider.calls).toEqual([]);
        await s.resume('web', 'token:t1(alice)');
        expect((await store.listAudit({ limit: 100 })).find((a) => a.action === 'replacement.resume')).toMatchObject({
          actor: 'token:t1(alice)',
          target: 'web',
        });
        expect(events.at(-1)).toMatchObject({ type: 'breaker-resumed', group: 'web', actor: 'token:t1(alice)' });
        // The taints the operator accepted do not trip it again.
        await s.tick();
        expect(provider.accepted).toHaveLength(4);
        await expect(s.resume('web', 'x')).rejects.toMatchObject({ code: 'DW_ERR_STATE' });
      });

      it('pauses a group when many hosts show the same deviation at once, even below taintedShare', async () => {
        await fleet(40, 0);
        const provider = new FakeProvider();
        const s = makeScheduler(
          store,
          clock,
          { ...ENFORCE, breaker: { sameDeviation: 5 }, budgets: [{ group: '*', maxUnavailable: 10 }] },
          provider,
        );
        for (let i = 0; i < 5; i++)
          await taint(store, clock, `h${String(i).padStart(2, '0')}`, { deviation: '/etc/ssh/sshd_config' });
        await s.tick();
        const group = (await s.groups()).find((g) => g.name === 'web')!;
        expect(group.paused).toBe(true);
        expect(group.pausedReason).toMatch(
          /5 hosts tainted within 15m by the same deviation \(files \/etc\/ssh\/sshd_config modified/,
        );
        expect(provider.calls).toEqual([]);
      });

      it('taints spread over more than the window do not trip it', async () => {
        await fleet(10, 0);
        const provider = new FakeProvider();
        const s = makeScheduler(store, clock, { ...ENFORCE, budgets: [{ group: '*', maxUnavailable: 1 }] }, provider);
        for (const id of ['h00', 'h01', 'h02', 'h03', 'h04']) {
          await taint(store, clock, id);
          await s.tick();
          await advance(20 * MINUTE);
        }
        expect((await s.groups())[0]!.paused).toBe(false);
      });
    });

    describe('retries and failures', () => {
      it('retries a failed attempt with backoff, then surfaces it as failed after maxAttempts', async () => {
        await fleet(20, 1);
        const provider = new FakeProvider();
        provider.replaceOutcomes.set('h00', ['fail', 'fail', 'fail']);
        const events: SchedulerEvent[] = [];
        const s = makeScheduler(
          store,
          clock,
          { ...ENFORCE, retry: { maxAttempts: 3, backoff: '1m', maxBackoff: '1h' } },
          provider,
        );
        s.events.on((e) => void events.push(e));
        await s.tick();
        let r = (await byHost()).h00!;
        expect(r).toMatchObject({
          state: 'queued',
          attempts: 1,
          decision: 'backoff',
          lastError: 'fake: platform refused h00',
        });
        expect(await hostState('h00')).toBe('tainted');
        await s.tick(); // still backing off
        expect(provider.calls.filter((c) => c.method === 'replace')).toHaveLength(1);
        await advance(61_000);
        await s.tick();
        r = (await byHost()).h00!;
        expect(r.attempts).toBe(2);
        await advance(60_000); // the second backoff is 2m
        await s.tick();
        expect(provider.calls.filter((c) => c.method === 'replace')).toHaveLength(2);
        await advance(61_000);
        await s.tick();
        r = (await byHost()).h00!;
        expect(r).toMatchObject({ state: 'failed', attempts: 3 });
        expect(
          events.filter((e) => e.type === 'replacement-failed').map((e) => (e as { final: boolean }).final),
        ).toEqual([false, false, true]);
        // Surfaced: not queued again on its own.
        await advance(HOUR);
        await s.tick();
        expect(provider.calls.filter((c) => c.method === 'replace')).toHaveLength(3);
        // An operator asks again: a fresh set of attempts.
        await s.request('h00', 'token:t1(alice)', 'platform fixed');
        await s.tick();
        expect((await byHost()).h00).toMatchObject({ state: 'replacing', attempts: 1 });
      });

      it('a permanent error fails at once', async () => {
        await fleet(20, 1);
        const provider = new FakeProvider();
        provider.replaceOutcomes.set('h00', ['fail-permanent']);
        const s = makeScheduler(store, clock, ENFORCE, provider);
        await s.tick();
        expect((await byHost()).h00).toMatchObject({
          state: 'failed',
          attempts: 1,
          lastError: 'fake: h00 is unknown to the platform',
        });
      });

      it('an attempt the provider does not confirm within replaceTimeout fails and is retried', async () => {
        await fleet(20, 1);
        const provider = new FakeProvider();
        const s = makeScheduler(store, clock, { ...ENFORCE, replaceTimeout: '10m' }, provider);
        await s.tick();
        await advance(11 * MINUTE);
        await s.tick();
        const r = (await byHost()).h00!;
        expect(r).toMatchObject({ state: 'queued', decision: 'backoff' });
        expect(r.lastError).toBe('not confirmed within replaceTimeout 10m');
        await advance(2 * MINUTE);
        await s.tick();
        expect(provider.accepted).toEqual(['h00', 'h00']);
      });

      it('with no provider configured, an enforced replacement fails visibly instead of pretending', async () => {
        await fleet(20, 1);
        const s = makeScheduler(store, clock, ENFORCE, null);
        await s.tick();
        expect((await byHost()).h00!.lastError).toMatch(/no provider is configured for group web/);
        expect((await byHost()).h00!.state).toBe('failed');
      });

      it('a dead controller holds a replacement only until its lease lapses', async () => {
        await fleet(20, 1);
        const stuck = new FakeProvider();
        stuck.replaceOutcomes.set('h00', ['hang']);
        const a = makeScheduler(store, clock, { ...ENFORCE, lease: '2m' }, stuck, 'controller-a');
        const ticking = a.tick();
        // Wait until A is inside the provider call (it holds the lease).
        await until(() => stuck.calls.length > 0, 'controller A inside the provider call', 5_000, 5);
        expect(stuck.calls).toHaveLength(1);
        const other = new FakeProvider();
        const b = makeScheduler(store, clock, { ...ENFORCE, lease: '2m' }, other, 'controller-b');
        await b.tick();
        expect(other.calls).toEqual([]);
        await advance(3 * MINUTE);
        await b.tick();
        expect(other.accepted).toEqual(['h00']);
        await a.stop();
        await ticking.catch(() => {});
        // A's late failure does not undo what B did.
        expect((await byHost()).h00!.state).toBe('replacing');
      });
    });

    describe('provider calls in parallel', () => {
      /** A platform that never answers and ignores its aborted signal (the worst a provider can do), or throws at once for the hosts listed. */
      class DeadPlatform implements Provider {
        readonly type = 'dead';
        inFlight = 0;
        readonly calls: string[] = [];
        constructor(private readonly throwsFor: ReadonlySet<string> = new Set()) {}
        async replace(t: ReplacementTarget): Promise<never> {
          this.calls.push(t.hostId);
          if (this.throwsFor.has(t.hostId)) throw new ProviderError('dead', `platform refused ${t.hostId}`);
          this.inFlight++;
          return new Promise<never>(() => {});
        }
        async status(): Promise<never> {
          return new Promise<never>(() => {});
        }
      }

      const schedulerFor = (config: Record<string, unknown>, providers: Record<string, Provider>) =>
        new Scheduler({
          store,
          config: schedulerConfig(config),
          log: silent,
          clock: clock.now,
          providerFor: (g) => providers[g] ?? null,
          silentAfterMs: 10 * MINUTE,
        });

      it('a provider that hangs or throws for group A costs A an attempt; group B is replaced in the same pass, without waiting for A', async () => {
        await fleet(10, 3, { group: 'a', prefix: 'a' });
        await fleet(10, 1, { group: 'b', prefix: 'b' });
        const dead = new DeadPlatform(new Set(['a02']));
        const fine = new FakeProvider();
        let aHangingWhenBCalled = -1;
        let bCalledAfterMs = Infinity;
        const began = Date.now();
        fine.onReplace = () => {
          aHangingWhenBCalled = dead.inFlight;
          bCalledAfterMs = Date.now() - began;
        };
        const s = schedulerFor(
          { ...ENFORCE, replaceTimeout: '1s', parallelism: 2, budgets: [{ group: '*', maxUnavailable: 5 }] },
          { a: dead, b: fine },
        );
        const r = await s.tick();
        expect(r).toMatchObject({ scheduled: 4, started: 1, failed: 3 });
        expect(fine.accepted).toEqual(['b00']);
        // B's call went out while A's first call was still hanging (long before its 1s timeout): A's slot was A's alone.
        expect(aHangingWhenBCalled).toBe(1);
        expect(bCalledAfterMs).toBeLessThan(900);
        expect(dead.calls.sort()).toEqual(['a00', 'a01', 'a02']);
        expect(await hostState('b00')).toBe('replacing');
        const q = await byHost();
        for (const id of ['a00', 'a01']) {
          expect(q[id]).toMatchObject({ state: 'queued', decision: 'backoff', attempts: 1 });
          expect(q[id]!.lastError).toBe('dead: replace: no answer within replaceTimeout 1s');
        }
        expect(q.a02).toMatchObject({ state: 'queued', decision: 'backoff', lastError: 'dead: platform refused a02' });
        expect(await hostState('a00')).toBe('tainted');
        // Nobody holds a lease on the failed attempts: the next pass (or another controller) may retry them.
        expect([q.a00!.leaseOwner, q.a01!.leaseOwner, q.a02!.leaseOwner]).toEqual([null, null, null]);
      }, 15_000);

      it('runs at most scheduler.parallelism provider calls at once, and every scheduled host is still asked for', async () => {
        await fleet(20, 6);
        let inFlight = 0;
        let most = 0;
        let expected = 3;
        const slow = new FakeProvider();
        // Each call stays in flight until `expected` calls are (or 2s pass), then a little longer: a
        // bound that is too low never gets there, one too high lets more in meanwhile.
        slow.onReplace = async () => {
          inFlight++;
          most = Math.max(most, inFlight);
          await until(
            () => inFlight >= expected,
            () => `${expected} provider calls in flight (${inFlight} are)`,
            5_000,
            10,
          );
          // IMPORTANT: the one fixed wait left: proving that no extra call starts needs a window in which
          // one could. Nothing the scheduler exposes says "I would start no more"; 100 ms is that window.
          await new Promise((r) => setTimeout(r, 100));
          inFlight--;
        };
        const s = makeScheduler(
          store,
          clock,
          { ...ENFORCE, parallelism: 3, budgets: [{ group: '*', maxUnavailable: 10 }] },
          slow,
        );
        const r = await s.tick();
        expect(r).toMatchObject({ scheduled: 6, started: 6, failed: 0 });
        expect(most).toBe(3);
        expect(slow.accepted.sort()).toEqual(['h00', 'h01', 'h02', 'h03', 'h04', 'h05']);

        // One at a time when configured so.
        await fleet(20, 4, { group: 'db', prefix: 'd' });
        most = 0;
        expected = 1;
        const serial = makeScheduler(
          store,
          clock,
          { ...ENFORCE, parallelism: 1, budgets: [{ group: '*', maxUnavailable: 10 }] },
          slow,
        );
        expect(await serial.tick()).toMatchObject({ started: 4 });
        expect(most).toBe(1);
      });
    });

    describe('leases and anomalies', () => {
      it('a live controller renews its lease through a long provider call, so nobody takes the replacement over', async () => {
        await fleet(20, 1);
        const slow = new FakeProvider();
        slow.replaceOutcomes.set('h00', ['hang']);
        const a = makeScheduler(store, clock, { ...ENFORCE, lease: '3s' }, slow, 'controller-a');
        const ticking = a.tick();
        await until(() => slow.calls.length > 0, 'controller A inside the provider call', 5_000, 5);
        const held = (await byHost()).h00!.leaseUntil;
        const other = new FakeProvider();
        const b = makeScheduler(store, clock, { ...ENFORCE, lease: '3s' }, other, 'controller-b');
        clock.advance(2_000);
        // A renews (every lease/3, at least 1 s): the stored lease moves past the one it took.
        await until(async () => (await byHost()).h00!.leaseUntil !== held, 'controller A renews its lease', 10_000, 20);
        clock.advance(2_000); // past the first lease, inside the renewed one
        await b.tick();
        expect(other.calls).toEqual([]);
        await a.stop();
        await ticking.catch(() => {});
      });

      it('a host still reporting long after the provider confirmed it gone is surfaced, not retried', async () => {
        await fleet(20, 1);
        const provider = new FakeProvider();
        const s = makeScheduler(store, clock, { ...ENFORCE, replaceTimeout: '10m' }, provider);
        await s.tick();
        provider.done.add('h00');
        for (let i = 0; i < 4; i++) {
          await advance(4 * MINUTE);
          await store.updateHost('h00', { lastSeenAt: clock.iso() }); // it keeps reporting
          await s.tick();
        }
        const r = (await byHost()).h00!;
        expect(r).toMatchObject({ state: 'failed' });
        expect(r.lastError).toMatch(/^the provider confirmed the replacement at .*, but the host is still reporting$/);
        expect(provider.accepted).toEqual(['h00']);
      });
    });

    describe('operators', () => {
      it('the queue pages by keyset in queue order (ties in severity and taint time included), with host names in one lookup', async () => {
        const sevs = ['low', 'critical', 'high', 'critical', 'medium'] as const;
        for (let i = 0; i < 23; i++)
          await addHost(store, clock, `p${String(i).padStart(2, '0')}`, {
            state: 'tainted',
            severity: sevs[i % 5],
            taintedAgoMs: (i % 3) * HOUR,
          });
        await makeScheduler(store, clock, {}).tick();
        const all = await store.replacements.list({ limit: 1000 });
        expect(all).toHaveLength(23);
        const paged: ReplacementRow[] = [];
        let after: ReturnType<typeof replacementCursor> | undefined;
        for (;;) {
          const page = await store.replacements.list({ limit: 5, ...(after ? { after } : {}) });
          paged.push(...page);
          if (page.length < 5) break;
          after = replacementCursor(page[page.length - 1]!);
        }
        expect(paged.map((r) => r.id)).toEqual(all.map((r) => r.id));
        expect(await store.replacements.countByGroup(['queued', 'replacing'])).toEqual([
          { group: 'web', state: 'queued', n: 23 },
        ]);
        const names = await store.replacements.hostnames(['p00', 'p01', 'nope', 'p00']);
        expect([...names.entries()].sort()).toEqual([
          ['p00', 'p00.example.internal'],
          ['p01', 'p01.example.internal'],
        ]);
      });

      it('requireApproval: scheduled replacements wait for an approval', async () => {
        await fleet(20, 1);
        const provider = new FakeProvider();
        const s = makeScheduler(store, clock, { ...ENFORCE, groups: { web: { requireApproval: true } } }, provider);
        await s.tick();
        const r = (await byHost()).h00!;
        expect(r).toMatchObject({ state: 'awaiting-approval', decision: 'awaiting-approval' });
        expect(provider.calls).toEqual([]);
        await s.approve(r.id, 'token:t2(bob)');
        await expect(s.approve(r.id, 'token:t2(bob)')).rejects.toMatchObject({ code: 'DW_ERR_CONFLICT' });
        await s.tick();
        expect((await byHost()).h00).toMatchObject({ state: 'replacing', approvedBy: 'token:t2(bob)' });
      });

      it('request by hand queues a clean host without tainting it; a second request is a conflict', async () => {
        await fleet(20, 0);
        const s = makeScheduler(store, clock, ENFORCE, new FakeProvider());
        const r = await s.request('h05', 'token:t1(alice)', 'suspected compromise');
        expect(r).toMatchObject({ state: 'queued', requestedBy: 'token:t1(alice)', reason: 'suspected compromise' });
        expect(await hostState('h05')).toBe('clean');
        expect((await store.getHost('h05'))!.taintedAt).toBeNull();
        await expect(s.request('h05', 'x', 'again')).rejects.toMatchObject({ code: 'DW_ERR_CONFLICT' });
        await expect(s.request('nope', 'x', 'y')).rejects.toMatchObject({ code: 'DW_ERR_NOT_FOUND' });
        await s.tick();
        expect(await hostState('h05')).toBe('replacing');
      });

      it("an operator's request is not drift: it trips no breaker, and a cancel puts the host and the group back", async () => {
        // 1 of 3 hosts is 33 %, over the breaker's 30 %: counted as a taint, the request alone would trip it.
        await fleet(3, 0);
        const s = makeScheduler(
          store,
          clock,
          { mode: 'dry-run', breaker: { taintedShare: 0.3, window: '15m' } },
          new FakeProvider(),
        );
        const r = await s.request('h01', 'token:t1(alice)', 'rebuild on the new kernel');
        const tick = await s.tick();
        expect(tick.tripped).toEqual([]);
        const group = (await s.groups()).find((g) => g.name === 'web')!;
        expect(group.paused).toBe(false);
        expect(await hostState('h01')).toBe('clean');
        await s.cancel(r.id, 'token:t1(alice)', 'not needed after all');
        expect(await hostState('h01')).toBe('clean');
        expect((await s.tick()).tripped).toEqual([]);
        expect((await s.groups()).find((g) => g.name === 'web')!.paused).toBe(false);
        // Nothing re-queues it: it was never tainted.
        expect((await rows()).filter((x) => x.hostId === 'h01').map((x) => x.state)).toEqual(['cancelled']);
      });

      it('a failed replacement of a requested clean host puts it back to clean, not tainted; so does its cancel', async () => {
        await fleet(4, 0);
        const provider = new FakeProvider();
        provider.replaceOutcomes.set('h02', ['fail']);
        const s = makeScheduler(store, clock, ENFORCE, provider);
        const r = await s.request('h02', 'token:t1(alice)', 'rebuild');
        await s.tick();
        expect((await rows()).find((x) => x.id === r.id)!.lastError).toMatch(/platform refused h02/);
        expect(await hostState('h02')).toBe('clean');
        await s.cancel(r.id, 'token:t1(alice)', 'changed my mind');
        expect(await hostState('h02')).toBe('clean');
        const timeline = await store.listTransitions('h02');
        expect(timeline.map((t) => t.to)).toEqual(['replacement-scheduled', 'clean']);
        expect(timeline.at(-1)!.cause).toMatch(/requested by an operator, not for drift: back to clean/);
      });

      it('cancel puts a scheduled host back to tainted and keeps it out of the automatic queue; a replacing one cannot be cancelled', async () => {
        await fleet(20, 2);
        const provider = new FakeProvider();
        const s = makeScheduler(store, clock, { ...ENFORCE, budgets: [{ group: '*', maxUnavailable: 1 }] }, provider);
        await s.tick();
        const q = await byHost();
        await expect(s.cancel(q.h00!.id, 'x', 'y')).rejects.toMatchObject({ code: 'DW_ERR_STATE' });
        const c = await s.cancel(q.h01!.id, 'token:t1(alice)', 'maintenance freeze');
        expect(c.state).toBe('cancelled');
        await s.tick();
        expect((await rows()).filter((r) => r.hostId === 'h01').map((r) => r.state)).toEqual(['cancelled']);
        expect(await hostState('h01')).toBe('tainted');
        expect((await store.listAudit({ limit: 100 })).find((a) => a.action === 'replacement.cancel')).toMatchObject({
          actor: 'token:t1(alice)',
          target: 'h01',
        });
      });

      it('mark done walks the host to replaced with the operator in its timeline', async () => {
        await fleet(20, 1);
        const s = makeScheduler(store, clock, {}, new FakeProvider());
        await s.tick();
        const r = (await byHost()).h00!;
        await s.markDone(r.id, 'token:t1(alice)', 'h19');
        expect((await byHost()).h00).toMatchObject({ state: 'replaced', replacedBy: 'h19' });
        const t = await store.listTransitions('h00');
        expect(t.slice(-3).map((x) => [x.to, x.actor])).toEqual([
          ['replacement-scheduled', 'token:t1(alice)'],
          ['replacing', 'token:t1(alice)'],
          ['replaced', 'token:t1(alice)'],
        ]);
        await expect(s.markDone(r.id, 'x')).rejects.toMatchObject({ code: 'DW_ERR_STATE' });
      });
    });
  });
}
