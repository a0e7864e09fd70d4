/** @module Hosts for people: the fleet list (filtered, keyset-paginated), one host's detail and its reports. */
import { z } from 'zod';
import { identityLabel } from '../identity.js';
import { DwError } from '../../shared/errors.js';
import type { App, AppContext } from '../app.js';
import { SEVERITIES } from '../../shared/schema/deviation.js';
import { lifecycle } from './host-actions.js';
import { HOST_SORTS, HOST_STATES, type HostRow } from '../store/types.js';

const ListQuerySchema = z.strictObject({
  state: z.enum(HOST_STATES).optional(),
  image: z.string().min(1).optional(),
  group: z.string().min(1).optional(),
  /** Hosts with a current (not ignored) deviation from this collector / of this severity. */
  collector: z.string().min(1).optional(),
  severity: z.enum(SEVERITIES).optional(),
  /** Prefix of the host id or hostname. */
  q: z.string().min(1).max(200).optional(),
  sort: z.enum(HOST_SORTS).default('id'),
  order: z.enum(['asc', 'desc']).default('asc'),
  /** The `next` of the previous page. */
  after: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** Also count every host that matches the filters (`total`). */
  count: z.enum(['true', 'false']).optional(),
});

/** What a list row shows: enough to triage without the inventory blob. */
export function hostSummary(h: HostRow) {
  return {
    id: h.id,
    hostname: h.hostname,
    imageId: h.imageId,
    group: h.group,
    state: h.state,
    stateSince: h.stateSince,
    deviationCount: h.deviationCount,
    lastSeenAt: h.lastSeenAt,
    lastReportAt: h.lastReportAt,
    lastScanAt: h.lastScanAt,
    /** The pinned cloud identity, as one label (controller/identity.ts), and the AWS instance id when there is one. */
    identity: h.cloudIdentity ? identityLabel(h.cloudIdentity) : null,
    instanceId: h.instanceId ?? null,
  };
}

export function registerHostRoutes(app: App, ctx: AppContext): void {
  app.get('/api/v1/hosts', { config: { auth: 'viewer' }, schema: { querystring: ListQuerySchema } }, async (req) => {
    const q = req.query;
    const filter = {
      state: q.state,
      imageId: q.image,
      group: q.group,
      collector: q.collector,
      severity: q.severity,
      search: q.q,
    };
    const page = await ctx.store.listHosts({
      ...filter,
      sort: q.sort,
      desc: q.order === 'desc',
      after: q.after,
      limit: q.limit,
    });
    const total = q.count === 'true' ? await ctx.store.countHosts(filter) : undefined;
    return { hosts: page.hosts.map(hostSummary), next: page.nextAfter, ...(total !== undefined ? { total } : {}) };
  });

  app.get(
    '/api/v1/hosts/:id',
    { config: { auth: 'viewer' }, schema: { params: z.object({ id: z.string() }) } },
    async (req) => {
      const host = await ctx.store.getHost(req.params.id);
      if (!host) throw new DwError('DW_ERR_NOT_FOUND', `no host ${req.params.id}`);
      const [deviations, transitions, reports] = await Promise.all([
        ctx.store.listHostDeviations(host.id),
        ctx.store.listTransitions(host.id),
        ctx.store.listReports(host.id, { limit: 20 }),
      ]);
      return {
        host: { ...host, lifecycle: lifecycle(host) },
        // `attribution: null` says the host kept no record of who made the change (HostDeviationSchema).
        deviations: deviations.map((d) => ({ ...d, attribution: d.attribution ?? null })),
        timeline: {
          transitions,
          reports: reports.map((r) => ({
            reportId: r.reportId,
            seq: r.seq,
            kind: r.kind,
            scannedAt: r.scannedAt,
            receivedAt: r.receivedAt,
            deviationCount: r.deviationCount,
            digestMismatch: r.digestMismatch,
          })),
        },
      };
    },
  );

  app.get(
    '/api/v1/hosts/:id/reports',
    {
      config: { auth: 'viewer' },
      schema: {
        params: z.object({ id: z.string() }),
        querystring: z.strictObject({
          limit: z.coerce.number().int().min(1).max(500).default(50),
          beforeSeq: z.coerce.number().int().optional(),
        }),
      },
    },
    async (req) => {
      const host = await ctx.store.getHost(req.params.id);
      if (!host) throw new DwError('DW_ERR_NOT_FOUND', `no host ${req.params.id}`);
      return {
        reports: await ctx.store.listReports(host.id, { limit: req.query.limit, beforeSeq: req.query.beforeSeq }),
      };
    },
  );
}
