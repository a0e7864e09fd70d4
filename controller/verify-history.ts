/**
 * @module `driftwarden audit verify`: walks the audit log and the event stream in id order straight from
 * the store (not through the API, so a compromised controller process cannot vouch for itself) and
 * reports the first broken link of each chain. A changed row fails its own hash, a removed row the
 * next row's prev_hash; removing rows at the tail is caught by comparing the head with one recorded
 * earlier (`--expect-head`). Someone who can write the database can also recompute every later hash,
 * and the chain then holds together: an anchor (audit-anchor.ts), a point of the chain recorded outside
 * the database, catches that, because the rewritten chain no longer passes through it.
 */
import type { KeyObject } from 'node:crypto';
import { checkCheckpoints, type CheckpointProblem } from './chain-checkpoint.js';
import { auditContent, eventContent, GENESIS, verifyLinks, type ChainBreak, type ChainLink } from './store/chain.js';
import type { ChainCheckpointRow } from './store/retention.js';
import type { StoreTx } from './store/types.js';

export type ChainName = 'audit' | 'events';

/** What retention removed from the start of a chain, as its checkpoints record it. */
export interface PrunedRange {
  checkpoints: number;
  /** Ids 1..throughId are gone (or going: deletion runs in batches after the checkpoint). */
  firstId: number;
  throughId: number;
  rows: number;
  /** The latest checkpoint: when it was written and the cut-off its rows were older than. */
  at: string;
  cutoff: string;
  /** `valid` (checked against the checkpoint key), `not checked` (signed, no key given) or `unsigned`. */
  signature: 'valid' | 'not checked' | 'unsigned';
}

export interface ChainReport {
  chain: ChainName;
  ok: boolean;
  /** Rows since the chain began, pruned ones included (what an anchor counts); `kept` of them are in the store. */
  rows: number;
  kept?: number;
  pruned?: PrunedRange;
  /** Set when a retention checkpoint is altered, forged, out of order or wrongly signed. */
  checkpointProblem?: CheckpointProblem;
  /** Anchors older than the pruning: their rows are gone, so they are covered by the checkpoints, not checked. */
  anchorsBeforePruning?: number;
  /** The hash of the last row (GENESIS for an empty chain): record it to detect a truncated tail later. */
  head: string;
  /** The id of the row whose hash is `head` (0 for an empty chain). */
  lastId: number;
  broken?: ChainBreak;
  /** Set when an expected head was given and the chain does not contain it. */
  headMismatch?: { expected: string };
  /** Set when an anchor was given and the chain does not pass through it. */
  anchorMismatch?: {
    throughId: number;
    expectedHead: string;
    expectedRows: number;
    foundHead: string | null;
    foundRows: number;
  };
}

/** A point of a chain recorded elsewhere: after row `throughId` (0: none yet), `rows` rows, ending in `head`. */
export interface ChainPoint {
  throughId: number;
  rows: number;
  head: string;
}

const BATCH = 5_000;

async function* links(store: StoreTx, chain: ChainName, from: number): AsyncGenerator<ChainLink> {
  let after: number | undefined = from > 0 ? from : undefined;
  for (;;) {
    const rows =
      chain === 'audit'
        ? (await store.listAudit({ afterId: after, limit: BATCH })).map((r) => ({
            id: r.id,
            prevHash: r.prevHash,
            hash: r.hash,
            content: auditContent(r),
          }))
        : (await store.listEvents({ afterId: after, limit: BATCH })).map((r) => ({
            id: r.id,
            prevHash: r.prevHash,
            hash: r.hash,
            content: eventContent(r),
          }));
    yield* rows;
    if (rows.length < BATCH) return;
    after = rows[rows.length - 1]!.id;
  }
}

/**
 * `anchors`: points recorded earlier (any number, one walk for all): the chain must pass through each,
 * the row `throughId` having hash `head` after exactly `rows` rows. The first one it misses is reported.
 */
