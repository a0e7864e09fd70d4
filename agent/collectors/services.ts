/**
 * @module systemd units other than timers (cron has those): each unit's enablement as `systemctl
 * is-enabled` names it, worked out from the symlinks in systemd's unit search path (so a unit enabled,
 * disabled or masked by hand shows), the unit file and its drop-ins by content hash, and preset files.
 */
import { promises as fsp } from 'node:fs';
import { posix } from 'node:path';
import { sha256Hex } from '../../shared/canonical.js';
import { DwParseError } from '../../shared/errors.js';
import type { ServiceItem } from '../../shared/schema/items.js';
import { parseUnitFile, type UnitAssignment } from '../parsers/systemd-timer.js';
import { installSection, unitFileState, type SearchDir } from '../parsers/unit-file-state.js';
import type { HostRoot } from '../root.js';
import { UNIT_DIRS } from './cron.js';
import type { Collector } from './types.js';

/** Unit types with enablement; timers are the cron collector's. */
const UNIT_NAME = /^[^/]+\.(service|socket|target|path|mount|automount|swap|slice)$/;
const LINK_DIR = /\.(wants|requires|upholds)$/;
const PRESET_DIRS = [
  '/etc/systemd/system-preset',
  '/run/systemd/system-preset',
  '/usr/local/lib/systemd/system-preset',
  '/usr/lib/systemd/system-preset',
  '/lib/systemd/system-preset',
];
/** Unit files are a few KiB; a larger one is hashed but not parsed. */
const MAX_PARSE_BYTES = 1024 * 1024;
const EMPTY_SHA256 = sha256Hex('');
const READ_AHEAD = 16;

interface Dir {
  /** As systemd names it. */
  path: string;
  /** Where it resolved inside the root (merged /usr: /lib/systemd/system is /usr/lib/systemd/system). */
  dir: string;
  names: Set<string>;
  entries: Awaited<ReturnType<HostRoot['readdir']>>;
}

const join = (dir: string, name: string) => `${dir}/${name}`;
const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

async function isDevNullLink(root: HostRoot, hostPath: string): Promise<boolean> {
  const st = await root.lstat(hostPath);
  if (!st?.isSymbolicLink()) return false;
  const target = await fsp.readlink(root.path(hostPath));
  return posix.normalize(target.startsWith('/') ? target : posix.join(posix.dirname(hostPath), target)) === '/dev/null';
}

async function listDirs(root: HostRoot, paths: readonly string[]): Promise<Dir[]> {
  const dirs: Dir[] = [];
  for (const path of paths) {
    const dir = await root.resolveInside(path);
    if (dir === null || dirs.some((d) => d.dir === dir)) continue;
    const st = await root.lstat(dir);
    if (!st?.isDirectory()) continue;
    const entries = await root.readdir(dir);
    dirs.push({ path, dir, names: new Set(entries.map((e) => e.name)), entries });
  }
  return dirs;
}

async function searchDirs(root: HostRoot, dirs: Dir[]): Promise<SearchDir[]> {
  const out: SearchDir[] = [];
  for (const d of dirs) {
    const wantsLinks: string[] = [];
    const links: { name: string; target: string }[] = [];
    for (const e of d.entries) {
      if (e.isDirectory() && LINK_DIR.test(e.name)) {
        for (const inner of await root.readdir(join(d.dir, e.name)))
          if (inner.isSymbolicLink()) wantsLinks.push(inner.name);
      } else if (e.isSymbolicLink()) {
        links.push({ name: e.name, target: posix.basename(await fsp.readlink(root.path(join(d.dir, e.name)))) });
      }
    }
    out.push({ path: d.path, wantsLinks, links });
  }
  return out;
}

/**
 * Drop-in files in systemd's order (dropin.c): for each name of the unit (its own, the unit it aliases,
 * its Alias= names: systemd loads a unit's drop-ins under all of them), `<name>.d` and the dash
 * prefixes (`foo-.service.d`), then the type-wide `<type>.d`; of files with the same name the first
 * found wins, and the winners apply sorted by name.
 */
