/** @module dpkg status parsing: states, multi-arch keys, continuation lines, and what counts as broken. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDpkgStatus } from '../../../agent/parsers/dpkg.js';
import { DwParseError } from '../../../shared/errors.js';
import { PackageItemSchema } from '../../../shared/schema/items.js';
import { parseError } from '../../helpers/parse-error.js';

const FIXTURE = join(import.meta.dirname, '../../fixtures/packages/debian/var/lib/dpkg/status');
const F = '/var/lib/dpkg/status';

const stanza = (name: string, status = 'install ok installed', extra = '') =>
  `Package: ${name}\nStatus: ${status}\nArchitecture: amd64\nVersion: 1.0-1\n${extra}`;

describe('parseDpkgStatus on a realistic status file', () => {
  const items = parseDpkgStatus(readFileSync(FIXTURE, 'utf8'), F);
  const byKey = Object.fromEntries(items.map((i) => [i.key, i]));

  it('returns schema-valid items sorted by unique key', () => {
    for (const i of items) PackageItemSchema.parse(i);
    const keys = items.map((i) => i.key);
    expect(keys).toEqual([...keys].sort());
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('keys multi-arch copies of one package apart, and arch-independent ones by :all', () => {
    expect(byKey['libc6:amd64']).toEqual({
      key: 'libc6:amd64',
      manager: 'dpkg',
      name: 'libc6',
      arch: 'amd64',
      version: '2.36-9+deb12u14',
      state: 'installed',
    });
    expect(byKey['libc6:i386']?.arch).toBe('i386');
    expect(byKey['tzdata:all']?.version).toBe('2025b-0+deb12u2');
  });

  it('keeps epochs in the version as dpkg writes it', () => {
    expect(byKey['openssh-server:amd64']?.version).toBe('1:9.2p1-2+deb12u7');
  });

  it('reports states other than install ok installed as dpkg names them, with a non-default selection or flag visible', () => {
    expect(byKey['openssh-server:amd64']?.state).toBe('installed (hold)');
    expect(byKey['nginx-common:all']?.state).toBe('config-files (deinstall)');
    expect(byKey['postgresql-15:amd64']?.state).toBe('half-installed (reinstreq)');
    expect(byKey['curl:amd64']?.state).toBe('unpacked');
    expect(byKey['man-db:amd64']?.state).toBe('triggers-pending');
  });

  it('drops not-installed stanzas, which dpkg keeps only to remember a selection', () => {
    expect(byKey['telnet:amd64']).toBeUndefined();
    expect(items).toHaveLength(10);
  });

  it('skips Description and Conffiles continuation lines without mistaking them for fields', () => {
    expect(items.map((i) => i.name)).not.toContain('/etc/adduser.conf');
    expect(byKey['adduser:all']?.state).toBe('installed');
  });
});

describe('parseDpkgStatus on awkward text', () => {
  it('reads CRLF line endings like LF', () => {
    const lf = `${stanza('a')}\n${stanza('b', 'install ok installed', 'Description: x\n more\n')}`;
    expect(parseDpkgStatus(lf.replaceAll('\n', '\r\n'), F)).toEqual(parseDpkgStatus(lf, F));
  });

  it('reads a last stanza with no trailing newline', () => {
    const items = parseDpkgStatus('Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2', F);
    expect(items).toEqual([
      { key: 'a:amd64', manager: 'dpkg', name: 'a', arch: 'amd64', version: '2', state: 'installed' },
    ]);
  });

  it('treats whitespace-only lines and runs of blank lines as stanza separators', () => {
    const items = parseDpkgStatus(`\n\n${stanza('a')} \t\n\n\n${stanza('b')}`, F);
    expect(items.map((i) => i.key)).toEqual(['a:amd64', 'b:amd64']);
  });

  it('matches field names case-insensitively and tolerates extra blanks in Status', () => {
    const items = parseDpkgStatus('package: a\nSTATUS:  hold \t ok  installed\narchitecture: arm64\nversion:3\n', F);
    expect(items[0]).toMatchObject({ key: 'a:arm64', version: '3', state: 'installed (hold)' });
  });

  it('shows a deinstall selection on a still-installed package, so only install ok installed is bare "installed"', () => {
    expect(parseDpkgStatus(stanza('a', 'deinstall ok installed'), F)[0]?.state).toBe('installed (deinstall)');
    expect(parseDpkgStatus(stanza('a', 'hold reinstreq installed'), F)[0]?.state).toBe('installed (hold, reinstreq)');
  });

  it('keys a package without an Architecture by its name alone', () => {
    expect(parseDpkgStatus('Package: old\nStatus: deinstall ok config-files\nVersion: 1\n', F)[0]?.key).toBe('old');
  });

  it('ignores a byte-order mark', () => {
    expect(parseDpkgStatus(`\uFEFF${stanza('a')}`, F)).toHaveLength(1);
  });

  it('collapses a repeated stanza that says the same thing', () => {
    expect(parseDpkgStatus(`${stanza('a')}\n${stanza('a')}`, F)).toHaveLength(1);
  });

  it('refuses a repeated stanza that disagrees, naming both lines', () => {
    const err = parseError(() => parseDpkgStatus(`${stanza('a')}\n${stanza('a', 'hold ok installed')}`, F));
    expect(err.file).toBe(F);
    expect(err.line).toBe(6);
    expect(err.message).toContain('line 1');
  });

  it('is empty for an empty file', () => {
    expect(parseDpkgStatus('', F)).toEqual([]);
    expect(parseDpkgStatus('\n\n', F)).toEqual([]);
  });
});

describe('parseDpkgStatus refuses broken stanzas with file and line', () => {
  const cases: [string, string, number, RegExp][] = [
    ['a stanza without Package', `${stanza('a')}\nStatus: install ok installed\nVersion: 1\n`, 6, /no Package field/],
    ['a stanza without Status', 'Package: a\nVersion: 1\n', 1, /no Status field/],
    ['an installed stanza without Version', 'Package: a\nStatus: install ok installed\n', 1, /no Version/],
    ['a Status with two words', 'Package: a\nStatus: install installed\nVersion: 1\n', 2, /want flag state/],
    ['an unknown state', 'Package: a\nStatus: install ok happy\nVersion: 1\n', 2, /unknown state/],
    ['an unknown selection', 'Package: a\nStatus: keep ok installed\nVersion: 1\n', 2, /unknown selection/],
    ['an unknown flag', 'Package: a\nStatus: install bad installed\nVersion: 1\n', 2, /unknown flag/],
    ['a line without a colon', 'Package: a\nthis is not a field\n', 2, /Field: value/],
    ['a line starting with a colon', 'Package: a\n: value\n', 2, /Field: value/],
    ['a continuation before any field', ' orphan\nPackage: a\n', 1, /continuation/],
    ['a continued Package field', 'Package: a\n b\nStatus: install ok installed\n', 2, /span several lines/],
    ['a repeated field', 'Package: a\nVersion: 1\nversion: 2\n', 3, /duplicate field/],
    [
      'a package name with a space',
      'Package: a b\nStatus: install ok installed\nVersion: 1\n',
      1,
      /malformed package name/,
    ],
  ];
  for (const [what, text, line, reason] of cases) {
    it(`refuses ${what}`, () => {
      const err = parseError(() => parseDpkgStatus(text, F));
      expect(err.file).toBe(F);
      expect(err.line).toBe(line);
      expect(err.message).toMatch(reason);
      expect(err.message.startsWith(`${F}:${line}: `)).toBe(true);
    });
  }

  it('accepts a stanza without Status where the caller says a status.d file may omit it', () => {
    expect(
      parseDpkgStatus('Package: a\nVersion: 1\nArchitecture: all\n', '/var/lib/dpkg/status.d/a', {
        statusOptional: true,
      })[0]?.state,
    ).toBe('installed');
  });
});

describe('parseDpkgStatus on any input', () => {
  const good = readFileSync(FIXTURE, 'utf8');
  const outcome = (text: string) => {
    try {
      return parseDpkgStatus(text, F);
    } catch (err) {
      expect(err).toBeInstanceOf(DwParseError);
      const e = err as DwParseError;
      expect(e.file).toBe(F);
      expect(e.line).toBeGreaterThanOrEqual(1);
      expect(e.line).toBeLessThanOrEqual(text.split('\n').length);
      return null;
    }
  };

  it('returns items or throws DwParseError naming the file and a real line, for random text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme-ascii', maxLength: 400 }), (s) => void outcome(s)),
      { numRuns: 500 },
    );
  });

  it('does the same for stanza-shaped noise', () => {
    const line = fc.oneof(
      fc.constantFrom(
        '',
        ' ',
        ' .',
        'Package: a',
        'Package: b',
        'Status: install ok installed',
        'Status: hold ok half-installed',
        'Architecture: all',
        'Version: 1',
        'Description: x',
        ' more',
        '\r',
      ),
      fc.string({ maxLength: 20 }),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 40 }), (lines) => void outcome(lines.join('\n'))),
      { numRuns: 1000 },
    );
  });

  it('does the same for every truncation of a real file', () => {
    for (let n = 0; n <= good.length; n += 7) outcome(good.slice(0, n));
  });

  it('does the same for binary input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => void outcome(Buffer.from(b).toString('utf8'))),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => void outcome(Buffer.from(b).toString('latin1'))),
      { numRuns: 300 },
    );
  });
});

function dpkgQueryAbbrevs(): string | null {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${db:Status-Abbrev}\n'], { encoding: 'utf8' });
  } catch {
    return null;
  }
}

describe('parseDpkgStatus on this machine', () => {
  const REAL = '/var/lib/dpkg/status';

  it('parses the real status file and counts as many installed packages as dpkg-query', (ctx) => {
    // Only Debian-family machines have a dpkg database; elsewhere there is nothing to compare with.
    if (!existsSync(REAL)) ctx.skip(`${REAL} does not exist on this machine (not Debian-based)`);
    const abbrevs = dpkgQueryAbbrevs();
    if (abbrevs === null) return ctx.skip('dpkg-query is not runnable on this machine');
    const text = readFileSync(REAL, 'utf8');
    const started = performance.now();
    const items = parseDpkgStatus(text, REAL);
    const ms = performance.now() - started;
    // "ii " is `dpkg-query ... | grep -c '^ii'` with the flag column pinned to ok: a reinstreq
    // package (iiR) is "installed (reinstreq)" here, not "installed".
    const ii = abbrevs.split('\n').filter((l) => l.startsWith('ii ')).length;
    expect(items.filter((i) => i.state === 'installed')).toHaveLength(ii);
    expect(ms).toBeLessThan(2000);
  });
});

describe('parseDpkgStatus speed', () => {
  it('parses a 5 MB status file in one pass', () => {
    const one = readFileSync(FIXTURE, 'utf8');
    const parts: string[] = [];
    for (let i = 0, size = 0; size < 5_000_000; i++) {
      const copy = `${one.replaceAll('Package: ', `Package: p${i}-`)}\n`;
      parts.push(copy);
      size += copy.length;
    }
    const big = parts.join('');
    const started = performance.now();
    const items = parseDpkgStatus(big, F);
    expect(items).toHaveLength(parts.length * 10);
    expect(performance.now() - started).toBeLessThan(3000);
  });
});
