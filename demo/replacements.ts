/**
 * @module The demo's replacement phase: the controller's scheduler runs in dry-run, so it decides and
 * records everything it would do and replaces nothing. The demo runs one scheduler pass now (as an admin
 * can: `POST /api/v1/scheduler/tick`), then reads its decisions back from the API like any client (the
 * queue, the groups with their breakers and budgets, the audit log) and prints them; `checkDecisions`
 * compares them with what the story expects.
 */
import { api, type ApiTarget } from '../shared/api-client.js';
import type { ControllerConfig } from '../controller/config.js';
import type { GroupView } from '../controller/scheduler/scheduler.js';
import type { AuditRow } from '../controller/store/types.js';
import type { ReplacementRow } from '../controller/store/replacements.js';
import type { Terminal } from './terminal.js';

export interface ReplacementsContext {
  term: Terminal;
  /** An admin token at the running controller, for the scheduler's API. */
  target: ApiTarget;
  scheduler: ControllerConfig['scheduler'];
  /** Host id → the story's name for it. */
  names: ReadonlyMap<string, string>;
}

/** What the scheduler decided, as its API shows it. */
export interface Decisions {
  mode: string;
  groups: GroupView[];
  replacements: (ReplacementRow & { hostname: string | null })[];
  /** The breaker's trips, from the audit log. */
  trips: AuditRow[];
}

/**
 * What the story expects of the scheduler. IMPORTANT: this follows from the fleet in fleet.ts and the
 * budgets in demo.ts. The same hand patch on 2 of 3 web hosts (67%, past the breaker's 30%) pauses
 * `web`; in `api` (2 of 7, 29%) the budget of one replacement at a time goes to the head of the queue,
 * which is the most severe host: api-2 (a binary added to /usr/bin is critical) before api-1 (a kernel
 * parameter, high).
 */
export interface ExpectedDecisions {
  /** Groups the breaker pauses. */
  paused: string[];
  /** Hosts (story names) the scheduler would replace now. */
  wouldReplace: string[];
  /** Hosts (story names) that wait for budget. */
  waiting: string[];
}

function describeBudget(b: ControllerConfig['scheduler']['budgets'][number]): string {
  const parts: string[] = [];
  if (b.maxUnavailable !== undefined) {
    parts.push(
      typeof b.maxUnavailable === 'number'
        ? `at most ${b.maxUnavailable} replacement${b.maxUnavailable === 1 ? '' : 's'} at a time`
        : `at most ${b.maxUnavailable} of the group at a time`,
    );
  }
  if (b.rate) parts.push(`at most ${b.rate.max} started per ${b.rate.per}`);
  if (b.windows?.length)
    parts.push(`only in ${b.windows.length} maintenance window${b.windows.length === 1 ? '' : 's'}`);
  if (b.minClean !== undefined) parts.push(`only while ${b.minClean} hosts are clean`);
  return `budget "${b.group}": ${parts.join(', ') || 'no limit'}`;
}

/** Runs one scheduler pass now and reads back what it decided. */
export async function runScheduler(target: ApiTarget): Promise<Decisions> {
  await api(target, 'POST', '/api/v1/scheduler/tick', {});
  const [queue, groups, audit] = await Promise.all([
    api<{ mode: string; replacements: Decisions['replacements'] }>(target, 'GET', '/api/v1/replacements?limit=5000'),
    api<{ groups: GroupView[] }>(target, 'GET', '/api/v1/replacement-groups'),
    api<{ audit: AuditRow[] }>(target, 'GET', '/api/v1/audit?limit=1000'),
  ]);
  return {
    mode: queue.mode,
    groups: groups.groups,
    replacements: queue.replacements,
    trips: audit.audit.filter((a) => a.action === 'replacement.breaker-trip'),
  };
}

