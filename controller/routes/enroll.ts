/**
 * @module Enrollment: an agent trades an enrollment token for its own per-host credential, once. The
 * token's use is counted in the same transaction as the new host, so a token enrolls at most its
 * `maxUses` hosts however many enrollments race, and only into the groups it allows.
 */
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import { AgentVersionSchema, HostnameSchema, nameSchema } from '../../shared/schema/limits.js';
import { HostIdSchema, InventorySchema } from '../../shared/schema/report.js';
import type { App, AppContext } from '../app.js';
import { hashSecret, newSecret } from '../auth.js';
import { recordTransition } from '../events.js';
import { StoreConflictError, type StoreTx, type TokenRow } from '../store/types.js';
import { reEnroll } from './host-actions.js';
import { groupRefusal, usedUp } from './tokens.js';

export const EnrollRequestSchema = z.strictObject({
  hostId: HostIdSchema,
  hostname: HostnameSchema.nullable().optional(),
  imageId: nameSchema(),
  group: nameSchema().optional(),
  agentVersion: AgentVersionSchema.optional(),
  inventory: InventorySchema.optional(),
});

export function registerEnrollRoutes(app: App, ctx: AppContext): void {
  app.post('/api/v1/enroll', { config: { auth: 'enroll' }, schema: { body: EnrollRequestSchema } }, async (req, reply) => {
    const body = req.body;
    const principal = req.principal;
    if (principal?.kind !== 'token') throw new DwError('DW_ERR_UNAUTHORIZED', 'enrollment needs an enrollment token');
    const token = principal.token;
    const refusedGroup = groupRefusal(token, body.group);
    if (refusedGroup) throw new DwError('DW_ERR_FORBIDDEN', refusedGroup, { tokenId: token.id, group: body.group ?? null });
    const credential = newSecret('host');
    const now = ctx.clock().toISOString();
    // A second enrollment of a known host id would hand its identity to whoever holds an enrollment token.
    const enrolled = () => new DwError('DW_ERR_CONFLICT', `host ${body.hostId} is already enrolled; a host enrolls once (an operator can reset it)`, { hostId: body.hostId });
    await ctx.store.transaction(async (tx) => {
      const existing = await tx.lockHost(body.hostId);
      // An operator's reset lets this id enroll once more (re-pinning its identity); otherwise it is taken.
      if (existing?.retiredAt) throw new DwError('DW_ERR_CONFLICT', `host ${body.hostId} was forgotten (retired) at ${existing.retiredAt}; a forgotten host id cannot enroll again`, { hostId: body.hostId });
      if (existing && !existing.resetAt) throw enrolled();
      if (!(await tx.useToken(token.id, now))) throw await whyUnusable(tx, token, now);
      if (existing) {
        await reEnroll(tx, existing, {
          credentialHash: hashSecret(credential),
          hostname: body.hostname ?? body.inventory?.hostname ?? null,
          imageId: body.imageId,
          group: body.group ?? null,
          addresses: body.inventory?.addresses ?? [],
          agentVersion: body.agentVersion ?? null,
          inventory: body.inventory ?? null,
          actor: principal.actor,
          now,
        });
        const used = await tx.getToken(token.id);
        await tx.appendAudit({ at: now, actor: principal.actor, action: 'token.use', target: token.id, detail: { hostId: body.hostId, uses: used?.uses ?? null, maxUses: used?.maxUses ?? null, reEnrollment: true } });
        return;
      }
      await tx.insertHost({
        id: body.hostId,
        hostname: body.hostname ?? body.inventory?.hostname ?? null,
        imageId: body.imageId,
        group: body.group ?? null,
        state: 'pending',
        stateSince: now,
        enrolledAt: now,
        lastSeenAt: now,
        lastReportAt: null,
        lastSeq: 0,
        deviationCount: 0,
        taintedAt: null,
        agentVersion: body.agentVersion ?? null,
        manifestDigest: null,
        inventory: body.inventory ?? null,
        // The identity providers act on is pinned here, once; later reports cannot move it (controller/identity.ts).
        enrolledAddresses: body.inventory?.addresses ?? [],
        credentialHash: hashSecret(credential),
      });
      await recordTransition(tx, { hostId: body.hostId, hostname: body.hostname ?? body.inventory?.hostname ?? null, imageId: body.imageId, group: body.group ?? null }, { from: null, to: 'pending', cause: 'enrolled', actor: principal.actor, at: now, reportId: null });
      const used = await tx.getToken(token.id);
      await tx.appendAudit({ at: now, actor: principal.actor, action: 'token.use', target: token.id, detail: { hostId: body.hostId, uses: used?.uses ?? null, maxUses: used?.maxUses ?? null } });
      await tx.appendAudit({ at: now, actor: principal.actor, action: 'host.enroll', target: body.hostId, detail: { imageId: body.imageId, group: body.group ?? null, hostname: body.hostname ?? body.inventory?.hostname ?? null, addresses: body.inventory?.addresses ?? [] } });
    }).catch((err: unknown) => {
      // Two enrollments of one id at once both pass the check above on PostgreSQL; the primary key stops the second.
      throw err instanceof StoreConflictError && err.table === 'hosts' ? enrolled() : err;
    });
    void reply.status(201);
    return { hostId: body.hostId, credential };
  });
}

/** The token changed since the request was authenticated (another enrollment took its last use, or it was revoked or expired). */
async function whyUnusable(tx: StoreTx, token: TokenRow, now: string): Promise<DwError> {
  const current = await tx.getToken(token.id);
  if (!current || current.revokedAt) return new DwError('DW_ERR_UNAUTHORIZED', `enrollment token ${token.id} was revoked`);
  if (current.expiresAt && current.expiresAt <= now) return new DwError('DW_ERR_UNAUTHORIZED', `enrollment token ${token.id} expired at ${current.expiresAt}`);
  return new DwError('DW_ERR_UNAUTHORIZED', usedUp(current) ?? `enrollment token ${token.id} cannot enroll another host`);
}
