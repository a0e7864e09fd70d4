/** @module The scheduler's config (README and DESIGN.md examples parse; bad keys are named), windows (cron) and budget arithmetic. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ControllerConfigSchema } from '../../../controller/config.js';
import { budgetAllowance, combine, groupMatches, resolveCount } from '../../../controller/scheduler/budgets.js';
import { breakerVerdict } from '../../../controller/scheduler/breaker.js';
import { inWindow, openWindowStart, parseCron } from '../../../controller/scheduler/windows.js';
import { parseConfigText } from '../../../shared/config-load.js';

const README = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');

describe('scheduler config', () => {
  it('defaults to dry-run with a 10% budget and a 30% breaker', () => {
    const c = ControllerConfigSchema.parse({}).scheduler;
    expect(c).toMatchObject({
      mode: 'dry-run',
      budgets: [{ group: '*', maxUnavailable: '10%' }],
      breaker: { taintedShare: 0.3, window: '15m' },
      parallelism: 4,
    });
  });

  it('accepts the DESIGN.md keys and the README example as written', () => {
    const design = parseConfigText(
      ControllerConfigSchema,
      'scheduler:\n  mode: dry-run\n  budgets: [{ group: "*", maxUnavailable: "10%" }]\n  breaker: { taintedShare: 0.3, window: 15m }\n  provider: { type: aws-asg, region: eu-west-1 }\n',
      'controller.yaml',
    );
    expect(design.scheduler.provider).toMatchObject({ type: 'aws-asg', region: 'eu-west-1', strategy: 'terminate' });
    const block = /## Replacement[\s\S]*?```yaml\n([\s\S]*?)```/
      .exec(README)![1]!
      .replace(/secretFile: \/etc\/driftwarden\/[a-z-]+/g, 'secret: x');
    const c = parseConfigText(ControllerConfigSchema, block, 'README.md').scheduler;
    expect(c.budgets).toHaveLength(2);
    expect(c.parallelism).toBe(4);
    expect(c.groups['payments-*']).toMatchObject({ requireApproval: true, provider: { type: 'webhook' } });
  });

  it('names the offending key', () => {
    const bad = (yaml: string) => () => parseConfigText(ControllerConfigSchema, yaml, 'controller.yaml');
    expect(bad('scheduler: { mode: on }')).toThrow(/controller.yaml: scheduler.mode: /);
    expect(bad('scheduler: { budgets: [{ group: "*", maxUnavailable: "ten" }] }')).toThrow(
      /scheduler.budgets\[0\].maxUnavailable/,
    );
    expect(bad('scheduler: { budgets: [{ group: "*", windows: [{ schedule: "at 2am", duration: 3h }] }] }')).toThrow(
      /scheduler.budgets\[0\].windows\[0\].schedule: expected a 5-field cron/,
    );
    expect(bad('scheduler: { provider: { type: exec, command: "replace.sh --host" } }')).toThrow(
      /scheduler.provider.command/,
    );
    expect(bad('scheduler: { provider: { type: gcp-mig } }')).toThrow(/scheduler.provider.type/);
    expect(bad('scheduler: { breaker: { taintedShare: 0 } }')).toThrow(/scheduler.breaker.taintedShare/);
    expect(bad('scheduler: { parallelism: 0 }')).toThrow(/scheduler.parallelism: /);
    expect(bad('scheduler: { parallelism: 2.5 }')).toThrow(/scheduler.parallelism: /);
  });
});

describe('maintenance windows', () => {
  // 2026-03-02 is a Monday.
  const at = (s: string) => new Date(`2026-03-${s}Z`);

  it('parses ranges, lists, steps and names, and refuses anything else', () => {
    expect(parseCron('*/15 2-4 * * mon-fri')).toMatchObject({
      minute: new Set([0, 15, 30, 45]),
      hour: new Set([2, 3, 4]),
      dow: new Set([1, 2, 3, 4, 5]),
    });
    expect(parseCron('0 0 * * 7')!.dow).toEqual(new Set([0]));
    for (const bad of ['', '* * * *', '60 * * * *', '* 24 * * *', '* * 0 * *', '5-1 * * * *', '*/0 * * * *', '@daily'])
      expect(parseCron(bad), bad).toBeNull();
  });

  it('is open from the cron match for its duration, and closed outside', () => {
    const w = { schedule: '0 2 * * 1-5', duration: '3h' };
    expect(openWindowStart(w, at('02T01:59:59.000'))).toBeNull();
    expect(openWindowStart(w, at('02T02:00:00.000'))).toEqual(at('02T02:00:00.000'));
    expect(openWindowStart(w, at('02T04:59:59.999'))).toEqual(at('02T02:00:00.000'));
    expect(openWindowStart(w, at('02T05:00:00.000'))).toBeNull();
    expect(openWindowStart(w, at('07T03:00:00.000'))).toBeNull(); // Saturday
  });

  it('a window may run past midnight into the next day', () => {
    expect(inWindow([{ schedule: '0 22 * * 5', duration: '8h' }], at('07T05:30:00.000'))).toBe(true); // Friday 22:00 + 8h covers Saturday 05:30
    expect(inWindow([{ schedule: '0 22 * * 5', duration: '8h' }], at('07T06:00:00.000'))).toBe(false);
  });

  it('day-of-month and day-of-week both restricted: either matches (cron semantics)', () => {
    const w = { schedule: '0 3 1 * 1', duration: '1h' };
    expect(inWindow([w], at('01T03:10:00.000'))).toBe(true); // the 1st, a Sunday
    expect(inWindow([w], at('09T03:10:00.000'))).toBe(true); // a Monday
    expect(inWindow([w], at('10T03:10:00.000'))).toBe(false);
  });

  it('no windows means always', () => {
    expect(inWindow([], new Date())).toBe(true);
    expect(inWindow(undefined, new Date())).toBe(true);
  });
});

