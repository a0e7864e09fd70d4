/** @module Scheduled jobs: system and user crontabs, anacrontab, run-parts script directories and systemd timers. */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp, type Dirent, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { sha256Hex } from '../../shared/canonical.js';
import { DwParseError, describeError } from '../../shared/errors.js';
import type { CronItem } from '../../shared/schema/items.js';
import type { Logger } from '../log.js';
import type { HostRoot } from '../root.js';
import { parseAnacrontab } from '../parsers/anacrontab.js';
import { claimKey, parseCrontab } from '../parsers/crontab.js';
import { parseUnitFile, timerSettings, type UnitAssignment } from '../parsers/systemd-timer.js';
import { installSection, unitFileState, type SearchDir } from '../parsers/unit-file-state.js';
import type { Collector } from './types.js';
import { hostText } from '../host-text.js';

/*
 * Item keys (identity is "which file, which job"):
 *   entry        `<file> <command>`    crontab jobs, ` #2`, ` #3` for repeats of a command in one file,
 *                                      so a new schedule, user or stdin is a modification of the job;
 *   entry        `<file> <job-id>`     anacrontab jobs, by anacron's own job identifier;
 *   env          `<file> env <NAME>`   environment settings, numbered the same way when repeated;
 *   script       `<host path>`         files kept by content hash and mode: run-parts scripts, and the
 *                                      files in cron directories that cron skips (see CRON_D_NAME);
 *   timer        `<host path>`         the unit file systemd uses for a *.timer name, with its effective
 *                                      [Timer] settings after drop-ins; a masked one (link to /dev/null,
 *                                      empty file) has `timer: { masked: 'yes' }` and the empty hash;
 *                                      `state` is its enablement as `systemctl is-enabled` prints it;
 *   unparseable  `<host path>`         a file that failed to parse or to read, with the reason.
 * Every key is claimed through one set, so even a command that reads `env PATH`, or a user crontab
 * whose name has a space, cannot collide with another item: it gets the next ` #n`.
 */

const SYSTEM_CRONTAB = '/etc/crontab';
const CRON_D = '/etc/cron.d';
/**
 * User crontabs, named after their owner: Debian's spool, SUSE's, and RHEL's, which is the parent
 * of the other two (so its subdirectories are skipped: on Debian it holds crontabs/, atjobs/, ...).
 * Alpine links var/spool/cron/crontabs to etc/crontabs, which the in-root resolution follows.
 */
const USER_SPOOLS = ['/var/spool/cron/crontabs', '/var/spool/cron/tabs', '/var/spool/cron'];
const ANACRONTAB = '/etc/anacrontab';
const RUN_PARTS_DIRS = ['/etc/cron.hourly', '/etc/cron.daily', '/etc/cron.weekly', '/etc/cron.monthly'];
/**
 * systemd's unit search path for the system manager, highest priority first (path-lookup.c; the list
 * `systemd-analyze unit-paths` prints): a name found in an earlier directory masks the same name in
 * later ones, and every one of them may hold the *.wants/*.requires links that enable a unit and the
 * drop-ins that change it. The /run ones hold runtime state (`systemctl enable --runtime`, transient
 * timers from `systemd-run --on-calendar`, generator output): a live host's, recorded like the rest.
 * /lib/systemd/system comes before /usr/lib/systemd/system as in Debian's build (its
 * SYSTEM_DATA_UNIT_DIR is /lib/systemd/system; upstream reads /lib only for split-usr images, and
 * last): only a Debian-family root that never merged /usr has the two apart, and there the same name
 * in both means the /lib one. On a merged-/usr host /lib links to usr/lib and it is read once.
 */
export const UNIT_DIRS = [
  '/etc/systemd/system.control',
  '/run/systemd/system.control',
  '/run/systemd/transient',
  '/run/systemd/generator.early',
  '/etc/systemd/system',
  '/etc/systemd/system.attached',
  '/run/systemd/system',
  '/run/systemd/system.attached',
  '/run/systemd/generator',
  '/usr/local/lib/systemd/system',
  '/lib/systemd/system',
  '/usr/lib/systemd/system',
  '/run/systemd/generator.late',
];
/** The subdirectories whose links pull a unit in (find_symlinks reads these three). */
const LINK_DIR = /\.(wants|requires|upholds)$/;

