/**
 * @module The aws-asg provider against moto, a real implementation of the Auto Scaling and EC2 APIs,
 * driven through the official SDK with an endpoint override: fixtures are real groups and instances,
 * and every claim the provider makes is checked against EC2's own state afterwards.
 */
import {
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateLaunchTemplateCommand,
  DescribeInstancesCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { beforeEach, describe, expect, it } from 'vitest';
import { awsAsgProvider, type AwsAsgConfig } from '../../../controller/providers/aws-asg.js';
import { ProviderError, type SuccessorMatch } from '../../../controller/providers/types.js';
import { AwsAsgProviderSchema } from '../../../controller/scheduler/config.js';
import { SKIP_MOTO, useMotoAws } from '../../helpers/moto.js';
import { context, target } from './recorder.js';

const REGION = 'us-east-1';
const AMI = 'ami-12c6146b'; // one of moto's built-in images

// Skipped only with DRIFTWARDEN_SKIP_MOTO=1; a missing moto_server fails the file (test/helpers/moto.ts), and .ci/run finds it.
describe.skipIf(SKIP_MOTO)('aws-asg provider against moto', () => {
  const aws = useMotoAws(REGION);

  const provider = (over: Partial<AwsAsgConfig> = {}) =>
    awsAsgProvider({
      region: REGION,
      endpoint: aws.moto().url,
      strategy: 'terminate',
      forensicHold: false,
      successorTimeout: '20m',
      standalone: 'fail',
      decrementDesiredCapacity: false,
      ...over,
    });

  async function describeOne(id: string): Promise<Instance> {
    const r = await aws.ec2().send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    return r.Reservations![0]!.Instances![0]!;
  }
  const stateOf = async (id: string) => (await describeOne(id)).State!.Name!;
  const tagsOf = async (id: string) =>
    Object.fromEntries(((await describeOne(id)).Tags ?? []).map((t) => [t.Key!, t.Value!]));
  async function members(group = 'web-asg'): Promise<string[]> {
    const r = await aws.asg().send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [group] }));
    return (r.AutoScalingGroups![0]!.Instances ?? []).map((i) => i.InstanceId!).sort();
  }
  async function health(id: string): Promise<string | undefined> {
    const r = await aws.asg().send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [id] }));
    return r.AutoScalingInstances?.[0]?.HealthStatus;
  }
  /** The pinned identity of a host enrolled on this instance, after it launched. */
  async function hostOn(id: string, over: Parameters<typeof target>[0] = {}) {
    const i = await describeOne(id);
    return target({
      hostId: `host-${id}`,
      hostname: i.PrivateDnsName!,
      addresses: [i.PrivateIpAddress!],
      enrolledAt: new Date(Date.now() + 1_000).toISOString(),
      group: 'web-asg',
      ...over,
    });
  }

  let groupIds: string[];
  let standaloneId: string;
  beforeEach(async () => {
    await aws.moto().reset();
    await aws.ec2().send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: 'web',
        LaunchTemplateData: { ImageId: AMI, InstanceType: 't3.micro' },
      }),
    );
    await aws.asg().send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: 'web-asg',
        LaunchTemplate: { LaunchTemplateName: 'web', Version: '$Latest' },
        MinSize: 0,
        MaxSize: 6,
        DesiredCapacity: 2,
        AvailabilityZones: [`${REGION}a`],
      }),
    );
    groupIds = await members();
    const r = await aws
      .ec2()
      .send(new RunInstancesCommand({ ImageId: AMI, MinCount: 1, MaxCount: 1, InstanceType: 't3.micro' }));
    standaloneId = r.Instances![0]!.InstanceId!;
  });

  const failure = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  };

  it("terminate: the instance found by its pinned DNS name is terminated in its group, desired capacity kept; done on EC2's word", async () => {
    const [mine, other] = groupIds as [string, string];
    const t = await hostOn(mine);
    const r = await provider().replace(t, context());
    expect(r.ref).toBe(mine);
    expect(await stateOf(mine)).toBe('terminated');
    expect(await stateOf(other)).toBe('running');
    expect((await members()).length).toBe(2); // a successor launched in its place
    expect(await provider().status({ ...t, ref: r.ref }, context())).toMatchObject({ state: 'done' });
  });

  it('unhealthy: marks the instance Unhealthy in its group and waits while it is still a member', async () => {
    const t = await hostOn(groupIds[0]!);
    const r = await provider({ strategy: 'unhealthy' }).replace(t, context());
    expect(await health(groupIds[0]!)).toBe('Unhealthy');
    expect(await provider({ strategy: 'unhealthy' }).status({ ...t, ref: r.ref }, context())).toMatchObject({
      state: 'pending',
    });
    expect(await stateOf(groupIds[1]!)).toBe('running');
  });

  it('a short hostname matches the private DNS name, and a private IP alone finds the instance', async () => {
    const mine = groupIds[0]!;
    const i = await describeOne(mine);
    const short = i.PrivateDnsName!.split('.')[0]!;
    expect(
      (await provider({ strategy: 'unhealthy' }).replace(await hostOn(mine, { hostname: short }), context())).ref,
    ).toBe(mine);
    expect(
      (
        await provider({ strategy: 'unhealthy' }).replace(
          await hostOn(mine, { hostname: 'web-1.example.internal' }),
          context(),
        )
      ).ref,
    ).toBe(mine);
    expect(
      (await provider({ strategy: 'unhealthy' }).replace(await hostOn(mine, { hostname: null }), context())).ref,
    ).toBe(mine);
  });

  it('pinned name and pinned address naming different instances: refused, non-retryable, nothing touched', async () => {
    const [a, b] = groupIds as [string, string];
    const ipOfB = (await describeOne(b)).PrivateIpAddress!;
    const err = await failure(provider().replace(await hostOn(a, { addresses: [ipOfB] }), context()));
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/disagrees/);
    expect([await stateOf(a), await stateOf(b)]).toEqual(['running', 'running']);
  });

  it('never derives an instance id from a name: a host named after another instance finds nothing and touches nothing', async () => {
    const victim = groupIds[1]!;
    for (const hostname of [victim, `${victim}.${REGION}.compute.internal`]) {
      const err = await failure(
        provider().replace(target({ hostname, addresses: [], enrolledAt: new Date().toISOString() }), context()),
      );
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/no EC2 instance/);
    }
    expect(await stateOf(victim)).toBe('running');
  });

  it('acts on the instance id the host enrolled with; a pinned name or address of another instance is refused, nothing touched', async () => {
    const [a, b] = groupIds as [string, string];
    const byId = await hostOn(a, { instanceId: a });
    expect((await provider().replace(byId, context())).ref).toBe(a);
    expect(await stateOf(a)).toMatch(/shutting-down|terminated/);
    const other = await describeOne(b);
    // Enrolled on the standalone instance's name and address, claiming b's id.
    const liar = await hostOn(standaloneId, { instanceId: b });
    const err = await failure(provider().replace(liar, context()));
    expect(err).toMatchObject({
      retryable: false,
      message: expect.stringMatching(new RegExp(`enrolled as instance ${b}.*refusing to act`)),
    });
    expect(await stateOf(b)).toBe('running');
    expect(await stateOf(standaloneId)).toBe('running');
    expect(other.State?.Name).toBe('running');
    const unknown = await failure(
      provider().replace(target({ instanceId: 'i-0123456789abcdef0', hostname: null, addresses: [] }), context()),
    );
    expect(unknown).toMatchObject({
      retryable: false,
      message: expect.stringMatching(/does not know instance i-0123456789abcdef0/),
    });
  });

  it("a recorded ref that is not the pinned identity's instance is refused before anything is done", async () => {
    const [mine, victim] = groupIds as [string, string];
    const err = await failure(provider().replace({ ...(await hostOn(mine)), ref: victim }, context()));
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(new RegExp(`recorded instance ${victim} is not the one`));
    expect([await stateOf(mine), await stateOf(victim)]).toEqual(['running', 'running']);
  });

  it('an unknown instance fails at once, non-retryable; so does an instance launched after the host enrolled (a reused address)', async () => {
    const err = await failure(
      provider().replace(
        target({
          hostname: 'ip-10-99-99-99.ec2.internal',
          addresses: ['10.99.99.99'],
          enrolledAt: new Date().toISOString(),
        }),
        context(),
      ),
    );
    expect(err.retryable).toBe(false);
    const late = await hostOn(groupIds[0]!, { enrolledAt: '2020-01-01T00:00:00.000Z' });
    expect((await failure(provider().replace(late, context()))).retryable).toBe(false);
    expect(await stateOf(groupIds[0]!)).toBe('running');
  });

  it('a running instance in no auto-scaling group is a non-retryable error by default; standalone: terminate terminates it', async () => {
    const t = await hostOn(standaloneId);
    for (const strategy of ['terminate', 'unhealthy', 'detach'] as const) {
      const err = await failure(provider({ strategy }).replace(t, context()));
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/in no auto-scaling group/);
    }
    expect(await stateOf(standaloneId)).toBe('running');
    const r = await provider({ standalone: 'terminate' }).replace(t, context());
    expect(r.ref).toBe(standaloneId);
    expect(await stateOf(standaloneId)).toBe('terminated');
    expect(await tagsOf(standaloneId)).toMatchObject({
      'driftwarden:replacement': 'r-1',
      'driftwarden:standalone': 'true',
    });
    expect(await provider({ standalone: 'terminate' }).status({ ...t, ref: r.ref }, context())).toMatchObject({
      state: 'done',
    });
  });

  it('an instance that really is terminated is already gone: success', async () => {
    const t = await hostOn(standaloneId);
    await aws.ec2().send(new TerminateInstancesCommand({ InstanceIds: [standaloneId] }));
    expect((await provider().replace(t, context())).detail).toMatch(/already terminated/);
    expect(await provider().status({ ...t, ref: standaloneId }, context())).toMatchObject({ state: 'done' });
  });

  describe('detach (launch before terminate)', () => {
    /** findCleanSuccessor as the store answers it: only for a host enrolled on the instance the provider names. */
    const hostsOn =
      (hosts: Record<string, string>, asked: SuccessorMatch[]) => async (_since: string, match?: SuccessorMatch) => {
        if (match) asked.push(match);
        for (const [ip, host] of Object.entries(hosts)) if (match?.addresses.includes(ip)) return host;
        return null;
      };
    const ctxWith = (find: (since: string, match?: SuccessorMatch) => Promise<string | null>, now?: () => Date) => ({
      ...context(now ? { now } : {}),
      findCleanSuccessor: find,
    });

    it('records the instance launched for this replacement, and terminates only the detached, tagged one once that successor reports clean', async () => {
      const [mine, other] = groupIds as [string, string];
      const p = provider({ strategy: 'detach' });
      const t0 = await hostOn(mine);
      const r = await p.replace(t0, context());
      expect(r.ref).toBe(mine);
      const after = await members();
      expect(after).not.toContain(mine);
      expect(after).toHaveLength(2);
      const successor = after.find((id) => id !== other)!;
      expect(await tagsOf(mine)).toMatchObject({
        'driftwarden:replacement': 'r-1',
        'driftwarden:detached-from': 'web-asg',
      });
      expect(await stateOf(mine)).toBe('running');

      const t = { ...t0, ref: r.ref, startedAt: new Date().toISOString() };
      const asked: SuccessorMatch[] = [];
      // An unrelated host of the group (on `other`) reports clean: not this replacement's successor.
      const otherIp = (await describeOne(other)).PrivateIpAddress!;
      expect(await p.status(t, ctxWith(hostsOn({ [otherIp]: 'host-unrelated' }, asked)))).toMatchObject({
        state: 'pending',
      });
      expect(await stateOf(mine)).toBe('running');
      const succ = await describeOne(successor);
      expect(asked.at(-1)).toEqual({ hostnames: [succ.PrivateDnsName], addresses: [succ.PrivateIpAddress] });
      expect(await tagsOf(successor)).toMatchObject({ 'driftwarden:successor-of': 'r-1' });
      expect(await tagsOf(mine)).toMatchObject({ 'driftwarden:successor': successor });

      const done = await p.status(
        t,
        ctxWith(hostsOn({ [otherIp]: 'host-unrelated', [succ.PrivateIpAddress!]: 'host-new' }, asked)),
      );
      expect(done).toMatchObject({ state: 'done', replacedBy: 'host-new' });
      expect(await stateOf(mine)).toBe('terminated');
      expect([await stateOf(other), await stateOf(successor)]).toEqual(['running', 'running']);
    });

    it('two detaches in one group each get a successor of their own; a successor that ended is replaced by another', async () => {
      const [a, b] = groupIds as [string, string];
      const p = provider({ strategy: 'detach' });
      const ta = { ...(await hostOn(a)), replacementId: 'r-a' };
      const tb = { ...(await hostOn(b)), replacementId: 'r-b' };
      await p.replace(ta, context());
      await p.replace(tb, context());
      const since = new Date().toISOString();
      // Asked in this order because moto launches everything within one second: b's detach happened
      // after a's successor joined, so only b's own successor can be b's; a then takes what is left.
      // (Real launches are seconds apart, and the earliest launched after a detach is its successor.)
      await p.status(
        { ...tb, ref: b, startedAt: since },
        ctxWith(async () => null),
      );
      await p.status(
        { ...ta, ref: a, startedAt: since },
        ctxWith(async () => null),
      );
      const sa = (await tagsOf(a))['driftwarden:successor']!;
      const sb = (await tagsOf(b))['driftwarden:successor']!;
      expect(sa).toBeDefined();
      expect(sb).toBeDefined();
      expect(sa).not.toBe(sb);
      expect(await tagsOf(sa)).toMatchObject({ 'driftwarden:successor-of': 'r-a' });
      expect(await tagsOf(sb)).toMatchObject({ 'driftwarden:successor-of': 'r-b' });

      // r-a's successor fails and is terminated; the group launches another, which r-a takes.
      await aws.ec2().send(new TerminateInstancesCommand({ InstanceIds: [sa] }));
      await p.status(
        { ...ta, ref: a, startedAt: since },
        ctxWith(async () => null),
      );
      const again = (await tagsOf(a))['driftwarden:successor'];
      expect(again).toMatch(/^i-/);
      expect([sa, sb]).not.toContain(again);
    });

    it('with decrementDesiredCapacity, detaches and shrinks the group: no successor launches, the instance is ended at once', async () => {
      const p = provider({ strategy: 'detach', decrementDesiredCapacity: true });
      const t0 = await hostOn(groupIds[0]!);
      const r = await p.replace(t0, context());
      expect(r.detail).toMatch(/desired capacity decremented: no successor launches/);
      expect(await members()).toEqual([groupIds[1]!]);
      const g = await aws.asg().send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['web-asg'] }));
      expect(g.AutoScalingGroups![0]!.DesiredCapacity).toBe(1);
      expect(await tagsOf(groupIds[0]!)).toMatchObject({
        'driftwarden:decremented': 'true',
        'driftwarden:replacement': 'r-1',
      });
      const done = await p.status({ ...t0, ref: r.ref, startedAt: new Date().toISOString() }, context());
      expect(done).toMatchObject({
        state: 'done',
        detail: expect.stringMatching(/terminated \(the group was shrunk: no successor\)/),
      });
      expect(done).not.toHaveProperty('replacedBy');
      expect(await stateOf(groupIds[0]!)).toMatch(/shutting-down|terminated/);
      expect(await stateOf(groupIds[1]!)).toBe('running');
    });

    it('with forensicHold, tags and stops the detached instance instead', async () => {
      const p = provider({ strategy: 'detach', forensicHold: true });
      const t0 = await hostOn(groupIds[0]!);
      const r = await p.replace(t0, context());
      const successor = (await members()).find((id) => !groupIds.includes(id))!;
      const ip = (await describeOne(successor)).PrivateIpAddress!;
      const done = await p.status(
        { ...t0, ref: r.ref, startedAt: new Date().toISOString() },
        ctxWith(hostsOn({ [ip]: 'host-new' }, [])),
      );
      expect(done).toMatchObject({ state: 'done', replacedBy: 'host-new' });
      expect(['stopping', 'stopped']).toContain(await stateOf(groupIds[0]!));
      expect(await tagsOf(groupIds[0]!)).toMatchObject({
        'driftwarden:forensic-hold': 'true',
        'driftwarden:replaced-by': 'host-new',
        'driftwarden:replacement': 'r-1',
      });
    });

    it('never stops or terminates an instance it did not detach, whatever reports clean', async () => {
      const p = provider({ strategy: 'detach' });
      const t = { ...(await hostOn(standaloneId)), ref: standaloneId, startedAt: new Date().toISOString() };
      const anyone = async () => 'host-unrelated';
      const err = await failure(p.status(t, ctxWith(anyone)));
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/was not detached by replacement r-1/);
      expect(await stateOf(standaloneId)).toBe('running');
    });

    it("after successorTimeout, the error states the detached instance's real EC2 state", async () => {
      const p = provider({ strategy: 'detach', successorTimeout: '20m' });
      const t0 = await hostOn(groupIds[0]!);
      const r = await p.replace(t0, context());
      const started = new Date();
      const t = { ...t0, ref: r.ref, startedAt: started.toISOString() };
      const late = () => new Date(started.getTime() + 21 * 60_000);
      expect(
        (
          await failure(
            p.status(
              t,
              ctxWith(async () => null, late),
            ),
          )
        ).message,
      ).toMatch(new RegExp(`${groupIds[0]} is running, outside any auto-scaling group`));
      await aws.ec2().send(new StopInstancesCommand({ InstanceIds: [groupIds[0]!] }));
      expect(
        (
          await failure(
            p.status(
              t,
              ctxWith(async () => null, late),
            ),
          )
        ).message,
      ).toMatch(new RegExp(`${groupIds[0]} is (stopping|stopped), outside`));
    });
  });

  it('a missing region is a configuration error, refused at validation, never retried', () => {
    const r = AwsAsgProviderSchema.safeParse({ type: 'aws-asg' });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]).toMatchObject({ path: ['region'] });
    expect(r.error!.issues[0]!.message).toMatch(/required/);
    expect(() =>
      awsAsgProvider({ strategy: 'terminate', forensicHold: false, successorTimeout: '20m' } as never),
    ).toThrow(/region is required/);
  });
});
