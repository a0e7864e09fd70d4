/** @module `driftwarden demo` on its own, so neither the agent's nor the controller's CLI carries the other's code. */
import { Command, CommanderError } from 'commander';
import { isDwError } from '../shared/errors.js';
import { runDemo } from './demo.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('driftwarden')
    .exitOverride()
    .command('demo')
    .description(
      'the whole story with no setup: a sample image, a controller, a fleet of agents, the classic drifts, tainted hosts, the replacement scheduler deciding in dry-run; then serves the dashboard until Ctrl-C',
    )
    .option(
      '--exit',
      'end after the story: exit 0 when the expected hosts are tainted and the scheduler decided as expected, 1 (saying what differed) otherwise',
    )
    .option('--keep', 'keep the temporary demo directory (roots, keys, manifest, database, logs) and say where')
    .action(async (o: { keep?: boolean; exit?: boolean }) => {
      process.exitCode = await runDemo(o);
    });
  try {
    await program.parent!.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.stderr.write(
      `driftwarden demo: ${isDwError(err) ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = isDwError(err) ? err.exitCode : 2;
  }
}
