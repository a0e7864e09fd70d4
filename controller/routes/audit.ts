/** @module The audit log, read-only: no route changes it (only retention removes the oldest rows, under a checkpoint). */
import { z } from 'zod';
import type { App, AppContext } from '../app.js';

export function registerAuditRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/v1/audit',
    {
      config: { auth: 'viewer' },
      schema: {
        querystring: z.strictObject({
          afterId: z.coerce.number().int().nonnegative().optional(),
          /** Newest first: the rows before this id (the dashboard pages backwards from the newest). */
          beforeId: z.coerce.number().int().positive().optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }),
      },
    },
    async (req) => {
      if (req.query.beforeId !== undefined) {
        const rows = await ctx.store.listAudit({ beforeId: req.query.beforeId, limit: req.query.limit });
        return { audit: rows, next: rows.length === req.query.limit ? rows[rows.length - 1]!.id : null };
      }
      const rows = await ctx.store.listAudit({ afterId: req.query.afterId, limit: req.query.limit });
      return { audit: rows, next: rows.length === req.query.limit ? rows[rows.length - 1]!.id : null };
    },
  );
}
