/**
 * @module Maintenance windows on a time zone's wall clock: every DST rule the module comment promises
 * (Debian cron's: a skipped fixed time opens at the change, a repeated one opens once, wildcards follow
 * the clock), half-hour zones and a 30-minute DST, windows across midnight, and the config check.
 * `now` is the fake clock: each assertion asks about one instant.
 */
import { describe, expect, it } from 'vitest';
import { ControllerConfigSchema } from '../../../controller/config.js';
import { budgetAllowance } from '../../../controller/scheduler/budgets.js';
import { inWindow, openWindowStart } from '../../../controller/scheduler/windows.js';
import { parseConfigText } from '../../../shared/config-load.js';

const z = (iso: string) => new Date(`${iso}Z`);
const open = (w: { schedule: string; duration: string; timeZone: string }, iso: string) => openWindowStart(w, z(iso));

describe('windows in a time zone', () => {
  it("reads the cron on the zone's wall clock, UTC when none is given", () => {
    const utc = { schedule: '0 2 * * *', duration: '1h' };
    expect(openWindowStart(utc, z('2026-01-10T02:00'))).toEqual(z('2026-01-10T02:00'));
    const berlin = { ...utc, timeZone: 'Europe/Berlin' }; // CET, UTC+1, in January
    expect(open(berlin, '2026-01-10T01:00')).toEqual(z('2026-01-10T01:00'));
    expect(open(berlin, '2026-01-10T02:00')).toBeNull();
    const summer = { ...utc, timeZone: 'Europe/Berlin' }; // CEST, UTC+2
    expect(open(summer, '2026-07-10T00:00')).toEqual(z('2026-07-10T00:00'));
    expect(open(summer, '2026-07-10T01:00')).toBeNull();
  });

  it('Asia/Kolkata (+05:30): 02:00 local is 20:30 UTC the day before', () => {
    const w = { schedule: '0 2 * * 1', duration: '1h', timeZone: 'Asia/Kolkata' }; // Mondays
    expect(open(w, '2026-03-01T20:29')).toBeNull(); // Monday 01:59 local
    expect(open(w, '2026-03-01T20:30')).toEqual(z('2026-03-01T20:30')); // Monday 02:00 local, still Sunday in UTC
    expect(open(w, '2026-03-01T21:29')).toEqual(z('2026-03-01T20:30'));
    expect(open(w, '2026-03-01T21:30')).toBeNull();
    expect(open(w, '2026-03-02T20:30')).toBeNull(); // Tuesday 02:00 local
  });

  it('a window may span midnight on the local clock', () => {
    const w = { schedule: '30 23 * * 6', duration: '2h', timeZone: 'Europe/Berlin' }; // Saturday 23:30 CET
    expect(open(w, '2026-01-03T22:29')).toBeNull();
    expect(open(w, '2026-01-03T22:30')).toEqual(z('2026-01-03T22:30'));
    expect(open(w, '2026-01-04T00:15')).toEqual(z('2026-01-03T22:30')); // Sunday 01:15 local
    expect(open(w, '2026-01-04T00:30')).toBeNull(); // Sunday 01:30 local: 2h have passed
    const kolkata = { schedule: '0 23 * * *', duration: '3h', timeZone: 'Asia/Kolkata' };
    expect(open(kolkata, '2026-03-01T19:59')).toEqual(z('2026-03-01T17:30')); // 01:29 local, the next day
    expect(open(kolkata, '2026-03-01T20:30')).toBeNull();
  });

  describe('spring forward: a fixed time the clock skips opens at the change (Debian cron)', () => {
    it('Europe/Berlin 2026-03-29, 02:00 CET → 03:00 CEST', () => {
      const w = { schedule: '30 2 * * *', duration: '1h', timeZone: 'Europe/Berlin' };
      expect(open(w, '2026-03-29T00:59')).toBeNull(); // 01:59 CET
      expect(open(w, '2026-03-29T01:00')).toEqual(z('2026-03-29T01:00')); // 03:00 CEST: 02:30 never happened
      expect(open(w, '2026-03-29T01:59')).toEqual(z('2026-03-29T01:00'));
      expect(open(w, '2026-03-29T02:00')).toBeNull(); // open for the full hour, not to 03:30 local
      expect(open(w, '2026-03-30T00:30')).toEqual(z('2026-03-30T00:30')); // the next day, 02:30 CEST as usual
    });

    it('America/New_York 2026-03-08, 02:00 EST → 03:00 EDT', () => {
      const w = { schedule: '30 2 * * *', duration: '1h', timeZone: 'America/New_York' };
      expect(open(w, '2026-03-08T06:59')).toBeNull(); // 01:59 EST
      expect(open(w, '2026-03-08T07:00')).toEqual(z('2026-03-08T07:00')); // 03:00 EDT
      expect(open(w, '2026-03-08T08:00')).toBeNull();
      expect(open(w, '2026-03-07T07:30')).toEqual(z('2026-03-07T07:30')); // the day before: 02:30 EST
    });

    it('a wildcard expression follows the clock: the skipped minutes just do not occur', () => {
      const w = { schedule: '*/30 2 * * *', duration: '10m', timeZone: 'America/New_York' };
      expect(open(w, '2026-03-08T07:05')).toBeNull(); // 03:05 EDT: nothing opened at the change
    });

    it('Australia/Lord_Howe 2026-10-04: a 30-minute jump, 02:00 → 02:30 (+10:30 → +11)', () => {
      const w = { schedule: '15 2 * * *', duration: '30m', timeZone: 'Australia/Lord_Howe' };
      expect(open(w, '2026-10-03T15:29')).toBeNull(); // 01:59 +10:30
      expect(open(w, '2026-10-03T15:30')).toEqual(z('2026-10-03T15:30')); // 02:30 +11: 02:15 was skipped
      expect(open(w, '2026-10-03T16:00')).toBeNull();
      const after = { schedule: '45 2 * * *', duration: '10m', timeZone: 'Australia/Lord_Howe' }; // not skipped
      expect(open(after, '2026-10-03T15:30')).toBeNull();
      expect(open(after, '2026-10-03T15:45')).toEqual(z('2026-10-03T15:45'));
    });
  });

  describe('fall back: a fixed time the clock repeats opens once, at its first occurrence (Debian cron)', () => {
    it('America/New_York 2026-11-01: 01:30 EDT and 01:30 EST', () => {
      const w = { schedule: '30 1 * * *', duration: '30m', timeZone: 'America/New_York' };
      expect(open(w, '2026-11-01T05:30')).toEqual(z('2026-11-01T05:30')); // 01:30 EDT
      expect(open(w, '2026-11-01T06:00')).toBeNull(); // 01:00 EST: 30 minutes have passed
      expect(open(w, '2026-11-01T06:30')).toBeNull(); // 01:30 EST, the repeat
      expect(open(w, '2026-11-01T06:45')).toBeNull();
      expect(open(w, '2026-11-02T06:30')).toEqual(z('2026-11-02T06:30')); // the next day, 01:30 EST
    });

    it('Europe/Berlin 2026-10-25: 02:30 CEST and 02:30 CET', () => {
      const w = { schedule: '30 2 * * *', duration: '20m', timeZone: 'Europe/Berlin' };
      expect(open(w, '2026-10-25T00:30')).toEqual(z('2026-10-25T00:30'));
      expect(open(w, '2026-10-25T01:30')).toBeNull();
    });

    it('Australia/Lord_Howe 2026-04-05: 01:45 at +11 and again at +10:30', () => {
      const w = { schedule: '45 1 * * *', duration: '10m', timeZone: 'Australia/Lord_Howe' };
      expect(open(w, '2026-04-04T14:45')).toEqual(z('2026-04-04T14:45'));
      expect(open(w, '2026-04-04T15:15')).toBeNull();
    });

    it('a wildcard expression follows the clock: the repeated hour opens again, so an hourly window has no hole', () => {
      const w = { schedule: '0 * * * *', duration: '1h', timeZone: 'America/New_York' };
      expect(open(w, '2026-11-01T05:30')).toEqual(z('2026-11-01T05:00')); // 01:00 EDT
      expect(open(w, '2026-11-01T06:30')).toEqual(z('2026-11-01T06:00')); // 01:00 EST
    });
  });

  it('the duration is elapsed time, also across a change', () => {
    const w = { schedule: '0 1 * * *', duration: '3h', timeZone: 'Europe/Berlin' }; // 01:00 CET on 2026-03-29
    expect(open(w, '2026-03-29T02:59')).toEqual(z('2026-03-29T00:00')); // 04:59 CEST, 2h59m after it opened
    expect(open(w, '2026-03-29T03:00')).toBeNull();
  });

  it('a budget outside its zoned window allows nothing', () => {
    const windows = [{ schedule: '0 2 * * *', duration: '1h', timeZone: 'Asia/Kolkata' }];
    const x = { total: 10, unavailable: 0, clean: 10, starts: [] as number[] };
    expect(budgetAllowance('b', { windows }, { ...x, now: z('2026-03-01T20:45') }).allowed).toBe(Infinity);
    expect(budgetAllowance('b', { windows }, { ...x, now: z('2026-03-01T02:15') })).toEqual({
      allowed: 0,
      reason: 'b: outside its maintenance windows',
    });
    expect(inWindow(windows, z('2026-03-01T02:15'))).toBe(false);
  });

  it('config: timeZone defaults to UTC; an unknown zone is refused at load with its path', () => {
    const load = (yaml: string) => parseConfigText(ControllerConfigSchema, yaml, 'controller.yaml');
    const c = load('scheduler: { budgets: [{ group: "*", windows: [{ schedule: "0 2 * * *", duration: 1h }] }] }');
    expect(c.scheduler.budgets[0]!.windows![0]).toEqual({ schedule: '0 2 * * *', duration: '1h', timeZone: 'UTC' });
    const b = load(
      'scheduler: { budgets: [{ group: "*", windows: [{ schedule: "0 2 * * *", duration: 1h, timeZone: Australia/Lord_Howe }] }] }',
    );
    expect(b.scheduler.budgets[0]!.windows![0]!.timeZone).toBe('Australia/Lord_Howe');
    expect(() =>
      load(
        'scheduler: { budgets: [{ group: "*", windows: [{ schedule: "0 2 * * *", duration: 1h, timeZone: Mars/Olympus }] }] }',
      ),
    ).toThrow(
      /controller.yaml: scheduler.budgets\[0\].windows\[0\].timeZone: unknown time zone "Mars\/Olympus": expected an IANA name/,
    );
  });
});
