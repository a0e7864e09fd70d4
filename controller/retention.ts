/**
 * @module Retention (config `retention`): reports by age and per-host count, resolved findings (the
 * deviations left on replaced hosts), and the oldest rows of the audit log and the event stream, each
 * in small batches, one short transaction per batch, yielding between them so ingestion never waits
 * long. Never removed: a host's newest report, the report that tainted a host not yet replaced, any
 * host's current deviations until it is replaced, events a SIEM or notification sink has not sent yet,
 * and the newest row of each chain. Audit and event rows go only under a checkpoint (migration 0011),
 * written after the rows it covers were verified, so `audit verify` still proves the kept rows.
 *
 * IMPORTANT (several controllers on one PostgreSQL): report and finding pruning is idempotent (each
 * batch re-checks what is needed inside its transaction; two controllers deleting the same rows
 * simply find fewer). Checkpoints are serialized: one is written under an advisory lock, only if the
 * chain's latest checkpoint is still the one the walk started from; deleting rows a checkpoint covers
 * is idempotent, and a pass finishes what an interrupted one left.
 */
import type { KeyObject } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { DwError } from '../shared/errors.js';
import { sealCheckpoint } from './chain-checkpoint.js';
import { auditContent, chainHash, eventContent, GENESIS } from './store/chain.js';
import type { ChainCheckpointRow, ChainName, ReportRef } from './store/retention.js';
import type { Store } from './store/types.js';

/** Every age in ms; null: not pruned by age (or, for maxPerHost, no count limit). */
export interface RetentionPolicy {
  reports: { maxAgeMs: number | null; maxPerHost: number | null };
  events: { maxAgeMs: number | null };
  audit: { maxAgeMs: number | null };
  resolvedFindings: { maxAgeMs: number | null };
}

export type PrunedKind = 'reports' | 'findings' | 'audit' | 'events';

