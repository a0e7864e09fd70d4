/**
 * @module Step `schedule`, the last of the plan: hands the budgets to the rows no gate held, in queue
 * order, and writes every row's decision. A row the budgets allow is scheduled (its host moves to
 * replacement-scheduled and the start counts toward rates) in `enforce`, or recorded as
 * would-replace in `dry-run`.
 */
import type { Decision, ReplacementRow } from '../../store/replacements.js';
import type { StoreTx } from '../../store/types.js';
import type { Allowance } from '../budgets.js';
import { SYSTEM, transition, type SchedulerRuntime } from './runtime.js';
import type { PlanStep } from './plan.js';

export const scheduleStep: PlanStep = {
  name: 'schedule',
  async run(p) {
    const { rt, tx, at } = p;
    const r = tx.replacements;
    const groupLeft = new Map<string, Allowance>();
    const givenThisPass = new Map<string, number>();
    let givenFleetThisPass = 0;
    let fleetLeft: Allowance | undefined;

    // IMPORTANT: `pending` is in queue order (most severe, then longest tainted, then id): budgets go
    // to the head of the queue, and a row that must wait never lets a later one of its group pass.
    for (const row of p.pending) {
      const mode = rt.modeFor(row.group);
      const settings = rt.settingsFor(row.group);
      let decision: Decision;
      let reason: string;
      const held = p.verdicts.get(row.id);
      if (held) ({ decision, reason } = held);
      else {
        fleetLeft ??= p.allowance!.fleet();
        const ga = groupLeft.get(row.group) ?? p.allowance!.group(row.group);
        const limit = ga.allowed <= fleetLeft.allowed ? ga : fleetLeft;
        const given = limit === ga ? (givenThisPass.get(row.group) ?? 0) : givenFleetThisPass;
        // The counts in a budget's reason are those the pass began with; say where the rest went.
        if (limit.allowed <= 0)
          [decision, reason] = [
            'waiting',
            given > 0 ? `${limit.reason}; ${given} going to hosts ahead in the queue` : limit.reason,
          ];
        else {
          const left = (n: number) => (n === Infinity ? 'no limit' : String(n - 1));
          reason = `within budgets (group ${row.group}: ${left(ga.allowed)} more allowed after this, fleet: ${left(fleetLeft.allowed)})`;
          groupLeft.set(row.group, { ...ga, allowed: ga.allowed - 1 });
          fleetLeft = { ...fleetLeft, allowed: fleetLeft.allowed - 1 };
          givenThisPass.set(row.group, (givenThisPass.get(row.group) ?? 0) + 1);
          givenFleetThisPass++;
          decision = mode === 'enforce' ? 'scheduled' : 'would-replace';
        }
      }

      if (decision === 'scheduled') {
        const scheduled = await schedule(rt, tx, row, at, reason);
        if (scheduled) {
          p.emitted.push({ type: 'replacement-scheduled', at, replacement: scheduled });
          p.result.scheduled++;
        }
        continue;
      }
      const state =
        decision === 'awaiting-approval'
          ? 'awaiting-approval'
          : row.state === 'awaiting-approval' && settings?.requireApproval && !row.approvedAt
            ? 'awaiting-approval'
            : 'queued';
      if (decision === 'would-replace') p.result.wouldReplace++;
      if (row.decision === decision && row.decisionReason === reason && row.state === state) continue;
      await r.update(row.id, { state, decision, decisionReason: reason, decidedAt: at, updatedAt: at });
      if (decision !== row.decision) {
        if (decision === 'would-replace') {
          await tx.appendAudit({
            at,
            actor: SYSTEM,
            action: 'replacement.would-replace',
            target: row.hostId,
            detail: { replacement: row.id, group: row.group, reason, mode },
          });
          p.emitted.push({
            type: 'replacement-would-replace',
            at,
            replacement: { ...row, state, decision, decisionReason: reason, decidedAt: at },
          });
        } else if (decision === 'awaiting-approval') {
          await tx.appendAudit({
            at,
            actor: SYSTEM,
            action: 'replacement.await-approval',
            target: row.hostId,
            detail: { replacement: row.id, group: row.group },
          });
        }
      }
    }
  },
};

/** Moves a queued row to scheduled and its host to replacement-scheduled; null when the host cannot be. */
async function schedule(
  rt: SchedulerRuntime,
  tx: StoreTx,
  row: ReplacementRow,
  at: string,
  reason: string,
): Promise<ReplacementRow | null> {
  const host = await tx.lockHost(row.hostId);
  if (!host || host.state === 'replaced') {
    await tx.replacements.update(row.id, {
      state: 'cancelled',
      decision: null,
      decisionReason: host ? 'host already replaced' : 'host no longer exists',
      finishedAt: at,
      updatedAt: at,
    });
    return null;
  }
  await transition(tx, host, host.state, { type: 'replacement-scheduled', detail: reason }, at, SYSTEM);
  const patch = {
    state: 'scheduled' as const,
    decision: 'scheduled' as const,
    decisionReason: reason,
    decidedAt: at,
    scheduledAt: at,
    startedAt: null,
    confirmedAt: null,
    attempts: row.attempts + 1,
    provider: rt.d.providerFor(row.group)?.type ?? null,
    updatedAt: at,
  };
  await tx.replacements.update(row.id, patch);
  await tx.replacements.recordStart(row.id, row.group, at);
  await tx.appendAudit({
    at,
    actor: SYSTEM,
    action: 'replacement.schedule',
    target: row.hostId,
    detail: { replacement: row.id, group: row.group, attempt: row.attempts + 1, reason },
  });
  return { ...row, ...patch };
}
