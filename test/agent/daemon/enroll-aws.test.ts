/**
 * The agent enrolling by AWS identity end to end, over real HTTP: it reads IMDSv2 (a fake one on
 * 127.0.0.1 serving a document signed by a test CA standing in for AWS's certificate), and a real
 * controller configured with that certificate enrolls it without any token, once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { pino } from 'pino';
import { ControllerConfigSchema } from '../../../controller/config.js';
import { startController } from '../../../controller/server.js';
import { readCloudIdentity } from '../../../agent/cloud-identity.js';
import { enroll } from '../../../agent/daemon/enroll.js';
import { StateDir } from '../../../agent/daemon/state-dir.js';
import { Transport } from '../../../agent/daemon/transport.js';
import { AgentConfigSchema } from '../../../shared/schema/config.js';
import { makeFakeAwsCert } from '../../helpers/fake-aws-cert.js';
import { identityDocument, startFakeImds, type FakeImds } from '../../helpers/fake-imds.js';
import { tempDir } from '../../helpers/tmp.js';

const aws = makeFakeAwsCert();
const inventory = (hostId: string) => ({ hostId, hostname: null, os: null, kernel: null, addresses: [] });
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function controller(): Promise<string> {
  const dir = tempDir();
  const config = ControllerConfigSchema.parse({
    listen: '127.0.0.1:0',
    store: `sqlite:${join(dir, 'c.db')}`,
    enrollment: { aws: { certificates: [aws.certFile], accounts: ['123456789012'] } },
  });
  const ctl = await startController(config, { log: pino({ level: 'silent' }) });
  closers.push(() => ctl.close());
  return ctl.url;
}

async function imds(document: string): Promise<FakeImds> {
  const fake = await startFakeImds({ document, signature: aws.sign(document) });
  closers.push(() => fake.close());
  return fake;
}

describe('agent enrollment by AWS identity', () => {
  it('enrolls with the signed document and no token; a second host with the same instance is refused for good', async () => {
    const url = await controller();
    const document = identityDocument({
      pendingTime: new Date(Date.now() - 5 * 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    });
    const fake = await imds(document);
    const config = AgentConfigSchema.parse({
      controller: { url },
      identity: { mode: 'aws', imdsEndpoint: fake.endpoint, enroll: 'aws' },
    });
    const transport = new Transport({ url });
    closers.push(() => transport.close());

    const cloud = await readCloudIdentity({
      mode: 'aws',
      imdsEndpoint: fake.endpoint,
      machineId: 'a'.repeat(32),
      env: {},
    });
    const state = new StateDir(tempDir());
    const r = await enroll(state, transport, config, {
      hostId: 'a'.repeat(32),
      imageId: 'ami-web-1',
      inventory: inventory('a'.repeat(32)),
      agentVersion: '0.1.0',
      cloud,
    });
    expect(r).toMatchObject({ ok: true, credential: expect.stringMatching(/^dwh_/) });
    expect(state.readCredential()).toBe((r as { credential: string }).credential);

    const again = await enroll(new StateDir(tempDir()), transport, config, {
      hostId: 'b'.repeat(32),
      imageId: 'ami-web-1',
      inventory: inventory('b'.repeat(32)),
      agentVersion: '0.1.0',
      cloud,
    });
    expect(again).toEqual({
      ok: false,
      retry: false,
      reason: expect.stringContaining('AWS instance i-0123456789abcdef0 is already enrolled'),
    });
  });

  it('a host configured to enroll by AWS identity that has none says why, and sends nothing', async () => {
    const config = AgentConfigSchema.parse({
      controller: { url: 'http://127.0.0.1:9' },
      identity: { mode: 'host', enroll: 'aws' },
    });
    const transport = new Transport({ url: 'http://127.0.0.1:9' });
    closers.push(() => transport.close());
    const r = await enroll(new StateDir(tempDir()), transport, config, {
      hostId: 'c'.repeat(32),
      imageId: 'ami-web-1',
      inventory: inventory('c'.repeat(32)),
      agentVersion: '0.1.0',
      cloud: { identity: { kind: 'host', machineId: 'c'.repeat(32) } },
    });
    expect(r).toEqual({
      ok: false,
      retry: false,
      reason: 'identity.enroll is aws but this host has no AWS identity document (identity.mode host: not on AWS)',
    });
  });
});
