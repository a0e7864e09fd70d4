/** @module Kernel parameters: runtime values from proc/sys beside the values sysctl.conf and sysctl.d declare. */
import { closeSync, constants as fsc, lstatSync, openSync, promises as fsp, readSync } from 'node:fs';
import { globMatcher } from '../../shared/glob.js';
import { DwParseError, describeError } from '../../shared/errors.js';
import type { SysctlItem } from '../../shared/schema/items.js';
import type { Logger } from '../log.js';
import type { HostRoot } from '../root.js';
import { normalizeSysctlValue, parseSysctlConf, sysctlNameFromPath } from '../parsers/sysctl-conf.js';
import type { Collector } from './types.js';

const PROC_SYS = '/proc/sys';

/**
 * systemd-sysctl's search path, highest priority first: a file name found in an earlier directory
 * masks the same name in later ones. /lib/sysctl.d is procps' addition (and on merged-/usr systems
 * the same directory as /usr/lib/sysctl.d, which the masking by name makes harmless).
 */
const SYSCTL_D_DIRS = [
  '/etc/sysctl.d',
  '/run/sysctl.d',
  '/usr/local/lib/sysctl.d',
  '/usr/lib/sysctl.d',
  '/lib/sysctl.d',
];

/** Applied after all of sysctl.d, as `sysctl --system` does; on Debian it is also linked in as 99-sysctl.conf, which changes nothing. */
const SYSCTL_CONF = '/etc/sysctl.conf';

/** No real parameter comes near this; a larger file in a fixture or image is not a sysctl value. */
const MAX_VALUE_BYTES = 64 * 1024;

/** Parameters read between two yields to the event loop (a few milliseconds of work). */
const READ_BATCH = 200;

/** Errors the kernel returns for parameters that exist but have nothing to show (unset stable_secret, no device, ...). */
const EXPECTED_READ_ERRORS = new Set([
  'EACCES',
  'EPERM',
  'EINVAL',
  'EIO',
  'ENOENT',
  'ENOTDIR',
  'EOPNOTSUPP',
  'ENOTSUP',
  'ENXIO',
  'ENODEV',
  'EBUSY',
  'EAGAIN',
]);

/** `*` must cross the dots of a dotted name (`*.stat`, `net.ipv4.conf.veth*.*`): name-style globs (shared/glob.ts). */
function excludeMatcher(patterns: readonly string[]): (name: string) => boolean {
  return globMatcher(patterns, 'name');
}

interface Candidate {
  hostPath: string;
  name: string;
}

/** Every regular file under proc/sys; symlinks are neither followed nor listed. */
async function listParameters(
  root: HostRoot,
  dirHost: string,
  components: string[],
  excluded: (name: string) => boolean,
  log: Logger,
): Promise<Candidate[]> {
  let entries;
  try {
    entries = await root.readdir(dirHost);
  } catch (err) {
    log.debug({ path: dirHost, code: (err as NodeJS.ErrnoException).code }, 'sysctl directory unreadable');
    return [];
  }
  const files: Candidate[] = [];
  const subdirs: Promise<Candidate[]>[] = [];
  for (const e of entries) {
    const hostPath = `${dirHost}/${e.name}`;
    const parts = [...components, e.name];
    if (e.isDirectory()) subdirs.push(listParameters(root, hostPath, parts, excluded, log));
    else if (e.isFile()) {
      const name = sysctlNameFromPath(parts);
      // Excluded before reading: some parameters do work when read (vm.stat_refresh).
      if (!excluded(name)) files.push({ hostPath, name });
    }
  }
  for (const sub of await Promise.all(subdirs)) files.push(...sub);
  return files;
}

type ReadResult = { value: string } | { skip: string } | { error: string };

/**
 * Synchronous on purpose: a full walk is over a thousand tiny reads, and through libuv's thread pool
 * (lstat, open, read, close each a round trip) it took 150-300 ms against 20-30 ms in line.
 * The caller yields to the event loop between batches so the daemon stays responsive.
 */
