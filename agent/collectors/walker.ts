/**
 * @module The files collector's walk, on a worker thread: readdir and lstat of every path under the
 * roots (symlinks never followed, ignore globs applied), streamed back in packed batches. On a re-scan
 * the walk is nearly all the work, and on its own thread it runs beside whatever the main thread does
 * meanwhile (loading and verifying the manifest, sending files to the hash workers).
 *
 * A batch is one string (the entries' paths, and a symlink's target or an error code, each ended by
 * NUL, which no path can hold) and one Float64Array of FIELDS numbers per entry, transferred, not copied.
 */
import { Worker } from 'node:worker_threads';
import { readStatCacheFile, statCacheEntries, statPrefix, walkOrder, type WalkCacheResult } from './stat-cache.js';

export const FILE_TYPE_CODES = ['file', 'dir', 'symlink', 'char', 'block', 'fifo', 'socket'] as const;
export type WalkType = (typeof FILE_TYPE_CODES)[number];

/** Numbers per entry: type code, extra-string kind, mode bits, uid, gid, size, ino, mtimeMs, ctimeMs. */
export const FIELDS = 9;
/** What follows an entry's path in the string: nothing, a symlink target, an error code, a cached hash. */
export const EXTRA_NONE = 0;
export const EXTRA_TARGET = 1;
export const EXTRA_ERROR = 2;
export const EXTRA_SHA = 3;

/** A batch as it arrived: split into paths only when taken, so batches waiting for the consumer stay packed. */
interface PackedBatch {
  strings: string;
  numbers: ArrayBuffer;
  count: number;
}

export interface WalkBatch {
  strings: string[];
  numbers: Float64Array;
  count: number;
}

export interface WalkStart {
  host: string;
  real: string;
}

