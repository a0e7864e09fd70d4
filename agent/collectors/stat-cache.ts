/**
 * @module A stat cache for the files collector: a file whose inode, size, mtime and ctime are unchanged
 * keeps its last hash, so an unchanged tree re-scans with stat calls only. ctime is in the key because
 * it cannot be set back by `touch`; only a reset clock fools it, which is why a full re-hash bypasses it.
 */
import { mkdirSync, readFileSync, renameSync, writeSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';

const HEADER = 'driftwarden-stat-cache v1';
const SHA_LEN = 64;

/**
 * An entry is kept as its line in the file minus the path: "ino\tsize\tmtimeMs\tctimeMs\tsha256". A
 * lookup formats the live stat the same way and compares the prefix: no number parsing on load, one
 * string per entry in memory, and a number prints the same way every time, so equal stats give equal
 * prefixes (an odd spelling in a hand-edited file only costs a re-hash). The walk worker (walker.ts)
 * does the same lookups with the same format.
 */
export function statPrefix(ino: number, size: number, mtimeMs: number, ctimeMs: number): string {
  return `${ino}\t${size}\t${mtimeMs}\t${ctimeMs}\t`;
}

/**
 * The order a walk visits paths in (depth first, a directory's entries sorted), as a comparison: the
 * string order with "/" below every other character, i.e. path segment by path segment. The cache file
 * is written in this order, so a walk reads it alongside, one line at a time, and never holds it.
 * Shared with the walk worker, which gets this function's source.
 */
export function walkOrder(a: string, b: string): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return x === 47 ? -1 : y === 47 ? 1 : x - y;
  }
  return a.length - b.length;
}

/**
 * Read a cache file's entries one at a time, a megabyte of file at a time: a function giving the next
 * [path, rest of line] (lines without a tab skipped, the rest unchecked), or null at the end; null
 * instead of a function when the file is missing or is a cache for another root. Paths are read as
 * latin1 and decoded as UTF-8 only when they hold a non-ASCII byte. Shared with the walk worker.
 */
export function statCacheEntries(
  file: string,
  rootDir: string,
  fsm: Pick<typeof import('node:fs'), 'openSync' | 'readSync' | 'closeSync'>,
): (() => [string, string] | null) | null {
  const header = 'driftwarden-stat-cache v1';
  let fd: number;
  try {
    fd = fsm.openSync(file, 'r');
  } catch {
    return null;
  }
  const buf = Buffer.allocUnsafe(1 << 20);
  let text = '';
  let pos = 0;
  let eof = false;
  const line = (): string | null => {
    for (;;) {
      const nl = text.indexOf('\n', pos);
      if (nl >= 0) {
        const l = text.slice(pos, nl);
        pos = nl + 1;
        return l;
      }
      if (eof) {
        if (pos >= text.length) return null;
        const l = text.slice(pos);
        pos = text.length;
        return l;
      }
      let n = 0;
      try {
        n = fsm.readSync(fd, buf, 0, buf.length, null);
      } catch {
        n = 0;
      }
      if (n === 0) {
        eof = true;
        fsm.closeSync(fd);
      }
      text = text.slice(pos) + buf.toString('latin1', 0, n);
      pos = 0;
    }
  };
  const utf8 = (s: string) => (/[^\x00-\x7f]/.test(s) ? Buffer.from(s, 'latin1').toString('utf8') : s);
  const first = line();
  const second = line();
  if (first !== header || second === null || utf8(second) !== rootDir) {
    if (!eof) fsm.closeSync(fd);
    return null;
  }
  return () => {
    for (let l = line(); l !== null; l = line()) {
      const tab = l.indexOf('\t');
      if (tab >= 0) return [utf8(l.slice(0, tab)), l.slice(tab + 1)];
    }
    return null;
  };
}

/** What a walk that did the cache lookups itself (see takeForWalk) reports back. */
export interface WalkCacheResult {
  hits: number;
  misses: number;
  /** Cached paths the walk did not see as regular files (the scan's rows, the next cache, leave them out). */
  gone: number;
  /** The file was not in walk order (written by an older version): rewrite it. */
  unordered?: boolean;
}

/**
 * Read a cache file: its entry lines when it is a cache for `rootDir`, else null. Read as latin1 (one
 * byte a character, however many non-ASCII paths) and only paths that hold non-ASCII bytes decoded as
 * UTF-8: a single character above U+00FF would otherwise double the size of the whole text in memory.
 * Shared with the walk worker, which gets this function's source.
 */
