/**
 * @module A scheduler pass as a list of named steps. Planning (queue → breaker → budgets → windows →
 * approvals → schedule) runs in one transaction under the scheduler lock; then the provider steps
 * run: `poll` first, so the slots its completions free are counted in this pass's plan, then `act`.
 */
import { act } from './act.js';
import { approvalsStep } from './approvals.js';
import { breakerStep } from './breaker.js';
import { budgetsStep } from './budgets.js';
import { runPlan, type PlanStep } from './plan.js';
import { poll } from './poll.js';
import { queueStep } from './queue.js';
import type { SchedulerRuntime, TickResult } from './runtime.js';
import { scheduleStep } from './schedule.js';
import { windowsStep } from './windows.js';

export const PLAN_STEPS: readonly PlanStep[] = [
  queueStep,
  breakerStep,
  budgetsStep,
  windowsStep,
  approvalsStep,
  scheduleStep,
];

export interface PassStep {
  readonly name: string;
  run(rt: SchedulerRuntime, result: TickResult): Promise<void>;
}

/** The whole pass in the order it runs. */
export const PASS: readonly PassStep[] = [
  { name: 'poll', run: poll },
  { name: 'plan', run: (rt, result) => runPlan(rt, PLAN_STEPS, result) },
  { name: 'act', run: act },
];

export async function runPass(rt: SchedulerRuntime, result: TickResult): Promise<void> {
  for (const step of PASS) await step.run(rt, result);
}

export {
  emptyGroup,
  hostContext,
  newRow,
  transition,
  ms,
  SYSTEM,
  type SchedulerDeps,
  type SchedulerRuntime,
  type TickResult,
} from './runtime.js';
