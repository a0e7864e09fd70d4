/**
 * Load shedding: past overload.maxInFlight requests in flight, or overload.maxStoreWaiting queries
 * queued for a store connection, the controller answers 503 DW_ERR_UNAVAILABLE with Retry-After at
 * once and changes nothing; /healthz still answers; a store connection lost mid-request is a 503 too,
 * never a 500. 429 stays for one source's own failed attempts (rate-limit.test.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import type { Store } from '../../controller/store/types.js';
import { until } from '../helpers/wait.js';
import { Harness } from './harness.js';

/** The store with `waitingForConnection` and `findHostByCredentialHash` under the test's control. */
function steerable(store: Store) {
  const s = { waiting: 0, gate: null as Promise<void> | null, entered: 0, failWith: null as Error | null };
  const proxy = new Proxy(store, {
    get(target, key) {
      if (key === 'waitingForConnection') return () => s.waiting;
      if (key === 'findHostByCredentialHash')
        return async (hash: string) => {
          s.entered++;
          if (s.gate) await s.gate;
          if (s.failWith) throw s.failWith;
          return target.findHostByCredentialHash(hash);
        };
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { proxy, s };
}

describe('load shedding', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('past maxInFlight: 503 DW_ERR_UNAVAILABLE with Retry-After, nothing stored, /healthz answers; the held request completes', async () => {
    const { proxy, s } = steerable(await openStore('sqlite::memory:'));
    h = await Harness.start(proxy, { config: { overload: { maxInFlight: 2, retryAfter: '7s' } } });
    const a = await h.enroll('host-a');
    const b = await h.enroll('host-b');
    const c = await h.enroll('host-c');
    let open!: () => void;
    s.gate = new Promise((r) => (open = r));
    const before = s.entered;
    const held = [a.scan(), b.scan()];
    await until(() => s.entered === before + 2, 'both scans held in the store');
    const before3 = await h.snapshot();
    const shed = await c.scan();
    expect(shed.status).toBe(503);
    expect(shed.body.error).toBe('DW_ERR_UNAVAILABLE');
    expect(shed.body.message).toMatch(/2 requests in flight \(overload.maxInFlight 2\).*retry in 7s/);
    expect(shed.headers['retry-after']).toBe('7');
    expect(await h.snapshot()).toEqual(before3);
    expect((await h.req('GET', '/healthz')).status).toBe(200);
    open();
    s.gate = null;
    for (const r of await Promise.all(held)) expect(r.status).toBe(200);
    // In flight is counted down again: the shed host's retry is taken.
    expect((await c.scan()).status).toBe(200);
  });

  it('past maxStoreWaiting: 503 with Retry-After before the credential is even looked at', async () => {
    const { proxy, s } = steerable(await openStore('sqlite::memory:'));
    h = await Harness.start(proxy, { config: { overload: { maxStoreWaiting: 10 } } });
    const a = await h.enroll('host-a');
    s.waiting = 11;
    const entered = s.entered;
    const r = await a.scan();
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('5');
    expect(r.body.message).toMatch(/11 queries waiting for a store connection/);
    expect(s.entered).toBe(entered);
    s.waiting = 10;
    expect((await a.scan()).status).toBe(200);
  });

  it('a store connection lost mid-request is 503 with Retry-After (retry later), not 500', async () => {
    const { proxy, s } = steerable(await openStore('sqlite::memory:'));
    h = await Harness.start(proxy);
    const a = await h.enroll('host-a');
    s.failWith = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
    const r = await a.scan();
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ error: 'DW_ERR_UNAVAILABLE' });
    expect(r.headers['retry-after']).toBe('5');
    s.failWith = new Error('Connection terminated unexpectedly');
    expect((await a.scan()).status).toBe(503);
    s.failWith = null;
    expect((await a.scan()).status).toBe(200);
  });

  it('refuses an overload config that would never admit anything or says Retry-After: 0', async () => {
    await expect(
      Harness.start(await openStore('sqlite::memory:'), { config: { overload: { maxInFlight: 0 } } }),
    ).rejects.toThrow(/maxInFlight/);
    await expect(
      Harness.start(await openStore('sqlite::memory:'), { config: { overload: { retryAfter: '0s' } } }),
    ).rejects.toThrow(/at least 1s/);
  });
});
