/**
 * @module Enrollment by AWS identity: a signed instance identity document (signed here by a CA the
 * test makes, standing in for AWS's regional certificate) enrolls its instance without a token, once;
 * a bad signature, a foreign account or region, a stale or edited document, and an instance that is
 * already enrolled are each refused with a clear error and nothing stored. On SQLite and PostgreSQL.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashSecret } from '../../controller/auth.js';
import { openStore } from '../../controller/store/index.js';
import type { Store } from '../../controller/store/types.js';
import { makeFakeAwsCert } from '../helpers/fake-aws-cert.js';
import { identityDocument } from '../helpers/fake-imds.js';
import { pgStores, requirePostgres, SKIP_PG } from '../helpers/postgres.js';
import { Harness, IMAGE, MINUTE } from './harness.js';

await requirePostgres();
const pgOpen = pgStores('dw_enrollaws');
const STORES: { name: string; open: () => Promise<Store>; skip: boolean }[] = [
  { name: 'sqlite', open: () => openStore('sqlite::memory:'), skip: false },
  { name: 'postgres', open: pgOpen, skip: SKIP_PG },
];

const aws = makeFakeAwsCert();
const stranger = makeFakeAwsCert();
const ACCOUNT = '123456789012';

// PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without it (requirePostgres fails the run otherwise); SQLite never is.
for (const { name, open, skip } of STORES)
  describe.skipIf(skip)(`enrollment by AWS identity on ${name}`, () => {
    let h: Harness;
    let pending: string;
    beforeEach(async () => {
      h = await Harness.start(await open(), {
        config: {
          enrollment: {
            aws: { certificates: [aws.certFile], accounts: [ACCOUNT], regions: ['eu-west-1'], maxAge: '1h' },
          },
        },
      });
      // The fake certificate is valid from when it was made: bring the harness clock to just after that.
      h.clock.advance(Date.now() + MINUTE - h.clock.now().getTime());
      pending = new Date(h.clock.now().getTime() - 5 * MINUTE).toISOString().replace(/\.\d+Z$/, 'Z');
    });
    afterEach(async () => {
      await h.close();
    });

    const doc = (over: Record<string, string> = {}) => identityDocument({ pendingTime: pending, ...over });
    const enroll = (
      hostId: string,
      document: string,
      signature = aws.sign(document),
      extra: Record<string, unknown> = {},
    ) =>
      h.req('POST', '/api/v1/enroll/aws', {
        token: null,
        body: {
          hostId,
          imageId: IMAGE,
          hostname: `${hostId}.example.internal`,
          awsIdentity: { document, signature },
          ...extra,
        },
      });

    it('a document signed by the configured certificate enrolls its instance, pins the identity and audits it', async () => {
      const r = await enroll('host-a', doc());
      expect(r.status, r.text).toBe(201);
      expect(r.body.credential).toMatch(/^dwh_/);
      const identity = {
        kind: 'aws',
        instanceId: 'i-0123456789abcdef0',
        accountId: ACCOUNT,
        region: 'eu-west-1',
        availabilityZone: 'eu-west-1a',
        imageId: 'ami-0abcdef1234567890',
      };
      expect(r.body.identity).toEqual(identity);
      const detail = await h.get('/api/v1/hosts/host-a');
      expect(detail.body.host).toMatchObject({
        id: 'host-a',
        state: 'pending',
        cloudIdentity: identity,
        instanceId: 'i-0123456789abcdef0',
      });
      const audit = await h.get('/api/v1/audit', h.tokens.admin);
      expect(JSON.stringify(audit.body)).toContain(`aws:${ACCOUNT}:i-0123456789abcdef0`);
      // The credential it got is the host's, as a token-enrolled host's is.
      expect((await h.store.findHostByCredentialHash(hashSecret(r.body.credential)))?.id).toBe('host-a');
    });

    it('refuses a second host claiming an instance that is already enrolled (409), naming the holder', async () => {
      expect((await enroll('host-a', doc())).status).toBe(201);
      const again = await enroll('host-b', doc());
      expect(again.status).toBe(409);
      expect(again.body.message).toBe(
        'AWS instance i-0123456789abcdef0 is already enrolled as host host-a; an instance enrolls once (an operator can reset it)',
      );
      expect((await h.get('/api/v1/hosts/host-b')).status).toBe(404);
    });

    it('refuses a bad signature (401), and stores nothing', async () => {
      const document = doc();
      const r = await enroll('host-a', document, stranger.sign(document));
      expect(r.status).toBe(401);
      expect(r.body).toEqual({
        error: 'DW_ERR_UNAUTHORIZED',
        message: "the AWS identity document's signature does not verify against any of the 1 configured certificate(s)",
      });
      expect((await h.get('/api/v1/hosts/host-a')).status).toBe(404);
    });

    it('refuses a document replayed for another instance: edited, its signature no longer covers it', async () => {
      const original = doc();
      const replayed = original.replace('i-0123456789abcdef0', 'i-0fedcba9876543210');
      const r = await enroll('host-b', replayed, aws.sign(original));
      expect(r.status).toBe(401);
      expect((await h.get('/api/v1/hosts/host-b')).status).toBe(404);
    });

    it('refuses an account or region outside the allow-lists (403)', async () => {
      const foreign = await enroll('host-a', doc({ accountId: '999999999999' }));
      expect(foreign.status).toBe(403);
      expect(foreign.body.message).toBe('AWS account 999999999999 is not in enrollment.aws.accounts');
      const east = await enroll('host-a', doc({ region: 'us-east-1', availabilityZone: 'us-east-1a' }));
      expect(east.status).toBe(403);
      expect(east.body.message).toBe('AWS region us-east-1 is not in enrollment.aws.regions');
    });

    it('refuses a document of an instance that launched longer ago than maxAge (401)', async () => {
      const old = new Date(h.clock.now().getTime() - 61 * MINUTE).toISOString().replace(/\.\d+Z$/, 'Z');
      const r = await enroll('host-a', doc({ pendingTime: old }));
      expect(r.status).toBe(401);
      expect(r.body.message).toMatch(/longer ago than enrollment.aws.maxAge allows/);
    });

    it('refuses an identity the body states beside the document (the document is the only source)', async () => {
      const r = await enroll('host-a', doc(), undefined, { identity: { kind: 'host', machineId: 'x' } });
      expect(r.status).toBe(400);
    });

    it('a token enrollment claiming an instance that is already enrolled is refused too', async () => {
      expect((await enroll('host-a', doc())).status).toBe(201);
      const claim = {
        kind: 'aws',
        instanceId: 'i-0123456789abcdef0',
        accountId: ACCOUNT,
        region: 'eu-west-1',
        availabilityZone: 'eu-west-1a',
        imageId: 'ami-0abcdef1234567890',
      };
      const r = await h.req('POST', '/api/v1/enroll', {
        token: h.tokens.agent,
        body: { hostId: 'host-b', imageId: IMAGE, identity: claim },
      });
      expect(r.status).toBe(409);
      expect(r.body.message).toMatch(/AWS instance i-0123456789abcdef0 is already enrolled as host host-a/);
    });

    it('without enrollment.aws configured, the route refuses (403) and says how to enroll instead', async () => {
      const plain = await h.buildApp({ config: {} });
      const document = doc();
      const r = await plain.inject({
        method: 'POST',
        url: '/api/v1/enroll/aws',
        payload: { hostId: 'host-a', imageId: IMAGE, awsIdentity: { document, signature: aws.sign(document) } },
      });
      expect(r.statusCode).toBe(403);
      expect(r.json().message).toMatch(/not configured on this controller \(enrollment.aws\); enroll with a token/);
      await plain.close();
    });
  });
