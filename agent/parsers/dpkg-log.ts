/** @module Parse dpkg's own log (`var/log/dpkg.log` and its rotations): one line per step, in local time. */
import { DwParseError } from '../../shared/errors.js';
import { localTime, type LocalTime } from './local-time.js';
import { isToken } from './package-items.js';
import { lines } from './lines.js';

/** The package-level steps dpkg logs (src/main: `log_action`), with the two versions it writes for each. */
export const DPKG_ACTIONS = ['install', 'upgrade', 'remove', 'purge', 'configure', 'trigproc'] as const;
export type DpkgAction = (typeof DPKG_ACTIONS)[number];
const ACTIONS: ReadonlySet<string> = new Set(DPKG_ACTIONS);

interface Base {
  /** 1-based line in the file, for messages. */
  line: number;
  at: LocalTime;
}

/**
 * `install strace:amd64 <none> 6.1-0.1`, `upgrade ... OLD NEW`, `remove ... OLD <none>`,
 * `configure ... VERSION <none>`. `fromVersion` is what was there before, `toVersion` what is
 * there after; `<none>` becomes absent.
 */
export interface DpkgLogAction extends Base {
  kind: 'action';
  action: DpkgAction;
  name: string;
  /** Empty for the lines of dpkg before multi-arch (1.16), which wrote the bare name. */
  arch: string;
  fromVersion?: string;
  toVersion?: string;
}

/** `status half-configured openssl:amd64 3.0.11-1~deb12u2`: one state change of a package. */
export interface DpkgLogStatus extends Base {
  kind: 'status';
  state: string;
  name: string;
  arch: string;
  version?: string;
}

/** `startup archives unpack`: one run of dpkg begins. */
export interface DpkgLogStartup extends Base {
  kind: 'startup';
  detail: string;
}

/** `conffile /etc/foo.conf keep`: how an upgrade resolved a locally changed configuration file. */
export interface DpkgLogConffile extends Base {
  kind: 'conffile';
  path: string;
  decision: string;
}

export type DpkgLogEntry = DpkgLogAction | DpkgLogStatus | DpkgLogStartup | DpkgLogConffile;

export interface DpkgLogParse {
  entries: DpkgLogEntry[];
  /** One per malformed line; the line is skipped, the rest of the log still counts. */
  errors: DwParseError[];
}

const NONE = '<none>';

/**
 * A log is a sequence of independent lines that dpkg appends, and a crash, a full disk or a
 * truncated rotation leaves a broken line among good ones. So this never throws: each malformed line
 * becomes a DwParseError in `errors` and is skipped, and the caller decides what to do with them.
 * Entries come back in file order, which is the order dpkg ran them (times can go backwards when
 * the clock is reset; the order cannot).
 */
export function parseDpkgLog(text: string, file: string): DpkgLogParse {
  const entries: DpkgLogEntry[] = [];
  const errors: DwParseError[] = [];
  for (const [line, lineNo] of lines(text)) {
    if (line.trim() === '') continue;
    const parsed = parseLine(line, lineNo);
    if (typeof parsed === 'string') errors.push(new DwParseError(file, lineNo, parsed));
    else entries.push(parsed);
  }
  return { entries, errors };
}

/** One line, or the reason it is malformed. */
function parseLine(line: string, lineNo: number): DpkgLogEntry | string {
  const words = line.split(/[ \t]+/);
  if (words.length < 3) return 'expected "DATE TIME WORD ..."';
  const at = localTime(words[0]!, words[1]!);
  if (at === null) return `malformed time ${JSON.stringify(`${words[0]} ${words[1]}`)}`;
  const word = words[2]!;
  const rest = words.slice(3);
  const base = { line: lineNo, at };

  if (word === 'startup') {
    if (rest.length === 0) return 'startup line says nothing';
    return { ...base, kind: 'startup', detail: rest.join(' ') };
  }
  if (word === 'conffile') {
    // dpkg writes the path as is, so it may hold spaces: the decision is the last word.
    if (rest.length < 2) return 'expected "conffile PATH DECISION"';
    const path = rest.slice(0, -1).join(' ');
    if (!path.startsWith('/')) return `conffile path must be absolute, got ${JSON.stringify(path)}`;
    return { ...base, kind: 'conffile', path, decision: rest[rest.length - 1]! };
  }
  if (word === 'status') {
    if (rest.length !== 3) return `expected "status STATE PACKAGE VERSION", got ${rest.length} words after status`;
    const [state, pkg, version] = rest as [string, string, string];
    if (!isToken(state)) return `malformed state ${JSON.stringify(state)}`;
    const np = splitPackageArch(pkg);
    if (typeof np === 'string') return np;
    if (!isToken(version)) return `malformed version ${JSON.stringify(version)}`;
    return { ...base, kind: 'status', state, ...np, ...(version === NONE ? {} : { version }) };
  }
  if (ACTIONS.has(word)) {
    if (rest.length !== 3) return `expected "${word} PACKAGE VERSION VERSION", got ${rest.length} words after ${word}`;
    const [pkg, v1, v2] = rest as [string, string, string];
    const np = splitPackageArch(pkg);
    if (typeof np === 'string') return np;
    if (!isToken(v1) || !isToken(v2)) return `malformed version in ${JSON.stringify(`${v1} ${v2}`)}`;
    const action = word as DpkgAction;
    const versions = versionsOf(action, v1 === NONE ? undefined : v1, v2 === NONE ? undefined : v2);
    return { ...base, kind: 'action', action, ...np, ...versions };
  }
  return `unknown dpkg log word ${JSON.stringify(word)}`;
}

/**
 * What the two versions mean depends on the step: install and upgrade log (old, new), remove and
 * purge (installed, <none>), configure and trigproc (the version being configured, <none>).
 */
function versionsOf(
  action: DpkgAction,
  v1: string | undefined,
  v2: string | undefined,
): { fromVersion?: string; toVersion?: string } {
  const out: { fromVersion?: string; toVersion?: string } = {};
  if (action === 'install' || action === 'upgrade') {
    if (v1 !== undefined) out.fromVersion = v1;
    if (v2 !== undefined) out.toVersion = v2;
  } else if (action === 'remove' || action === 'purge') {
    if (v1 !== undefined) out.fromVersion = v1;
  } else if (v1 !== undefined) {
    out.toVersion = v1;
  }
  return out;
}

/** `name:arch` (package names and architectures never hold a colon), or bare `name` from old dpkg. */
export function splitPackageArch(pkg: string): { name: string; arch: string } | string {
  if (!isToken(pkg)) return `malformed package ${JSON.stringify(pkg)}`;
  const colon = pkg.indexOf(':');
  if (colon === -1) return { name: pkg, arch: '' };
  const name = pkg.slice(0, colon);
  const arch = pkg.slice(colon + 1);
  if (name === '' || arch === '' || arch.includes(':')) return `malformed package ${JSON.stringify(pkg)}`;
  return { name, arch };
}
