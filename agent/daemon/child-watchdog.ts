/**
 * @module The scan process's guardrail, run by the long-lived agent (in the manner of osquery's watchdog):
 * it reads the scan child's resident memory and CPU time from /proc/PID and kills the child past its
 * limits. The child cannot talk its way out of it: a scan stuck in a loop, or one whose memory grows
 * faster than its own collector frees it, is stopped from outside, and the agent reports that scan as
 * incomplete.
 */
import { readFileSync } from 'node:fs';

export interface ChildLimits {
  /** Resident memory (VmRSS, MB) past which the child is killed. */
  memoryMb: number;
  /** Wall time past which the child is killed. */
  maxDurationMs: number;
  /**
   * Share of one core the child may use on average. It paces itself to this share; only a child that
   * uses more than twice it over a whole window (its pacing has failed) is killed.
   */
  cpuShare: number;
  /** The CPU window (default 30 s). */
  cpuWindowMs?: number;
  /** How often /proc is read (default 100 ms). */
  sampleMs?: number;
}

export interface ProcUsage {
  rssMb: number;
  /** User + system CPU time of all the process's threads, in ms. */
  cpuMs: number;
}

/** USER_HZ: the unit of /proc/PID/stat's CPU times, 100 on every Linux ABI Node runs on. */
const CLK_TCK = 100;

/** One process's memory and CPU from /proc, or null once it is gone. */
export function procUsage(pid: number, proc = '/proc'): ProcUsage | null {
  try {
    const status = readFileSync(`${proc}/${pid}/status`, 'utf8');
    const stat = readFileSync(`${proc}/${pid}/stat`, 'utf8');
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    // The command name (field 2) may hold spaces and parentheses: count fields from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { rssMb: rssKb / 1024, cpuMs: (ticks * 1000) / CLK_TCK };
  } catch {
    return null;
  }
}

export class ChildWatchdog {
  private timer: NodeJS.Timeout | null = null;
  private readonly started: number;
  private samples: { at: number; cpuMs: number }[] = [];
  /** Why the child was killed, once it was. */
  reason: string | null = null;
  /** The highest resident memory seen, MB. */
  peakRssMb = 0;

  constructor(
    private readonly pid: number,
    private readonly limits: ChildLimits,
    private readonly kill: (reason: string) => void,
    private readonly now: () => number = Date.now,
    private readonly usage: (pid: number) => ProcUsage | null = procUsage,
  ) {
    this.started = now();
  }

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.limits.sampleMs ?? 100);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look at the child; public so tests can step it with a fake clock and fake readings. */
  sample(): void {
    if (this.reason) return;
    const at = this.now();
    const u = this.usage(this.pid);
    if (!u) return;
    this.peakRssMb = Math.max(this.peakRssMb, u.rssMb);
    if (u.rssMb > this.limits.memoryMb) {
      this.stopChild(
        `scan stopped by the watchdog: the scan process used ${Math.round(u.rssMb)} MB, over the ${this.limits.memoryMb} MB limit (limits.memoryMb)`,
      );
    }
    if (at - this.started > this.limits.maxDurationMs) {
      this.stopChild(
        `scan stopped by the watchdog: it ran longer than ${Math.round(this.limits.maxDurationMs / 1000)} s (limits.maxScanDuration)`,
      );
    }
    const windowMs = this.limits.cpuWindowMs ?? 30_000;
    this.samples.push({ at, cpuMs: u.cpuMs });
    while (this.samples.length > 2 && at - this.samples[1]!.at >= windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const span = at - first.at;
    if (span >= windowMs) {
      const share = (u.cpuMs - first.cpuMs) / span;
      if (share > 2 * this.limits.cpuShare)
        this.stopChild(
          `scan stopped by the watchdog: it used ${share.toFixed(2)} of a core over ${Math.round(span / 1000)} s, more than twice its share of ${this.limits.cpuShare} (limits.cpuShare)`,
        );
    }
  }

  private stopChild(reason: string): void {
    if (this.reason) return;
    this.reason = reason;
    this.stop();
    this.kill(reason);
  }
}
