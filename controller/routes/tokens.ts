/** @module API and enrollment tokens, for admins: the secret is shown once, only its hash is stored. */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import { DurationSchema, parseDuration } from '../../shared/schema/config.js';
import type { App, AppContext } from '../app.js';
import { hashSecret, newSecret } from '../auth.js';
import { ROLES, type StoreTx, type TokenRow } from '../store/types.js';

export const TokenRequestSchema = z.strictObject({
  name: z.string().trim().min(1).max(100),
  role: z.enum(ROLES),
  /** Lifetime such as 90d; tokens without one live until revoked. */
  expiresIn: DurationSchema.optional(),
});

/** Shared by the API and `driftwarden token create`, which writes to the store directly. */
export async function createToken(tx: StoreTx, req: z.infer<typeof TokenRequestSchema>, actor: string, now: Date): Promise<{ token: TokenRow; secret: string }> {
  const secret = newSecret('token');
  const token: TokenRow = {
    id: randomUUID().slice(0, 8),
    name: req.name,
    role: req.role,
    createdAt: now.toISOString(),
    createdBy: actor,
    expiresAt: req.expiresIn ? new Date(now.getTime() + parseDuration(req.expiresIn)!).toISOString() : null,
    revokedAt: null,
    lastUsedAt: null,
  };
  await tx.insertToken({ ...token, hash: hashSecret(secret) });
  await tx.appendAudit({ at: token.createdAt, actor, action: 'token.create', target: token.id, detail: { name: token.name, role: token.role, expiresAt: token.expiresAt } });
  return { token, secret };
}

export function registerTokenRoutes(app: App, ctx: AppContext): void {
  app.post('/api/v1/tokens', { config: { auth: 'admin' }, schema: { body: TokenRequestSchema } }, async (req, reply) => {
    const out = await ctx.store.transaction((tx) => createToken(tx, req.body, req.principal!.actor, ctx.clock()));
    void reply.status(201);
    return { ...out.token, secret: out.secret };
  });

  app.get('/api/v1/tokens', { config: { auth: 'admin' } }, async () => ({ tokens: await ctx.store.listTokens() }));

  app.delete('/api/v1/tokens/:id', { config: { auth: 'admin' }, schema: { params: z.object({ id: z.string() }) } }, async (req) => {
    const now = ctx.clock().toISOString();
    const actor = req.principal!.actor;
    await ctx.store.transaction(async (tx) => {
      if (!(await tx.revokeToken(req.params.id, now))) throw new DwError('DW_ERR_NOT_FOUND', `no active token ${req.params.id}`);
      await tx.appendAudit({ at: now, actor, action: 'token.revoke', target: req.params.id, detail: {} });
    });
    return { id: req.params.id, revokedAt: now };
  });
}
