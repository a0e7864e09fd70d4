/**
 * @module Leases on replacement rows: with several controllers on one database, exactly one acts on a
 * replacement at a time, and a dead controller's hold lapses so another takes over.
 */
import type { ReplacementRow } from '../../store/replacements.js';
import { ms, type SchedulerRuntime } from './runtime.js';

export function leaseUntil(rt: SchedulerRuntime, now: Date): string {
  return new Date(now.getTime() + ms(rt.d.config.lease)).toISOString();
}

/** Claims the lease on a row in `state` (a lapsed lease of a dead controller included); the row as claimed, or null. */
export async function claim(
  rt: SchedulerRuntime,
  id: string,
  state: ReplacementRow['state'],
): Promise<ReplacementRow | null> {
  const now = rt.d.clock();
  return rt.d.store.transaction(async (tx) => {
    const row = await tx.replacements.lock(id);
    if (!row || row.state !== state) return null;
    if (!(await tx.replacements.claim(id, rt.owner, leaseUntil(rt, now), now.toISOString()))) return null;
    return { ...row, leaseOwner: rt.owner };
  });
}

export async function release(rt: SchedulerRuntime, id: string): Promise<void> {
  await rt.d.store.transaction(async (tx) => {
    const row = await tx.replacements.lock(id);
    if (row?.leaseOwner === rt.owner) await tx.replacements.update(id, { leaseOwner: null, leaseUntil: null });
  });
}

/**
 * Keeps extending our lease while a provider call runs (a drain can outlast the lease many times),
 * so no other controller takes the replacement over from a live one; a dead one stops renewing.
 */
export async function holdingLease<T>(rt: SchedulerRuntime, id: string, fn: () => Promise<T>): Promise<T> {
  const every = Math.max(1_000, Math.floor(ms(rt.d.config.lease) / 3));
  const timer = setInterval(() => {
    const now = rt.d.clock();
    rt.d.store.replacements
      .claim(id, rt.owner, leaseUntil(rt, now), now.toISOString())
      .catch((err: unknown) => rt.d.log.warn({ err, replacement: id }, 'could not renew a lease'));
  }, every);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}