export async function verifyChain(
  store: StoreTx,
  chain: ChainName,
  expectHead?: string,
  anchors: readonly ChainPoint[] = [],
  opts: { checkpointKey?: KeyObject } = {},
): Promise<ChainReport> {
  // Retention removed the oldest rows under checkpoints: the kept rows must chain from the latest one.
  const checkpoints = await store.retention.listCheckpoints(chain);
  const cp: ChainCheckpointRow | undefined = checkpoints[checkpoints.length - 1];
  const pruned: PrunedRange | undefined = cp && {
    checkpoints: checkpoints.length,
    firstId: checkpoints[0]!.firstId,
    throughId: cp.throughId,
    rows: cp.totalRows,
    at: cp.at,
    cutoff: cp.cutoff,
    signature: opts.checkpointKey ? 'valid' : checkpoints.every((c) => c.signature) ? 'not checked' : 'unsigned',
  };
  const base = cp?.totalRows ?? 0;
  const checkpointProblem = checkCheckpoints(checkpoints, opts.checkpointKey);
  if (checkpointProblem)
    return {
      chain,
      ok: false,
      rows: base,
      kept: 0,
      ...(pruned ? { pruned } : {}),
      head: cp?.throughHash ?? GENESIS,
      lastId: cp?.throughId ?? 0,
      checkpointProblem,
    };
  let prev = cp?.throughHash ?? GENESIS;
  let rows = base;
  let lastId = cp?.throughId ?? 0;
  let found = expectHead !== undefined && cp !== undefined && checkpoints.some((c) => c.throughHash === expectHead);
  // An anchor of an empty chain holds for any chain; one at or before the checkpoint is about rows that are gone.
  const prunedThrough = cp?.throughId ?? 0;
  const anchorsBeforePruning = anchors.filter((a) => a.throughId > 0 && a.throughId <= prunedThrough).length;
  const pending = anchors.filter((a) => a.throughId > prunedThrough).sort((x, y) => x.throughId - y.throughId);
  let next = 0;
  let missed: ChainReport['anchorMismatch'];
  const miss = (a: ChainPoint, foundHead: string | null, foundRows: number) => {
    missed ??= { throughId: a.throughId, expectedHead: a.head, expectedRows: a.rows, foundHead, foundRows };
  };
  const extra = {
    ...(pruned ? { pruned } : {}),
    ...(anchorsBeforePruning ? { anchorsBeforePruning } : {}),
  };
  for await (const batch of batches(links(store, chain, prunedThrough), 1_000)) {
    const r = verifyLinks(batch, prev);
    if (!r.ok)
      return {
        chain,
        ok: false,
        rows: rows + r.count,
        kept: rows + r.count - base,
        ...extra,
        head: prev,
        lastId,
        broken: r.broken,
      };
    if (expectHead && !found) found = batch.some((l) => l.hash === expectHead);
    for (const [i, l] of batch.entries()) {
      for (; next < pending.length && pending[next]!.throughId <= l.id; next++) {
        const a = pending[next]!;
        // The anchored row is gone when the walk passes its id without meeting it.
        if (a.throughId < l.id) miss(a, null, rows + i);
        else if (a.head !== l.hash || a.rows !== rows + i + 1) miss(a, l.hash, rows + i + 1);
      }
    }
    rows += r.count;
    prev = r.head;
    lastId = batch[batch.length - 1]!.id;
  }
  for (; next < pending.length; next++) miss(pending[next]!, null, rows);
  const report: ChainReport = { chain, ok: true, rows, kept: rows - base, ...extra, head: prev, lastId };
  if (expectHead && expectHead !== GENESIS && !found)
    return { ...report, ok: false, headMismatch: { expected: expectHead } };
  if (missed) return { ...report, ok: false, anchorMismatch: missed };
  return report;
}

async function* batches<T>(it: AsyncIterable<T>, n: number): AsyncGenerator<T[]> {
  let buf: T[] = [];
  for await (const x of it) {
    buf.push(x);
    if (buf.length >= n) {
      yield buf;
      buf = [];
    }
  }
  if (buf.length) yield buf;
}

function describePruned(r: ChainReport): string {
  const p = r.pruned;
  if (!p) return '';
  return `; ${p.rows} rows pruned (ids ${p.firstId}..${p.throughId}, older than ${p.cutoff}) under ${p.checkpoints} checkpoint${p.checkpoints === 1 ? '' : 's'}, latest ${p.at}, signature ${p.signature}${r.anchorsBeforePruning ? `; ${r.anchorsBeforePruning} anchor(s) predate the pruning and are covered by it` : ''}`;
}

export function describeChainReport(r: ChainReport): string {
  if (r.checkpointProblem)
    return `${r.chain}: BROKEN at retention checkpoint ${r.checkpointProblem.checkpointId}: ${r.checkpointProblem.problem}`;
  return describeChainReportRows(r) + describePruned(r);
}

function describeChainReportRows(r: ChainReport): string {
  if (r.broken) {
    const what =
      r.broken.problem === 'hash'
        ? 'its content does not match its hash (changed)'
        : 'its prev_hash does not match the row before it (a row before it was removed or changed)';
    return `${r.chain}: BROKEN at id ${r.broken.id}: ${what}; ${r.rows} rows verified before it`;
  }
  if (r.anchorMismatch) {
    const a = r.anchorMismatch;
    const found =
      a.foundHead === null
        ? `there is no row ${a.throughId} any more (${a.foundRows} rows lead up to where it was)`
        : `row ${a.throughId} has hash ${a.foundHead} after ${a.foundRows} rows`;
    return `${r.chain}: BROKEN: the chain does not pass through the anchor (row ${a.throughId}, ${a.expectedRows} rows, hash ${a.expectedHead}): ${found}; rows up to it were changed, removed or added and the hashes recomputed`;
  }
  if (r.headMismatch)
    return `${r.chain}: BROKEN: the recorded head ${r.headMismatch.expected} is not in the chain (rows were removed from the end, or the chain was rebuilt); ${r.rows} rows, head ${r.head}`;
  return r.pruned
    ? `${r.chain}: ok, ${r.kept} rows kept of ${r.rows}, head ${r.head}`
    : `${r.chain}: ok, ${r.rows} rows, head ${r.head}`;
}
