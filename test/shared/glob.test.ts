/** @module The one glob compiler: every character of a name is ordinary, `*` stays in a segment, `**` crosses them. */
import fc from 'fast-check';
import picomatch from 'picomatch';
import { describe, expect, it } from 'vitest';
import { globMatcher, globRegex } from '../../shared/glob.js';

/** What a name can hold that picomatch's `.` does not match, and the U+FFFD an invalid UTF-8 byte becomes. */
const AWKWARD = ['\n', '\r', '\u2028', '\u2029', '\u0000', '\uFFFD', '\u0085', '\t', ' '];
const unit = fc.oneof(
  fc.constantFrom(...AWKWARD, '/', '.', 'a', 'b', '*', '\\'),
  fc.string({ minLength: 1, maxLength: 1, unit: 'binary' }),
);
const name = fc.string({ unit, minLength: 0, maxLength: 12 });
/** `.` and `..` are not names a directory can hold (and host paths never contain them). */
const isName = (n: string) => n.length > 0 && !n.includes('/') && n !== '.' && n !== '..';

describe('globs match every character of a name', () => {
  it('`dir/*` matches `dir/<name>` exactly when <name> is one path component', () => {
    const star = globMatcher(['dir/*'], 'path');
    fc.assert(
      fc.property(name, (n) => {
        expect(star(`dir/${n}`)).toBe(isName(n));
      }),
      { numRuns: 5000 },
    );
  });

  it('`dir/**` matches everything under dir, whatever its names hold', () => {
    const deep = globMatcher(['/dir/**'], 'path');
    fc.assert(
      fc.property(fc.array(name.filter(isName), { minLength: 1, maxLength: 4 }), (parts) => {
        expect(deep(`/dir/${parts.join('/')}`)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with picomatch wherever picomatch is right (names without line terminators, no trailing slash)', () => {
    const plain = fc
      .string({ unit: fc.constantFrom('/', '.', 'a', 'b', 'c'), minLength: 1, maxLength: 10 })
      .filter((k) => !k.endsWith('/'));
    const glob = fc.constantFrom(
      '/a/**',
      '/a/*',
      '**',
      '*',
      '/**',
      '/a/b',
      '**/b',
      '/a/{b,c}',
      'a/*.b',
      '/*/**',
      '**/*.c',
      '/a/?',
    );
    fc.assert(
      fc.property(glob, plain, (g, k) => {
        expect(globMatcher([g], 'path')(k), `${g} ${k}`).toBe(picomatch.isMatch(k, g, { dot: true }));
      }),
      { numRuns: 5000 },
    );
  });

  it.each(['\n', '\r', '\u2028', '\u2029', '\u0000', '\uFFFD'])(
    'a name holding %j escapes neither `*`, `**` nor a negation',
    (c) => {
      const key = `/usr/bin/sshd${c}backdoor`;
      for (const g of ['/usr/**', '/usr/bin/*', '/usr/bin/sshd*', '**', '/**', '/usr/**/*', '/usr/bin/?????????????'])
        expect(globMatcher([g], 'path')(key), g).toBe(true);
      expect(globRegex('!/etc/**', 'path').test(key)).toBe(true);
      expect(globMatcher(['/usr/bin/*'], 'path')(`/usr/bin/a${c}/b`)).toBe(false);
    },
  );

  it('a `*` never matches a trailing slash (a host path has none)', () => {
    expect(globMatcher(['/etc/*'], 'path')('/etc/x/')).toBe(false);
    expect(globMatcher(['/etc/[ab]'], 'path')('/etc/a/')).toBe(false);
  });

  it('name style: the key is one segment, `*` crosses `/`, and a `/` in the glob is a plain slash', () => {
    const m = (g: string, k: string) => globMatcher([g], 'name')(k);
    expect(m('net.*', 'net.ipv4.conf.eth0/100.rp_filter')).toBe(true);
    expect(m('net.ipv4.conf.eth0/100.*', 'net.ipv4.conf.eth0/100.rp_filter')).toBe(true);
    expect(m('net.ipv4.conf.eth0/100.*', 'net.ipv4.conf.eth0100.rp_filter')).toBe(false);
    expect(m('rpm/*', 'rpm/bash:x86_64')).toBe(true);
    expect(m('openssl:*', 'openssl:amd64\n')).toBe(true);
    expect(m('a?b', 'a\u2028b')).toBe(true);
    fc.assert(
      fc.property(
        name.filter((n) => n.length > 0),
        (n) => {
          expect(m('pkg-*', `pkg-${n}`)).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('a key equal to a glob matches it, even when the glob has glob syntax', () => {
    expect(globMatcher(['/etc/[x'], 'path')('/etc/[x')).toBe(true);
    expect(globMatcher([], 'path')('/x')).toBe(false);
  });

  it('strict: a glob that would quietly match nothing is an error', () => {
    for (const g of ['/etc/[abc', 'net.{a,b', '+(a', 'a\\'])
      expect(() => globRegex(g, 'path', { strict: true }), g).toThrow();
    expect(globRegex('a\\\\', 'path', { strict: true }).test('a\\')).toBe(true);
    expect(() => globRegex('/etc/[abc', 'path')).not.toThrow();
  });
});
