/** @module Parse dpkg's status database (`var/lib/dpkg/status`, or a distroless `status.d/*` file) into package items. */
import { DwParseError } from '../../shared/errors.js';
import type { PackageItem } from '../../shared/schema/items.js';
import { PackageStanzas, isToken, packageKey } from './package-items.js';
import { lines } from './lines.js';

export interface DpkgParseOptions {
  /**
   * Image builders that write `status.d/<package>` often copy the package's control file, which has
   * no Status field: there the file's presence means installed. In the real status file dpkg always
   * writes Status, so its absence is corruption.
   */
  statusOptional?: boolean;
}

// The words dpkg itself accepts in `Status: want flag state` (lib/dpkg: wantinfos, eflaginfos, statusinfos).
const WANTS = new Set(['unknown', 'install', 'hold', 'deinstall', 'purge']);
const FLAGS = new Set(['ok', 'reinstreq']);
const STATES = new Set([
  'not-installed',
  'config-files',
  'half-installed',
  'unpacked',
  'half-configured',
  'triggers-awaited',
  'triggers-pending',
  'installed',
]);

/** The single-line fields this parser reads; everything else (Description, Conffiles, ...) is skipped. */
type Wanted = 'package' | 'architecture' | 'version' | 'status';
const WANTED: ReadonlySet<string> = new Set<Wanted>(['package', 'architecture', 'version', 'status']);

interface Stanza {
  line: number;
  fields: Map<string, { value: string; line: number }>;
  /** Lower-cased names seen, to refuse a repeated field as dpkg does. */
  names: Set<string>;
  current: string | null;
}

/**
 * One pass over the text, line by line, with no regular expressions, so a multi-megabyte status
 * file costs one scan. Items come back sorted by key; `not-installed` stanzas (kept by dpkg only to
 * remember a selection) are dropped.
 *
 * `state` is dpkg's state word. Anything other than the healthy `install ok installed` stays
 * visible: a want other than `install` and a flag other than `ok` are appended in parentheses,
 * e.g. `installed (hold)`, `installed (deinstall)`, `half-installed (reinstreq)`,
 * `config-files (deinstall)`. So a hold placed or released on a host is a state change, and only
 * `install ok installed` ever yields the bare `installed`.
 */
export function parseDpkgStatus(text: string, file: string, opts: DpkgParseOptions = {}): PackageItem[] {
  const out = new PackageStanzas(file);
  let stanza: Stanza | null = null;
  for (const [line, lineNo] of lines(text)) {
    if (isBlank(line)) {
      if (stanza !== null) finish(stanza, file, opts, out);
      stanza = null;
      continue;
    }

    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      if (stanza === null || stanza.current === null)
        throw new DwParseError(file, lineNo, 'continuation line outside a field');
      if (WANTED.has(stanza.current))
        throw new DwParseError(file, lineNo, `field ${stanza.current} cannot span several lines`);
      continue;
    }

    const colon = line.indexOf(':');
    if (colon <= 0) throw new DwParseError(file, lineNo, 'expected "Field: value"');
    const name = line.slice(0, colon);
    if (!isToken(name)) throw new DwParseError(file, lineNo, `malformed field name ${JSON.stringify(name)}`);
    const lower = name.toLowerCase();
    if (stanza === null) stanza = { line: lineNo, fields: new Map(), names: new Set(), current: null };
    if (stanza.names.has(lower)) throw new DwParseError(file, lineNo, `duplicate field ${name} in one stanza`);
    stanza.names.add(lower);
    stanza.current = lower;
    if (WANTED.has(lower)) stanza.fields.set(lower, { value: line.slice(colon + 1).trim(), line: lineNo });
  }
  if (stanza !== null) finish(stanza, file, opts, out);
  return out.items();
}

function isBlank(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09) return false;
  }
  return true;
}

function finish(stanza: Stanza, file: string, opts: DpkgParseOptions, out: PackageStanzas): void {
  const pkg = stanza.fields.get('package');
  if (pkg === undefined) throw new DwParseError(file, stanza.line, 'stanza has no Package field');
  if (!isToken(pkg.value))
    throw new DwParseError(file, pkg.line, `malformed package name ${JSON.stringify(pkg.value)}`);
  const name = pkg.value;

  const status = stanza.fields.get('status');
  let want = 'install';
  let flag = 'ok';
  let state = 'installed';
  if (status !== undefined) {
    const words = status.value.split(/[ \t]+/).filter((w) => w !== '');
    if (words.length !== 3)
      throw new DwParseError(
        file,
        status.line,
        `Status of ${name} must be "want flag state", got ${JSON.stringify(status.value)}`,
      );
    [want, flag, state] = words as [string, string, string];
    if (!WANTS.has(want))
      throw new DwParseError(file, status.line, `unknown selection ${JSON.stringify(want)} in Status of ${name}`);
    if (!FLAGS.has(flag))
      throw new DwParseError(file, status.line, `unknown flag ${JSON.stringify(flag)} in Status of ${name}`);
    if (!STATES.has(state))
      throw new DwParseError(file, status.line, `unknown state ${JSON.stringify(state)} in Status of ${name}`);
  } else if (!opts.statusOptional) {
    throw new DwParseError(file, stanza.line, `stanza for ${name} has no Status field`);
  }
  if (state === 'not-installed') return;

  const version = stanza.fields.get('version');
  if (version === undefined || version.value === '')
    throw new DwParseError(file, stanza.line, `stanza for ${name} (${state}) has no Version`);
  if (!isToken(version.value))
    throw new DwParseError(file, version.line, `malformed version ${JSON.stringify(version.value)} for ${name}`);
  const archField = stanza.fields.get('architecture');
  const arch = archField?.value ?? '';
  if (arch !== '' && !isToken(arch))
    throw new DwParseError(file, archField!.line, `malformed architecture ${JSON.stringify(arch)} for ${name}`);

  const qualifiers: string[] = [];
  if (want !== 'install') qualifiers.push(want);
  if (flag !== 'ok') qualifiers.push(flag);
  out.add(
    {
      key: packageKey(name, arch),
      manager: 'dpkg',
      name,
      arch,
      version: version.value,
      state: qualifiers.length === 0 ? state : `${state} (${qualifiers.join(', ')})`,
    },
    stanza.line,
  );
}
