/** @module Kernel module sources: proc/modules, modules-load.d / etc/modules lists and modprobe.d blacklist and install lines. */
import { lines } from './lines.js';

/** The kernel treats `-` and `_` in module names alike and lists them with `_`. */
export function moduleName(name: string): string {
  return name.replaceAll('-', '_');
}

export interface LoadedModule {
  name: string;
  size: number;
  /** Taint letters between parentheses at the end of the line (`(OE)`), `''` for none. */
  taint: string;
}

/**
 * proc/modules: `name size refcount deps state address [(taints)]`. refcount, deps, state and the
 * address change on their own (and the address reads 0 without CAP_SYSLOG), so only name, size and
 * taint are kept.
 */
export function parseProcModules(text: string): LoadedModule[] {
  const out: LoadedModule[] = [];
  for (const [line] of lines(text)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 2 || f[0] === '') continue;
    const size = Number(f[1]);
    const m = /\(([A-Z]+)\)\s*$/.exec(line);
    out.push({ name: moduleName(f[0]!), size: Number.isSafeInteger(size) ? size : 0, taint: m ? m[1]! : '' });
  }
  return out;
}

/** A size as the smallest power of two not below it: a rebuilt module usually moves class, a reload never does. */
export function sizeClass(size: number): number {
  let c = 1;
  while (c < size) c *= 2;
  return c;
}

/** etc/modules and modules-load.d/*.conf: one module per line (etc/modules allows arguments after it), `#` and `;` comments. */
export function parseModulesList(text: string): string[] {
  const out: string[] = [];
  for (const [raw] of lines(text)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    out.push(moduleName(line.split(/\s+/)[0]!));
  }
  return out;
}

export interface ModprobeConf {
  blacklist: string[];
  /** module → command (`install foo /bin/true`). */
  install: Map<string, string>;
}

/** modprobe.d(5): `blacklist NAME` and `install NAME COMMAND...`; a trailing backslash continues a line. Other commands are not compared. */
export function parseModprobeConf(text: string): ModprobeConf {
  const out: ModprobeConf = { blacklist: [], install: new Map() };
  let pending = '';
  for (const [raw] of lines(text)) {
    if (raw.endsWith('\\')) {
      pending += raw.slice(0, -1) + ' ';
      continue;
    }
    const line = (pending + raw).trim();
    pending = '';
    if (line === '' || line.startsWith('#')) continue;
    const [cmd, name, ...rest] = line.split(/\s+/);
    if (!name) continue;
    if (cmd === 'blacklist') out.blacklist.push(moduleName(name));
    else if (cmd === 'install') out.install.set(moduleName(name), rest.join(' '));
  }
  return out;
}