export interface WalkSpec {
  starts: WalkStart[];
  /** Host paths equal to one of these are ignored... */
  ignoreExact: string[];
  /** ...and so are host paths matching one of these (picomatch's regexes for the ignore globs). */
  ignoreRes: {
    source: string;
    flags: string;
    /** The glob's literal leading directory: it matches only that path and paths under it. Null: anywhere. */
    base: string | null;
  }[];
  /**
   * A stat cache to look every regular file up in (StatCache.takeForWalk): the worker reads it and
   * sends a hit's hash along, so the main thread neither reads the cache nor formats a stat.
   */
  cache?: { file: string; rootDir: string };
  /**
   * Batches the walk may be ahead of its consumer (default: no limit). On a first scan hashing is far
   * slower than walking, and without a limit the whole walk (for 100k files, ~17 MB of packed batches)
   * waits in memory for the collector to take it; the agent, a guest on its host, keeps it to a few.
   */
  ahead?: number;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { starts, ignoreExact, ignoreRes, ahead, credit: creditBuffer } = workerData;
// Batches sent and not yet taken by the consumer, when it limits them (see WalkSpec.ahead).
const credit = creditBuffer ? new Int32Array(creditBuffer) : null;
const readStatCacheFile = ${readStatCacheFile.toString()};
const statCacheEntries = ${statCacheEntries.toString()};
const statPrefix = ${statPrefix.toString()};
const walkOrder = ${walkOrder.toString()};
// The stat cache: read alongside the walk when the file is in walk order (the cursor), else whole
// into a map. Either way, what the walk does not see as a regular file is gone.
let lookups = false;
let cache = null;
let next = null;
let cursor = null;
let unordered = false;
let gone = 0;
let hits = 0;
let misses = 0;
function openCache(file, rootDir) {
  lookups = true;
  const check = statCacheEntries(file, rootDir, fs);
  if (check === null) return; // missing or another root's: every file is a miss
  let prev = null;
  for (let e = check(); e !== null; e = check()) {
    if (prev !== null && walkOrder(prev, e[0]) >= 0) {
      unordered = true;
      cache = new Map();
      readStatCacheFile(file, rootDir, fs.readFileSync, (path, rest) => cache.set(path, rest), false);
      return;
    }
    prev = e[0];
  }
  next = statCacheEntries(file, rootDir, fs);
  cursor = next === null ? null : next();
}
function cached(host) {
  if (cache !== null) {
    const v = cache.get(host);
    if (v !== undefined) cache.delete(host);
    return v;
  }
  while (cursor !== null && walkOrder(cursor[0], host) < 0) {
    gone++;
    cursor = next();
  }
  if (cursor === null || cursor[0] !== host) return undefined;
  const v = cursor[1];
  cursor = next();
  return v;
}
const exact = new Set(ignoreExact);
// The ignore regexes that can match a child of a directory: a glob whose literal base is B matches
// only B and paths under B/, so under /usr none of /etc/..., /var/log/** is tried. One regex per set.
const matchers = new Map();
function compile(idx) {
  const res = idx.map((i) => ignoreRes[i]);
  if (res.length === 0) return () => false;
  try {
    if (res.some((r) => r.flags !== res[0].flags)) throw new Error('mixed flags');
    const one = new RegExp(res.map((r) => '(?:' + r.source + ')').join('|'), res[0].flags);
    return (p) => one.test(p);
  } catch {
    const each = res.map((r) => new RegExp(r.source, r.flags));
    return (p) => each.some((re) => re.test(p));
  }
}
function ignoreFor(dirPrefix) {
  const idx = [];
  for (let i = 0; i < ignoreRes.length; i++) {
    const b = ignoreRes[i].base;
    if (b === null || dirPrefix.startsWith(b + '/') || (b + '/').startsWith(dirPrefix)) idx.push(i);
  }
  const key = idx.join(',');
  let m = matchers.get(key);
  if (m === undefined) matchers.set(key, (m = compile(idx)));
  return m;
}
const everywhere = compile(ignoreRes.map((_, i) => i));
const ignoredRoot = (p) => exact.has(p) || everywhere(p);
const FIELDS = ${FIELDS};
const BATCH = 4096;
const S_IFMT = 0o170000;
const TYPES = new Map([[0o100000, 0], [0o040000, 1], [0o120000, 2], [0o020000, 3], [0o060000, 4], [0o010000, 5]]);
let strings = [];
let numbers = new Float64Array(BATCH * FIELDS);
let count = 0;
function flush() {
  if (count === 0) return;
  if (credit !== null) {
    // Wait until the consumer has taken one; a timeout so a terminate() is seen even if no one takes any.
    for (let v = Atomics.load(credit, 0); v >= ahead; v = Atomics.load(credit, 0)) Atomics.wait(credit, 0, v, 200);
    Atomics.add(credit, 0, 1);
  }
  const buf = numbers.buffer;
  parentPort.postMessage({ strings: strings.join('\\0'), numbers: buf, count }, [buf]);
  strings = [];
  numbers = new Float64Array(BATCH * FIELDS);
  count = 0;
}
function emit(host, st, extraKind, extra) {
  const o = count * FIELDS;
  const type = TYPES.get(st.mode & S_IFMT);
  numbers[o] = type === undefined ? 6 : type;
  numbers[o + 1] = extraKind;
  numbers[o + 2] = st.mode & 0o7777;
  numbers[o + 3] = st.uid;
  numbers[o + 4] = st.gid;
  numbers[o + 5] = st.size;
  numbers[o + 6] = st.ino;
  numbers[o + 7] = st.mtimeMs;
  numbers[o + 8] = st.ctimeMs;
  strings.push(host);
  if (extraKind !== 0) strings.push(extra);
  if (++count === BATCH) flush();
}
function leaf(host, real, st) {
  if (lookups && st.isFile()) {
    const v = cached(host);
    if (v !== undefined) {
      const prefix = statPrefix(st.ino, st.size, st.mtimeMs, st.ctimeMs);
      // the lines were not checked on reading: six fields means no tab in the hash
      if (v.length === prefix.length + 64 && v.startsWith(prefix) && v.indexOf('\\t', prefix.length) < 0) {
        hits++;
        return emit(host, st, 3, v.slice(prefix.length));
      }
    }
    misses++;
    return emit(host, st, 0, null);
  }
  if (st.isSymbolicLink()) {
    let target;
    try {
      target = fs.readlinkSync(real);
    } catch (e) {
      return emit(host, st, 2, e.code || 'EIO');
    }
    return emit(host, st, 1, target);
  }
  emit(host, st, 0, null);
}
function dir(host, real, st) {
  let names;
  try {
    names = fs.readdirSync(real);
  } catch (e) {
    return emit(host, st, 2, e.code || 'EIO');
  }
  emit(host, st, 0, null);
  names.sort();
  const hostPrefix = host === '/' ? '/' : host + '/';
  const realPrefix = real === '/' ? '/' : real + '/';
  const ignored = ignoreFor(hostPrefix);
  for (const name of names) {
    const childHost = hostPrefix + name;
    if (exact.has(childHost) || ignored(childHost)) continue;
    const childReal = realPrefix + name;
    const cst = fs.lstatSync(childReal, { throwIfNoEntry: false });
    if (!cst) continue; // removed since readdir
    if (cst.isDirectory()) dir(childHost, childReal, cst);
    else leaf(childHost, childReal, cst);
  }
}
try {
  if (workerData.cache) openCache(workerData.cache.file, workerData.cache.rootDir);
  for (const s of starts) {
    if (ignoredRoot(s.host)) continue;
    const st = fs.lstatSync(s.real, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) dir(s.host, s.real, st);
    else leaf(s.host, s.real, st);
  }
  flush();
  if (cache !== null) gone += cache.size;
  for (; cursor !== null; cursor = next()) gone++;
  parentPort.postMessage({ done: true, cache: lookups ? { hits, misses, gone, unordered } : null });
} catch (e) {
  parentPort.postMessage({ error: { message: e.message, code: e.code } });
}
`;

/** The worker's young generation: its garbage (Stats objects, path strings) dies young, and the default (48 MB) only grows the process. */
const YOUNG_GENERATION_MB = 8;

/**
 * One walk. Batches wait in order until a consumer takes them, so a walk can start before anyone is
 * ready to read it. The worker does not keep the process alive until someone consumes the walk.
 */
export class Walk {
  private readonly worker: Worker;
  private readonly batches: PackedBatch[] = [];
  private finished = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  /** Batches sent by the worker and not yet taken (WalkSpec.ahead), shared with it. */
  private readonly credit: Int32Array | null;
  /** With a stat cache to look up in, what the lookups found; set when the walk is done. */
  cacheResult: WalkCacheResult | null = null;

  constructor(spec: WalkSpec, youngMb = YOUNG_GENERATION_MB) {
    const limited = spec.ahead !== undefined && spec.ahead > 0 && Number.isFinite(spec.ahead);
    const creditBuffer = limited ? new SharedArrayBuffer(4) : null;
    this.credit = creditBuffer ? new Int32Array(creditBuffer) : null;
    const workerData = { ...spec, ...(limited ? { credit: creditBuffer } : { ahead: undefined }) };
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData,
      resourceLimits: { maxYoungGenerationSizeMb: youngMb },
    });
    this.worker.unref();
    this.worker.on(
      'message',
      (msg: {
        strings?: string;
        numbers?: ArrayBuffer;
        count?: number;
        done?: true;
        cache?: WalkCacheResult | null;
        error?: { message: string; code?: string };
      }) => {
        if (msg.error) {
          const err = new Error(msg.error.message) as NodeJS.ErrnoException;
          if (msg.error.code) err.code = msg.error.code;
          this.failure = err;
        } else if (msg.done) {
          this.cacheResult = msg.cache ?? null;
          this.finished = true;
        } else {
          this.batches.push({ strings: msg.strings!, numbers: msg.numbers!, count: msg.count! });
        }
        this.poke();
      },
    );
    this.worker.on('error', (err) => {
      this.failure = err;
      this.poke();
    });
    this.worker.on('exit', (code) => {
      if (!this.finished && !this.failure) this.failure = new Error(`walk worker exited with code ${code}`);
      this.poke();
    });
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Batches in walk order; throws what the walk threw. */
  async *batchesInOrder(): AsyncGenerator<WalkBatch> {
    this.worker.ref();
    try {
      for (;;) {
        while (this.batches.length > 0) {
          const b = this.batches.shift()!;
          if (this.credit) {
            Atomics.sub(this.credit, 0, 1);
            Atomics.notify(this.credit, 0);
          }
          yield { strings: b.strings.split('\0'), numbers: new Float64Array(b.numbers), count: b.count };
        }
        if (this.failure) throw this.failure;
        if (this.finished) return;
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      this.worker.unref();
    }
  }

  async cancel(): Promise<void> {
    await this.worker.terminate();
  }
}
