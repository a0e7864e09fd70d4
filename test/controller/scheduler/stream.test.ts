/**
 * @module The scheduler in the event stream: its host state changes, breaker trips and final
 * failures are events (in the transaction that decides them), so the SIEM feed, the chat notifier
 * and `driftwarden audit verify` see them like ingest's.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../controller/app.js';
import { ControllerConfigSchema } from '../../../controller/config.js';
import { createMetrics } from '../../../controller/metrics.js';
import { createScheduler } from '../../../controller/scheduler/index.js';
import { chatSink, forwardOnce } from '../../../controller/siem/forwarder.js';
import { DeviceConfigStateChangeSchema } from '../../../controller/siem/ocsf.js';
import { verifyWebhook } from '../../../controller/siem/webhook.js';
import { openStore } from '../../../controller/store/index.js';
import type { EventRow } from '../../../controller/store/types.js';
import { verifyChain } from '../../../controller/verify-history.js';
import { Harness, MINUTE, silentLog } from '../harness.js';
import { FakeProvider } from './fixtures.js';

/** A chat webhook on localhost that records what it was sent and whether the signature held. */
async function chatReceiver(secret: string) {
  const got: { msg: { kind: string; text: string; fields: { title: string; value: string }[] }; signed: boolean }[] =
    [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ msg: JSON.parse(body), signed: verifyWebhook(secret, req.headers, body) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/chat`,
    got,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('scheduler events in the stream', () => {
  let h: Harness;
  let provider: FakeProvider;
  let chat: Awaited<ReturnType<typeof chatReceiver>>;
  const sink = () => chatSink(chat.url, Buffer.from('chat-secret'));

  beforeEach(async () => {
    const scheduler = {
      mode: 'enforce',
      provider: { type: 'exec', command: ['/bin/false'] },
      budgets: [{ group: '*', maxUnavailable: 1 }],
      retry: { maxAttempts: 2, backoff: '1m' },
      quietFor: '2m',
    };
    const store = await openStore('sqlite::memory:');
    h = await Harness.start(store, { config: { scheduler } });
    provider = new FakeProvider();
    const config = ControllerConfigSchema.parse({ store: 'sqlite::memory:', scheduler });
    const s = createScheduler({ store, config, log: silentLog, clock: h.clock.now, makeProvider: () => provider });
    await h.app.close();
    h.app = await buildApp({
      store,
      config,
      policy: h.policy,
      trustedKeys: [h.key.publicKey],
      log: silentLog,
      metrics: createMetrics(),
      clock: h.clock.now,
      scheduler: s,
    });
    chat = await chatReceiver('chat-secret');
    for (let i = 0; i < 10; i++) expect((await (await h.enroll(`web-${i}`, { group: 'web' })).scan()).status).toBe(200);
    await forwardOnce(h.store, sink(), h.clock.now); // the notifier starts from here
  });
  afterEach(async () => {
    await chat.close();
    await h.close();
  });

  const tick = async () => (await h.req('POST', '/api/v1/scheduler/tick', { token: h.tokens.admin })).body;
  const rawEvents = async (): Promise<EventRow[]> =>
    (await h.get('/api/v1/events?format=raw&limit=5000')).text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as EventRow);
  const stateEvents = async (host: string) =>
    (await rawEvents())
      .filter((e) => e.kind === 'state' && e.hostId === host)
      .map((e) => `${e.detail.from} -> ${e.detail.to} (${e.actor})`);

  it('a replacement that fails after its retries is a replacement-failed event and one chat message; its attempts are state changes, not new taints', async () => {
    provider.replaceOutcomes.set('web-0', ['fail', 'fail']);
    expect((await h.hosts.get('web-0')!.upgrade('openssl', '3.0.99-1').scan()).status).toBe(200);
    expect(await tick()).toMatchObject({ scheduled: 1, failed: 1 });
    h.clock.advance(2 * MINUTE);
    expect(await tick()).toMatchObject({ scheduled: 1, failed: 1 });
    expect((await h.get('/api/v1/replacements')).body.replacements[0]).toMatchObject({
      hostId: 'web-0',
      state: 'failed',
      attempts: 2,
    });

    expect(await stateEvents('web-0')).toEqual([
      expect.stringMatching(/^null -> pending \(token:/),
      'pending -> clean (policy)',
      'clean -> tainted (policy)',
      'tainted -> replacement-scheduled (controller)',
      'replacement-scheduled -> tainted (controller)',
      'tainted -> replacement-scheduled (controller)',
      'replacement-scheduled -> tainted (controller)',
    ]);
    const failed = (await rawEvents()).filter((e) => e.kind === 'replacement-failed');
    expect(failed).toHaveLength(1); // the retry was not final; only the last attempt pages
    expect(failed[0]).toMatchObject({
      hostId: 'web-0',
      actor: 'controller',
      detail: { group: 'web', provider: 'fake', attempt: 2, error: expect.stringMatching(/platform refused web-0/) },
    });

    const ocsf = (await h.get('/api/v1/events?limit=5000')).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const mapped = ocsf.find((e) => e.activity_name === 'replacement-failed');
    expect(DeviceConfigStateChangeSchema.safeParse(mapped).success).toBe(true);
    expect(mapped).toMatchObject({
      severity_id: 4,
      message: expect.stringMatching(/replacement of host web-0 failed: .*platform refused/),
      device: { uid: 'web-0', groups: [{ name: 'web' }] },
    });

    await forwardOnce(h.store, sink(), h.clock.now);
    expect(chat.got.map((g) => g.msg.kind)).toEqual(['host.tainted', 'replacement.failed']);
    expect(chat.got.every((g) => g.signed)).toBe(true);
    expect(chat.got[1]!.msg.fields).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ title: 'provider', value: 'fake' }),
        expect.objectContaining({ title: 'attempt', value: '2' }),
        expect.objectContaining({ title: 'group', value: 'web' }),
      ]),
    );

    expect(await verifyChain(h.store, 'events')).toMatchObject({ ok: true });
    expect(await verifyChain(h.store, 'audit')).toMatchObject({ ok: true });
  });

  it("a breaker trip is a breaker-tripped event with the share and threshold, and a chat message; a replacement's steps are state changes", async () => {
    expect((await h.hosts.get('web-0')!.upgrade('openssl', '3.0.99-1').scan()).status).toBe(200);
    await tick(); // web-0 replacing
    provider.done.add('web-0');
    h.clock.advance(3 * MINUTE); // web-0 falls quiet; the others keep reporting
    for (let i = 1; i < 10; i++) await h.hosts.get(`web-${i}`)!.send({ kind: 'heartbeat' });
    await tick();
    expect(await stateEvents('web-0')).toEqual([
      expect.stringMatching(/^null -> pending \(token:/),
      'pending -> clean (policy)',
      'clean -> tainted (policy)',
      'tainted -> replacement-scheduled (controller)',
      'replacement-scheduled -> replacing (controller)',
      'replacing -> replaced (controller)',
    ]);

    for (const i of [1, 2, 3, 4])
      expect((await h.hosts.get(`web-${i}`)!.upgrade('curl', '8.0.0-1').scan()).status).toBe(200);
    expect((await tick()).tripped).toEqual(['web']);
    const trips = (await rawEvents()).filter((e) => e.kind === 'breaker-tripped');
    expect(trips).toHaveLength(1);
    expect(trips[0]).toMatchObject({
      hostId: null,
      actor: 'controller',
      detail: {
        group: 'web',
        pausedBy: 'breaker',
        threshold: 0.3,
        tainted: 4,
        total: 9,
        taintedShare: 0.444,
        reason: expect.stringMatching(/4 of 9 hosts/),
      },
    });
    const mapped = (await h.get(`/api/v1/events?since=${trips[0]!.id - 1}&limit=1`)).text.trim();
    expect(JSON.parse(mapped)).toMatchObject({
      class_uid: 5019,
      activity_name: 'breaker-tripped',
      device: { name: 'fleet', groups: [{ name: 'web' }] },
      message: expect.stringMatching(/paused in group web by the breaker/),
    });

    await forwardOnce(h.store, sink(), h.clock.now);
    const kinds = chat.got.map((g) => g.msg.kind);
    expect(kinds.filter((k) => k === 'host.tainted')).toHaveLength(5);
    expect(kinds.filter((k) => k === 'breaker.tripped')).toHaveLength(1);
    const trip = chat.got.find((g) => g.msg.kind === 'breaker.tripped')!.msg;
    expect(trip.text).toMatch(/replacements paused in group web: 4 of 9 hosts/);
    expect(trip.fields).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ title: 'tainted share', value: '0.444' }),
        expect.objectContaining({ title: 'threshold', value: '0.3' }),
      ]),
    );

    // An operator's pause stops the group the same way and is told the same way, naming who.
    await h.req('POST', '/api/v1/replacement-groups/web/resume', { token: h.tokens.operator });
    expect(
      (
        await h.req('POST', '/api/v1/replacement-groups/web/pause', {
          token: h.tokens.operator,
          body: { reason: 'image rollout' },
        })
      ).status,
    ).toBe(200);
    await forwardOnce(h.store, sink(), h.clock.now);
    expect(chat.got.at(-1)!.msg).toMatchObject({
      kind: 'breaker.tripped',
      text: expect.stringMatching(/image rollout \(paused by /),
    });

    expect(await verifyChain(h.store, 'events')).toMatchObject({ ok: true });
    expect(await verifyChain(h.store, 'audit')).toMatchObject({ ok: true });
  });
});
