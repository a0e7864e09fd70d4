/** @module Turn a check result into the report an agent sends: the same facts, plus its sequence number and a unique id. */
import { randomUUID } from 'node:crypto';
import type { CheckResult } from '../shared/schema/check.js';
import { SEVERITIES, type Deviation } from '../shared/schema/deviation.js';
import { LIMITS } from '../shared/schema/limits.js';
import { REPORT_SCHEMA_ID, type CollectorResult, type Report } from '../shared/schema/report.js';
import { AGENT_VERSION } from './version.js';

/**
 * A scan with more deviations than a report may carry (LIMITS.maxDeviations) is sent with the most
 * severe ones and a warning on each collector that lost some. It must still be sent: refused whole,
 * it would leave the host in its last state (clean, say) while the controller, finding the sections
 * do not add up, taints it on an integrity deviation, which is what so large a drift deserves.
 */
export function capDeviations(deviations: readonly Deviation[], collectors: readonly CollectorResult[], max: number = LIMITS.maxDeviations): { deviations: Deviation[]; collectors: CollectorResult[] } {
  if (deviations.length <= max) return { deviations: [...deviations], collectors: [...collectors] };
  const rank = (d: Deviation) => SEVERITIES.indexOf(d.severity);
  const order = deviations.map((_, i) => i).sort((a, b) => rank(deviations[b]!) - rank(deviations[a]!) || a - b);
  const keep = new Set(order.slice(0, max));
  const kept: Deviation[] = [];
  const lost = new Map<string, number>();
  deviations.forEach((d, i) => {
    if (keep.has(i)) kept.push(d);
    else lost.set(d.collector, (lost.get(d.collector) ?? 0) + 1);
  });
  return {
    deviations: kept,
    collectors: collectors.map((c) => {
      const n = lost.get(c.collector);
      if (!n) return c;
      const warning = `${n} deviations not sent: a report carries at most ${max} (the most severe were kept)`;
      return { ...c, warnings: [...(c.warnings ?? []).slice(0, LIMITS.maxWarnings - 1), warning] };
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
      out.warnings = w.length > LIMITS.maxWarnings ? [...w.slice(0, LIMITS.maxWarnings - 1), `${w.length - LIMITS.maxWarnings + 1} more warnings`] : w;
    }
    return out;
  });
}

export function reportFromCheck(result: CheckResult, opts: { seq: number; hostId?: string; group?: string; kind?: Report['kind'] }): Report {
  const sent = opts.kind === 'heartbeat' ? { deviations: [], collectors: [] } : capDeviations(result.deviations, boundCollectors(result.collectors));
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
    ...(opts.group ? { group: opts.group } : {}),
  };
}
