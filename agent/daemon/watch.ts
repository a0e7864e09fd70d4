/**
 * @module Watch the hot paths (chokidar) and hand over changed host paths in coalesced batches: a quiet
 * window ends a burst, a maximum wait bounds it, so a package upgrade touching 5,000 files is one
 * event report, not 5,000. When the kernel runs out of inotify watches the watcher says so and stops;
 * the scheduled scans still run, so nothing goes unseen for longer than a scan interval.
 */
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../log.js';
import type { HostRoot } from '../root.js';

export type WatchState =
  | { state: 'off' }
  | { state: 'active'; paths: string[] }
  | { state: 'degraded'; reason: string };

export interface WatchOptions {
  quietMs?: number;
  maxWaitMs?: number;
  /** Host paths never reported (the agent's own state directory, its spool). */
  exclude?: readonly string[];
  /** Called with each changed host path as it arrives, before the batch closes. */
  onPath?: (hostPath: string) => void;
}

export class ChangeWatcher {
  private watcher: FSWatcher | null = null;
  private pending = new Set<string>();
  private quietTimer: NodeJS.Timeout | null = null;
  private maxTimer: NodeJS.Timeout | null = null;
  status: WatchState = { state: 'off' };

  constructor(
    private readonly root: HostRoot,
    private readonly hostPaths: readonly string[],
    private readonly onBatch: (paths: string[]) => void,
    private readonly log: Logger,
    private readonly opts: WatchOptions = {},
  ) {}

  async start(): Promise<void> {
    const real = this.hostPaths.map((p) => this.root.path(p));
    const exclude = (this.opts.exclude ?? []).map((p) => this.root.path(p));
    const w = watch(real, {
      ignoreInitial: true,
      followSymlinks: false,
      persistent: true,
      ignored: (path: string) => exclude.some((e) => path === e || path.startsWith(e + '/')),
    });
    this.watcher = w;
    // chokidar reports every symlink it meets in its initial walk as added, ignoreInitial or not
    // (paulmillr/chokidar#804, #1270): nothing before 'ready' is a change (the first scan follows the watcher's start).
    let ready = false;
    w.on('all', (_event, path) => {
      if (ready) this.add(path);
    });
    w.on('error', (err) => this.fail(err as NodeJS.ErrnoException));
    await new Promise<void>((resolve) => w.once('ready', () => resolve()));
    ready = true;
    if (this.status.state !== 'degraded') this.status = { state: 'active', paths: [...this.hostPaths] };
  }

  async close(): Promise<void> {
    this.flush();
    if (this.quietTimer) clearTimeout(this.quietTimer);
    if (this.maxTimer) clearTimeout(this.maxTimer);
    await this.watcher?.close();
    this.watcher = null;
  }

  private add(realPath: string): void {
    const hostPath = this.root.toHost(realPath);
    this.pending.add(hostPath);
    this.opts.onPath?.(hostPath);
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => this.flush(), this.opts.quietMs ?? 300);
    this.maxTimer ??= setTimeout(() => this.flush(), this.opts.maxWaitMs ?? 3000);
  }

  private flush(): void {
    if (this.quietTimer) clearTimeout(this.quietTimer);
    if (this.maxTimer) clearTimeout(this.maxTimer);
    this.quietTimer = this.maxTimer = null;
    if (this.pending.size === 0) return;
    const batch = [...this.pending].sort();
    this.pending = new Set();
    this.onBatch(batch);
  }

  private fail(err: NodeJS.ErrnoException): void {
    if (err.code === 'ENOSPC' || err.code === 'EMFILE') {
      // The kernel's inotify limit (fs.inotify.max_user_watches) is reached: fall back to scans, loudly.
      this.status = {
        state: 'degraded',
        reason: `${err.code}: out of inotify watches; falling back to scheduled scans (raise fs.inotify.max_user_watches)`,
      };
      this.log.error({ code: err.code }, this.status.reason);
      void this.watcher?.close();
      this.watcher = null;
      return;
    }
    this.log.warn({ err }, 'file watcher error');
  }
}
