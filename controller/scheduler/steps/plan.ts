/**
 * @module The planning half of a pass: named steps that run in order inside ONE transaction holding
 * the scheduler lock (so two controllers never hand out the same budget), each reading and adding to
 * the pass. Gate steps give a waiting row its verdict (off, paused, backoff, awaiting-approval); the
 * last step hands the budgets to the rest in queue order and writes every decision.
 */
import type { Decision, GroupCounts, GroupStateRow, ReplacementRow } from '../../store/replacements.js';
import type { StoreTx } from '../../store/types.js';
import type { Allowance, BudgetLimits } from '../budgets.js';
import type { SchedulerEvent } from '../scheduler-events.js';
import type { SchedulerRuntime, TickResult } from './runtime.js';

export interface PlanPass {
  readonly rt: SchedulerRuntime;
  readonly tx: StoreTx;
  readonly now: Date;
  readonly at: string;
  readonly result: TickResult;
  /** Emitted after the transaction commits (listeners never see a decision that was rolled back). */
  readonly emitted: SchedulerEvent[];
  readonly alerts: { group: string; reason: string }[];
  /** Queued and awaiting-approval rows, in queue order (most severe, then longest tainted, then id). */
  pending: ReplacementRow[];
  /** A gate's verdict on a row (by id); rows without one compete for the budgets. */
  readonly verdicts: Map<string, { decision: Decision; reason: string }>;
  counts: Map<string, GroupCounts>;
  groups: Map<string, GroupStateRow>;
  starts: { group: string; startedAt: string }[];
  /** Budgets (scheduler.budgets entries, or scheduler.overall) whose maintenance windows are all closed now. */
  readonly closed: Set<BudgetLimits>;
  /** Set by the budgets step: what each group, and the fleet, may start at the beginning of the pass. */
  allowance?: { group(name: string): Allowance; fleet(): Allowance };
  /** A step found nothing left to decide (no waiting rows): later steps are skipped. */
  finished: boolean;
}

export interface PlanStep {
  readonly name: string;
  run(p: PlanPass): Promise<void>;
}

/** Runs the steps in order in one transaction under the scheduler lock, then emits what they decided. */
export async function runPlan(rt: SchedulerRuntime, steps: readonly PlanStep[], result: TickResult): Promise<void> {
  const now = rt.d.clock();
  const emitted: SchedulerEvent[] = [];
  const alerts: { group: string; reason: string }[] = [];
  const before = { ...result, tripped: [...result.tripped] };
  await rt.d.store.transaction(async (tx) => {
    // The store may run this again after PostgreSQL aborted it (a deadlock): start each run from scratch.
    Object.assign(result, before, { tripped: [...before.tripped] });
    emitted.length = 0;
    alerts.length = 0;
    await tx.replacements.lockScheduler();
    const p: PlanPass = {
      rt,
      tx,
      now,
      at: now.toISOString(),
      result,
      emitted,
      alerts,
      pending: [],
      verdicts: new Map(),
      counts: new Map(),
      groups: new Map(),
      starts: [],
      closed: new Set(),
      finished: false,
    };
    for (const step of steps) {
      await step.run(p);
      if (p.finished) return;
    }
  });
  for (const e of emitted) rt.events.emit(e);
  for (const a of alerts)
    rt.d.log.warn(
      { group: a.group, reason: a.reason },
      'replacement breaker tripped: group paused until an operator resumes it',
    );
}
