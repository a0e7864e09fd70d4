/**
 * @module The controller's periodic work: hosts that stop reporting become silent and, after the longer
 * grace period, tainted; hosts whose full scans stop (heartbeats alone prove nothing) are tainted after
 * scanMaxAge; and retention passes (retention.ts) run one at a time.
 */
import type { Logger } from 'pino';
import { recordTransition } from './event-stream.js';
import { pruneOnce, pruneReports, type RetentionOptions } from './retention.js';
import { next } from './states.js';
import type { HostRow, HostState, Store } from './store/types.js';

export interface BackgroundOptions {
  store: Store;
  log: Logger;
  clock: () => Date;
  silentAfterMs: number;
  taintSilentAfterMs: number;
  /** The longest a host may go without a full scan reaching us before it is tainted. */
  scanMaxAgeMs: number;
  /** Report age for pruneOldReports; the controller itself runs `retention` instead. */
  reportRetentionMs: number;
  /** Everything retention covers (config `retention`); without it only reports are pruned by age. */
  retention?: Omit<RetentionOptions, 'store' | 'log' | 'clock'> & { onPass?: (seconds: number) => void };
  /** When this controller started: nobody is silent for longer than we have been listening. */
  startedAt: Date;
}

const BATCH = 500;

type Step = {
  afterMs: number;
  states: HostState[];
  event: 'silent' | 'long-silence' | 'scan-overdue';
  /** The hosts past the threshold, oldest first, and the time the threshold is measured from. */
  list: (before: string, states: HostState[], limit: number) => Promise<HostRow[]>;
  since: (h: HostRow) => string;
};

function label(ms: number): string {
  return `${Math.round(ms / 60000)}m`;
}

/** One pass of silence detection (contact and full scans); returns how many hosts moved. */
export async function detectSilence(o: BackgroundOptions): Promise<number> {
  const now = o.clock();
  const up = now.getTime() - o.startedAt.getTime();
  let moved = 0;
  const steps: Step[] = [
    {
      afterMs: o.taintSilentAfterMs,
      states: ['pending', 'clean', 'drifted', 'silent'],
      event: 'long-silence',
      list: (b, s, n) => o.store.listHostsSeenBefore(b, s, n),
      since: (h) => h.lastSeenAt ?? h.enrolledAt,
    },
    // IMPORTANT: measured from the receipt of the last scan, never from the host's own scannedAt.
    {
      afterMs: o.scanMaxAgeMs,
      states: ['pending', 'clean', 'drifted', 'silent'],
      event: 'scan-overdue',
      list: (b, s, n) => o.store.listHostsScannedBefore(b, s, n),
      since: (h) => h.lastScanAt ?? h.enrolledAt,
    },
    {
      afterMs: o.silentAfterMs,
      states: ['pending', 'clean', 'drifted'],
      event: 'silent',
      list: (b, s, n) => o.store.listHostsSeenBefore(b, s, n),
      since: (h) => h.lastSeenAt ?? h.enrolledAt,
    },
  ];
  for (const step of steps) {
    // After a controller restart every host looks silent until it has had a chance to report. For
    // scans that chance is the ordinary grace period (spooled scans are sent first on reconnect), not
    // scanMaxAge itself, or every restart would switch the check off for a day.
    const wait = step.event === 'scan-overdue' ? Math.min(o.silentAfterMs, step.afterMs) : step.afterMs;
    if (up < wait) continue;
    const before = new Date(now.getTime() - step.afterMs).toISOString();
    for (;;) {
      const hosts = await step.list(before, step.states, BATCH);
      if (hosts.length === 0) break;
      for (const h of hosts) {
        // Counted after the commit: on PostgreSQL a transaction aborted by a deadlock runs again.
        const changed = await o.store.transaction(async (tx) => {
          const host = await tx.lockHost(h.id);
          if (!host || !step.states.includes(host.state) || step.since(host) >= before) return false;
          const t = next(host.state, { type: step.event, after: label(step.afterMs) });
          if (!t.changed) return false;
          const at = now.toISOString();
          await tx.updateHost(host.id, {
            state: t.state,
            stateSince: at,
            ...(t.state === 'tainted' ? { taintedAt: at } : {}),
          });
          await recordTransition(
            tx,
            { hostId: host.id, hostname: host.hostname, imageId: host.imageId, group: host.group },
            { from: host.state, to: t.state, cause: t.cause, actor: 'controller', at, reportId: null },
          );
          if (t.state === 'tainted')
            await tx.appendAudit({
              at,
              actor: 'controller',
              action: 'host.taint',
              target: host.id,
              detail: { cause: t.cause },
            });
          return true;
        });
        if (changed) moved++;
      }
      if (hosts.length < BATCH) break;
    }
  }
  if (moved > 0) o.log.warn({ moved }, 'hosts went silent or stopped sending full scans');
  return moved;
}

/** Reports past `reportRetentionMs`, with retention's keep rules (a host's newest report, taint evidence). */
export async function pruneOldReports(o: BackgroundOptions): Promise<number> {
  const n = await pruneReports({
    store: o.store,
    log: o.log,
    clock: o.clock,
    eventCursors: [],
    policy: {
      reports: { maxAgeMs: o.reportRetentionMs, maxPerHost: null },
      events: { maxAgeMs: null },
      audit: { maxAgeMs: null },
      resolvedFindings: { maxAgeMs: null },
    },
  });
  if (n > 0) o.log.info({ pruned: n }, 'pruned old reports');
  return n;
}

/** One retention pass: `retention` when configured, else reports by age. */
export async function runRetention(o: BackgroundOptions): Promise<number> {
  if (!o.retention) return pruneOldReports(o);
  const started = performance.now();
  const r = await pruneOnce({ ...o.retention, store: o.store, log: o.log, clock: o.clock });
  o.retention.onPass?.((performance.now() - started) / 1000);
  return r.reports + r.findings + r.audit + r.events;
}

/** Runs both on timers until the returned stop() is called; a failing pass is logged and retried next time. */
export function startBackground(
  o: BackgroundOptions,
  intervals = { silenceMs: 30_000, pruneMs: 3_600_000 },
): () => void {
  const run = (what: string, fn: () => Promise<unknown>) => {
    // A pass that outlasts its interval (a first prune of a large database) is not started twice.
    let busy = false;
    return () => {
      if (busy) return;
      busy = true;
      fn()
        .catch((err: unknown) => o.log.error({ err }, `${what} failed`))
        .finally(() => {
          busy = false;
        });
    };
  };
  const a = setInterval(
    run('silence detection', () => detectSilence(o)),
    intervals.silenceMs,
  );
  const b = setInterval(
    run('retention', () => runRetention(o)),
    intervals.pruneMs,
  );
  a.unref();
  b.unref();
  return () => {
    clearInterval(a);
    clearInterval(b);
  };
}
