/**
 * @module The hash chain over the audit log and the event stream: each row's hash covers the previous
 * row's hash and the row's own canonical content, so changing or removing a row breaks every link
 * after it. Pure functions, shared by the store (append), migration 0003 (backfill) and verification.
 */
import { canonicalJson, sha256Hex } from '../../shared/canonical.js';

/** The prev_hash of the first row of a chain. */
export const GENESIS = '0'.repeat(64);

/**
 * Ids are left out on purpose: they are assigned by the database after the hash is computed, and the
 * prev_hash link already fixes each row's place in the chain.
 */
export function auditContent(r: {
  at: string;
  actor: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown>;
}): unknown {
  return { at: r.at, actor: r.actor, action: r.action, target: r.target, detail: r.detail };
}

export function eventContent(r: {
  at: string;
  kind: string;
  hostId: string | null;
  actor: string;
  detail: Record<string, unknown>;
}): unknown {
  return { at: r.at, kind: r.kind, hostId: r.hostId, actor: r.actor, detail: r.detail };
}

/** sha256(prev_hash || "\n" || canonical row), hex. */
export function chainHash(prevHash: string, content: unknown): string {
  return sha256Hex(`${prevHash}\n${canonicalJson(content)}`);
}

export interface ChainLink {
  id: number;
  prevHash: string;
  hash: string;
  content: unknown;
}

export type ChainBreak =
  | { id: number; problem: 'prev-hash'; expected: string; found: string }
  | { id: number; problem: 'hash'; expected: string; found: string };

/**
 * Walks links in id order from `prev` (GENESIS at the start of the chain), returning the first broken
 * link, or the last hash if all hold. A changed row fails its own hash; a removed row fails the next
 * row's prev_hash.
 */
export function verifyLinks(
  links: Iterable<ChainLink>,
  prev = GENESIS,
): { ok: true; head: string; count: number } | { ok: false; broken: ChainBreak; count: number } {
  let count = 0;
  for (const l of links) {
    if (l.prevHash !== prev)
      return { ok: false, broken: { id: l.id, problem: 'prev-hash', expected: prev, found: l.prevHash }, count };
    const h = chainHash(l.prevHash, l.content);
    if (h !== l.hash) return { ok: false, broken: { id: l.id, problem: 'hash', expected: h, found: l.hash }, count };
    prev = l.hash;
    count++;
  }
  return { ok: true, head: prev, count };
}
