/** @module Turn a check result into the report an agent sends: the same facts, plus its sequence number and a unique id. */
import type { CloudIdentity } from '../shared/schema/identity.js';
import { randomUUID } from 'node:crypto';
import type { CheckResult } from '../shared/schema/check.js';
import { SEVERITIES, type Deviation } from '../shared/schema/deviation.js';
import { LIMITS } from '../shared/schema/limits.js';
import { REPORT_SCHEMA_ID, type CollectorResult, type Report } from '../shared/schema/report.js';
import { AGENT_VERSION } from './version.js';

/**
 * A scan with more deviations than a report may carry (LIMITS.maxDeviations) is sent with the most
 * severe ones and a warning on each collector that lost some; a deviation whose key is longer than the
 * store can index is left out the same way. It must still be sent: refused whole,
 * it would leave the host in its last state (clean, say) while the controller, finding the sections
 * do not add up, taints it on an integrity deviation, which is what so large a drift deserves.
 */
export function capDeviations(
  deviations: readonly Deviation[],
  collectors: readonly CollectorResult[],
  max: number = LIMITS.maxDeviations,
): { deviations: Deviation[]; collectors: CollectorResult[] } {
  const lost = new Map<string, string[]>();
  const note = (collector: string, why: string) => lost.set(collector, [...(lost.get(collector) ?? []), why]);
  // A key the store cannot index (a path of more than 2 KB) goes the same way: left out, so it taints.
  const longKeys = new Map<string, number>();
  let sendable = deviations.filter((d) => {
    if (d.key.length * 3 <= LIMITS.maxKeyBytes || Buffer.byteLength(d.key) <= LIMITS.maxKeyBytes) return true;
    longKeys.set(d.collector, (longKeys.get(d.collector) ?? 0) + 1);
    return false;
  });
  for (const [c, n] of longKeys)
    note(c, `${n} deviations not sent: their keys are longer than ${LIMITS.maxKeyBytes} bytes`);
  if (sendable.length > max) {
    const rank = (d: Deviation) => SEVERITIES.indexOf(d.severity);
    const order = sendable.map((_, i) => i).sort((a, b) => rank(sendable[b]!) - rank(sendable[a]!) || a - b);
    const keep = new Set(order.slice(0, max));
    const over = new Map<string, number>();
    sendable = sendable.filter((d, i) => {
      if (keep.has(i)) return true;
      over.set(d.collector, (over.get(d.collector) ?? 0) + 1);
      return false;
    });
    for (const [c, n] of over)
      note(c, `${n} deviations not sent: a report carries at most ${max} (the most severe were kept)`);
  }
  if (lost.size === 0) return { deviations: sendable, collectors: [...collectors] };
  return {
    deviations: sendable,
    collectors: collectors.map((c) => {
      const why = lost.get(c.collector);
      return why ? { ...c, warnings: [...(c.warnings ?? []).slice(0, LIMITS.maxWarnings - why.length), ...why] } : c;
    }),
  };
}

const clip = (s: string) => (s.length > LIMITS.maxMessage ? `${s.slice(0, LIMITS.maxMessage - 1)}…` : s);

/** Collector results within the controller's limits: long texts clipped, past 100 warnings a count of the rest. */
export function boundCollectors(collectors: readonly CollectorResult[]): CollectorResult[] {
  return collectors.map((c) => {
    const out: CollectorResult = { ...c };
    if (c.error !== undefined) out.error = clip(c.error);
    if (c.warnings) {
      const w = c.warnings.map(clip);
      out.warnings =
        w.length > LIMITS.maxWarnings
          ? [...w.slice(0, LIMITS.maxWarnings - 1), `${w.length - LIMITS.maxWarnings + 1} more warnings`]
          : w;
    }
    return out;
  });
}

export function reportFromCheck(
  result: CheckResult,
  opts: { seq: number; hostId?: string; group?: string; kind?: Report['kind']; identity?: CloudIdentity },
): Report {
  const sent =
    opts.kind === 'heartbeat'
      ? { deviations: [], collectors: [] }
      : capDeviations(result.deviations, boundCollectors(result.collectors));
  return {
    schema: REPORT_SCHEMA_ID,
    kind: opts.kind ?? 'scan',
    reportId: randomUUID(),
    hostId: opts.hostId ?? result.host.hostId,
    imageId: result.image.id,
    manifestDigest: result.manifestDigest,
    agentVersion: AGENT_VERSION,
    seq: opts.seq,
    scannedAt: result.scannedAt,
    digests: result.digests,
    // A heartbeat says only "alive, and still these digests": nothing else to send or store.
    collectors: sent.collectors,
    deviations: sent.deviations,
    ...(opts.kind === 'heartbeat' ? {} : { inventory: result.host }),
    ...(opts.identity ? { identity: opts.identity } : {}),
    ...(opts.group ? { group: opts.group } : {}),
  };
}
