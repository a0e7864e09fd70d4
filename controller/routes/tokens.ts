/**
 * @module API and enrollment tokens, for admins: the secret is shown once, only its hash is stored.
 * Enrollment tokens (role `agent`) are limited by default: they expire after a day and enroll one host,
 * and can be held to groups; anything looser (an image-baked token for an auto-scaling group) is asked
 * for explicitly and recorded in the audit log.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import { DurationSchema, parseDuration } from '../../shared/schema/config.js';
import type { App, AppContext } from '../app.js';
import { hashSecret, newSecret } from '../auth.js';
import { groupMatches } from '../scheduler/budgets.js';
import { ROLES, type StoreTx, type TokenRow } from '../store/types.js';

/** What an enrollment token allows unless told otherwise: one host, within a day. */
export const ENROLLMENT_DEFAULTS = { expiresIn: '24h', maxUses: 1 } as const;

/** A longer-lived token is a standing credential: past ten years, say `never` and mean it. */
const MAX_LIFETIME_MS = 3650 * 86_400_000;

const LifetimeSchema = z.union([
  z.literal('never'),
  DurationSchema.refine((d) => {
    const ms = parseDuration(d)!;
    return ms > 0 && ms <= MAX_LIFETIME_MS;
  }, 'expected a lifetime above zero and at most 3650d, or never'),
]);

export const TokenRequestSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(100),
    role: z.enum(ROLES),
    /** Lifetime such as 90d, or `never`. Enrollment tokens default to 24h; the others live until revoked. */
    expiresIn: LifetimeSchema.optional(),
    /** Enrollment tokens only: how many hosts it may enroll (default 1), or `unlimited`. */
    maxUses: z.union([z.number().int().min(1).max(1_000_000), z.literal('unlimited')]).optional(),
    /** Enrollment tokens only: globs a new host's group must match (then a host must name a group). */
    groups: z
      .array(
        z
          .string()
          .min(1)
          .max(256)
          .regex(/^[^\u0000-\u001f\u007f\u2028\u2029]+$/, 'a group glob has no control or line-separator characters'),
      )
      .min(1)
      .max(50)
      .optional(),
  })
  .superRefine((r, ctx) => {
    if (r.role === 'agent') return;
    for (const key of ['maxUses', 'groups'] as const) {
      if (r[key] !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `only enrollment tokens (role agent) have ${key}; this token has role ${r.role}`,
        });
    }
  });
export type TokenRequest = z.infer<typeof TokenRequestSchema>;

/** Shared by the API and `driftwarden token create`, which writes to the store directly. */
export async function createToken(
  tx: StoreTx,
  req: TokenRequest,
  actor: string,
  now: Date,
): Promise<{ token: TokenRow; secret: string }> {
  const enrollment = req.role === 'agent';
  const lifetime = req.expiresIn ?? (enrollment ? ENROLLMENT_DEFAULTS.expiresIn : 'never');
  const maxUses = enrollment ? (req.maxUses ?? ENROLLMENT_DEFAULTS.maxUses) : 'unlimited';
  const secret = newSecret('token');
  const token: TokenRow = {
    id: randomUUID().slice(0, 8),
    name: req.name,
    role: req.role,
    createdAt: now.toISOString(),
    createdBy: actor,
    expiresAt: lifetime === 'never' ? null : new Date(now.getTime() + parseDuration(lifetime)!).toISOString(),
    revokedAt: null,
    lastUsedAt: null,
    uses: 0,
    maxUses: maxUses === 'unlimited' ? null : maxUses,
    groups: req.groups ?? null,
    legacy: false,
  };
  await tx.insertToken({ ...token, hash: hashSecret(secret) });
  const detail: Record<string, unknown> = { name: token.name, role: token.role, expiresAt: token.expiresAt };
  if (enrollment) Object.assign(detail, { maxUses: token.maxUses, groups: token.groups });
  await tx.appendAudit({ at: token.createdAt, actor, action: 'token.create', target: token.id, detail });
  return { token, secret };
}

/**
 * Why an otherwise valid enrollment token may not enroll a host into `group`, or null. A token held to
 * groups needs the host to name one: a host without a group would sit outside every budget and
 * breaker the allow-list was meant to keep it in.
 */
export function groupRefusal(token: TokenRow, group: string | undefined): string | null {
  if (token.groups === null) return null;
  const allowed = token.groups.join(', ');
  if (group === undefined)
    return `enrollment token ${token.id} only enrolls hosts into groups matching ${allowed}; this enrollment names no group`;
  if (!token.groups.some((g) => groupMatches(g, group)))
    return `enrollment token ${token.id} only enrolls hosts into groups matching ${allowed}, not ${JSON.stringify(group)}`;
  return null;
}

/** Why an enrollment token no longer authenticates at `now` (beyond revocation and expiry), or null. */
export function usedUp(token: TokenRow): string | null {
  if (token.maxUses !== null && token.uses >= token.maxUses)
    return `enrollment token ${token.id} is used up (${token.uses} of ${token.maxUses} enrollments); create a new one`;
  return null;
}

export function registerTokenRoutes(app: App, ctx: AppContext): void {
  app.post(
    '/api/v1/tokens',
    { config: { auth: 'admin' }, schema: { body: TokenRequestSchema } },
    async (req, reply) => {
      const out = await ctx.store.transaction((tx) => createToken(tx, req.body, req.principal!.actor, ctx.clock()));
      void reply.status(201);
      return { ...out.token, secret: out.secret };
    },
  );

  app.get('/api/v1/tokens', { config: { auth: 'admin' } }, async () => ({ tokens: await ctx.store.listTokens() }));

  app.delete(
    '/api/v1/tokens/:id',
    { config: { auth: 'admin' }, schema: { params: z.object({ id: z.string() }) } },
    async (req) => {
      const now = ctx.clock().toISOString();
      return revokeToken(ctx.store, req.params.id, req.principal!.actor, now);
    },
  );
}

/** Shared by the API and `driftwarden token revoke --config`. */
export async function revokeToken(
  store: { transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> },
  id: string,
  actor: string,
  now: string,
): Promise<{ id: string; revokedAt: string }> {
  await store.transaction(async (tx) => {
    if (!(await tx.revokeToken(id, now))) throw new DwError('DW_ERR_NOT_FOUND', `no active token ${id}`);
    await tx.appendAudit({ at: now, actor, action: 'token.revoke', target: id, detail: {} });
  });
  return { id, revokedAt: now };
}
