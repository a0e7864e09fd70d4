/** @module apk installed-database parsing: the real Alpine database and the shapes apk refuses. */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseApkInstalled } from '../../../agent/parsers/apk.js';
import { DwParseError } from '../../../shared/errors.js';
import { PackageItemSchema } from '../../../shared/schema/items.js';
import { parseError } from '../../helpers/parse-error.js';

const F = '/lib/apk/db/installed';
/** Real databases live in the sibling checkout ../shared (see its fixtures/README.md), not in this repo. */
const SHARED = join(import.meta.dirname, '../../../../shared/fixtures/apk-alpine');

const pkg = (p: string, v = '1.0-r0', a = 'x86_64') =>
  `P:${p}\nV:${v}\nA:${a}\nT:desc\nF:usr/bin\nR:${p}\na:0:0:755\nZ:Q1abc=\n`;

describe('parseApkInstalled on a real Alpine database', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'dw-apk-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('lists bash, busybox-binsh, musl and readline with their versions', (ctx) => {
    if (!existsSync(SHARED))
      ctx.skip(`${SHARED} is absent: the real apk database comes from the shared checkout beside this repo`);
    cpSync(SHARED, tmp, { recursive: true });
    const items = parseApkInstalled(readFileSync(join(tmp, 'lib/apk/db/installed'), 'utf8'), F);
    for (const i of items) PackageItemSchema.parse(i);
    expect(items.map((i) => [i.key, i.version])).toEqual([
      ['bash:x86_64', '5.2.21-r0'],
      ['busybox-binsh:x86_64', '1.36.1-r15'],
      ['musl:x86_64', '1.2.4_git20230717-r4'],
      ['readline:x86_64', '8.2.1-r2'],
    ]);
    expect(items.every((i) => i.manager === 'apk' && i.state === 'installed')).toBe(true);
  });
});

describe('parseApkInstalled', () => {
  it('skips file, checksum and metadata lines and sorts by key', () => {
    const items = parseApkInstalled(pkg('zlib', '1.3.1-r0') + '\n' + pkg('alpine-baselayout', '3.4.3-r2', 'noarch'), F);
    expect(items).toEqual([
      {
        key: 'alpine-baselayout:noarch',
        manager: 'apk',
        name: 'alpine-baselayout',
        arch: 'noarch',
        version: '3.4.3-r2',
        state: 'installed',
      },
      { key: 'zlib:x86_64', manager: 'apk', name: 'zlib', arch: 'x86_64', version: '1.3.1-r0', state: 'installed' },
    ]);
  });

  it('reads CRLF, a missing final newline and runs of blank lines', () => {
    const lf = `${pkg('a')}\n\n\n${pkg('b')}`;
    expect(parseApkInstalled(lf.replaceAll('\n', '\r\n').trimEnd(), F)).toEqual(parseApkInstalled(lf, F));
  });

  it('keys a package from a database without A: lines by name alone', () => {
    expect(parseApkInstalled('P:old\nV:1-r0\n', F)[0]?.key).toBe('old');
  });

  it('accepts an empty value, as apk writes for an empty checksum or root folder', () => {
    expect(parseApkInstalled('P:a\nV:1-r0\nA:x86_64\nc:\nF:\n', F)).toHaveLength(1);
  });

  it('collapses a repeated identical package and refuses one that disagrees', () => {
    expect(parseApkInstalled(`${pkg('a')}\n${pkg('a')}`, F)).toHaveLength(1);
    const err = parseError(() => parseApkInstalled(`${pkg('a')}\n${pkg('a', '2.0-r0')}`, F));
    expect([err.file, err.line]).toEqual([F, 10]);
    expect(err.message).toContain('line 1');
  });

  const bad: [string, string, number, RegExp][] = [
    ['a package without P:', 'V:1-r0\nA:x86_64\n', 1, /no P:/],
    ['a package without V:', 'P:a\nA:x86_64\n', 1, /no V:/],
    ['two packages with no blank line between them', `${pkg('a')}${pkg('b')}`, 9, /second P:/],
    ['a line that is not K:value', 'P:a\nV:1\nhello\n', 3, /K:value/],
    ['a key longer than one letter', 'P:a\nVV:1\n', 2, /K:value/],
    ['a whitespace-only separator (apk wants an empty line)', `${pkg('a')} \n${pkg('b')}`, 9, /K:value/],
    ['a version with a space', 'P:a\nV:1 2\n', 2, /malformed version/],
  ];
  for (const [what, text, line, reason] of bad) {
    it(`refuses ${what} with file and line`, () => {
      const err = parseError(() => parseApkInstalled(text, F));
      expect([err.file, err.line]).toEqual([F, line]);
      expect(err.message).toMatch(reason);
    });
  }

  it('returns items or throws DwParseError for random, stanza-shaped, truncated and binary input', () => {
    const check = (text: string) => {
      try {
        parseApkInstalled(text, F);
      } catch (err) {
        expect(err).toBeInstanceOf(DwParseError);
        expect((err as DwParseError).file).toBe(F);
        expect((err as DwParseError).line).toBeGreaterThanOrEqual(1);
        expect((err as DwParseError).line).toBeLessThanOrEqual(text.split('\n').length);
      }
    };
    fc.assert(fc.property(fc.string({ maxLength: 300 }), check), { numRuns: 500 });
    const line = fc.oneof(
      fc.constantFrom('', 'P:a', 'P:b', 'V:1-r0', 'A:x86_64', 'F:usr', 'R:x', 'Z:Q1=', 'P:', 'V:'),
      fc.string({ maxLength: 10 }),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 40 }), (lines) => check(lines.join('\n'))),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => check(Buffer.from(b).toString('utf8'))),
      { numRuns: 300 },
    );
    const good = `${pkg('a')}\n${pkg('b')}`;
    for (let n = 0; n <= good.length; n++) check(good.slice(0, n));
  });
});
