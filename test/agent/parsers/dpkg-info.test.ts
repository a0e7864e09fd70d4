/** @module dpkg's file databases: .list, .md5sums, diversions and the Conffiles of the status file. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseDpkgConffiles,
  parseDpkgDiversions,
  parseDpkgList,
  parseDpkgMd5sums,
} from '../../../agent/parsers/dpkg-info.js';
import { DwParseError } from '../../../shared/errors.js';

describe('parseDpkgList', () => {
  it('returns every listed path but the root, as written', () => {
    const r = parseDpkgList(
      '/.\n/bin\n/bin/bash\n/usr/share/doc/a file with spaces\n/etc/\u00e9t\u00e9.conf\n',
      'bash.list',
    );
    expect(r).toEqual({
      paths: ['/bin', '/bin/bash', '/usr/share/doc/a file with spaces', '/etc/\u00e9t\u00e9.conf'],
      errors: [],
    });
  });

  it('reports a line that is not an absolute path and keeps the rest', () => {
    const r = parseDpkgList('/.\nbin/bash\n/usr\r\n', 'bash.list');
    expect(r.paths).toEqual(['/usr']);
    expect(r.errors.map((e) => e.message)).toEqual(['bash.list:2: expected an absolute path, got "bin/bash"']);
  });
});

describe('parseDpkgMd5sums', () => {
  it('maps absolute paths to hashes, in md5sum text and binary mode', () => {
    const r = parseDpkgMd5sums(
      '0123456789abcdef0123456789ABCDEF  usr/bin/strace\nfedcba9876543210fedcba9876543210 *usr/share/doc/strace/a b\n',
      'strace.md5sums',
    );
    expect(r.errors).toEqual([]);
    expect([...r.sums]).toEqual([
      ['/usr/bin/strace', '0123456789abcdef0123456789abcdef'],
      ['/usr/share/doc/strace/a b', 'fedcba9876543210fedcba9876543210'],
    ]);
  });

  it('skips a line without a hash and a path', () => {
    const r = parseDpkgMd5sums(
      'nothex  usr/bin/x\n0123456789abcdef0123456789abcdef\n0123456789abcdef0123456789abcdef usr/bin/one-space\n',
      'x.md5sums',
    );
    expect(r.sums.size).toBe(0);
    expect(r.errors.map((e) => e.line)).toEqual([1, 2, 3]);
  });
});

describe('parseDpkgDiversions', () => {
  it('reads from, to and package in threes, local diversions included', () => {
    const r = parseDpkgDiversions(
      '/usr/bin/pg_config\n/usr/bin/pg_config.libpq-dev\npostgresql-common\n/etc/issue\n/etc/issue.dist\n:\n',
      'diversions',
    );
    expect(r).toEqual({
      diversions: [
        { from: '/usr/bin/pg_config', to: '/usr/bin/pg_config.libpq-dev', by: 'postgresql-common' },
        { from: '/etc/issue', to: '/etc/issue.dist', by: ':' },
      ],
      errors: [],
    });
  });

  it('reports an incomplete last diversion and keeps the complete ones', () => {
    const r = parseDpkgDiversions('/a\n/a.real\npkg\n/b\n/b.real\n', 'diversions');
    expect(r.diversions).toEqual([{ from: '/a', to: '/a.real', by: 'pkg' }]);
    expect(r.errors.map((e) => e.line)).toEqual([4]);
  });

  it('is empty for an empty file', () => {
    expect(parseDpkgDiversions('', 'diversions')).toEqual({ diversions: [], errors: [] });
  });
});

describe('parseDpkgConffiles', () => {
  const STATUS = `Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Conffiles:
 /etc/issue 0123456789abcdef0123456789abcdef
 /etc/debian_version fedcba9876543210fedcba9876543210 obsolete
 /etc/update-motd.d/10-uname 00112233445566778899aabbccddeeff remove-on-upgrade
 /etc/being unpacked newconffile
Description: Debian base system
 Conffiles: in a description is not a field.

Package: openssl
Architecture: amd64
Conffiles:
 /etc/ssl/openssl.cnf 5e77f33b4e5c8d3bc3e5c1d1cd1c3a2f

Package: other
Conffiles:
 /etc/other.conf 5e77f33b4e5c8d3bc3e5c1d1cd1c3a2f
`;

  it('returns the current conffile hashes of the wanted packages only, obsolete ones left out', () => {
    const r = parseDpkgConffiles(STATUS, '/var/lib/dpkg/status', new Set(['base-files', 'openssl']));
    expect(r.errors).toEqual([]);
    expect(r.packages.map((p) => [p.name, p.arch, [...p.md5]])).toEqual([
      [
        'base-files',
        'amd64',
        [
          ['/etc/issue', '0123456789abcdef0123456789abcdef'],
          ['/etc/update-motd.d/10-uname', '00112233445566778899aabbccddeeff'],
        ],
      ],
      ['openssl', 'amd64', [['/etc/ssl/openssl.cnf', '5e77f33b4e5c8d3bc3e5c1d1cd1c3a2f']]],
    ]);
  });

  it('skips a conffile line it cannot read', () => {
    const r = parseDpkgConffiles(
      'Package: a\nConffiles:\n /etc/a nothex\n relative 0123456789abcdef0123456789abcdef\n',
      'status',
      new Set(['a']),
    );
    expect(r.packages).toEqual([]);
    expect(r.errors.map((e) => e.line)).toEqual([3, 4]);
  });
});

describe('dpkg info parsers never throw', () => {
  const inputs = [
    fc.string({ maxLength: 300 }),
    fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b).toString('utf8')),
    fc
      .array(
        fc.constantFrom(
          '/',
          'a',
          ' ',
          '\n',
          ':',
          'Conffiles:',
          'Package: a',
          '0123456789abcdef0123456789abcdef',
          '  ',
          '\r',
        ),
        { maxLength: 60 },
      )
      .map((p) => p.join('')),
  ];
  it('on random, truncated or binary input', () => {
    for (const input of inputs) {
      fc.assert(
        fc.property(input, (text) => {
          for (const r of [
            parseDpkgList(text, 'f'),
            parseDpkgMd5sums(text, 'f'),
            parseDpkgDiversions(text, 'f'),
            parseDpkgConffiles(text, 'f', new Set(['a'])),
          ]) {
            for (const e of r.errors) expect(e).toBeInstanceOf(DwParseError);
          }
        }),
        { numRuns: 300 },
      );
    }
  });
});
