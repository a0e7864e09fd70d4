/** @module The one interface every collector implements, and what it is handed. */
import type { CollectionRules } from '../../shared/schema/rules.js';
import type { CollectorName } from '../../shared/schema/common.js';
import type { ItemTypes } from '../../shared/schema/items.js';
import type { ExecFn } from '../exec.js';
import type { Logger } from '../log.js';
import type { HostRoot } from '../root.js';
import type { StatCache } from './stat-cache.js';

export interface ScanProgress {
  /** Called as regular files are hashed; totals are known once the walk has finished. */
  onHashProgress?(done: { files: number; bytes: number }, total: { files: number; bytes: number }): void;
}

export interface CollectContext {
  root: HostRoot;
  rules: CollectionRules;
  exec: ExecFn;
  log: Logger;
  /** Unchanged files (same inode, size, mtime, ctime) take their hash from here instead of being read. */
  statCache?: StatCache;
  /** Ignore the stat cache and read every file: the slow schedule that defeats a reset clock. */
  fullRehash?: boolean;
  progress?: ScanProgress;
  /** Aborted by the agent's watchdog: a long collector stops at its next batch, with the reason. */
  signal?: AbortSignal;
  /** Called between batches; sleeps when the scan is over its CPU share. */
  pace?: () => Promise<void>;
  /** Hash worker threads (default: one per core). The agent uses as many as its CPU share allows. */
  hashWorkers?: number;
  /** Batches the file walk may run ahead of the collector (default: no limit); the agent keeps it low for memory. */
  walkAhead?: number;
}

export interface CollectOutput<I> {
  items: I[];
  /** Things skipped or degraded that an operator may want to know; the collection still succeeded. */
  warnings: string[];
}

export interface Collector<N extends CollectorName = CollectorName> {
  name: N;
  // What it reads, its fields and its docs live in the registry, shared/collectors.ts.
  collect(ctx: CollectContext): Promise<CollectOutput<ItemTypes[N]>>;
}
