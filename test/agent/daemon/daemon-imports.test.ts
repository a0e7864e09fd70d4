/**
 * The long-lived agent loads nothing heavy: the static import graph of the daemon's modules (what
 * `driftwarden agent` keeps in memory for months) holds no schema library, collector, manifest or
 * scan code. Those run in its task process (agent/daemon/task.ts).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../../..');

/** Modules and packages reachable by value imports (type-only imports load nothing). */
function graph(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const walk = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)';|^import\s+'([^']+)';/gms)) {
      if (m[2]) continue;
      const spec = (m[3] ?? m[4])!;
      if (spec.startsWith('.')) walk(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else packages.add(spec);
    }
  };
  walk(join(REPO, entry));
  return { files: [...files].map((f) => relative(REPO, f)).sort(), packages: [...packages].sort() };
}

describe('the daemon', () => {
  it('imports no schema library, collector, manifest verification or scan code', () => {
    const { files, packages } = graph('agent/daemon/agent.ts');
    expect(files).toContain('agent/daemon/watch.ts');
    expect(packages.filter((p) => ['zod', 'systeminformation', 'yaml', 'undici'].includes(p))).toEqual([]);
    expect(
      files.filter((f) =>
        f.startsWith('shared/schema/') && f !== 'shared/schema/severities.ts'
          ? true
          : /^agent\/(collectors\/(?!file-stat)|commands\/|scan\.ts|identity\.ts|cloud-identity\.ts|report\.ts)|^shared\/manifest\.ts|^agent\/daemon\/task\.ts/.test(
              f,
            ),
      ),
    ).toEqual([]);
  });

  it('and the CLI module that starts it loads its commands only when they run', () => {
    const { files, packages } = graph('agent/cli.ts');
    expect(packages.filter((p) => p === 'zod' || p === 'yaml')).toEqual([]);
    expect(files.filter((f) => /^agent\/(commands|daemon|collectors)\//.test(f))).toEqual([]);
  });
});
