/** @module The SIEM pull feed: the event stream as OCSF JSON lines after a cursor (`since`, an event id). */
import { z } from 'zod';
import type { App, AppContext } from '../app.js';
import { OCSF_VERSION, toOcsf } from '../siem/ocsf.js';

export function registerEventRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/v1/events',
    {
      config: { auth: 'viewer' },
      schema: {
        description: `Drift events and host state changes as OCSF ${OCSF_VERSION} JSON lines, oldest first. Pass the x-next-since header of the previous answer as since; an empty body means nothing new.`,
        querystring: z.strictObject({
          since: z.coerce.number().int().nonnegative().default(0),
          limit: z.coerce.number().int().min(1).max(5000).default(1000),
          /** `raw`: the stream's own rows with their hash-chain links instead of OCSF. */
          format: z.enum(['ocsf', 'raw']).default('ocsf'),
        }),
      },
    },
    async (req, reply) => {
      const events = await ctx.store.listEvents({ afterId: req.query.since, limit: req.query.limit });
      const next = events.length > 0 ? events[events.length - 1]!.id : req.query.since;
      void reply.header('content-type', 'application/x-ndjson; charset=utf-8');
      void reply.header('x-next-since', String(next));
      void reply.header('x-ocsf-version', OCSF_VERSION);
      return events.map((e) => JSON.stringify(req.query.format === 'raw' ? e : toOcsf(e)) + '\n').join('');
    },
  );
}
