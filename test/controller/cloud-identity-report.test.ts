/**
 * @module A host's cloud identity in its reports, against the one pinned at enrollment: the same
 * instance is clean; another instance is refused, taints and is audited once, like a rename; a host
 * enrolled without an identity is not tainted for reporting one; and an AMI other than the manifest's
 * `image.cloudImageId` is an integrity deviation. On SQLite and PostgreSQL.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import type { Store } from '../../controller/store/types.js';
import type { CloudIdentity } from '../../shared/schema/identity.js';
import { pgStores, requirePostgres, SKIP_PG } from '../helpers/postgres.js';
import { bakeManifest, Harness, HostSim, IMAGE } from './harness.js';

await requirePostgres();
const pgOpen = pgStores('dw_cloudid');
const STORES: { name: string; open: () => Promise<Store>; skip: boolean }[] = [
  { name: 'sqlite', open: () => openStore('sqlite::memory:'), skip: false },
  { name: 'postgres', open: pgOpen, skip: SKIP_PG },
];

const instance = (instanceId: string, imageId = 'ami-0abcdef1234567890'): CloudIdentity => ({
  kind: 'aws',
  instanceId,
  accountId: '123456789012',
  region: 'eu-west-1',
  availabilityZone: 'eu-west-1a',
  imageId,
});

// PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without it (requirePostgres fails the run otherwise); SQLite never is.
for (const { name, open, skip } of STORES)
  describe.skipIf(skip)(`cloud identity in reports on ${name}`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await Harness.start(await open());
    });
    afterEach(async () => {
      await h.close();
    });

    async function enrollAs(
      id: string,
      identity?: CloudIdentity,
      imageId = IMAGE,
      manifest = h.manifest,
    ): Promise<HostSim> {
      const r = await h.req('POST', '/api/v1/enroll', {
        token: h.tokens.agent,
        body: { hostId: id, imageId, ...(identity ? { identity } : {}) },
      });
      expect(r.status, r.text).toBe(201);
      const sim = new HostSim(h, id, r.body.credential, imageId, manifest);
      h.hosts.set(id, sim);
      return sim;
    }

    it('the pinned instance reporting itself is clean, and the API shows its identity in the list and the detail', async () => {
      const web1 = await enrollAs('web-1', instance('i-0123456789abcdef0'));
      const r = await web1.send({ ...web1.report(), identity: instance('i-0123456789abcdef0') });
      expect(r.body.state, r.text).toBe('clean');
      expect((await h.get('/api/v1/hosts/web-1')).body.host).toMatchObject({
        cloudIdentity: instance('i-0123456789abcdef0'),
        instanceId: 'i-0123456789abcdef0',
        reportedCloudIdentity: null,
      });
      expect((await h.get('/api/v1/hosts')).body.hosts[0]).toMatchObject({
        id: 'web-1',
        instanceId: 'i-0123456789abcdef0',
        identity: 'aws:123456789012/eu-west-1/i-0123456789abcdef0',
      });
    });

    it('a report claiming another instance is refused: pin unchanged, claim kept, tainted, audited once', async () => {
      const web1 = await enrollAs('web-1', instance('i-0123456789abcdef0'));
      const claim = instance('i-0fedcba9876543210');
      const r = await web1.send({ ...web1.report(), identity: claim });
      expect(r.body.state, r.text).toBe('tainted');
      const row = await web1.row();
      expect(row).toMatchObject({
        instanceId: 'i-0123456789abcdef0',
        cloudIdentity: instance('i-0123456789abcdef0'),
        reportedCloudIdentity: claim,
      });
      const devs = await h.store.listHostDeviations('web-1');
      expect(devs.find((d) => d.key === 'identity:cloud')).toMatchObject({
        expected: { value: 'aws:123456789012/eu-west-1/i-0123456789abcdef0' },
        actual: { value: 'aws:123456789012/eu-west-1/i-0fedcba9876543210' },
      });
      await web1.send({ ...web1.report(), identity: claim });
      const refusals = (await h.store.listAudit({ limit: 1000 })).filter((a) => a.action === 'host.identity-refused');
      expect(refusals).toHaveLength(1);
      expect(refusals[0]!.detail).toMatchObject({
        field: 'cloud',
        claimed: 'aws:123456789012/eu-west-1/i-0fedcba9876543210',
      });
    });

    it('a host enrolled without an identity is not tainted for reporting one (nothing is pinned to hold it against)', async () => {
      const web1 = await enrollAs('web-1');
      const r = await web1.send({ ...web1.report(), identity: instance('i-0123456789abcdef0') });
      expect(r.body.state, r.text).toBe('clean');
    });

    it('a host booted from another AMI than the manifest names is an integrity deviation, and taints', async () => {
      const manifest = bakeManifest('web-2026', h.key.privateKey, undefined, { cloudImageId: 'ami-0abcdef1234567890' });
      expect((await h.publish(manifest)).status).toBe(201);
      const good = await enrollAs('web-1', instance('i-0123456789abcdef0'), 'web-2026', manifest);
      expect((await good.send({ ...good.report(), identity: instance('i-0123456789abcdef0') })).body.state).toBe(
        'clean',
      );
      const odd = await enrollAs(
        'web-2',
        instance('i-0fedcba9876543210', 'ami-0fffffffffffffff0'),
        'web-2026',
        manifest,
      );
      const r = await odd.send({ ...odd.report(), identity: instance('i-0fedcba9876543210', 'ami-0fffffffffffffff0') });
      expect(r.body.state, r.text).toBe('tainted');
      expect((await h.store.listHostDeviations('web-2')).find((d) => d.key === 'identity:image')).toMatchObject({
        expected: { value: 'ami-0abcdef1234567890' },
        actual: { value: 'ami-0fffffffffffffff0' },
      });
    });
  });
