/**
 * @module `driftwarden hosts reset|forget|recheck HOST`: the operator actions on one host, over the API
 * (an operator token). HOST is a host id, or a hostname that names exactly one host.
 */
import type { Command } from 'commander';
import { api, apiTarget, type ApiTarget } from '../shared/api-client.js';
import { DwError } from '../shared/errors.js';

type Remote = { url?: string; token?: string; json?: boolean; reason?: string };

const out = (s: string): void => void process.stdout.write(s);
const remote = (cmd: Command) =>
  cmd
    .option('--url <url>', 'controller URL (default $DRIFTWARDEN_URL)')
    .option('--token <token>', 'API token (default $DRIFTWARDEN_TOKEN)')
    .option('--json', 'print JSON')
    .option('--reason <text>', 'why (kept in the audit log)');

/**
 * A host id as given, else the one host whose pinned hostname it is. Ids win: a hostname that is
 * also another host's id names that host. Ambiguity is an error, never a guess.
 */
export async function resolveHost(target: ApiTarget, given: string): Promise<string> {
  const status = await api(target, 'GET', `/api/v1/hosts/${encodeURIComponent(given)}`).then(
    () => 200,
    (err: unknown) => (err instanceof DwError ? ((err.context as { status?: number } | undefined)?.status ?? 0) : 0),
  );
  if (status !== 404) return given; // found, or refused for another reason the action will repeat
  const q = new URLSearchParams({ q: given, limit: '1000' });
  const r = await api<{ hosts: { id: string; hostname: string | null }[] }>(target, 'GET', `/api/v1/hosts?${q}`);
  const named = r.hosts.filter((h) => h.hostname === given);
  if (named.length === 1) return named[0]!.id;
  if (named.length > 1)
    throw new DwError(
      'DW_ERR_USAGE',
      `hostname ${given} names ${named.length} hosts (${named.map((h) => h.id).join(', ')}); give the host id`,
    );
  throw new DwError('DW_ERR_NOT_FOUND', `no host with id or hostname ${given}`);
}

const ACTIONS = {
  reset: {
    what: 'reset a host: its credential stops working; it may enroll again once (re-pinning its identity)',
    done: (r: Record<string, string>) =>
      `host ${r.hostId} reset at ${r.resetAt}: it may enroll again once with an enrollment token\n`,
  },
  forget: {
    what: 'forget (retire) a host: it leaves the fleet views and counts and cannot report again; its history stays',
    done: (r: Record<string, string>) => `host ${r.hostId} forgotten at ${r.retiredAt}\n`,
  },
  recheck: {
    what: 'ask a host for a full scan now (answered on its next heartbeat)',
    done: (r: Record<string, string>) =>
      `host ${r.hostId}: scan requested (${r.scanRequestedAt}); its next heartbeat asks for it\n`,
  },
} as const;

export function registerHostActionCommands(hosts: Command): void {
  for (const [name, a] of Object.entries(ACTIONS)) {
    remote(
      hosts.command(name).description(a.what).argument('<host>', 'host id, or a hostname that names one host'),
    ).action(async (given: string, o: Remote) => {
      const target = apiTarget(o);
      const id = await resolveHost(target, given);
      const r = await api<Record<string, string>>(
        target,
        'POST',
        `/api/v1/hosts/${encodeURIComponent(id)}/${name}`,
        o.reason ? { reason: o.reason } : {},
      );
      out(o.json ? JSON.stringify(r, null, 2) + '\n' : a.done(r));
    });
  }
}
