/** Fitting a report into the controller's limits: whole when it fits, else its most severe deviations, flagged. */
import { describe, expect, it } from 'vitest';
import { createHash, randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { fitReport } from '../../../agent/daemon/report-size.js';
import { encodeBody, GZIP_THRESHOLD_BYTES } from '../../../agent/daemon/transport.js';
import type { Deviation } from '../../../shared/schema/deviation.js';
import { REPORT_SCHEMA_ID, ReportSchema, type Report } from '../../../shared/schema/report.js';

function report(count: number): Report {
  const deviations: Deviation[] = Array.from({ length: count }, (_, i) => ({
    collector: 'files',
    key: `/opt/bulk/${i}/libplugin-${i}.so`,
    change: 'added',
    expected: null,
    actual: {
      type: 'file',
      mode: '0644',
      uid: 0,
      gid: 0,
      size: 10,
      sha256: createHash('sha256').update(String(i)).digest('hex'),
    },
    severity: i % 10 === 0 ? 'critical' : 'medium',
  }));
  return {
    schema: REPORT_SCHEMA_ID,
    kind: 'scan',
    reportId: randomUUID(),
    hostId: 'host-a',
    imageId: 'img-1',
    manifestDigest: `sha256:${'0'.repeat(64)}`,
    agentVersion: '0.1.0',
    seq: 7,
    scannedAt: new Date().toISOString(),
    digests: {},
    collectors: [],
    deviations,
  };
}

describe('fitReport', () => {
  it('leaves a report that fits as it is', () => {
    const r = report(100);
    expect(fitReport(r, { maxJsonBytes: 1 << 20, maxWireBytes: 1 << 20 }).report).toBe(r);
  });

  it('cuts a report over the limits to its most severe deviations, says how many it left out, and the result fits', () => {
    const r = report(5000);
    const limits = { maxJsonBytes: 200_000, maxWireBytes: 60_000 };
    const { report: fitted } = fitReport(r, limits);
    const json = JSON.stringify(fitted);
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(limits.maxJsonBytes);
    expect(encodeBody(json).bytes.length).toBeLessThanOrEqual(limits.maxWireBytes);
    expect(fitted.truncated).toEqual({ deviations: 5000, sent: fitted.deviations.length });
    expect(fitted.deviations.length).toBeGreaterThan(100);
    // The 500 critical ones go first.
    expect(fitted.deviations.slice(0, 500).every((d) => d.severity === 'critical')).toBe(true);
    expect(ReportSchema.parse(fitted)).toMatchObject({ reportId: r.reportId, seq: 7 });
    // Cut again (a controller with lower limits): still counted against the original 5000.
    const again = fitReport(fitted, limits, Math.floor(fitted.deviations.length / 2)).report;
    expect(again.truncated).toEqual({ deviations: 5000, sent: Math.floor(fitted.deviations.length / 2) });
  });

  it('compresses bodies over the threshold, and only those', () => {
    expect(encodeBody('{"a":1}')).toEqual({ bytes: Buffer.from('{"a":1}'), encoding: null });
    const json = JSON.stringify(report(200));
    expect(json.length).toBeGreaterThan(GZIP_THRESHOLD_BYTES);
    const body = encodeBody(json);
    expect(body.encoding).toBe('gzip');
    expect(gunzipSync(body.bytes).toString()).toBe(json);
  });
});
