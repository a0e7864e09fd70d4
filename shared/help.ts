/**
 * @module `driftwarden --help` and `driftwarden help [COMMAND [SUBCOMMAND]]`, answered before dispatch:
 * each side's program only knows its own commands, and the agent build carries no controller code, so
 * the list of every command comes from shared/commands.ts and a command's own help from its side.
 */
import { COMMANDS, type CommandSide, commandOf } from './commands.js';

export type HelpRequest =
  /** Print the list of commands (exit 0). */
  | { kind: 'overview' }
  /** Run this argv instead (`help report` → `report --help`) on the side that owns the command. */
  | { kind: 'command'; argv: string[] }
  /** `help nosuch`: a usage error (exit 2). */
  | { kind: 'unknown'; name: string }
  | null;

export function helpRequest(argv: readonly string[]): HelpRequest {
  const first = commandOf(argv);
  if (first === undefined)
    return argv.length === 0 || argv.some((a) => a === '-h' || a === '--help') ? { kind: 'overview' } : null;
  if (first !== 'help') return null;
  const rest = argv.slice(argv.indexOf('help') + 1).filter((a) => !a.startsWith('-'));
  if (rest.length === 0) return { kind: 'overview' };
  if (!COMMANDS.some((c) => c.name === rest[0])) return { kind: 'unknown', name: rest[0]! };
  return { kind: 'command', argv: [...rest, '--help'] };
}

const GROUPS: { side: CommandSide; title: string }[] = [
  { side: 'agent', title: 'On a host or an image (agent):' },
  {
    side: 'controller',
    title: 'Fleet (controller; remote commands take --url and --token, or $DRIFTWARDEN_URL and $DRIFTWARDEN_TOKEN):',
  },
  { side: 'demo', title: 'Other:' },
];

/** `available`: the sides this build carries; the others are listed as coming with another package. */
export function overviewText(available: ReadonlySet<CommandSide> = new Set(['agent', 'controller', 'demo'])): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length), 'help [command]'.length) + 2;
  const lines = ['Usage: driftwarden <command> [options]', '', 'Drift detection for immutable infrastructure.', ''];
  for (const g of GROUPS) {
    lines.push(g.title);
    for (const c of COMMANDS.filter((x) => x.side === g.side))
      lines.push(`  ${c.name.padEnd(width)}${c.summary}${available.has(c.side) ? '' : ' (not in this build)'}`);
    if (g.side === 'demo') lines.push(`  ${'help [command]'.padEnd(width)}help for a command, e.g. help replacements`);
    lines.push('');
  }
  lines.push(
    'Options:',
    '  -V, --version   the version',
    '  -h, --help      this list; COMMAND --help (or help COMMAND) for one command',
    '',
    'Host ids, replacement ids and exemption ids may be given as any unique prefix; a hostname works',
    'wherever a host id does.',
    '',
    'Exit codes: 0 success; 1 drift found (check) or a chain that does not verify (audit verify);',
    '2 an error (usage, configuration, I/O, refused by the controller).',
    '',
  );
  return lines.join('\n');
}

/** The side that owns a command, for dispatching `help COMMAND`. */
export function sideOf(name: string): CommandSide | undefined {
  return COMMANDS.find((c) => c.name === name)?.side;
}
