/** @module Turn a check result into the report an agent sends: the same facts, plus its sequence number and a unique id. */
import { randomUUID } from 'node:crypto';
import type { CheckResult } from '../shared/schema/check.js';
import { REPORT_SCHEMA_ID, type Report } from '../shared/schema/report.js';
import { AGENT_VERSION } from './version.js';

export function reportFromCheck(result: CheckResult, opts: { seq: number; hostId?: string; group?: string; kind?: Report['kind'] }): Report {
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
    collectors: opts.kind === 'heartbeat' ? [] : result.collectors,
    deviations: opts.kind === 'heartbeat' ? [] : result.deviations,
    ...(opts.kind === 'heartbeat' ? {} : { inventory: result.host }),
    ...(opts.group ? { group: opts.group } : {}),
  };
}
