/** @module Parser for sysctl.conf and sysctl.d files, with systemd-sysctl's syntax (sysctl.d(5)). */
import { DwParseError } from '../../shared/errors.js';

export type SysctlConfEntry =
  /** `key = value`: the value the file asks for at boot. */
  | { kind: 'set'; key: string; value: string; line: number }
  /** `-key` without `=`: systemd's way to keep a glob assignment off one parameter; sets nothing itself. */
  | { kind: 'exclude'; key: string; line: number };

/** Trim and collapse every whitespace run to one space, which is how values compare (sysctl prints tabs). */
export function normalizeSysctlValue(raw: string): string {
  return raw.replace(/[ \t\r\n\f\v]+/g, ' ').trim();
}

/** The dotted name of a path under proc/sys: a dot inside a component becomes `/`, as `sysctl` prints it. */
export function sysctlNameFromPath(components: readonly string[]): string {
  return components.map((c) => c.replaceAll('.', '/')).join('.');
}

/**
 * The dotted name of a key as written in a file. systemd (and procps) decide by the first separator:
 * if it is `/` the key is a path and its dots are literal, so they become `/` in the dotted name;
 * if it is `.` the key is already dotted and a `/` in it stands for a literal dot. Empty and `.`
 * path components are dropped, like systemd's path_simplify(). Returns null when nothing is left
 * or a component is `..`, which names no parameter.
 */
export function normalizeSysctlKey(raw: string): string | null {
  const firstSep = raw.search(/[./]/);
  const pathParts =
    firstSep >= 0 && raw[firstSep] === '/' ? raw.split('/') : raw.split('.').map((c) => c.replaceAll('/', '.'));
  const parts = pathParts.filter((c) => c !== '' && c !== '.');
  if (parts.length === 0 || parts.includes('..')) return null;
  return sysctlNameFromPath(parts);
}

/**
 * Assignments in file order (later ones win; that is the caller's business). Glob keys
 * (`net.ipv4.conf.*.rp_filter`) are kept literally: what they expand to depends on the interfaces
 * present at boot, so the declaration itself is the thing to compare. `file` only names the file
 * in errors.
 */
export function parseSysctlConf(text: string, file: string): SysctlConfEntry[] {
  const entries: SysctlConfEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;

    const eq = line.indexOf('=');
    let rawKey = eq < 0 ? line : line.slice(0, eq).trim();
    // `-` marks "ignore failures to set this"; it does not change which parameter is meant.
    const dashed = rawKey.startsWith('-');
    if (dashed) rawKey = rawKey.slice(1).trim();
    if (eq < 0 && !dashed) throw new DwParseError(file, lineNo, 'expected "key = value"');

    if (/[\s\x00-\x1f\x7f]/.test(rawKey))
      throw new DwParseError(file, lineNo, 'key contains whitespace or control characters');
    const key = normalizeSysctlKey(rawKey);
    if (key === null) throw new DwParseError(file, lineNo, 'empty or invalid key');

    if (eq < 0) entries.push({ kind: 'exclude', key, line: lineNo });
    else entries.push({ kind: 'set', key, value: normalizeSysctlValue(line.slice(eq + 1)), line: lineNo });
  }
  return entries;
}
