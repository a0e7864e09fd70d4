/**
 * @module Step `budgets`: what each group and the fleet may start this pass, from the counts the pass
 * began with (in flight, silent, clean) and the starts within the longest rate period. Computed when
 * first asked, so the `windows` step that follows can close a budget first.
 */
import {
  budgetAllowance,
  combine,
  groupMatches,
  type Allowance,
  type BudgetLimits,
  type BudgetInput,
} from '../budgets.js';
import { ms } from './runtime.js';
import type { PlanPass, PlanStep } from './plan.js';

/** A budget's allowance now; one whose windows are all closed allows nothing, and says so. */
function allowanceOf(p: PlanPass, label: string, b: BudgetLimits, input: BudgetInput): Allowance {
  // Equivalent to budgetAllowance with the windows in: closed windows limit to 0 first, and nothing goes below 0.
  if (p.closed.has(b)) return { allowed: 0, reason: `${label}: outside its maintenance windows` };
  const { windows: _windows, ...limits } = b;
  return budgetAllowance(label, limits, input);
}

export const budgetsStep: PlanStep = {
  name: 'budgets',
  async run(p) {
    const cfg = p.rt.d.config;
    const longestRate = Math.max(
      0,
      ...cfg.budgets.map((b) => (b.rate ? ms(b.rate.per) : 0)),
      cfg.overall?.rate ? ms(cfg.overall.rate.per) : 0,
    );
    p.starts =
      longestRate > 0 ? await p.tx.replacements.startsSince(new Date(p.now.getTime() - longestRate).toISOString()) : [];
    const perGroup = new Map<string, Allowance>();
    let fleet: Allowance | undefined;
    p.allowance = {
      group(name) {
        let a = perGroup.get(name);
        if (!a) {
          const c = p.counts.get(name) ?? { total: 0, unavailable: 0, clean: 0 };
          const input = {
            now: p.now,
            total: c.total,
            unavailable: c.unavailable,
            clean: c.clean,
            starts: p.starts.filter((s) => s.group === name).map((s) => Date.parse(s.startedAt)),
          };
          a = combine(
            ...cfg.budgets
              .filter((b) => groupMatches(b.group, name))
              .map((b) => allowanceOf(p, `budget "${b.group}"`, b, input)),
          );
          perGroup.set(name, a);
        }
        return a;
      },
      fleet() {
        if (!fleet) {
          const all = [...p.counts.values()].reduce(
            (a, c) => ({
              total: a.total + c.total,
              unavailable: a.unavailable + c.unavailable,
              clean: a.clean + c.clean,
            }),
            { total: 0, unavailable: 0, clean: 0 },
          );
          fleet = cfg.overall
            ? allowanceOf(p, 'overall budget', cfg.overall, {
                now: p.now,
                ...all,
                starts: p.starts.map((s) => Date.parse(s.startedAt)),
              })
            : { allowed: Infinity, reason: '' };
        }
        return fleet;
      },
    };
  },
};
