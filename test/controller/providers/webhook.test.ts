/** @module The webhook provider: a signed JSON POST (HMAC-SHA256 over timestamp and body), retried on 5xx and network errors, not on 4xx. */
import { describe, expect, it } from 'vitest';
import { signPayload, verifySignature, webhookProvider } from '../../../controller/providers/webhook.js';
import { ProviderError } from '../../../controller/providers/types.js';
import { Recorder, context, target } from './recorder.js';

const SECRET = 'whsec_test_9f8e7d';

describe('webhook provider', () => {
  it('POSTs the replacement as JSON, signed over the timestamp and the exact body', async () => {
    const server = await new Recorder(() => ({
      body: { status: 'pending', ref: 'ticket-42', detail: 'queued in the runbook' },
    })).start();
    try {
      const now = new Date('2026-03-02T08:00:00.000Z');
      const p = webhookProvider({ url: `${server.url}/hooks/replace`, secret: SECRET, timeout: '5s', retries: 0 });
      const r = await p.replace(target(), context({ now: () => now }));
      expect(r).toEqual({ ref: 'ticket-42', detail: 'queued in the runbook' });
      const req = server.requests[0]!;
      expect(req).toMatchObject({ method: 'POST', path: '/hooks/replace' });
      expect(req.headers['content-type']).toBe('application/json');
      expect(req.headers['x-driftwarden-timestamp']).toBe(String(now.getTime() / 1000));
      expect(req.headers['x-driftwarden-delivery']).toBe('r-1:1:replace');
      expect(req.headers['x-driftwarden-signature']).toBe(signPayload(SECRET, String(now.getTime() / 1000), req.body));
      expect(
        verifySignature(
          SECRET,
          req.headers['x-driftwarden-timestamp'] as string,
          req.body,
          req.headers['x-driftwarden-signature'] as string,
          now.getTime(),
        ),
      ).toBe(true);
      expect(
        verifySignature(
          SECRET,
          req.headers['x-driftwarden-timestamp'] as string,
          req.body.replace('web-asg', 'db'),
          req.headers['x-driftwarden-signature'] as string,
          now.getTime(),
        ),
      ).toBe(false);
      expect(
        verifySignature(
          SECRET,
          req.headers['x-driftwarden-timestamp'] as string,
          req.body,
          req.headers['x-driftwarden-signature'] as string,
          now.getTime() + 600_000,
        ),
      ).toBe(false);
      expect(JSON.parse(req.body)).toEqual({
        event: 'replace',
        replacementId: 'r-1',
        attempt: 1,
        ref: null,
        group: 'web-asg',
        reason: 'tainted',
        host: {
          id: '4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e',
          hostname: 'i-0abc123def4567890.eu-west-1.compute.internal',
          imageId: 'ami-web-1',
          addresses: ['10.0.1.7'],
        },
      });
      // The HMAC is computed independently here too, not only through the module's own function.
      const { createHmac } = await import('node:crypto');
      expect(req.headers['x-driftwarden-signature']).toBe(
        `v1=${createHmac('sha256', SECRET)
          .update(`${now.getTime() / 1000}.${req.body}`)
          .digest('hex')}`,
      );
    } finally {
      await server.stop();
    }
  });

  it('retries 5xx answers and then succeeds', async () => {
    let n = 0;
    const server = await new Recorder(() =>
      ++n < 3 ? { status: 503, body: 'busy' } : { body: { status: 'done' } },
    ).start();
    try {
      const p = webhookProvider({ url: server.url, secret: SECRET, timeout: '5s', retries: 3 }, { backoffMs: () => 5 });
      await p.replace(target(), context());
      expect(server.requests).toHaveLength(3);
      expect(new Set(server.requests.map((r) => r.headers['x-driftwarden-delivery']))).toEqual(
        new Set(['r-1:1:replace']),
      );
    } finally {
      await server.stop();
    }
  });

  it('gives up after the retries with the last answer, and does not retry a 4xx', async () => {
    const server = await new Recorder(() => ({ status: 502, body: 'bad gateway' })).start();
    try {
      const err = (await webhookProvider({ url: server.url, timeout: '5s', retries: 2 }, { backoffMs: () => 1 })
        .replace(target(), context())
        .catch((e: unknown) => e)) as ProviderError;
      expect(server.requests).toHaveLength(3);
      expect(err.retryable).toBe(true);
      expect(err.message).toMatch(/answered 502: bad gateway/);
      server.handler = () => ({ status: 401, body: 'bad signature' });
      server.requests.length = 0;
      const e2 = (await webhookProvider({ url: server.url, timeout: '5s', retries: 2 })
        .replace(target(), context())
        .catch((e: unknown) => e)) as ProviderError;
      expect(server.requests).toHaveLength(1);
      expect(e2.retryable).toBe(false);
    } finally {
      await server.stop();
    }
  });

  it('status asks again with event "status" until the receiver says done', async () => {
    let done = false;
    const server = await new Recorder(() => ({
      body: done ? { status: 'done', detail: 'instance gone', replacedBy: 'host-9' } : { status: 'pending' },
    })).start();
    try {
      const p = webhookProvider({ url: server.url, secret: SECRET, timeout: '5s', retries: 0 });
      expect((await p.status(target({ ref: 'ticket-42' }), context())).state).toBe('pending');
      done = true;
      expect(await p.status(target({ ref: 'ticket-42' }), context())).toEqual({
        state: 'done',
        detail: 'instance gone',
        replacedBy: 'host-9',
      });
      expect(JSON.parse(server.requests[0]!.body)).toMatchObject({ event: 'status', ref: 'ticket-42' });
    } finally {
      await server.stop();
    }
  });

  it('an unreachable receiver is a retryable error that names the host, not the query', async () => {
    const err = (await webhookProvider({ url: 'http://127.0.0.1:1/hook?token=s3cret', timeout: '1s', retries: 0 })
      .replace(target(), context())
      .catch((e: unknown) => e)) as ProviderError;
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('127.0.0.1:1/hook');
    expect(err.message).not.toContain('s3cret');
  });
});
