/**
 * @module The circuit breaker: many hosts of one group tainted at once is more likely a bad image or a
 * sanctioned fleet-wide change than many independent snowflakes, so the group is paused until an
 * operator resumes it, instead of replacing the fleet.
 */
export interface BreakerSettings {
  taintedShare: number;
  window: string;
  minTainted: number;
  sameDeviation: number;
}

export interface BreakerInput {
  /** Hosts in the group that are not replaced. */
  total: number;
  /** Hosts of the group tainted within the window (and after the last resume), with their tainting deviations. */
  recent: readonly { hostId: string; signatures: readonly string[] }[];
}

/** Why the breaker trips, or null when it does not. */
export function breakerVerdict(s: BreakerSettings, x: BreakerInput): string | null {
  const n = x.recent.length;
  if (x.total > 0 && n >= s.minTainted && n / x.total > s.taintedShare) {
    return `${n} of ${x.total} hosts (${Math.round((100 * n) / x.total)}%) tainted within ${s.window}, more than taintedShare ${Math.round(s.taintedShare * 100)}%`;
  }
  const bySig = new Map<string, number>();
  for (const h of x.recent) for (const sig of new Set(h.signatures)) bySig.set(sig, (bySig.get(sig) ?? 0) + 1);
  let worst: [string, number] | null = null;
  for (const e of bySig) if (!worst || e[1] > worst[1]) worst = e;
  if (worst && worst[1] >= s.sameDeviation) {
    const sig = worst[0].length > 160 ? `${worst[0].slice(0, 160)}…` : worst[0];
    return `${worst[1]} hosts tainted within ${s.window} by the same deviation (${sig}), at least sameDeviation ${s.sameDeviation}`;
  }
  return null;
}
