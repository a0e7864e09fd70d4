/**
 * @module A unit's enablement as `systemctl is-enabled` names it, worked out the way systemd's
 * install.c does (unit_file_lookup_state, find_symlinks_in_scope, find_symlinks_in_directory) from a
 * description of the unit search path: pure, so the rules are tested with plain data and the
 * collector only gathers the directory listings.
 */
import type { UnitFileState } from '../../shared/schema/items.js';
import type { UnitAssignment } from './systemd-timer.js';

/** The [Install] section of a unit, as `systemctl enable` reads it: the unit file, then its drop-ins. */
export interface InstallSection {
  wantedBy: string[];
  requiredBy: string[];
  upheldBy: string[];
  alias: string[];
  also: string[];
  defaultInstance: string | null;
}

/** Folds [Install] assignments: the list settings split on blanks and accumulate, an empty one resets (config_parse_strv); DefaultInstance= is last-wins. */
export function installSection(assignments: readonly UnitAssignment[]): InstallSection {
  const lists: Record<'WantedBy' | 'RequiredBy' | 'UpheldBy' | 'Alias' | 'Also', string[]> = {
    WantedBy: [],
    RequiredBy: [],
    UpheldBy: [],
    Alias: [],
    Also: [],
  };
  let defaultInstance: string | null = null;
  for (const a of assignments) {
    if (a.section !== 'Install') continue;
    if (a.key === 'DefaultInstance') defaultInstance = a.value === '' ? null : a.value;
    else if (a.key in lists) {
      const list = lists[a.key as keyof typeof lists];
      if (a.value === '') list.length = 0;
      else list.push(...a.value.split(/[ \t\n\r]+/).filter(Boolean));
    }
  }
  return {
    wantedBy: lists.WantedBy,
    requiredBy: lists.RequiredBy,
    upheldBy: lists.UpheldBy,
    alias: lists.Alias,
    also: lists.Also,
    defaultInstance,
  };
}

/** One directory of the unit search path, as systemd names it, with the links that can enable a unit. */
export interface SearchDir {
  path: string;
  /** Names of the symlinks inside its `*.wants`, `*.requires` and `*.upholds` subdirectories (real directories only, as systemd reads them). */
  wantsLinks: readonly string[];
  /** The symlinks directly in it, with the file name of what each points to. */
  links: readonly { name: string; target: string }[];
}

export interface FoundUnit {
  /** The name asked about (`foo.timer`, `foo@.timer`). */
  name: string;
  /** The search directory whose entry of that name systemd uses. */
  dir: string;
  /** The unit file it finally leads to (a same-name symlink's target), systemd's info->path. */
  path: string;
  /** Linked to /dev/null, an empty file or the null device. */
  masked: boolean;
  /** The entry is a symlink to a unit of another name. */
  aliasOf: string | null;
  install: InstallSection;
}

const CONFIG_DIR = '/etc/systemd/system';
const GENERATOR_DIRS: ReadonlySet<string> = new Set([
  '/run/systemd/generator.early',
  '/run/systemd/generator',
  '/run/systemd/generator.late',
]);
const TRANSIENT_DIR = '/run/systemd/transient';

/** Everything under /run is runtime (path_is_runtime). */
const isRuntime = (path: string) => path === '/run' || path.startsWith('/run/');
const parentOf = (path: string) => path.slice(0, Math.max(path.lastIndexOf('/'), 1));

/** `foo@bar.timer` → `foo@.timer`; null for a name that is not an instance. */
export function templateOf(name: string): string | null {
  const m = /^([^@/]+)@([^@/]+)(\.[a-z]+)$/.exec(name);
  return m ? `${m[1]}@${m[3]}` : null;
}
const isInstance = (name: string) => templateOf(name) !== null;
const isTemplate = (name: string) => /^[^@/]+@\.[a-z]+$/.test(name);