/**
 * Debian's cron reads only /etc/cron.d files named like run-parts' default rule (letters, digits,
 * `_` and `-`), so that the .dpkg-old/.dpkg-dist/.dpkg-new copies dpkg leaves, editor backups (`~`,
 * `.swp`, `#...#`) and `.placeholder` are never run (cron(8), DEBIAN SPECIFIC; `cron -l` swaps in
 * the stricter LSB names, an opt-in left aside here). cronie is laxer
 * (it skips only dot files, `#...`, `...~` and `.rpmsave/.rpmorig/.rpmnew`), so `backup.sh` runs on
 * RHEL. Either way a skipped file is not thrown away: it is kept as a `script` item by content
 * hash, so dropping or editing one is still drift, without claiming its lines as jobs.
 */
const CRON_D_NAME = /^[A-Za-z0-9_-]+$/;

/** A crontab, timer or drop-in larger than this is hashed but not parsed; real ones are a few KiB. */
const MAX_PARSE_BYTES = 1024 * 1024;

const EMPTY_SHA256 = sha256Hex('');

type Loaded =
  | { status: 'missing' }
  | { status: 'file'; st: Stats; sha256: string; bytes: Buffer | null }
  | { status: 'dir' }
  | { status: 'other'; st: Stats }
  | { status: 'error'; error: string };

