/**
 * @module The replacement queue and its groups for people and tools: what the scheduler decided (and, in
 * dry-run, would do) and why; an operator requests, approves, cancels or completes replacements and
 * resumes a paused group. Every action is audited by the scheduler.
 */
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import type { App, AppContext } from '../app.js';
import { REPLACEMENT_STATES, type ReplacementRow } from '../store/replacements.js';

const ListQuery = z.strictObject({
  state: z.string().optional(),
  group: z.string().min(1).optional(),
  host: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(5000).default(500),
});

const Id = z.object({ id: z.string().min(1) });
const Name = z.object({ name: z.string().min(1) });

/** A row as the API shows it: the row plus the host's name, so a list can be read without a second query. */
async function withHostnames(ctx: AppContext, rows: ReplacementRow[]) {
  const names = new Map<string, string | null>();
  for (const id of new Set([...rows.map((r) => r.hostId), ...rows.map((r) => r.replacedBy).filter((x): x is string => !!x)])) {
    names.set(id, (await ctx.store.getHost(id))?.hostname ?? null);
  }
  return rows.map((r) => ({ ...r, hostname: names.get(r.hostId) ?? null, replacedByHostname: r.replacedBy ? (names.get(r.replacedBy) ?? null) : null }));
}

export function registerReplacementRoutes(app: App, ctx: AppContext): void {
  const s = ctx.scheduler;

  app.get('/api/v1/replacements', { config: { auth: 'viewer' }, schema: { querystring: ListQuery } }, async (req) => {
    const q = req.query;
    const states = q.state?.split(',').filter(Boolean);
    for (const st of states ?? []) {
      if (!(REPLACEMENT_STATES as readonly string[]).includes(st)) throw new DwError('DW_ERR_VALIDATION', `querystring.state: ${st} is not one of ${REPLACEMENT_STATES.join(', ')}`);
    }
    const rows = await ctx.store.replacements.list({ states: states as ReplacementRow['state'][] | undefined, group: q.group, hostId: q.host, limit: q.limit });
    return { mode: s.config.mode, replacements: await withHostnames(ctx, rows) };
  });

  app.get('/api/v1/replacements/:id', { config: { auth: 'viewer' }, schema: { params: Id } }, async (req) => {
    const row = await ctx.store.replacements.get(req.params.id);
    if (!row) throw new DwError('DW_ERR_NOT_FOUND', `no replacement ${req.params.id}`);
    return (await withHostnames(ctx, [row]))[0];
  });

  app.post('/api/v1/replacements', { config: { auth: 'operator' }, schema: { body: z.strictObject({ hostId: z.string().min(1), reason: z.string().min(1).max(500) }) } }, async (req, reply) => {
    const row = await s.request(req.body.hostId, req.principal!.actor, req.body.reason);
    void reply.status(201);
    return row;
  });

  app.post('/api/v1/replacements/:id/approve', { config: { auth: 'operator' }, schema: { params: Id } }, async (req) => s.approve(req.params.id, req.principal!.actor));

  app.post('/api/v1/replacements/:id/cancel', { config: { auth: 'operator' }, schema: { params: Id, body: z.strictObject({ reason: z.string().min(1).max(500) }) } }, async (req) =>
    s.cancel(req.params.id, req.principal!.actor, req.body.reason),
  );

  app.post('/api/v1/replacements/:id/done', { config: { auth: 'operator' }, schema: { params: Id, body: z.strictObject({ replacedBy: z.string().min(1).optional() }).optional() } }, async (req) =>
    s.markDone(req.params.id, req.principal!.actor, req.body?.replacedBy),
  );

  app.get('/api/v1/replacement-groups', { config: { auth: 'viewer' } }, async () => ({
    mode: s.config.mode,
    overall: s.config.overall ?? null,
    breaker: { taintedShare: s.config.breaker.taintedShare, window: s.config.breaker.window, minTainted: s.config.breaker.minTainted, sameDeviation: s.config.breaker.sameDeviation },
    groups: await s.groups(),
  }));

  app.post('/api/v1/replacement-groups/:name/resume', { config: { auth: 'operator' }, schema: { params: Name } }, async (req) => s.resume(req.params.name, req.principal!.actor));

  app.post('/api/v1/replacement-groups/:name/pause', { config: { auth: 'operator' }, schema: { params: Name, body: z.strictObject({ reason: z.string().min(1).max(500) }) } }, async (req) =>
    s.pause(req.params.name, req.principal!.actor, req.body.reason),
  );

  // Runs one tick now (the loop runs them on scheduler.interval): for demos, tests and impatient operators.
  app.post('/api/v1/scheduler/tick', { config: { auth: 'admin' } }, async (req) => {
    const result = await s.tick();
    await ctx.store.appendAudit({ at: ctx.clock().toISOString(), actor: req.principal!.actor, action: 'scheduler.tick', target: null, detail: { ...result } });
    return result;
  });
}
