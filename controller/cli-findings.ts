/**
 * @module `driftwarden findings` (identical deviations across hosts, filtered and sorted by the API) and
 * `driftwarden exemptions` (list; revoke ID), over the API.
 */
import type { Command } from 'commander';
import { api, apiTarget } from '../shared/api-client.js';
import { describeAttribution } from '../shared/attribution-text.js';
import { changeSummary } from '../shared/change-text.js';
import { DwError } from '../shared/errors.js';
import { FINDING_SORTS, type Finding, FindingsQuerySchema } from '../shared/schema/findings.js';
import { resolveExemption, resolveHost } from './cli-resolve.js';
import { table } from './cli-table.js';
import type { ExemptionRow } from './store/types.js';

type Remote = { url?: string; token?: string; json?: boolean };
const out = (s: string): void => void process.stdout.write(s);
const remote = (cmd: Command) =>
  cmd
    .option('--url <url>', 'controller URL (default $DRIFTWARDEN_URL)')
    .option('--token <token>', 'API token (default $DRIFTWARDEN_TOKEN)')
    .option('--json', 'print JSON');

/** A cell at most `n` characters wide; --json has the whole value. */
const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function registerFindingCommands(program: Command): void {
  remote(
    program
      .command('findings')
      .description(
        'identical deviations across hosts (one finding per collector, key, change and actual content), most hosts first',
      ),
  )
    .option('--host <host>', 'only this host (id, unique id prefix or hostname)')
    .option('--severity <severity>', 'low | medium | high | critical')
    .option('--state <state>', 'only hosts in this state (tainted, drifted, silent, …)')
    .option('--action <action>', 'the policy decision: taint | report | exempt')
    .option('--collector <name>', 'packages, files, sysctl, cron, …')
    .option('-q, --search <text>', 'substring of the path, collector or hostname')
    .option('--sort <field>', `${FINDING_SORTS.join(' | ')}; a leading - is descending (e.g. -severity)`)
    .option('--limit <n>', 'rows', '50')
    .action(
      async (
        o: Remote & {
          host?: string;
          severity?: string;
          state?: string;
          action?: string;
          collector?: string;
          search?: string;
          sort?: string;
          limit: string;
        },
      ) => {
        const target = apiTarget(o);
        const query = {
          host: o.host,
          severity: o.severity,
          state: o.state,
          action: o.action,
          collector: o.collector,
          q: o.search,
          sort: o.sort,
          limit: o.limit,
        };
        // Checked here too, so a typo is a usage error that names the flag, before anything is asked.
        const parsed = FindingsQuerySchema.safeParse(query);
        if (!parsed.success)
          throw new DwError(
            'DW_ERR_USAGE',
            parsed.error.issues
              .map((i) => `--${i.path[0] === 'q' ? 'search' : String(i.path[0])}: ${i.message}`)
              .join('; '),
          );
        const q = new URLSearchParams();
        for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
        if (o.host) q.set('host', await resolveHost(target, o.host));
        const r = await api<{ findings: Finding[]; next: number | null }>(target, 'GET', `/api/v1/findings?${q}`);
        if (o.json) return out(`${JSON.stringify(r, null, 2)}\n`);
        if (r.findings.length === 0) return out('no findings\n');
        out(
          table([
            [
              'HOSTS',
              'SEVERITY',
              'POLICY',
              'COLLECTOR',
              'CHANGE',
              'KEY',
              'FIRST SEEN',
              'EXPECTED -> ACTUAL',
              'MADE BY',
            ],
            ...r.findings.map((f) => [
              String(f.hosts),
              f.severity,
              f.action,
              f.collector,
              f.change,
              f.key,
              f.firstSeenAt,
              cut(changeSummary(f), 80),
              f.attribution
                ? `${describeAttribution(f.attribution)}${f.hosts > 1 ? ` (${f.attributedHosts}/${f.hosts} hosts)` : ''}`
                : '-',
            ]),
          ]),
        );
        if (r.next !== null) out(`(more: --limit, a filter, or the API's offset=${r.next})\n`);
      },
    );

  const ex = program.command('exemptions').description('exemptions: list (active by default), revoke ID');
  remote(ex.command('list', { isDefault: true }).description('exemptions, active ones unless --all'))
    .option('--all', 'also expired and revoked ones')
    .action(async (o: Remote & { all?: boolean }) => {
      const target = apiTarget(o);
      const get = (active: boolean) =>
        api<{ exemptions: ExemptionRow[] }>(target, 'GET', `/api/v1/exemptions${active ? '?active=true' : ''}`);
      // Active by the controller's clock, not this machine's.
      const activeRows = await get(true);
      const r = o.all ? await get(false) : activeRows;
      const active = new Set(activeRows.exemptions.map((e) => e.id));
      if (o.json) return out(`${JSON.stringify(r, null, 2)}\n`);
      if (r.exemptions.length === 0) return out(o.all ? 'no exemptions\n' : 'no active exemptions\n');
      out(
        table([
          ['ID', 'APPLIES TO', 'COLLECTOR', 'KEY', 'STATUS', 'EXPIRES', 'BY', 'REASON'],
          ...r.exemptions.map((e) => [
            e.id.slice(0, 8),
            e.hostId ? `host ${e.hostId}` : e.imageId ? `image ${e.imageId}` : 'every host',
            e.collector ?? 'any',
            e.keyPattern,
            active.has(e.id) ? 'active' : e.revokedAt ? `revoked by ${e.revokedBy ?? '?'}` : 'expired',
            e.expiresAt,
            e.actor,
            cut(e.reason, 60),
          ]),
        ]),
      );
    });
  remote(
    ex
      .command('revoke')
      .description('end an exemption now (operator); the policy acts on matching deviations from the next report')
      .argument('<id>', 'exemption id or unique id prefix'),
  ).action(async (given: string, o: Remote) => {
    const target = apiTarget(o);
    const id = await resolveExemption(target, given);
    const r = await api<{ id: string; revokedAt: string }>(
      target,
      'DELETE',
      `/api/v1/exemptions/${encodeURIComponent(id)}`,
    );
    out(o.json ? `${JSON.stringify(r, null, 2)}\n` : `exemption ${r.id} revoked at ${r.revokedAt}\n`);
  });
}
