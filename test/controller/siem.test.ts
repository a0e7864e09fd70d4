/**
 * @module Getting events out: RFC 5424 syslog over UDP and TCP (RFC 6587 octet counting), signed
 * webhooks (HMAC-SHA256 over timestamp and body), the forwarders' cursors (nothing lost when a sink
 * fails, nothing sent twice when it does not), chat notifications on taint, and OCSF validation.
 */
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENT_KINDS, recordEvent } from '../../controller/event-stream.js';
import { notificationFor } from '../../controller/notify.js';
import { chatSink, forwardOnce, siemWebhookSink, syslogSink, type Sink } from '../../controller/siem/forwarder.js';
import {
  ComplianceFindingSchema,
  DeviceConfigStateChangeSchema,
  FileSystemActivitySchema,
  toOcsf,
} from '../../controller/siem/ocsf.js';
import { formatSyslog, octetFrame } from '../../controller/siem/syslog.js';
import { signWebhook, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook } from '../../controller/siem/webhook.js';
import { openStore } from '../../controller/store/index.js';
import { Harness, HOUR } from './harness.js';

let h: Harness;
beforeEach(async () => {
  h = await Harness.start(await openStore('sqlite::memory:'));
});
afterEach(async () => {
  await h.close();
});

/** Two hosts: web-1 tainted by a package change, web-2 drifted by a user file. */
async function someDrift() {
  const web1 = await h.enroll('web-1', { group: 'web' });
  const web2 = await h.enroll('web-2', { group: 'web' });
  await web1.scan();
  await web2.scan();
  h.clock.advance(HOUR);
  await web1.upgrade('openssl', '3.0.13-1').scan();
  await web2.write('/home/alice/notes.txt', 'x\n').scan();
}

