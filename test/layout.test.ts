/** The layout rules DESIGN.md sets: shared code imports neither side, and the agent never imports the controller. */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const rel = join(dir, name);
    if (statSync(join(ROOT, rel)).isDirectory()) return sources(rel);
    return rel.endsWith('.ts') ? [rel] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(/from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] ?? m[2]!);
}

describe('module boundaries', () => {
  it('keeps controller code out of the agent', () => {
    const offenders = sources('agent').filter((f) => importsOf(f).some((i) => i.includes('controller/')));
    expect(offenders).toEqual([]);
  });

  it('keeps shared code free of both sides', () => {
    const offenders = sources('shared').filter((f) => importsOf(f).some((i) => /(^|\/)(agent|controller)\//.test(i)));
    expect(offenders).toEqual([]);
  });

  it('keeps the agent out of the controller', () => {
    const offenders = sources('controller').filter((f) => importsOf(f).some((i) => i.includes('/agent/')));
    expect(offenders).toEqual([]);
  });
});
