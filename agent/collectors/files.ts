/**
 * @module The files collector: walks the configured roots (minus ignore globs) without following a
 * symlink anywhere, and records type, mode, owner, size, sha256 and symlink target for each path.
 * The walk runs on a worker thread (walker.ts), hashing on others (hash-pool.ts); this thread turns
 * the walk's entries into items, answers unchanged files from the stat cache and sends the rest to hash.
 */
import { readdirSync } from 'node:fs';
import picomatch from 'picomatch';
import { globRegex } from '../../shared/glob.js';
import type { FileItem } from '../../shared/schema/items.js';
import type { CollectionRules } from '../../shared/schema/rules.js';
import { HashPool } from './hash-pool.js';
import type { CollectContext, Collector } from './types.js';
import { normalizeHostPath, type HostRoot } from '../root.js';
import {
  EXTRA_ERROR,
  EXTRA_NONE,
  EXTRA_SHA,
  EXTRA_TARGET,
  FIELDS,
  FILE_TYPE_CODES,
  Walk,
  type WalkSpec,
} from './walker.js';
import { ScannedStats, walkOrder, type StatCache } from './stat-cache.js';

const GLOB_CHARS = /[*?[\]{}]/;

/** Permission bits as four octal digits; a dozen distinct values cover a whole tree. */
const MODES = new Map<number, string>();
function modeString(bits: number): string {
  let s = MODES.get(bits);
  if (s === undefined) MODES.set(bits, (s = bits.toString(8).padStart(4, '0')));
  return s;
}

/**
 * Files queued for hashing before the collector stops taking walk batches: enough to keep every hash
 * worker busy many times over (each takes batches of 128), few enough that a first scan of 100k+ files
 * does not hold a callback and a pending item for each at once.
 */
const MAX_PENDING_HASHES = 4096;

/**
 * The ignore globs as the walk tests them: a path is ignored when it equals a glob or matches the
 * regex the shared compiler makes of one (shared/glob.ts, as the controller's policy matches keys).
 */
function ignoreSpec(globs: readonly string[]): Pick<WalkSpec, 'ignoreExact' | 'ignoreRes'> {
  return {
    ignoreExact: [...globs],
    ignoreRes: globs.map((g) => {
      const re = globRegex(g, 'path');
      return { source: re.source, flags: re.flags, base: literalBase(g) };
    }),
  };
}

/**
 * The directory a glob's matches all lie in or are (picomatch's scan base), when that is certain: an
 * absolute literal start, not negated, nothing escaped. Else null, and the glob is tried everywhere.
 */
export function literalBase(glob: string): string | null {
  const { base, negated } = picomatch.scan(glob);
  if (negated || !base.startsWith('/') || base.endsWith('/') || base.includes('\\') || !glob.startsWith(base))
    return null;
  return base;
}

function walkSpec(root: HostRoot, rules: CollectionRules, cache: StatCache | undefined, ahead?: number): WalkSpec {
  // Roots in walk order too: the stat cache file is read alongside the walk (see walkOrder).
  const starts = expandRoots({ root }, rules.files.roots)
    .sort(walkOrder)
    .map((host) => ({ host, real: root.path(host) }));
  const source = cache?.takeForWalk();
  return {
    starts,
    ...ignoreSpec(rules.files.ignore),
    ...(source ? { cache: source } : {}),
    ...(ahead ? { ahead } : {}),
  };
}

const specKey = (root: HostRoot, rules: CollectionRules) =>
  JSON.stringify([root.dir, rules.files.roots, rules.files.ignore]);

/** The stat cache a walk should look files up in itself: one not parsed on this thread yet. */
function cacheForWalk(statCache: StatCache | undefined, fullRehash: boolean | undefined): StatCache | undefined {
  return statCache && !fullRehash && statCache.takeForWalk() !== null ? statCache : undefined;
}

let early: { key: string; walk: Walk; statCache: StatCache | undefined } | null = null;

