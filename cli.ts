/**
 * @module The `driftwarden` entry point. It only dispatches: the agent's commands load agent/cli.js and
 * nothing else, so an agent bundle carries no controller code. `--help` and `help COMMAND` are answered
 * here (shared/help.ts), since no one side knows every command.
 */
import { AGENT_COMMANDS, CONTROLLER_COMMANDS, commandOf } from './shared/commands.js';
import { helpRequest, overviewText } from './shared/help.js';

let argv = process.argv.slice(2);
const help = helpRequest(argv);
if (help?.kind === 'command') argv = help.argv;
const first = commandOf(argv);

if (help?.kind === 'overview') {
  process.stdout.write(overviewText());
} else if (help?.kind === 'unknown') {
  process.stderr.write(`driftwarden: help: no command "${help.name}"; run driftwarden --help for the list\n`);
  process.exitCode = 2;
} else if (first === undefined || AGENT_COMMANDS.has(first)) {
  const { main } = await import('./agent/cli.js');
  await main(argv);
} else if (first === 'demo') {
  const { main } = await import('./demo/cli.js');
  await main(argv);
} else if (CONTROLLER_COMMANDS.has(first)) {
  const { main } = await import('./controller/cli.js');
  await main(argv);
} else {
  process.stderr.write(`driftwarden: unknown command "${first}"; run driftwarden --help\n`);
  process.exitCode = 2;
}
