/** @module Enrollment: an agent trades an enrollment token for its own per-host credential, once. */
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import { AgentVersionSchema, HostnameSchema, nameSchema } from '../../shared/schema/limits.js';
import { HostIdSchema, InventorySchema } from '../../shared/schema/report.js';
import type { App, AppContext } from '../app.js';
import { hashSecret, newSecret } from '../auth.js';
import { recordTransition } from '../events.js';
import { StoreConflictError } from '../store/types.js';

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
    const credential = newSecret('host');
    const now = ctx.clock().toISOString();
    // A second enrollment of a known host id would hand its identity to whoever holds an enrollment token.
    const enrolled = () => new DwError('DW_ERR_CONFLICT', `host ${body.hostId} is already enrolled; a host enrolls once (an operator can reset it)`, { hostId: body.hostId });
    await ctx.store.transaction(async (tx) => {
      if (await tx.getHost(body.hostId)) throw enrolled();
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
        credentialHash: hashSecret(credential),
      });
      await recordTransition(tx, { hostId: body.hostId, hostname: body.hostname ?? body.inventory?.hostname ?? null, imageId: body.imageId, group: body.group ?? null }, { from: null, to: 'pending', cause: 'enrolled', actor: req.principal!.actor, at: now, reportId: null });
      await tx.appendAudit({ at: now, actor: req.principal!.actor, action: 'host.enroll', target: body.hostId, detail: { imageId: body.imageId, group: body.group ?? null } });
    }).catch((err: unknown) => {
      // Two enrollments of one id at once both pass the check above on PostgreSQL; the primary key stops the second.
      throw err instanceof StoreConflictError && err.table === 'hosts' ? enrolled() : err;
    });
    void reply.status(201);
    return { hostId: body.hostId, credential };
  });
}
