/**
 * @module The controller package's entry point: every command of cli.ts but the demo (which needs the
 * source tree's fixtures). Bundled as one ES module run by the Node runtime the package carries.
 */
import { CONTROLLER_COMMANDS, commandOf } from '../shared/commands.js';
import { helpRequest, overviewText } from '../shared/help.js';

let argv = process.argv.slice(2);
const help = helpRequest(argv);
if (help?.kind === 'command') argv = help.argv;
const first = commandOf(argv);

if (help?.kind === 'overview') {
  process.stdout.write(overviewText(new Set(['agent', 'controller'])));
} else if (help?.kind === 'unknown') {
  process.stderr.write(`driftwarden: help: no command "${help.name}"; run driftwarden --help for the list\n`);
  process.exitCode = 2;
} else if (first !== undefined && CONTROLLER_COMMANDS.has(first)) {
  const { main } = await import('../controller/cli.js');
  await main(argv);
} else if (first === 'demo') {
  process.stderr.write('driftwarden: the demo runs from a source checkout (npm run demo), not from the package\n');
  process.exitCode = 2;
} else {
  const { main } = await import('../agent/cli.js');
  await main(argv);
}
