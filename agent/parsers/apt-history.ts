/** @module Parse apt's `var/log/apt/history.log` (and rotations): one stanza per apt run, with its command line and user. */
import { DwParseError } from '../../shared/errors.js';
import { splitPackageArch } from './dpkg-log.js';
import { localTime, type LocalTime } from './local-time.js';
import { isToken } from './package-items.js';
import { lines } from './lines.js';

/** The package lists apt writes (apt-pkg/deb/dpkgpm.cc, WriteHistoryTag), lower-cased. */
export const APT_ACTIONS = ['install', 'reinstall', 'upgrade', 'downgrade', 'remove', 'purge'] as const;
export type AptAction = (typeof APT_ACTIONS)[number];
const ACTIONS: ReadonlySet<string> = new Set(APT_ACTIONS);

export interface AptHistoryPackage {
  action: AptAction;
  name: string;
  /** apt writes arch:all packages with the native architecture (`tzdata:amd64`), unlike dpkg. */
  arch: string;
  fromVersion?: string;
  toVersion?: string;
  /** Installed as a dependency rather than asked for (`(1.0-1, automatic)`). */
  automatic?: boolean;
}

export interface AptHistoryStanza {
  line: number;
  start: LocalTime;
  /** Absent when apt was killed before it finished: the run then has no known end. */
  end?: LocalTime;
  commandLine?: string;
  /** `alice (1000)`: apt writes it only when run through sudo or pkexec. */
  requestedBy?: string;
  error?: string;
  packages: AptHistoryPackage[];
}

export interface AptHistoryParse {
  stanzas: AptHistoryStanza[];
  /** One per malformed line or package entry; what it spoiled is skipped, the rest still counts. */
  errors: DwParseError[];
}

/** A command line is kept whole up to this, so one pasted script cannot bloat every report. */
export const MAX_COMMAND_LINE = 2000;

interface Open {
  line: number;
  start?: LocalTime;
  end?: LocalTime;
  commandLine?: string;
  requestedBy?: string;
  error?: string;
  packages: AptHistoryPackage[];
}

/**
 * Never throws, for the same reason as parseDpkgLog: a log collects independent records and one
 * broken record must not hide the others. A stanza without a valid Start-Date cannot be placed in
 * time and is dropped (with an error); a malformed package entry drops that entry and the rest of
 * its list, keeping what came before it. Unknown fields are ignored: apt may add more.
 */
export function parseAptHistory(text: string, file: string): AptHistoryParse {
  const stanzas: AptHistoryStanza[] = [];
  const errors: DwParseError[] = [];
  let cur: Open | null = null;
  const finish = () => {
    if (cur === null) return;
    if (cur.start === undefined)
      errors.push(new DwParseError(file, cur.line, 'stanza has no valid Start-Date; skipped'));
    else {
      const s: AptHistoryStanza = { line: cur.line, start: cur.start, packages: cur.packages };
      if (cur.end !== undefined) s.end = cur.end;
      if (cur.commandLine !== undefined) s.commandLine = cur.commandLine;
      if (cur.requestedBy !== undefined) s.requestedBy = cur.requestedBy;
      if (cur.error !== undefined) s.error = cur.error;
      stanzas.push(s);
    }
    cur = null;
  };

  for (const [line, lineNo] of lines(text)) {
    if (line.trim() === '') {
      finish();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      errors.push(new DwParseError(file, lineNo, 'expected "Field: value"'));
      continue;
    }
    const field = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    // A Start-Date always opens a run: apt killed mid-run leaves no End-Date and sometimes no blank line.
    if (field === 'start-date' && cur !== null && cur.start !== undefined) finish();
    if (cur === null) cur = { line: lineNo, packages: [] };
    const c: Open = cur;

    if (field === 'start-date' || field === 'end-date') {
      const t = dateOf(value);
      if (t === null)
        errors.push(
          new DwParseError(
            file,
            lineNo,
            `malformed ${field === 'start-date' ? 'Start-Date' : 'End-Date'} ${JSON.stringify(value)}`,
          ),
        );
      else if (field === 'start-date') c.start = t;
      else c.end = t;
    } else if (field === 'commandline') {
      c.commandLine = value.length > MAX_COMMAND_LINE ? `${value.slice(0, MAX_COMMAND_LINE)}…` : value;
    } else if (field === 'requested-by') {
      c.requestedBy = value;
    } else if (field === 'error') {
      c.error = value;
    } else if (ACTIONS.has(field)) {
      parsePackages(field as AptAction, value, file, lineNo, c.packages, errors);
    }
  }
  finish();
  return { stanzas, errors };
}

/** `2024-03-01  02:14:07`: apt pads with two spaces; any run of blanks is accepted. */
function dateOf(value: string): LocalTime | null {
  const parts = value.split(/[ \t]+/);
  if (parts.length !== 2) return null;
  return localTime(parts[0]!, parts[1]!);
}

/**
 * `a:amd64 (1.0-1), b:amd64 (2:3.1-2, automatic)` for installs, `(old, new)` for upgrades and
 * downgrades, `(installed)` for removals. Versions hold neither commas nor parentheses.
 */
function parsePackages(
  action: AptAction,
  value: string,
  file: string,
  lineNo: number,
  out: AptHistoryPackage[],
  errors: DwParseError[],
): void {
  let pos = 0;
  while (pos < value.length) {
    while (pos < value.length && (value[pos] === ' ' || value[pos] === ',')) pos++;
    if (pos >= value.length) break;
    const open = value.indexOf('(', pos);
    const close = open === -1 ? -1 : value.indexOf(')', open);
    if (open === -1 || close === -1) {
      errors.push(
        new DwParseError(file, lineNo, `expected "package (version)" at ${JSON.stringify(value.slice(pos, pos + 40))}`),
      );
      return;
    }
    const pkg = value.slice(pos, open).trim();
    const inner = value.slice(open + 1, close);
    pos = close + 1;
    const np = splitPackageArch(pkg);
    if (typeof np === 'string') {
      errors.push(new DwParseError(file, lineNo, np));
      return;
    }
    const words = inner.split(',').map((w) => w.trim());
    const automatic = words[words.length - 1] === 'automatic';
    if (automatic) words.pop();
    if (words.length === 0 || words.length > 2 || !words.every(isToken)) {
      errors.push(new DwParseError(file, lineNo, `malformed versions ${JSON.stringify(inner)} for ${pkg}`));
      return;
    }
    const entry: AptHistoryPackage = { action, ...np };
    if (words.length === 2) {
      entry.fromVersion = words[0]!;
      entry.toVersion = words[1]!;
    } else if (action === 'remove' || action === 'purge') {
      entry.fromVersion = words[0]!;
    } else if (action === 'upgrade' || action === 'downgrade') {
      errors.push(
        new DwParseError(file, lineNo, `${action} of ${pkg} needs "(old, new)", got ${JSON.stringify(inner)}`),
      );
      return;
    } else {
      entry.toVersion = words[0]!;
    }
    if (automatic) entry.automatic = true;
    out.push(entry);
  }
}
