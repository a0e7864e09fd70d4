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
const asgEmpty = (action: string) => `<${action}Response xmlns="${ASG_NS}"><ResponseMetadata><RequestId>7c6e177f</RequestId></ResponseMetadata></${action}Response>`;
const member = (lifecycle: string) =>
  `<AutoScalingInstances><member><InstanceId>${ID}</InstanceId><AutoScalingGroupName>web-asg</AutoScalingGroupName><AvailabilityZone>eu-west-1a</AvailabilityZone><LifecycleState>${lifecycle}</LifecycleState><HealthStatus>HEALTHY</HealthStatus><LaunchTemplate><LaunchTemplateId>lt-1</LaunchTemplateId><LaunchTemplateName>web</LaunchTemplateName><Version>3</Version></LaunchTemplate><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member></AutoScalingInstances>`;
const asgError = (code: string, message: string): Answer => ({
  status: 403,
  body: `<ErrorResponse xmlns="${ASG_NS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>a1b2</RequestId></ErrorResponse>`,
});
const ec2State = (action: string, state: string) =>
  `<${action}Response xmlns="${EC2_NS}"><requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId><instancesSet><item><instanceId>${ID}</instanceId><currentState><code>64</code><name>${state}</name></currentState><previousState><code>16</code><name>running</name></previousState></item></instancesSet></${action}Response>`;