async function dropInsOf(root: HostRoot, names: readonly string[], dirs: Dir[]): Promise<string[]> {
  const specific: string[] = [];
  let type = '';
  for (const name of names) {
    const dot = name.lastIndexOf('.');
    type = name.slice(dot + 1);
    const stem = name.slice(0, dot).replace(/@$/, '');
    specific.push(`${name}.d`);
    for (let i = stem.lastIndexOf('-'); i > 0; i = stem.lastIndexOf('-', i - 1))
      specific.push(`${stem.slice(0, i)}-.${type}.d`);
  }
  const order: string[] = [];
  for (const { dir, names: present } of dirs)
    for (const s of new Set(specific)) if (present.has(s)) order.push(join(dir, s));
  for (const { dir, names: present } of dirs) if (present.has(`${type}.d`)) order.push(join(dir, `${type}.d`));
  const byName = new Map<string, string>();
  for (const d of order)
    for (const e of await root.readdir(d))
      if (e.name.endsWith('.conf') && !byName.has(e.name)) byName.set(e.name, join(d, e.name));
  return [...byName.keys()].sort(byString).map((f) => byName.get(f)!);
}

async function unit(root: HostRoot, name: string, home: Dir, dirs: Dir[], search: SearchDir[]): Promise<ServiceItem> {
  const file = join(home.dir, name);
  // Most units are plain files: one lstat; only links take the slower way through resolveInside.
  const own = await root.lstat(file);
  const isLink = own?.isSymbolicLink() ?? false;
  const devNull = isLink && (await isDevNullLink(root, file));
  const st = devNull ? null : isLink ? await root.statInside(file) : own;
  const masked = devNull || st === null || (st.isFile() && st.size === 0) || st.isCharacterDevice();
  let aliasOf: string | null = null;
  let resolved = join(home.path, name);
  if (isLink && !devNull) {
    aliasOf = posix.basename(await fsp.readlink(root.path(file)));
    resolved = (await root.resolveInside(file)) ?? resolved;
  }
  const state = (assignments: UnitAssignment[]) =>
    unitFileState(
      { name, dir: home.path, path: resolved, masked, aliasOf, install: installSection(assignments) },
      search,
    );
  if (masked) return { key: name, kind: 'unit', path: resolved, state: state([]), sha256: EMPTY_SHA256 };
  if (!st.isFile()) return { key: name, kind: 'unit', path: resolved, error: 'not a regular file' };
  const bytes = await root.readFile(resolved);
  const sha256 = sha256Hex(bytes);
  const dropIns: { path: string; sha256: string }[] = [];
  const assignments: UnitAssignment[] = [];
  try {
    if (bytes.length <= MAX_PARSE_BYTES) assignments.push(...parseUnitFile(bytes.toString('utf8'), resolved));
    const names = [...new Set([name, ...(aliasOf !== null ? [aliasOf] : []), ...installSection(assignments).alias])];
    for (const path of await dropInsOf(root, names, dirs)) {
      if (await isDevNullLink(root, path)) {
        dropIns.push({ path, sha256: EMPTY_SHA256 });
        continue;
      }
      const d = await root.readFile(path);
      dropIns.push({ path, sha256: sha256Hex(d) });
      if (d.length <= MAX_PARSE_BYTES) assignments.push(...parseUnitFile(d.toString('utf8'), path));
    }
  } catch (err) {
    if (!(err instanceof DwParseError)) throw err;
    return {
      key: name,
      kind: 'unit',
      path: resolved,
      sha256,
      ...(dropIns.length > 0 ? { dropIns } : {}),
      error: err.message,
    };
  }
  return {
    key: name,
    kind: 'unit',
    path: resolved,
    state: state(assignments),
    sha256,
    ...(dropIns.length > 0 ? { dropIns } : {}),
  };
}

export const services: Collector<'services'> = {
  name: 'services',
  async collect(ctx) {
    const { root } = ctx;
    const items: ServiceItem[] = [];
    const dirs = await listDirs(root, UNIT_DIRS);
    const homes = new Map<string, Dir>();
    for (const d of dirs) for (const n of d.names) if (UNIT_NAME.test(n) && !homes.has(n)) homes.set(n, d);
    const search = await searchDirs(root, dirs);
    // A few units read at once: each is a handful of small reads, and the thread pool overlaps them.
    const names = [...homes.keys()].sort(byString);
    for (let i = 0; i < names.length; i += READ_AHEAD) {
      items.push(
        ...(await Promise.all(names.slice(i, i + READ_AHEAD).map((n) => unit(root, n, homes.get(n)!, dirs, search)))),
      );
    }
    for (const d of await listDirs(root, PRESET_DIRS)) {
      for (const e of d.entries) {
        if (!e.name.endsWith('.preset')) continue;
        const path = join(d.dir, e.name);
        if (items.some((i) => i.key === `preset:${path}`)) continue;
        const st = await root.statInside(path);
        if (!st?.isFile()) continue;
        items.push({ key: `preset:${path}`, kind: 'preset', path, sha256: sha256Hex(await root.readFile(path)) });
      }
    }
    return { items: items.sort((a, b) => byString(a.key, b.key)), warnings: [] };
  },
};
