/**
 * @module Provider calls and failed attempts, in one place: every provider call of a pass (act's
 * `replace`, poll's `status`) runs here under its lease and timeout, and every failed attempt, the
 * provider's or the scheduler's own, ends here: retryable ones go back to the queue with exponential
 * backoff, the last attempt or a permanent error is surfaced to operators (state `failed`, an audit
 * entry, a `replacement.failed` event). Nothing here throws for one replacement: the others in the
 * pass go on.
 */
import { describeError } from '../../../shared/errors.js';
import { EVENT_KINDS, recordEvent } from '../../event-stream.js';
import type { ReplacementRow } from '../../store/replacements.js';
import {
  ProviderError,
  type ProviderContext,
  type ReplacementTarget,
  type SuccessorMatch,
} from '../../providers/types.js';
import type { HostRow } from '../../store/types.js';
import { holdingLease } from './leases.js';
import { ms, SYSTEM, transition, type SchedulerRuntime, type TickResult } from './runtime.js';

/** A provider that ignores its aborted signal gets this long to settle before the scheduler stops waiting. */
const ABORT_GRACE_MS = 1_000;

/** Retrying helps unless the provider said it cannot (permissions, a host the platform does not know); an unexpected error may be transient. */
export function isRetryable(err: unknown): boolean {
  return !(err instanceof ProviderError) || err.retryable;
}

/** Pinned identity only (hostname, group, addresses from enrollment): never the host's latest claims or inventory. */
export function target(row: ReplacementRow, host: HostRow): ReplacementTarget {
  return {
    replacementId: row.id,
    attempt: row.attempts,
    hostId: row.hostId,
    hostname: host.hostname,
    imageId: host.imageId,
    group: row.group,
    addresses: host.enrolledAddresses ?? [],
    enrolledAt: host.enrolledAt,
    instanceId: host.instanceId ?? null,
    reason: row.reason,
    ref: row.providerRef,
    startedAt: row.startedAt,
  };
}

function providerContext(rt: SchedulerRuntime, row: ReplacementRow, signal: AbortSignal): ProviderContext {
  const cfg = rt.d.config;
  return {
    log: rt.d.log.child({ replacement: row.id, host: row.hostId, group: row.group }),
    clock: rt.d.clock,
    signal,
    findCleanSuccessor: (since: string, match?: SuccessorMatch) =>
      rt.d.store.replacements.findSuccessor(row.group, cfg.defaultGroup, since, row.hostId, match),
  };
}

/**
 * Calls the provider for one replacement, holding its lease, with `replaceTimeout` as the deadline
 * (and the controller's stop): the value, or null after the failure was recorded by failAttempt. A
 * provider that does not give up when its signal aborts is not waited for beyond a short grace, so a
 * hanging platform costs one slot for at most the timeout, never the whole pass.
 */
export async function callProvider<T>(
  rt: SchedulerRuntime,
  row: ReplacementRow,
  method: 'replace' | 'status',
  call: (ctx: ProviderContext) => Promise<T>,
  result: TickResult,
): Promise<T | null> {
  // Our own timer, not AbortSignal.timeout(): that signal is only weakly held, and one collected
  // mid-call never fires, which would leave a hanging provider holding its slot for good.
  const deadline = new AbortController();
  const stop = () => deadline.abort();
  const timer = setTimeout(stop, ms(rt.d.config.replaceTimeout));
  if (rt.signal.aborted) stop();
  else rt.signal.addEventListener('abort', stop, { once: true });
  let grace: NodeJS.Timeout | undefined;
  const abandoned = new Promise<never>((_, reject) => {
    deadline.signal.addEventListener(
      'abort',
      () => {
        grace = setTimeout(() => {
          const why = rt.signal.aborted
            ? 'the controller is stopping'
            : `no answer within replaceTimeout ${rt.d.config.replaceTimeout}`;
          reject(new ProviderError(row.provider ?? 'provider', `${method}: ${why}`, { retryable: true }));
        }, ABORT_GRACE_MS);
      },
      { once: true },
    );
  });
  try {
    if (deadline.signal.aborted)
      throw new ProviderError(row.provider ?? 'provider', `${method}: the controller is stopping`, { retryable: true });
    return await holdingLease(rt, row.id, () =>
      Promise.race([call(providerContext(rt, row, deadline.signal)), abandoned]),
    );
  } catch (err) {
    await failAttempt(rt, row, describeError(err), isRetryable(err), result);
    return null;
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
    rt.signal.removeEventListener('abort', stop);
  }
}

