/**
 * A host's clock is judged by the stamp its agent puts on each request (x-driftwarden-sent-at) against
 * the controller's clock on receipt, never by the scan time, which a spooled report legitimately keeps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import { SENT_AT_HEADER } from '../../shared/clock-skew.js';
import { Harness, HOUR, MINUTE } from './harness.js';

describe('clock skew', () => {
  let h: Harness;
  const hosts = new Map<string, Awaited<ReturnType<Harness['enroll']>>>();
  afterEach(async () => h?.close());

  async function send(kind: 'scan' | 'heartbeat', skewMs: number | null, hostId = 'host-a') {
    const host = hosts.get(hostId)!;
    const report = host.report({ kind });
    const headers: Record<string, string> =
      skewMs === null ? {} : { [SENT_AT_HEADER]: new Date(h.clock.now().getTime() + skewMs).toISOString() };
    const r = await h.req('POST', '/api/v1/reports', { token: host.credential, body: report, headers });
    if (r.status === 200) host.seq = report.seq;
    return r;
  }
  it('flags a scan from a host hours off as a reported integrity deviation, and clears it when the clock is right', async () => {
    h = await Harness.start(await openStore('sqlite::memory:'));
    hosts.set('host-a', await h.enroll('host-a'));
    expect((await send('scan', -7 * HOUR)).body).toMatchObject({ status: 'accepted', state: 'drifted' });
    const devs = await h.store.listHostDeviations('host-a');
    expect(devs).toEqual([
      expect.objectContaining({
        collector: 'integrity',
        key: 'agent:clock-skew',
        action: 'report',
        actual: { value: `${-7 * 3600} s` },
      }),
    ]);
    // Seen on the controller's clock, whatever the host's says.
    expect((await h.host('host-a')).lastSeenAt).toBe(h.clock.iso());
    // A heartbeat neither raises nor clears it; the next scan with a right clock clears it.
    expect((await send('heartbeat', -7 * HOUR)).status).toBe(200);
    expect((await h.store.listHostDeviations('host-a')).map((d) => d.key)).toEqual(['agent:clock-skew']);
    expect((await send('scan', 2_000)).body).toMatchObject({ status: 'accepted', state: 'clean' });
    expect(await h.store.listHostDeviations('host-a')).toEqual([]);
  });

  it('tolerates five minutes either way, and a request without the stamp', async () => {
    h = await Harness.start(await openStore('sqlite::memory:'));
    hosts.set('host-a', await h.enroll('host-a'));
    expect((await send('scan', 5 * MINUTE - 1_000)).body.state).toBe('clean');
    expect((await send('scan', -(5 * MINUTE - 1_000))).body.state).toBe('clean');
    expect((await send('scan', null)).body.state).toBe('clean');
    expect((await send('scan', 5 * MINUTE + 1_000)).body.state).toBe('drifted');
  });
});
