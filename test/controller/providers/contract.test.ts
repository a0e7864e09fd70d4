/**
 * @module One contract for every provider (providers/types.ts), each against its local platform
 * stand-in: replace resolves once accepted with a detail; status says pending until the platform is
 * done, then done; a platform refusal is a ProviderError that names the provider; an aborted call
 * ends instead of hanging. A new provider is one file and one `contract(...)` call here.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { awsAsgProvider } from '../../../controller/providers/aws-asg.js';
import { execProvider } from '../../../controller/providers/exec.js';
import { kubernetesProvider } from '../../../controller/providers/kubernetes.js';
import { ProviderError, type Provider } from '../../../controller/providers/types.js';
import { webhookProvider } from '../../../controller/providers/webhook.js';
import { FIXTURES, tempDir } from '../../helpers/tmp.js';
import { Recorder, context, target, type Answer, type Recorded } from './recorder.js';

interface Platform {
  provider: Provider;
  /** Whether status says pending between an accepted replace and the platform finishing (exec without a running job confirms at once). */
  pendingUntilFinished: boolean;
  /** The platform finishes what it was asked (the instance or node is gone). */
  finish(): void;
  /** From now on the platform refuses. */
  refuse(): void;
  /** A platform call that never answers, to check aborts. */
  hang(): void;
}

const servers: Recorder[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

async function serve(handler: (r: Recorded) => Answer | Promise<Answer>): Promise<Recorder> {
  const s = await new Recorder(handler).start();
  servers.push(s);
  return s;
}

function contract(name: string, make: () => Promise<Platform>): void {
  describe(`provider contract: ${name}`, () => {
    it('replace resolves once accepted; status is done once the platform is', async () => {
      const p = await make();
      const t = target({ hostname: 'i-0abc123def4567890.eu-west-1.compute.internal' });
      const accepted = await p.provider.replace(t, context());
      expect(accepted.detail.length).toBeGreaterThan(0);
      const next = { ...t, ref: accepted.ref, startedAt: new Date().toISOString() };
      if (p.pendingUntilFinished) expect((await p.provider.status(next, context())).state).toBe('pending');
      p.finish();
      expect((await p.provider.status(next, context({ successor: () => 'host-new' }))).state).toBe('done');
    });

    it('a refusal is a ProviderError that names the provider', async () => {
      const p = await make();
      p.refuse();
      const err = await p.provider.replace(target(), context()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderError);
      expect((err as Error).message.startsWith(`${p.provider.type}: `)).toBe(true);
    });

    it('an aborted call ends instead of hanging', async () => {
      const p = await make();
      p.hang();
      const abort = new AbortController();
      setTimeout(() => abort.abort(), 200);
      await expect(p.provider.replace(target(), context({ signal: abort.signal }))).rejects.toBeInstanceOf(Error);
    }, 15_000);
  });
}

const ID = 'i-0abc123def4567890';
const ASG_NS = 'http://autoscaling.amazonaws.com/doc/2011-01-01/';

contract('aws-asg', async () => {
  let mode: 'ok' | 'refuse' | 'hang' = 'ok';
  let inGroup = true;
  const s = await serve(async (r) => {
    const action = new URLSearchParams(r.body).get('Action');
    if (mode === 'hang') await new Promise((res) => setTimeout(res, 5_000));
    if (mode === 'refuse')
      return {
        status: 403,
        body: `<ErrorResponse xmlns="${ASG_NS}"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized</Message></Error><RequestId>1</RequestId></ErrorResponse>`,
      };
    if (action === 'DescribeInstances') {
      // The instance EC2 knows by the host's pinned private DNS name: running until the platform finishes.
      const state = inGroup ? 'running' : 'terminated';
      return {
        body: `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId><instancesSet><item><instanceId>${ID}</instanceId><instanceState><code>16</code><name>${state}</name></instanceState><privateDnsName>ip-10-0-1-7.eu-west-1.compute.internal</privateDnsName><privateIpAddress>10.0.1.7</privateIpAddress><launchTime>2026-02-01T00:00:00.000Z</launchTime></item></instancesSet></item></reservationSet></DescribeInstancesResponse>`,
      };
    }
    const member = inGroup
      ? `<member><InstanceId>${ID}</InstanceId><AutoScalingGroupName>web-asg</AutoScalingGroupName><AvailabilityZone>eu-west-1a</AvailabilityZone><LifecycleState>InService</LifecycleState><HealthStatus>HEALTHY</HealthStatus><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>`
      : '';
    const result =
      action === 'DescribeAutoScalingInstances'
        ? `<AutoScalingInstances>${member}</AutoScalingInstances>`
        : '<Activity><ActivityId>a1</ActivityId><AutoScalingGroupName>web-asg</AutoScalingGroupName><StatusCode>InProgress</StatusCode></Activity>';
    return {
      body: `<${action}Response xmlns="${ASG_NS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></${action}Response>`,
    };
  });
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'secret',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_MAX_ATTEMPTS: '1',
  });
  return {
    pendingUntilFinished: true,
    provider: awsAsgProvider({
      region: 'eu-west-1',
      endpoint: s.url,
      strategy: 'terminate',
      forensicHold: false,
      successorTimeout: '20m',
      standalone: 'fail',
      decrementDesiredCapacity: false,
    }),
    finish: () => void (inGroup = false),
    refuse: () => void (mode = 'refuse'),
    hang: () => void (mode = 'hang'),
  };
});

