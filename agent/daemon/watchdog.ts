/**
 * @module The scan watchdog (in the manner of osquery's): the agent is a guest on every host. During a
 * scan it samples the process's CPU time and memory; the scan is paced so its CPU use over the window
 * stays under the configured share of one core, and a scan that exceeds the memory limit or the
 * maximum duration is stopped, and the report says so.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WatchdogLimits {
  /** Fraction of one core the scan may use, averaged over the window (2 = both cores of a 2-core host). */
  cpuShare: number;
  memoryMb: number;
  maxDurationMs: number;
  windowMs?: number;
}

export class ScanWatchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private samples: { at: number; cpuUs: number }[] = [];
  private readonly started = Date.now();
  /** Time spent pacing, for the log. */
  throttledMs = 0;

  constructor(
    private readonly limits: WatchdogLimits,
    private readonly now: () => number = Date.now,
    private readonly usage: () => { cpuUs: number; rssMb: number } = defaultUsage,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), 500);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Called by the scan between batches: sleeps long enough that CPU time over the window falls back to
   * the allowed share. Never sleeps more than a second at a time, so a stop is noticed quickly.
   */
  async pace(): Promise<void> {
    const share = this.cpuShareOverWindow();
    if (share === null || share <= this.limits.cpuShare) return;
    const windowMs = this.windowMs();
    const usedMs = share * windowMs;
    const waitMs = Math.min(1000, Math.max(0, usedMs / this.limits.cpuShare - windowMs));
    if (waitMs <= 0) return;
    this.throttledMs += waitMs;
    await sleep(waitMs);
  }

  /** CPU share of one core over the sampled window, or null before there are two samples. */
  cpuShareOverWindow(): number | null {
    if (this.samples.length < 2) return null;
    const first = this.samples[0]!;
    const last = this.samples[this.samples.length - 1]!;
    const wallUs = (last.at - first.at) * 1000;
    return wallUs > 0 ? (last.cpuUs - first.cpuUs) / wallUs : null;
  }

  private windowMs(): number {
    return this.limits.windowMs ?? 10_000;
  }

  private sample(): void {
    const at = this.now();
    const { cpuUs, rssMb } = this.usage();
    this.samples.push({ at, cpuUs });
    while (this.samples.length > 2 && at - this.samples[0]!.at > this.windowMs()) this.samples.shift();
    if (this.controller.signal.aborted) return;
    if (rssMb > this.limits.memoryMb) {
      this.controller.abort(
        new Error(
          `scan stopped by the watchdog: memory ${Math.round(rssMb)} MB is over the ${this.limits.memoryMb} MB limit`,
        ),
      );
    } else if (at - this.started > this.limits.maxDurationMs) {
      this.controller.abort(
        new Error(`scan stopped by the watchdog: it ran longer than ${Math.round(this.limits.maxDurationMs / 1000)} s`),
      );
    }
  }
}

function defaultUsage(): { cpuUs: number; rssMb: number } {
  const cpu = process.cpuUsage();
  return { cpuUs: cpu.user + cpu.system, rssMb: process.memoryUsage.rss() / 1048576 };
}
