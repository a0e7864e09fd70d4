/**
 * Report bodies as agents send them: gzip accepted and capped before and after decompression (a zip
 * bomb is refused and changes nothing), other encodings refused, truncated scans and undelivered scans
 * never leave a host clean. On SQLite and PostgreSQL (the store is what must stay unchanged).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { gzipSync, deflateSync } from 'node:zlib';
import { openStore } from '../../controller/store/index.js';
import type { Store } from '../../controller/store/types.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import { pgStores, requirePostgres, SKIP_PG } from '../helpers/postgres.js';
import { Harness, type HostSim } from './harness.js';

await requirePostgres();
const pg = pgStores('delivery');

const stores: [string, () => Promise<Store>][] = [['sqlite', () => openStore('sqlite::memory:')]];
if (!SKIP_PG) stores.push(['postgres', pg]);

/** `count` files added under /opt, as an honest agent reports them. */
function addedFiles(count: number): Deviation[] {
  return Array.from({ length: count }, (_, i) => ({
    collector: 'files' as const,
    key: `/opt/vendor/lib/x86_64-linux-gnu/bulk/${String(i % 97).padStart(3, '0')}/${String(i).padStart(6, '0')}/a-fairly-long-file-name-as-real-software-ships-them-${i}.so`,
    change: 'added' as const,
    expected: null,
    actual: {
      type: 'file',
      mode: '0644',
      uid: 0,
      gid: 0,
      size: 4096,
      sha256: createHash('sha256').update(String(i)).digest('hex'),
    },
    severity: 'high' as const,
  }));
}

