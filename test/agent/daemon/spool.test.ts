/**
 * The spool on its own: order, heartbeat coalescing, the bound (oldest first, never the newest scan,
 * the loss counted), and the two races the agent service met in its end-to-end tests: an entry gone
 * between list and read, and `agent status` (another process) listing while the daemon writes.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Spool } from '../../../agent/daemon/spool.js';
import { REPORT_SCHEMA_ID, type Report } from '../../../shared/schema/report.js';
import { tempDir } from '../../helpers/tmp.js';

function report(seq: number, kind: Report['kind'], padding = 0): Report {
  return {
    schema: REPORT_SCHEMA_ID,
    kind,
    reportId: randomUUID(),
    hostId: 'h1',
    imageId: 'img-1',
    manifestDigest: `sha256:${'0'.repeat(64)}`,
    agentVersion: 'test',
    seq,
    scannedAt: new Date(0).toISOString(),
    digests: {},
    collectors: [],
    deviations: [],
    inventory: { hostId: 'h1', hostname: 'x'.repeat(padding), os: null, kernel: null, addresses: [] },
  };
}

describe('Spool', () => {
  it('lists oldest first and keeps only the newest waiting heartbeat', () => {
    const s = new Spool(join(tempDir(), 'spool'));
    s.add(report(1, 'scan'));
    s.add(report(2, 'heartbeat'));
    s.add(report(3, 'event'));
    s.add(report(4, 'heartbeat'));
    expect(s.list().map((e) => `${e.seq}:${e.kind}`)).toEqual(['1:scan', '3:event', '4:heartbeat']);
  });

  it('drops the oldest past its bound, never the newest scan, and counts what it dropped', () => {
    const s = new Spool(join(tempDir(), 'spool'), 3000);
    s.add(report(1, 'scan', 800));
    s.add(report(2, 'event', 800));
    s.add(report(3, 'scan', 800));
    s.add(report(4, 'event', 800));
    s.add(report(5, 'event', 800));
    const left = s.list();
    expect(left.reduce((n, e) => n + e.bytes, 0)).toBeLessThanOrEqual(3000);
    // Room for two: the newest scan (3) outlives the newer event 4, which was older than 5.
    expect(left.map((e) => e.seq)).toEqual([3, 5]);
    expect(s.dropped()).toBe(3);
    s.clearDropped(s.dropped());
    expect(s.dropped()).toBe(0);
  });

  it('reads an entry that went away since it was listed as null, not an error', () => {
    const s = new Spool(join(tempDir(), 'spool'));
    s.add(report(1, 'heartbeat'));
    const [entry] = s.list();
    s.add(report(2, 'heartbeat'));
    expect(s.read(entry!)).toBeNull();
    expect(s.read(s.list()[0]!)?.seq).toBe(2);
  });

  it("removes a dead writer's temp file but leaves one whose writer still runs", () => {
    const dir = join(tempDir(), 'spool');
    const s = new Spool(dir);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout;
    const mine = `.000000000007-heartbeat-${randomUUID()}.json.${process.pid}.tmp`;
    const crashed = `.000000000006-scan-${randomUUID()}.json.${dead}.tmp`;
    writeFileSync(join(dir, mine), '{');
    writeFileSync(join(dir, crashed), '{');
    expect(s.list()).toEqual([]);
    expect(existsSync(join(dir, mine))).toBe(true);
    expect(readdirSync(dir)).not.toContain(crashed);
  });

  it('sets a refused report aside with its reason', () => {
    const s = new Spool(join(tempDir(), 'spool'));
    s.add(report(1, 'scan'));
    s.reject(s.list()[0]!, '409: wrong image');
    expect(s.list()).toEqual([]);
    expect(s.rejected()).toBe(1);
  });
});
