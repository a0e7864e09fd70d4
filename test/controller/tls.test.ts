/**
 * With a certificate configured the controller speaks HTTPS only, and a bad TLS path fails at start-up.
 * With a client CA it requires client certificates (mTLS), checked at the handshake, in front of the
 * host credential, which the agent still sends.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { ControllerConfigSchema } from '../../controller/config.js';
import { startController } from '../../controller/server.js';
import { Transport } from '../../agent/daemon/transport.js';
import { selfSignedCert } from '../helpers/self-signed-cert.js';
import { tempDir } from '../helpers/tmp.js';

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });

/** A server certificate for 127.0.0.1, and client certificates from two CAs (`ca` is the trusted one). */
function pki(): string {
  const dir = tempDir();
  const f = (n: string) => join(dir, n);
  openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    f('tls.key'),
    '-out',
    f('tls.crt'),
  ]);
  for (const ca of ['ca', 'other-ca']) {
    openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${ca}`,
      '-keyout',
      f(`${ca}.key`),
      '-out',
      f(`${ca}.crt`),
    ]);
    openssl([
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=host-1',
      '-keyout',
      f(`${ca}-client.key`),
      '-out',
      f(`${ca}-client.csr`),
    ]);
    openssl([
      'x509',
      '-req',
      '-in',
      f(`${ca}-client.csr`),
      '-CA',
      f(`${ca}.crt`),
      '-CAkey',
      f(`${ca}.key`),
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      f(`${ca}-client.crt`),
    ]);
    chmodSync(f(`${ca}-client.key`), 0o600);
  }
  return dir;
}

async function mtlsController(dir: string, tls: Record<string, unknown> = {}) {
  const config = ControllerConfigSchema.parse({
    listen: '127.0.0.1:0',
    store: `sqlite:${join(dir, `c-${Math.random()}.db`)}`,
    tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), clientCaFile: join(dir, 'ca.crt'), ...tls },
  });
  return startController(config, { log: pino({ level: 'silent' }) });
}

describe('controller TLS', () => {
  it('serves HTTPS with the configured certificate and refuses plain HTTP', async () => {
    const dir = tempDir();
    selfSignedCert(dir);
    const config = ControllerConfigSchema.parse({
      listen: '127.0.0.1:0',
      store: `sqlite:${join(dir, 'c.db')}`,
      tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') },
    });
    const ctl = await startController(config, { log: pino({ level: 'silent' }) });
    try {
      expect(ctl.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const dispatcher = new Agent({ connect: { ca: readFileSync(join(dir, 'tls.crt')) } });
      const res = await request(`${ctl.url}/healthz`, { dispatcher });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ ok: true });
      await dispatcher.close();
      await expect(
        request(`${ctl.url.replace('https', 'http')}/healthz`, { headersTimeout: 2000 }).then((r) => r.body.text()),
      ).rejects.toThrow();
    } finally {
      await ctl.close();
    }
  });

  it('names a missing certificate file before opening a port', async () => {
    const dir = tempDir();
    const config = ControllerConfigSchema.parse({
      listen: '127.0.0.1:0',
      store: `sqlite:${join(dir, 'c.db')}`,
      tls: { certFile: join(dir, 'none.crt'), keyFile: join(dir, 'none.key') },
    });
    await expect(startController(config, { log: pino({ level: 'silent' }) })).rejects.toThrow(
      /cannot read the TLS certificate .*none\.crt: ENOENT/,
    );
  });

  it('with a client CA, refuses a client without a certificate (or with one from another CA) at the handshake, and takes one with', async () => {
    const dir = pki();
    const ctl = await mtlsController(dir);
    const transports: Transport[] = [];
    const agent = (cert?: string) => {
      const t = new Transport({
        url: ctl.url,
        caFile: join(dir, 'tls.crt'),
        timeoutMs: 5000,
        ...(cert ? { certFile: join(dir, `${cert}-client.crt`), keyFile: join(dir, `${cert}-client.key`) } : {}),
      });
      transports.push(t);
      return t;
    };
    try {
      const without = await agent().get('/healthz');
      expect(without).toMatchObject({ ok: false, retry: true });
      expect((without as { reason: string }).reason).toMatch(/certificate|ECONNRESET|socket hang up|alert/i);
      expect(await agent('other-ca').get('/healthz')).toMatchObject({ ok: false, retry: true });
      const t = agent('ca');
      expect(await t.get('/healthz')).toEqual({ ok: true, status: 200, body: { ok: true } });
      // The certificate opens the connection; it does not stand in for the host credential.
      expect(await t.post('/api/v1/reports', 'not-a-credential', { schema: 'driftwarden/report/v1' })).toMatchObject({
        ok: false,
        retry: false,
        status: 401,
      });
    } finally {
      for (const t of transports) await t.close();
      await ctl.close();
    }
  });

  it('with requireClientCert: false, a client without a certificate gets through, one with a bad certificate does not', async () => {
    const dir = pki();
    const ctl = await mtlsController(dir, { requireClientCert: false });
    const none = new Transport({ url: ctl.url, caFile: join(dir, 'tls.crt'), timeoutMs: 5000 });
    const bad = new Transport({
      url: ctl.url,
      caFile: join(dir, 'tls.crt'),
      timeoutMs: 5000,
      certFile: join(dir, 'other-ca-client.crt'),
      keyFile: join(dir, 'other-ca-client.key'),
    });
    try {
      expect(await none.get('/healthz')).toMatchObject({ ok: true });
      const r = await bad.get('/healthz');
      expect(r).toMatchObject({ ok: false, retry: false, status: 401 });
      expect((r as { reason: string }).reason).toMatch(/client certificate refused/);
    } finally {
      await none.close();
      await bad.close();
      await ctl.close();
    }
  });

  it('the agent refuses a client key that others can read, naming controller.keyFile', () => {
    const dir = pki();
    chmodSync(join(dir, 'ca-client.key'), 0o644);
    expect(
      () =>
        new Transport({
          url: 'https://127.0.0.1:1',
          certFile: join(dir, 'ca-client.crt'),
          keyFile: join(dir, 'ca-client.key'),
        }),
    ).toThrow(/controller\.keyFile: .*ca-client\.key is readable by group or others \(mode 644\); chmod 600 it/);
  });
});
