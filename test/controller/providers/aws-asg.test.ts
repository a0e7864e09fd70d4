/**
 * @module The aws-asg provider against a local endpoint speaking the Auto Scaling and EC2 query APIs:
 * the exact actions and parameters the official SDK sends, and real XML answers, errors included.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { awsAsgProvider } from '../../../controller/providers/aws-asg.js';
import { ProviderError } from '../../../controller/providers/types.js';
import { Recorder, context, target, type Answer, type Recorded } from './recorder.js';

const ASG_NS = 'http://autoscaling.amazonaws.com/doc/2011-01-01/';
const EC2_NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';
const ID = 'i-0abc123def4567890';

const asgOk = (action: string, result = '') =>
  `<${action}Response xmlns="${ASG_NS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>7c6e177f-4f3c-11e6-8e21-7bb0d0d2c0a1</RequestId></ResponseMetadata></${action}Response>`;
const asgEmpty = (action: string) =>
  `<${action}Response xmlns="${ASG_NS}"><ResponseMetadata><RequestId>7c6e177f</RequestId></ResponseMetadata></${action}Response>`;
const member = (lifecycle: string) =>
  `<AutoScalingInstances><member><InstanceId>${ID}</InstanceId><AutoScalingGroupName>web-asg</AutoScalingGroupName><AvailabilityZone>eu-west-1a</AvailabilityZone><LifecycleState>${lifecycle}</LifecycleState><HealthStatus>HEALTHY</HealthStatus><LaunchTemplate><LaunchTemplateId>lt-1</LaunchTemplateId><LaunchTemplateName>web</LaunchTemplateName><Version>3</Version></LaunchTemplate><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member></AutoScalingInstances>`;
const asgError = (code: string, message: string): Answer => ({
  status: 403,
  body: `<ErrorResponse xmlns="${ASG_NS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>a1b2</RequestId></ErrorResponse>`,
});
const DNS = 'ip-10-0-1-7.eu-west-1.compute.internal';
/** One instance as DescribeInstances answers it (state, private DNS name and IP, launch time, tags). */
const ec2Instance = (state: string, tags: Record<string, string>) =>
  `<DescribeInstancesResponse xmlns="${EC2_NS}"><requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId><ownerId>123456789012</ownerId><instancesSet><item><instanceId>${ID}</instanceId><instanceState><code>16</code><name>${state}</name></instanceState><privateDnsName>${DNS}</privateDnsName><privateIpAddress>10.0.1.7</privateIpAddress><launchTime>2026-02-01T00:00:00.000Z</launchTime><tagSet>${Object.entries(
    tags,
  )
    .map(([k, v]) => `<item><key>${k}</key><value>${v}</value></item>`)
    .join('')}</tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>`;
const ec2State = (action: string, state: string) =>
  `<${action}Response xmlns="${EC2_NS}"><requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId><instancesSet><item><instanceId>${ID}</instanceId><currentState><code>64</code><name>${state}</name></currentState><previousState><code>16</code><name>running</name></previousState></item></instancesSet></${action}Response>`;

