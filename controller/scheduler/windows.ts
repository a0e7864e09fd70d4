/**
 * @module Maintenance windows: a 5-field cron expression (UTC) says when a window opens, a duration how
 * long it stays open. Parsed here rather than by node-cron, which schedules callbacks but cannot
 * answer "is a window open at time t" for an arbitrary t (a fake clock, a restart mid-window).
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
  return { minute: minute!, hour: hour!, dom: dom!, month: month!, dow: dow!, domStar: parts[2] === '*', dowStar: parts[4] === '*' };
}

export function cronMatches(c: Cron, t: Date): boolean {
  if (!c.minute.has(t.getUTCMinutes()) || !c.hour.has(t.getUTCHours()) || !c.month.has(t.getUTCMonth() + 1)) return false;
  const domOk = c.dom.has(t.getUTCDate());
  const dowOk = c.dow.has(t.getUTCDay());
  if (c.domStar || c.dowStar) return domOk && dowOk;
  return domOk || dowOk;
}

const MINUTE = 60_000;

/** The start of the window that is open at `now`, or null. A window opened at s is open during [s, s + duration). */
export function openWindowStart(window: { schedule: string; duration: string }, now: Date): Date | null {
  const cron = parseCron(window.schedule);
  const duration = parseDuration(window.duration);
  if (!cron || duration === null || duration <= 0) return null;
  const t = Math.floor(now.getTime() / MINUTE) * MINUTE;
  // Walk back minute by minute over the duration: at most a week's 10,080 steps for the longest sane window.
  const steps = Math.min(Math.ceil(duration / MINUTE), 31 * 24 * 60);
  for (let i = 0; i < steps; i++) {
    const s = t - i * MINUTE;
    if (now.getTime() - s >= duration) break;
    if (cronMatches(cron, new Date(s))) return new Date(s);
  }
  return null;
}

/** True when `windows` is empty (no restriction) or one of them is open at `now`. */
export function inWindow(windows: readonly { schedule: string; duration: string }[] | undefined, now: Date): boolean {
  if (!windows || windows.length === 0) return true;
  return windows.some((w) => openWindowStart(w, now) !== null);
}
