/**
 * @module The `aws-asg` provider: replaces an EC2 instance through its auto-scaling group. `terminate`
 * ends it without decrementing the desired capacity (the group launches a successor); `unhealthy`
 * marks it Unhealthy so the group's own lifecycle hooks run; `detach` launches before it terminates:
 * the instance leaves the group (desired capacity kept, so a successor launches), and only once the
 * instance launched for it is a host that reports clean is the detached one terminated, or, with
 * forensicHold, tagged and stopped.
 *
 * IMPORTANT: the instance is found through EC2 from the host's identity pinned at enrollment (private
 * DNS name, private IPs), never derived from the text of a name; it never reports success it did not
 * see in EC2's own state, and it stops or terminates (outside a group) only an instance it tagged.
 */
import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  DetachInstancesCommand,
  SetInstanceHealthCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  EC2Client,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type Filter,
} from '@aws-sdk/client-ec2';
import { parseDuration } from '../../shared/schema/config.js';
import {
  ProviderError,
  type Provider,
  type ProviderContext,
  type ReplaceStatus,
  type ReplacementTarget,
} from './types.js';
import type { z } from 'zod';
import type { AwsAsgProviderSchema } from '../scheduler/config.js';

/** The `aws-asg` provider block as its schema parses it (defaults filled in). */
export type AwsAsgConfig = Omit<z.output<typeof AwsAsgProviderSchema>, 'type'>;

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
/** How long an instance may be out of its group yet still running after terminate/unhealthy before that is a failure (AWS starts shutting it down within seconds). */
const LEFT_RUNNING_GRACE_MS = 10 * 60_000;
const GONE_STATES = new Set(['shutting-down', 'terminated']);
const TAG = {
  replacement: 'driftwarden:replacement',
  detachedFrom: 'driftwarden:detached-from',
  detachedAt: 'driftwarden:detached-at',
  successor: 'driftwarden:successor',
  successorOf: 'driftwarden:successor-of',
  /** The latest launch time among the group's members just before the detach, and the members launched then. */
  membersUpTo: 'driftwarden:members-launched-up-to',
  membersAtLast: 'driftwarden:members-launched-last',
  standalone: 'driftwarden:standalone',
  /** Detached with the desired capacity decremented: no successor is coming. */
  decremented: 'driftwarden:decremented',
} as const;

interface Instance {
  id: string;
  state: string;
  privateDns: string | null;
  privateIp: string | null;
  launchTime: Date | null;
  tags: Record<string, string>;
}

/** AWS SDK errors carry `name` (the error code) and `$metadata.httpStatusCode`. */
function awsError(err: unknown, what: string): ProviderError {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number }; $fault?: string };
  const status = e.$metadata?.httpStatusCode;
  // Permissions and bad requests will not fix themselves; throttling and server faults may.
  const retryable =
    e.$fault === 'server' ||
    status === undefined ||
    status >= 500 ||
    e.name === 'Throttling' ||
    e.name === 'ThrottlingException' ||
    e.name === 'RequestLimitExceeded';
  return new ProviderError('aws-asg', `${what}: ${e.name ?? 'Error'}: ${e.message ?? String(err)}`, {
    retryable,
    cause: err,
    context: { status },
  });
}

const permanent = (message: string, context?: Record<string, unknown>) =>
  new ProviderError('aws-asg', message, { retryable: false, ...(context ? { context } : {}) });

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string };
  return e.name === 'InvalidInstanceID.NotFound' || e.name === 'InvalidInstanceID.Malformed';
}

/** Addresses worth asking EC2 about: IPv4, not loopback or link-local (a host's docker bridge is neither, so the name must agree too). */
function privateIps(addresses: string[]): string[] {
  return [
    ...new Set(
      addresses.filter((a) => /^\d{1,3}(\.\d{1,3}){3}$/.test(a) && !a.startsWith('127.') && !a.startsWith('169.254.')),
    ),
  ];
}

