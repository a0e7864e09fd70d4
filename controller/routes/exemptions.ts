/** @module Exemptions: time-bound, with a reason and an actor; creating and revoking one is audited. */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { formatIssues } from '../../shared/config-load.js';
import { DwError } from '../../shared/errors.js';
import { exemptionRequestSchema } from '../../shared/schema/policy.js';
import type { App, AppContext } from '../app.js';

export function registerExemptionRoutes(app: App, ctx: AppContext): void {
  // The request is checked against the injected clock (expiry in the future, at most 90 days).
  const schema = exemptionRequestSchema(() => ctx.clock().getTime());

  app.post('/api/v1/exemptions', { config: { auth: 'operator' } }, async (req, reply) => {
    const parsed = schema.safeParse(req.body);
    if (!parsed.success)
      throw new DwError('DW_ERR_VALIDATION', formatIssues('body', parsed.error).replaceAll('\n', '; '));
    const now = ctx.clock().toISOString();
    const row = {
      id: randomUUID(),
      ...parsed.data,
      actor: req.principal!.actor,
      createdAt: now,
      revokedAt: null,
      revokedBy: null,
    };
    await ctx.store.transaction(async (tx) => {
      await tx.insertExemption(row);
      await tx.appendAudit({
        at: now,
        actor: row.actor,
        action: 'exemption.create',
        target: row.id,
        detail: { ...parsed.data },
      });
    });
    void reply.status(201);
    return row;
  });

  app.get(
    '/api/v1/exemptions',
    {
      config: { auth: 'viewer' },
      schema: { querystring: z.strictObject({ active: z.enum(['true', 'false']).optional() }) },
    },
    async (req) => ({
      exemptions: await ctx.store.listExemptions(
        req.query.active === 'true' ? { activeAt: ctx.clock().toISOString() } : {},
      ),
    }),
  );

  app.delete(
    '/api/v1/exemptions/:id',
    { config: { auth: 'operator' }, schema: { params: z.object({ id: z.string() }) } },
    async (req) => {
      const now = ctx.clock().toISOString();
      const actor = req.principal!.actor;
      await ctx.store.transaction(async (tx) => {
        if (!(await tx.revokeExemption(req.params.id, now, actor)))
          throw new DwError('DW_ERR_NOT_FOUND', `no active exemption ${req.params.id}`);
        await tx.appendAudit({ at: now, actor, action: 'exemption.revoke', target: req.params.id, detail: {} });
      });
      return { id: req.params.id, revokedAt: now };
    },
  );
}
