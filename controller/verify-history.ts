/**
 * @module `driftwarden audit verify`: walks the audit log and the event stream in id order straight from
 * the store (not through the API, so a compromised controller process cannot vouch for itself) and
 * reports the first broken link of each chain. A changed row fails its own hash, a removed row the
 * next row's prev_hash; removing rows at the tail is caught by comparing the head with one recorded
 * earlier (`--expect-head`).
 */
import { auditContent, eventContent, GENESIS, verifyLinks, type ChainBreak, type ChainLink } from './store/chain.js';
import type { StoreTx } from './store/types.js';

export type ChainName = 'audit' | 'events';

export interface ChainReport {
  chain: ChainName;
  ok: boolean;
  rows: number;
  /** The hash of the last row (GENESIS for an empty chain): record it to detect a truncated tail later. */
  head: string;
  broken?: ChainBreak;
  /** Set when an expected head was given and the chain does not contain it. */
  headMismatch?: { expected: string };
}

const BATCH = 5_000;

async function* links(store: StoreTx, chain: ChainName): AsyncGenerator<ChainLink> {
  let after: number | undefined;
  for (;;) {
    const rows =
      chain === 'audit'
        ? (await store.listAudit({ afterId: after, limit: BATCH })).map((r) => ({ id: r.id, prevHash: r.prevHash, hash: r.hash, content: auditContent(r) }))
        : (await store.listEvents({ afterId: after, limit: BATCH })).map((r) => ({ id: r.id, prevHash: r.prevHash, hash: r.hash, content: eventContent(r) }));
    yield* rows;
    if (rows.length < BATCH) return;
    after = rows[rows.length - 1]!.id;
  }
}

export async function verifyChain(store: StoreTx, chain: ChainName, expectHead?: string): Promise<ChainReport> {
  let prev = GENESIS;
  let rows = 0;
  let found = false;
  for await (const batch of batches(links(store, chain), 1_000)) {
    const r = verifyLinks(batch, prev);
    rows += r.count;
    if (!r.ok) return { chain, ok: false, rows, head: prev, broken: r.broken };
    if (expectHead && !found) found = batch.some((l) => l.hash === expectHead);
    prev = r.head;
  }
  const report: ChainReport = { chain, ok: true, rows, head: prev };
  if (expectHead && expectHead !== GENESIS && !found) return { ...report, ok: false, headMismatch: { expected: expectHead } };
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

export function describeChainReport(r: ChainReport): string {
  if (r.broken) {
    const what = r.broken.problem === 'hash' ? 'its content does not match its hash (changed)' : 'its prev_hash does not match the row before it (a row before it was removed or changed)';
    return `${r.chain}: BROKEN at id ${r.broken.id}: ${what}; ${r.rows} rows verified before it`;
  }
  if (r.headMismatch) return `${r.chain}: BROKEN: the recorded head ${r.headMismatch.expected} is not in the chain (rows were removed from the end, or the chain was rebuilt); ${r.rows} rows, head ${r.head}`;
  return `${r.chain}: ok, ${r.rows} rows, head ${r.head}`;
}
