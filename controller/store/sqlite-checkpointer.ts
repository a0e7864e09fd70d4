/**
 * @module WAL checkpoints off the event loop: a worker thread with its own SQLite connection copies the
 * WAL back into the database file (and fsyncs it) every few hundred milliseconds, so the controller's
 * commits never run SQLite's automatic checkpoint, which on a slow disk blocked the event loop for tens
 * of milliseconds every ~1,000 pages.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/** How often the worker checkpoints; the WAL grows by at most what is committed in between. */
export const CHECKPOINT_EVERY_MS = 250;

/**
 * WAL pages (4 KB) past which the writer's own connection finishes a checkpoint. A checkpoint running
 * beside a busy writer never catches up with the WAL's end, and SQLite starts the WAL over only after a
 * complete one; the writer completes it cheaply (the worker already copied all but the last few pages).
 */
export const WAL_RESTART_PAGES = 4096;

// CommonJS, evaluated as the worker's source: a .ts file cannot be a worker under vitest, and the
// bundled CLI has no separate file to point at. better-sqlite3 is resolved by the parent.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file, { timeout: 5000 });
let timer = null;
let stopped = false;
const tick = () => {
  try {
    // PASSIVE: copies what no reader still needs, never waits for the writer or blocks it.
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ type: 'checkpoint', log: r.log, checkpointed: r.checkpointed });
    if (r.log > workerData.restartPages) parentPort.postMessage({ type: 'restart' });
  } catch (err) {
    parentPort.postMessage({ type: 'error', message: String(err && err.message || err) });
  }
  if (!stopped) timer = setTimeout(tick, workerData.everyMs);
};
timer = setTimeout(tick, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  stopped = true;
  clearTimeout(timer);
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
  db.close();
  parentPort.postMessage({ type: 'stopped' });
});
`;

export interface Checkpointer {
  stop(): Promise<void>;
}

/**
 * Turns off automatic checkpoints on `raw` and starts the worker for `file`. A checkpoint that fails
 * (e.g. SQLITE_BUSY from another process's checkpoint) is retried at the next tick; `onError` hears it.
 */
export function startCheckpointer(
  raw: Database.Database,
  file: string,
  onError: (message: string) => void,
  everyMs = CHECKPOINT_EVERY_MS,
): Checkpointer {
  const module = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { module, file, everyMs, restartPages: WAL_RESTART_PAGES },
  });
  raw.pragma('wal_autocheckpoint = 0');
  // Once restarted, the WAL file is cut back to this size rather than kept at its largest.
  raw.pragma(`journal_size_limit = ${WAL_RESTART_PAGES * 4096}`);
  worker.unref();
  worker.on('message', (m: { type: string; message?: string }) => {
    if (m.type === 'error') onError(m.message ?? 'checkpoint failed');
    if (m.type !== 'restart' || !raw.open || raw.inTransaction) return; // mid-batch: the next tick asks again
    try {
      raw.pragma('wal_checkpoint(PASSIVE)');
    } catch (err) {
      onError(String(err));
    }
  });
  // A worker that died takes the checkpoints with it: SQLite's own come back rather than a WAL growing forever.
  worker.on('error', (err) => {
    onError(String(err));
    raw.pragma('wal_autocheckpoint = 1000');
  });
  let exited = false;
  worker.once('exit', () => {
    exited = true;
  });
  let stopping: Promise<void> | null = null;
  return {
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        if (exited) return resolve();
        worker.once('exit', () => resolve());
        worker.on('message', (m: { type: string }) => {
          if (m.type === 'stopped') void worker.terminate();
        });
        worker.postMessage('stop');
      });
      return stopping;
    },
  };
}
