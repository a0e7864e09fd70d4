/** With a certificate configured the controller speaks HTTPS only, and a bad TLS path fails at start-up. */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { ControllerConfigSchema } from '../../controller/config.js';
import { startController } from '../../controller/server.js';
import { tempDir } from '../helpers/tmp.js';

describe('controller TLS', () => {
  it('serves HTTPS with the configured certificate and refuses plain HTTP', async () => {
    const dir = tempDir();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')], { stdio: 'ignore' });
    const config = ControllerConfigSchema.parse({ listen: '127.0.0.1:0', store: `sqlite:${join(dir, 'c.db')}`, tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') } });
    const ctl = await startController(config, { log: pino({ level: 'silent' }) });
    try {
      expect(ctl.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const dispatcher = new Agent({ connect: { ca: readFileSync(join(dir, 'tls.crt')) } });
      const res = await request(`${ctl.url}/healthz`, { dispatcher });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ ok: true });
      await dispatcher.close();
      await expect(request(`${ctl.url.replace('https', 'http')}/healthz`, { headersTimeout: 2000 }).then((r) => r.body.text())).rejects.toThrow();
    } finally {
      await ctl.close();
    }
  });

  it('names a missing certificate file before opening a port', async () => {
    const dir = tempDir();
    const config = ControllerConfigSchema.parse({ listen: '127.0.0.1:0', store: `sqlite:${join(dir, 'c.db')}`, tls: { certFile: join(dir, 'none.crt'), keyFile: join(dir, 'none.key') } });
    await expect(startController(config, { log: pino({ level: 'silent' }) })).rejects.toThrow(/cannot read the TLS certificate .*none\.crt: ENOENT/);
  });
});
