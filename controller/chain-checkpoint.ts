/**
 * @module Retention checkpoints of the audit and event chains: their hash (each covers the previous
 * checkpoint's, like the rows they stand for), their ed25519 signature, and the check of a chain's
 * checkpoints in order. Pure functions: the pruner (retention.ts) writes them, verification reads them.
 */
import type { KeyObject } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import { keyIdOf, signBytes, verifyBytes } from '../shared/sign.js';
import { chainHash, GENESIS } from './store/chain.js';
import type { ChainCheckpointRow } from './store/retention.js';

type Unsigned = Omit<ChainCheckpointRow, 'id' | 'hash' | 'keyId' | 'signature'>;

/** What a checkpoint's hash covers: everything it claims (its row id is assigned by the database, like a row's). */
export function checkpointContent(c: Unsigned): unknown {
  return {
    chain: c.chain,
    firstId: c.firstId,
    throughId: c.throughId,
    fromHash: c.fromHash,
    throughHash: c.throughHash,
    rows: c.rows,
    totalRows: c.totalRows,
    cutoff: c.cutoff,
    at: c.at,
  };
}

const SIGNED_PREFIX = 'driftwarden/chain-checkpoint/v1\n';

/** A checkpoint ready to insert: hashed after the previous one and, with a key, signed. */
export function sealCheckpoint(c: Unsigned, key?: KeyObject): Omit<ChainCheckpointRow, 'id'> {
  const hash = chainHash(c.prevHash, checkpointContent(c));
  return {
    ...c,
    hash,
    keyId: key ? keyIdOf(createPublicKey(key)) : null,
    signature: key ? signBytes(SIGNED_PREFIX + hash, key) : null,
  };
}

export type CheckpointProblem = { checkpointId: number; problem: string };

/**
 * Checks one chain's checkpoints, oldest first: each hashes to what it says, follows the previous one
 * (its prev_hash, its range starting after the previous range, its rows starting from the previous
 * head, its running total), and with `publicKey`, is signed by it. Returns the first problem, or null.
 */
export function checkCheckpoints(list: readonly ChainCheckpointRow[], publicKey?: KeyObject): CheckpointProblem | null {
  let prev: ChainCheckpointRow | null = null;
  const keyId = publicKey ? keyIdOf(publicKey) : null;
  for (const c of list) {
    const bad = (problem: string): CheckpointProblem => ({ checkpointId: c.id, problem });
    if (c.prevHash !== (prev?.hash ?? GENESIS))
      return bad('its prev_hash does not match the checkpoint before it (a checkpoint was removed or changed)');
    if (chainHash(c.prevHash, checkpointContent(c)) !== c.hash)
      return bad('its content does not match its hash (changed)');
    if (c.fromHash !== (prev?.throughHash ?? GENESIS))
      return bad('the rows it removed do not start where the previous checkpoint ended');
    if (c.firstId <= (prev?.throughId ?? 0) || c.throughId < c.firstId)
      return bad(`its range ${c.firstId}..${c.throughId} overlaps the previous one or is empty`);
    if (c.rows < 1 || c.totalRows !== (prev?.totalRows ?? 0) + c.rows)
      return bad('its row counts do not add up with the previous checkpoint');
    if (publicKey) {
      if (!c.signature || !c.keyId) return bad('it is not signed, but a checkpoint key was given');
      if (c.keyId !== keyId) return bad(`it is signed by key ${c.keyId}, not by the given key ${keyId}`);
      if (!verifyBytes(SIGNED_PREFIX + c.hash, c.signature, publicKey))
        return bad('its signature does not verify (forged, or changed after it was signed)');
    }
    prev = c;
  }
  return null;
}
