/** @module The report an agent sends stays within the controller's limits, without hiding what it found. */
import { describe, expect, it } from 'vitest';
import { boundCollectors, capDeviations } from '../../agent/report.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import { LIMITS } from '../../shared/schema/limits.js';
import { CollectorResultSchema } from '../../shared/schema/report.js';

const dev = (key: string, severity: Deviation['severity'], collector: Deviation['collector'] = 'files'): Deviation => ({
  collector,
  key,
  change: 'added',
  expected: null,
  actual: { type: 'file' },
  severity,
});

describe('capDeviations', () => {
  it('keeps everything under the limit', () => {
    const devs = [dev('/a', 'low'), dev('/b', 'high')];
    expect(capDeviations(devs, [], 2)).toEqual({ deviations: devs, collectors: [] });
  });

  it('past the limit keeps the most severe, in their order, and warns each collector that lost some', () => {
    const devs = [
      dev('/a', 'low'),
      dev('k', 'critical', 'packages'),
      dev('/b', 'medium'),
      dev('/c', 'low'),
      dev('/d', 'high'),
    ];
    const collectors = [
      { collector: 'files' as const, ok: true, durationMs: 1, items: 9 },
      { collector: 'packages' as const, ok: true, durationMs: 1, items: 3 },
    ];
    const out = capDeviations(devs, collectors, 3);
    expect(out.deviations.map((d) => d.key)).toEqual(['k', '/b', '/d']);
    expect(out.collectors[0]!.warnings).toEqual([
      '2 deviations not sent: a report carries at most 3 (the most severe were kept)',
    ]);
    expect(out.collectors[1]).toEqual(collectors[1]);
  });

  it('leaves out a deviation whose key is longer than the store can index, with a warning', () => {
    const long = dev(`/${'d/'.repeat(LIMITS.maxKeyBytes)}`, 'high');
    const out = capDeviations([dev('/a', 'low'), long], [{ collector: 'files', ok: true, durationMs: 1, items: 2 }]);
    expect(out.deviations.map((d) => d.key)).toEqual(['/a']);
    expect(out.collectors[0]!.warnings).toEqual([
      `1 deviations not sent: their keys are longer than ${LIMITS.maxKeyBytes} bytes`,
    ]);
  });
});

describe('boundCollectors', () => {
  it('clips long texts and counts the warnings past the limit, so the controller takes the result', () => {
    const [c] = boundCollectors([
      {
        collector: 'cron',
        ok: false,
        durationMs: 1,
        items: 0,
        error: 'e'.repeat(LIMITS.maxMessage * 2),
        warnings: Array.from({ length: 250 }, (_, i) => `w${i}`),
      },
    ]);
    expect(c!.error).toHaveLength(LIMITS.maxMessage);
    expect(c!.warnings).toHaveLength(LIMITS.maxWarnings);
    expect(c!.warnings!.at(-1)).toBe('151 more warnings');
    expect(() => CollectorResultSchema.parse(c)).not.toThrow();
  });
});
