/** @module Parse systemd unit files (a timer and its drop-ins) and fold them into the timer's effective [Timer] settings. */
import { DwParseError } from '../../shared/errors.js';
import { shown } from './crontab.js';

export interface UnitAssignment {
  section: string;
  key: string;
  value: string;
  line: number;
}

/**
 * The settings that add a trigger. systemd keeps them in one list, so an empty assignment to any of
 * them (`OnCalendar=` in a drop-in) clears every trigger set so far, calendar and monotonic alike.
 */
export const TIMER_TRIGGERS: ReadonlySet<string> = new Set([
  'OnActiveSec',
  'OnBootSec',
  'OnStartupSec',
  'OnUnitActiveSec',
  'OnUnitInactiveSec',
  'OnCalendar',
]);

/** Between the values of a trigger given more than once; calendar specs and time spans never contain it. */
export const TRIGGER_SEPARATOR = '; ';

const WHITESPACE = /^[ \t\n\r]+|[ \t\n\r]+$/g;

/**
 * A unit file as systemd's config_parse() reads it: `#` and `;` start comment lines (also inside a
 * continuation), a line ending in an unescaped backslash continues on the next (the backslash
 * becomes a space), `[Section]` headers, `Key=Value` with blanks around both trimmed. Lines systemd
 * ignores with a warning (no `=`, an assignment before any section) are ignored here too; a broken
 * section header makes systemd refuse the whole unit, so it is a DwParseError. Line numbers are the
 * line an assignment ends on, as systemd reports them.
 */
export function parseUnitFile(text: string, file: string): UnitAssignment[] {
  const out: UnitAssignment[] = [];
  const lines = (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).split('\n');
  let section: string | null = null;
  let continuation: string | null = null;

  const take = (joined: string, lineNo: number): void => {
    const l = joined.replace(WHITESPACE, '');
    if (l === '') return;
    if (l.startsWith('[')) {
      if (!l.endsWith(']') || l.length < 2)
        throw new DwParseError(file, lineNo, `invalid section header ${shown(l)}: systemd refuses the unit`);
      section = l.slice(1, -1);
      return;
    }
    const eq = l.indexOf('=');
    if (section === null || eq <= 0) return;
    out.push({
      section,
      key: l.slice(0, eq).replace(WHITESPACE, ''),
      value: l.slice(eq + 1).replace(WHITESPACE, ''),
      line: lineNo,
    });
  };

  lines.forEach((rawLine, index) => {
    const raw = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    const lead = raw.replace(/^[ \t\n\r]+/, '');
    if (lead.startsWith('#') || lead.startsWith(';')) return;
    const joined = continuation === null ? raw : continuation + raw;
    if (endsEscaped(joined)) {
      continuation = joined.slice(0, -1) + ' ';
      return;
    }
    continuation = null;
    take(joined, index + 1);
  });
  // A continuation still open at the end of the file is parsed as it stands, as systemd does.
  if (continuation !== null) take(continuation, lines.length);
  return out;
}

function endsEscaped(s: string): boolean {
  let n = 0;
  for (let i = s.length - 1; i >= 0 && s[i] === '\\'; i--) n++;
  return n % 2 === 1;
}

/**
 * The effective [Timer] settings of a unit read as a sequence of files (the unit, then its drop-ins
 * in order). Triggers accumulate and are joined with TRIGGER_SEPARATOR in the order given; any other
 * setting is last-one-wins, and an empty assignment resets it to its default (drops it here).
 */
export function timerSettings(assignments: readonly UnitAssignment[]): Record<string, string> {
  const triggers = new Map<string, string[]>();
  const scalars = new Map<string, string>();
  for (const a of assignments) {
    if (a.section !== 'Timer') continue;
    if (TIMER_TRIGGERS.has(a.key)) {
      if (a.value === '') triggers.clear();
      else triggers.set(a.key, [...(triggers.get(a.key) ?? []), a.value]);
    } else if (a.value === '') scalars.delete(a.key);
    else scalars.set(a.key, a.value);
  }
  const out: Record<string, string> = {};
  const keys = [...triggers.keys(), ...scalars.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const k of keys) out[k] = triggers.has(k) ? triggers.get(k)!.join(TRIGGER_SEPARATOR) : scalars.get(k)!;
  return out;
}
