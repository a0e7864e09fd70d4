/** @module The `YYYY-MM-DD HH:MM:SS` wall-clock times dpkg and apt write in their logs, in the host's own time zone. */

/** The canonical form used everywhere: `YYYY-MM-DD HH:MM:SS`, so such times order as strings. */
export type LocalTime = string;

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function digits(s: string, from: number, n: number): number {
  let v = 0;
  for (let i = from; i < from + n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + (c - 0x30);
  }
  return v;
}

/**
 * The canonical form of a date and a time, or null when either is not a real calendar time.
 * apt writes `2024-03-01  02:14:07` (two spaces) and dpkg one: callers pass the two halves apart.
 * Leap seconds (`:60`) are accepted because the clock that wrote them can produce them.
 */
export function localTime(date: string, time: string): LocalTime | null {
  if (date.length !== 10 || time.length !== 8) return null;
  if (date[4] !== '-' || date[7] !== '-' || time[2] !== ':' || time[5] !== ':') return null;
  const y = digits(date, 0, 4);
  const mo = digits(date, 5, 2);
  const d = digits(date, 8, 2);
  const h = digits(time, 0, 2);
  const mi = digits(time, 3, 2);
  const s = digits(time, 6, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > DAYS_IN_MONTH[mo - 1]!) return null;
  if (h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60) return null;
  return `${date} ${time}`;
}

/** The local time read as if it were UTC, in milliseconds: the wall clock's numbers, no zone applied. */
export function wallClockMs(t: LocalTime): number {
  return Date.UTC(
    +t.slice(0, 4),
    +t.slice(5, 7) - 1,
    +t.slice(8, 10),
    +t.slice(11, 13),
    +t.slice(14, 16),
    +t.slice(17, 19),
  );
}

/** A local time moved by a number of milliseconds on the same wall clock (no zone, so no DST jumps). */
export function shiftLocalTime(t: LocalTime, ms: number): LocalTime {
  return new Date(wallClockMs(t) + ms).toISOString().slice(0, 19).replace('T', ' ');
}
