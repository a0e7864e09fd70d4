/**
 * @module The agent build's entry point (bundle and single executable): the agent's commands only, so
 * nothing of the controller (HTTP server, SQLite, cloud SDKs) is in it. cli.ts is the full CLI.
 */
import { main } from '../agent/cli.js';
import { CONTROLLER_COMMANDS, commandOf } from '../shared/commands.js';
import { helpRequest, overviewText } from '../shared/help.js';

let argv = process.argv.slice(2);
const help = helpRequest(argv);
if (help?.kind === 'command') argv = help.argv;
const first = commandOf(argv);

if (help?.kind === 'overview') {
  process.stdout.write(overviewText(new Set(['agent'])));
} else if (help?.kind === 'unknown') {
  process.stderr.write(`driftwarden: help: no command "${help.name}"; run driftwarden --help for the list\n`);
  process.exitCode = 2;
} else if (first !== undefined && (CONTROLLER_COMMANDS.has(first) || first === 'demo')) {
  process.stderr.write(
    `driftwarden: "${first}" is not in the agent build; it comes with the driftwarden-controller package (driftwarden-controller ${first} …)\n`,
  );
  process.exitCode = 2;
} else {
  // No top-level await: the single executable is CommonJS.
  main(argv).catch((err: unknown) => {
    process.stderr.write(
      `driftwarden: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 2;
  });
}
