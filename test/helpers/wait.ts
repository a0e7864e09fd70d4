/**
 * @module Waiting in tests: poll for the condition the assertion needs, with a deadline, instead of a
 * fixed sleep (which is either too short on a loaded machine or wasted time on a quiet one).
 */

/** Poll until fn returns a truthy value; fail with the last value (and a note) at the deadline. */
export async function until<T>(
  fn: () => T | Promise<T>,
  what: string | (() => string),
  timeoutMs = 15_000,
  everyMs = 25,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await fn();
      if (last) return last as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      const note = typeof what === 'function' ? what() : what;
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${note}; last: ${JSON.stringify(last)}${lastErr ? ` (${String(lastErr)})` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
