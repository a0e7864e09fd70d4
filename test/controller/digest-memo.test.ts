import { describe, expect, it } from 'vitest';
import { checkReportDigests, digestMemoStats } from '../../controller/digest-check.js';
import { createMetrics } from '../../controller/metrics.js';
import { digestOf } from '../../shared/canonical.js';
import { applyDeviations } from '../../shared/diff.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import type { AnyItem } from '../../shared/schema/items.js';
import { bakeManifest, file } from './harness.js';

describe('digest memo counters', () => {
  it('counts a first deviation set as a miss, the same set again as a hit, and shows both on /metrics', async () => {
    const manifest = bakeManifest(`ami-memo-${Date.now()}`, undefined);
    const { key, ...expected } = file('/etc/ssh/sshd_config', 'PermitRootLogin no\n');
    const { key: _k, ...actual } = file(key, 'PermitRootLogin yes\n');
    const devs: Deviation[] = [
      { collector: 'files', key, change: 'modified', expected, actual, fields: ['sha256'], severity: 'high' },
    ];
    const digests = {
      ...manifest.digests.sections,
      files: digestOf(applyDeviations('files', manifest.sections.files!.items as AnyItem[], devs)),
    };
    const before = { ...digestMemoStats };
    expect(checkReportDigests(manifest, digests, devs)).toEqual([]);
    expect(digestMemoStats).toEqual({ hits: before.hits, misses: before.misses + 1 });
    expect(checkReportDigests(manifest, digests, devs)).toEqual([]);
    expect(digestMemoStats).toEqual({ hits: before.hits + 1, misses: before.misses + 1 });

    const text = await createMetrics().registry.metrics();
    expect(text).toContain(`driftwarden_digest_memo_lookups_total{result="hit"} ${before.hits + 1}`);
    expect(text).toContain(`driftwarden_digest_memo_lookups_total{result="miss"} ${before.misses + 1}`);
  });
});
