/**
 * @module Disruption budgets as arithmetic (Karpenter's shape): for each budget that applies, allowed =
 * limit − already unavailable, never below 0; the strictest budget wins and names itself as the reason.
 */
import { parseDuration } from '../../shared/schema/config.js';
import { inWindow } from './windows.js';

export interface BudgetLimits {
  maxUnavailable?: number | string;
  rate?: { max: number; per: string };
  windows?: { schedule: string; duration: string }[];
  minClean?: number;
}

export interface BudgetInput {
  now: Date;
  /** Hosts in scope that are not replaced. */
  total: number;
  /**
   * Hosts in scope that are not serving as they should: being replaced, silent, or not heard from
   * for the silent period (as in Karpenter, an unhealthy host counts against the budget).
   */
  unavailable: number;
  /** Clean hosts that report. */
  clean: number;
  /** When replacements in scope started (epoch ms), for rates. */
  starts: readonly number[];
}

export interface Allowance {
  /** How many more replacements may start now (Infinity when no budget limits it). */
  allowed: number;
  /** What limits it, e.g. `budget "*": maxUnavailable 10% of 20 = 2, 2 unavailable`; empty when unlimited. */
  reason: string;
}

/** A percentage rounds up, so a small group can still replace one host at a time (like a PDB's maxUnavailable). */
export function resolveCount(value: number | string, total: number): number {
  if (typeof value === 'number') return value;
  const pct = Number(value.slice(0, -1));
  // The epsilon keeps 10% of 20 at 2 despite floating point (20 * 10 / 100 can land above 2).
  return Math.max(0, Math.ceil((total * pct) / 100 - 1e-9));
}

/** One budget's allowance. */
export function budgetAllowance(label: string, b: BudgetLimits, x: BudgetInput): Allowance {
  let allowed = Infinity;
  let reason = '';
  const limit = (n: number, why: string) => {
    const v = Math.max(0, n);
    if (v < allowed) {
      allowed = v;
      reason = `${label}: ${why}`;
    }
  };
  if (b.windows && b.windows.length > 0 && !inWindow(b.windows, x.now)) limit(0, 'outside its maintenance windows');
  if (b.minClean !== undefined && x.clean < b.minClean)
    limit(0, `${x.clean} clean hosts, fewer than minClean ${b.minClean}`);
  if (b.maxUnavailable !== undefined) {
    const max = resolveCount(b.maxUnavailable, x.total);
    limit(
      max - x.unavailable,
      `maxUnavailable ${b.maxUnavailable}${typeof b.maxUnavailable === 'string' ? ` of ${x.total} = ${max}` : ''}, ${x.unavailable} unavailable`,
    );
  }
  if (b.rate) {
    const per = parseDuration(b.rate.per) ?? 0;
    const since = x.now.getTime() - per;
    const recent = x.starts.filter((t) => t > since).length;
    limit(b.rate.max - recent, `rate ${b.rate.max} per ${b.rate.per}, ${recent} started`);
  }
  return { allowed, reason };
}

/** The strictest of several budgets. */
export function combine(...parts: Allowance[]): Allowance {
  let best: Allowance = { allowed: Infinity, reason: '' };
  for (const p of parts) if (p.allowed < best.allowed) best = p;
  return best;
}

/** Glob on group names: `*` any run of characters, `?` one. */
export function groupMatches(pattern: string, group: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replaceAll('*', '.*')
      .replaceAll('?', '.')}$`,
  );
  return re.test(group);
}
