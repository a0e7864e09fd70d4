/** @module Dashboard login: trade an API token for a signed session cookie (see session.ts), read it, end it. */
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import type { App, AppContext } from '../app.js';
import { hashSecret } from '../auth.js';
import { durationMs } from '../config.js';
import { issueSession, setCookieHeader } from '../session.js';

const LoginSchema = z.strictObject({ token: z.string().min(1).max(200) });

export function registerSessionRoutes(app: App, ctx: AppContext): void {
  const ttlMs = durationMs(ctx.config.dashboard.sessionTtl);

  // Open to anyone: the token in the body is the credential, checked exactly as a bearer token is.
  app.post('/api/v1/session', { config: { auth: 'none' }, schema: { body: LoginSchema, hide: true } }, async (req, reply) => {
    const now = ctx.clock();
    const token = await ctx.store.findTokenByHash(hashSecret(req.body.token.trim()));
    if (!token) throw new DwError('DW_ERR_UNAUTHORIZED', 'unknown token');
    if (token.revokedAt) throw new DwError('DW_ERR_UNAUTHORIZED', `token ${token.id} was revoked`);
    if (token.expiresAt && token.expiresAt <= now.toISOString()) throw new DwError('DW_ERR_UNAUTHORIZED', `token ${token.id} expired at ${token.expiresAt}`);
    if (token.role === 'agent') throw new DwError('DW_ERR_FORBIDDEN', 'an enrollment token cannot open a dashboard session');
    // A session never outlives its token.
    const lifetime = token.expiresAt ? Math.min(ttlMs, Date.parse(token.expiresAt) - now.getTime()) : ttlMs;
    const { cookie, session } = issueSession(ctx.sessionKey, token.id, now, lifetime);
    const actor = `token:${token.id}(${token.name})`;
    await ctx.store.appendAudit({ at: now.toISOString(), actor, action: 'session.login', target: token.id, detail: { expiresAt: session.expiresAt } });
    void reply.header('set-cookie', setCookieHeader(cookie, { secure: ctx.secureCookies, maxAgeSeconds: Math.floor(lifetime / 1000) }));
    void reply.header('cache-control', 'no-store');
    return { tokenId: token.id, name: token.name, role: token.role, expiresAt: session.expiresAt, csrf: session.csrf };
  });

  app.get('/api/v1/session', { config: { auth: 'viewer' }, schema: { hide: true } }, async (req, reply) => {
    const p = req.principal;
    if (p?.kind !== 'token') throw new DwError('DW_ERR_UNAUTHORIZED', 'no session');
    void reply.header('cache-control', 'no-store');
    return { tokenId: p.token.id, name: p.token.name, role: p.token.role, expiresAt: req.session?.expiresAt ?? p.token.expiresAt, csrf: req.session?.csrf ?? null };
  });

  // The cookie is stateless: logging out clears it in this browser; revoking the token ends every session.
  app.delete('/api/v1/session', { config: { auth: 'viewer' }, schema: { hide: true } }, async (req, reply) => {
    void reply.header('set-cookie', setCookieHeader('', { secure: ctx.secureCookies, maxAgeSeconds: 0 }));
    await ctx.store.appendAudit({ at: ctx.clock().toISOString(), actor: req.principal!.actor, action: 'session.logout', target: req.session?.tokenId ?? null, detail: {} });
    return { ok: true };
  });
}
