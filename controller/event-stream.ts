/**
 * @module What goes into the event stream: a deviation a host did not have before, and every host state
 * change. Called inside the transaction that makes the change, so the stream never tells of a change
 * that was rolled back and never misses one that committed. The scheduler adds its own kinds
 * (`breaker-tripped`, `replacement-failed`) with recordEvent.
 */
import { actualDigest } from './store/migration-0003.js';
import type { EventRow, HostDeviationRow, HostState, NewEvent, StoreTx } from './store/types.js';

/** A scan that suddenly differs in thousands of files is one anomaly, not thousands of SIEM events. */
export const MAX_DEVIATION_EVENTS_PER_REPORT = 1000;

export const EVENT_KINDS = {
  deviation: 'deviation',
  state: 'state',
  breakerTripped: 'breaker-tripped',
  replacementFailed: 'replacement-failed',
} as const;

export interface HostContext {
  hostId: string;
  hostname: string | null;
  imageId: string;
  group: string | null;
}

const identity = (d: Pick<HostDeviationRow, 'collector' | 'key' | 'change' | 'actual'>) =>
  `${d.collector}\u0000${d.key}\u0000${d.change}\u0000${actualDigest(d.actual)}`;

/** Events for deviations in `current` that `previous` did not have (same collector, key, change and actual). Ignored ones are not drift. */
export function deviationEvents(
  host: HostContext,
  previous: readonly HostDeviationRow[],
  current: readonly HostDeviationRow[],
  at: string,
  reportId: string,
): NewEvent[] {
  const seen = new Set(previous.map(identity));
  const fresh = current.filter((d) => d.action !== 'ignore' && !seen.has(identity(d)));
  const events = fresh.slice(0, MAX_DEVIATION_EVENTS_PER_REPORT).map(
    (d): NewEvent => ({
      at,
      kind: EVENT_KINDS.deviation,
      hostId: host.hostId,
      actor: `host:${host.hostId}`,
      detail: {
        hostname: host.hostname,
        imageId: host.imageId,
        group: host.group,
        reportId,
        collector: d.collector,
        key: d.key,
        change: d.change,
        severity: d.severity,
        action: d.action,
        decidedBy: d.decidedBy,
        expected: d.expected,
        actual: d.actual,
        ...(d.attribution ? { attribution: d.attribution } : {}),
      },
    }),
  );
  if (fresh.length > MAX_DEVIATION_EVENTS_PER_REPORT) {
    events[events.length - 1]!.detail.truncated = { total: fresh.length, sent: MAX_DEVIATION_EVENTS_PER_REPORT };
  }
  return events;
}

export function stateEvent(
  host: HostContext,
  t: { from: HostState | null; to: HostState; cause: string; actor: string; at: string; reportId: string | null },
): NewEvent {
  return {
    at: t.at,
    kind: EVENT_KINDS.state,
    hostId: host.hostId,
    actor: t.actor,
    detail: {
      hostname: host.hostname,
      imageId: host.imageId,
      group: host.group,
      from: t.from,
      to: t.to,
      cause: t.cause,
      reportId: t.reportId,
    },
  };
}

/**
 * A host state change: the transition in the host's timeline and its event in the stream, together,
 * so no writer of transitions (ingest, silence, the scheduler, operators) can leave the stream behind.
 */
export async function recordTransition(
  tx: StoreTx,
  host: HostContext,
  t: { from: HostState | null; to: HostState; cause: string; actor: string; at: string; reportId: string | null },
): Promise<void> {
  await tx.insertTransition({
    hostId: host.hostId,
    from: t.from,
    to: t.to,
    cause: t.cause,
    actor: t.actor,
    at: t.at,
    reportId: t.reportId,
  });
  await tx.appendEvent(stateEvent(host, t));
}

/**
 * The one entry point for other parts of the controller (the scheduler: breaker trips, failed
 * replacements). Call it with the transaction that records the occurrence; the notifier and the
 * SIEM forwarders pick the event up from the stream.
 */
export function recordEvent(tx: StoreTx, event: NewEvent): Promise<EventRow> {
  return tx.appendEvent(event);
}