describe('aws-asg provider', () => {
  const saved = { ...process.env };
  let server: Recorder;
  let inGroup: string | null = 'InService';
  let state = 'running';
  let tags: Record<string, string> = {};
  let fail: Record<string, Answer> = {};

  const handler = (r: Recorded): Answer => {
    const p = new URLSearchParams(r.body);
    const action = p.get('Action')!;
    if (fail[action]) return fail[action]!;
    switch (action) {
      case 'DescribeAutoScalingInstances':
        return { body: asgOk(action, inGroup ? member(inGroup) : '<AutoScalingInstances/>') };
      case 'TerminateInstanceInAutoScalingGroup':
        return {
          body: asgOk(
            action,
            `<Activity><ActivityId>5ef4ba3b</ActivityId><AutoScalingGroupName>web-asg</AutoScalingGroupName><Description>Terminating EC2 instance: ${ID}</Description><Cause>At 2026-03-02T08:00:00Z instance ${ID} was taken out of service in response to a user request.</Cause><StartTime>2026-03-02T08:00:00.000Z</StartTime><StatusCode>InProgress</StatusCode><Progress>0</Progress><Details>{}</Details></Activity>`,
          ),
        };
      case 'DescribeAutoScalingGroups':
        return {
          body: asgOk(
            action,
            `<AutoScalingGroups><member><AutoScalingGroupName>web-asg</AutoScalingGroupName><Instances><member><InstanceId>${ID}</InstanceId><LifecycleState>InService</LifecycleState><HealthStatus>Healthy</HealthStatus></member></Instances></member></AutoScalingGroups>`,
          ),
        };
      case 'SetInstanceHealth':
        return { body: asgEmpty(action) };
      case 'DetachInstances':
        return {
          body: asgOk(
            action,
            `<Activities><member><ActivityId>9a2b</ActivityId><AutoScalingGroupName>web-asg</AutoScalingGroupName><Cause>detached</Cause><StartTime>2026-03-02T08:00:00.000Z</StartTime><StatusCode>InProgress</StatusCode></member></Activities>`,
          ),
        };
      case 'CreateTags':
        return {
          body: `<CreateTagsResponse xmlns="${EC2_NS}"><requestId>7a62c49f</requestId><return>true</return></CreateTagsResponse>`,
        };
      case 'TerminateInstances':
        return { body: ec2State(action, 'shutting-down') };
      case 'DescribeInstances':
        return { body: ec2Instance(state, tags) };
    }
    return { status: 400, body: asgError('InvalidAction', action).body! };
  };

  beforeAll(async () => {
    server = await new Recorder(handler).start();
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_MAX_ATTEMPTS: '1',
    });
    delete process.env.AWS_PROFILE;
  });
  afterAll(async () => {
    process.env = saved;
    await server.stop();
  });
  beforeEach(() => {
    server.requests.length = 0;
    inGroup = 'InService';
    state = 'running';
    tags = {};
    fail = {};
  });

  const params = () => server.requests.map((r) => Object.fromEntries(new URLSearchParams(r.body)));
  const provider = (over: Record<string, unknown> = {}) =>
    awsAsgProvider({
      region: 'eu-west-1',
      endpoint: server.url,
      strategy: 'terminate',
      forensicHold: false,
      successorTimeout: '20m',
      ...over,
    } as never);
  const host = (over: Parameters<typeof target>[0] = {}) => target({ hostname: DNS, addresses: ['10.0.1.7'], ...over });
  const lookups = [
    {
      Action: 'DescribeInstances',
      Version: '2016-11-15',
      'Filter.1.Name': 'private-dns-name',
      'Filter.1.Value.1': DNS,
    },
    {
      Action: 'DescribeInstances',
      Version: '2016-11-15',
      'Filter.1.Name': 'private-ip-address',
      'Filter.1.Value.1': '10.0.1.7',
    },
  ];

  it('terminate: finds the instance through EC2 by pinned DNS name and IP, then TerminateInstanceInAutoScalingGroup keeping the desired capacity, signed with SigV4', async () => {
    const r = await provider().replace(host(), context());
    expect(r.ref).toBe(ID);
    expect(r.detail).toContain('activity 5ef4ba3b');
    expect(params()).toEqual([
      ...lookups,
      { Action: 'DescribeAutoScalingInstances', Version: '2011-01-01', 'InstanceIds.member.1': ID },
      {
        Action: 'TerminateInstanceInAutoScalingGroup',
        Version: '2011-01-01',
        InstanceId: ID,
        ShouldDecrementDesiredCapacity: 'false',
      },
    ]);
    const req = server.requests[3]!;
    expect(req.method).toBe('POST');
    expect(req.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(req.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/autoscaling\/aws4_request/,
    );
  });

  it('a short hostname is looked up as name.* (it matches the private DNS name)', async () => {
    await provider().replace(host({ hostname: 'ip-10-0-1-7' }), context());
    expect(params()[0]).toEqual({
      Action: 'DescribeInstances',
      Version: '2016-11-15',
      'Filter.1.Name': 'private-dns-name',
      'Filter.1.Value.1': 'ip-10-0-1-7.*',
    });
  });

  it('status asks EC2 by the recorded instance id: pending while in its group, done once EC2 says terminated', async () => {
    const p = provider();
    expect(await p.status(host({ ref: ID }), context())).toMatchObject({
      state: 'pending',
      detail: `${ID} is InService in web-asg`,
    });
    expect(params()[0]).toEqual({ Action: 'DescribeInstances', Version: '2016-11-15', 'InstanceId.1': ID });
    inGroup = 'Terminating';
    expect(await p.status(host({ ref: ID }), context())).toMatchObject({
      state: 'pending',
      detail: `${ID} is Terminating in web-asg`,
    });
    inGroup = null;
    state = 'shutting-down';
    expect((await p.status(host({ ref: ID }), context())).state).toBe('done');
  });

  it('out of its group but still running is never "done": pending for a short grace, then a failure', async () => {
    inGroup = null;
    const started = '2026-03-02T08:00:00.000Z';
    const at = (min: number) => () => new Date(Date.parse(started) + min * 60_000);
    expect(await provider().status(host({ ref: ID, startedAt: started }), context({ now: at(1) }))).toMatchObject({
      state: 'pending',
      detail: `${ID} has left its auto-scaling group; EC2 still reports it running`,
    });
    const err = (await provider()
      .status(host({ ref: ID, startedAt: started }), context({ now: at(11) }))
      .catch((e: unknown) => e)) as ProviderError;
    expect(err).toBeInstanceOf(ProviderError);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/left its auto-scaling group but is still running/);
  });

  it("unhealthy: SetInstanceHealth Unhealthy so the group's lifecycle hooks run", async () => {
    await provider({ strategy: 'unhealthy' }).replace(host(), context());
    expect(params()[3]).toEqual({
      Action: 'SetInstanceHealth',
      Version: '2011-01-01',
      InstanceId: ID,
      HealthStatus: 'Unhealthy',
      ShouldRespectGracePeriod: 'false',
    });
  });

  it('a running instance in no group is a non-retryable error; one EC2 reports terminated is already gone', async () => {
    inGroup = null;
    const err = (await provider()
      .replace(host(), context())
      .catch((e: unknown) => e)) as ProviderError;
    expect(err).toBeInstanceOf(ProviderError);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/is running in no auto-scaling group/);
    expect(params().map((p) => p.Action)).not.toContain('TerminateInstances');
    state = 'terminated';
    expect((await provider().replace(host(), context())).detail).toMatch(/already terminated/);
  });

  it('an AccessDenied answer is a permanent error naming the action and the code', async () => {
    fail.TerminateInstanceInAutoScalingGroup = asgError(
      'AccessDenied',
      'User: arn:aws:iam::123456789012:role/driftwarden is not authorized to perform: autoscaling:TerminateInstanceInAutoScalingGroup',
    );
    const err = await provider()
      .replace(host(), context())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as ProviderError).retryable).toBe(false);
    expect((err as Error).message).toMatch(
      /^aws-asg: terminate i-0abc123def4567890 in web-asg: AccessDenied: User: .* is not authorized/,
    );
  });

  it('a server fault is retryable', async () => {
    fail.DescribeAutoScalingInstances = {
      status: 503,
      body: `<ErrorResponse xmlns="${ASG_NS}"><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>try later</Message></Error><RequestId>x</RequestId></ErrorResponse>`,
    };
    const err = (await provider()
      .replace(host(), context())
      .catch((e: unknown) => e)) as ProviderError;
    expect(err.retryable).toBe(true);
  });

  it("detach: notes who was a member, DetachInstances keeping the desired capacity, then tags naming the replacement, the group, AWS's detach time and the members before it", async () => {
    const r = await provider({ strategy: 'detach' }).replace(host(), context());
    expect(r.ref).toBe(ID);
    expect(params().slice(3)).toEqual([
      { Action: 'DescribeAutoScalingGroups', Version: '2011-01-01', 'AutoScalingGroupNames.member.1': 'web-asg' },
      { Action: 'DescribeInstances', Version: '2016-11-15', 'InstanceId.1': ID },
      {
        Action: 'DetachInstances',
        Version: '2011-01-01',
        AutoScalingGroupName: 'web-asg',
        'InstanceIds.member.1': ID,
        ShouldDecrementDesiredCapacity: 'false',
      },
      {
        Action: 'CreateTags',
        Version: '2016-11-15',
        'ResourceId.1': ID,
        'Tag.1.Key': 'driftwarden:replacement',
        'Tag.1.Value': 'r-1',
        'Tag.2.Key': 'driftwarden:detached-from',
        'Tag.2.Value': 'web-asg',
        'Tag.3.Key': 'driftwarden:detached-at',
        'Tag.3.Value': '2026-03-02T08:00:00.000Z',
        'Tag.4.Key': 'driftwarden:members-launched-up-to',
        'Tag.4.Value': '2026-02-01T00:00:00.000Z',
        'Tag.5.Key': 'driftwarden:members-launched-last',
        'Tag.5.Value': ID,
      },
    ]);
  });

  it("detach: status refuses to end an instance without this replacement's tags", async () => {
    inGroup = null;
    const err = (await provider({ strategy: 'detach' })
      .status(host({ ref: ID, startedAt: '2026-03-02T08:00:00.000Z' }), context({ successor: () => 'host-new' }))
      .catch((e: unknown) => e)) as ProviderError;
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/was not detached by replacement r-1/);
    expect(params().map((p) => p.Action)).toEqual(['DescribeInstances']);
  });
});