for (const [kind, open] of stores) {
  describe(`report delivery (${kind})`, () => {
    let h: Harness;
    afterEach(async () => h?.close());
    afterAll(async () => undefined);

    async function start(config: Record<string, unknown> = {}): Promise<HostSim> {
      h = await Harness.start(await open(), { config });
      const host = await h.enroll('host-a');
      expect((await host.scan()).body.state).toBe('clean');
      return host;
    }

    function post(host: HostSim, body: Buffer, headers: Record<string, string>) {
      return h.req('POST', '/api/v1/reports', {
        token: host.credential,
        payload: body,
        headers: { 'content-type': 'application/json', ...headers },
      });
    }

    it('takes a gzip-compressed scan whose JSON is over the body limit, whole, and taints the host', async () => {
      const host = await start();
      const report = host.report({ deviations: addedFiles(45_000) });
      const json = Buffer.from(JSON.stringify(report));
      const gz = gzipSync(json);
      // 15 MB of JSON: over the 8 MiB body limit as it stands, well under it compressed.
      expect(json.length).toBeGreaterThan(15_000_000);
      expect(gz.length).toBeLessThan(8 * 1024 * 1024);
      const r = await post(host, gz, { 'content-encoding': 'gzip' });
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ status: 'accepted', state: 'tainted' });
      expect((await h.store.listReports('host-a', { limit: 1 }))[0]).toMatchObject({
        reportId: report.reportId,
        deviationCount: 45_000,
      });
      // Every deviation stored (the sim's digests do not include them, so the controller adds a digest mismatch too).
      expect((await h.store.listHostDeviations('host-a')).filter((d) => d.collector === 'files')).toHaveLength(45_000);
      // The same JSON uncompressed is over the limit: refused, naming it.
      const raw = await post(host, json, {});
      expect(raw.status).toBe(413);
      expect(raw.body.message).toBe('request body is larger than the limit (bodyLimit: 8388608 bytes as sent)');
    }, 60_000);

    it('refuses a zip bomb with 413 naming the decompressed limit, and changes nothing', async () => {
      const host = await start({ decodedBodyLimit: 16 * 1024 * 1024 });
      // 256 MiB of JSON-looking padding that compresses to a quarter of a megabyte.
      const head = Buffer.from(JSON.stringify(host.report()).replace(/}$/, ',"pad":"'));
      const bomb = gzipSync(Buffer.concat([head, Buffer.alloc(256 * 1024 * 1024, 'a'), Buffer.from('"}')]), {
        level: 9,
      });
      expect(bomb.length).toBeLessThan(8 * 1024 * 1024);
      const before = await h.snapshot();
      const started = Date.now();
      const r = await post(host, bomb, { 'content-encoding': 'gzip' });
      expect(r.status).toBe(413);
      expect(r.body).toEqual({
        error: 'DW_ERR_TOO_LARGE',
        message: 'request body is larger than the limit (decodedBodyLimit: 16777216 bytes once decompressed)',
      });
      // Stopped at the cap, not after inflating all of it.
      expect(Date.now() - started).toBeLessThan(3000);
      expect(await h.snapshot()).toEqual(before);
    }, 60_000);

    it('refuses a compressed body over the limit as sent, and encodings other than gzip with 415', async () => {
      const host = await start({ bodyLimit: 64 * 1024 });
      const before = await h.snapshot();
      const big = gzipSync(Buffer.from(JSON.stringify(host.report({ deviations: addedFiles(3000) }))));
      expect(big.length).toBeGreaterThan(64 * 1024);
      const r = await post(host, big, { 'content-encoding': 'gzip' });
      expect(r.status).toBe(413);
      expect(r.body.message).toMatch(/larger than the limit \(bodyLimit: 65536 bytes as sent\)/);
      const json = Buffer.from(JSON.stringify(host.report()));
      const deflated = await post(host, deflateSync(json), { 'content-encoding': 'deflate' });
      expect(deflated.status).toBe(415);
      expect(deflated.body).toMatchObject({
        error: 'DW_ERR_UNSUPPORTED_ENCODING',
        message: expect.stringMatching(/"deflate" is not accepted: send gzip/),
      });
      const broken = await post(host, json, { 'content-encoding': 'gzip' });
      expect(broken.status).toBe(400);
      expect(broken.body.message).toMatch(/not valid gzip/);
      expect(await h.snapshot()).toEqual(before);
      // An honest small report still goes through as it is.
      expect((await host.scan()).status).toBe(200);
    });

    it('taints a host whose scan arrives truncated, and skips the digest check its partial deviations cannot pass', async () => {
      const host = await start();
      const all = addedFiles(500);
      const report = { ...host.report({ deviations: all.slice(0, 100) }), truncated: { deviations: 500, sent: 100 } };
      const r = await host.send(report);
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ state: 'tainted', digestMismatch: [] });
      const devs = await h.store.listHostDeviations('host-a');
      expect(devs.filter((d) => d.collector === 'files')).toHaveLength(100);
      expect(devs.find((d) => d.collector === 'integrity')).toMatchObject({
        key: 'agent:scan-truncated',
        action: 'taint',
        actual: { value: '100 of 500 deviations sent' },
      });
      // A claim that does not add up is refused.
      const lie = { ...host.report({ deviations: all.slice(0, 10) }), truncated: { deviations: 500, sent: 100 } };
      expect((await host.send(lie)).status).toBe(400);
    });

    it('does not let heartbeats keep a host clean while its scan is undelivered', async () => {
      const host = await start();
      const beat = {
        ...host.report({ kind: 'heartbeat' }),
        undeliveredScan: {
          since: h.clock.iso(),
          reason: '413: request body is larger than the request limit',
          deviations: 0,
        },
      };
      const r = await host.send(beat);
      expect(r.status, r.text).toBe(200);
      // A scan with no deviations that did not arrive: reported, not tainted; the next scan clears it.
      expect(r.body).toMatchObject({ status: 'accepted', state: 'drifted' });
      expect((await h.store.listHostDeviations('host-a'))[0]).toMatchObject({
        collector: 'integrity',
        key: 'agent:scan-undelivered',
        action: 'report',
      });
      expect((await host.scan()).body).toMatchObject({ state: 'clean', deviations: 0 });
      // One that held drift the controller cannot judge: tainted.
      const drifted = {
        ...host.report({ kind: 'heartbeat' }),
        undeliveredScan: { since: h.clock.iso(), reason: 'undeliverable: EPIPE', deviations: 45_000 },
      };
      expect((await host.send(drifted)).body).toMatchObject({ state: 'tainted' });
      const row = await host.row();
      expect(row.state).toBe('tainted');
      expect(row.deviationCount).toBe(1);
      // A scan that arrived is not undelivered.
      const scan = { ...host.report(), undeliveredScan: drifted.undeliveredScan };
      expect((await host.send(scan)).status).toBe(400);
    });
  });
}
