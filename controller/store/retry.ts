/**
 * @module Transient PostgreSQL failures: a transaction that PostgreSQL aborted to break a deadlock
 * (40P01) or a serialization conflict (40001) did nothing, and running it again is what the server
 * asks for. Retried here, with bounded jittered backoff, so such a fault never reaches an agent as a 500.
 */

/** SQLSTATEs after which the whole transaction may simply run again. */
const TRANSIENT = new Set(['40001', '40P01']);

export interface RetryOptions {
  /** Runs of the transaction in all, the first included. */
  attempts?: number;
  /** The first backoff's upper bound; each retry doubles it, up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** For tests: how to wait. */
  sleep?: (ms: number) => Promise<void>;
}

export const TX_RETRY_DEFAULTS = { attempts: 6, baseDelayMs: 5, maxDelayMs: 250 } as const;

/** The SQLSTATE of a driver error, also when wrapped (err.cause). */
export function sqlState(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

export function isTransient(err: unknown): boolean {
  const s = sqlState(err);
  return s !== undefined && TRANSIENT.has(s);
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Runs `run` until it succeeds, fails with anything but a transient conflict, or has run `attempts`
 * times. Full jitter (a random wait up to the bound) keeps the transactions that collided from
 * colliding again in step.
 */
export async function retryTransient<T>(run: () => Promise<T>, o: RetryOptions = {}): Promise<T> {
  const attempts = o.attempts ?? TX_RETRY_DEFAULTS.attempts;
  const base = o.baseDelayMs ?? TX_RETRY_DEFAULTS.baseDelayMs;
  const max = o.maxDelayMs ?? TX_RETRY_DEFAULTS.maxDelayMs;
  const sleep = o.sleep ?? realSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= attempts || !isTransient(err)) throw err;
      const delay = Math.random() * Math.min(max, base * 2 ** (attempt - 1));
      o.onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}
