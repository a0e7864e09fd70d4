import { describe, expect, it } from 'vitest';
import { ScanWatchdog } from '../../agent/daemon/watchdog.js';

/** A fake process: CPU time and memory advance as the test says. */
function fakeProcess() {
  const p = { now: 0, cpuUs: 0, rssMb: 50 };
  return { p, now: () => p.now, usage: () => ({ cpuUs: p.cpuUs, rssMb: p.rssMb }) };
}

describe('the scan watchdog', () => {
  it('paces a scan that uses more than its CPU share, and not one that stays under it', async () => {
    const f = fakeProcess();
    const w = new ScanWatchdog(
      { cpuShare: 0.5, memoryMb: 200, maxDurationMs: 60_000, windowMs: 10_000 },
      f.now,
      f.usage,
    );
    (w as unknown as { sample(): void }).sample();
    f.p.now = 1000;
    f.p.cpuUs = 300_000; // 30 % of a core over a second
    (w as unknown as { sample(): void }).sample();
    expect(w.cpuShareOverWindow()).toBeCloseTo(0.3);
    await w.pace();
    expect(w.throttledMs).toBe(0);
    f.p.now = 2000;
    f.p.cpuUs = 1_900_000; // 95 % over two seconds
    (w as unknown as { sample(): void }).sample();
    await w.pace();
    expect(w.throttledMs).toBeGreaterThan(0);
    expect(w.throttledMs).toBeLessThanOrEqual(1000);
  });

  it('stops a scan over the memory limit or the maximum duration, saying why', () => {
    const f = fakeProcess();
    const w = new ScanWatchdog({ cpuShare: 1, memoryMb: 200, maxDurationMs: 60_000 }, f.now, f.usage);
    f.p.rssMb = 250;
    (w as unknown as { sample(): void }).sample();
    expect(w.signal.aborted).toBe(true);
    expect(String((w.signal.reason as Error).message)).toMatch(/memory 250 MB is over the 200 MB limit/);

    const g = fakeProcess();
    const started = Date.now();
    const v = new ScanWatchdog({ cpuShare: 1, memoryMb: 200, maxDurationMs: 1000 }, () => started + 5000, g.usage);
    (v as unknown as { sample(): void }).sample();
    expect(String((v.signal.reason as Error).message)).toMatch(/ran longer than 1 s/);
  });
});
