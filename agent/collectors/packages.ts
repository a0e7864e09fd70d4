/** @module The packages collector: what dpkg, rpm and apk say is installed under the root. */
import { posix } from 'node:path';
import { DwError, describeError, isDwError } from '../../shared/errors.js';
import type { PackageItem } from '../../shared/schema/items.js';
import { parseApkInstalled } from '../parsers/apk.js';
import { parseDpkgStatus } from '../parsers/dpkg.js';
import { byKey } from '../parsers/package-items.js';
import { RPM_QUERY_FORMAT, parseRpmQuery } from '../parsers/rpm.js';
import type { HostRoot } from '../root.js';
import type { CollectContext, Collector } from './types.js';

const DPKG_STATUS = '/var/lib/dpkg/status';
/**
 * Distroless images have no dpkg, hence no status file: their builders write one file per package
 * here instead (sometimes with a `<package>.md5sums` beside it), which scanners read the same way.
 */
const DPKG_STATUS_D = '/var/lib/dpkg/status.d';

/**
 * Fedora 36+ and RHEL 10 keep the database under /usr (with var/lib/rpm a symlink to it); older
 * systems keep it in var/lib/rpm. The current location comes first: if both hold a database, the
 * other is a leftover of the move.
 */
const RPM_DBPATHS = ['/usr/lib/sysimage/rpm', '/var/lib/rpm'];
/** A directory is an rpm database when it holds one of these: sqlite (Fedora 33+, RHEL 9+), Berkeley DB (older), ndb (SUSE). */
const RPM_DB_FILES = ['rpmdb.sqlite', 'Packages', 'Packages.db'];

/** apk-tools 3 on a usr-merged system writes under /usr/lib; everywhere else (and via a /lib symlink) it is /lib. */
const APK_INSTALLED = ['/lib/apk/db/installed', '/usr/lib/apk/db/installed'];

export const packages: Collector<'packages'> = {
  name: 'packages',
  async collect(ctx) {
    const warnings: string[] = [];
    const found = [
      ...(await collectDpkg(ctx, warnings)),
      ...(await collectRpm(ctx, warnings)),
      ...(await collectApk(ctx.root, warnings)),
    ];
    return { items: separateManagers(found, warnings), warnings };
  },
};

/**
 * Reads a file following symlinks the way the host would (inside the root, never out of it: an
 * absolute link in a mounted image must not read this machine's file). Null when absent.
 */
async function readInside(root: HostRoot, hostPath: string): Promise<string | null> {
  const real = await root.resolveInside(hostPath);
  if (real === null) return null;
  const st = await root.lstat(real);
  if (st === null) return null;
  if (!st.isFile()) throw new DwError('DW_ERR_IO', `${hostPath} is not a regular file`, { path: hostPath });
  return root.readText(real);
}

async function collectDpkg(ctx: CollectContext, warnings: string[]): Promise<PackageItem[]> {
  const { root } = ctx;
  // A broken status file makes dpkg's part meaningless (every package would look removed): it throws.
  const text = await readInside(root, DPKG_STATUS);
  const items = text === null ? [] : parseDpkgStatus(text, DPKG_STATUS);
  const seen = new Map(items.map((i) => [i.key, DPKG_STATUS]));

  const dir = await root.resolveInside(DPKG_STATUS_D);
  if (dir === null) return items;
  for (const entry of await root.readdir(dir)) {
    if (entry.name.startsWith('.') || entry.name.endsWith('.md5sums')) continue;
    const file = `${DPKG_STATUS_D}/${entry.name}`;
    let parsed: PackageItem[];
    try {
      const t = await readInside(root, file);
      if (t === null) continue;
      parsed = parseDpkgStatus(t, file, { statusOptional: true });
    } catch (err) {
      // Each status.d file stands alone: one bad file costs its own packages, not the section.
      // Our own errors already name the file; a system error (EACCES, ...) does not.
      warnings.push(
        `${isDwError(err) ? err.message : `${file}: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}`}; skipped`,
      );
      continue;
    }
    for (const item of parsed) {
      const first = seen.get(item.key);
      if (first === undefined) {
        seen.set(item.key, file);
        items.push(item);
      } else {
        const kept = items.find((i) => i.key === item.key)!;
        if (kept.version !== item.version || kept.state !== item.state) {
          warnings.push(
            `${file}: ${item.key} ${item.version} (${item.state}) disagrees with ${first} (${kept.version}, ${kept.state}); kept ${first}`,
          );
        }
      }
    }
  }
  return items;
}

