/**
 * @module Re-fingerprint just the paths the watcher saw change, and diff them against the manifest:
 * the event half of the agent, which catches a change even if it is reverted before the next scan.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync } from 'node:fs';
import { globMatcher } from '../../shared/glob.js';
import { diffSection } from '../../shared/diff.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import type { FileItem } from '../../shared/schema/items.js';
import type { Manifest } from '../../shared/schema/manifest.js';
import { fileTypeOf, modeOf } from '../collectors/file-stat.js';
import type { HostRoot } from '../root.js';
import type { PackedFiles } from '../packed-files.js';
import type { Baseline } from './baseline.js';

function hashFile(realPath: string): { sha256?: string; error?: string } {
  let fd: number | undefined;
  try {
    fd = openSync(realPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    if (!fstatSync(fd).isFile()) return { error: 'ENOTFILE' };
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    let n: number;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) h.update(n === buf.length ? buf : buf.subarray(0, n));
    return { sha256: h.digest('hex') };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? 'EIO' };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The item the files collector would record for one path, or null if it is gone. */
export function fingerprintPath(root: HostRoot, hostPath: string): FileItem | null {
  const real = root.path(hostPath);
  const st = lstatSync(real, { throwIfNoEntry: false });
  if (!st) return null;
  const item: FileItem = { key: hostPath, type: fileTypeOf(st), mode: modeOf(st), uid: st.uid, gid: st.gid };
  if (item.type === 'symlink') {
    try {
      item.target = readlinkSync(real);
    } catch (err) {
      item.error = (err as NodeJS.ErrnoException).code ?? 'EIO';
    }
  } else if (item.type === 'file') {
    item.size = st.size;
    Object.assign(item, hashFile(real));
  }
  return item;
}

interface Lookups {
  ignored: (path: string) => boolean;
  inRoots: (path: string) => boolean;
  /** Built on first need, and only for a manifest whose items are not packed. */
  expectedByKey: Map<string, FileItem> | null;
}

/**
 * Built once per manifest, not per call: the watcher fingerprints each changed path as it arrives, and
 * a map of a 100k-file manifest costs tens of milliseconds to build.
 */
const lookups = new WeakMap<object, Lookups>();

function lookupsFor(owner: object, rules: { roots: readonly string[]; ignore: readonly string[] }): Lookups {
  let l = lookups.get(owner);
  if (!l) {
    l = {
      ignored: globMatcher(rules.ignore, 'path'),
      inRoots: globMatcher(
        rules.roots.flatMap((r) => [r, `${r}/**`]),
        'path',
      ),
      expectedByKey: null,
    };
    lookups.set(owner, l);
  }
  return l;
}

/**
 * Deviations of the changed paths that the manifest's file rules cover (inside a root, not ignored),
 * against `packed` when the caller holds the files section packed (its items in the manifest unread).
 * A changed directory stands for itself only; the watcher reports the files inside it one by one.
 */
export function fileDeviations(
  root: HostRoot,
  manifest: Manifest,
  paths: Iterable<string>,
  packed?: PackedFiles | null,
): Deviation[] {
  const l = lookupsFor(manifest, manifest.rules.files);
  const expectedOf = packed
    ? (key: string) => packed.get(key)
    : (key: string) =>
        (l.expectedByKey ??= new Map((manifest.sections.files?.items ?? []).map((i) => [i.key, i]))).get(key);
  return diffPaths(root, l, expectedOf, paths);
}

/**
 * The same against the daemon's baseline, which holds the manifest's files inside the watched paths:
 * the paths the watcher reports are all inside them.
 */
export function baselineDeviations(root: HostRoot, baseline: Baseline, paths: Iterable<string>): Deviation[] {
  const l = lookupsFor(baseline, baseline.rules.files);
  const byKey = (l.expectedByKey ??= new Map(baseline.files.map((i) => [i.key, i])));
  return diffPaths(root, l, (key) => byKey.get(key), paths);
}

function diffPaths(
  root: HostRoot,
  { ignored, inRoots }: Lookups,
  expectedOf: (key: string) => FileItem | undefined,
  paths: Iterable<string>,
): Deviation[] {
  const expected: FileItem[] = [];
  const actual: FileItem[] = [];
  for (const p of new Set(paths)) {
    if (!inRoots(p) || ignored(p)) continue;
    const want = expectedOf(p);
    if (want) expected.push(want);
    const got = fingerprintPath(root, p);
    if (got) actual.push(got);
  }
  return diffSection('files', expected, actual);
}
