/**
 * @module Step `approvals`: in a group with `requireApproval`, a row waits for an operator's approval
 * before it may take any budget (a row nobody approved never holds a slot another could use).
 */
import type { PlanStep } from './plan.js';

export const approvalsStep: PlanStep = {
  name: 'approvals',
  async run(p) {
    for (const row of p.pending) {
      if (p.verdicts.has(row.id)) continue;
      if (p.rt.settingsFor(row.group)?.requireApproval && !row.approvedAt)
        p.verdicts.set(row.id, {
          decision: 'awaiting-approval',
          reason: `group ${row.group} requires an operator's approval`,
        });
    }
  },
};
