/** @module Parse what dpkg keeps about files: `info/<pkg>.list`, `info/<pkg>.md5sums`, `diversions`, and Conffiles in `status`. */
import { DwParseError } from '../../shared/errors.js';
import { isToken } from './package-items.js';
import { lines } from './lines.js';

/**
 * `info/<package>[:<arch>].list`: every path the package installed, one per line, directories
 * included, `/.` first. Paths are kept exactly as written (a name may hold any byte but newline),
 * so a line that does not start with `/` is the only thing that can be wrong with one.
 */
export function parseDpkgList(text: string, file: string): { paths: string[]; errors: DwParseError[] } {
  const paths: string[] = [];
  const errors: DwParseError[] = [];
  for (const [line, n] of lines(text)) {
    if (line === '' || line === '/.') continue;
    if (line[0] !== '/')
      errors.push(new DwParseError(file, n, `expected an absolute path, got ${JSON.stringify(line.slice(0, 80))}`));
    else paths.push(line);
  }
  return { paths, errors };
}

const HEX32 = /^[0-9a-f]{32}$/;

/**
 * `info/<package>.md5sums`: `MD5  relative/path` for every regular file the package shipped except
 * its conffiles (those are in the status file). Keys come back absolute, as `.list` writes them.
 */
export function parseDpkgMd5sums(text: string, file: string): { sums: Map<string, string>; errors: DwParseError[] } {
  const sums = new Map<string, string>();
  const errors: DwParseError[] = [];
  for (const [line, n] of lines(text)) {
    if (line === '') continue;
    const hash = line.slice(0, 32).toLowerCase();
    // md5sum's text mode writes two spaces, its binary mode " *"; both occur in the wild.
    const sep = line.slice(32, 34);
    const rel = line.slice(34);
    if (!HEX32.test(hash) || (sep !== '  ' && sep !== ' *') || rel === '') {
      errors.push(new DwParseError(file, n, 'expected "MD5  path"'));
      continue;
    }
    sums.set(rel.startsWith('/') ? rel : `/${rel}`, hash);
  }
  return { sums, errors };
}

export interface Diversion {
  /** The path packages ship. */
  from: string;
  /** Where their copy goes instead. */
  to: string;
  /** The package whose own file stays at `from`; `:` for a local diversion made by an administrator. */
  by: string;
}

/** `diversions`: three lines per diversion, from, to, and the diverting package. */
export function parseDpkgDiversions(text: string, file: string): { diversions: Diversion[]; errors: DwParseError[] } {
  const diversions: Diversion[] = [];
  const errors: DwParseError[] = [];
  const all = [...lines(text)];
  // dpkg writes the file whole, so a trailing empty line is the only blank one it can contain.
  while (all.length > 0 && all[all.length - 1]![0] === '') all.pop();
  for (let i = 0; i < all.length; i += 3) {
    const [from, n] = all[i]!;
    if (i + 2 >= all.length) {
      errors.push(new DwParseError(file, n, 'incomplete diversion: expected three lines (from, to, package)'));
      break;
    }
    const to = all[i + 1]![0];
    const by = all[i + 2]![0];
    if (!from.startsWith('/') || !to.startsWith('/'))
      errors.push(new DwParseError(file, n, 'diversion paths must be absolute'));
    else if (!isToken(by))
      errors.push(new DwParseError(file, n + 2, `malformed diverting package ${JSON.stringify(by)}`));
    else diversions.push({ from, to, by });
  }
  return { diversions, errors };
}

export interface PackageConffiles {
  name: string;
  arch: string;
  /** Host path → MD5 of the conffile as the installed version shipped it. */
  md5: Map<string, string>;
}

/**
 * The Conffiles of the wanted packages (by name) from dpkg's status file:
 * ` /etc/foo.conf 0123…ef [obsolete|remove-on-upgrade]`. Obsolete ones are left out: the package no
 * longer ships them, so their hash says nothing about what it installed. `newconffile` (a
 * placeholder while a package is being unpacked) is no hash and is left out too. Status files are
 * validated by the packages collector; here a line that cannot be read is only skipped.
 */
export function parseDpkgConffiles(
  text: string,
  file: string,
  wanted: ReadonlySet<string>,
): { packages: PackageConffiles[]; errors: DwParseError[] } {
  const packages: PackageConffiles[] = [];
  const errors: DwParseError[] = [];
  let name: string | null = null;
  let arch = '';
  let md5: Map<string, string> | null = null;
  let inConffiles = false;
  const flush = () => {
    if (name !== null && md5 !== null && md5.size > 0 && wanted.has(name)) packages.push({ name, arch, md5 });
    name = null;
    arch = '';
    md5 = null;
    inConffiles = false;
  };
  for (const [line, n] of lines(text)) {
    if (line.trim() === '') {
      flush();
      continue;
    }
    const first = line[0];
    if (first === ' ' || first === '\t') {
      if (!inConffiles) continue;
      const words = line.trim().split(/[ \t]+/);
      const flag = words[words.length - 1];
      if (flag === 'obsolete' || flag === 'remove-on-upgrade') {
        if (flag === 'obsolete') continue;
        words.pop();
      }
      const hash = words.pop();
      const path = words.join(' ');
      if (hash === 'newconffile') continue;
      if (hash === undefined || !HEX32.test(hash) || !path.startsWith('/')) {
        errors.push(new DwParseError(file, n, 'expected " /path MD5" in Conffiles'));
        continue;
      }
      (md5 ??= new Map()).set(path, hash);
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon > 0 ? line.slice(0, colon).toLowerCase() : '';
    const value = colon > 0 ? line.slice(colon + 1).trim() : '';
    inConffiles = field === 'conffiles';
    if (field === 'package') name = value;
    else if (field === 'architecture') arch = value;
  }
  flush();
  return { packages, errors };
}
