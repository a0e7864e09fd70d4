/**
 * @module Hash files on worker threads so every core hashes: sha256 runs on the calling thread, and
 * one thread tops out near one core's SHA-NI speed. The worker is an inline script so the pool
 * works the same from source, from tsc output and from a bundle or single executable.
 */
import { Worker } from 'node:worker_threads';
import * as fs from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { availableParallelism } from 'node:os';

/**
 * Open a file to hash it: O_NOFOLLOW, so a file swapped for a symlink since the walk is refused, never
 * followed out of the tree; O_NONBLOCK, so one swapped for a FIFO cannot hang the open; O_NOATIME
 * where allowed (it needs the file's owner or CAP_FOWNER), so a scan leaves no trace. Null when it is
 * not a regular file. Self-contained: the worker gets its source.
 */
export function openForHash(fsm: typeof import('node:fs'), path: string, state: { noatime: boolean }): number | null {
  const C = fsm.constants;
  const base = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
  let fd: number | undefined;
  if (state.noatime) {
    try {
      fd = fsm.openSync(path, base | C.O_NOATIME);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
      state.noatime = false;
    }
  }
  if (fd === undefined) fd = fsm.openSync(path, base);
  try {
    if (fsm.fstatSync(fd).isFile()) return fd;
  } catch (e) {
    fsm.closeSync(fd);
    throw e;
  }
  fsm.closeSync(fd);
  return null;
}

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const buf = Buffer.allocUnsafe(1 << 20);
const openForHash = ${openForHash.toString()};
const noatime = { noatime: typeof fs.constants.O_NOATIME === 'number' };
function hashOne(p) {
  let fd;
  try {
    fd = openForHash(fs, p, noatime) ?? undefined;
    if (fd === undefined) return ['!ENOTFILE', 0];
    const h = createHash('sha256');
    let n, bytes = 0;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) {
      h.update(n === buf.length ? buf : buf.subarray(0, n));
      bytes += n;
    }
    return [h.digest('hex'), bytes];
  } catch (e) {
    return ['!' + (e.code || 'EIO'), 0];
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
parentPort.on('message', (msg) => {
  const digests = new Array(msg.paths.length);
  let bytes = 0;
  for (let i = 0; i < msg.paths.length; i++) {
    const r = hashOne(msg.paths[i]);
    digests[i] = r[0];
    bytes += r[1];
  }
  parentPort.postMessage({ id: msg.id, digests, bytes });
});
`;

/** A digest in hex, or an error code (EACCES, ENOENT, ...) when the file could not be read. */
export type HashResult = { sha256: string } | { error: string };

interface Pending {
  id: number;
  paths: string[];
  callbacks: ((r: HashResult) => void)[];
}

/**
 * Hashing on this thread (a pool of size 0) runs in slices of about this long, then lets the event loop
 * in: a big file is read across several slices, so timers, signals and the watcher wait at most this.
 */
const SLICE_MS = 20;
const CHUNK = 1 << 20;

/** The file being hashed on this thread, kept between slices. */
interface InlineFile {
  fd: number;
  hash: Hash;
  bytes: number;
}

const BATCH_FILES = 128;
const BATCH_BYTES = 32 * 1024 * 1024;
/** Batches queued per worker, so a worker never waits for the main thread between batches. */
const IN_FLIGHT = 2;

export class HashPool {
  private readonly workers: Worker[] = [];
  private readonly inFlight = new Map<number, { worker: Worker | null; batch: Pending }>();
  private readonly load = new Map<Worker, number>();
  private readonly queue: Pending[] = [];
  private current: Pending | null = null;
  private currentBytes = 0;
  private nextId = 1;
  private failed: Error | null = null;
  private idleWaiters: (() => void)[] = [];
  /** Files handed to hash() whose digest has not come back yet. */
  private outstanding = 0;
  private belowWaiters: { limit: number; resolve: () => void }[] = [];
  bytesHashed = 0;
  filesHashed = 0;
  onProgress?: () => void;
  /** Size 0: the batch being hashed on this thread, how far it got, and the slice timer. */
  private inline: { batch: Pending; next: number; digests: string[]; bytes: number; file: InlineFile | null } | null =
    null;
  private inlineTimer: NodeJS.Immediate | null = null;
  private inlineBuffer: Buffer | null = null;
  private readonly noatime = { noatime: typeof fs.constants.O_NOATIME === 'number' };

  /**
   * `size` worker threads (default: one per core). 0: no worker, hashing on this thread in slices of
   * about 20 ms. The agent hashes so within a CPU share of one core: a worker is an isolate of its own,
   * 10-15 MB of a guest's memory, and would only hash faster than the share allows.
   */
  constructor(size?: number) {
    size = size === 0 ? 0 : Math.max(1, Math.min(size ?? availableParallelism(), availableParallelism()));
    for (let i = 0; i < size; i++) {
      // A small young generation: a hash worker's garbage is a digest string a file, and the default
      // (up to 48 MB a worker) only grows the process.
      const w = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      w.on('message', (msg: { id: number; digests: string[]; bytes: number }) => this.done(msg));
      w.on('error', (err) => this.fail(err));
      this.workers.push(w);
      this.load.set(w, 0);
    }
  }

  /** Queue one file; resolves when its batch comes back. */
  hash(realPath: string, size: number): Promise<HashResult> {
    if (this.failed) return Promise.reject(this.failed);
    this.outstanding++;
    return new Promise((resolve) => {
      if (!this.current) this.current = { id: this.nextId++, paths: [], callbacks: [] };
      this.current.paths.push(realPath);
      this.current.callbacks.push(resolve);
      this.currentBytes += size;
      if (this.current.paths.length >= BATCH_FILES || this.currentBytes >= BATCH_BYTES) this.flush();
    });
  }

  /** Send the partly filled batch now: the walk has paused or finished. */
  flush(): void {
    if (this.current && this.current.paths.length > 0) {
      this.queue.push(this.current);
      this.current = null;
      this.currentBytes = 0;
    }
    this.dispatch();
  }

  /** Files queued or being hashed. */
  get pending(): number {
    return this.outstanding;
  }

  /**
   * Resolves once fewer than `limit` files wait for their digest. The collector waits on it before it
   * takes the next walk batch: on a first scan the walk runs far ahead of hashing, and each queued file
   * holds a callback, its item's fields and its path; waiting here bounds that, while the walk's own
   * batches wait packed (a string and a Float64Array per 4,096 entries).
   */
  below(limit: number): Promise<void> {
    this.flush();
    if (this.outstanding < limit || this.failed) return Promise.resolve();
    return new Promise((resolve) => this.belowWaiters.push({ limit, resolve }));
  }

  /** Resolves when every queued file has been hashed. */
  async drain(): Promise<void> {
    this.flush();
    if (this.failed) throw this.failed;
    if (this.inFlight.size === 0 && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (this.failed) throw this.failed;
  }

  async close(): Promise<void> {
    if (this.inlineTimer) clearImmediate(this.inlineTimer);
    this.inlineTimer = null;
    if (this.inline?.file) fs.closeSync(this.inline.file.fd);
    this.inline = null;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private dispatch(): void {
    if (this.workers.length === 0) {
      if (!this.inline && this.queue.length > 0) {
        const batch = this.queue.shift()!;
        this.inFlight.set(batch.id, { worker: null, batch });
        this.inline = { batch, next: 0, digests: [], bytes: 0, file: null };
      }
      if (this.inline && !this.inlineTimer) this.inlineTimer = setImmediate(() => this.inlineSlice());
      return;
    }
    while (this.queue.length > 0) {
      let best: Worker | null = null;
      for (const w of this.workers) {
        const l = this.load.get(w)!;
        if (l < IN_FLIGHT && (best === null || l < this.load.get(best)!)) best = w;
      }
      if (!best) return;
      const batch = this.queue.shift()!;
      this.load.set(best, this.load.get(best)! + 1);
      this.inFlight.set(batch.id, { worker: best, batch });
      best.postMessage({ id: batch.id, paths: batch.paths });
    }
  }

  /** Hash on this thread for about SLICE_MS, then give the event loop back (size 0). */
  private inlineSlice(): void {
    this.inlineTimer = null;
    const run = this.inline;
    if (!run) return;
    const buf = (this.inlineBuffer ??= Buffer.allocUnsafe(CHUNK));
    const deadline = performance.now() + SLICE_MS;
    while (run.next < run.batch.paths.length) {
      if (!run.file) {
        const opened = this.openForHash(run.batch.paths[run.next]!);
        if (typeof opened === 'string') {
          run.digests.push(opened);
          run.next++;
          continue;
        }
        run.file = opened;
      }
      const f = run.file;
      let end: string | null = null;
      try {
        const n = fs.readSync(f.fd, buf, 0, CHUNK, null);
        if (n > 0) {
          f.hash.update(n === CHUNK ? buf : buf.subarray(0, n));
          f.bytes += n;
        } else end = f.hash.digest('hex');
      } catch (e) {
        end = `!${(e as NodeJS.ErrnoException).code ?? 'EIO'}`;
      }
      if (end !== null) {
        fs.closeSync(f.fd);
        run.file = null;
        run.digests.push(end);
        if (!end.startsWith('!')) run.bytes += f.bytes;
        run.next++;
      }
      if (performance.now() >= deadline) break;
    }
    if (run.next === run.batch.paths.length) {
      this.inline = null;
      this.done({ id: run.batch.id, digests: run.digests, bytes: run.bytes });
    } else this.inlineTimer = setImmediate(() => this.inlineSlice());
  }

  /** An open file and a fresh hash, or '!CODE' for a file that cannot be hashed (as the workers answer). */
  private openForHash(path: string): InlineFile | string {
    try {
      const fd = openForHash(fs, path, this.noatime);
      return fd === null ? '!ENOTFILE' : { fd, hash: createHash('sha256'), bytes: 0 };
    } catch (e) {
      return `!${(e as NodeJS.ErrnoException).code ?? 'EIO'}`;
    }
  }

  private done(msg: { id: number; digests: string[]; bytes: number }): void {
    const entry = this.inFlight.get(msg.id);
    if (!entry) return;
    this.inFlight.delete(msg.id);
    if (entry.worker) this.load.set(entry.worker, this.load.get(entry.worker)! - 1);
    this.bytesHashed += msg.bytes;
    this.filesHashed += msg.digests.length;
    msg.digests.forEach((d, i) => entry.batch.callbacks[i]!(d.startsWith('!') ? { error: d.slice(1) } : { sha256: d }));
    this.outstanding -= msg.digests.length;
    if (this.belowWaiters.length > 0) {
      const ready = this.belowWaiters.filter((w) => this.outstanding < w.limit);
      this.belowWaiters = this.belowWaiters.filter((w) => this.outstanding >= w.limit);
      ready.forEach((w) => w.resolve());
    }
    this.onProgress?.();
    this.dispatch();
    if (this.inFlight.size === 0 && this.queue.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      waiters.forEach((w) => w());
    }
  }

  private fail(err: Error): void {
    this.failed = err;
    const blocked = this.belowWaiters;
    this.belowWaiters = [];
    blocked.forEach((w) => w.resolve());
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((w) => w());
  }
}
