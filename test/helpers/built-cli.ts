/**
 * @module The built CLI for tests that run it as a user would: `bin/driftwarden.js` on `dist/`, built
 * first (npm run build) when any agent, controller, shared or entry source is newer than its output.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(REPO, 'bin/driftwarden.js');

function* tsFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

/** Sources whose dist/ output is missing or older than they are. */
export function staleBuildOutputs(): string[] {
  return [
    join(REPO, 'cli.ts'),
    ...tsFiles(join(REPO, 'agent')),
    ...tsFiles(join(REPO, 'controller')),
    ...tsFiles(join(REPO, 'shared')),
  ].filter((src) => {
    try {
      return statSync(join(REPO, 'dist', relative(REPO, src).replace(/\.ts$/, '.js'))).mtimeMs < statSync(src).mtimeMs;
    } catch {
      return true;
    }
  });
}

/** Builds when dist/ is stale; returns what is still stale afterwards (a test expects none). */
export function ensureBuilt(): string[] {
  if (staleBuildOutputs().length > 0) spawnSync('npm', ['run', 'build'], { cwd: REPO, encoding: 'utf8' });
  return staleBuildOutputs();
}
