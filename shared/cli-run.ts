/** @module Run a commander program and map what it throws to the exit codes of shared/errors.ts, in one place. */
import { CommanderError, type Command } from 'commander';
import { isDwError } from './errors.js';

export async function runProgram(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version are not errors; a usage error is exit 2 like every other error.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (isDwError(err)) {
      process.stderr.write(`driftwarden: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(
      `driftwarden: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 2;
  }
}