contract('kubernetes', async () => {
  let mode: 'ok' | 'refuse' | 'hang' = 'ok';
  let node = true;
  const s = await serve(async (r) => {
    if (mode === 'hang') await new Promise((res) => setTimeout(res, 5_000));
    if (mode === 'refuse')
      return {
        status: 403,
        body: {
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          reason: 'Forbidden',
          message: 'forbidden',
          code: 403,
        },
      };
    if (r.path === '/api/v1/pods') return { body: { kind: 'PodList', apiVersion: 'v1', metadata: {}, items: [] } };
    if (r.method === 'GET')
      return node
        ? { body: { kind: 'Node', metadata: { name: 'n' } } }
        : { status: 404, body: { kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404 } };
    return { body: { kind: 'Node', metadata: { name: 'n' } } };
  });
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: s.url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return {
    pendingUntilFinished: true,
    provider: kubernetesProvider(
      { drainTimeout: '10s', evictionRetry: '50ms', nodeName: 'hostname', force: false, deleteEmptyDirData: false },
      { kubeConfig: kc },
    ),
    finish: () => void (node = false),
    refuse: () => void (mode = 'refuse'),
    hang: () => void (mode = 'hang'),
  };
});

contract('webhook', async () => {
  let mode: 'ok' | 'refuse' | 'hang' = 'ok';
  let done = false;
  const s = await serve(async () => {
    if (mode === 'hang') await new Promise((res) => setTimeout(res, 5_000));
    if (mode === 'refuse') return { status: 403, body: { error: 'no' } };
    return { body: { status: done ? 'done' : 'pending', ref: 'ticket-1' } };
  });
  return {
    pendingUntilFinished: true,
    provider: webhookProvider({ url: s.url, secret: 'k', timeout: '10s', retries: 0 }),
    finish: () => void (done = true),
    refuse: () => void (mode = 'refuse'),
    hang: () => void (mode = 'hang'),
  };
});

contract('exec', async () => {
  const dir = tempDir();
  const flag = join(dir, 'behaviour');
  writeFileSync(flag, 'ok');
  // The script's behaviour comes from a file, so one provider can be made to refuse or hang later.
  const script = join(dir, 'run.mjs');
  writeFileSync(
    script,
    `import { readFileSync } from 'node:fs'; import { spawnSync } from 'node:child_process';
const b = readFileSync(${JSON.stringify(flag)}, 'utf8');
const r = spawnSync(process.execPath, [${JSON.stringify(join(FIXTURES, 'providers', 'exec-replace.mjs'))}, ${JSON.stringify(join(dir, 'call.json'))}, b], { input: '{}', stdio: ['pipe', 'inherit', 'inherit'] });
process.exit(r.status ?? 1);`,
  );
  return {
    pendingUntilFinished: false,
    provider: execProvider({
      command: [process.execPath, script],
      statusCommand: [process.execPath, script],
      timeout: '30s',
    }),
    finish: () => writeFileSync(flag, 'ok'),
    refuse: () => writeFileSync(flag, 'fail'),
    hang: () => writeFileSync(flag, 'hang'),
  };
});
