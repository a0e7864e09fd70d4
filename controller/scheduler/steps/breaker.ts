/**
 * @module Step `breaker`: trips the circuit breaker of every group with something waiting when an
 * unusual share of it drifted at once (audited, an event, an alert), and holds the rows of a paused
 * or `off` group. These verdicts win over a backoff: "paused" is what an operator needs to know.
 */
import { EVENT_KINDS, recordEvent } from '../../event-stream.js';
import type { GroupStateRow } from '../../store/replacements.js';
import { breakerVerdict } from '../breaker.js';
import { emptyGroup, ms, SYSTEM } from './runtime.js';
import type { PlanStep } from './plan.js';

export const breakerStep: PlanStep = {
  name: 'breaker',
  async run(p) {
    const { rt, tx, at, now } = p;
    const r = tx.replacements;
    const cfg = rt.d.config;
    const staleBefore = new Date(now.getTime() - rt.d.silentAfterMs).toISOString();
    p.counts = new Map((await r.groupCounts(staleBefore, cfg.defaultGroup)).map((c) => [c.group, c]));
    p.groups = new Map((await r.listGroups()).map((g) => [g.name, g]));

    for (const name of new Set(p.pending.map((row) => row.group))) {
      const state = p.groups.get(name);
      if (state?.paused || rt.modeFor(name) === 'off') continue;
      const windowStart = new Date(now.getTime() - ms(cfg.breaker.window)).toISOString();
      const since = state?.breakerSince && state.breakerSince > windowStart ? state.breakerSince : windowStart;
      const recent = await r.recentTaints(name, cfg.defaultGroup, since);
      const total = p.counts.get(name)?.total ?? 0;
      const reason = breakerVerdict(cfg.breaker, { total, recent });
      if (!reason) continue;
      const row: GroupStateRow = {
        ...(state ?? emptyGroup(name)),
        paused: true,
        pausedReason: reason,
        pausedAt: at,
        pausedBy: 'breaker',
      };
      await r.putGroup(row);
      p.groups.set(name, row);
      await tx.appendAudit({
        at,
        actor: SYSTEM,
        action: 'replacement.breaker-trip',
        target: name,
        detail: { reason, mode: rt.modeFor(name) },
      });
      await recordEvent(tx, {
        kind: EVENT_KINDS.breakerTripped,
        hostId: null,
        actor: SYSTEM,
        at,
        detail: {
          group: name,
          reason,
          mode: rt.modeFor(name),
          pausedBy: 'breaker',
          tainted: recent.length,
          total,
          taintedShare: total > 0 ? Math.round((1000 * recent.length) / total) / 1000 : null,
          threshold: cfg.breaker.taintedShare,
          sameDeviation: cfg.breaker.sameDeviation,
          window: cfg.breaker.window,
        },
      });
      p.emitted.push({ type: 'breaker-tripped', at, group: name, reason });
      p.alerts.push({ group: name, reason });
      p.result.tripped.push(name);
    }

    for (const row of p.pending) {
      const g = p.groups.get(row.group);
      if (rt.modeFor(row.group) === 'off')
        p.verdicts.set(row.id, { decision: 'off', reason: `mode is off for group ${row.group}` });
      else if (g?.paused)
        p.verdicts.set(row.id, {
          decision: 'paused',
          reason: `group ${row.group} is paused: ${g.pausedReason ?? 'by an operator'}`,
        });
    }
  },
};
