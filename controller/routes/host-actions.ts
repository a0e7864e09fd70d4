/**
 * @module Operator actions on one host: reset (its credential stops working; its id may enroll again,
 * once), forget (it leaves the fleet for good; its history stays) and re-check (scan now). Each is
 * an operator's, audited, and written to the store, so it holds across restarts and controllers.
 */
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import type { CloudIdentity } from '../../shared/schema/identity.js';
import type { App, AppContext } from '../app.js';
import { recordTransition } from '../event-stream.js';
import type { HostRow, StoreTx } from '../store/types.js';

const Params = z.object({ id: z.string().min(1).max(256) });
const Body = z.strictObject({ reason: z.string().min(1).max(1000).optional() }).optional();

/** The host's operator-facing lifecycle, beside its state: what the agent's credential is worth. */
export function lifecycle(h: HostRow): 'active' | 'reset-pending' | 'forgotten' {
  return h.retiredAt ? 'forgotten' : h.resetAt ? 'reset-pending' : 'active';
}

async function liveHost(tx: StoreTx, id: string, action: string): Promise<HostRow> {
  const host = await tx.lockHost(id);
  if (!host) throw new DwError('DW_ERR_NOT_FOUND', `no host ${id}`);
  if (host.retiredAt)
    throw new DwError('DW_ERR_CONFLICT', `host ${id} was forgotten at ${host.retiredAt}; it cannot be ${action}`, {
      hostId: id,
    });
  return host;
}

/** A replacement in flight acts on this host's pinned identity: changing who the host is under it would race the provider. */
async function noReplacementInFlight(tx: StoreTx, host: HostRow, action: string): Promise<void> {
  const active = await tx.replacements.activeForHost(host.id);
  if (active)
    throw new DwError(
      'DW_ERR_CONFLICT',
      `host ${host.id} has replacement ${active.id} in flight (${active.state}); cancel or complete it before you ${action} the host`,
      { hostId: host.id, replacementId: active.id },
    );
}

export function registerHostActionRoutes(app: App, ctx: AppContext): void {
  const opts = { config: { auth: 'operator' as const }, schema: { params: Params, body: Body } };

  app.post('/api/v1/hosts/:id/reset', opts, async (req) => {
    const actor = req.principal!.actor;
    const now = ctx.clock().toISOString();
    return ctx.store.transaction(async (tx) => {
      const host = await liveHost(tx, req.params.id, 'reset');
      if (host.resetAt)
        throw new DwError(
          'DW_ERR_CONFLICT',
          `host ${host.id} is already reset (since ${host.resetAt}); it may enroll again once`,
          { hostId: host.id },
        );
      await noReplacementInFlight(tx, host, 'reset');
      await tx.updateHost(host.id, { resetAt: now });
      await tx.appendAudit({
        at: now,
        actor,
        action: 'host.reset',
        target: host.id,
        detail: { state: host.state, hostname: host.hostname, reason: req.body?.reason ?? null },
      });
      return { hostId: host.id, lifecycle: 'reset-pending' as const, resetAt: now };
    });
  });

  app.post('/api/v1/hosts/:id/forget', opts, async (req) => {
    const actor = req.principal!.actor;
    const now = ctx.clock().toISOString();
    return ctx.store.transaction(async (tx) => {
      const host = await liveHost(tx, req.params.id, 'forgotten again');
      await noReplacementInFlight(tx, host, 'forget');
      await tx.updateHost(host.id, { retiredAt: now, scanRequestedAt: null, scanRequestSentAt: null });
      // Its current deviations are no longer the fleet's findings; its reports, transitions and audit stay.
      await tx.replaceHostDeviations(host.id, []);
      await tx.appendAudit({
        at: now,
        actor,
        action: 'host.forget',
        target: host.id,
        detail: {
          state: host.state,
          hostname: host.hostname,
          deviations: host.deviationCount,
          reason: req.body?.reason ?? null,
        },
      });
      return { hostId: host.id, lifecycle: 'forgotten' as const, retiredAt: now };
    });
  });

  app.post('/api/v1/hosts/:id/recheck', opts, async (req) => {
    const actor = req.principal!.actor;
    const now = ctx.clock().toISOString();
    return ctx.store.transaction(async (tx) => {
      const host = await liveHost(tx, req.params.id, 're-checked');
      if (host.resetAt)
        throw new DwError('DW_ERR_CONFLICT', `host ${host.id} is reset and cannot report until it enrolls again`, {
          hostId: host.id,
        });
      // A second request before the scan arrives keeps the first one's time: one scan answers both.
      const at = host.scanRequestedAt ?? now;
      if (!host.scanRequestedAt) await tx.updateHost(host.id, { scanRequestedAt: now, scanRequestSentAt: null });
      await tx.appendAudit({
        at: now,
        actor,
        action: 'host.recheck',
        target: host.id,
        detail: { requestedAt: at, reason: req.body?.reason ?? null },
      });
      return { hostId: host.id, scanRequestedAt: at };
    });
  });
}

/**
 * Re-enrollment after a reset (routes/enroll.ts): a new credential, the identity pinned again from
 * this enrollment, the seq restarted (a reinstalled agent starts at 1). Taint stays sticky: a host
 * that was tainted is still tainted; any other comes back `pending` until its first report.
 */
export async function reEnroll(
  tx: StoreTx,
  host: HostRow,
  e: {
    credentialHash: string;
    hostname: string | null;
    imageId: string;
    group: string | null;
    addresses: string[];
    identity?: CloudIdentity | null;
    agentVersion: string | null;
    inventory: HostRow['inventory'];
    actor: string;
    now: string;
  },
): Promise<void> {
  await tx.setHostCredential(host.id, e.credentialHash);
  const keep = host.state === 'tainted';
  await tx.updateHost(host.id, {
    resetAt: null,
    hostname: e.hostname,
    imageId: e.imageId,
    group: e.group,
    enrolledAddresses: e.addresses,
    cloudIdentity: e.identity ?? null,
    instanceId: e.identity?.kind === 'aws' ? e.identity.instanceId : null,
    reportedHostname: null,
    reportedGroup: null,
    reportedCloudIdentity: null,
    lastSeq: 0,
    lastSeenAt: e.now,
    agentVersion: e.agentVersion,
    inventory: e.inventory,
    scanRequestedAt: null,
    scanRequestSentAt: null,
    ...(keep ? {} : { state: 'pending' as const, stateSince: e.now, deviationCount: 0 }),
  });
  if (!keep) {
    await tx.replaceHostDeviations(host.id, []);
    if (host.state !== 'pending')
      await recordTransition(
        tx,
        { hostId: host.id, hostname: e.hostname, imageId: e.imageId, group: e.group },
        {
          from: host.state,
          to: 'pending',
          cause: 're-enrolled after an operator reset',
          actor: e.actor,
          at: e.now,
          reportId: null,
        },
      );
  }
  await tx.appendAudit({
    at: e.now,
    actor: e.actor,
    action: 'host.re-enroll',
    target: host.id,
    detail: {
      resetAt: host.resetAt ?? null,
      previous: {
        hostname: host.hostname,
        imageId: host.imageId,
        group: host.group,
        addresses: host.enrolledAddresses ?? [],
      },
      pinned: {
        hostname: e.hostname,
        imageId: e.imageId,
        group: e.group,
        addresses: e.addresses,
        identity: e.identity ?? null,
      },
      state: keep ? host.state : 'pending',
    },
  });
}
