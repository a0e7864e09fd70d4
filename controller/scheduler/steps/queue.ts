/**
 * @module Step `queue`: every tainted host without a replacement gets one (queued), the waiting rows
 * are loaded in queue order, and a row whose last attempt failed waits out its backoff.
 */
import { newRow, PLAN_BATCH, SYSTEM } from './runtime.js';
import type { PlanStep } from './plan.js';

export const queueStep: PlanStep = {
  name: 'queue',
  async run(p) {
    const r = p.tx.replacements;
    const cfg = p.rt.d.config;
    for (const h of await r.taintedWithoutReplacement(PLAN_BATCH)) {
      const row = newRow({
        hostId: h.id,
        group: h.group ?? cfg.defaultGroup,
        severity: h.severity,
        taintedAt: h.taintedAt ?? p.at,
        requestedBy: SYSTEM,
        reason: 'tainted',
        now: p.at,
      });
      await r.insert(row);
      p.emitted.push({ type: 'replacement-queued', at: p.at, replacement: row });
      p.result.queued++;
    }
    p.pending = await r.list({ states: ['queued', 'awaiting-approval'], limit: PLAN_BATCH });
    if (p.pending.length === 0) {
      p.finished = true;
      return;
    }
    for (const row of p.pending) {
      if (row.nextAttemptAt && row.nextAttemptAt > p.at)
        p.verdicts.set(row.id, {
          decision: 'backoff',
          reason: `retry ${row.attempts + 1} not before ${row.nextAttemptAt} (last error: ${row.lastError ?? 'unknown'})`,
        });
    }
  },
};
