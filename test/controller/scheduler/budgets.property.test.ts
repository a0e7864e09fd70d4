/**
 * @module A randomized test of the scheduler's promises: over many random sequences of taints, ticks,
 * time passing, provider failures, controller restarts and controllers dying with a lease held, no
 * budget (per group, overall, rate) is ever exceeded, and in the end every tainted host is replaced
 * or surfaced to an operator (its replacement failed, or its group paused by the breaker).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Scheduler } from '../../../controller/scheduler/scheduler.js';
import { openStore } from '../../../controller/store/index.js';
import type { Store } from '../../../controller/store/types.js';
import { FakeClock, MINUTE } from '../harness.js';
import { FakeProvider, addHost, schedulerConfig, silent, taint } from './fixtures.js';

type Action =
  | { t: 'taint'; group: number; host: number }
  | { t: 'tick' }
  | { t: 'advance'; minutes: number }
  | { t: 'confirm' }
  | { t: 'restart' }
  | { t: 'crash' };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('taint' as const), group: fc.nat(2), host: fc.nat(11) }) },
  { weight: 4, arbitrary: fc.constant({ t: 'tick' as const }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('advance' as const), minutes: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 2, arbitrary: fc.constant({ t: 'confirm' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'restart' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'crash' as const }) },
);

const scenario = fc.record({
  groupSizes: fc.array(fc.integer({ min: 3, max: 12 }), { minLength: 1, maxLength: 3 }),
  maxUnavailable: fc.integer({ min: 1, max: 3 }),
  overall: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
  rate: fc.option(fc.record({ max: fc.integer({ min: 1, max: 3 }), perMinutes: fc.constantFrom(10, 30, 60) }), {
    nil: undefined,
  }),
  breaker: fc.boolean(),
  failures: fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }),
  actions: fc.array(action, { minLength: 5, maxLength: 40 }),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

async function run(sc: Scenario): Promise<void> {
  const store: Store = await openStore('sqlite::memory:');
  const clock = new FakeClock();
  try {
    const groups = sc.groupSizes.map((_, i) => `g${i}`);
    let serial = 0;
    for (const [gi, size] of sc.groupSizes.entries())
      for (let i = 0; i < size; i++) await addHost(store, clock, `g${gi}-h${i}`, { group: groups[gi]! });
    const config = schedulerConfig({
      mode: 'enforce',
      budgets: [
        {
          group: '*',
          maxUnavailable: sc.maxUnavailable,
          ...(sc.rate ? { rate: { max: sc.rate.max, per: `${sc.rate.perMinutes}m` } } : {}),
        },
      ],
      ...(sc.overall ? { overall: { maxUnavailable: sc.overall } } : {}),
      breaker: sc.breaker
        ? { taintedShare: 0.5, window: '15m', minTainted: 3, sameDeviation: 100 }
        : { taintedShare: 1, minTainted: 1000, sameDeviation: 1000 },
      retry: { maxAttempts: 3, backoff: '1m', maxBackoff: '10m' },
      replaceTimeout: '1h',
      quietFor: '2m',
      lease: '2m',
    });
    const provider = new FakeProvider();
    let failIndex = 0;
    let failing = true;
    provider.onReplace = (t) => {
      const fail = failing && sc.failures[failIndex++ % sc.failures.length];
      if (fail) provider.replaceOutcomes.set(t.hostId, ['fail']);
    };
    let generation = 0;
    const make = () =>
      new Scheduler({
        store,
        config,
        log: silent,
        clock: clock.now,
        providerFor: () => provider,
        silentAfterMs: 10 * MINUTE,
        owner: `controller-${generation++}`,
      });
    let scheduler = make();
    const tainted = new Set<string>();

    const hostsNow = async () => (await store.listHosts({ limit: 10_000 })).hosts;

    /** The budgets, checked against the store after every tick. */
    const checkBudgets = async () => {
      const hosts = await hostsNow();
      const inFlight = (g?: string) =>
        hosts.filter(
          (h) => (g === undefined || h.group === g) && (h.state === 'replacement-scheduled' || h.state === 'replacing'),
        ).length;
      for (const g of groups) expect(inFlight(g), `group ${g} in flight`).toBeLessThanOrEqual(sc.maxUnavailable);
      if (sc.overall) expect(inFlight(), 'fleet in flight').toBeLessThanOrEqual(sc.overall);
      if (sc.rate) {
        const per = sc.rate.perMinutes * MINUTE;
        const starts = await store.replacements.startsSince('1970-01-01T00:00:00.000Z');
        for (const g of groups) {
          const times = starts.filter((s) => s.group === g).map((s) => Date.parse(s.startedAt));
          for (const t of times)
            expect(times.filter((u) => u > t - per && u <= t).length, `rate in ${g}`).toBeLessThanOrEqual(sc.rate.max);
        }
      }
    };

    /** Time passes: every host that runs keeps reporting; a replaced host's successor comes up clean. */
    const advance = async (ms: number) => {
      clock.advance(ms);
      for (const h of await hostsNow())
        if (h.state !== 'replacing' && h.state !== 'replaced')
          await store.updateHost(h.id, { lastSeenAt: clock.iso() });
    };

    const tick = async () => {
      await scheduler.tick();
      await checkBudgets();
      const replaced = new Set(
        (await store.replacements.list({ states: ['replaced'], limit: 10_000 })).map((r) => r.hostId),
      );
      for (const h of await hostsNow()) {
        if (h.state === 'replaced' && replaced.has(h.id) && !(await store.getHost(`succ-${h.id}`)))
          await addHost(store, clock, `succ-${h.id}`, { group: h.group });
      }
      serial++;
    };

    for (const a of sc.actions) {
      switch (a.t) {
        case 'taint': {
          const g = a.group % groups.length;
          const id = `g${g}-h${a.host % sc.groupSizes[g]!}`;
          const h = await store.getHost(id);
          if (h && (h.state === 'clean' || h.state === 'drifted')) {
            await taint(store, clock, id);
            tainted.add(id);
          }
          break;
        }
        case 'tick':
          await tick();
          break;
        case 'advance':
          await advance(a.minutes * MINUTE);
          break;
        case 'confirm':
          for (const r of await store.replacements.list({ states: ['replacing'], limit: 1000 }))
            provider.done.add(r.hostId);
          break;
        case 'restart':
          await scheduler.stop();
          scheduler = make();
          break;
        case 'crash': {
          // A controller dies holding the lease on something in flight.
          const r = (await store.replacements.list({ states: ['scheduled', 'replacing'], limit: 1 }))[0];
          if (r)
            await store.replacements.claim(
              r.id,
              'controller-dead',
              new Date(clock.now().getTime() + 2 * MINUTE).toISOString(),
              clock.iso(),
            );
          break;
        }
      }
    }

    // The platform recovers; the controllers keep going until nothing moves.
    failing = false;
    for (let i = 0; i < 80; i++) {
      await tick();
      for (const r of await store.replacements.list({ states: ['replacing'], limit: 1000 }))
        provider.done.add(r.hostId);
      await advance(5 * MINUTE);
    }

    const rows = await store.replacements.list({ limit: 10_000 });
    const paused = new Set((await store.replacements.listGroups()).filter((g) => g.paused).map((g) => g.name));
    for (const id of tainted) {
      const host = (await store.getHost(id))!;
      const row = rows.find((r) => r.hostId === id && r.state !== 'cancelled');
      const surfaced = row?.state === 'failed' || paused.has(host.group ?? '');
      expect(
        host.state === 'replaced' || surfaced,
        `${id}: host ${host.state}, replacement ${row?.state ?? 'none'}, group paused ${paused.has(host.group ?? '')}`,
      ).toBe(true);
      if (host.state === 'replaced') expect(row?.state).toBe('replaced');
    }
    // Each host was handed to the provider at most once per attempt it was scheduled for, never twice at once.
    const accepted = provider.accepted.filter((h, i, all) => all.indexOf(h) !== i);
    for (const h of accepted) expect(rows.find((r) => r.hostId === h)!.attempts).toBeGreaterThan(1);
    await scheduler.stop();
  } finally {
    await store.close();
  }
}

describe('scheduler invariants (randomized)', () => {
  it('never exceeds a budget, and every tainted host ends replaced or surfaced, across restarts and dead controllers', async () => {
    await fc.assert(fc.asyncProperty(scenario, run), {
      numRuns: 40,
      seed: Number(process.env.DW_PROPERTY_SEED ?? 20260302),
    });
  }, 240_000);
});
