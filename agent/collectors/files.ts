/**
 * @module The files collector: walks the configured roots (minus ignore globs) without following a
 * symlink anywhere, and records type, mode, owner, size, sha256 and symlink target for each path.
 */
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import picomatch from 'picomatch';
import type { FileItem } from '../../shared/schema/items.js';
import { HashPool } from './hash-pool.js';
import type { CollectContext, Collector } from './types.js';
import { normalizeHostPath } from '../root.js';

const GLOB_CHARS = /[*?[\]{}]/;
/** Let the event loop breathe (worker replies, signals, a daemon's timers) every so many entries. */
const YIELD_EVERY = 2000;

function fileType(st: Stats): FileItem['type'] {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

function modeOf(st: Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

/** Expand glob segments ("/home/*\/.ssh") against the root; plain paths pass through. */
export function expandRoots(ctx: CollectContext, roots: readonly string[]): string[] {
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
        const match = picomatch(seg, { dot: false });
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
  reads: ['configured roots (default /etc, /usr, /opt, /boot, /root/.ssh, /home/*/.ssh)'],
  describe: 'type, mode, owner, size, sha256 and symlink target of every path under the file roots',

  async collect(ctx) {
    const { root, rules, statCache, fullRehash } = ctx;
    const ignored = rules.files.ignore.length > 0 ? picomatch(rules.files.ignore, { dot: true }) : () => false;
    const items: FileItem[] = [];
    const warnings: string[] = [];
    const unreadable: string[] = [];
    const seen = statCache ? new Set<string>() : null;
    const pool = new HashPool();
    const total = { files: 0, bytes: 0 };
    let walked = 0;
    let walkDone = false;
    pool.onProgress = () => {
      if (walkDone) ctx.progress?.onHashProgress?.({ files: pool.filesHashed, bytes: pool.bytesHashed }, total);
    };

    const record = (hostPath: string, realPath: string, st: Stats): void => {
      const item: FileItem = { key: hostPath, type: fileType(st), mode: modeOf(st), uid: st.uid, gid: st.gid };
      items.push(item);
      if (item.type === 'symlink') {
        try {
          item.target = readlinkSync(realPath);
        } catch (err) {
          item.error = (err as NodeJS.ErrnoException).code ?? 'EIO';
        }
        return;
      }
      if (item.type !== 'file') return;
      item.size = st.size;
      seen?.add(hostPath);
      const cached = fullRehash ? undefined : statCache?.lookup(hostPath, st.ino, st.size, st.mtimeMs, st.ctimeMs);
      if (cached) {
        item.sha256 = cached;
        return;
      }
      total.files++;
      total.bytes += st.size;
      void pool.hash(realPath, st.size).then((r) => {
        if ('sha256' in r) {
          item.sha256 = r.sha256;
          statCache?.set(hostPath, st.ino, st.size, st.mtimeMs, st.ctimeMs, r.sha256);
        } else if (r.error === 'ENOENT') {
          item.error = 'vanished during scan';
        } else {
          item.error = r.error;
          unreadable.push(hostPath);
        }
      });
    };

    const walk = async (hostPath: string, known?: Stats): Promise<void> => {
      const realPath = root.path(hostPath);
      const st = known ?? lstatSync(realPath, { throwIfNoEntry: false });
      if (!st) return;
      record(hostPath, realPath, st);
      if (!st.isDirectory()) return;
      let names: string[];
      try {
        names = readdirSync(realPath);
      } catch (err) {
        unreadable.push(hostPath);
        const last = items[items.length - 1]!;
        last.error = (err as NodeJS.ErrnoException).code ?? 'EIO';
        return;
      }
      names.sort();
      for (const name of names) {
        const childHost = hostPath === '/' ? `/${name}` : `${hostPath}/${name}`;
        if (ignored(childHost)) continue;
        if (++walked % YIELD_EVERY === 0) {
          pool.flush();
          await new Promise((r) => setImmediate(r));
        }
        const childReal = realPath === '/' ? `/${name}` : `${realPath}/${name}`;
        const cst = lstatSync(childReal, { throwIfNoEntry: false });
        if (!cst) continue; // removed since readdir
        if (cst.isDirectory()) await walk(childHost, cst);
        else record(childHost, childReal, cst);
      }
    };

    try {
      for (const start of expandRoots(ctx, rules.files.roots)) {
        if (ignored(start)) continue;
        await walk(start);
      }
      walkDone = true;
      pool.onProgress();
      await pool.drain();
    } finally {
      await pool.close();
    }

    if (seen && statCache) statCache.retain(seen);
    if (unreadable.length > 0) {
      warnings.push(`${unreadable.length} path(s) could not be read (their metadata is still compared), e.g. ${unreadable.slice(0, 3).join(', ')}`);
    }
    items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { items, warnings };
  },
};