/**
 * Start the walk for a coming collect() now, on its own thread: `check` does so as soon as it has
 * read the manifest's rules, and verifies the manifest while the walk runs. collect() with the same
 * root, file rules and stat cache takes this walk over; any other discards it. Nothing the walk
 * finds is used before collect() runs.
 */
export function startWalkEarly(
  root: HostRoot,
  rules: CollectionRules,
  statCache?: StatCache,
  fullRehash?: boolean,
): void {
  cancelEarlyWalk();
  if (!rules.collectors.includes('files')) return;
  const cache = cacheForWalk(statCache, fullRehash);
  early = { key: specKey(root, rules), walk: new Walk(walkSpec(root, rules, cache)), statCache: cache };
}

/** Drop a walk started early that no collect() took (the check failed before scanning). */
export function cancelEarlyWalk(): void {
  if (early) void early.walk.cancel();
  early = null;
}

/** Expand glob segments ("/home/*\/.ssh") against the root; plain paths pass through. */
export function expandRoots(ctx: Pick<CollectContext, 'root'>, roots: readonly string[]): string[] {
  const out = new Set<string>();
  for (const raw of roots) {
    const segments = normalizeHostPath(raw).split('/').filter(Boolean);
    let prefixes = ['/'];
    for (const seg of segments) {
      const next: string[] = [];
      for (const prefix of prefixes) {
        const join = (name: string) => (prefix === '/' ? `/${name}` : `${prefix}/${name}`);
        if (!GLOB_CHARS.test(seg)) {
          next.push(join(seg));
          continue;
        }
        // The shared compiler, so a home directory named ".x" or "a\nb" is expanded like any other:
        // a root glob that skipped some names would be a blind spot a user could choose.
        const re = globRegex(seg, 'path');
        const match = (name: string) => re.test(name);
        let names: string[] = [];
        try {
          names = readdirSync(ctx.root.path(prefix)).sort();
        } catch {
          names = [];
        }
        for (const name of names) if (match(name)) next.push(join(name));
      }
      prefixes = next;
    }
    prefixes.forEach((p) => out.add(p));
  }
  // A root inside another root would be walked twice.
  const sorted = [...out].sort();
  return sorted.filter((p) => !sorted.some((q) => q !== p && (q === '/' || p.startsWith(q + '/'))));
}