async function findRpmDb(root: HostRoot, warnings: string[]): Promise<string | null> {
  const dbs: string[] = [];
  for (const candidate of RPM_DBPATHS) {
    const real = await root.resolveInside(candidate);
    if (real === null || dbs.includes(real)) continue;
    if (!(await root.lstat(real))?.isDirectory()) continue;
    for (const f of RPM_DB_FILES) {
      if ((await root.lstat(posix.join(real, f)))?.isFile()) {
        dbs.push(real);
        break;
      }
    }
  }
  if (dbs.length > 1)
    warnings.push(`rpm databases in both ${dbs[0]} and ${dbs[1]}; read ${dbs[0]}, the one current rpm uses`);
  return dbs[0] ?? null;
}

/**
 * rpm's database is a binary store with three backends, so it is read by the rpm program with
 * `--dbpath` pointing into the root. IMPORTANT: querying a sqlite database creates `-shm`/`-wal`
 * files beside it, so this writes into the root; on a read-only mount rpm may refuse.
 */
async function collectRpm(ctx: CollectContext, warnings: string[]): Promise<PackageItem[]> {
  const db = await findRpmDb(ctx.root, warnings);
  if (db === null) return [];
  const args = ['--dbpath', ctx.root.path(db), '-qa', '--queryformat', RPM_QUERY_FORMAT];
  let res;
  try {
    res = await ctx.exec('rpm', args);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new DwError(
        'DW_ERR_COLLECTOR',
        `the root has an rpm database in ${db}, but the rpm program is not installed on this machine: install rpm to collect its packages`,
        { dbpath: db },
        { cause: err },
      );
    }
    throw new DwError('DW_ERR_EXEC', `rpm -qa on ${db} failed: ${describeError(err)}`, { dbpath: db }, { cause: err });
  }
  if (res.code !== 0) {
    const why = res.stderr.trim().split('\n')[0] ?? '';
    throw new DwError('DW_ERR_EXEC', `rpm -qa on ${db} exited with ${res.code}${why ? `: ${why}` : ''}`, {
      dbpath: db,
      code: res.code,
    });
  }
  if (res.stderr.trim() !== '') ctx.log.debug({ dbpath: db, stderr: res.stderr.trim() }, 'rpm printed warnings');
  const items = parseRpmQuery(res.stdout, `rpm -qa --dbpath ${db}`);
  if (items.length === 0) warnings.push(`rpm database in ${db} lists no packages`);
  return items;
}

async function collectApk(root: HostRoot, warnings: string[]): Promise<PackageItem[]> {
  const read: string[] = [];
  let items: PackageItem[] = [];
  for (const candidate of APK_INSTALLED) {
    const real = await root.resolveInside(candidate);
    if (real === null || read.includes(real)) continue;
    if (read.length > 0) {
      warnings.push(`apk databases in both ${read[0]} and ${real}; read ${read[0]}, the one apk prefers`);
      break;
    }
    const text = await readInside(root, real);
    if (text === null) continue;
    read.push(real);
    items = parseApkInstalled(text, candidate);
  }
  return items;
}

/**
 * Keys are name:arch and each manager names architectures its own way (amd64 / x86_64, all /
 * noarch), so managers rarely collide. When two do claim one key (rpm and apk both say
 * `bash:x86_64`), both items are keyed `<manager>/<name>:<arch>` — a slash no manager allows in a
 * name — rather than one silently hiding the other.
 */
function separateManagers(items: PackageItem[], warnings: string[]): PackageItem[] {
  const owners = new Map<string, Set<string>>();
  for (const i of items) {
    const set = owners.get(i.key) ?? new Set<string>();
    set.add(i.manager);
    owners.set(i.key, set);
  }
  const out = items.map((i) => (owners.get(i.key)!.size > 1 ? { ...i, key: `${i.manager}/${i.key}` } : i));
  for (const [key, set] of owners) {
    if (set.size > 1)
      warnings.push(
        `${key} is claimed by ${[...set].sort().join(' and ')}; keyed as ${[...set]
          .sort()
          .map((m) => `${m}/${key}`)
          .join(', ')}`,
      );
  }
  return out.sort(byKey);
}
