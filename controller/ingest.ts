/**
 * @module Report ingestion: authenticate the report to its host, refuse replays, check that it adds up
 * against the controller's own manifest copy, apply the policy, move the host's state, and store the
 * report with every consequence in one transaction.
 */
import type { Logger } from 'pino';
import { CLOCK_SKEW_TOLERANCE_MS } from '../shared/clock-skew.js';
import { DwError } from '../shared/errors.js';
import type { Deviation } from '../shared/schema/deviation.js';
import type { Report } from '../shared/schema/report.js';
import { checkReportDigests } from './digest-check.js';
import { deviationEvents, recordTransition } from './event-stream.js';
import type { ManifestCache } from './manifest-cache.js';
import { identityClaims, identityKey, identityLabel } from './identity.js';
import { evaluateAll, type Policy } from './policy.js';
import { IllegalTransitionError, next, type HostEvent } from './states.js';
import { UNBOUNDED, type TimeBudget } from './time-budget.js';
import type { HostDeviationRow, HostRow, HostState, Store, StoreTx } from './store/types.js';

/** Reports with more deviations than this give the event loop back between their steps. */
const YIELD_ABOVE_DEVIATIONS = 1000;

/** An operator's scan request that a heartbeat answer carried, with no scan since, is asked again after this long. */
export const SCAN_REQUEST_RESEND_MS = 5 * 60_000;

export interface IngestDeps {
  store: Store;
  policy: Policy;
  manifests: ManifestCache;
  lastDigests: LastDigests;
  clock: () => Date;
  log: Logger;
  /** The controller's scanMaxAge: past half of it, a heartbeat asks for a full scan before the host is tainted for lack of one. */
  scanMaxAgeMs?: number;
}

export interface IngestResult {
  status: 'accepted' | 'duplicate';
  reportId: string;
  state: HostState;
  deviations: number;
  /** Sections whose digests did not add up: each is recorded as an integrity deviation. */
  digestMismatch: string[];
  /** The host should send a full scan (its heartbeat digests differ from its last report). */
  scanRequested: boolean;
}

/**
 * Deviations the controller raises itself, outside any collector. A report that does not add up
 * taints (the host's account of itself cannot be trusted); lost reports are reported, not tainted.
 */
function integrityDeviation(
  hostId: string,
  key: string,
  expected: unknown,
  actual: unknown,
  now: string,
  action: 'taint' | 'report' = 'taint',
): HostDeviationRow {
  return {
    hostId,
    collector: 'integrity',
    key,
    change: 'modified',
    expected: { value: expected },
    actual: { value: actual },
    severity: action === 'taint' ? 'critical' : 'high',
    action,
    decidedBy: 'integrity',
    firstSeenAt: now,
    lastSeenAt: now,
  };
}

export interface IngestOptions {
  /** The host's clock minus ours when it sent this report (see shared/clock-skew.ts); null when unknown. */
  clockSkewMs?: number | null;
  /** Checkpoints between the steps of a large report; past the deadline the transaction rolls back. */
  budget?: TimeBudget;
}

