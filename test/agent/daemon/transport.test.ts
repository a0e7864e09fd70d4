/**
 * The agent's transport against a real controller over HTTPS with its own CA, and against servers that
 * misbehave: every outcome is classified (delivered, retry later, refused for good), and a controller
 * that never answers costs the timeout, not a hung agent.
 */
import { describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import { ControllerConfigSchema } from '../../../controller/config.js';
import { startController } from '../../../controller/server.js';
import { parseRetryAfter, RETRY_AFTER_CAP_MS, retryAfterDelayMs, Transport } from '../../../agent/daemon/transport.js';
import { selfSignedCert } from '../../helpers/self-signed-cert.js';
import { tempDir } from '../../helpers/tmp.js';

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)),
  );
}

describe('Transport', () => {
  it('speaks HTTPS to a controller whose certificate the configured CA signed, and refuses one it cannot verify', async () => {
    const dir = tempDir();
    selfSignedCert(dir);
    const config = ControllerConfigSchema.parse({
      listen: '127.0.0.1:0',
      store: `sqlite:${join(dir, 'c.db')}`,
      tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') },
    });
    const ctl = await startController(config, { log: pino({ level: 'silent' }) });
    try {
      const t = new Transport({ url: ctl.url, caFile: join(dir, 'tls.crt') });
      expect(await t.get('/healthz')).toEqual({ ok: true, status: 200, body: { ok: true } });
      // A bad credential is refused for good with the controller's message; retrying cannot fix it.
      expect(await t.post('/api/v1/reports', 'dwh_nobody', {})).toEqual({
        ok: false,
        retry: false,
        status: 401,
        reason: '401: unknown host credential',
      });
      await t.close();
      const untrusting = new Transport({ url: ctl.url });
      const r = await untrusting.get('/healthz');
      expect(r).toMatchObject({ ok: false, retry: true, reason: expect.stringMatching(/SELF_SIGNED|self.signed/i) });
      await untrusting.close();
    } finally {
      await ctl.close();
    }
  });

  it('names an unreadable CA file', () => {
    expect(() => new Transport({ url: 'https://127.0.0.1:1', caFile: '/nonexistent/ca.pem' })).toThrow(
      /cannot read the controller CA \/nonexistent\/ca\.pem: ENOENT/,
    );
  });

  it('retries later on 5xx, 429 and 422, and on a refused connection', async () => {
    let status = 503;
    const server = createServer((_req, res) =>
      res
        .writeHead(status, { 'content-type': 'application/json' })
        .end(JSON.stringify({ message: `status ${status}` })),
    );
    const url = await listen(server);
    const t = new Transport({ url });
    try {
      for (const s of [503, 429, 422]) {
        status = s;
        expect(await t.post('/api/v1/reports', 'x', { a: 1 })).toEqual({
          ok: false,
          retry: true,
          status: s,
          reason: `${s}: status ${s}`,
        });
      }
      status = 409;
      expect(await t.post('/api/v1/reports', 'x', { a: 1 })).toEqual({
        ok: false,
        retry: false,
        status: 409,
        reason: '409: status 409',
      });
    } finally {
      await t.close();
      await new Promise((r) => server.close(r));
    }
    const gone = new Transport({ url });
    expect(await gone.get('/healthz')).toMatchObject({
      ok: false,
      retry: true,
      reason: expect.stringMatching(/^ECONNREFUSED/),
    });
    await gone.close();
  });

  it("hands on a 503's or 429's Retry-After (seconds or an HTTP date); a 500's is not a busy controller's", async () => {
    let answer: { status: number; retryAfter?: string } = { status: 503, retryAfter: '7' };
    const server = createServer((_req, res) =>
      res
        .writeHead(answer.status, {
          'content-type': 'application/json',
          ...(answer.retryAfter ? { 'retry-after': answer.retryAfter } : {}),
        })
        .end(JSON.stringify({ error: 'DW_ERR_UNAVAILABLE', message: 'busy' })),
    );
    const url = await listen(server);
    const t = new Transport({ url });
    try {
      expect(await t.post('/api/v1/reports', 'x', { a: 1 })).toEqual({
        ok: false,
        retry: true,
        status: 503,
        reason: '503: busy',
        retryAfterMs: 7000,
      });
      answer = { status: 429, retryAfter: new Date(Date.now() + 60_000).toUTCString() };
      const r = await t.post('/api/v1/reports', 'x', { a: 1 });
      expect(r).toMatchObject({ ok: false, retry: true, status: 429 });
      expect((r as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(55_000);
      expect((r as { retryAfterMs: number }).retryAfterMs).toBeLessThanOrEqual(60_000);
      answer = { status: 503 };
      expect(await t.post('/api/v1/reports', 'x', { a: 1 })).not.toHaveProperty('retryAfterMs');
      answer = { status: 500, retryAfter: '7' };
      expect(await t.post('/api/v1/reports', 'x', { a: 1 })).not.toHaveProperty('retryAfterMs');
    } finally {
      await t.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('waits Retry-After plus 0-50 % at random, capped, never under a second: a turned-away fleet spreads out', () => {
    expect(parseRetryAfter('5', 0)).toBe(5000);
    expect(parseRetryAfter(' 0 ', 0)).toBe(0);
    expect(parseRetryAfter('soon', 0)).toBeNull();
    expect(parseRetryAfter('-3', 0)).toBeNull();
    expect(parseRetryAfter(undefined, 0)).toBeNull();
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('2015-10-21T07:27:00Z'))).toBe(60_000);
    expect(retryAfterDelayMs(5000, () => 0)).toBe(5000);
    expect(retryAfterDelayMs(5000, () => 0.999999)).toBe(7500);
    expect(retryAfterDelayMs(0, () => 0)).toBe(1000);
    expect(retryAfterDelayMs(24 * 3600_000, () => 0.5)).toBe(RETRY_AFTER_CAP_MS);
    // 10,000 agents told "5 s": spread over 5-7.5 s, no second of it holding much more than its share.
    const buckets = new Array(5).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const d = retryAfterDelayMs(5000);
      expect(d).toBeGreaterThanOrEqual(5000);
      expect(d).toBeLessThanOrEqual(7500);
      buckets[Math.min(4, Math.floor((d - 5000) / 500))]++;
    }
    for (const b of buckets) expect(b).toBeGreaterThan(1500);
  });

  it('gives up on a controller that accepts the connection and never answers, after the timeout', async () => {
    const server = createServer(() => undefined);
    const url = await listen(server);
    const t = new Transport({ url, timeoutMs: 300 });
    try {
      const t0 = Date.now();
      expect(await t.post('/api/v1/reports', 'x', {})).toMatchObject({
        ok: false,
        retry: true,
        reason: expect.stringMatching(/^ETIMEDOUT: no complete answer within 300 ms/),
      });
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      await t.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('sends the bearer and the JSON body, and keeps one connection alive across requests', async () => {
    const seen: { auth?: string; type?: string; body: string; socket: unknown }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ auth: req.headers.authorization, type: req.headers['content-type'], body, socket: req.socket });
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"state":"clean"}');
      });
    });
    const url = await listen(server);
    const t = new Transport({ url: `${url}/` });
    try {
      expect(await t.post('/api/v1/reports', 'dwh_secret', { seq: 1, name: 'é' })).toEqual({
        ok: true,
        status: 202,
        body: { state: 'clean' },
      });
      expect(await t.post('/api/v1/reports', 'dwh_secret', { seq: 2 })).toMatchObject({ ok: true });
      expect(seen.map((s) => [s.auth, s.type, s.body])).toEqual([
        ['Bearer dwh_secret', 'application/json', '{"seq":1,"name":"é"}'],
        ['Bearer dwh_secret', 'application/json', '{"seq":2}'],
      ]);
      expect(seen[1]!.socket).toBe(seen[0]!.socket);
    } finally {
      await t.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('sends a large body gzip-compressed, and a small one as it is', async () => {
    const seen: { encoding: string | undefined; length: number; body: string }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        seen.push({
          encoding: req.headers['content-encoding'],
          length: Number(req.headers['content-length']),
          body: (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString(),
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    const url = await listen(server);
    const t = new Transport({ url });
    const big = { deviations: Array.from({ length: 2000 }, (_, i) => ({ key: `/opt/bulk/${i}` })) };
    try {
      expect(await t.post('/api/v1/reports', 'x', { small: true })).toMatchObject({ ok: true });
      expect(await t.post('/api/v1/reports', 'x', big)).toMatchObject({ ok: true });
      expect(seen[0]).toEqual({ encoding: undefined, length: 14, body: '{"small":true}' });
      expect(seen[1]!.encoding).toBe('gzip');
      expect(seen[1]!.body).toBe(JSON.stringify(big));
      expect(seen[1]!.length).toBeLessThan(JSON.stringify(big).length / 4);
    } finally {
      await t.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('takes a 413 answered before the body is written as the answer, not as a broken connection', async () => {
    // Answers at once and closes, as a server does that refuses a body by its Content-Length.
    const server = createServer((req, res) => {
      res
        .writeHead(413, { 'content-type': 'application/json', connection: 'close' })
        .end(JSON.stringify({ message: 'too large' }));
      req.socket.end();
    });
    const url = await listen(server);
    const t = new Transport({ url });
    try {
      const body = { pad: randomBytes(6 * 1024 * 1024).toString('base64') };
      expect(await t.post('/api/v1/reports', 'x', body)).toEqual({
        ok: false,
        retry: false,
        status: 413,
        reason: '413: too large',
      });
    } finally {
      await t.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
