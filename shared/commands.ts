/**
 * @module Which side of the CLI owns each top-level command. cli.ts dispatches on it, and so do the
 * packaged entry points (packaging/entry-*.ts), so a command added here reaches every build.
 */
export const AGENT_COMMANDS: ReadonlySet<string> = new Set(['keygen', 'manifest', 'check', 'agent']);
export const CONTROLLER_COMMANDS: ReadonlySet<string> = new Set([
  'controller',
  'token',
  'hosts',
  'report',
  'exempt',
  'audit',
  'replacements',
  'retention',
]);

/** The first argument that is not an option: the command name. */
export function commandOf(argv: readonly string[]): string | undefined {
  return argv.find((a) => !a.startsWith('-'));
}