export function readStatCacheFile(
  file: string,
  rootDir: string,
  readFile: (file: string, encoding: 'latin1') => string,
  entry: (path: string, rest: string) => void,
  checkLines = true,
): 'ok' | 'skipped' | 'empty' {
  const header = 'driftwarden-stat-cache v1';
  let text;
  try {
    text = readFile(file, 'latin1');
  } catch {
    return 'empty';
  }
  // Where the non-ASCII bytes are (few, if any): only paths holding one are decoded.
  const wide: number[] = [];
  for (const re = /[^\x00-\x7f]/g; re.exec(text) !== null; ) wide.push(re.lastIndex - 1);
  let w = 0;
  const path = (from: number, to: number) => {
    while (w < wide.length && wide[w]! < from) w++;
    const s = text.slice(from, to);
    return w < wide.length && wide[w]! < to ? Buffer.from(s, 'latin1').toString('utf8') : s;
  };
  const first = text.indexOf('\n');
  const second = first < 0 ? -1 : text.indexOf('\n', first + 1);
  if (second < 0 || text.slice(0, first) !== header || path(first + 1, second) !== rootDir) return 'empty';
  let skipped = false;
  let start = second + 1;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    // path \t ino \t size \t mtime \t ctime \t sha256: six fields, a 64-character hash (unless the
    // caller checks that itself, on the entries it uses)
    const tab = text.indexOf('\t', start);
    let ok = tab >= 0 && tab < end;
    if (ok && checkLines) {
      let tabs = 0;
      let last = -1;
      for (let i = tab; i >= 0 && i < end; i = text.indexOf('\t', i + 1)) {
        tabs++;
        last = i;
      }
      ok = tabs === 5 && end - last - 1 === 64;
    }
    if (ok) entry(path(start, tab), text.slice(tab + 1, end));
    else if (end > start) skipped = true;
    start = end + 1;
  }
  return skipped ? 'skipped' : 'ok';
}

/**
 * The stat and hash of every regular file a scan saw, in walk order, one row per file: what the next
 * cache file holds. Kept in typed arrays (64 bytes a row, off the heap) rather than as a map of
 * 100k+ strings, and written out as it is, so that neither a first scan nor a re-scan ever holds the
 * cache's entries as strings.
 */
export class ScannedStats {
  private paths: string[] = [];
  /** ino, size, mtimeMs, ctimeMs of row r at 4r .. 4r+3. */
  private numbers = new Float64Array(4 * 1024);
  private shas = Buffer.alloc(32 * 1024);
  /** 1 once row r has its hash; a file that could not be read has none, and is left out of the cache. */
  private hashed = new Uint8Array(1024);

  /** A row for a file the walk just reported (walk order); its hash comes now or later (setSha). */
  add(path: string, ino: number, size: number, mtimeMs: number, ctimeMs: number, sha256?: string): number {
    const row = this.paths.length;
    if (row === this.hashed.length) this.grow();
    this.paths.push(path);
    const o = 4 * row;
    this.numbers[o] = ino;
    this.numbers[o + 1] = size;
    this.numbers[o + 2] = mtimeMs;
    this.numbers[o + 3] = ctimeMs;
    if (sha256 !== undefined) this.setSha(row, sha256);
    return row;
  }

  setSha(row: number, sha256: string): void {
    if (this.shas.write(sha256, 32 * row, 32, 'hex') !== 32) return; // not a sha256 in hex: no entry
    this.hashed[row] = 1;
  }

  /** Rows with a hash, in walk order: [path, entry line minus the path]. */
  *entries(): Generator<[string, string]> {
    for (let r = 0; r < this.paths.length; r++) {
      if (this.hashed[r] !== 1) continue;
      const o = 4 * r;
      yield [
        this.paths[r]!,
        statPrefix(this.numbers[o]!, this.numbers[o + 1]!, this.numbers[o + 2]!, this.numbers[o + 3]!) +
          this.shas.toString('hex', 32 * r, 32 * r + 32),
      ];
    }
  }

  inWalkOrder(): boolean {
    for (let r = 1; r < this.paths.length; r++) if (walkOrder(this.paths[r - 1]!, this.paths[r]!) >= 0) return false;
    return true;
  }

  get hashedCount(): number {
    let n = 0;
    for (let r = 0; r < this.paths.length; r++) n += this.hashed[r]!;
    return n;
  }

  private grow(): void {
    const rows = this.hashed.length * 2;
    const numbers = new Float64Array(4 * rows);
    numbers.set(this.numbers);
    this.numbers = numbers;
    const shas = Buffer.alloc(32 * rows);
    this.shas.copy(shas);
    this.shas = shas;
    const hashed = new Uint8Array(rows);
    hashed.set(this.hashed);
    this.hashed = hashed;
  }
}

export class StatCache {
  private readonly entries = new Map<string, string>();
  /** The file whose entries are read on first need: a walk may do all the lookups (takeForWalk). */
  private source: string | null = null;
  /** Changed since it was loaded from (or saved to) `file`: an unchanged cache is not rewritten. */
  private dirty = true;
  private file: string | null = null;
  /** The latest scan's files (recordScan): when set, they are the cache, and the entries above are not read. */
  private scanned: ScannedStats | null = null;
  hits = 0;
  misses = 0;