export async function ingestReport(
  deps: IngestDeps,
  hostId: string,
  report: Report,
  opts: IngestOptions = {},
): Promise<IngestResult> {
  if (report.hostId !== hostId) {
    throw new DwError(
      'DW_ERR_FORBIDDEN',
      `this credential belongs to host ${hostId}; it cannot report for host ${report.hostId}`,
      { hostId, claimed: report.hostId },
    );
  }
  if (report.kind === 'heartbeat' && report.deviations.length > 0) {
    throw new DwError(
      'DW_ERR_VALIDATION',
      'a heartbeat carries no deviations; send them in a scan or event report',
      {},
    );
  }
  if (
    report.truncated &&
    (report.kind !== 'scan' ||
      report.truncated.sent !== report.deviations.length ||
      report.truncated.deviations < report.truncated.sent)
  ) {
    throw new DwError(
      'DW_ERR_VALIDATION',
      `truncated: only a scan is truncated, with sent equal to its ${report.deviations.length} deviations and no more than the total`,
      {},
    );
  }
  if (report.manifestRefused && report.kind !== 'heartbeat') {
    throw new DwError(
      'DW_ERR_VALIDATION',
      'manifestRefused: only a heartbeat carries it (an agent that refused its manifest scans nothing)',
      {},
    );
  }
  if (report.undeliveredScan && report.kind === 'scan') {
    throw new DwError(
      'DW_ERR_VALIDATION',
      'undeliveredScan: a scan that arrived is not undelivered; heartbeats and events carry it',
      {},
    );
  }
  const now = deps.clock().toISOString();
  const budget = opts.budget ?? UNBOUNDED;
  // Heartbeats (most requests by far) carry no deviations and skip the checkpoints; only large reports
  // yield at them.
  const large = report.deviations.length > YIELD_ABOVE_DEVIATIONS;
  const checkpoint = report.deviations.length > 0 ? (step: string) => budget.checkpoint(step, large) : async () => {};

  return deps.store
    .transaction(async (tx): Promise<IngestResult> => {
      // Lock the host first: two controllers (or two requests) must not both accept the next seq, and a
      // retry racing its original must see the original's report, not a "replay".
      const host = await tx.lockHost(hostId);
      if (!host) throw new DwError('DW_ERR_UNAUTHORIZED', `host ${hostId} is not enrolled`, { hostId });
      // Authenticated before an operator's reset or forget committed: the lock says what holds now.
      if (host.retiredAt || host.resetAt)
        throw new DwError(
          'DW_ERR_UNAUTHORIZED',
          `host ${hostId} was ${host.retiredAt ? 'forgotten' : 'reset'} by an operator; its credential no longer works`,
          { hostId },
        );
      const duplicate = (deviations: number, digestMismatch: string[]): IngestResult => ({
        status: 'duplicate',
        reportId: report.reportId,
        state: host.state,
        deviations,
        digestMismatch,
        scanRequested: false,
      });
      if (report.kind === 'heartbeat') {
        // Heartbeats are not stored as reports (thousands a second would swamp the table); a retry of the
        // latest one is recognised by its seq, and changes nothing (so a replayed heartbeat cannot keep a
        // stopped agent's host from going silent).
        if (report.seq === host.lastSeq) return duplicate(host.deviationCount, []);
      } else {
        const seen = await tx.getReport(report.reportId);
        if (seen) {
          if (seen.hostId === hostId && seen.seq === report.seq)
            return duplicate(seen.deviationCount, seen.digestMismatch);
          throw new DwError(
            'DW_ERR_REPLAY',
            `report ${report.reportId} was already received with another host or seq`,
            { reportId: report.reportId },
          );
        }
      }
      if (report.seq <= host.lastSeq) {
        throw new DwError(
          'DW_ERR_REPLAY',
          `report seq ${report.seq} is not greater than the last accepted seq ${host.lastSeq} (replayed or out of order)`,
          { seq: report.seq, lastSeq: host.lastSeq },
        );
      }
      if (report.imageId !== host.imageId) {
        throw new DwError(
          'DW_ERR_CONFLICT',
          `host ${hostId} was enrolled from image ${host.imageId} but reports image ${report.imageId}; an image is not changed in place`,
          { imageId: report.imageId },
        );
      }
      const manifest = await deps.manifests.get(tx, host.imageId);
      if (!manifest)
        throw new DwError(
          'DW_ERR_NO_MANIFEST',
          `no manifest is published for image ${host.imageId}; publish it with driftwarden manifest publish`,
          { imageId: host.imageId },
        );

      const integrity: HostDeviationRow[] = [];
      if (report.manifestDigest !== manifest.digests.overall) {
        integrity.push(integrityDeviation(hostId, 'manifest', manifest.digests.overall, report.manifestDigest, now));
      }
      // A host that renames itself or moves itself to another group has changed in place: taint (the
      // replacement acts on the pinned identity, so it can only ever replace this host itself).
      const claims = identityClaims(host, report);
      const identity = claims.map((c) => integrityDeviation(hostId, identityKey(c.field), c.pinned, c.claimed, now));
      integrity.push(...identity);
      // The AMI the host booted, held against the one the manifest was baked into: another AMI is another image.
      const cloudImage = manifest.image.cloudImageId;
      if (cloudImage && report.identity?.kind === 'aws' && report.identity.imageId !== cloudImage) {
        integrity.push(integrityDeviation(hostId, 'identity:image', cloudImage, report.identity.imageId, now));
      }
      const notes: HostDeviationRow[] = [];
      if (report.spoolDropped)
        notes.push(integrityDeviation(hostId, 'agent:spool-dropped', 0, report.spoolDropped, now, 'report'));
      // Silence, ordering and retention run on our receipt time and the seq, never on the host's clock;
      // a skewed clock is still worth an operator's eye (cron jobs, TLS and logs on that host are off).
      // Heartbeats do not touch deviations, so the flag is raised (and cleared) by scans and events.
      const skew = opts.clockSkewMs ?? null;
      if (skew !== null && Math.abs(skew) > CLOCK_SKEW_TOLERANCE_MS && report.kind !== 'heartbeat') {
        notes.push(
          integrityDeviation(
            hostId,
            'agent:clock-skew',
            `within ${CLOCK_SKEW_TOLERANCE_MS / 1000} s`,
            `${Math.round(skew / 1000)} s`,
            now,
            'report',
          ),
        );
        deps.log.warn({ hostId, skewSeconds: Math.round(skew / 1000) }, 'host clock is skewed');
      }
      if (report.truncated) {
        // The host has drift it could not send: nothing judges the part left out, so it taints.
        integrity.push(
          integrityDeviation(
            hostId,
            'agent:scan-truncated',
            'the whole scan',
            `${report.truncated.sent} of ${report.truncated.deviations} deviations sent`,
            now,
          ),
        );
      }
      if (report.manifestRefused) {
        // The manifest on the host does not verify: its baseline was altered or replaced, so nothing it
        // could report would mean anything. Always taints.
        integrity.push(
          integrityDeviation(
            hostId,
            'agent:manifest-signature',
            'a manifest signed by a trusted key',
            `${report.manifestRefused.code}: ${report.manifestRefused.reason}`,
            now,
          ),
        );
      }
      if (report.undeliveredScan) {
        // A scan the agent could not deliver must not leave the host clean on heartbeats alone. With
        // deviations in it, drift the controller cannot judge taints (making a scan undeliverable is how a
        // compromised host would hide it); a scan without any is reported, and the next delivered one clears it.
        const u = report.undeliveredScan;
        const row = integrityDeviation(
          hostId,
          'agent:scan-undelivered',
          'scan delivered',
          `since ${u.since}: ${u.deviations} deviations: ${u.reason}`,
          now,
          u.deviations > 0 ? 'taint' : 'report',
        );
        (u.deviations > 0 ? integrity : notes).push(row);
      }
      let digestMismatch: string[] = [];
      let scanRequested = false;
      let scanRequestSent = false;
      // A truncated scan's deviations are a part: its digests cannot add up, and it taints anyway.
      if (report.kind === 'scan' && !report.truncated) {
        // A collector that failed on the host (or was stopped by its watchdog) has no section to check:
        // that is recorded as what it is, a gap in what the host could vouch for, not as tampering.
        const failed = new Map(
          report.collectors.filter((c) => !c.ok).map((c) => [c.collector as string, c.error ?? 'failed']),
        );
        for (const [name, error] of failed)
          notes.push(integrityDeviation(hostId, `collector-failed:${name}`, 'ok', error, now, 'report'));
        await checkpoint('digest check');
        const mismatches = checkReportDigests(manifest, report.digests, report.deviations).filter(
          (m) => !failed.has(m.section),
        );
        digestMismatch = mismatches.map((m) => m.section);
        for (const m of mismatches)
          integrity.push(integrityDeviation(hostId, `digest:${m.section}`, m.expected, m.reported, now));
      } else if (report.kind === 'heartbeat') {
        let last = deps.lastDigests.get(hostId);
        if (last === undefined) {
          // First heartbeat since this controller started: learn the baseline once.
          const stored = (await tx.listReports(hostId, { limit: 1 }))[0]?.digests ?? {};
          deps.lastDigests.remember(hostId, stored);
          last = digestsKey(stored);
        }
        scanRequested = last !== digestsKey(report.digests);
        // Asked once, for an operator's re-check (POST /hosts/:id/recheck, stored so any controller
        // answers it) or when half of scanMaxAge has passed without a scan (an honest agent whose scans
        // were lost gets asked while there is time): the heartbeats that follow while the scan runs must
        // not start another; asked again only if no scan came within SCAN_REQUEST_RESEND_MS.
        const overdue =
          deps.scanMaxAgeMs !== undefined &&
          Date.parse(now) - Date.parse(host.lastScanAt ?? host.enrolledAt) > deps.scanMaxAgeMs / 2;
        if (
          (host.scanRequestedAt || overdue) &&
          (!host.scanRequestSentAt || Date.parse(now) - Date.parse(host.scanRequestSentAt) >= SCAN_REQUEST_RESEND_MS)
        ) {
          scanRequested = true;
          scanRequestSent = true;
        }
      }

      await checkpoint('policy');
      const exemptions = report.deviations.length > 0 ? await tx.listExemptions({ activeAt: now }) : [];
      const evaluation = evaluateAll(deps.policy, report.deviations, {
        hostId,
        imageId: host.imageId,
        now,
        exemptions,
      });
      const rows: HostDeviationRow[] = report.deviations.map((d: Deviation, i) => {
        const decision = evaluation.decisions[i]!;
        return {
          hostId,
          collector: d.collector,
          key: d.key,
          change: d.change,
          expected: d.expected,
          actual: d.actual,
          severity: decision.severity,
          action: decision.action,
          decidedBy: decision.decidedBy,
          firstSeenAt: now,
          lastSeenAt: now,
          attribution: d.attribution ?? null,
        };
      });
      rows.push(...integrity, ...notes);

      // A heartbeat only keeps a host alive, unless it announces an undelivered scan or does not add up
      // (another manifest, another identity): then it is judged like a report.
      const beatOnly = report.kind === 'heartbeat' && !report.undeliveredScan && integrity.length === 0;
      let event: HostEvent;
      // A heartbeat naming a manifest the host was not given, or another identity, is a host that lies
      // about itself: it taints like a scan that does not add up, whatever kind of report carries it.
      if (beatOnly) event = { type: 'heartbeat' };
      else if (integrity.length > 0) {
        const culprit = identity[0] ?? integrity[0]!;
        event = {
          type: 'report',
          worst: 'taint',
          culprit: { collector: 'integrity', key: culprit.key, change: 'modified', decidedBy: 'integrity' },
        };
      } else if (
        notes.length > 0 &&
        (evaluation.worst === 'none' || evaluation.worst === 'ignore' || evaluation.worst === 'exempt')
      ) {
        event = {
          type: 'report',
          worst: 'report',
          culprit: { collector: 'integrity', key: notes[0]!.key, change: 'modified', decidedBy: 'integrity' },
        };
      } else event = { type: 'report', worst: evaluation.worst, culprit: evaluation.culprit };
      // An event report only adds what the watcher saw; it cannot clean a host that a scan found drifted.
      if (report.kind === 'event' && event.type === 'report' && event.worst !== 'taint' && event.worst !== 'report')
        event = { type: 'heartbeat' };

      let transition;
      try {
        transition = next(host.state, event);
      } catch (err) {
        if (err instanceof IllegalTransitionError) {
          throw new DwError(
            'DW_ERR_CONFLICT',
            `host ${hostId} is ${host.state} and cannot report any more (${err.message})`,
            { state: host.state },
          );
        }
        throw err;
      }

      // What the host had before this report, so that only new drift becomes an event.
      await checkpoint('reading current deviations');
      const previous = rows.length > 0 ? await tx.listHostDeviations(hostId) : [];
      await checkpoint('storing deviations');
      if (report.kind === 'scan') await tx.replaceHostDeviations(hostId, rows);
      else if (rows.length > 0) await tx.upsertHostDeviations(rows);
      await checkpoint('storing the report');
      // The store keeps each deviation's first sighting across scans and events.
      const current =
        report.kind === 'scan' ? rows : !beatOnly || rows.length > 0 ? await tx.listHostDeviations(hostId) : [];
      const counted =
        beatOnly && rows.length === 0 ? host.deviationCount : current.filter((r) => r.action !== 'ignore').length;

      if (report.kind !== 'heartbeat')
        await tx.insertReport({
          reportId: report.reportId,
          hostId,
          seq: report.seq,
          kind: report.kind,
          scannedAt: report.scannedAt,
          receivedAt: now,
          digests: report.digests,
          deviationCount: report.deviations.length,
          digestMismatch,
          body: { deviations: report.deviations, collectors: report.collectors },
        });
      await tx.updateHost(hostId, {
        lastSeenAt: now,
        lastSeq: report.seq,
        ...(report.kind !== 'heartbeat'
          ? { lastReportAt: now, deviationCount: counted }
          : beatOnly && rows.length === 0
            ? {}
            : { deviationCount: counted }),
        ...(report.kind === 'scan'
          ? {
              lastScanAt: now,
              ...(host.scanRequestedAt || host.scanRequestSentAt
                ? { scanRequestedAt: null, scanRequestSentAt: null }
                : {}),
            }
          : {}),
        ...(scanRequestSent ? { scanRequestSentAt: now } : {}),
        // The pinned hostname and group are never patched here; a differing claim is kept beside them.
        ...(report.inventory ? { inventory: report.inventory } : {}),
        ...(report.inventory?.hostname != null
          ? { reportedHostname: claims.find((c) => c.field === 'hostname')?.claimed ?? null }
          : {}),
        ...(report.group !== undefined
          ? { reportedGroup: claims.find((c) => c.field === 'group')?.claimed ?? null }
          : {}),
        ...(report.identity !== undefined
          ? { reportedCloudIdentity: claims.some((c) => c.field === 'cloud') ? report.identity : null }
          : {}),
        agentVersion: report.agentVersion,
        manifestDigest: report.manifestDigest,
        ...(transition.changed ? { state: transition.state, stateSince: now } : {}),
        ...(transition.changed && transition.state === 'tainted' ? { taintedAt: now } : {}),
      });
      const who = { hostId, hostname: host.hostname, imageId: host.imageId, group: host.group };
      for (const c of claims) {
        // Once per new claim: a host repeating the same rename in every report is one audit row, not thousands.
        const lastClaim =
          c.field === 'hostname'
            ? host.reportedHostname
            : c.field === 'group'
              ? host.reportedGroup
              : host.reportedCloudIdentity
                ? identityLabel(host.reportedCloudIdentity)
                : null;
        if (lastClaim === c.claimed) continue;
        await tx.appendAudit({
          at: now,
          actor: `host:${hostId}`,
          action: 'host.identity-refused',
          target: hostId,
          detail: {
            field: c.field,
            pinned: c.pinned,
            claimed: c.claimed,
            previousClaim: lastClaim ?? null,
            reportId: report.reportId,
          },
        });
        deps.log.warn(
          { hostId, field: c.field, pinned: c.pinned, claimed: c.claimed },
          'host claimed another identity; refused and tainted',
        );
      }
      await checkpoint('events');
      await tx.appendEvents(deviationEvents(who, previous, rows, now, report.reportId));
      if (transition.changed) {
        await recordTransition(tx, who, {
          from: host.state,
          to: transition.state,
          cause: transition.cause,
          actor: 'policy',
          at: now,
          reportId: report.reportId,
        });
        if (transition.state === 'tainted') {
          await tx.appendAudit({
            at: now,
            actor: 'controller',
            action: 'host.taint',
            target: hostId,
            detail: { cause: transition.cause, reportId: report.reportId },
          });
        }
      }
      // The last check before the commit: a report that overran changes nothing.
      await checkpoint('commit');
      return {
        status: 'accepted',
        reportId: report.reportId,
        state: transition.state,
        deviations: counted,
        digestMismatch,
        scanRequested,
      };
    })
    .then((result) => {
      // Only after the commit: a rolled-back scan must not become the baseline heartbeats are held to.
      if (result.status === 'accepted' && report.kind !== 'heartbeat')
        deps.lastDigests.remember(hostId, report.digests);
      return result;
    });
}

/**
 * The last stored report's digests per host, so a heartbeat (the most frequent request by far) costs
 * no report query. With several controllers one may be stale; the cost is a needless scan request.
 */
export class LastDigests {
  private readonly map = new Map<string, string>();
  constructor(private readonly limit = 200_000) {}
  get(hostId: string): string | undefined {
    return this.map.get(hostId);
  }
  remember(hostId: string, digests: Record<string, string>): void {
    this.map.delete(hostId);
    if (this.map.size >= this.limit) this.map.delete(this.map.keys().next().value!);
    this.map.set(hostId, digestsKey(digests));
  }
}

function digestsKey(digests: Record<string, string>): string {
  return Object.keys(digests)
    .sort()
    .map((k) => `${k}=${digests[k]}`)
    .join(';');
}