export interface RetentionOptions {
  store: Store;
  policy: RetentionPolicy;
  clock: () => Date;
  log: {
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
  /** Signs checkpoints (the audit anchors' key when configured). */
  signingKey?: KeyObject;
  /** The event cursors of the configured sinks: events after the lowest are not pruned. */
  eventCursors: readonly string[];
  /** Rows per transaction (default 2,000). */
  batch?: number;
  /** Most rows one checkpoint covers (default 100,000): a pass writes more checkpoints past it. */
  maxPerCheckpoint?: number;
  /**
   * The per-host count walk reads every report's index entry of the hosts it visits, so one pass visits
   * at most this many hosts (default 100,000) and the next pass goes on from there (`countCursor`).
   */
  hostsPerPass?: number;
  /** Where the count walk stopped (kept across passes by the caller; null: from the first host). */
  countCursor?: { hostsAfter: string | null };
  onPruned?: (kind: PrunedKind, rows: number) => void;
  onCheckpoint?: (c: ChainCheckpointRow) => void;
}

export interface RetentionResult {
  reports: number;
  findings: number;
  audit: number;
  events: number;
  checkpoints: ChainCheckpointRow[];
}

const HOSTS_PER_BATCH = 500;
/** Hosts per count query: each reads all their reports' index entries (on SQLite, holding the one connection). */
const COUNT_HOSTS_PER_BATCH = 100;

function cutoff(o: RetentionOptions, ms: number): string {
  return new Date(o.clock().getTime() - ms).toISOString();
}

/** One full pass over everything retention covers. A failing part is logged and the others still run. */
export async function pruneOnce(o: RetentionOptions): Promise<RetentionResult> {
  const out: RetentionResult = { reports: 0, findings: 0, audit: 0, events: 0, checkpoints: [] };
  const part = async (kind: PrunedKind, fn: () => Promise<number>) => {
    try {
      const n = await fn();
      out[kind] += n;
      if (n > 0) o.log.info({ kind, pruned: n }, 'retention: pruned');
    } catch (err) {
      o.log.error({ err, kind }, 'retention: pruning failed; retried next pass');
    }
  };
  const { policy } = o;
  await part('reports', () => pruneReports(o));
  if (policy.resolvedFindings.maxAgeMs !== null) {
    const ms = policy.resolvedFindings.maxAgeMs;
    await part('findings', () => pruneResolvedFindings(o, cutoff(o, ms)));
  }
  for (const chain of ['events', 'audit'] as const) {
    const ms = policy[chain].maxAgeMs;
    if (ms === null) continue;
    try {
      const r = await pruneChain(o, chain, cutoff(o, ms));
      out[chain] += r.rows;
      out.checkpoints.push(...r.checkpoints);
      if (r.rows > 0)
        o.log.info({ kind: chain, pruned: r.rows, checkpoints: r.checkpoints.length }, 'retention: pruned');
    } catch (err) {
      o.log.error({ err, kind: chain }, 'retention: pruning failed; retried next pass');
    }
  }
  return out;
}

async function deleteUnneeded(o: RetentionOptions, candidates: ReportRef[]): Promise<number> {
  if (candidates.length === 0) return 0;
  const n = await o.store.transaction(async (tx) => {
    const needed = await tx.retention.neededReports(candidates);
    return tx.retention.deleteReports(candidates.filter((c) => !needed.has(c.reportId)).map((c) => c.reportId));
  });
  if (n > 0) o.onPruned?.('reports', n);
  await yieldToLoop();
  return n;
}

/** By age (the receipt-time index), then by count per host (a walk over hosts by id). */
export async function pruneReports(o: RetentionOptions): Promise<number> {
  const batch = o.batch ?? 2_000;
  const { maxAgeMs, maxPerHost } = o.policy.reports;
  let total = 0;
  if (maxAgeMs !== null) {
    const before = cutoff(o, maxAgeMs);
    let after: [string, string] | null = null;
    for (;;) {
      const c = await o.store.retention.listReportsReceivedBefore(before, after, batch);
      if (c.length === 0) break;
      total += await deleteUnneeded(o, c);
      const last = c[c.length - 1]!;
      after = [last.receivedAt, last.reportId];
      if (c.length < batch) break;
    }
  }
  if (maxPerHost !== null) {
    const cursor = o.countCursor ?? { hostsAfter: null };
    const limit = o.hostsPerPass ?? 100_000;
    for (let visited = 0; visited < limit; visited += COUNT_HOSTS_PER_BATCH) {
      const r = await o.store.retention.listReportsBeyondCount(cursor.hostsAfter, COUNT_HOSTS_PER_BATCH, maxPerHost);
      for (let i = 0; i < r.reports.length; i += batch) total += await deleteUnneeded(o, r.reports.slice(i, i + batch));
      if (r.reports.length === 0) await yieldToLoop();
      cursor.hostsAfter = r.lastHost;
      if (r.lastHost === null) break;
    }
  }
  return total;
}

export async function pruneResolvedFindings(o: RetentionOptions, before: string): Promise<number> {
  let after: [string, string] | null = null;
  let total = 0;
  for (;;) {
    const r = await o.store.transaction((tx) => tx.retention.pruneResolvedDeviations(before, after, HOSTS_PER_BATCH));
    total += r.deleted;
    if (r.deleted > 0) o.onPruned?.('findings', r.deleted);
    await yieldToLoop();
    if (r.last === null) return total;
    after = r.last;
  }
}

interface Link {
  id: number;
  at: string;
  prevHash: string;
  hash: string;
  content: unknown;
}

async function page(store: Store, chain: ChainName, afterId: number, limit: number): Promise<Link[]> {
  if (chain === 'audit')
    return (await store.listAudit({ afterId, limit })).map((r) => ({
      id: r.id,
      at: r.at,
      prevHash: r.prevHash,
      hash: r.hash,
      content: auditContent(r),
    }));
  return (await store.listEvents({ afterId, limit })).map((r) => ({
    id: r.id,
    at: r.at,
    prevHash: r.prevHash,
    hash: r.hash,
    content: eventContent(r),
  }));
}

async function newestId(store: Store, chain: ChainName): Promise<number> {
  const rows =
    chain === 'audit'
      ? await store.listAudit({ beforeId: Number.MAX_SAFE_INTEGER, limit: 1 })
      : await store.listEvents({ newestFirst: true, limit: 1 });
  return rows[0]?.id ?? 0;
}

/** Deletes what a checkpoint covers, a batch per statement. */
async function drain(o: RetentionOptions, chain: ChainName, throughId: number): Promise<number> {
  const batch = o.batch ?? 2_000;
  let total = 0;
  for (;;) {
    const n = await o.store.retention.deleteChainRows(chain, throughId, batch);
    total += n;
    if (n > 0) o.onPruned?.(chain, n);
    await yieldToLoop();
    if (n < batch) return total;
  }
}

/**
 * The chain's rows older than `before` (a prefix: the walk stops at the first newer row), verified from
 * the latest checkpoint, covered by a new checkpoint, then deleted. A break in the rows to be pruned is
 * never covered: it stays for `audit verify` to find, and this throws.
 */
export async function pruneChain(
  o: RetentionOptions,
  chain: ChainName,
  before: string,
): Promise<{ rows: number; checkpoints: ChainCheckpointRow[] }> {
  const maxPer = o.maxPerCheckpoint ?? 100_000;
  const checkpoints: ChainCheckpointRow[] = [];
  let cp = await o.store.retention.latestCheckpoint(chain);
  let rows = cp ? await drain(o, chain, cp.throughId) : 0;
  // The newest row stays, so the next append still finds the chain's head.
  const head = await newestId(o.store, chain);
  const bound = chain === 'events' ? await o.store.retention.minEventCursor(o.eventCursors) : null;
  for (;;) {
    let prev = cp?.throughHash ?? GENESIS;
    let after = cp?.throughId ?? 0;
    let first: Link | null = null;
    let last: Link | null = null;
    let count = 0;
    let done = false;
    while (!done && count < maxPer) {
      const links = await page(o.store, chain, after, Math.min(5_000, maxPer - count));
      if (links.length === 0) break;
      for (const l of links) {
        if (l.at >= before || l.id >= head || (bound !== null && l.id > bound)) {
          done = true;
          break;
        }
        if (l.prevHash !== prev || chainHash(l.prevHash, l.content) !== l.hash)
          throw new DwError(
            'DW_ERR_STATE',
            `${chain}: row ${l.id} does not chain (changed or a row before it removed): not pruning over it; run audit verify`,
            { chain, id: l.id },
          );
        prev = l.hash;
        first ??= l;
        last = l;
        count++;
      }
      after = links[links.length - 1]!.id;
      await yieldToLoop();
    }
    if (!first || !last) return { rows, checkpoints };
    const from = cp;
    const sealed = sealCheckpoint(
      {
        chain,
        firstId: first.id,
        throughId: last.id,
        fromHash: from?.throughHash ?? GENESIS,
        throughHash: last.hash,
        rows: count,
        totalRows: (from?.totalRows ?? 0) + count,
        cutoff: before,
        at: o.clock().toISOString(),
        prevHash: from?.hash ?? GENESIS,
      },
      o.signingKey,
    );
    const written = await o.store.transaction(async (tx) => {
      if (!(await tx.retention.tryLock(chain))) return null;
      const latest = await tx.retention.latestCheckpoint(chain);
      // Another controller checkpointed meanwhile: its checkpoint stands, this walk is stale.
      if ((latest?.id ?? 0) !== (from?.id ?? 0)) return null;
      const c = await tx.retention.insertCheckpoint(sealed);
      await tx.appendAudit({
        at: sealed.at,
        actor: 'controller',
        action: 'retention.prune',
        target: chain,
        detail: {
          checkpoint: c.id,
          firstId: c.firstId,
          throughId: c.throughId,
          rows: c.rows,
          cutoff: c.cutoff,
          signed: c.signature !== null,
        },
      });
      return c;
    });
    if (!written) return { rows, checkpoints };
    o.onCheckpoint?.(written);
    checkpoints.push(written);
    rows += await drain(o, chain, written.throughId);
    cp = written;
    if (count < maxPer) return { rows, checkpoints };
  }
}
