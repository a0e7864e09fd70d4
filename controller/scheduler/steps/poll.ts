/**
 * @module Step `poll`: for replacements under way, asks the provider where each stands (concurrently,
 * like `act`), and completes one once the provider confirmed and the old host has gone quiet.
 */
import type { ReplacementRow } from '../../store/replacements.js';
import { forEachConcurrently, interleaveByGroup, serially } from './concurrency.js';
import { callProvider, failAttempt, target } from './failures.js';
import { claim, release } from './leases.js';
import { ms, PLAN_BATCH, SYSTEM, transition, type SchedulerRuntime, type TickResult } from './runtime.js';

export async function poll(rt: SchedulerRuntime, result: TickResult): Promise<void> {
  const rows = await rt.d.store.replacements.list({ states: ['replacing'], limit: PLAN_BATCH });
  const mine = interleaveByGroup(rows.filter((r) => rt.modeFor(r.group) === 'enforce'));
  const inTurn = serially();
  await forEachConcurrently(mine, rt.d.config.parallelism, rt.signal, (candidate) =>
    pollOne(rt, candidate, inTurn, result),
  );
}

async function pollOne(
  rt: SchedulerRuntime,
  candidate: ReplacementRow,
  inTurn: ReturnType<typeof serially>,
  result: TickResult,
): Promise<void> {
  const cfg = rt.d.config;
  const claimed = await inTurn(async () => {
    const row = await claim(rt, candidate.id, 'replacing');
    return row ? { row, host: await rt.d.store.getHost(row.hostId) } : null;
  });
  if (!claimed) return;
  const { row } = claimed;
  const now = rt.d.clock();
  try {
    if (!row.confirmedAt) {
      if (row.startedAt && now.getTime() - Date.parse(row.startedAt) > ms(cfg.replaceTimeout)) {
        return await failAttempt(rt, row, `not confirmed within replaceTimeout ${cfg.replaceTimeout}`, true, result);
      }
      const provider = rt.d.providerFor(row.group);
      const host = claimed.host;
      if (!provider || !host) {
        return await failAttempt(
          rt,
          row,
          provider ? 'the host no longer exists' : `no provider is configured for group ${row.group}`,
          false,
          result,
        );
      }
      const status = await callProvider(rt, row, 'status', (ctx) => provider.status(target(row, host), ctx), result);
      if (!status || status.state !== 'done') return;
      const at = rt.d.clock().toISOString();
      await rt.d.store.replacements.update(row.id, {
        confirmedAt: at,
        ...(status.replacedBy ? { replacedBy: status.replacedBy } : {}),
        lastError: null,
        decisionReason: `provider confirmed: ${status.detail ?? 'done'}`,
        updatedAt: at,
      });
      row.confirmedAt = at;
      if (status.replacedBy) row.replacedBy = status.replacedBy;
    }
    const completed = await completeIfQuiet(rt, row, result);
    // Confirmed gone, yet still reporting long after: the platform replaced something else, or the
    // host's credential lives on elsewhere. Retrying cannot explain it; an operator must look.
    if (
      !completed &&
      row.confirmedAt &&
      rt.d.clock().getTime() - Date.parse(row.confirmedAt) > ms(cfg.replaceTimeout)
    ) {
      await failAttempt(
        rt,
        row,
        `the provider confirmed the replacement at ${row.confirmedAt}, but the host is still reporting`,
        false,
        result,
      );
    }
  } finally {
    await release(rt, row.id);
  }
}

/** Replaced once the provider confirmed and the old host stopped reporting (quiet for `quietFor` since its last contact). */
async function completeIfQuiet(rt: SchedulerRuntime, row: ReplacementRow, result: TickResult): Promise<boolean> {
  const cfg = rt.d.config;
  const now = rt.d.clock();
  const at = now.toISOString();
  let done: ReplacementRow | null = null;
  await rt.d.store.transaction(async (tx) => {
    const current = await tx.replacements.lock(row.id);
    if (!current || current.state !== 'replacing' || !current.confirmedAt) return;
    const host = await tx.lockHost(row.hostId);
    const last = host ? Date.parse(host.lastSeenAt ?? host.enrolledAt) : 0;
    if (host && now.getTime() - last < ms(cfg.quietFor)) return;
    const replacedBy =
      current.replacedBy ??
      (current.startedAt
        ? await tx.replacements.findSuccessor(
            row.group,
            cfg.defaultGroup,
            current.scheduledAt ?? current.startedAt,
            row.hostId,
          )
        : null);
    if (host)
      await transition(
        tx,
        host,
        host.state,
        {
          type: 'replacement-completed',
          detail: `${current.provider ?? 'provider'} confirmed${replacedBy ? `; replaced by ${replacedBy}` : ''}`,
        },
        at,
        SYSTEM,
      );
    const patch = {
      state: 'replaced' as const,
      finishedAt: at,
      replacedBy,
      decision: null,
      leaseOwner: null,
      leaseUntil: null,
      updatedAt: at,
    };
    await tx.replacements.update(row.id, patch);
    await tx.appendAudit({
      at,
      actor: SYSTEM,
      action: 'replacement.complete',
      target: row.hostId,
      detail: { replacement: row.id, replacedBy, provider: current.provider },
    });
    done = { ...current, ...patch };
  });
  if (!done) return false;
  result.completed++;
  rt.events.emit({ type: 'replacement-completed', at, replacement: done });
  return true;
}
