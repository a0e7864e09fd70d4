import { describe, expect, it } from 'vitest';
import { ChildWatchdog, procUsage, type ProcUsage } from '../../../agent/daemon/child-watchdog.js';

/** A watchdog stepped by hand: a fake clock and the readings /proc would give. */
function stepped(limits: { memoryMb: number; maxDurationMs: number; cpuShare: number; cpuWindowMs?: number }) {
  let now = 0;
  let reading: ProcUsage | null = { rssMb: 50, cpuMs: 0 };
  const kills: string[] = [];
  const w = new ChildWatchdog(
    1,
    limits,
    (reason) => kills.push(reason),
    () => now,
    () => reading,
  );
  return {
    w,
    kills,
    at(ms: number, r: ProcUsage | null) {
      now = ms;
      reading = r;
      w.sample();
    },
  };
}

describe('ChildWatchdog', () => {
  it('kills the scan process once its resident memory passes limits.memoryMb, once, naming the figure', () => {
    const s = stepped({ memoryMb: 200, maxDurationMs: 60_000, cpuShare: 1 });
    s.at(100, { rssMb: 199, cpuMs: 50 });
    expect(s.kills).toEqual([]);
    s.at(200, { rssMb: 240, cpuMs: 100 });
    s.at(300, { rssMb: 260, cpuMs: 150 });
    expect(s.kills).toHaveLength(1);
    expect(s.kills[0]).toMatch(/240 MB, over the 200 MB limit \(limits\.memoryMb\)/);
    expect(s.w.reason).toBe(s.kills[0]);
    expect(s.w.peakRssMb).toBe(240);
  });

  it('kills a scan that runs past limits.maxScanDuration', () => {
    const s = stepped({ memoryMb: 200, maxDurationMs: 1000, cpuShare: 1 });
    s.at(999, { rssMb: 60, cpuMs: 10 });
    expect(s.kills).toEqual([]);
    s.at(1001, { rssMb: 60, cpuMs: 10 });
    expect(s.kills[0]).toMatch(/longer than 1 s \(limits\.maxScanDuration\)/);
  });

  it('leaves a scan at its CPU share alone, and kills one above twice its share over a whole window', () => {
    const paced = stepped({ memoryMb: 200, maxDurationMs: 600_000, cpuShare: 0.5, cpuWindowMs: 10_000 });
    // 0.9 of a core (its pacing lagging, but within twice the share) for 30 s.
    for (let t = 0; t <= 30_000; t += 1000) paced.at(t, { rssMb: 60, cpuMs: t * 0.9 });
    expect(paced.kills).toEqual([]);
    const runaway = stepped({ memoryMb: 200, maxDurationMs: 600_000, cpuShare: 0.5, cpuWindowMs: 10_000 });
    // A whole core: a burst under a full window is not judged...
    for (let t = 0; t < 10_000; t += 1000) runaway.at(t, { rssMb: 60, cpuMs: t * 1.1 });
    expect(runaway.kills).toEqual([]);
    // ...a full window of it is.
    runaway.at(10_000, { rssMb: 60, cpuMs: 11_000 });
    expect(runaway.kills[0]).toMatch(/1\.10 of a core over 10 s, more than twice its share of 0\.5/);
  });

  it('does nothing once the process is gone', () => {
    const s = stepped({ memoryMb: 10, maxDurationMs: 1, cpuShare: 1 });
    s.at(5, null);
    expect(s.kills).toEqual([]);
  });

  it('reads VmRSS and utime+stime from /proc', () => {
    const u = procUsage(process.pid)!;
    expect(u.rssMb).toBeGreaterThan(10);
    expect(u.cpuMs).toBeGreaterThan(0);
    expect(procUsage(2 ** 22 + 1)).toBeNull();
  });
});