  constructor(readonly rootDir: string) {}

  private parsed(): Map<string, string> {
    if (this.source !== null) {
      const file = this.source;
      this.source = null;
      const how = readStatCacheFile(file, this.rootDir, readFileSync, (path, rest) => this.entries.set(path, rest));
      if (how !== 'ok') this.dirty = true;
    }
    return this.entries;
  }

  lookup(path: string, ino: number, size: number, mtimeMs: number, ctimeMs: number): string | undefined {
    const e = this.parsed().get(path);
    if (e !== undefined) {
      const prefix = statPrefix(ino, size, mtimeMs, ctimeMs);
      if (e.length === prefix.length + SHA_LEN && e.startsWith(prefix)) {
        this.hits++;
        return e.slice(prefix.length);
      }
    }
    this.misses++;
    return undefined;
  }

  set(path: string, ino: number, size: number, mtimeMs: number, ctimeMs: number, sha256: string): void {
    const value = statPrefix(ino, size, mtimeMs, ctimeMs) + sha256;
    const entries = this.parsed();
    if (entries.get(path) === value) return;
    entries.set(path, value);
    this.dirty = true;
  }

  get size(): number {
    return this.scanned ? this.scanned.hashedCount : this.parsed().size;
  }

  /**
   * The files a scan saw, with their hashes, become the cache: what the next save() writes. `unchanged`
   * when the walk found every file in the cache as it was and nothing gone (an unchanged re-scan): the
   * file on disk already says the same, and is not rewritten.
   */
  recordScan(rows: ScannedStats, unchanged: boolean): void {
    this.scanned = rows;
    this.source = null;
    this.entries.clear();
    if (!unchanged) this.dirty = true;
  }

  /**
   * The cache file, for a walk worker to read and do the lookups in on its own thread; null once this
   * cache has been read here (looked up, changed), when the lookups must happen here. Afterwards hand
   * the walk's result to countWalk() and the scan's files to recordScan(): the cache never reads its file here.
   */
  takeForWalk(): { file: string; rootDir: string } | null {
    return this.source === null ? null : { file: this.source, rootDir: this.rootDir };
  }

  /** What a walk that did the lookups found, once its scan is recorded (recordScan): only counted. */
  countWalk(result: WalkCacheResult): boolean {
    this.hits += result.hits;
    this.misses += result.misses;
    return result.misses === 0 && result.gone === 0 && !result.unordered;
  }

  /**
   * A missing, corrupt or other-root cache is an empty cache: the cost is one slower scan. The file is
   * read when first needed, which on an unchanged re-scan is never (the walk worker reads it).
   */
  static load(file: string, rootDir: string): StatCache {
    const cache = new StatCache(rootDir);
    cache.source = file;
    cache.file = file;
    cache.dirty = false;
    return cache;
  }

  /**
   * Atomic write (temp file, fsync, rename), mode 0600: the cache reveals what the host holds. A cache
   * loaded from this file and unchanged since (an unchanged re-scan) is left as it is.
   */
  save(file: string): void {
    if (!this.dirty && this.file === file) return;
    // In walk order, so that the next walk reads it alongside (see walkOrder), and written a megabyte at
    // a time: the whole text of a 100k-file cache (and an array of its lines) would be tens of MB at
    // the end of a scan, when memory is at its peak. A scan's rows come in walk order already; the
    // entries of a cache changed by hand here are sorted (paths only).
    const rows = this.scanned ? inWalkOrder(this.scanned) : this.sortedEntries();
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      let chunk = `${HEADER}\n${this.rootDir}\n`;
      for (const [path, rest] of rows) {
        if (path.includes('\t') || path.includes('\n')) continue;
        chunk += `${path}\t${rest}\n`;
        if (chunk.length >= 1 << 20) {
          writeAll(fd, chunk);
          chunk = '';
        }
      }
      writeAll(fd, chunk);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    this.dirty = false;
    this.file = file;
  }

  private *sortedEntries(): Generator<[string, string]> {
    const entries = this.parsed();
    for (const path of [...entries.keys()].sort(walkOrder)) yield [path, entries.get(path)!];
  }
}

/**
 * A scan's rows in walk order. The walk visits paths in that order, so this is the rows as they are;
 * should they ever not be (roots given in another order), they are sorted, since the next walk reads
 * the file alongside and would miss every entry out of order.
 */
function* inWalkOrder(rows: ScannedStats): Generator<[string, string]> {
  if (rows.inWalkOrder()) {
    yield* rows.entries();
    return;
  }
  yield* [...rows.entries()].sort((a, b) => walkOrder(a[0], b[0]));
}

/** writeSync may write less than asked (a full disk, a signal): go on until all of it is written. */
function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
}
