/**
 * @module The controller's periodic work: hosts that stop reporting become silent and, after the longer
 * grace period, tainted; hosts whose full scans stop (heartbeats alone prove nothing) are tainted after
 * scanMaxAge; reports past the retention age are pruned (host history and audit stay).
 */
import type { Logger } from 'pino';
import { recordTransition } from './event-stream.js';
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
  reportRetentionMs: number;
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
        await o.store.transaction(async (tx) => {
          const host = await tx.lockHost(h.id);
          if (!host || !step.states.includes(host.state) || step.since(host) >= before) return;
          const t = next(host.state, { type: step.event, after: label(step.afterMs) });
          if (!t.changed) return;
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
          moved++;
        });
      }
      if (hosts.length < BATCH) break;
    }
  }
  if (moved > 0) o.log.warn({ moved }, 'hosts went silent or stopped sending full scans');
  return moved;
}

export async function pruneOldReports(o: BackgroundOptions): Promise<number> {
  const before = new Date(o.clock().getTime() - o.reportRetentionMs).toISOString();
  const n = await o.store.pruneReports(before);
  if (n > 0) o.log.info({ pruned: n, before }, 'pruned old reports');
  return n;
}

/** Runs both on timers until the returned stop() is called; a failing pass is logged and retried next time. */
export function startBackground(
  o: BackgroundOptions,
  intervals = { silenceMs: 30_000, pruneMs: 3_600_000 },
): () => void {
  const run = (what: string, fn: () => Promise<unknown>) => () => {
    fn().catch((err: unknown) => o.log.error({ err }, `${what} failed`));
  };
  const a = setInterval(
    run('silence detection', () => detectSilence(o)),
    intervals.silenceMs,
  );
  const b = setInterval(
    run('report retention', () => pruneOldReports(o)),
    intervals.pruneMs,
  );
  a.unref();
  b.unref();
  return () => {
    clearInterval(a);
    clearInterval(b);
  };
}
