/** @module The host's time zone, read under the root, so the local times dpkg and apt log can be placed as instants. */
import { promises as fsp } from 'node:fs';
import { wallClockMs, type LocalTime } from './parsers/local-time.js';
import type { HostRoot } from './root.js';

export type HostZone =
  | { kind: 'iana'; name: string }
  | { kind: 'fixed'; name: string; offsetMinutes: number }
  /** Not knowable from the root: local times stay local, and comparisons allow for any zone. */
  | { kind: 'unknown' };

export const UTC: HostZone = { kind: 'fixed', name: 'UTC', offsetMinutes: 0 };

/** Real offsets run from UTC-12 to UTC+14: a wall-clock time is that close to its instant, whatever the zone. */
export const MAX_BEHIND_MS = 12 * 3600_000;
export const MAX_AHEAD_MS = 14 * 3600_000;

const formats = new Map<string, Intl.DateTimeFormat>();

function formatFor(name: string): Intl.DateTimeFormat | null {
  let f = formats.get(name);
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: name,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      return null; // RangeError: a zone this Node's ICU does not know
    }
    formats.set(name, f);
  }
  return f;
}

/** The zone's offset from UTC, in minutes, at an instant; undefined when the zone is unknown. */
export function offsetMinutesAt(zone: HostZone, utcMs: number): number | undefined {
  if (zone.kind === 'fixed') return zone.offsetMinutes;
  if (zone.kind === 'unknown') return undefined;
  const f = formatFor(zone.name);
  if (f === null) return undefined;
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(utcMs))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  const asUtc = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
  return Math.round((asUtc - Math.floor(utcMs / 1000) * 1000) / 60_000);
}

/**
 * The instant a local time names, or undefined when the zone is unknown. Two passes, because the
 * offset to subtract is the one in force at the answer, not at the wall-clock reading; a time in a
 * daylight-saving gap or overlap gets one of its two candidate instants, which is as good as the log.
 */
export function localToUtcMs(t: LocalTime, zone: HostZone): number | undefined {
  const wall = wallClockMs(t);
  const first = offsetMinutesAt(zone, wall);
  if (first === undefined) return undefined;
  const second = offsetMinutesAt(zone, wall - first * 60_000)!;
  return wall - second * 60_000;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

function offsetText(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const m = Math.abs(minutes);
  return `${sign}${pad(Math.floor(m / 60))}:${pad(m % 60)}`;
}

/** `2024-03-01T02:14:07+01:00`, or without the offset when the zone is unknown: as the host wrote it, never guessed. */
export function localToIso(t: LocalTime, zone: HostZone): string {
  const iso = t.replace(' ', 'T');
  const utc = localToUtcMs(t, zone);
  if (utc === undefined) return iso;
  return iso + offsetText(offsetMinutesAt(zone, utc)!);
}

/** An instant as the host's wall clock showed it, with its offset (UTC when the zone is unknown). */
export function instantToIso(utcMs: number, zone: HostZone): string {
  const off = offsetMinutesAt(zone, utcMs) ?? 0;
  const d = new Date(utcMs + off * 60_000);
  const wall = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return wall + offsetText(off);
}

/**
 * Whether a local time is after an instant: undefined when that cannot be told, i.e. the zone is
 * unknown and the two are within a day of each other. Callers treat undefined as "not shown to be
 * after", so an unknown zone costs attributions close to the bake, never a wrong one.
 */
export function isAfter(t: LocalTime, zone: HostZone, sinceMs: number): boolean | undefined {
  const utc = localToUtcMs(t, zone);
  if (utc !== undefined) return utc > sinceMs;
  const wall = wallClockMs(t);
  if (wall - MAX_AHEAD_MS > sinceMs) return true;
  if (wall + MAX_BEHIND_MS <= sinceMs) return false;
  return undefined;
}

function zoneFromName(raw: string): HostZone | null {
  const name = raw.trim().replace(/^(posix|right)\//, '');
  if (name === '' || formatFor(name) === null) return null;
  return { kind: 'iana', name };
}

/**
 * A POSIX TZ string without daylight saving (`UTC0`, `<+03>-3`), as TZif v2+ files end with; a
 * zone with a DST rule returns null (that needs the transition table, and /etc/timezone usually
 * names such a zone anyway). POSIX offsets count west, hence the sign flip.
 */
export function fixedZoneFromPosix(tz: string): HostZone | null {
  const m = /^(?:<[A-Za-z0-9+-]{3,}>|[A-Za-z]{3,})([+-]?)(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?$/.exec(tz);
  if (!m) return null;
  const hours = Number(m[2]);
  const minutes = Number(m[3] ?? 0);
  if (hours > 24 || minutes > 59) return null;
  const west = (hours * 60 + minutes) * (m[1] === '-' ? -1 : 1);
  return { kind: 'fixed', name: tz, offsetMinutes: west === 0 ? 0 : -west };
}

function tzifFooter(buf: Buffer): string | null {
  if (buf.length < 45 || buf.toString('latin1', 0, 4) !== 'TZif' || buf[4] === 0) return null;
  const text = buf.toString('latin1');
  const end = text.endsWith('\n') ? text.length - 1 : -1;
  if (end < 0) return null;
  const start = text.lastIndexOf('\n', end - 1);
  return start < 0 ? null : text.slice(start + 1, end);
}

/**
 * The zone glibc would use for programs on the host (dpkg and apt run with the system's zone):
 * `/etc/localtime` as a link into zoneinfo names it; Debian's `/etc/timezone` names it when
 * localtime is a copy; a copy with a fixed offset is read from its TZif footer; and with no
 * `/etc/localtime` at all glibc uses UTC. Anything else is unknown, never guessed.
 */
export async function readHostZone(root: HostRoot): Promise<HostZone> {
  // undefined: could not be looked at (not the same as absent, which means UTC).
  const st = await root.lstat('/etc/localtime').catch(() => undefined);
  // The file the link leads to, inside the root, for a link whose name this Node does not know.
  let file = '/etc/localtime';
  let fileStat = st;
  if (st?.isSymbolicLink()) {
    const target = await fsp.readlink(root.path('/etc/localtime')).catch(() => '');
    const at = target.indexOf('zoneinfo/');
    const z = at >= 0 ? zoneFromName(target.slice(at + 'zoneinfo/'.length)) : null;
    if (z) return z;
    const real = await root.resolveInside('/etc/localtime').catch(() => null);
    file = real ?? file;
    fileStat = real === null ? undefined : await root.lstat(real).catch(() => undefined);
  }
  const named = await root.readTextIfExists('/etc/timezone').catch(() => null);
  if (named !== null) {
    const z = zoneFromName(named.split('\n')[0] ?? '');
    if (z) return z;
  }
  if (st === null) return UTC;
  if (fileStat?.isFile() && fileStat.size < 1024 * 1024) {
    const footer = tzifFooter(await root.readFile(file).catch(() => Buffer.alloc(0)));
    const z = footer === null ? null : fixedZoneFromPosix(footer);
    if (z) return z;
  }
  return { kind: 'unknown' };
}
