/**
 * @module The replacement queue and its groups for people and tools: what the scheduler decided (and, in
 * dry-run, would do) and why; an operator requests, approves, cancels or completes replacements and
 * resumes a paused group. Every action is audited by the scheduler.
 */
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import type { App, AppContext } from '../app.js';
import {
  REPLACEMENT_STATES,
  replacementCursor,
  type ReplacementCursor,
  type ReplacementRow,
} from '../store/replacements.js';

const ListQuery = z.strictObject({
  state: z.string().optional(),
  group: z.string().min(1).optional(),
  host: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(5000).default(500),
  /** The previous page's `next`. */
  after: z.string().min(1).max(2000).optional(),
});

/** Keyset cursors are opaque to clients: the last row's place in queue order. */
function encodeAfter(row: ReplacementRow): string {
  const c = replacementCursor(row);
  return Buffer.from(JSON.stringify([c.severityRank, c.taintedAt, c.hostId, c.id])).toString('base64url');
}

function decodeAfter(after: string): ReplacementCursor {
  try {
    const v = JSON.parse(Buffer.from(after, 'base64url').toString('utf8')) as unknown;
    if (
      Array.isArray(v) &&
      v.length === 4 &&
      typeof v[0] === 'number' &&
      v.slice(1).every((x) => typeof x === 'string') &&
      !Number.isNaN(Date.parse(v[1] as string))
    ) {
      return { severityRank: v[0], taintedAt: v[1] as string, hostId: v[2] as string, id: v[3] as string };
    }
  } catch {
    // fall through to the error below
  }
  throw new DwError(
    'DW_ERR_VALIDATION',
    "querystring.after: not a cursor from this listing (pass the previous page's next)",
    { after },
  );
}

const Id = z.object({ id: z.string().min(1) });
const Name = z.object({ name: z.string().min(1) });

/** A row as the API shows it: the row plus the names of its host and successor (one query for a whole page). */
async function withHostnames(ctx: AppContext, rows: ReplacementRow[]) {
  const names = await ctx.store.replacements.hostnames([
    ...rows.map((r) => r.hostId),
    ...rows.map((r) => r.replacedBy).filter((x): x is string => !!x),
  ]);
  return rows.map((r) => ({
    ...r,
    hostname: names.get(r.hostId) ?? null,
    replacedByHostname: r.replacedBy ? (names.get(r.replacedBy) ?? null) : null,
  }));
}

export function registerReplacementRoutes(app: App, ctx: AppContext): void {
  const s = ctx.scheduler;

  app.get('/api/v1/replacements', { config: { auth: 'viewer' }, schema: { querystring: ListQuery } }, async (req) => {
    const q = req.query;
    const states = q.state?.split(',').filter(Boolean);
    for (const st of states ?? []) {
      if (!(REPLACEMENT_STATES as readonly string[]).includes(st))
        throw new DwError(
          'DW_ERR_VALIDATION',
          `querystring.state: ${st} is not one of ${REPLACEMENT_STATES.join(', ')}`,
        );
    }
    const rows = await ctx.store.replacements.list({
      states: states as ReplacementRow['state'][] | undefined,
      group: q.group,
      hostId: q.host,
      limit: q.limit,
      ...(q.after ? { after: decodeAfter(q.after) } : {}),
    });
    const next = rows.length === q.limit ? encodeAfter(rows[rows.length - 1]!) : null;
    return { mode: s.config.mode, replacements: await withHostnames(ctx, rows), next };
  });

  app.get('/api/v1/replacements/:id', { config: { auth: 'viewer' }, schema: { params: Id } }, async (req) => {
    const row = await ctx.store.replacements.get(req.params.id);
    if (!row) throw new DwError('DW_ERR_NOT_FOUND', `no replacement ${req.params.id}`);
    return (await withHostnames(ctx, [row]))[0];
  });

  app.post(
    '/api/v1/replacements',
    {
      config: { auth: 'operator' },
      schema: { body: z.strictObject({ hostId: z.string().min(1), reason: z.string().min(1).max(500) }) },
    },
    async (req, reply) => {
      const row = await s.request(req.body.hostId, req.principal!.actor, req.body.reason);
      void reply.status(201);
      return row;
    },
  );

  app.post('/api/v1/replacements/:id/approve', { config: { auth: 'operator' }, schema: { params: Id } }, async (req) =>
    s.approve(req.params.id, req.principal!.actor),
  );

  app.post(
    '/api/v1/replacements/:id/cancel',
    {
      config: { auth: 'operator' },
      schema: { params: Id, body: z.strictObject({ reason: z.string().min(1).max(500) }) },
    },
    async (req) => s.cancel(req.params.id, req.principal!.actor, req.body.reason),
  );

  app.post(
    '/api/v1/replacements/:id/done',
    {
      config: { auth: 'operator' },
      schema: { params: Id, body: z.strictObject({ replacedBy: z.string().min(1).optional() }).optional() },
    },
    async (req) => s.markDone(req.params.id, req.principal!.actor, req.body?.replacedBy),
  );

  app.get('/api/v1/replacement-groups', { config: { auth: 'viewer' } }, async () => ({
    mode: s.config.mode,
    /** Hosts without a group are counted under this name. */
    defaultGroup: s.config.defaultGroup,
    overall: s.config.overall ?? null,
    breaker: {
      taintedShare: s.config.breaker.taintedShare,
      window: s.config.breaker.window,
      minTainted: s.config.breaker.minTainted,
      sameDeviation: s.config.breaker.sameDeviation,
    },
    groups: await s.groups(),
  }));

  app.post(
    '/api/v1/replacement-groups/:name/resume',
    { config: { auth: 'operator' }, schema: { params: Name } },
    async (req) => s.resume(req.params.name, req.principal!.actor),
  );

  app.post(
    '/api/v1/replacement-groups/:name/pause',
    {
      config: { auth: 'operator' },
      schema: { params: Name, body: z.strictObject({ reason: z.string().min(1).max(500) }) },
    },
    async (req) => s.pause(req.params.name, req.principal!.actor, req.body.reason),
  );

  // Runs one tick now (the loop runs them on scheduler.interval): for demos, tests and impatient operators.
  app.post('/api/v1/scheduler/tick', { config: { auth: 'admin' } }, async (req) => {
    const result = await s.tick();
    await ctx.store.appendAudit({
      at: ctx.clock().toISOString(),
      actor: req.principal!.actor,
      action: 'scheduler.tick',
      target: null,
      detail: { ...result },
    });
    return result;
  });
}
