/**
 * @module The error catalog is a contract: every DW_ERR_* code the source or docs name is in
 * shared/errors.ts, README.md lists the catalog exactly, and every code in it is exercised — by a test
 * elsewhere that names it, or, for the codes no other test names, by a real trigger here.
 */
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HostRoot, normalizeHostPath } from '../../agent/root.js';
import { execProvider } from '../../controller/providers/exec.js';
import { openStore } from '../../controller/store/index.js';
import type { Store } from '../../controller/store/types.js';
import { DwError, ERRORS, type ErrorCode, isDwError } from '../../shared/errors.js';
import { loadManifest } from '../../shared/manifest.js';
import { loadPrivateKey } from '../../shared/sign.js';
import { Harness } from '../controller/harness.js';

const REPO = join(import.meta.dirname, '../..');
const CODES = Object.keys(ERRORS) as ErrorCode[];
const CODE_RE = /\bDW_ERR_[A-Z0-9_]+\b/g;

function filesUnder(dir: string, exts: string[]): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'fixtures' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, exts));
    else if (exts.some((e) => name.endsWith(e))) out.push(p);
  }
  return out;
}

const sourceFiles = [
  ...['agent', 'controller', 'shared', 'demo', 'docs'].flatMap((d) =>
    filesUnder(join(REPO, d), ['.ts', '.md', '.html', '.js']),
  ),
  join(REPO, 'cli.ts'),
  join(REPO, 'README.md'),
];

/**
 * Table rows with their cells' padding trimmed and separator rows as `---`, so the comparison is of content, not of
 * the column alignment a Markdown formatter chooses.
 */
function unpadTables(text: string): string {
  return text
    .split('\n')
    .map((line) =>
      line.startsWith('|')
        ? line
            .split('|')
            .map((cell) => (/^\s*:?-+:?\s*$/.test(cell) ? '---' : cell.trim()))
            .join('|')
        : line,
    )
    .join('\n');
}

/** The README's table, rendered from the catalog: what the README must contain, cell for cell. */
function renderErrorTable(): string {
  const rows = CODES.map(
    (c) => `| \`${c}\` | ${ERRORS[c].status} | ${ERRORS[c].exit} | ${ERRORS[c].summary} | \`${ERRORS[c].message}\` |`,
  );
  return ['| code | HTTP status | exit code | meaning | message |', '|---|---|---|---|---|', ...rows].join('\n');
}

async function codeOf(run: () => unknown): Promise<{ code: ErrorCode; err: DwError }> {
  try {
    await run();
  } catch (err) {
    if (isDwError(err)) return { code: err.code, err };
    throw err;
  }
  throw new Error('expected a DwError, nothing was thrown');
}

/**
 * Real triggers for the codes no other test names: each calls the code that throws it, the way a user
 * would reach it.
 */
const TRIGGERS: Partial<Record<ErrorCode, () => Promise<unknown>>> = {
  DW_ERR_USAGE: async () => normalizeHostPath('etc/passwd'),
  DW_ERR_MANIFEST_MISSING: async () => loadManifest(join(mkdtempSync(join(tmpdir(), 'dw-cat-')), 'none.json')),
  DW_ERR_KEY: async () => loadPrivateKey(join(mkdtempSync(join(tmpdir(), 'dw-cat-')), 'none.pem')),
  DW_ERR_ROOT: async () => HostRoot.open(join(mkdtempSync(join(tmpdir(), 'dw-cat-')), 'no-such-root')),
  DW_ERR_PROVIDER: async () => {
    const p = execProvider({ command: [join(tmpdir(), 'dw-no-such-replace-command')], timeout: '10s' });
    const ac = new AbortController();
    const target = {
      replacementId: 'r1',
      attempt: 1,
      hostId: 'h1',
      hostname: 'h1',
      imageId: 'img',
      group: 'g',
      reason: 'drift',
      addresses: [],
    };
    return p.replace(target as never, { signal: ac.signal } as never);
  },
  DW_ERR_INTERNAL: async () => {
    // A store failure the controller did not expect: the answer is a 500 that says nothing of it.
    const store = await openStore('sqlite::memory:');
    const broken = new Proxy(store, {
      get: (t, p, r) =>
        p === 'countHostsByState' ? () => Promise.reject(new Error('disk on fire')) : Reflect.get(t, p, r),
    }) as Store;
    const h = await Harness.start(broken);
    try {
      const res = await h.get('/api/v1/fleet/overview');
      const body = JSON.parse(res.text) as { error: string; message: string };
      expect(res.status).toBe(ERRORS.DW_ERR_INTERNAL.status);
      expect(body.message).not.toContain('disk on fire');
      throw new DwError(body.error as ErrorCode, body.message);
    } finally {
      await h.close();
    }
  },
};

describe('the error catalog', () => {
  it('has every code the source, the docs and the README name (no uncatalogued code is thrown)', () => {
    const unknown = new Map<string, string>();
    for (const f of sourceFiles) {
      for (const m of readFileSync(f, 'utf8').matchAll(CODE_RE)) {
        if (!(m[0] in ERRORS)) unknown.set(m[0], f.slice(REPO.length + 1));
      }
    }
    expect(Object.fromEntries(unknown)).toEqual({});
  });

  it('gives every code an HTTP error status, exit code 2, a summary and a message template', () => {
    for (const c of CODES) {
      const e = ERRORS[c];
      expect(e.status, c).toBeGreaterThanOrEqual(400);
      expect(e.status, c).toBeLessThan(600);
      // 0 and 1 are success and "drift found" (README, Commands): an error is never either.
      expect(e.exit, c).toBe(2);
      expect(e.summary.length, c).toBeGreaterThan(0);
      expect(e.message.length, c).toBeGreaterThan(0);
    }
  });

  it('is listed in README.md exactly as shared/errors.ts defines it', () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    expect(unpadTables(readme)).toContain(unpadTables(renderErrorTable()));
  });

  describe('every code is exercised', () => {
    const testFiles = filesUnder(join(REPO, 'test'), ['.ts']).filter((f) => !f.endsWith('error-catalog.test.ts'));
    const named = new Set(testFiles.flatMap((f) => [...readFileSync(f, 'utf8').matchAll(CODE_RE)].map((m) => m[0])));
    // DwParseError carries DW_ERR_PARSE; the parser tests assert on the class.
    if (testFiles.some((f) => readFileSync(f, 'utf8').includes('DwParseError'))) named.add('DW_ERR_PARSE');

    it.each(CODES)('%s', async (code) => {
      const trigger = TRIGGERS[code];
      if (trigger) {
        const { code: got, err } = await codeOf(trigger);
        expect(got).toBe(code);
        expect(err.status).toBe(ERRORS[code].status);
        expect(err.exitCode).toBe(ERRORS[code].exit);
      } else {
        expect(named.has(code), `${code}: no test names it; add a test that reaches it, or a trigger here`).toBe(true);
      }
    });
  });
});
