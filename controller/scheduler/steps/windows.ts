/**
 * @module Step `windows`: a budget with maintenance windows allows nothing while none of them is open.
 * Whether a window is open is windows.ts's to say (cron, duration, time zone); this step only asks.
 */
import { inWindow } from '../windows.js';
import type { PlanStep } from './plan.js';

export const windowsStep: PlanStep = {
  name: 'windows',
  async run(p) {
    const cfg = p.rt.d.config;
    for (const b of [...cfg.budgets, ...(cfg.overall ? [cfg.overall] : [])]) {
      if (b.windows && b.windows.length > 0 && !inWindow(b.windows, p.now)) p.closed.add(b);
    }
  },
};
