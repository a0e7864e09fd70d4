/**
 * @module What the dashboard shows beyond the host list: the fleet overview (aggregates only, so it
 * costs the same at 100,000 hosts as at 10), findings (identical deviations across hosts grouped into
 * one), the hosts a finding affects, and a host's event timeline.
 */
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import { FindingsQuerySchema, parseFindingSort } from '../../shared/schema/findings.js';
import type { App, AppContext } from '../app.js';

/** How far back the overview's drift chart goes. */
const CHART_DAYS = 30;

export function registerFleetRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/v1/fleet/overview',
    {
      config: { auth: 'viewer' },
      schema: { querystring: z.strictObject({ days: z.coerce.number().int().min(1).max(365).default(CHART_DAYS) }) },
    },
    async (req) => {
      const now = ctx.clock();
      const since = new Date(
        Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - (req.query.days - 1) * 86_400_000,
      );
      const [states, images, groups, byDay, transitionsByDay] = await Promise.all([
        ctx.store.countHostsByState(),
        ctx.store.countHostsBy('image', 50),
        ctx.store.countHostsBy('group', 200),
        ctx.store.countEventsByDay(since.toISOString()),
        ctx.store.countTransitionsByDay(since.toISOString()),
      ]);
      // One point per day, days without events included, so the chart's x axis is time.
      const days: { day: string; deviations: number; tainted: number; drifted: number }[] = [];
      for (let i = 0; i < req.query.days; i++)
        days.push({
          day: new Date(since.getTime() + i * 86_400_000).toISOString().slice(0, 10),
          deviations: 0,
          tainted: 0,
          drifted: 0,
        });
      const index = new Map(days.map((d, i) => [d.day, i]));
      for (const r of byDay) {
        const d = days[index.get(r.day) ?? -1];
        if (d && r.kind === 'deviation') d.deviations += r.n;
      }
      for (const r of transitionsByDay) {
        const d = days[index.get(r.day) ?? -1];
        if (d && r.to === 'tainted') d.tainted += r.n;
        else if (d && r.to === 'drifted') d.drifted += r.n;
      }
      const total = Object.values(states).reduce((a, b) => a + b, 0);
      return {
        total,
        states,
        images,
        groups: groups.map((g) => ({ ...g, group: g.value })),
        drift: days,
        generatedAt: now.toISOString(),
      };
    },
  );

  app.get(
    '/api/v1/findings',
    {
      config: { auth: 'viewer' },
      schema: { querystring: FindingsQuerySchema },
    },
    async (req) => {
      const q = req.query;
      const rows = await ctx.store.listFindings({
        collector: q.collector,
        severity: q.severity,
        action: q.action,
        hostId: q.host,
        hostState: q.state,
        search: q.q,
        ...parseFindingSort(q.sort),
        limit: q.limit + 1,
        offset: q.offset,
      });
      return { findings: rows.slice(0, q.limit), next: rows.length > q.limit ? q.offset + q.limit : null };
    },
  );

  app.get(
    '/api/v1/findings/hosts',
    {
      config: { auth: 'viewer' },
      schema: {
        querystring: z.strictObject({
          collector: z.string().min(1),
          key: z.string().min(1),
          change: z.enum(['added', 'removed', 'modified']),
          actualDigest: z.string().max(64).default(''),
          after: z.string().min(1).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }),
      },
    },
    async (req) => {
      const q = req.query;
      const hosts = await ctx.store.listFindingHosts(
        { collector: q.collector, key: q.key, change: q.change, actualDigest: q.actualDigest },
        { after: q.after, limit: q.limit + 1 },
      );
      const page = hosts.slice(0, q.limit);
      return { hosts: page, next: hosts.length > q.limit ? page[page.length - 1]!.hostId : null };
    },
  );

  app.get(
    '/api/v1/hosts/:id/events',
    {
      config: { auth: 'viewer' },
      schema: {
        params: z.object({ id: z.string() }),
        querystring: z.strictObject({
          before: z.coerce.number().int().positive().optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
        }),
      },
    },
    async (req) => {
      const host = await ctx.store.getHost(req.params.id);
      if (!host) throw new DwError('DW_ERR_NOT_FOUND', `no host ${req.params.id}`);
      const events = await ctx.store.listEvents({
        hostId: host.id,
        beforeId: req.query.before,
        newestFirst: true,
        limit: req.query.limit,
      });
      return { events, next: events.length === req.query.limit ? events[events.length - 1]!.id : null };
    },
  );
}