export const files: Collector<'files'> = {
  name: 'files',
  async collect(ctx) {
    const { root, rules, statCache, fullRehash } = ctx;
    // Items are built with their keys in sorted order (error, gid, key, mode, sha256, size, target,
    // type, uid): canonicalJson then serialises the section with one JSON.stringify.
    const items: FileItem[] = [];
    const warnings: string[] = [];
    const unreadable: string[] = [];
    // Hash workers start with the first file that needs reading: an unchanged re-scan starts none.
    let pool: HashPool | null = null;
    const total = { files: 0, bytes: 0 };
    let walkDone = false;
    const reportProgress = (): void => {
      if (walkDone)
        ctx.progress?.onHashProgress?.({ files: pool?.filesHashed ?? 0, bytes: pool?.bytesHashed ?? 0 }, total);
    };
    const getPool = (): HashPool => {
      if (!pool) {
        pool = new HashPool(ctx.hashWorkers);
        pool.onProgress = reportProgress;
      }
      return pool;
    };

    // What the stat cache will hold after this scan: each regular file's stat and hash, in walk order.
    const scanned = statCache ? new ScannedStats() : null;

    const hashLater = (
      index: number,
      key: string,
      real: string,
      mode: string,
      uid: number,
      gid: number,
      size: number,
      row: number,
    ): void => {
      total.files++;
      total.bytes += size;
      void getPool()
        .hash(real, size)
        .then((r) => {
          if ('sha256' in r) {
            items[index] = { gid, key, mode, sha256: r.sha256, size, type: 'file', uid };
            if (row >= 0) scanned!.setSha(row, r.sha256);
            return;
          }
          if (r.error !== 'ENOENT') unreadable.push(key);
          items[index] = {
            error: r.error === 'ENOENT' ? 'vanished during scan' : r.error,
            gid,
            key,
            mode,
            size,
            type: 'file',
            uid,
          };
        });
    };

    // With a stat cache not yet parsed here, the walk worker does the lookups (see StatCache.takeForWalk).
    const walkCache = cacheForWalk(statCache, fullRehash);
    let walk: Walk;
    if (early && early.key === specKey(root, rules) && early.statCache === walkCache) walk = early.walk;
    else {
      cancelEarlyWalk();
      walk = new Walk(walkSpec(root, rules, walkCache, ctx.walkAhead));
    }
    early = null;
    // Walked paths are normalised host paths already: no need for root.path() per file.
    const realOf = root.dir === '/' ? (host: string) => host : (host: string) => root.dir + host;

    try {
      for await (const batch of walk.batchesInOrder()) {
        const { strings, numbers: n, count } = batch;
        let si = 0;
        for (let e = 0, o = 0; e < count; e++, o += FIELDS) {
          const hostPath = strings[si++]!;
          const type = FILE_TYPE_CODES[n[o]!]!;
          const extraKind = n[o + 1]!;
          const extra = extraKind === EXTRA_NONE ? undefined : strings[si++]!;
          const mode = modeString(n[o + 2]!);
          const uid = n[o + 3]!;
          const gid = n[o + 4]!;
          if (type === 'file' && extraKind === EXTRA_SHA) {
            const size = n[o + 5]!;
            scanned?.add(hostPath, n[o + 6]!, size, n[o + 7]!, n[o + 8]!, extra);
            items.push({ gid, key: hostPath, mode, sha256: extra, size, type, uid });
          } else if (type === 'file') {
            const size = n[o + 5]!;
            const ino = n[o + 6]!;
            const mtimeMs = n[o + 7]!;
            const ctimeMs = n[o + 8]!;
            const cached =
              fullRehash || walkCache ? undefined : statCache?.lookup(hostPath, ino, size, mtimeMs, ctimeMs);
            const row = scanned ? scanned.add(hostPath, ino, size, mtimeMs, ctimeMs, cached) : -1;
            if (cached) {
              items.push({ gid, key: hostPath, mode, sha256: cached, size, type, uid });
            } else {
              items.push({ gid, key: hostPath, mode, size, type, uid }); // replaced when the hash comes back
              hashLater(items.length - 1, hostPath, realOf(hostPath), mode, uid, gid, size, row);
            }
          } else if (extraKind === EXTRA_TARGET) {
            items.push({ gid, key: hostPath, mode, target: extra, type, uid });
          } else if (extraKind === EXTRA_ERROR) {
            if (type === 'dir') unreadable.push(hostPath);
            items.push({ error: extra, gid, key: hostPath, mode, type, uid });
          } else {
            items.push({ gid, key: hostPath, mode, type, uid });
          }
        }
        // Send what this batch queued, and let worker replies, signals and a daemon's timers in.
        if (pool) await (pool as HashPool).below(MAX_PENDING_HASHES);
        if (ctx.signal?.aborted) throw ctx.signal.reason;
        if (ctx.pace) await ctx.pace();
        else await new Promise((r) => setImmediate(r));
      }
      walkDone = true;
      reportProgress();
      if (pool) await (pool as HashPool).drain();
    } finally {
      await walk.cancel();
      if (pool) await (pool as HashPool).close();
    }

    // The scan's files replace the cache's entries (those of paths not seen as files are gone with it);
    // the old entries are never read here.
    if (statCache && scanned) {
      const unchanged =
        walkCache !== undefined && walk.cacheResult !== null ? statCache.countWalk(walk.cacheResult) : false;
      statCache.recordScan(scanned, unchanged);
    }
    if (unreadable.length > 0) {
      warnings.push(
        `${unreadable.length} path(s) could not be read (their metadata is still compared), e.g. ${unreadable.slice(0, 3).join(', ')}`,
      );
    }
    items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { items, warnings };
  },
};
