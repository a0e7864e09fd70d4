/**
 * @module A stat cache for the files collector: a file whose inode, size, mtime and ctime are unchanged
 * keeps its last hash, so an unchanged tree re-scans with stat calls only. ctime is in the key because
 * it cannot be set back by `touch`; only a reset clock fools it, which is why a full re-hash bypasses it.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';

interface Entry {
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  sha256: string;
}

const HEADER = 'driftwarden-stat-cache v1';

export class StatCache {
  private readonly entries = new Map<string, Entry>();
  hits = 0;
  misses = 0;

  constructor(readonly rootDir: string) {}

  lookup(path: string, ino: number, size: number, mtimeMs: number, ctimeMs: number): string | undefined {
    const e = this.entries.get(path);
    if (e && e.ino === ino && e.size === size && e.mtimeMs === mtimeMs && e.ctimeMs === ctimeMs) {
      this.hits++;
      return e.sha256;
    }
    this.misses++;
    return undefined;
  }

  set(path: string, ino: number, size: number, mtimeMs: number, ctimeMs: number, sha256: string): void {
    this.entries.set(path, { ino, size, mtimeMs, ctimeMs, sha256 });
  }

  /** Keep only the paths seen in the latest scan, so deleted files do not pile up. */
  retain(paths: ReadonlySet<string>): void {
    for (const p of this.entries.keys()) if (!paths.has(p)) this.entries.delete(p);
  }

  get size(): number {
    return this.entries.size;
  }

  /** A missing, corrupt or other-root cache is an empty cache: the cost is one slower scan. */
  static load(file: string, rootDir: string): StatCache {
    const cache = new StatCache(rootDir);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return cache;
    }
    const lines = text.split('\n');
    if (lines[0] !== HEADER || lines[1] !== rootDir) return cache;
    for (let i = 2; i < lines.length; i++) {
      const f = lines[i]!.split('\t');
      if (f.length !== 6) continue;
      const [path, ino, size, mtime, ctime, sha] = f as [string, string, string, string, string, string];
      if (sha.length !== 64) continue;
      cache.entries.set(path, { ino: Number(ino), size: Number(size), mtimeMs: Number(mtime), ctimeMs: Number(ctime), sha256: sha });
    }
    return cache;
  }

  /** Atomic write (temp file, fsync, rename), mode 0600: the cache reveals what the host holds. */
  save(file: string): void {
    const parts: string[] = [HEADER, this.rootDir];
    for (const [path, e] of this.entries) {
      if (path.includes('\t') || path.includes('\n')) continue;
      parts.push(`${path}\t${e.ino}\t${e.size}\t${e.mtimeMs}\t${e.ctimeMs}\t${e.sha256}`);
    }
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, parts.join('\n') + '\n', { mode: 0o600 });
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  }
}
