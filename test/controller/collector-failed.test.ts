/** A collector that failed on the host (or was stopped by the agent's watchdog) is a gap, not tampering. */
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import { Harness } from './harness.js';

describe('a report with a failed collector', () => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('records the gap as a reported integrity deviation and does not taint a clean host', async () => {
    h = await Harness.start(await openStore('sqlite::memory:'));
    const host = await h.enroll('host-a');
    expect((await host.scan()).body.state).toBe('clean');
    const report = host.report();
    // The files collector was stopped: its section is missing from the digests.
    delete report.digests.files;
    report.collectors = report.collectors.map((c) =>
      c.collector === 'files'
        ? { ...c, ok: false, items: 0, error: 'scan stopped by the watchdog: memory 420 MB is over the 400 MB limit' }
        : c,
    );
    const r = await host.send(report);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'accepted', state: 'drifted', digestMismatch: [] });
    const devs = await h.store.listHostDeviations('host-a');
    expect(devs).toEqual([
      expect.objectContaining({
        collector: 'integrity',
        key: 'collector-failed:files',
        action: 'report',
        actual: { value: 'scan stopped by the watchdog: memory 420 MB is over the 400 MB limit' },
      }),
    ]);
  });

  it('still taints when a section that did run does not add up', async () => {
    h = await Harness.start(await openStore('sqlite::memory:'));
    const host = await h.enroll('host-b');
    await host.scan();
    host.upgrade('openssl', '3.0.13-1');
    const report = host.report({ filter: () => false });
    report.collectors = report.collectors.map((c) =>
      c.collector === 'sysctl' ? { ...c, ok: false, error: 'EACCES' } : c,
    );
    const r = await host.send(report);
    expect(r.body).toMatchObject({ state: 'tainted', digestMismatch: ['packages'] });
  });
});
