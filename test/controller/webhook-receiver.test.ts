/**
 * The receiver example in docs/examples/webhook-receiver.mjs, run against what the controller really
 * sends: the SIEM/notification poster and the `webhook` replacement provider sign one way, and a
 * fixed test vector pins that way, so a receiver written from the README keeps working.
 */
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs example for receivers, deliberately without types or driftwarden imports.
import { verifyDriftwardenWebhook } from '../../docs/examples/webhook-receiver.mjs';
import { webhookProvider } from '../../controller/providers/webhook.js';
import { postSigned, signWebhook } from '../../controller/siem/webhook.js';
import { Recorder, context, target } from './providers/recorder.js';

const verify = verifyDriftwardenWebhook as (
  secret: string,
  headers: Record<string, unknown>,
  body: string,
  nowMs?: number,
) => boolean;
const SECRET = 's3cret';

describe('the webhook receiver example', () => {
  it('matches the documented test vector: v1= HMAC-SHA256 of "TIMESTAMP.BODY"', () => {
    const body = '{"event":"replace"}';
    const sig = 'v1=655c9e3ba5f56093ba9776a636e51e923bf7e1fe2a7ba0f7940680b3fc027711';
    expect(signWebhook(SECRET, 1767225600, body)).toBe(sig);
    const headers = { 'x-driftwarden-timestamp': '1767225600', 'x-driftwarden-signature': sig };
    expect(verify(SECRET, headers, body, 1767225600_000)).toBe(true);
    expect(verify(SECRET, headers, '{"event":"status"}', 1767225600_000)).toBe(false);
    expect(verify('other', headers, body, 1767225600_000)).toBe(false);
    // Older than five minutes: a replay.
    expect(verify(SECRET, headers, body, (1767225600 + 301) * 1000)).toBe(false);
  });

  it('accepts what the SIEM and notification poster sends, and what the webhook provider sends', async () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const server = await new Recorder(() => ({ body: { status: 'done' } })).start();
    try {
      await postSigned(`${server.url}/siem`, '{"class_uid":2004}\n', {
        secret: Buffer.from(SECRET),
        contentType: 'application/x-ndjson',
        now: () => now,
      });
      const p = webhookProvider({ url: `${server.url}/replace`, secret: SECRET, timeout: '5s', retries: 0 });
      await p.replace(target(), context({ now: () => now }));
      expect(server.requests).toHaveLength(2);
      for (const req of server.requests) {
        expect(verify(SECRET, req.headers, req.body, now.getTime()), req.path).toBe(true);
        expect(verify(SECRET, req.headers, `${req.body} `, now.getTime()), req.path).toBe(false);
      }
    } finally {
      await server.stop();
    }
  });
});
