/** @module Liveness, the OpenAPI document and Prometheus metrics. */
import type { App, AppContext } from '../app.js';
import { HOST_STATES } from '../store/types.js';

export function registerMetaRoutes(app: App, ctx: AppContext): void {
  app.get('/healthz', { config: { auth: 'none' }, schema: { hide: true } }, async () => ({ ok: true }));

  app.get('/api/v1/openapi.json', { config: { auth: 'viewer' }, schema: { hide: true } }, async () => app.swagger());

  app.get('/metrics', { config: { auth: 'viewer' }, schema: { hide: true } }, async (_req, reply) => {
    const counts = await ctx.store.countHostsByState();
    for (const s of HOST_STATES) ctx.metrics.hostsByState.set({ state: s }, counts[s] ?? 0);
    void reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}
