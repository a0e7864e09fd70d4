/**
 * @module The demo's replacement phase.
 *
 * IMPORTANT (for the merge of the replacement scheduler, issue 5): showReplacements() is the one place
 * to replace. Today it can only say what the host states say: which hosts are tainted and waiting, per
 * group, beside the scheduler settings the controller runs with. Once the scheduler exists it should
 * print the scheduler's own decisions from its API instead: the dry-run replacements it scheduled, the
 * budget that held the others back, and the breaker it tripped on `web` (2 of 3 tainted, past 30%),
 * and `runDemo` should check those decisions among the expected outcome.
 */
import type { ApiTarget } from '../shared/api-client.js';
import type { ControllerConfig } from '../controller/config.js';
import type { HostSummary } from './fleet-view.js';
import type { Terminal } from './terminal.js';

export interface ReplacementsContext {
  term: Terminal;
  /** An admin token at the running controller, for the scheduler's API. */
  target: ApiTarget;
  scheduler: ControllerConfig['scheduler'];
  hosts: readonly HostSummary[];
  /** Host id → the story's name for it. */
  names: ReadonlyMap<string, string>;
}

function describeBudget(b: ControllerConfig['scheduler']['budgets'][number]): string {
  const what = typeof b.maxUnavailable === 'number' ? `${b.maxUnavailable} replacement${b.maxUnavailable === 1 ? '' : 's'}` : `${b.maxUnavailable} of the group`;
  return `${b.group === '*' ? 'every group' : `group ${b.group}`}: at most ${what} at a time`;
}

export async function showReplacements(ctx: ReplacementsContext): Promise<void> {
  const { term, scheduler } = ctx;
  term.say(`  scheduler: ${scheduler.mode}${scheduler.mode === 'dry-run' ? ' (decides and records, replaces nothing)' : ''}`);
  term.say(`  budgets:   ${scheduler.budgets.map(describeBudget).join('; ')}`);
  term.say(`  breaker:   a group pauses when ${Math.round(scheduler.breaker.taintedShare * 100)}% of it is tainted within ${scheduler.breaker.window}`);
  const groups = new Map<string, HostSummary[]>();
  for (const h of ctx.hosts) groups.set(h.group ?? '-', [...(groups.get(h.group ?? '-') ?? []), h]);
  for (const [group, hosts] of [...groups].sort(([a], [b]) => b.localeCompare(a))) {
    const tainted = hosts.filter((h) => h.state === 'tainted');
    const share = hosts.length ? tainted.length / hosts.length : 0;
    const names = tainted.map((h) => ctx.names.get(h.id) ?? h.hostname ?? h.id).sort();
    term.say(
      `  ${group.padEnd(5)} ${tainted.length} of ${hosts.length} tainted (${Math.round(share * 100)}%)` +
        (names.length ? `: ${names.join(', ')} ${names.length === 1 ? 'waits' : 'wait'} in the tainted state for replacement` : ''),
    );
  }
  term.say(term.dim('  (this build has no replacement scheduler yet: tainted hosts stay tainted until one replaces them)'));
}
