/** @module Temporary directories for tests, removed after each test file. */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'dw-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/** A writable copy of a fixture tree (symlinks kept as symlinks). */
export function copyFixture(fixtureDir: string): string {
  const d = tempDir();
  cpSync(fixtureDir, d, { recursive: true, verbatimSymlinks: true });
  return d;
}

export const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
