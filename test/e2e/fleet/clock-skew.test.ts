/**
 * Clock skew between a host and the controller. The controller trusts its own clock: a host is seen
 * (and so not silent) when the controller receives from it, reports are ordered by seq, and the scan
 * time the host wrote is kept as the host's account. A host whose clock is off by more than five
 * minutes gets a report-level integrity deviation (agent:clock-skew) saying by how much; it is
 * drifted, not tainted, and the flag clears with the first scan after its clock is right again.
 *
 * The agent runs with a preload that shifts its wall clock (skewed-clock.mjs); its timers are unaffected.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { until } from '../../helpers/agent-host.js';
import { drained, verifyHost } from './harness.js';
import { Fleet, freshStore } from './fleet.js';

const PRELOAD = fileURLToPath(new URL('./skewed-clock.mjs', import.meta.url));
const HOURS = 3_600_000;

let fleet: Fleet;
afterEach(async () => {
  await fleet.teardown();
});

function skewed(offsetMs: number) {
  return { nodeArgs: ['--import', PRELOAD], env: { DRIFTWARDEN_TEST_CLOCK_OFFSET_MS: String(offsetMs) } };
}

describe('clock skew between a host and the controller', () => {
  it('hosts hours ahead and behind are seen on the controller clock, flagged, and keep their order', async () => {
    fleet = new Fleet();
    const ctl = await fleet.controller({ store: await freshStore('sqlite'), silentAfter: '2m' });
    const path = { kind: 'direct' as const, controllerUrl: ctl.url };
    const ahead = fleet.host({ path, heartbeat: '200ms', scan: '*/2 * * * * *', ...skewed(5 * HOURS) });
    const behind = fleet.host({ path, heartbeat: '200ms', scan: '*/2 * * * * *', ...skewed(-7 * HOURS) });
    const right = fleet.host({ path, heartbeat: '200ms', scan: '*/2 * * * * *' });
    const hosts = [ahead, behind, right];
    for (const h of hosts) await h.start();
    await until(
      async () => {
        for (const h of hosts)
          if ((await fleet.api.reports(h.id).catch(() => [])).filter((r) => r.kind === 'scan').length < 2) return false;
        return true;
      },
      'two scans from every host',
      60_000,
      200,
    );

    for (const [h, offset] of [
      [ahead, 5 * HOURS],
      [behind, -7 * HOURS],
    ] as const) {
      const d = (await fleet.api.host(h.id))!;
      // Seen now, by the controller's clock: a host seven hours behind is not silent.
      expect(Math.abs(Date.parse(d.host.lastSeenAt!) - Date.now())).toBeLessThan(10_000);
      expect(d.host.state).toBe('drifted');
      const flag = d.deviations.find((x) => x.key === 'agent:clock-skew');
      expect(flag).toMatchObject({ collector: 'integrity', action: 'report' });
      const seconds = Number(String((flag!.actual as { value: string }).value).replace(/ s$/, ''));
      expect(Math.abs(seconds * 1000 - offset)).toBeLessThan(60_000);
      // The host's scan time is kept as it said; the receipt time is the controller's.
      for (const r of (await fleet.api.reports(h.id)).slice(0, 2)) {
        expect(Math.abs(Date.parse(r.scannedAt) - Date.parse(r.receivedAt) - offset)).toBeLessThan(60_000);
      }
    }
    expect((await fleet.api.host(right.id))!.host.state).toBe('clean');
    expect((await fleet.api.host(right.id))!.deviations).toEqual([]);

    // The fast host's clock is set right (and later scans say earlier times): its reports still go
    // in, in seq order, and the flag clears with its next scan.
    await ahead.stop();
    ahead.opts.nodeArgs = [];
    ahead.opts.env = {};
    await ahead.start();
    await until(
      async () => !(await fleet.api.host(ahead.id))!.deviations.some((x) => x.key === 'agent:clock-skew'),
      'the skew flag cleared',
      30_000,
      200,
    );
    await drained(hosts);
    for (const h of hosts) await h.stop();
    for (const h of hosts) await verifyHost(fleet.api, h);
    const reports = (await fleet.api.reports(ahead.id)).sort((a, b) => a.seq - b.seq);
    const jumpedBack = reports.findIndex(
      (r, i) => i > 0 && Date.parse(r.scannedAt) < Date.parse(reports[i - 1]!.scannedAt),
    );
    expect(jumpedBack, 'a later scan carries an earlier scan time, and was stored all the same').toBeGreaterThan(0);
    // Drifted only by the skew; once it is gone the next scan finds the host clean again.
    expect((await fleet.api.host(ahead.id))!.host.state).toBe('clean');
  }, 180_000);
});
