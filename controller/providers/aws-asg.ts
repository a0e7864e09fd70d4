/**
 * @module The `aws-asg` provider: replaces an EC2 instance through its auto-scaling group. `terminate`
 * ends it without decrementing the desired capacity (the group launches a successor); `unhealthy`
 * marks it Unhealthy so the group's own lifecycle hooks run; `detach` launches before it terminates:
 * the instance leaves the group (desired capacity kept, so a successor launches), and only once a new
 * host of the group reports clean is it terminated, or, with forensicHold, tagged and stopped.
 * Region, credentials and endpoint come from the usual AWS configuration (environment, profile, role).
 */
import {
  AutoScalingClient,
  DescribeAutoScalingInstancesCommand,
  DetachInstancesCommand,
  SetInstanceHealthCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import { CreateTagsCommand, DescribeInstancesCommand, EC2Client, StopInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { parseDuration } from '../../shared/schema/config.js';
import { ProviderError, type Provider, type ProviderContext, type ReplaceStatus, type ReplacementTarget } from './types.js';

export interface AwsAsgConfig {
  region?: string;
  endpoint?: string;
  strategy: 'terminate' | 'unhealthy' | 'detach';
  forensicHold: boolean;
  successorTimeout: string;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/** AWS SDK errors carry `name` (the error code) and `$metadata.httpStatusCode`. */
function awsError(err: unknown, what: string): ProviderError {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number }; $fault?: string };
  const status = e.$metadata?.httpStatusCode;
  // Permissions and bad requests will not fix themselves; throttling and server faults may.
  const retryable = e.$fault === 'server' || status === undefined || status >= 500 || e.name === 'Throttling' || e.name === 'ThrottlingException' || e.name === 'RequestLimitExceeded';
  return new ProviderError('aws-asg', `${what}: ${e.name ?? 'Error'}: ${e.message ?? String(err)}`, { retryable, cause: err, context: { status } });
}

function isGone(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  return e.name === 'InvalidInstanceID.NotFound' || (e.name === 'ValidationError' && /not found|does not exist|not part of/i.test(e.message ?? ''));
}

export function awsAsgProvider(cfg: AwsAsgConfig): Provider {
  const common = { ...(cfg.region ? { region: cfg.region } : {}), ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}) };
  const asg = new AutoScalingClient(common);
  const ec2 = new EC2Client(common);
  const successorTimeoutMs = parseDuration(cfg.successorTimeout) ?? 20 * 60_000;

  /** The instance id: the host name or id when it is one (EC2 resource names), else the instance whose private DNS name is the host name. */
  async function instanceIdOf(t: ReplacementTarget, signal: AbortSignal): Promise<string> {
    if (t.ref && INSTANCE_ID.test(t.ref)) return t.ref;
    const first = t.hostname?.split('.')[0] ?? '';
    if (INSTANCE_ID.test(first)) return first;
    if (INSTANCE_ID.test(t.hostId)) return t.hostId;
    if (!t.hostname) throw new ProviderError('aws-asg', `host ${t.hostId} has no host name to find its instance by`, { retryable: false });
    let r;
    try {
      r = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'private-dns-name', Values: [t.hostname] }] }), { abortSignal: signal });
    } catch (err) {
      throw awsError(err, `DescribeInstances private-dns-name=${t.hostname}`);
    }
    const ids = (r.Reservations ?? []).flatMap((res) => res.Instances ?? []).map((i) => i.InstanceId).filter((x): x is string => !!x);
    if (ids.length !== 1) throw new ProviderError('aws-asg', `${ids.length === 0 ? 'no' : 'more than one'} EC2 instance has the private DNS name ${t.hostname}`, { retryable: false });
    return ids[0]!;
  }

  async function membership(instanceId: string, signal: AbortSignal): Promise<{ group: string; lifecycle: string } | null> {
    try {
      const r = await asg.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal: signal });
      const m = r.AutoScalingInstances?.[0];
      return m ? { group: m.AutoScalingGroupName ?? '', lifecycle: m.LifecycleState ?? '' } : null;
    } catch (err) {
      throw awsError(err, `DescribeAutoScalingInstances ${instanceId}`);
    }
  }

  async function tag(instanceId: string, tags: Record<string, string>, signal: AbortSignal): Promise<void> {
    try {
      await ec2.send(new CreateTagsCommand({ Resources: [instanceId], Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }), { abortSignal: signal });
    } catch (err) {
      throw awsError(err, `CreateTags ${instanceId}`);
    }
  }

  async function settleDetached(t: ReplacementTarget, ctx: ProviderContext, instanceId: string): Promise<ReplaceStatus> {
    const since = t.startedAt ?? ctx.clock().toISOString();
    const successor = await ctx.findCleanSuccessor(since);
    if (!successor) {
      if (ctx.clock().getTime() - Date.parse(since) > successorTimeoutMs) {
        throw new ProviderError('aws-asg', `no new host of group ${t.group} reported clean within ${cfg.successorTimeout} of detaching ${instanceId}; it is detached and still running`);
      }
      return { state: 'pending', detail: `detached ${instanceId}; waiting for a clean successor` };
    }
    if (cfg.forensicHold) {
      await tag(instanceId, { 'driftwarden:forensic-hold': 'true', 'driftwarden:replaced-by': successor, 'driftwarden:replacement': t.replacementId }, ctx.signal);
      try {
        ctx.log.info({ instanceId, successor }, 'forensic hold: stopping the detached instance');
        await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal: ctx.signal });
      } catch (err) {
        if (!isGone(err)) throw awsError(err, `StopInstances ${instanceId}`);
      }
      return { state: 'done', detail: `${instanceId} stopped and held for investigation; replaced by ${successor}`, replacedBy: successor };
    }
    try {
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal: ctx.signal });
    } catch (err) {
      if (!isGone(err)) throw awsError(err, `TerminateInstances ${instanceId}`);
    }
    return { state: 'done', detail: `${instanceId} terminated after ${successor} reported clean`, replacedBy: successor };
  }

  return {
    type: 'aws-asg',
    async replace(t, ctx) {
      const instanceId = await instanceIdOf(t, ctx.signal);
      const m = await membership(instanceId, ctx.signal);
      // Already out of its group (terminated, or detached by an earlier attempt): nothing left to ask.
      if (!m) return { ref: instanceId, detail: `${instanceId} is in no auto-scaling group (already gone or detached)` };
      try {
        if (cfg.strategy === 'terminate') {
          const r = await asg.send(new TerminateInstanceInAutoScalingGroupCommand({ InstanceId: instanceId, ShouldDecrementDesiredCapacity: false }), { abortSignal: ctx.signal });
          return { ref: instanceId, detail: `terminating ${instanceId} in ${m.group} (activity ${r.Activity?.ActivityId ?? 'unknown'}, desired capacity kept)` };
        }
        if (cfg.strategy === 'unhealthy') {
          await asg.send(new SetInstanceHealthCommand({ InstanceId: instanceId, HealthStatus: 'Unhealthy', ShouldRespectGracePeriod: false }), { abortSignal: ctx.signal });
          return { ref: instanceId, detail: `${instanceId} marked Unhealthy in ${m.group}` };
        }
        await asg.send(new DetachInstancesCommand({ AutoScalingGroupName: m.group, InstanceIds: [instanceId], ShouldDecrementDesiredCapacity: false }), { abortSignal: ctx.signal });
      } catch (err) {
        if (isGone(err)) return { ref: instanceId, detail: `${instanceId} is already gone` };
        throw awsError(err, `${cfg.strategy} ${instanceId} in ${m.group}`);
      }
      await tag(instanceId, { 'driftwarden:replacement': t.replacementId, 'driftwarden:detached-from': m.group }, ctx.signal);
      return { ref: instanceId, detail: `detached ${instanceId} from ${m.group} (desired capacity kept: a successor launches)` };
    },
    async status(t, ctx) {
      const instanceId = await instanceIdOf(t, ctx.signal);
      if (cfg.strategy === 'detach') return settleDetached(t, ctx, instanceId);
      const m = await membership(instanceId, ctx.signal);
      if (!m || m.lifecycle === 'Terminated') return { state: 'done', detail: `${instanceId} has left its auto-scaling group` };
      return { state: 'pending', detail: `${instanceId} is ${m.lifecycle} in ${m.group}` };
    },
  };
}