/** A failed attempt: back to the queue with backoff, or surfaced as failed after the last attempt (or a permanent error). */
export async function failAttempt(
  rt: SchedulerRuntime,
  row: ReplacementRow,
  error: string,
  retryable: boolean,
  result: TickResult,
): Promise<void> {
  const cfg = rt.d.config;
  const now = rt.d.clock();
  const at = now.toISOString();
  const final = !retryable || row.attempts >= cfg.retry.maxAttempts;
  const backoff = Math.min(ms(cfg.retry.backoff) * 2 ** Math.max(0, row.attempts - 1), ms(cfg.retry.maxBackoff));
  let failed: ReplacementRow | null = null;
  await rt.d.store.transaction(async (tx) => {
    const current = await tx.replacements.lock(row.id);
    // Only the holder of the lease, and only in the state it claimed: a controller whose lease lapsed
    // mid-call must not undo what the one that took over has done since.
    if (!current || current.state !== row.state || current.leaseOwner !== rt.owner) return;
    const h = await tx.lockHost(row.hostId);
    if (h && (h.state === 'replacement-scheduled' || h.state === 'replacing')) {
      await transition(
        tx,
        h,
        h.state,
        { type: 'replacement-failed', error: `attempt ${current.attempts}: ${error}` },
        at,
        SYSTEM,
      );
    }
    const patch = final
      ? {
          state: 'failed' as const,
          lastError: error,
          decision: null,
          decisionReason: `failed after ${current.attempts} attempt(s); an operator must act (request again, mark done or cancel)`,
          nextAttemptAt: null,
          leaseOwner: null,
          leaseUntil: null,
          updatedAt: at,
        }
      : {
          state: 'queued' as const,
          lastError: error,
          decision: 'backoff' as const,
          decisionReason: `attempt ${current.attempts} failed: ${error}`,
          nextAttemptAt: new Date(now.getTime() + backoff).toISOString(),
          leaseOwner: null,
          leaseUntil: null,
          updatedAt: at,
        };
    await tx.replacements.update(row.id, patch);
    await tx.appendAudit({
      at,
      actor: SYSTEM,
      action: final ? 'replacement.fail' : 'replacement.retry',
      target: row.hostId,
      detail: { replacement: row.id, attempt: current.attempts, error },
    });
    // Only the final failure pages people: a retried attempt is in the stream as the host's state change.
    if (final) {
      await recordEvent(tx, {
        kind: EVENT_KINDS.replacementFailed,
        hostId: row.hostId,
        actor: SYSTEM,
        at,
        detail: {
          replacement: row.id,
          hostname: h?.hostname ?? null,
          imageId: h?.imageId ?? null,
          group: current.group,
          provider: current.provider ?? rt.d.providerFor(current.group)?.type ?? null,
          providerRef: current.providerRef,
          attempt: current.attempts,
          maxAttempts: cfg.retry.maxAttempts,
          retryable,
          error,
        },
      });
    }
    failed = { ...current, ...patch };
  });
  if (!failed) return;
  result.failed++;
  rt.d.log[final ? 'error' : 'warn'](
    { replacement: row.id, host: row.hostId, group: row.group, attempt: row.attempts, error },
    final ? 'replacement failed; surfaced to operators' : 'replacement attempt failed; will retry',
  );
  rt.events.emit({ type: 'replacement-failed', at, replacement: failed, error, final });
}
