/**
 * @module Secrets for people, tools and hosts: random bearer tokens of which only a sha256 is stored,
 * and the role order that every route checks.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Role } from './store/types.js';

/** Prefixes make a leaked secret recognisable (and greppable by secret scanners). */
const PREFIX = { token: 'dwt_', host: 'dwh_' } as const;

export function newSecret(kind: keyof typeof PREFIX): string {
  return PREFIX[kind] + randomBytes(32).toString('base64url');
}

/** Tokens are 256-bit random, so a fast hash is enough: there is nothing to brute-force. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function bearer(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
  return m ? m[1]! : null;
}

/** People's roles are ordered: an admin may do what an operator may, an operator what a viewer may. */
const RANK: Record<Exclude<Role, 'agent'>, number> = { viewer: 1, operator: 2, admin: 3 };

export function roleAllows(have: Role, need: Exclude<Role, 'agent'>): boolean {
  if (have === 'agent') return false;
  return RANK[have] >= RANK[need];
}
