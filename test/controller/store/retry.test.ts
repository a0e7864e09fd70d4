/** Which failures the store's transaction helper runs again, how often, and how long it waits in between. */
import { describe, expect, it } from 'vitest';
import { isTransient, retryTransient, sqlState } from '../../../controller/store/retry.js';

const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { code });

describe('retryTransient', () => {
  it('runs again after a deadlock or a serialization failure, and returns what the last run returned', async () => {
    for (const code of ['40P01', '40001']) {
      let runs = 0;
      const waits: number[] = [];
      const out = await retryTransient(
        async () => {
          if (++runs < 3) throw pgError(code);
          return 'done';
        },
        { sleep: async (ms) => void waits.push(ms) },
      );
      expect(out).toBe('done');
      expect(runs).toBe(3);
      // Full jitter under a doubling bound: 5 ms, then 10 ms.
      expect(waits[0]).toBeGreaterThanOrEqual(0);
      expect(waits[0]).toBeLessThanOrEqual(5);
      expect(waits[1]).toBeLessThanOrEqual(10);
    }
  });

  it('gives up after the bounded number of runs with the last error, waits never above the cap', async () => {
    let runs = 0;
    const waits: number[] = [];
    await expect(
      retryTransient(
        async () => {
          runs++;
          throw pgError('40P01');
        },
        { attempts: 8, baseDelayMs: 100, maxDelayMs: 250, sleep: async (ms) => void waits.push(ms) },
      ),
    ).rejects.toMatchObject({ code: '40P01' });
    expect(runs).toBe(8);
    expect(waits).toHaveLength(7);
    for (const w of waits) expect(w).toBeLessThanOrEqual(250);
  });

  it('does not run again after any other failure (a unique violation, a refused report)', async () => {
    for (const err of [pgError('23505'), new Error('DW_ERR_REPLAY'), pgError('57P01')]) {
      let runs = 0;
      await expect(
        retryTransient(async () => {
          runs++;
          throw err;
        }),
      ).rejects.toBe(err);
      expect(runs).toBe(1);
    }
  });

  it('finds the SQLSTATE of a wrapped driver error', () => {
    const wrapped = new Error('store failed', { cause: pgError('40001') });
    expect(sqlState(wrapped)).toBe('40001');
    expect(isTransient(wrapped)).toBe(true);
    expect(isTransient(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(false);
  });
});
