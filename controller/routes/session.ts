/** @module Dashboard login: trade an API token for a signed session cookie (see session.ts), read it, end it. */
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import type { App, AppContext } from '../app.js';
import { hashSecret } from '../auth.js';
import { durationMs } from '../config.js';
import { sourceKey } from '../rate-limit.js';
import { issueSession, setCookieHeader } from '../session.js';

const LoginSchema = z.strictObject({ token: z.string().min(1).max(200) });

export function registerSessionRoutes(app: App, ctx: AppContext): void {
  const ttlMs = durationMs(ctx.config.dashboard.sessionTtl);

  // Open to anyone: the token in the body is the credential, checked exactly as a bearer token is.
  app.post(
    '/api/v1/session',
    { config: { auth: 'none' }, schema: { body: LoginSchema, hide: true } },
    async (req, reply) => {
      const now = ctx.clock();
      // A sign-in is an authentication like any other: failures count against the source's limit.
      const source = sourceKey(req.ip);
      ctx.limits.failedAuth.assertAllowed(source, now.getTime(), 'failed authentications');
      const refuse = (message: string) => {
        ctx.limits.failedAuth.take(source, now.getTime());
        return new DwError('DW_ERR_UNAUTHORIZED', message);
      };
      const token = await ctx.store.findTokenByHash(hashSecret(req.body.token.trim()));
      if (!token) throw refuse('unknown token');
      if (token.revokedAt) throw refuse(`token ${token.id} was revoked`);
      if (token.expiresAt && token.expiresAt <= now.toISOString())
        throw refuse(`token ${token.id} expired at ${token.expiresAt}`);
      if (token.role === 'agent')
        throw new DwError('DW_ERR_FORBIDDEN', 'an enrollment token cannot open a dashboard session');
      // A session never outlives its token.
      const lifetime = token.expiresAt ? Math.min(ttlMs, Date.parse(token.expiresAt) - now.getTime()) : ttlMs;
      const { cookie, session } = issueSession(ctx.sessionKey, token.id, now, lifetime);
      const actor = `token:${token.id}(${token.name})`;
      await ctx.store.transaction(async (tx) => {
        await tx.pruneSessions(now.toISOString());
        await tx.insertSession({
          id: session.id,
          tokenId: token.id,
          createdAt: now.toISOString(),
          expiresAt: session.expiresAt,
          endedAt: null,
        });
        await tx.appendAudit({
          at: now.toISOString(),
          actor,
          action: 'session.login',
          target: token.id,
          detail: { expiresAt: session.expiresAt },
        });
      });
      void reply.header(
        'set-cookie',
        setCookieHeader(cookie, { secure: ctx.secureCookies, maxAgeSeconds: Math.floor(lifetime / 1000) }),
      );
      void reply.header('cache-control', 'no-store');
      return {
        tokenId: token.id,
        name: token.name,
        role: token.role,
        expiresAt: session.expiresAt,
        csrf: session.csrf,
      };
    },
  );

  app.get('/api/v1/session', { config: { auth: 'viewer' }, schema: { hide: true } }, async (req, reply) => {
    const p = req.principal;
    if (p?.kind !== 'token') throw new DwError('DW_ERR_UNAUTHORIZED', 'no session');
    void reply.header('cache-control', 'no-store');
    return {
      tokenId: p.token.id,
      name: p.token.name,
      role: p.token.role,
      expiresAt: req.session?.expiresAt ?? p.token.expiresAt,
      csrf: req.session?.csrf ?? null,
    };
  });

  // Logging out ends the session on the controller (the same cookie is refused from then on, wherever
  // it was copied to) and clears it in this browser; revoking the token ends every session it opened.
  app.delete('/api/v1/session', { config: { auth: 'viewer' }, schema: { hide: true } }, async (req, reply) => {
    const at = ctx.clock().toISOString();
    void reply.header('set-cookie', setCookieHeader('', { secure: ctx.secureCookies, maxAgeSeconds: 0 }));
    const session = req.session;
    await ctx.store.transaction(async (tx) => {
      if (session) await tx.endSession(session.id, at);
      await tx.appendAudit({
        at,
        actor: req.principal!.actor,
        action: 'session.logout',
        target: session?.tokenId ?? null,
        detail: {},
      });
    });
    return { ok: true };
  });
}
