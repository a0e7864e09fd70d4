import { afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { imageMismatch, readCloudIdentity } from '../../agent/cloud-identity.js';
import { CloudIdentitySchema } from '../../shared/schema/identity.js';
import { identityDocument, startFakeImds, type FakeImds } from '../helpers/fake-imds.js';
import { tempDir } from '../helpers/tmp.js';

const MACHINE_ID = '0123456789abcdef0123456789abcdef';
const SIGNATURE = 'c2lnbmF0dXJlLW92ZXItdGhlLWRvY3VtZW50LWJ5dGVz';
let imds: FakeImds | null = null;
afterEach(async () => {
  await imds?.close();
  imds = null;
});

describe('cloud identity', () => {
  it('on AWS reads IMDSv2: a session token first, then the document and its signature with that token', async () => {
    const document = identityDocument();
    imds = await startFakeImds({ document, signature: SIGNATURE + '\n' });
    const read = await readCloudIdentity({ mode: 'aws', imdsEndpoint: imds.endpoint, machineId: MACHINE_ID, env: {} });
    expect(read.identity).toEqual({
      kind: 'aws',
      instanceId: 'i-0123456789abcdef0',
      accountId: '123456789012',
      region: 'eu-west-1',
      availabilityZone: 'eu-west-1a',
      imageId: 'ami-0abcdef1234567890',
    });
    expect(CloudIdentitySchema.parse(read.identity)).toEqual(read.identity);
    // The document is kept byte for byte: the signature covers exactly what IMDS served.
    expect(read.awsProof).toEqual({ document, signature: SIGNATURE });
    expect(imds.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'PUT /latest/api/token',
      'GET /latest/dynamic/instance-identity/document',
      'GET /latest/dynamic/instance-identity/signature',
    ]);
    expect(imds.requests[0]!.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('60');
  });

  it('in auto mode, a plain host whose IMDS never answers falls back to its machine-id within the deadline, and does not probe again', async () => {
    imds = await startFakeImds({ document: '', signature: '', silent: true });
    const stateDir = join(tempDir(), 'state');
    const started = Date.now();
    const read = await readCloudIdentity({
      mode: 'auto',
      imdsEndpoint: imds.endpoint,
      imdsTimeoutMs: 300,
      machineId: MACHINE_ID,
      env: {},
      stateDir,
    });
    expect(Date.now() - started).toBeLessThan(1500);
    expect(read.identity).toEqual({ kind: 'host', machineId: MACHINE_ID });
    expect(read.fallback).toMatch(/no answer within 300 ms/);
    expect(existsSync(join(stateDir, 'cloud-identity.json'))).toBe(true);
    const probes = imds.requests.length;
    expect(
      await readCloudIdentity({
        mode: 'auto',
        imdsEndpoint: imds.endpoint,
        imdsTimeoutMs: 300,
        machineId: MACHINE_ID,
        env: {},
        stateDir,
      }),
    ).toEqual({ identity: { kind: 'host', machineId: MACHINE_ID } });
    expect(imds.requests.length).toBe(probes);
  });

  it('in aws mode, an IMDS that times out is an error naming the endpoint, never a silent plain host', async () => {
    imds = await startFakeImds({ document: '', signature: '', silent: true });
    await expect(
      readCloudIdentity({
        mode: 'aws',
        imdsEndpoint: imds.endpoint,
        imdsTimeoutMs: 200,
        machineId: MACHINE_ID,
        env: {},
      }),
    ).rejects.toThrow(`IMDS at ${imds.endpoint} PUT /latest/api/token: no answer within 200 ms`);
  });

  it('refuses a document without the fields an identity needs', async () => {
    imds = await startFakeImds({ document: identityDocument({ instanceId: 'web-1' }), signature: SIGNATURE });
    await expect(
      readCloudIdentity({ mode: 'aws', imdsEndpoint: imds.endpoint, machineId: MACHINE_ID, env: {} }),
    ).rejects.toThrow(/without a usable instanceId/);
  });

  it('on a Kubernetes node takes the downward API node name (and provider id) without contacting IMDS', async () => {
    imds = await startFakeImds({ document: identityDocument(), signature: SIGNATURE });
    const env = { NODE_NAME: 'node-a', NODE_PROVIDER_ID: 'aws:///eu-west-1a/i-0123456789abcdef0' };
    expect(await readCloudIdentity({ mode: 'auto', imdsEndpoint: imds.endpoint, machineId: MACHINE_ID, env })).toEqual({
      identity: { kind: 'kubernetes', nodeName: 'node-a', providerId: 'aws:///eu-west-1a/i-0123456789abcdef0' },
    });
    expect(imds.requests).toEqual([]);
    await expect(readCloudIdentity({ mode: 'kubernetes', machineId: MACHINE_ID, env: {} })).rejects.toThrow(
      /NODE_NAME is not set/,
    );
  });

  it('holds the AMI the host booted against the manifest that names one', () => {
    const aws = {
      kind: 'aws' as const,
      instanceId: 'i-0123456789abcdef0',
      accountId: '123456789012',
      region: 'eu-west-1',
      availabilityZone: 'eu-west-1a',
      imageId: 'ami-0abcdef1234567890',
    };
    expect(imageMismatch(aws, 'ami-0abcdef1234567890')).toBeNull();
    expect(imageMismatch(aws, 'ami-0fffffffffffffff0')).toBe(
      'the host booted ami-0abcdef1234567890, the manifest is for ami-0fffffffffffffff0',
    );
    expect(imageMismatch(aws, undefined)).toBeNull();
    expect(imageMismatch({ kind: 'host', machineId: MACHINE_ID }, 'ami-0fffffffffffffff0')).toBeNull();
  });
});
