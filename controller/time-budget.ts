/**
 * @module A request's time budget. Long requests (a scan of 100,000 deviations) are split at
 * checkpoints: each yields to the event loop, so /healthz and other hosts' heartbeats are answered
 * between the steps even on SQLite, whose driver never gives the loop back by itself; and each
 * checks the deadline, so a request that overruns throws inside its transaction and changes nothing.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { DwError } from '../shared/errors.js';

export class TimeBudget {
  private readonly deadline: number;

  constructor(
    readonly ms: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.deadline = now() + ms;
  }

  /**
   * Lets other requests run (unless `yieldFirst` is false: a small report's steps are short, and a
   * yield per step would cost the many what only the few need), then throws DW_ERR_TIME_BUDGET if the
   * budget is spent; `step` names where.
   */
  async checkpoint(step: string, yieldFirst = true): Promise<void> {
    if (yieldFirst) await yieldToLoop();
    const over = this.now() - this.deadline;
    if (over > 0) {
      throw new DwError(
        'DW_ERR_TIME_BUDGET',
        `the report took longer than its time budget of ${this.ms} ms (at ${step}); nothing was stored, retry later`,
        { step, budgetMs: this.ms },
      );
    }
  }
}

/** No deadline: for callers outside a request (tests of ingest itself, the CLI). */
export const UNBOUNDED = new TimeBudget(Number.POSITIVE_INFINITY);