function join(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function modeOf(st: Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

function typeOf(st: Stats): string {
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'special file';
}

function errorText(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? describeError(err);
}

function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function hashStream(realPath: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(realPath)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** One directory of the unit search path as read: `path` as systemd names it, `dir` where it resolved inside the root. */
interface UnitDir {
  path: string;
  dir: string;
  names: Set<string>;
  entries: Dirent[];
}

class Scan {
  readonly items: CronItem[] = [];
  readonly warnings: string[] = [];
  private readonly taken = new Set<string>();
  /** Drop-ins shared by several timers (timer.d/) are recorded once. */
  private readonly recorded = new Set<string>();

  constructor(
    private readonly root: HostRoot,
    private readonly log: Logger,
  ) {}

  add(item: CronItem): void {
    this.items.push({ ...item, key: claimKey(this.taken, item.key) });
  }

  warn(message: string): void {
    this.log.debug({ warning: message }, 'cron source degraded');
    this.warnings.push(message);
  }

  /** A directory's entries, with the directory's own symlinks resolved inside the root; null when absent. */
  async list(hostDir: string): Promise<{ dir: string; names: string[]; entries: Dirent[] } | null> {
    try {
      const dir = await this.root.resolveInside(hostDir);
      if (dir === null) return null;
      const st = await this.root.lstat(dir);
      if (st === null) return null;
      if (!st.isDirectory()) {
        this.warn(`${hostDir}: not a directory, skipped`);
        return null;
      }
      const entries = await this.root.readdir(dir);
      return { dir, names: entries.map((e) => e.name), entries };
    } catch (err) {
      this.warn(`${hostDir}: ${errorText(err)}, skipped`);
      return null;
    }
  }

  /**
   * Read one file, following symlinks only inside the root. A name that does not exist is
   * `missing`; one that exists but leads nowhere (dangling, looping, unreadable) is an `error`.
   */
  async load(hostPath: string): Promise<Loaded> {
    try {
      const parent = await this.root.resolveInside(posix.dirname(hostPath));
      if (parent === null) return { status: 'missing' };
      const own = join(parent, posix.basename(hostPath));
      if ((await this.root.lstat(own)) === null) return { status: 'missing' };
      const source = await this.root.resolveInside(own);
      const st = source === null ? null : await this.root.lstat(source);
      if (source === null || st === null) return { status: 'error', error: 'dangling or looping symlink' };
      if (st.isDirectory()) return { status: 'dir' };
      if (!st.isFile()) return { status: 'other', st };
      if (st.size > MAX_PARSE_BYTES)
        return { status: 'file', st, sha256: await hashStream(this.root.path(source)), bytes: null };
      const bytes = await this.root.readFile(source);
      return { status: 'file', st, sha256: sha256Hex(bytes), bytes };
    } catch (err) {
      return { status: 'error', error: errorText(err) };
    }
  }

  /** Whether a name is a symlink to /dev/null, systemd's way of masking; checked before resolving, since an image root rarely has a dev/null. */
  async isDevNullLink(hostPath: string): Promise<boolean> {
    try {
      const st = await this.root.lstat(hostPath);
      if (!st?.isSymbolicLink()) return false;
      const target = await fsp.readlink(this.root.path(hostPath));
      const abs = target.startsWith('/')
        ? posix.normalize(target)
        : posix.normalize(posix.join(posix.dirname(hostPath), target));
      return abs === '/dev/null';
    } catch {
      return false;
    }
  }

  unparseable(hostPath: string, error: string, sha256?: string): void {
    const item: CronItem = { key: hostPath, kind: 'unparseable', file: hostPath, error };
    if (sha256 !== undefined) item.sha256 = sha256;
    this.add(item);
    this.warn(`${error.startsWith(hostPath) ? error : `${hostPath}: ${error}`}; recorded as unparseable`);
  }

  /** Anything that is not a readable regular file is still recorded, so its appearance is drift. */
  private notAFile(hostPath: string, loaded: Exclude<Loaded, { status: 'file' } | { status: 'missing' }>): void {
    if (loaded.status === 'error') this.unparseable(hostPath, `cannot read: ${loaded.error}`);
    else if (loaded.status === 'other') this.unparseable(hostPath, `not a regular file (${typeOf(loaded.st)})`);
    else this.unparseable(hostPath, 'a directory where a file was expected');
  }

  script(hostPath: string, loaded: Loaded): void {
    if (loaded.status === 'missing') return;
    if (loaded.status !== 'file') return this.notAFile(hostPath, loaded);
    this.add({ key: hostPath, kind: 'script', file: hostPath, sha256: loaded.sha256, mode: modeOf(loaded.st) });
  }

  /** Parse a loaded file with `parse`; a file that will not parse is kept whole as `unparseable`, and the rest of the section goes on. */
  parsed(hostPath: string, loaded: Loaded, parse: (text: string) => CronItem[]): void {
    if (loaded.status === 'missing') return;
    if (loaded.status !== 'file') return this.notAFile(hostPath, loaded);
    if (loaded.bytes === null)
      return this.unparseable(hostPath, `larger than ${MAX_PARSE_BYTES} bytes, not parsed`, loaded.sha256);
    let items: CronItem[];
    try {
      items = parse(hostText(loaded.bytes));
    } catch (err) {
      if (!(err instanceof DwParseError)) throw err;
      return this.unparseable(hostPath, err.message, loaded.sha256);
    }
    for (const item of items) this.add(item);
  }

  async systemCrontabs(): Promise<void> {
    this.parsed(SYSTEM_CRONTAB, await this.load(SYSTEM_CRONTAB), (text) =>
      parseCrontab(text, { file: SYSTEM_CRONTAB, hasUserField: true }),
    );
    const listing = await this.list(CRON_D);
    if (listing === null) return;
    for (const name of listing.names) {
      const path = join(listing.dir, name);
      const loaded = await this.load(path);
      if (loaded.status === 'dir') {
        this.warn(`${path}: a directory in cron.d, which cron does not read, skipped`);
        continue;
      }
      if (!CRON_D_NAME.test(name)) this.script(path, loaded);
      else this.parsed(path, loaded, (text) => parseCrontab(text, { file: path, hasUserField: true }));
    }
  }

  async userCrontabs(): Promise<void> {
    const seen = new Set<string>();
    for (const spool of USER_SPOOLS) {
      const listing = await this.list(spool);
      if (listing === null || seen.has(listing.dir)) continue;
      seen.add(listing.dir);
      for (const name of listing.names) {
        const path = join(listing.dir, name);
        const loaded = await this.load(path);
        if (loaded.status === 'dir') continue;
        // cron skips dot files in the spool (no user name starts with one); kept by content like cron.d's skipped files.
        if (name.startsWith('.')) this.script(path, loaded);
        else this.parsed(path, loaded, (text) => parseCrontab(text, { file: path, hasUserField: false, user: name }));
      }
    }
  }

  async anacrontab(): Promise<void> {
    this.parsed(ANACRONTAB, await this.load(ANACRONTAB), (text) => parseAnacrontab(text, ANACRONTAB));
  }

  /**
   * Every regular file in the run-parts directories, by content and mode. run-parts runs only
   * executable files with names like CRON_D_NAME, but a script dropped there without the x bit or
   * with a dot is still a change someone made to a scheduled directory.
   */
  async scripts(): Promise<void> {
    for (const hostDir of RUN_PARTS_DIRS) {
      const listing = await this.list(hostDir);
      if (listing === null) continue;
      for (const name of listing.names) {
        const path = join(listing.dir, name);
        const loaded = await this.load(path);
        if (loaded.status === 'dir') this.warn(`${path}: a directory, which run-parts does not enter, skipped`);
        else this.script(path, loaded);
      }
    }
  }

  async timers(): Promise<void> {
    const dirs: UnitDir[] = [];
    for (const hostDir of UNIT_DIRS) {
      const listing = await this.list(hostDir);
      if (listing !== null && !dirs.some((d) => d.dir === listing.dir))
        dirs.push({ path: hostDir, dir: listing.dir, names: new Set(listing.names), entries: listing.entries });
    }
    const units = new Map<string, UnitDir>();
    for (const d of dirs) {
      for (const name of d.names) if (name.endsWith('.timer') && !units.has(name)) units.set(name, d);
    }
    if (units.size === 0) return;
    const search = await this.searchDirs(dirs);
    for (const name of [...units.keys()].sort(byString)) await this.timer(name, units.get(name)!, dirs, search);
  }

  /** The links of every search directory that can enable a unit, for unitFileState. */
  private async searchDirs(dirs: UnitDir[]): Promise<SearchDir[]> {
    const out: SearchDir[] = [];
    for (const d of dirs) {
      const wantsLinks: string[] = [];
      const links: { name: string; target: string }[] = [];
      for (const e of d.entries) {
        // systemd reads only real directories here (a linked .wants directory is skipped) and only the symlinks in them.
        if (e.isDirectory() && LINK_DIR.test(e.name)) {
          try {
            for (const inner of await this.root.readdir(join(d.dir, e.name)))
              if (inner.isSymbolicLink()) wantsLinks.push(inner.name);
          } catch (err) {
            this.warn(`${join(d.dir, e.name)}: ${errorText(err)}, skipped`);
          }
        } else if (e.isSymbolicLink()) {
          try {
            links.push({
              name: e.name,
              target: posix.basename(await fsp.readlink(this.root.path(join(d.dir, e.name)))),
            });
          } catch (err) {
            this.warn(`${join(d.dir, e.name)}: ${errorText(err)}, skipped`);
          }
        }
      }
      out.push({ path: d.path, wantsLinks, links });
    }
    return out;
  }

  private async timer(name: string, home: UnitDir, dirs: UnitDir[], search: SearchDir[]): Promise<void> {
    const path = join(home.dir, name);
    const devNull = await this.isDevNullLink(path);
    const loaded = devNull ? null : await this.load(path);
    // systemd treats a link to /dev/null, the device itself and an empty unit file alike: masked.
    const masked =
      loaded === null ||
      (loaded.status === 'file' && loaded.st.size === 0) ||
      (loaded.status === 'other' && loaded.st.isCharacterDevice());
    const found = async (install: ReturnType<typeof installSection>) => {
      // The unit as systemd's info->path sees it: a same-name link leads to its target; a link to another name is an alias.
      const own = await this.root.lstat(path);
      let target: string | null = null;
      let resolved = `${home.path}/${name}`;
      if (own?.isSymbolicLink() && !devNull) {
        target = posix.basename(await fsp.readlink(this.root.path(path)));
        resolved = (await this.root.resolveInside(path)) ?? resolved;
      }
      return unitFileState({ name, dir: home.path, path: resolved, masked, aliasOf: target, install }, search);
    };
    if (masked) {
      this.add({
        key: path,
        kind: 'timer',
        file: path,
        timer: { masked: 'yes' },
        sha256: EMPTY_SHA256,
        state: await found(installSection([])),
      });
      return;
    }
    if (loaded.status === 'missing') return;
    if (loaded.status !== 'file') return this.notAFile(path, loaded);
    if (loaded.bytes === null)
      return this.unparseable(path, `larger than ${MAX_PARSE_BYTES} bytes, not parsed`, loaded.sha256);
    let assignments: UnitAssignment[];
    try {
      assignments = parseUnitFile(hostText(loaded.bytes), path);
    } catch (err) {
      if (!(err instanceof DwParseError)) throw err;
      return this.unparseable(path, err.message, loaded.sha256);
    }
    for (const dropIn of await this.dropIns(name, dirs)) {
      const more = await this.dropIn(dropIn);
      // systemd refuses to load a unit when any of its drop-ins will not parse: the timer no longer runs.
      if (typeof more === 'string') return this.unparseable(path, `drop-in ${more}`, loaded.sha256);
      assignments.push(...more);
    }
    // [Install] is read after the drop-ins too: one adding WantedBy= turns a static timer into a disabled one.
    const state = await found(installSection(assignments));
    this.add({ key: path, kind: 'timer', file: path, timer: timerSettings(assignments), sha256: loaded.sha256, state });
  }

  /**
   * The drop-in files systemd applies to a timer, in the order it applies them (dropin.c):
   * directories `<name>.d`, then the dash prefixes of the name (`foo-.timer.d` for `foo-bar.timer`),
   * in every unit directory by priority, then the type-wide `timer.d`; of files with the same name
   * the first found wins, and the winners apply sorted by name.
   */
  private async dropIns(name: string, dirs: UnitDir[]): Promise<string[]> {
    const stem = name.slice(0, -'.timer'.length).replace(/@$/, '');
    const specific = [`${name}.d`];
    for (let i = stem.lastIndexOf('-'); i > 0; i = stem.lastIndexOf('-', i - 1))
      specific.push(`${stem.slice(0, i)}-.timer.d`);
    const order: string[] = [];
    for (const { dir, names } of dirs) for (const d of specific) if (names.has(d)) order.push(join(dir, d));
    for (const { dir, names } of dirs) if (names.has('timer.d')) order.push(join(dir, 'timer.d'));
    const byName = new Map<string, string>();
    for (const d of order) {
      const listing = await this.list(d);
      for (const f of listing?.names ?? [])
        if (f.endsWith('.conf') && !byName.has(f)) byName.set(f, join(listing!.dir, f));
    }
    return [...byName.keys()].sort(byString).map((f) => byName.get(f)!);
  }

  /**
   * A drop-in's assignments, or why it cannot be used. The file itself is recorded once (a
   * type-wide drop-in serves every timer), as a `script` by content, so adding or editing one is
   * drift of its own besides the settings it changes.
   */
  private async dropIn(path: string): Promise<UnitAssignment[] | string> {
    const first = !this.recorded.has(path);
    this.recorded.add(path);
    if (await this.isDevNullLink(path)) {
      // A masked drop-in has no content and no mode of its own, only its name, which masks lower ones.
      if (first) this.add({ key: path, kind: 'script', file: path, sha256: EMPTY_SHA256 });
      return [];
    }
    const loaded = await this.load(path);
    if (loaded.status === 'missing') return [];
    if (loaded.status !== 'file' || loaded.bytes === null) {
      // Not a readable file of sane size: recorded as unparseable; systemd would skip or fail on it.
      if (first) this.parsed(path, loaded, () => []);
      return `${path} cannot be read`;
    }
    try {
      const assignments = parseUnitFile(hostText(loaded.bytes), path);
      if (first) this.script(path, loaded);
      return assignments;
    } catch (err) {
      if (!(err instanceof DwParseError)) throw err;
      if (first) this.unparseable(path, err.message, loaded.sha256);
      return err.message;
    }
  }
}

export const cron: Collector<'cron'> = {
  name: 'cron',
  async collect(ctx) {
    const scan = new Scan(ctx.root, ctx.log.child({ collector: 'cron' }));
    await scan.systemCrontabs();
    await scan.userCrontabs();
    await scan.anacrontab();
    await scan.scripts();
    await scan.timers();
    const items = [...scan.items].sort((a, b) => byString(a.key, b.key));
    return { items, warnings: scan.warnings };
  },
};
