/** @module `driftwarden demo` on its own, so neither the agent's nor the controller's CLI carries the other's code. */
import { Command, CommanderError } from 'commander';
import { runDemo } from './demo.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('driftwarden')
    .exitOverride()
    .command('demo')
    .description('the whole story on a sample image root: bake, check, drift, a controller tainting hosts')
    .option('--keep', 'keep the temporary demo directory')
    .action(async (o: { keep?: boolean }) => {
      process.exitCode = await runDemo(o);
    });
  try {
    await program.parent!.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.stderr.write(`driftwarden demo: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 2;
  }
}
