/**
 * @module The `driftwarden` entry point. It only dispatches: the agent's commands load agent/cli.js and
 * nothing else, so an agent bundle carries no controller code.
 */
const AGENT_COMMANDS = new Set(['keygen', 'manifest', 'check', 'agent']);
const CONTROLLER_COMMANDS = new Set(['controller', 'token', 'hosts', 'report', 'exempt', 'audit', 'replacements']);

const argv = process.argv.slice(2);
const first = argv.find((a) => !a.startsWith('-'));

if (first === undefined || AGENT_COMMANDS.has(first)) {
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
