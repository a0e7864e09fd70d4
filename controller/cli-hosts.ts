/**
 * @module `driftwarden hosts reset|forget|recheck HOST`: the operator actions on one host, over the API
 * (an operator token). HOST is a host id, a unique id prefix, or a hostname that names exactly one host.
 */
import type { Command } from 'commander';
import { api, apiTarget } from '../shared/api-client.js';
import { resolveHost } from './cli-resolve.js';

type Remote = { url?: string; token?: string; json?: boolean; reason?: string };

const out = (s: string): void => void process.stdout.write(s);
const remote = (cmd: Command) =>
  cmd
    .option('--url <url>', 'controller URL (default $DRIFTWARDEN_URL)')
    .option('--token <token>', 'API token (default $DRIFTWARDEN_TOKEN)')
    .option('--json', 'print JSON')
    .option('--reason <text>', 'why (kept in the audit log)');

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
    remote(hosts.command(name).description(a.what).argument('<host>', 'host id, unique id prefix, or hostname')).action(
      async (given: string, o: Remote) => {
        const target = apiTarget(o);
        const id = await resolveHost(target, given);
        const r = await api<Record<string, string>>(
          target,
          'POST',
          `/api/v1/hosts/${encodeURIComponent(id)}/${name}`,
          o.reason ? { reason: o.reason } : {},
        );
        out(o.json ? JSON.stringify(r, null, 2) + '\n' : a.done(r));
      },
    );
  }
}