describe('budget arithmetic', () => {
  const now = new Date('2026-03-02T08:00:00.000Z');
  const x = { now, total: 20, unavailable: 0, clean: 15, starts: [] as number[] };

  it('percentages round up; counts are counts', () => {
    expect(resolveCount('10%', 20)).toBe(2);
    expect(resolveCount('10%', 21)).toBe(3);
    expect(resolveCount('10%', 3)).toBe(1);
    expect(resolveCount('0%', 50)).toBe(0);
    expect(resolveCount(4, 2)).toBe(4);
  });

  it('allowed = limit − unavailable, never below 0', () => {
    expect(budgetAllowance('b', { maxUnavailable: 3 }, { ...x, unavailable: 1 }).allowed).toBe(2);
    expect(budgetAllowance('b', { maxUnavailable: 3 }, { ...x, unavailable: 5 }).allowed).toBe(0);
    expect(budgetAllowance('b', {}, x).allowed).toBe(Infinity);
  });

  it('a rate counts starts within its interval only', () => {
    const min = 60_000;
    const starts = [now.getTime() - 61 * min, now.getTime() - 30 * min, now.getTime() - min];
    expect(budgetAllowance('b', { rate: { max: 3, per: '1h' } }, { ...x, starts })).toEqual({
      allowed: 1,
      reason: 'b: rate 3 per 1h, 2 started',
    });
  });

  it('the strictest budget wins and names itself', () => {
    const a = budgetAllowance('budget "*"', { maxUnavailable: '50%' }, x);
    const b = budgetAllowance('budget "web-*"', { maxUnavailable: 2, minClean: 20 }, x);
    expect(combine(a, b)).toEqual({ allowed: 0, reason: 'budget "web-*": 15 clean hosts, fewer than minClean 20' });
  });

  it('group globs', () => {
    expect(groupMatches('*', 'anything')).toBe(true);
    expect(groupMatches('web-*', 'web-eu-1')).toBe(true);
    expect(groupMatches('web-*', 'db-eu-1')).toBe(false);
    expect(groupMatches('web.asg', 'webXasg')).toBe(false);
    expect(groupMatches('pool-?', 'pool-a')).toBe(true);
  });
});

describe('breaker verdict', () => {
  const s = { taintedShare: 0.3, window: '15m', minTainted: 2, sameDeviation: 5 };
  const hosts = (n: number, sig = (i: number) => `files /etc/h${i} modified`) =>
    Array.from({ length: n }, (_, i) => ({ hostId: `h${i}`, signatures: [sig(i)] }));

  it('trips above the share, not at it, and never below minTainted', () => {
    expect(breakerVerdict(s, { total: 10, recent: hosts(3) })).toBeNull();
    expect(breakerVerdict(s, { total: 10, recent: hosts(4) })).toBe(
      '4 of 10 hosts (40%) tainted within 15m, more than taintedShare 30%',
    );
    expect(breakerVerdict(s, { total: 2, recent: hosts(1) })).toBeNull();
  });

  it('trips on the same deviation on many hosts, whatever the share', () => {
    expect(
      breakerVerdict(s, { total: 100, recent: hosts(5, () => 'packages openssl:amd64 modified {"version":"3.0.99"}') }),
    ).toMatch(/^5 hosts tainted within 15m by the same deviation \(packages openssl:amd64 modified/);
    expect(breakerVerdict(s, { total: 100, recent: hosts(4, () => 'same') })).toBeNull();
  });
});
