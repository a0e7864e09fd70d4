/**
 * @module Operator actions on one host, on a real store (run on SQLite and PostgreSQL): reset (the old
 * credential is refused, the id enrolls again once and re-pins its identity), forget (out of the fleet
 * views and counts, credential refused for good, history kept) and re-check (the heartbeat answer asks
 * for a scan until one arrives, across a restart). Each is an operator's and audited.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SCAN_REQUEST_RESEND_MS } from '../../controller/ingest.js';
import type { Store } from '../../controller/store/types.js';
import { Harness, HostSim, IMAGE, MINUTE } from './harness.js';

export function runHostActionSuite(label: string, newStore: () => Promise<Store>): void {
  describe(`host actions (${label})`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await Harness.start(await newStore());
    });
    afterEach(async () => {
      await h.close();
    });

    const audit = async (action: string) =>
      (await h.store.listAudit({ limit: 1000 })).filter((a) => a.action === action);
    const act = (what: 'reset' | 'forget' | 'recheck', id: string, token: string | null = h.tokens.operator) =>
      h.req('POST', `/api/v1/hosts/${id}/${what}`, { token, body: { reason: 'ticket OPS-7' } });
    const enrollAgain = (id: string, hostname = `${id}.example.internal`) =>
      h.req('POST', '/api/v1/enroll', {
        token: h.tokens.agent,
        body: {
          hostId: id,
          hostname,
          imageId: IMAGE,
          group: 'web',
          agentVersion: '0.2.0',
          inventory: {
            hostId: id,
            hostname,
            os: 'Debian GNU/Linux 12',
            kernel: '6.1.0-18-amd64',
            addresses: ['10.0.9.9'],
          },
        },
      });
    const heartbeat = async (sim: HostSim) => {
      const r = await sim.send({ kind: 'heartbeat' });
      expect(r.status, r.text).toBe(200);
      return r.body.scanRequested as boolean;
    };

    it('a viewer, an agent token and a host credential cannot act; nothing changes', async () => {
      const web1 = await h.enroll('web-1');
      const before = await h.snapshot();
      for (const what of ['reset', 'forget', 'recheck'] as const) {
        const viewer = await act(what, 'web-1', h.tokens.viewer);
        expect(viewer.status).toBe(403);
        expect(viewer.body.message).toMatch(/needs role operator; token \S+ has role viewer/);
        expect((await act(what, 'web-1', h.tokens.agent)).status).toBe(403);
        expect((await act(what, 'web-1', web1.credential)).status).toBe(401);
        expect((await act(what, 'web-1', null)).status).toBe(401);
        expect((await act(what, 'no-such-host')).status).toBe(404);
      }
      expect(await h.snapshot()).toEqual(before);
    });

    it('reset: the old credential is refused by name; the id enrolls again once, re-pinned; audited', async () => {
      const web1 = await h.enroll('web-1', { group: 'web' });
      expect((await web1.scan()).status).toBe(200);
      h.clock.advance(MINUTE);
      const r = await act('reset', 'web-1');
      expect(r.status, r.text).toBe(200);
      expect(r.body).toEqual({ hostId: 'web-1', lifecycle: 'reset-pending', resetAt: h.clock.iso() });
      expect(await audit('host.reset')).toMatchObject([
        { actor: h.actor('operator'), target: 'web-1', detail: { state: 'clean', reason: 'ticket OPS-7' } },
      ]);
      expect((await h.get('/api/v1/hosts/web-1')).body.host).toMatchObject({ lifecycle: 'reset-pending' });
      expect((await act('reset', 'web-1')).status).toBe(409);

      const refused = await web1.send({ kind: 'heartbeat' });
      expect(refused.status).toBe(401);
      expect(refused.body.message).toMatch(/host web-1 was reset by an operator .*enroll again/);

      const again = await enrollAgain('web-1', 'web-1-rebuilt.example.internal');
      expect(again.status, again.text).toBe(201);
      const row = await h.host('web-1');
      expect(row).toMatchObject({
        hostname: 'web-1-rebuilt.example.internal',
        enrolledAddresses: ['10.0.9.9'],
        state: 'pending',
        lastSeq: 0,
        resetAt: null,
        agentVersion: '0.2.0',
      });
      expect(await audit('host.re-enroll')).toMatchObject([
        {
          target: 'web-1',
          detail: {
            previous: { hostname: 'web-1.example.internal' },
            pinned: { hostname: 'web-1-rebuilt.example.internal', addresses: ['10.0.9.9'] },
          },
        },
      ]);
      expect((await h.store.listTransitions('web-1')).at(-1)).toMatchObject({
        from: 'clean',
        to: 'pending',
        cause: 're-enrolled after an operator reset',
      });

      // Once: the next enrollment of the id is the usual conflict, and the old credential stays dead.
      expect((await enrollAgain('web-1')).status).toBe(409);
      expect((await web1.send({ kind: 'heartbeat' })).status).toBe(401);
      // The new credential reports from seq 1, as a reinstalled agent does.
      const fresh = new HostSim(h, 'web-1', again.body.credential, IMAGE, h.manifest);
      const scan = await fresh.scan();
      expect(scan.status, scan.text).toBe(200);
      expect(scan.body.state).toBe('clean');
    });

    it('reset does not launder a taint: a tainted host re-enrolls still tainted', async () => {
      const web1 = await h.enroll('web-1');
      web1.upgrade('openssl', '3.0.99');
      expect((await web1.scan()).body.state).toBe('tainted');
      expect((await act('reset', 'web-1')).status).toBe(200);
      expect((await enrollAgain('web-1')).status).toBe(201);
      expect(await h.host('web-1')).toMatchObject({ state: 'tainted', resetAt: null });
    });

    it('a host with an open replacement can be neither reset nor forgotten (409 naming it, nothing changed)', async () => {
      const web1 = await h.enroll('web-1');
      web1.upgrade('openssl', '3.0.99');
      expect((await web1.scan()).body.state).toBe('tainted');
      const rep = await h.req('POST', '/api/v1/replacements', {
        token: h.tokens.operator,
        body: { hostId: 'web-1', reason: 'INC-1' },
      });
      expect(rep.status, rep.text).toBeLessThan(300);
      const before = await h.snapshot();
      for (const what of ['reset', 'forget'] as const) {
        const r = await act(what, 'web-1');
        expect(r.status).toBe(409);
        expect(r.body.message).toMatch(
          new RegExp(`host web-1 has replacement ${rep.body.id} in flight .*cancel or complete it`),
        );
      }
      expect(await h.snapshot()).toEqual(before);
    });

    it('a host that was never reset cannot be enrolled again (409, nothing changed)', async () => {
      await h.enroll('web-1');
      const before = await h.snapshot();
      const r = await enrollAgain('web-1');
      expect(r.status).toBe(409);
      expect(r.body.message).toMatch(/already enrolled/);
      expect(await h.snapshot()).toEqual(before);
    });

    it('forget: out of the fleet views and counts, credential refused, cannot enroll again; history and audit stay', async () => {
      const web1 = await h.enroll('web-1');
      await h.enroll('web-2');
      web1.write('/home/alice/notes.txt', 'drift\n');
      expect((await web1.scan()).body.state).toBe('drifted');
      const r = await act('forget', 'web-1');
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ hostId: 'web-1', lifecycle: 'forgotten' });
      expect(await audit('host.forget')).toMatchObject([
        { actor: h.actor('operator'), target: 'web-1', detail: { state: 'drifted', deviations: 1 } },
      ]);

      const list = await h.get('/api/v1/hosts?count=true');
      expect(list.body.hosts.map((x: { id: string }) => x.id)).toEqual(['web-2']);
      expect(list.body.total).toBe(1);
      expect(await h.store.countHostsByState()).toMatchObject({ drifted: 0, pending: 1 });
      expect(
        await h.store.listHostsSeenBefore(
          new Date(h.clock.now().getTime() + 365 * 24 * 60 * MINUTE).toISOString(),
          ['pending', 'clean', 'drifted'],
          10,
        ),
      ).toMatchObject([{ id: 'web-2' }]);
      expect(await h.store.listDeviations({ limit: 100 })).toEqual([]);

      const detail = await h.get('/api/v1/hosts/web-1');
      expect(detail.status).toBe(200);
      expect(detail.body.host).toMatchObject({ lifecycle: 'forgotten', state: 'drifted' });
      expect(detail.body.timeline.reports).toHaveLength(1);
      expect(detail.body.timeline.transitions.length).toBeGreaterThan(0);

      const refused = await web1.send({ kind: 'heartbeat' });
      expect(refused.status).toBe(401);
      expect(refused.body.message).toMatch(/host web-1 was forgotten \(retired\)/);
      const enroll = await enrollAgain('web-1');
      expect(enroll.status).toBe(409);
      expect(enroll.body.message).toMatch(/forgotten host id cannot enroll again/);
      for (const what of ['forget', 'reset', 'recheck'] as const) expect((await act(what, 'web-1')).status).toBe(409);
    });

    it('re-check: the next heartbeat asks for a scan, once (also from a restarted controller); again only if no scan came', async () => {
      const web1 = await h.enroll('web-1');
      expect((await web1.scan()).status).toBe(200);
      expect(await heartbeat(web1)).toBe(false);

      const r = await act('recheck', 'web-1');
      expect(r.status, r.text).toBe(200);
      expect(r.body).toEqual({ hostId: 'web-1', scanRequestedAt: h.clock.iso() });
      // Stored, not in one controller's memory: a restarted controller (another app on the store) asks.
      await h.app.close();
      h.app = await h.buildApp();
      expect(await heartbeat(web1)).toBe(true);
      // The heartbeats while that scan runs do not start another one.
      expect(await heartbeat(web1)).toBe(false);
      expect(await heartbeat(web1)).toBe(false);
      // No scan came (the answer was lost, the agent restarted): asked again after SCAN_REQUEST_RESEND_MS.
      h.clock.advance(SCAN_REQUEST_RESEND_MS);
      expect(await heartbeat(web1)).toBe(true);
      expect(await heartbeat(web1)).toBe(false);

      expect((await web1.scan()).status).toBe(200);
      expect(await h.host('web-1')).toMatchObject({ scanRequestedAt: null, scanRequestSentAt: null });
      h.clock.advance(SCAN_REQUEST_RESEND_MS);
      expect(await heartbeat(web1)).toBe(false);
      expect(await audit('host.recheck')).toMatchObject([
        { actor: h.actor('operator'), target: 'web-1', detail: { reason: 'ticket OPS-7' } },
      ]);
    });
  });
}