export function awsAsgProvider(cfg: AwsAsgConfig): Provider {
  if (!cfg.region)
    throw new ProviderError('aws-asg', 'region is required (scheduler.provider.region)', { retryable: false });
  const common = { region: cfg.region, ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}) };
  const asg = new AutoScalingClient(common);
  const ec2 = new EC2Client(common);
  const successorTimeoutMs = parseDuration(cfg.successorTimeout) ?? 20 * 60_000;
  const standalone = cfg.standalone ?? 'fail';
  const decrement = cfg.decrementDesiredCapacity ?? false;

  async function describe(
    what: string,
    input: { InstanceIds?: string[]; Filters?: Filter[] },
    signal: AbortSignal,
  ): Promise<Instance[]> {
    let r;
    try {
      r = await ec2.send(new DescribeInstancesCommand(input), { abortSignal: signal });
    } catch (err) {
      if (input.InstanceIds && isNotFound(err)) return [];
      throw awsError(err, `DescribeInstances ${what}`);
    }
    return (r.Reservations ?? [])
      .flatMap((res) => res.Instances ?? [])
      .filter((i) => !!i.InstanceId)
      .map((i) => ({
        id: i.InstanceId!,
        state: i.State?.Name ?? 'unknown',
        privateDns: i.PrivateDnsName || null,
        privateIp: i.PrivateIpAddress || null,
        launchTime: i.LaunchTime ?? null,
        tags: Object.fromEntries((i.Tags ?? []).filter((x) => x.Key).map((x) => [x.Key!, x.Value ?? ''])),
      }));
  }

  /**
   * The host's instance, from its pinned identity: the instance id this provider recorded on an
   * earlier call (`ref`), else EC2's answer for the pinned private DNS name (a short name matches
   * `name.*`) and for the pinned private IPs. Instances launched after the host enrolled cannot be
   * its own (a reused IP or DNS name). When both are known they must name the same one instance.
   * Null only for a `ref` EC2 no longer knows (terminated long enough ago to be forgotten).
   */
  async function resolve(t: ReplacementTarget, signal: AbortSignal): Promise<Instance | null> {
    if (t.ref && INSTANCE_ID.test(t.ref)) return (await describe(t.ref, { InstanceIds: [t.ref] }, signal))[0] ?? null;
    return fromPinned(t, signal);
  }

  /**
   * Before acting, the instance is always found again from the pinned identity: a recorded `ref` must
   * agree with it (a ref kept from an earlier attempt, or from before identity was pinned, is not
   * trusted on its own); only when the pinned identity finds nothing does a recorded ref that EC2
   * reports gone count as "already gone".
   */
  async function resolveToAct(t: ReplacementTarget, signal: AbortSignal): Promise<Instance | null> {
    const recorded = t.ref && INSTANCE_ID.test(t.ref) ? t.ref : null;
    let pinned: Instance;
    try {
      pinned = await fromPinned(t, signal);
    } catch (err) {
      if (!recorded || !(err instanceof ProviderError) || err.retryable) throw err;
      const known = (await describe(recorded, { InstanceIds: [recorded] }, signal))[0];
      if (!known || GONE_STATES.has(known.state)) return known ?? null;
      throw err;
    }
    if (recorded && pinned.id !== recorded) {
      throw permanent(
        `the recorded instance ${recorded} is not the one the pinned identity of host ${t.hostId} names (${pinned.id}); refusing to act on either`,
      );
    }
    return pinned;
  }

  async function fromPinned(t: ReplacementTarget, signal: AbortSignal): Promise<Instance> {
    const enrolled = t.enrolledAt ? Date.parse(t.enrolledAt) : Number.POSITIVE_INFINITY;
    const own = (list: Instance[]) => list.filter((i) => !i.launchTime || i.launchTime.getTime() <= enrolled);
    const name = t.hostname?.trim() || null;
    const ips = privateIps(t.addresses);
    if (t.instanceId) {
      // The instance id the host enrolled with (its identity document) is what we act on; the pinned
      // name and addresses, where EC2 reports them, must describe that same instance.
      const found = (await describe(t.instanceId, { InstanceIds: [t.instanceId] }, signal))[0];
      if (!found)
        throw permanent(
          `EC2 in ${cfg.region} does not know instance ${t.instanceId}, which host ${t.hostId} enrolled as (terminated long ago, or another region: if the host is gone, mark the replacement done)`,
        );
      const nameDisagrees =
        name !== null &&
        found.privateDns !== null &&
        found.privateDns !== name &&
        found.privateDns.split('.')[0] !== name;
      const ipDisagrees = ips.length > 0 && found.privateIp !== null && !ips.includes(found.privateIp);
      if (nameDisagrees || ipDisagrees) {
        throw permanent(
          `the pinned identity of host ${t.hostId} disagrees: it enrolled as instance ${t.instanceId}, whose private DNS name is ${found.privateDns} and address ${found.privateIp}, but with name ${name} and addresses ${ips.join(', ')}; refusing to act`,
          { instanceId: t.instanceId },
        );
      }
      return found;
    }
    const byName = name
      ? own(
          await describe(
            `private-dns-name=${name}`,
            { Filters: [{ Name: 'private-dns-name', Values: [name.includes('.') ? name : `${name}.*`] }] },
            signal,
          ),
        )
      : null;
    const byIp =
      ips.length > 0
        ? own(
            await describe(
              `private-ip-address=${ips.join(',')}`,
              { Filters: [{ Name: 'private-ip-address', Values: ips }] },
              signal,
            ),
          )
        : null;
    const who = [name ? `private DNS name ${name}` : null, ips.length > 0 ? `private IP ${ips.join(', ')}` : null]
      .filter(Boolean)
      .join(' or ');
    if (!byName && !byIp)
      throw permanent(`host ${t.hostId} enrolled with no host name or private IPv4 address to find its instance by`);
    if ((byName?.length ?? 0) === 0 && (byIp?.length ?? 0) === 0) {
      throw permanent(
        `no EC2 instance in ${cfg.region} has the ${who} host ${t.hostId} enrolled with (unknown here, or terminated long ago: if the host is gone, mark the replacement done)`,
      );
    }
    let candidates: Instance[];
    if (byName && byName.length > 0 && byIp && byIp.length > 0) {
      const ipIds = new Set(byIp.map((i) => i.id));
      candidates = byName.filter((i) => ipIds.has(i.id));
      if (candidates.length === 0) {
        throw permanent(
          `the pinned identity of host ${t.hostId} disagrees: its name ${name} is ${byName.map((i) => i.id).join(', ')} but its address ${ips.join(', ')} is ${byIp.map((i) => i.id).join(', ')}; refusing to act on either`,
          { byName: byName.map((i) => i.id), byIp: byIp.map((i) => i.id) },
        );
      }
    } else candidates = byName && byName.length > 0 ? byName : byIp!;
    if (candidates.length > 1)
      throw permanent(
        `more than one EC2 instance (${candidates.map((i) => i.id).join(', ')}) has the ${who} of host ${t.hostId}; refusing to guess`,
      );
    return candidates[0]!;
  }

  async function membership(
    instanceId: string,
    signal: AbortSignal,
  ): Promise<{ group: string; lifecycle: string } | null> {
    try {
      const r = await asg.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] }), {
        abortSignal: signal,
      });
      const m = r.AutoScalingInstances?.[0];
      return m ? { group: m.AutoScalingGroupName ?? '', lifecycle: m.LifecycleState ?? '' } : null;
    } catch (err) {
      throw awsError(err, `DescribeAutoScalingInstances ${instanceId}`);
    }
  }

  async function tag(instanceId: string, tags: Record<string, string>, signal: AbortSignal): Promise<void> {
    try {
      await ec2.send(
        new CreateTagsCommand({
          Resources: [instanceId],
          Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
        }),
        { abortSignal: signal },
      );
    } catch (err) {
      throw awsError(err, `CreateTags ${instanceId}`);
    }
  }

  async function terminateInstance(instanceId: string, signal: AbortSignal): Promise<void> {
    try {
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal: signal });
    } catch (err) {
      throw awsError(err, `TerminateInstances ${instanceId}`);
    }
  }

  /** The group's members (any lifecycle state) as EC2 instances. */
  async function groupMembers(group: string, signal: AbortSignal): Promise<{ id: string; lifecycle: string }[]> {
    try {
      const r = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [group] }), {
        abortSignal: signal,
      });
      return (r.AutoScalingGroups?.[0]?.Instances ?? [])
        .filter((i) => i.InstanceId)
        .map((i) => ({ id: i.InstanceId!, lifecycle: i.LifecycleState ?? '' }));
    } catch (err) {
      throw awsError(err, `DescribeAutoScalingGroups ${group}`);
    }
  }

  /**
   * What tells the group's members before the detach from those launched after it, in two tags (EC2
   * launch times have whole seconds): the latest launch time among them, and which of them were
   * launched in that second. Past 13 such instances the ids do not fit a tag, and only later
   * launches count.
   */
  async function membersBefore(group: string, signal: AbortSignal): Promise<Record<string, string>> {
    const ids = (await groupMembers(group, signal)).map((m) => m.id);
    const times =
      ids.length > 0
        ? (await describe(`members of ${group}`, { InstanceIds: ids }, signal)).filter((i) => i.launchTime)
        : [];
    if (times.length === 0) return {};
    const last = Math.max(...times.map((i) => i.launchTime!.getTime()));
    const atLast = times
      .filter((i) => i.launchTime!.getTime() === last)
      .map((i) => i.id)
      .join(' ');
    return {
      [TAG.membersUpTo]: new Date(last).toISOString(),
      ...(atLast.length <= 256 ? { [TAG.membersAtLast]: atLast } : {}),
    };
  }

  /**
   * The instance the group launched for this detach: recorded on the detached instance once found,
   * else the earliest in-service member that was not a member before the detach (see membersBefore)
   * and that no other replacement has claimed; claimed by tagging both.
   */
  async function successorOf(t: ReplacementTarget, old: Instance, signal: AbortSignal): Promise<Instance | null> {
    const recorded = old.tags[TAG.successor];
    if (recorded) {
      const known = (await describe(recorded, { InstanceIds: [recorded] }, signal))[0];
      // A successor that itself ended (failed health checks, scaled in) is no successor: pick again.
      if (known && !GONE_STATES.has(known.state)) return known;
    }
    const group = old.tags[TAG.detachedFrom]!;
    const upTo = Date.parse(old.tags[TAG.membersUpTo] ?? '');
    const atLast = old.tags[TAG.membersAtLast] !== undefined ? new Set(old.tags[TAG.membersAtLast]!.split(' ')) : null;
    const launchedAfter = (i: Instance) =>
      Number.isNaN(upTo) ||
      i.launchTime!.getTime() > upTo ||
      (i.launchTime!.getTime() === upTo && atLast !== null && !atLast.has(i.id));
    const ids = (await groupMembers(group, signal))
      .filter((m) => m.lifecycle === 'InService' && m.id !== old.id)
      .map((m) => m.id);
    if (ids.length === 0) return null;
    const fresh = (await describe(`members of ${group}`, { InstanceIds: ids }, signal))
      .filter((i) => i.state === 'running' && i.launchTime && launchedAfter(i))
      .filter((i) => i.id !== recorded && (!i.tags[TAG.successorOf] || i.tags[TAG.successorOf] === t.replacementId))
      .sort((a, b) => a.launchTime!.getTime() - b.launchTime!.getTime() || a.id.localeCompare(b.id));
    const pick = fresh[0];
    if (!pick) return null;
    await tag(pick.id, { [TAG.successorOf]: t.replacementId }, signal);
    await tag(old.id, { [TAG.successor]: pick.id }, signal);
    return pick;
  }

  async function settleDetached(t: ReplacementTarget, ctx: ProviderContext, old: Instance): Promise<ReplaceStatus> {
    // Only an instance this replacement detached and tagged is ever stopped or terminated here.
    if (old.tags[TAG.replacement] !== t.replacementId || !old.tags[TAG.detachedFrom]) {
      throw permanent(
        `${old.id} was not detached by replacement ${t.replacementId} (no ${TAG.replacement}/${TAG.detachedFrom} tags); refusing to stop or terminate it`,
      );
    }
    const m = await membership(old.id, ctx.signal);
    if (m)
      throw permanent(
        `${old.id} is back in auto-scaling group ${m.group} (${m.lifecycle}); refusing to stop or terminate a group member`,
      );
    if (old.tags[TAG.decremented] === 'true') return endDetached(t, ctx, old, null, null);
    const since = t.startedAt ?? ctx.clock().toISOString();
    const next = await successorOf(t, old, ctx.signal);
    const successor = next
      ? await ctx.findCleanSuccessor(since, {
          hostnames: next.privateDns ? [next.privateDns] : [],
          addresses: next.privateIp ? [next.privateIp] : [],
        })
      : null;
    if (!successor) {
      if (ctx.clock().getTime() - Date.parse(since) > successorTimeoutMs) {
        const waited = next
          ? `the host on its successor ${next.id} has not reported clean`
          : `group ${old.tags[TAG.detachedFrom]} launched no successor`;
        throw new ProviderError(
          'aws-asg',
          `${waited} within ${cfg.successorTimeout} of detaching ${old.id}; ${old.id} is ${old.state}, outside any auto-scaling group (deregistered from the group's load balancers and target groups)`,
        );
      }
      return {
        state: 'pending',
        detail: next
          ? `detached ${old.id}; waiting for the host on ${next.id} to report clean`
          : `detached ${old.id}; waiting for ${old.tags[TAG.detachedFrom]} to launch a successor`,
      };
    }
    return endDetached(t, ctx, old, successor, next!.id);
  }

  /** The detached instance's end: stopped and held for forensics, or terminated; `successor` is null when the group was shrunk. */
  async function endDetached(
    t: ReplacementTarget,
    ctx: ProviderContext,
    old: Instance,
    successor: string | null,
    successorInstance: string | null,
  ): Promise<ReplaceStatus> {
    const by = successor
      ? `; replaced by ${successor} on ${successorInstance}`
      : ' (the group was shrunk: no successor)';
    if (cfg.forensicHold) {
      await tag(
        old.id,
        {
          'driftwarden:forensic-hold': 'true',
          'driftwarden:replaced-by': successor ?? 'none',
          [TAG.replacement]: t.replacementId,
        },
        ctx.signal,
      );
      if (old.state !== 'stopped' && old.state !== 'stopping') {
        try {
          ctx.log.info({ instanceId: old.id, successor }, 'forensic hold: stopping the detached instance');
          await ec2.send(new StopInstancesCommand({ InstanceIds: [old.id] }), { abortSignal: ctx.signal });
        } catch (err) {
          throw awsError(err, `StopInstances ${old.id}`);
        }
      }
      return {
        state: 'done',
        detail: `${old.id} stopped and held for investigation${by}`,
        ...(successor ? { replacedBy: successor } : {}),
      };
    }
    await terminateInstance(old.id, ctx.signal);
    return {
      state: 'done',
      detail: successor
        ? `${old.id} terminated after ${successor} on ${successorInstance} reported clean`
        : `${old.id} terminated${by}`,
      ...(successor ? { replacedBy: successor } : {}),
    };
  }

  return {
    type: 'aws-asg',
    async replace(t, ctx) {
      const inst = await resolveToAct(t, ctx.signal);
      if (!inst) return { ref: t.ref, detail: `${t.ref} is gone (EC2 no longer knows it)` };
      // "Already gone" only on EC2's word: terminated or shutting down.
      if (GONE_STATES.has(inst.state)) return { ref: inst.id, detail: `${inst.id} is already ${inst.state}` };
      const m = await membership(inst.id, ctx.signal);
      if (!m) {
        // A retried detach finds the instance it detached on the first attempt.
        if (
          cfg.strategy === 'detach' &&
          inst.tags[TAG.replacement] === t.replacementId &&
          inst.tags[TAG.detachedFrom]
        ) {
          return {
            ref: inst.id,
            detail: `${inst.id} was already detached from ${inst.tags[TAG.detachedFrom]} by this replacement`,
          };
        }
        if (standalone !== 'terminate') {
          throw permanent(
            `${inst.id} is ${inst.state} in no auto-scaling group: nothing would launch a successor; replace it by hand, or set standalone: terminate to have it terminated`,
          );
        }
        // The IAM policy lets the controller terminate only instances it tagged.
        await tag(inst.id, { [TAG.replacement]: t.replacementId, [TAG.standalone]: 'true' }, ctx.signal);
        await terminateInstance(inst.id, ctx.signal);
        return {
          ref: inst.id,
          detail: `${inst.id} is in no auto-scaling group; terminated (standalone: terminate, no successor is launched)`,
        };
      }
      if (m.lifecycle.startsWith('Terminating'))
        return { ref: inst.id, detail: `${inst.id} is already ${m.lifecycle} in ${m.group}` };
      let detachedAt: string;
      // Who was a member before the detach, so the successor can be told from them later.
      const before = cfg.strategy === 'detach' ? await membersBefore(m.group, ctx.signal) : {};
      try {
        if (cfg.strategy === 'terminate') {
          const r = await asg.send(
            new TerminateInstanceInAutoScalingGroupCommand({
              InstanceId: inst.id,
              ShouldDecrementDesiredCapacity: decrement,
            }),
            { abortSignal: ctx.signal },
          );
          return {
            ref: inst.id,
            detail: `terminating ${inst.id} in ${m.group} (activity ${r.Activity?.ActivityId ?? 'unknown'}, ${decrement ? 'desired capacity decremented: no successor' : 'desired capacity kept'})`,
          };
        }
        if (cfg.strategy === 'unhealthy') {
          await asg.send(
            new SetInstanceHealthCommand({
              InstanceId: inst.id,
              HealthStatus: 'Unhealthy',
              ShouldRespectGracePeriod: false,
            }),
            { abortSignal: ctx.signal },
          );
          return { ref: inst.id, detail: `${inst.id} marked Unhealthy in ${m.group}` };
        }
        const r = await asg.send(
          new DetachInstancesCommand({
            AutoScalingGroupName: m.group,
            InstanceIds: [inst.id],
            ShouldDecrementDesiredCapacity: decrement,
          }),
          { abortSignal: ctx.signal },
        );
        detachedAt = (r.Activities?.[0]?.StartTime ?? ctx.clock()).toISOString();
      } catch (err) {
        throw awsError(err, `${cfg.strategy} ${inst.id} in ${m.group}`);
      }
      await tag(
        inst.id,
        {
          [TAG.replacement]: t.replacementId,
          [TAG.detachedFrom]: m.group,
          [TAG.detachedAt]: detachedAt,
          ...before,
          ...(decrement ? { [TAG.decremented]: 'true' } : {}),
        },
        ctx.signal,
      );
      const capacity = decrement
        ? 'desired capacity decremented: no successor launches'
        : 'desired capacity kept: a successor launches';
      return {
        ref: inst.id,
        detail: `detached ${inst.id} from ${m.group} (${capacity}; the instance is deregistered from the group's load balancers and target groups)`,
      };
    },
    async status(t, ctx) {
      const inst = await resolve(t, ctx.signal);
      if (!inst || GONE_STATES.has(inst.state))
        return { state: 'done', detail: `${inst?.id ?? t.ref} is ${inst?.state ?? 'gone'}` };
      if (cfg.strategy === 'detach' && inst.tags[TAG.standalone] !== 'true') return settleDetached(t, ctx, inst);
      const m = await membership(inst.id, ctx.signal);
      if (m) return { state: 'pending', detail: `${inst.id} is ${m.lifecycle} in ${m.group}` };
      // Out of its group yet running: past a short grace (AWS begins shutting an instance down within
      // seconds of taking it out), someone detached it and no one is ending it.
      if (inst.state === 'running' || inst.state === 'pending') {
        const since = t.startedAt ? Date.parse(t.startedAt) : ctx.clock().getTime();
        if (ctx.clock().getTime() - since > LEFT_RUNNING_GRACE_MS)
          throw permanent(
            `${inst.id} has left its auto-scaling group but is still ${inst.state}; it was not terminated`,
          );
        return {
          state: 'pending',
          detail: `${inst.id} has left its auto-scaling group; EC2 still reports it ${inst.state}`,
        };
      }
      return { state: 'pending', detail: `${inst.id} is ${inst.state}, outside any auto-scaling group` };
    },
  };
}