/** Prints the scheduler's decisions, group by group: the breaker, then the queue in the order budgets go to it. */
export async function showReplacements(ctx: ReplacementsContext): Promise<Decisions> {
  const { term, scheduler } = ctx;
  const b = scheduler.breaker;
  term.say(
    `  mode:    ${scheduler.mode}${scheduler.mode === 'dry-run' ? ' (decides and records what it would do, replaces nothing)' : ''}`,
  );
  term.say(`  budgets: ${scheduler.budgets.map(describeBudget).join('; ')}`);
  term.say(
    `  breaker: a group pauses when more than ${Math.round(b.taintedShare * 100)}% of it (and at least ${b.minTainted} hosts) is tainted within ${b.window}, or ${b.sameDeviation} hosts by the same deviation`,
  );
  term.say(
    term.dim(
      '  $ driftwarden replacements tick      (one scheduler pass now; the controller also runs one every ' +
        scheduler.interval +
        ')',
    ),
  );
  const d = await runScheduler(ctx.target);
  const name = (r: { hostId: string; hostname: string | null }) => ctx.names.get(r.hostId) ?? r.hostname ?? r.hostId;
  // The busiest group first: the story is the breaker, then the budget.
  const groups = [...d.groups].sort((x, y) => Number(y.paused) - Number(x.paused) || x.name.localeCompare(y.name));
  for (const g of groups) {
    const rows = d.replacements.filter((r) => r.group === g.name && r.state !== 'replaced' && r.state !== 'cancelled');
    const tainted = rows.length;
    term.say();
    term.say(
      `  ${term.bold(g.name.padEnd(5))} ${tainted} of ${g.hosts.total} tainted (${g.hosts.total ? Math.round((100 * tainted) / g.hosts.total) : 0}%), ${g.mode}`,
    );
    if (g.paused) {
      term.say(`        ${term.red('breaker tripped')}: ${g.pausedReason ?? ''}`);
      term.say(
        `        group paused ${g.pausedBy === 'breaker' ? 'by the breaker' : `by ${g.pausedBy ?? 'an operator'}`}: nothing more is scheduled here until an operator looks and resumes it`,
      );
      term.say(
        term.dim(
          `        (logged as a warning, audited as replacement.breaker-trip, alerted to breaker.alertWebhook when set; resume: driftwarden replacements resume ${g.name})`,
        ),
      );
    } else {
      const share = g.hosts.total ? Math.round((100 * tainted) / g.hosts.total) : 0;
      term.say(`        breaker closed (${share}% is not past ${Math.round(b.taintedShare * 100)}%)`);
    }
    const inForce = g.budgets.length ? g.budgets.map(describeBudget).join('; ') : 'none (no limit)';
    term.say(
      `        budgets in force: ${inForce}${g.paused ? '' : g.allowedNow === null ? '; no limit now' : `; they allow ${g.allowedNow} to start now`}`,
    );
    const head = rows.find((r) => r.decision === 'would-replace');
    for (const r of rows) {
      let verdict: string;
      let why: string;
      if (r.decision === 'would-replace') {
        verdict = term.yellow('would replace'.padEnd(14));
        why = `first in the queue (most severe, then longest tainted); ${r.decisionReason ?? ''}`;
      } else if (r.decision === 'waiting') {
        verdict = 'waits'.padEnd(14);
        why = `for budget: the slot goes to ${head ? name(head) : 'the head of the queue'} first (${r.decisionReason ?? ''})`;
      } else if (r.decision === 'paused') {
        verdict = term.red('paused'.padEnd(14));
        why = 'nothing is scheduled while the group is paused';
      } else {
        verdict = (r.decision ?? r.state).padEnd(14);
        why = r.decisionReason ?? '';
      }
      term.say(
        `        ${term.bold(name(r).padEnd(6))} ${verdict} ${`[${r.severity ?? '-'}]`.padEnd(11)}${term.dim(why)}`,
      );
    }
    if (rows.length === 0) term.say(term.dim('        nothing tainted, nothing to decide'));
  }
  term.say();
  term.say(
    term.dim(
      `  in dry-run every "would replace" is audited and nothing reaches a provider; enforce turns them into replacements (driftwarden replacements list shows the queue)`,
    ),
  );
  return d;
}

/** What differs between the scheduler's decisions and the story's expectations (empty when nothing). */
export function checkDecisions(
  d: Decisions,
  expected: ExpectedDecisions,
  names: ReadonlyMap<string, string>,
): string[] {
  const differences: string[] = [];
  const rowOf = (host: string) => d.replacements.find((r) => (names.get(r.hostId) ?? r.hostname) === host);
  for (const g of d.groups) {
    const shouldPause = expected.paused.includes(g.name);
    if (shouldPause && !(g.paused && g.pausedBy === 'breaker'))
      differences.push(`the breaker did not pause group ${g.name}${g.paused ? ` (paused by ${g.pausedBy})` : ''}`);
    if (!shouldPause && g.paused)
      differences.push(`group ${g.name} is paused (${g.pausedReason ?? 'no reason'}), expected not`);
  }
  for (const group of expected.paused) {
    if (!d.groups.some((g) => g.name === group)) differences.push(`the scheduler does not know group ${group}`);
    if (!d.trips.some((a) => a.target === group)) differences.push(`no breaker trip of ${group} in the audit log`);
    const beyond = d.replacements.filter((r) => r.group === group && r.decision !== 'paused');
    for (const r of beyond)
      differences.push(
        `${names.get(r.hostId) ?? r.hostId} in paused group ${group} is ${r.decision ?? r.state}, expected paused`,
      );
  }
  const want = (host: string, decision: ReplacementRow['decision']) => {
    const r = rowOf(host);
    if (!r) differences.push(`${host} is not in the replacement queue, expected ${decision}`);
    else if (r.decision !== decision || r.state !== 'queued')
      differences.push(
        `${host} is ${r.state}/${r.decision ?? 'undecided'} (${r.decisionReason ?? ''}), expected ${decision}`,
      );
  };
  for (const h of expected.wouldReplace) want(h, 'would-replace');
  for (const h of expected.waiting) want(h, 'waiting');
  // Dry-run: nothing may have reached a provider.
  for (const r of d.replacements.filter(
    (x) => x.state === 'scheduled' || x.state === 'replacing' || x.state === 'replaced',
  )) {
    differences.push(`${names.get(r.hostId) ?? r.hostId} is ${r.state} although the scheduler runs in ${d.mode}`);
  }
  const wouldReplace = d.replacements
    .filter((r) => r.decision === 'would-replace')
    .map((r) => names.get(r.hostId) ?? r.hostId);
  const extra = wouldReplace.filter((h) => !expected.wouldReplace.includes(h));
  if (extra.length > 0) differences.push(`the scheduler would also replace ${extra.join(', ')}`);
  return differences;
}
