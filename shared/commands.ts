/**
 * @module Every top-level command, which side of the CLI owns it, and its one-line summary. cli.ts
 * dispatches on it, and so do the packaged entry points (packaging/entry-*.ts), so a command added
 * here reaches every build; `driftwarden --help` lists it (shared/help.ts), and
 * test/shared/commands.test.ts fails if a command the programs register is missing here.
 */
export type CommandSide = 'agent' | 'controller' | 'demo';

export interface CommandInfo {
  readonly name: string;
  readonly side: CommandSide;
  readonly summary: string;
}

export const COMMANDS: readonly CommandInfo[] = [
  { name: 'keygen', side: 'agent', summary: 'create an ed25519 key pair for signing manifests' },
  { name: 'manifest', side: 'agent', summary: 'build, verify and publish the signed manifest of an image' },
  { name: 'check', side: 'agent', summary: 'diff a root against its manifest (exit 0 clean, 1 drift, 2 error)' },
  { name: 'agent', side: 'agent', summary: 'run the agent daemon (--once: scan and report once); agent status' },
  { name: 'controller', side: 'controller', summary: 'run the controller (HTTP API, dashboard, scheduler)' },
  { name: 'hosts', side: 'controller', summary: 'list hosts; hosts reset|forget|recheck HOST' },
  { name: 'report', side: 'controller', summary: "one host's state, deviations and timeline; drift reports" },
  { name: 'findings', side: 'controller', summary: 'identical deviations across hosts, filtered and sorted' },
  { name: 'exempt', side: 'controller', summary: 'exempt matching deviations for a limited time' },
  { name: 'exemptions', side: 'controller', summary: 'list exemptions; exemptions revoke ID' },
  { name: 'replacements', side: 'controller', summary: 'the replacement queue: list, request, approve, cancel' },
  { name: 'audit', side: 'controller', summary: 'the audit log (newest first); audit verify|anchor' },
  { name: 'token', side: 'controller', summary: 'API and enrollment tokens: create, list, revoke' },
  {
    name: 'retention',
    side: 'controller',
    summary: 'retention run: prune reports, findings, events and audit rows now',
  },
  { name: 'demo', side: 'demo', summary: 'a demo fleet on this machine (from a source checkout)' },
];

const of = (side: CommandSide) => new Set(COMMANDS.filter((c) => c.side === side).map((c) => c.name));
export const AGENT_COMMANDS: ReadonlySet<string> = of('agent');
export const CONTROLLER_COMMANDS: ReadonlySet<string> = of('controller');

/** The first argument that is not an option: the command name. */
export function commandOf(argv: readonly string[]): string | undefined {
  return argv.find((a) => !a.startsWith('-'));
}
