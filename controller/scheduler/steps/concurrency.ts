/**
 * @module How a pass spreads provider calls: at most `scheduler.parallelism` at once, taken from the
 * groups in turn, so one group's slow or hanging platform cannot take every slot from the others.
 */

/** Round-robin over groups, keeping each group's own order (queue order within a group). */
export function interleaveByGroup<T extends { group: string }>(rows: readonly T[]): T[] {
  const byGroup = new Map<string, T[]>();
  for (const r of rows) {
    const list = byGroup.get(r.group);
    if (list) list.push(r);
    else byGroup.set(r.group, [r]);
  }
  const queues = [...byGroup.values()];
  const out: T[] = [];
  for (let i = 0; out.length < rows.length; i++) for (const q of queues) if (i < q.length) out.push(q[i]!);
  return out;
}

/**
 * Runs `fn` over `items` with at most `limit` running; stops taking new items once `signal` aborts.
 * `fn` must handle its own errors: one item's failure is that item's, never the others'.
 */
export async function forEachConcurrently<T>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let nextIndex = 0;
  const worker = async (): Promise<void> => {
    while (nextIndex < items.length && !signal.aborted) {
      const item = items[nextIndex++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

/**
 * A queue of one: each function starts after the previous one settled, in the order they were
 * handed in. The calls of a pass claim their rows through one, so providers are asked in queue order
 * (the head of the queue first) even though their calls then overlap.
 */
export function serially(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}
