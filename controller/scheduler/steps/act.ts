/**
 * @module Step `act`: asks the providers to replace the hosts the plan scheduled, up to
 * `scheduler.parallelism` calls at once, each under a lease (one controller acts on a replacement) and
 * the timeout in failures.ts. A provider that fails or hangs for one group costs that group's
 * replacements an attempt, never another group's.
 */
import type { ReplacementRow } from '../../store/replacements.js';
import { forEachConcurrently, interleaveByGroup, serially } from './concurrency.js';
import { callProvider, failAttempt, target } from './failures.js';
import { claim } from './leases.js';
import { PLAN_BATCH, SYSTEM, transition, type SchedulerRuntime, type TickResult } from './runtime.js';

export async function act(rt: SchedulerRuntime, result: TickResult): Promise<void> {
  const rows = await rt.d.store.replacements.list({ states: ['scheduled'], limit: PLAN_BATCH });
  const mine = interleaveByGroup(rows.filter((r) => rt.modeFor(r.group) === 'enforce'));
  const inTurn = serially();
  await forEachConcurrently(mine, rt.d.config.parallelism, rt.signal, (candidate) =>
    actOn(rt, candidate, inTurn, result),
  );
}

async function actOn(
  rt: SchedulerRuntime,
  candidate: ReplacementRow,
  inTurn: ReturnType<typeof serially>,
  result: TickResult,
): Promise<void> {
  const claimed = await inTurn(async () => {
    const row = await claim(rt, candidate.id, 'scheduled');
    return row ? { row, host: await rt.d.store.getHost(row.hostId) } : null;
  });
  if (!claimed) return;
  const { row, host } = claimed;
  const provider = rt.d.providerFor(row.group);
  if (!host) return failAttempt(rt, row, 'the host no longer exists', false, result);
  if (!provider)
    return failAttempt(
      rt,
      row,
      `no provider is configured for group ${row.group} (scheduler.provider or scheduler.groups.<group>.provider)`,
      false,
      result,
    );
  const accepted = await callProvider(rt, row, 'replace', (ctx) => provider.replace(target(row, host), ctx), result);
  if (!accepted) return;
  const at = rt.d.clock().toISOString();
  let started: ReplacementRow | null = null;
  await rt.d.store.transaction(async (tx) => {
    const current = await tx.replacements.lock(row.id);
    // An operator may have cancelled or marked it done while the provider call ran.
    if (!current || current.state !== 'scheduled') return;
    const h = await tx.lockHost(row.hostId);
    if (h)
      await transition(
        tx,
        h,
        h.state,
        { type: 'replacement-started', detail: `${provider.type}: ${accepted.detail}` },
        at,
        SYSTEM,
      );
    const patch = {
      state: 'replacing' as const,
      startedAt: at,
      providerRef: accepted.ref,
      provider: provider.type,
      lastError: null,
      leaseOwner: null,
      leaseUntil: null,
      updatedAt: at,
    };
    await tx.replacements.update(row.id, patch);
    await tx.appendAudit({
      at,
      actor: SYSTEM,
      action: 'replacement.start',
      target: row.hostId,
      detail: { replacement: row.id, provider: provider.type, ref: accepted.ref, detail: accepted.detail },
    });
    started = { ...current, ...patch };
  });
  if (started) {
    result.started++;
    rt.events.emit({ type: 'replacement-started', at, replacement: started });
  }
}
