/**
 * @module What every step of a scheduler pass shares: the scheduler's dependencies, its identity in
 * leases, the effective mode of a group, and the helpers that move a host along its state table.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { parseDuration } from '../../../shared/schema/config.js';
import { next, type HostEvent } from '../../states.js';
import { recordTransition, type HostContext } from '../../event-stream.js';
import type { HostRow, HostState, Store, StoreTx } from '../../store/types.js';
import type { GroupStateRow, ReplacementRow } from '../../store/replacements.js';
import type { Provider } from '../../providers/types.js';
import type { Mode, SchedulerConfig } from '../config.js';
import type { SchedulerEvents } from '../scheduler-events.js';

export interface SchedulerDeps {
  store: Store;
  config: SchedulerConfig;
  log: Logger;
  clock: () => Date;
  /** The provider for a group, or null when none is configured. */
  providerFor: (group: string) => Provider | null;
  events?: SchedulerEvents;
  /** This controller's name in leases (unique per process). */
  owner?: string;
  /** The controller's silentAfter: a host not heard from this long counts as unavailable. */
  silentAfterMs: number;
}

export interface TickResult {
  queued: number;
  scheduled: number;
  wouldReplace: number;
  started: number;
  completed: number;
  failed: number;
  tripped: string[];
}

/** The scheduler as its steps see it. */
export interface SchedulerRuntime {
  readonly d: SchedulerDeps;
  readonly events: SchedulerEvents;
  readonly owner: string;
  /** Aborted when the controller stops. */
  readonly signal: AbortSignal;
  modeFor(group: string): Mode;
  settingsFor(group: string): SchedulerConfig['groups'][string] | undefined;
}

export const ms = (d: string): number => parseDuration(d) ?? 0;
export const PLAN_BATCH = 1000;
export const SYSTEM = 'controller';

/** Moves the host along the state table: its row, its timeline and the event stream, in `tx`. */
export async function transition(
  tx: StoreTx,
  host: HostRow,
  from: HostState,
  event: HostEvent,
  at: string,
  actor: string,
): Promise<void> {
  let t = next(from, event);
  let taintedAt: string | undefined;
  // IMPORTANT: a host never tainted (no taintedAt) is in replacement only because an operator asked.
  // Ending that replacement without replacing the host is not drift: it goes back to what its current
  // deviations say, so neither its state nor the breaker's count of taints keeps the request.
  if (
    t.changed &&
    t.state === 'tainted' &&
    host.taintedAt === null &&
    (event.type === 'replacement-failed' || event.type === 'replacement-cancelled')
  ) {
    const resting = await restingState(tx, host);
    if (resting === 'tainted') taintedAt = at;
    t = {
      state: resting,
      changed: resting !== from,
      cause: `${t.cause}; it was requested by an operator, not for drift: back to ${resting}`,
    };
    if (!t.changed) return;
  }
  if (!t.changed) return;
  await tx.updateHost(host.id, { state: t.state, stateSince: at, ...(taintedAt ? { taintedAt } : {}) });
  await recordTransition(tx, hostContext(host), { from, to: t.state, cause: t.cause, actor, at, reportId: null });
}

/** Where a host's current deviations put it, as a report with them would: tainted, drifted, clean (pending before any report). */
async function restingState(tx: StoreTx, host: HostRow): Promise<HostState> {
  const deviations = await tx.listHostDeviations(host.id);
  if (deviations.some((d) => d.action === 'taint')) return 'tainted';
  if (deviations.some((d) => d.action === 'report')) return 'drifted';
  return host.lastReportAt === null ? 'pending' : 'clean';
}

export function hostContext(h: HostRow): HostContext {
  return { hostId: h.id, hostname: h.hostname, imageId: h.imageId, group: h.group };
}

export function emptyGroup(name: string): GroupStateRow {
  return {
    name,
    paused: false,
    pausedReason: null,
    pausedAt: null,
    pausedBy: null,
    resumedAt: null,
    resumedBy: null,
    breakerSince: null,
  };
}

export function newRow(o: {
  hostId: string;
  group: string;
  severity: ReplacementRow['severity'];
  taintedAt: string;
  requestedBy: string;
  reason: string;
  now: string;
}): ReplacementRow {
  return {
    id: randomUUID(),
    hostId: o.hostId,
    group: o.group,
    state: 'queued',
    severity: o.severity,
    taintedAt: o.taintedAt,
    requestedBy: o.requestedBy,
    reason: o.reason,
    decision: null,
    decisionReason: null,
    decidedAt: null,
    approvedBy: null,
    approvedAt: null,
    attempts: 0,
    nextAttemptAt: null,
    lastError: null,
    provider: null,
    providerRef: null,
    replacedBy: null,
    createdAt: o.now,
    scheduledAt: null,
    startedAt: null,
    confirmedAt: null,
    finishedAt: null,
    updatedAt: o.now,
    leaseOwner: null,
    leaseUntil: null,
  };
}