describe('syslog (RFC 5424)', () => {
  it('formats PRI, version, timestamp, host, app, procid, msgid, no structured data, and a BOM before the UTF-8 message', () => {
    const line = formatSyslog(
      {
        facility: 10,
        severity: 3,
        timestamp: new Date('2026-03-02T09:00:00.123Z'),
        hostname: 'ctl 1',
        appName: 'driftwarden',
        procId: '42',
        msgId: 'ocsf-2003',
      },
      '{"a":"ü"}',
    );
    expect(line).toBe('<83>1 2026-03-02T09:00:00.123Z ctl1 driftwarden 42 ocsf-2003 - \uFEFF{"a":"ü"}');
    expect(
      formatSyslog({ facility: 16, severity: 6, timestamp: new Date(0), hostname: '', appName: 'x' }, 'm'),
    ).toMatch(/^<134>1 1970-01-01T00:00:00\.000Z - x \d+ - - \uFEFFm$/);
  });

  it('frames TCP messages by their length in octets (RFC 6587), not characters', () => {
    expect(octetFrame('héllo\nworld').toString('utf8')).toBe('12 héllo\nworld');
  });

  it('sends every event as one datagram over UDP', async () => {
    await someDrift();
    const server = createSocket('udp4');
    const got: string[] = [];
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
    server.on('message', (m) => got.push(m.toString('utf8')));
    const sink = syslogSink({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      protocol: 'udp',
      appName: 'driftwarden',
      facility: 10,
    });
    try {
      const sent = await forwardOnce(h.store, sink, h.clock.now);
      expect(sent).toBeGreaterThan(0);
      await expect.poll(() => got.length).toBe(sent);
      for (const m of got) {
        const [, pri, json] = /^<(\d+)>1 \S+ \S+ driftwarden \S+ ocsf-\d+ - \uFEFF(.*)$/s.exec(m)!;
        expect(Number(pri) >> 3).toBe(10);
        expect(JSON.parse(json!).metadata.version).toBe('1.3.0');
      }
    } finally {
      sink.close?.();
      server.close();
    }
  });

  it('sends octet-counted frames over one TCP connection', async () => {
    await someDrift();
    let buf = Buffer.alloc(0);
    let connections = 0;
    const server = createTcpServer((s) => {
      connections++;
      s.on('data', (d) => (buf = Buffer.concat([buf, d])));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const sink = syslogSink({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      protocol: 'tcp',
      appName: 'driftwarden',
      facility: 10,
    });
    try {
      const sent = await forwardOnce(h.store, sink, h.clock.now);
      await h.hosts.get('web-2')!.upgrade('curl', '8.0.0-1').scan();
      const more = await forwardOnce(h.store, sink, h.clock.now);
      // Parse the stream the way a receiver must: LEN SP then exactly LEN octets.
      const frames: string[] = [];
      await expect
        .poll(() => {
          frames.length = 0;
          let rest = buf;
          while (rest.length > 0) {
            const sp = rest.indexOf(0x20);
            const len = Number(rest.subarray(0, sp).toString('ascii'));
            if (rest.length < sp + 1 + len) break;
            frames.push(rest.subarray(sp + 1, sp + 1 + len).toString('utf8'));
            rest = rest.subarray(sp + 1 + len);
          }
          return frames.length;
        })
        .toBe(sent + more);
      expect(frames.every((f) => /^<\d+>1 /.test(f))).toBe(true);
      expect(connections).toBe(1);
    } finally {
      sink.close?.();
      server.close();
    }
  });
});

/** A webhook receiver that checks signatures with `secret` and can be told to fail. */
async function receiver(secret: string) {
  const bodies: { body: string; signed: boolean; headers: IncomingMessage['headers'] }[] = [];
  let failNext = 0;
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (failNext > 0) {
        failNext--;
        res.writeHead(503).end();
        return;
      }
      bodies.push({ body, signed: verifyWebhook(secret, req.headers, body), headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    fail: (n: number) => (failNext = n),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('signed webhooks', () => {
  it('the signature is HMAC-SHA256 over "timestamp.body"; a changed body, secret or stale timestamp fails verification', () => {
    const ts = 1_770_000_000;
    const sig = signWebhook('s3cret', ts, '{"a":1}');
    expect(sig).toMatch(/^v1=[0-9a-f]{64}$/);
    const headers = { [TIMESTAMP_HEADER]: String(ts), [SIGNATURE_HEADER]: sig };
    expect(verifyWebhook('s3cret', headers, '{"a":1}', ts * 1000)).toBe(true);
    expect(verifyWebhook('s3cret', headers, '{"a":2}', ts * 1000)).toBe(false);
    expect(verifyWebhook('other', headers, '{"a":1}', ts * 1000)).toBe(false);
    expect(verifyWebhook('s3cret', headers, '{"a":1}', (ts + 3600) * 1000)).toBe(false);
  });

  it('the SIEM webhook gets signed OCSF JSON lines; a failed POST leaves the cursor, so the batch is sent again', async () => {
    await someDrift();
    const hook = await receiver('siem-secret');
    const sink = siemWebhookSink(hook.url, Buffer.from('siem-secret'));
    try {
      hook.fail(1);
      await expect(forwardOnce(h.store, sink, h.clock.now)).rejects.toThrow(/answered 503/);
      expect(await h.store.getEventCursor('siem-webhook')).toBe(0);
      const sent = await forwardOnce(h.store, sink, h.clock.now);
      expect(hook.bodies).toHaveLength(1);
      expect(hook.bodies[0]!.signed).toBe(true);
      expect(hook.bodies[0]!.headers['content-type']).toBe('application/x-ndjson');
      const lines = hook.bodies[0]!.body.trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { metadata: { sequence: number } });
      expect(lines).toHaveLength(sent);
      expect(await h.store.getEventCursor('siem-webhook')).toBe(lines[lines.length - 1]!.metadata.sequence);
      expect(await forwardOnce(h.store, sink, h.clock.now)).toBe(0); // nothing new, nothing sent twice
      expect(hook.bodies).toHaveLength(1);
    } finally {
      await hook.close();
    }
  });
});

describe('chat notifications', () => {
  it('a taint becomes one chat message with text and fields; history before the notifier started is not paged', async () => {
    const old = await h.enroll('old-1');
    await old.upgrade('openssl', '3.0.13-1').scan(); // tainted before the notifier existed
    const hook = await receiver('chat-secret');
    const sink: Sink = chatSink(hook.url, Buffer.from('chat-secret'));
    try {
      await forwardOnce(h.store, sink, h.clock.now);
      expect(hook.bodies).toHaveLength(0);
      await someDrift();
      await forwardOnce(h.store, sink, h.clock.now);
      expect(hook.bodies).toHaveLength(1); // web-1 tainted; web-2 only drifted
      expect(hook.bodies[0]!.signed).toBe(true);
      const msg = JSON.parse(hook.bodies[0]!.body);
      expect(msg.kind).toBe('host.tainted');
      expect(msg.text).toMatch(/host web-1\.example\.internal is tainted/);
      expect(msg.fields).toEqual(
        expect.arrayContaining([
          { title: 'host', value: 'web-1', short: true },
          { title: 'group', value: 'web', short: true },
          { title: 'image', value: 'ami-web-1', short: true },
        ]),
      );
      expect(msg.attachments[0].fields).toEqual(msg.fields);
    } finally {
      await hook.close();
    }
  });

  it("the scheduler's breaker trips and failed replacements are notified through recordEvent", async () => {
    const at = h.clock.iso();
    const trip = await h.store.transaction((tx) =>
      recordEvent(tx, {
        at,
        kind: EVENT_KINDS.breakerTripped,
        hostId: null,
        actor: 'scheduler',
        detail: { group: 'web', taintedShare: 0.4, threshold: 0.3, reason: '40% of web tainted within 15m' },
      }),
    );
    const fail = await h.store.transaction((tx) =>
      recordEvent(tx, {
        at,
        kind: EVENT_KINDS.replacementFailed,
        hostId: 'web-1',
        actor: 'scheduler',
        detail: {
          group: 'web',
          provider: 'aws-asg',
          attempt: 3,
          error: 'TerminateInstanceInAutoScalingGroup: throttled',
        },
      }),
    );
    expect(notificationFor(trip)).toMatchObject({
      kind: 'breaker.tripped',
      severity: 'critical',
      text: expect.stringMatching(/paused in group web/),
    });
    expect(notificationFor(fail)).toMatchObject({
      kind: 'replacement.failed',
      text: expect.stringMatching(/web-1 failed: TerminateInstance/),
    });
    // And they reach the SIEM feed as Device Config State Change events.
    expect(DeviceConfigStateChangeSchema.safeParse(toOcsf(trip)).success).toBe(true);
  });
});

describe('OCSF', () => {
  it('each class schema refuses an event missing one of its required fields', async () => {
    await someDrift();
    const events = (await h.store.listEvents({ limit: 100 })).map(toOcsf);
    const byClass = (c: number) => events.find((e) => e.class_uid === c)!;
    const cases = [
      [FileSystemActivitySchema, byClass(1001), ['file', 'actor', 'device', 'time', 'metadata']],
      [DeviceConfigStateChangeSchema, byClass(5019), ['device', 'severity_id', 'type_uid']],
      [ComplianceFindingSchema, byClass(2003), ['compliance', 'finding_info', 'activity_id']],
    ] as const;
    for (const [schema, event, required] of cases) {
      expect(schema.safeParse(event).success).toBe(true);
      for (const field of required) {
        const { [field]: _gone, ...rest } = event as Record<string, unknown>;
        expect(schema.safeParse(rest).success, `${field} missing`).toBe(false);
      }
    }
    expect(FileSystemActivitySchema.safeParse({ ...byClass(1001), type_uid: 100199 }).success).toBe(false);
  });
});