function readParameter(root: HostRoot, hostPath: string, buf: Buffer): ReadResult {
  const real = root.path(hostPath);
  let fd: number | undefined;
  try {
    const st = lstatSync(real);
    if (!st.isFile()) return { skip: 'not a regular file' };
    // Root may open a 0200 file in a fixture tree but not in /proc/sys; the mode makes both agree.
    if ((st.mode & 0o444) === 0) return { skip: 'write-only' };
    fd = openSync(real, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    // One read: a proc/sys handler fills as much of the buffer as the value needs (a second read
    // only finds EOF), and so does a regular file in a fixture tree.
    const len = readSync(fd, buf, 0, buf.length, null);
    if (len > MAX_VALUE_BYTES) return { error: `larger than ${MAX_VALUE_BYTES} bytes` };
    return { value: normalizeSysctlValue(buf.toString('utf8', 0, len)) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== undefined && EXPECTED_READ_ERRORS.has(code)) return { skip: code };
    return { error: code ?? describeError(err) };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

async function collectRuntime(
  root: HostRoot,
  excluded: (name: string) => boolean,
  log: Logger,
  warnings: string[],
): Promise<Map<string, string>> {
  const runtime = new Map<string, string>();
  // proc/sys itself may be a link in an image; resolve it inside the root, then never follow links below it.
  const procSys = await root.resolveInside(PROC_SYS);
  const st = procSys === null ? null : await root.lstat(procSys);
  if (procSys === null || !st?.isDirectory()) {
    warnings.push(`${PROC_SYS} not found under the root: runtime values not collected`);
    return runtime;
  }
  const candidates = await listParameters(root, procSys, [], excluded, log);
  const buf = Buffer.allocUnsafe(MAX_VALUE_BYTES + 1);
  const failed: string[] = [];
  for (const [i, c] of candidates.entries()) {
    if (i > 0 && i % READ_BATCH === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const r = readParameter(root, c.hostPath, buf);
    if ('value' in r) runtime.set(c.name, r.value);
    else if ('error' in r) {
      failed.push(c.name);
      log.debug({ parameter: c.name, error: r.error }, 'sysctl parameter unreadable');
    } else log.debug({ parameter: c.name, reason: r.skip }, 'sysctl parameter skipped');
  }
  if (failed.length > 0)
    warnings.push(`${failed.length} kernel parameter(s) could not be read, e.g. ${failed.slice(0, 3).join(', ')}`);
  return runtime;
}

interface ConfFile {
  hostPath: string;
  /** Where the text really is (symlinks resolved inside the root), or null when the file is masked. */
  source: string | null;
}

/** A conf entry that is a link to /dev/null or a /dev/null device node masks the same name in later directories (an empty file does too, by setting nothing). */
async function resolveConf(root: HostRoot, hostPath: string, warnings: string[]): Promise<ConfFile | null> {
  try {
    return await resolveConfUnguarded(root, hostPath, warnings);
  } catch (err) {
    // An unreadable entry still takes its name: guessing what it would have masked is worse.
    warnings.push(`${hostPath}: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}, skipped`);
    return { hostPath, source: null };
  }
}

async function resolveConfUnguarded(root: HostRoot, hostPath: string, warnings: string[]): Promise<ConfFile | null> {
  const lst = await root.lstat(hostPath);
  if (lst === null) return null;
  if (lst.isSymbolicLink()) {
    // Checked before resolving: an image or fixture root usually has no dev/null of its own.
    const target = await fsp.readlink(root.path(hostPath));
    if (target === '/dev/null') return { hostPath, source: null };
  }
  const source = await root.resolveInside(hostPath);
  const st = source === null ? null : await root.lstat(source);
  if (source === null || st === null) {
    warnings.push(`${hostPath}: dangling or looping symlink, skipped`);
    return { hostPath, source: null };
  }
  if (source === '/dev/null' || st.isCharacterDevice()) return { hostPath, source: null };
  if (!st.isFile()) {
    warnings.push(`${hostPath}: not a regular file, skipped`);
    return { hostPath, source: null };
  }
  return { hostPath, source };
}

/** The files systemd-sysctl would apply, in the order it applies them, then sysctl.conf. */
async function listConfFiles(root: HostRoot, warnings: string[]): Promise<ConfFile[]> {
  const byName = new Map<string, ConfFile>();
  for (const dir of SYSCTL_D_DIRS) {
    const realDir = await root.resolveInside(dir);
    if (realDir === null) continue;
    let entries;
    try {
      entries = await root.readdir(realDir);
    } catch (err) {
      warnings.push(`${dir}: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}, skipped`);
      continue;
    }
    for (const e of entries) {
      if (!e.name.endsWith('.conf') || byName.has(e.name)) continue;
      const conf = await resolveConf(root, `${dir}/${e.name}`, warnings);
      if (conf !== null) byName.set(e.name, conf);
    }
  }
  const names = [...byName.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const files = names.map((n) => byName.get(n)!);
  const main = await resolveConf(root, SYSCTL_CONF, warnings);
  if (main !== null) files.push(main);
  return files;
}

async function collectDeclared(
  root: HostRoot,
  warnings: string[],
): Promise<Map<string, { value: string; file: string }>> {
  const declared = new Map<string, { value: string; file: string }>();
  for (const conf of await listConfFiles(root, warnings)) {
    if (conf.source === null) continue;
    let text: string;
    try {
      text = await root.readText(conf.source);
    } catch (err) {
      warnings.push(`${conf.hostPath}: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}, skipped`);
      continue;
    }
    let entries;
    try {
      entries = parseSysctlConf(text, conf.hostPath);
    } catch (err) {
      if (!(err instanceof DwParseError)) throw err;
      // Half a file's settings would be a made-up intent; the whole file is left out and said so.
      warnings.push(`${err.message}; file skipped`);
      continue;
    }
    for (const entry of entries) {
      if (entry.kind === 'set') declared.set(entry.key, { value: entry.value, file: conf.hostPath });
    }
  }
  return declared;
}

export const sysctl: Collector<'sysctl'> = {
  name: 'sysctl',
  async collect(ctx) {
    const log = ctx.log.child({ collector: 'sysctl' });
    const excluded = excludeMatcher(ctx.rules.sysctl.exclude);
    // Separate lists so the warnings come out in the same order whichever side finishes first.
    const runtimeWarnings: string[] = [];
    const declaredWarnings: string[] = [];
    const [runtime, declared] = await Promise.all([
      collectRuntime(ctx.root, excluded, log, runtimeWarnings),
      collectDeclared(ctx.root, declaredWarnings),
    ]);
    const warnings = [...runtimeWarnings, ...declaredWarnings];

    const keys = new Set([...runtime.keys(), ...[...declared.keys()].filter((k) => !excluded(k))]);
    const items: SysctlItem[] = [...keys]
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      .map((key) => {
        const d = declared.get(key);
        return { key, runtime: runtime.get(key) ?? null, declared: d?.value ?? null, declaredIn: d?.file ?? null };
      });
    return { items, warnings };
  },
};