describe('aws-asg provider', () => {
  const saved = { ...process.env };
  let server: Recorder;
  let inGroup: string | null = 'InService';
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
          body: asgOk(action, `<Activity><ActivityId>5ef4ba3b</ActivityId><AutoScalingGroupName>web-asg</AutoScalingGroupName><Description>Terminating EC2 instance: ${ID}</Description><Cause>At 2026-03-02T08:00:00Z instance ${ID} was taken out of service in response to a user request.</Cause><StartTime>2026-03-02T08:00:00.000Z</StartTime><StatusCode>InProgress</StatusCode><Progress>0</Progress><Details>{}</Details></Activity>`),
        };
      case 'SetInstanceHealth':
        return { body: asgEmpty(action) };
      case 'DetachInstances':
        return { body: asgOk(action, `<Activities><member><ActivityId>9a2b</ActivityId><AutoScalingGroupName>web-asg</AutoScalingGroupName><Cause>detached</Cause><StartTime>2026-03-02T08:00:00.000Z</StartTime><StatusCode>InProgress</StatusCode></member></Activities>`) };
      case 'CreateTags':
        return { body: `<CreateTagsResponse xmlns="${EC2_NS}"><requestId>7a62c49f</requestId><return>true</return></CreateTagsResponse>` };
      case 'StopInstances':
        return { body: ec2State(action, 'stopping') };
      case 'TerminateInstances':
        return { body: ec2State(action, 'shutting-down') };
      case 'DescribeInstances':
        return { body: `<DescribeInstancesResponse xmlns="${EC2_NS}"><requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId><ownerId>123456789012</ownerId><instancesSet><item><instanceId>${ID}</instanceId></item></instancesSet></item></reservationSet></DescribeInstancesResponse>` };
    }
    return { status: 400, body: asgError('InvalidAction', action).body! };
  };

  beforeAll(async () => {
    server = await new Recorder(handler).start();
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG', AWS_EC2_METADATA_DISABLED: 'true', AWS_MAX_ATTEMPTS: '1' });
    delete process.env.AWS_PROFILE;
  });
  afterAll(async () => {
    process.env = saved;
    await server.stop();
  });
  beforeEach(() => {
    server.requests.length = 0;
    inGroup = 'InService';
    fail = {};
  });

  const params = () => server.requests.map((r) => Object.fromEntries(new URLSearchParams(r.body)));
  const provider = (over: Record<string, unknown> = {}) => awsAsgProvider({ region: 'eu-west-1', endpoint: server.url, strategy: 'terminate', forensicHold: false, successorTimeout: '20m', ...over } as never);

  it('terminate: TerminateInstanceInAutoScalingGroup without decrementing the desired capacity, signed with SigV4', async () => {
    const r = await provider().replace(target(), context());
    expect(r.ref).toBe(ID);
    expect(r.detail).toContain('activity 5ef4ba3b');
    expect(params()).toEqual([
      { Action: 'DescribeAutoScalingInstances', Version: '2011-01-01', 'InstanceIds.member.1': ID },
      { Action: 'TerminateInstanceInAutoScalingGroup', Version: '2011-01-01', InstanceId: ID, ShouldDecrementDesiredCapacity: 'false' },
    ]);
    const req = server.requests[1]!;
    expect(req.method).toBe('POST');
    expect(req.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(req.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/autoscaling\/aws4_request/);
  });

  it('status: done once the instance has left its group', async () => {
    const p = provider();
    expect((await p.status(target({ ref: ID }), context())).state).toBe('pending');
    inGroup = 'Terminating';
    expect(await p.status(target({ ref: ID }), context())).toMatchObject({ state: 'pending', detail: `${ID} is Terminating in web-asg` });
    inGroup = null;
    expect((await p.status(target({ ref: ID }), context())).state).toBe('done');
  });

  it('unhealthy: SetInstanceHealth Unhealthy so the group\'s lifecycle hooks run', async () => {
    await provider({ strategy: 'unhealthy' }).replace(target(), context());
    expect(params()[1]).toEqual({ Action: 'SetInstanceHealth', Version: '2011-01-01', InstanceId: ID, HealthStatus: 'Unhealthy', ShouldRespectGracePeriod: 'false' });
  });

  it('an instance already out of its group is success, not failure', async () => {
    inGroup = null;
    const r = await provider().replace(target(), context());
    expect(r.detail).toMatch(/in no auto-scaling group/);
    expect(params().map((p) => p.Action)).toEqual(['DescribeAutoScalingInstances']);
  });

  it('an AccessDenied answer is a permanent error naming the action and the code', async () => {
    fail.TerminateInstanceInAutoScalingGroup = asgError('AccessDenied', 'User: arn:aws:iam::123456789012:role/driftwarden is not authorized to perform: autoscaling:TerminateInstanceInAutoScalingGroup');
    const err = await provider().replace(target(), context()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as ProviderError).retryable).toBe(false);
    expect((err as Error).message).toMatch(/^aws-asg: terminate i-0abc123def4567890 in web-asg: AccessDenied: User: .* is not authorized/);
  });

  it('a server fault is retryable', async () => {
    fail.DescribeAutoScalingInstances = { status: 503, body: `<ErrorResponse xmlns="${ASG_NS}"><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>try later</Message></Error><RequestId>x</RequestId></ErrorResponse>` };
    const err = (await provider().replace(target(), context()).catch((e: unknown) => e)) as ProviderError;
    expect(err.retryable).toBe(true);
  });

  it('finds the instance by private DNS name when the host name is not an instance id', async () => {
    await provider().replace(target({ hostname: 'ip-10-0-1-7.eu-west-1.compute.internal' }), context());
    expect(params()[0]).toEqual({ Action: 'DescribeInstances', Version: '2016-11-15', 'Filter.1.Name': 'private-dns-name', 'Filter.1.Value.1': 'ip-10-0-1-7.eu-west-1.compute.internal' });
  });

  describe('launch before terminate (detach)', () => {
    const started = '2026-03-02T08:00:00.000Z';
    const at = (min: number) => () => new Date(Date.parse(started) + min * 60_000);

    it('detaches keeping the desired capacity, waits for a clean successor, then terminates', async () => {
      const p = provider({ strategy: 'detach' });
      const r = await p.replace(target(), context({ now: at(0) }));
      expect(params().slice(1)).toEqual([
        { Action: 'DetachInstances', Version: '2011-01-01', AutoScalingGroupName: 'web-asg', 'InstanceIds.member.1': ID, ShouldDecrementDesiredCapacity: 'false' },
        { Action: 'CreateTags', Version: '2016-11-15', 'ResourceId.1': ID, 'Tag.1.Key': 'driftwarden:replacement', 'Tag.1.Value': 'r-1', 'Tag.2.Key': 'driftwarden:detached-from', 'Tag.2.Value': 'web-asg' },
      ]);
      server.requests.length = 0;
      const t = target({ ref: r.ref, startedAt: started });
      expect(await p.status(t, context({ now: at(5) }))).toMatchObject({ state: 'pending' });
      expect(server.requests).toEqual([]);
      const done = await p.status(t, context({ now: at(6), successor: () => 'host-new-1' }));
      expect(done).toMatchObject({ state: 'done', replacedBy: 'host-new-1' });
      expect(params()).toEqual([{ Action: 'TerminateInstances', Version: '2016-11-15', 'InstanceId.1': ID }]);
    });

    it('with forensicHold, tags and stops the old instance instead of terminating it', async () => {
      const p = provider({ strategy: 'detach', forensicHold: true });
      const done = await p.status(target({ ref: ID, startedAt: started }), context({ now: at(3), successor: () => 'host-new-2' }));
      expect(done.state).toBe('done');
      expect(params()).toEqual([
        { Action: 'CreateTags', Version: '2016-11-15', 'ResourceId.1': ID, 'Tag.1.Key': 'driftwarden:forensic-hold', 'Tag.1.Value': 'true', 'Tag.2.Key': 'driftwarden:replaced-by', 'Tag.2.Value': 'host-new-2', 'Tag.3.Key': 'driftwarden:replacement', 'Tag.3.Value': 'r-1' },
        { Action: 'StopInstances', Version: '2016-11-15', 'InstanceId.1': ID },
      ]);
    });

    it('fails when no successor reports clean within successorTimeout', async () => {
      const p = provider({ strategy: 'detach', successorTimeout: '20m' });
      await expect(p.status(target({ ref: ID, startedAt: started }), context({ now: at(21) }))).rejects.toThrow(/no new host of group web-asg reported clean within 20m/);
    });
  });
});
