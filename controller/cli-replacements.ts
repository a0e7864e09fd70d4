/** @module `driftwarden replacements …`: the replacement queue and its groups, over the API (operator commands need an operator token). */
import type { Command } from 'commander';
import { api, apiTarget } from '../shared/api-client.js';
import type { GroupView } from './scheduler/scheduler.js';
import type { ReplacementRow } from './store/replacements.js';
import { resolveHost, resolveReplacement } from './cli-resolve.js';
import { table } from './cli-table.js';

type Remote = { url?: string; token?: string; json?: boolean };
type Row = ReplacementRow & { hostname: string | null };

const out = (s: string): void => void process.stdout.write(s);
const remote = (cmd: Command) =>
  cmd
    .option('--url <url>', 'controller URL (default $DRIFTWARDEN_URL)')
    .option('--token <token>', 'API token (default $DRIFTWARDEN_TOKEN)')
    .option('--json', 'print JSON');

const enc = encodeURIComponent;

function printRow(o: Remote, r: ReplacementRow, verb: string): void {
  out(o.json ? JSON.stringify(r, null, 2) + '\n' : `replacement ${r.id} (host ${r.hostId}) ${verb}: ${r.state}\n`);
}

export function registerReplacementCommands(program: Command): void {
  const rep = program
    .command('replacements')
    .description('the replacement queue: list, request, approve, cancel, mark done; groups and their breakers');

  remote(rep.command('list').description('the queue with what the scheduler decided (or in dry-run would do) and why'))
    .option(
      '--state <states>',
      'comma-separated: queued,awaiting-approval,scheduled,replacing,replaced,failed,cancelled',
    )
    .option('--group <group>')
    .option('--host <host>', 'host id, unique id prefix or hostname')
    .option('--limit <n>', 'rows', '500')
    .action(async (o: Remote & { state?: string; group?: string; host?: string; limit: string }) => {
      const target = apiTarget(o);
      const q = new URLSearchParams({ limit: o.limit });
      if (o.state) q.set('state', o.state);
      if (o.group) q.set('group', o.group);
      if (o.host) q.set('host', await resolveHost(target, o.host));
      const r = await api<{ mode: string; replacements: Row[] }>(target, 'GET', `/api/v1/replacements?${q}`);
      if (o.json) return out(JSON.stringify(r, null, 2) + '\n');
      out(`scheduler mode: ${r.mode}\n`);
      if (r.replacements.length === 0) return out('no replacements\n');
      out(
        table([
          ['ID', 'HOST', 'GROUP', 'SEVERITY', 'STATE', 'DECISION', 'ATTEMPTS', 'REPLACED BY', 'WHY'],
          ...r.replacements.map((x) => [
            x.id.slice(0, 8),
            x.hostname ?? x.hostId,
            x.group,
            x.severity ?? '-',
            x.state,
            x.decision ?? '-',
            String(x.attempts),
            x.replacedBy ?? '-',
            x.lastError && x.state === 'failed' ? `failed: ${x.lastError}` : (x.decisionReason ?? ''),
          ]),
        ]),
      );
    });

  remote(
    rep
      .command('request')
      .description(
        'replace a host by hand; an operator request is not drift (a clean host is not tainted, no breaker counts it)',
      )
      .argument('<host>', 'host id, unique id prefix or hostname'),
  )
    .requiredOption('--reason <text>', 'why')
    .action(async (host: string, o: Remote & { reason: string }) => {
      const target = apiTarget(o);
      const hostId = await resolveHost(target, host);
      printRow(
        o,
        await api<ReplacementRow>(target, 'POST', '/api/v1/replacements', { hostId, reason: o.reason }),
        'queued',
      );
    });

  remote(
    rep
      .command('approve')
      .description('approve a replacement waiting for approval')
      .argument('<id>', 'replacement id or unique id prefix'),
  ).action(async (id: string, o: Remote) => {
    const target = apiTarget(o);
    const full = await resolveReplacement(target, id);
    printRow(o, await api<ReplacementRow>(target, 'POST', `/api/v1/replacements/${enc(full)}/approve`, {}), 'approved');
  });

  remote(
    rep
      .command('cancel')
      .description(
        'cancel a replacement the provider has not started; a drifted host stays tainted, a manual request for a clean host puts it back',
      )
      .argument('<id>', 'replacement id or unique id prefix'),
  )
    .requiredOption('--reason <text>', 'why')
    .action(async (id: string, o: Remote & { reason: string }) => {
      const target = apiTarget(o);
      const full = await resolveReplacement(target, id);
      printRow(
        o,
        await api<ReplacementRow>(target, 'POST', `/api/v1/replacements/${enc(full)}/cancel`, { reason: o.reason }),
        'cancelled',
      );
    });

  remote(
    rep
      .command('done')
      .description('mark a replacement done (the host was replaced out of band)')
      .argument('<id>', 'replacement id or unique id prefix'),
  )
    .option('--replaced-by <host>', 'the host that replaced it')
    .action(async (id: string, o: Remote & { replacedBy?: string }) => {
      const target = apiTarget(o);
      const full = await resolveReplacement(target, id);
      printRow(
        o,
        await api<ReplacementRow>(
          target,
          'POST',
          `/api/v1/replacements/${enc(full)}/done`,
          o.replacedBy ? { replacedBy: o.replacedBy } : {},
        ),
        'marked done',
      );
    });

  remote(
    rep
      .command('resume')
      .description('resume a group the breaker (or an operator) paused')
      .argument('<group>', 'group name'),
  ).action(async (group: string, o: Remote) => {
    const r = await api<{ name: string; resumedAt: string }>(
      apiTarget(o),
      'POST',
      `/api/v1/replacement-groups/${enc(group)}/resume`,
      {},
    );
    out(o.json ? JSON.stringify(r, null, 2) + '\n' : `group ${r.name} resumed at ${r.resumedAt}\n`);
  });

  remote(rep.command('pause').description('pause a group by hand').argument('<group>', 'group name'))
    .requiredOption('--reason <text>', 'why')
    .action(async (group: string, o: Remote & { reason: string }) => {
      const r = await api<{ name: string; pausedReason: string }>(
        apiTarget(o),
        'POST',
        `/api/v1/replacement-groups/${enc(group)}/pause`,
        { reason: o.reason },
      );
      out(o.json ? JSON.stringify(r, null, 2) + '\n' : `group ${r.name} paused: ${r.pausedReason}\n`);
    });

  remote(
    rep
      .command('tick')
      .description('run one scheduler pass now (admin; the controller runs them every scheduler.interval)'),
  ).action(async (o: Remote) => {
    const r = await api<Record<string, unknown>>(apiTarget(o), 'POST', '/api/v1/scheduler/tick', {});
    out(
      o.json
        ? JSON.stringify(r, null, 2) + '\n'
        : `${Object.entries(r)
            .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') || '-' : String(v)}`)
            .join(', ')}\n`,
    );
  });

  remote(rep.command('groups').description('groups with their mode, breaker state and the budgets in force')).action(
    async (o: Remote) => {
      const r = await api<{ mode: string; groups: GroupView[] }>(apiTarget(o), 'GET', '/api/v1/replacement-groups');
      if (o.json) return out(JSON.stringify(r, null, 2) + '\n');
      out(`scheduler mode: ${r.mode}\n`);
      if (r.groups.length === 0) return out('no groups\n');
      out(
        table([
          ['GROUP', 'MODE', 'BREAKER', 'HOSTS', 'UNAVAILABLE', 'IN FLIGHT', 'QUEUED', 'ALLOWED NOW', 'LIMITED BY'],
          ...r.groups.map((g) => [
            g.name,
            g.mode + (g.requireApproval ? ' (approval)' : ''),
            g.paused ? `PAUSED: ${g.pausedReason ?? ''}` : 'closed',
            String(g.hosts.total),
            String(g.hosts.unavailable),
            String(g.inFlight),
            String((g.queue.queued ?? 0) + (g.queue['awaiting-approval'] ?? 0)),
            g.allowedNow === null ? 'unlimited' : String(g.allowedNow),
            g.limitedBy ?? '',
          ]),
        ]),
      );
    },
  );
}