/** Whether a link's name is one `systemctl enable` of this unit would create (is_symlink_with_known_name). Alias= specifiers are not expanded. */
function knownName(unit: FoundUnit, link: string): boolean {
  if (link === unit.name || unit.install.alias.includes(link)) return true;
  if (unit.install.defaultInstance !== null && isTemplate(unit.name))
    return link === unit.name.replace('@.', `@${unit.install.defaultInstance}.`);
  return false;
}

/** find_symlinks for one directory: a link that enables the unit (`found`), or a same-name link to it (`sameName`, which makes it "linked"). */
function findSymlinks(
  unit: FoundUnit,
  dir: SearchDir,
  matchName: boolean,
  ignoreSameName: boolean,
): { found: boolean; sameName: boolean } {
  // In .wants/.requires/.upholds only the link's own name counts (ignore_destination): the unit's name, or an instance of it.
  for (const link of dir.wantsLinks) {
    if (link !== unit.name && templateOf(link) !== unit.name) continue;
    if (!matchName || knownName(unit, link)) return { found: true, sameName: false };
  }
  let sameName = false;
  for (const { name, target } of dir.links) {
    const foundDest = target === unit.name;
    const foundPath = !ignoreSameName && name === unit.name;
    if (foundPath && foundDest) sameName = true;
    else if ((foundPath || foundDest) && (!matchName || knownName(unit, name))) return { found: true, sameName };
  }
  return { found: false, sameName };
}

/** find_symlinks_in_scope: where in the search path the unit is linked from, as a state, or null when nowhere that counts. */
function linkedState(unit: FoundUnit, search: readonly SearchDir[], matchName: boolean): UnitFileState | null {
  let sameNameConfig = false;
  let sameNameRuntime = false;
  let enabledRuntime = false;
  let enabledElsewhere = false;
  let ignoreSameName = false;
  for (const dir of search) {
    const r = findSymlinks(unit, dir, matchName, ignoreSameName);
    if (r.found) {
      // A link under /etc is the best outcome: systemd stops looking.
      if (dir.path === CONFIG_DIR) return 'enabled';
      if (isRuntime(dir.path)) enabledRuntime = true;
      else enabledElsewhere = true;
    } else if (r.sameName) {
      if (dir.path === CONFIG_DIR) sameNameConfig = true;
      else if (isRuntime(dir.path)) sameNameRuntime = true;
    }
    // Same-name links below the unit file itself are masked by it.
    if (!ignoreSameName && unit.path.startsWith(`${dir.path}/`)) ignoreSameName = true;
  }
  if (enabledRuntime) return 'enabled-runtime';
  // An instance linked from a vendor directory (usr/lib/.../*.wants) is "statically enabled"; a plain name linked there is not.
  if (enabledElsewhere && isInstance(unit.name)) return 'static';
  if (sameNameConfig) return 'linked';
  if (sameNameRuntime) return 'linked-runtime';
  return null;
}

/** unit_file_lookup_state: the name `systemctl is-enabled` prints for the unit. */
export function unitFileState(unit: FoundUnit, search: readonly SearchDir[]): UnitFileState {
  if (unit.masked) return isRuntime(unit.dir) ? 'masked-runtime' : 'masked';
  if (unit.aliasOf !== null && unit.aliasOf !== unit.name && !isInstance(unit.name)) return 'alias';
  const home = parentOf(unit.path);
  if (GENERATOR_DIRS.has(home)) return 'generated';
  if (home === TRANSIENT_DIR) return 'transient';
  const linked = linkedState(unit, search, true);
  if (linked !== null) return linked;
  // Known under names `systemctl enable` would not create (another alias, a non-default instance): in use, indirectly.
  if (linkedState(unit, search, false) !== null) return 'indirect';
  const { wantedBy, requiredBy, upheldBy, alias, also } = unit.install;
  if (wantedBy.length + requiredBy.length + upheldBy.length + alias.length > 0) return 'disabled';
  return also.length > 0 ? 'indirect' : 'static';
}
