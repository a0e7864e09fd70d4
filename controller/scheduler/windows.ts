/**
 * @module Maintenance windows: a 5-field cron expression, read on the wall clock of an IANA time zone
 * (UTC by default), says when a window opens, a duration how long it stays open. Parsed here rather
 * than by node-cron, which schedules callbacks but cannot answer "is a window open at time t" for an
 * arbitrary t (a fake clock, a restart mid-window).
 *
 * Daylight-saving transitions follow Debian's cron (cron(8), "Special considerations exist when the
 * clock is changed by less than 3 hours"), so a window opens when an operator's crontab would run:
 * - a fixed time (no `*` in the minute or hour field) that the clock skips when it springs forward
 *   (02:30 on the spring-forward day in Europe/Berlin) opens at the instant of the change (03:00
 *   local), not never, and not an hour late;
 * - a fixed time the clock repeats when it falls back (01:30 twice in America/New_York) opens once,
 *   at its first occurrence;
 * - an expression with `*` in the minute or hour field follows the wall clock as it is: skipped minutes
 *   do not match, repeated ones match each time (an hourly window keeps opening every real hour).
 */
import { parseDuration } from '../../shared/schema/config.js';

export interface Cron {
  minute: Set<number>;
  hour: Set<number>;
  dom: Set<number>;
  month: Set<number>;
  dow: Set<number>;
  /** Cron's rule: when both day fields are restricted, a day matches if either does. */
  domStar: boolean;
  dowStar: boolean;
  /** No `*` in the minute or hour field: cron's DST rules (shift a skipped time, do not repeat one) apply. */
  fixedTime: boolean;
}

const FIELDS: [min: number, max: number][] = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
];
const NAMES: Record<number, string[]> = {
  3: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  4: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
};

function value(text: string, field: number): number | null {
  const names = NAMES[field];
  const i = names ? names.indexOf(text.toLowerCase()) : -1;
  if (i >= 0) return field === 3 ? i + 1 : i;
  if (!/^\d+$/.test(text)) return null;
  return Number(text);
}

function parseField(text: string, field: number): Set<number> | null {
  const [min, max] = FIELDS[field]!;
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(part);
    if (!m) return null;
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) return null;
    let lo: number | null;
    let hi: number | null;
    if (m[1] === '*') [lo, hi] = [min, max];
    else if (m[1]!.includes('-')) {
      const [a, b] = m[1]!.split('-');
      lo = value(a ?? '', field);
      hi = value(b ?? '', field);
    } else {
      lo = value(m[1]!, field);
      hi = m[2] === undefined ? lo : max;
    }
    if (lo === null || hi === null || lo < min || hi > max || lo > hi) return null;
    for (let v = lo; v <= hi; v += step) out.add(field === 4 && v === 7 ? 0 : v);
  }
  return out;
}

/** A 5-field expression, or null when it is not one. */
export function parseCron(expr: string): Cron | null {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5) return null;
  const sets = parts.map((p, i) => parseField(p, i));
  if (sets.some((s) => s === null)) return null;
  const [minute, hour, dom, month, dow] = sets as Set<number>[];
  return {
    minute: minute!,
    hour: hour!,
    dom: dom!,
    month: month!,
    dow: dow!,
    domStar: parts[2] === '*',
    dowStar: parts[4] === '*',
    fixedTime: !parts[0]!.includes('*') && !parts[1]!.includes('*'),
  };
}

/** Matches the wall-clock time whose fields are `t`'s UTC fields (a local time shifted into a Date). */
export function cronMatches(c: Cron, t: Date): boolean {
  if (!c.minute.has(t.getUTCMinutes()) || !c.hour.has(t.getUTCHours()) || !c.month.has(t.getUTCMonth() + 1))
    return false;
  const domOk = c.dom.has(t.getUTCDate());
  const dowOk = c.dow.has(t.getUTCDay());
  if (c.domStar || c.dowStar) return domOk && dowOk;
  return domOk || dowOk;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** True when Intl knows `name` as a time zone (an IANA name such as "Europe/Berlin", or "UTC"). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

const formats = new Map<string, Intl.DateTimeFormat>();

/** local − UTC in ms at instant `t` in `zone` (whole minutes: wall clocks are read to the minute). */
function zoneOffset(zone: string, t: number): number {
  let f = formats.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    });
    formats.set(zone, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(t))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  const wall = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!);
  return wall - Math.floor(t / MINUTE) * MINUTE;
}

/**
 * The offsets of one zone, looked up once per quarter hour: every transition in the tz database since
 * 1970 falls on a quarter hour, and a week-long window walks 10,080 minutes.
 */
function offsets(zone: string): (t: number) => number {
  if (zone === 'UTC') return () => 0;
  const cache = new Map<number, number>();
  return (t) => {
    const q = Math.floor(t / (15 * MINUTE));
    let o = cache.get(q);
    if (o === undefined) {
      o = zoneOffset(zone, q * 15 * MINUTE);
      cache.set(q, o);
    }
    return o;
  };
}

/** Does a window open at instant `s` (a whole minute), on the zone's wall clock and its DST rules (see the module comment)? */
function opensAt(c: Cron, offset: (t: number) => number, s: number): boolean {
  const off = offset(s);
  const wall = s + off;
  if (cronMatches(c, new Date(wall))) {
    if (!c.fixedTime) return true;
    // The second pass through a repeated wall-clock minute (the clock fell back within the last 3 hours)?
    const before = offset(s - 3 * HOUR);
    if (before > off) {
      const first = wall - before;
      if (first < s && offset(first) === before) return false;
    }
    return true;
  }
  if (!c.fixedTime) return false;
  // The clock sprang forward at `s`: a fixed time in the skipped wall-clock minutes opens now.
  const prev = offset(s - MINUTE);
  if (off <= prev) return false;
  for (let w = s + prev; w < wall; w += MINUTE) if (cronMatches(c, new Date(w))) return true;
  return false;
}

export interface WindowSpec {
  schedule: string;
  duration: string;
  /** An IANA time zone whose wall clock the schedule is read on; default UTC. */
  timeZone?: string | undefined;
}

/** The start of the window that is open at `now`, or null. A window opened at s is open during [s, s + duration). */
export function openWindowStart(window: WindowSpec, now: Date): Date | null {
  const cron = parseCron(window.schedule);
  const duration = parseDuration(window.duration);
  const zone = window.timeZone ?? 'UTC';
  if (!cron || duration === null || duration <= 0 || !isTimeZone(zone)) return null;
  const offset = offsets(zone);
  const t = Math.floor(now.getTime() / MINUTE) * MINUTE;
  // Walk back minute by minute over the duration: at most a week's 10,080 steps for the longest sane window.
  const steps = Math.min(Math.ceil(duration / MINUTE), 31 * 24 * 60);
  for (let i = 0; i < steps; i++) {
    const s = t - i * MINUTE;
    if (now.getTime() - s >= duration) break;
    if (opensAt(cron, offset, s)) return new Date(s);
  }
  return null;
}

/** True when `windows` is empty (no restriction) or one of them is open at `now`. */
export function inWindow(windows: readonly WindowSpec[] | undefined, now: Date): boolean {
  if (!windows || windows.length === 0) return true;
  return windows.some((w) => openWindowStart(w, now) !== null);
}
