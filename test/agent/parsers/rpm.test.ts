/** @module rpm query output parsing: EVR versions, multilib keys, install-only packages and signing keys. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RPM_QUERY_FORMAT, parseRpmQuery } from '../../../agent/parsers/rpm.js';
import { DwParseError } from '../../../shared/errors.js';
import { PackageItemSchema } from '../../../shared/schema/items.js';
import { parseError } from '../../helpers/parse-error.js';

const SRC = 'rpm -qa --dbpath /var/lib/rpm';
const row = (...f: string[]) => `${f.join('\t')}\n`;

/** Recorded from `rpm --dbpath <copy of ../shared/fixtures/rpm-fedora33>/var/lib/rpm -qa --queryformat RPM_QUERY_FORMAT` (rpm 4.18). */
const FEDORA33 = [
  ['systemd-rpm-macros', '(none)', '246.6', '3.fc33', 'noarch'],
  ['rpm', '(none)', '4.16.0', '1.fc33', 'x86_64'],
  ['rpm-libs', '(none)', '4.16.0', '1.fc33', 'x86_64'],
  ['rpm-plugin-selinux', '(none)', '4.16.0', '1.fc33', 'x86_64'],
  ['rpm-plugin-systemd-inhibit', '(none)', '4.16.0', '1.fc33', 'x86_64'],
  ['deltarpm', '(none)', '3.6.2', '7.fc33', 'x86_64'],
  ['rpm-build-libs', '(none)', '4.16.0', '1.fc33', 'x86_64'],
  ['rpm-sign-libs', '(none)', '4.16.0', '1.fc33', 'x86_64'],
  ['python3-rpm', '(none)', '4.16.0', '1.fc33', 'x86_64'],
]
  .map((f) => row(...f))
  .join('');

describe('RPM_QUERY_FORMAT', () => {
  it('asks for the five fields the parser reads, tab-separated, one header per line', () => {
    expect(RPM_QUERY_FORMAT).toBe('%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n');
  });
});

describe('parseRpmQuery', () => {
  it('reads recorded Fedora 33 output into sorted, schema-valid items', () => {
    const items = parseRpmQuery(FEDORA33, SRC);
    expect(items).toHaveLength(9);
    for (const i of items) PackageItemSchema.parse(i);
    expect(items.map((i) => i.key)).toEqual([...items.map((i) => i.key)].sort());
    expect(items.find((i) => i.key === 'rpm:x86_64')).toEqual({
      key: 'rpm:x86_64',
      manager: 'rpm',
      name: 'rpm',
      arch: 'x86_64',
      version: '4.16.0-1.fc33',
      state: 'installed',
    });
    expect(items.find((i) => i.name === 'systemd-rpm-macros')?.key).toBe('systemd-rpm-macros:noarch');
  });

  it('writes an epoch as EPOCH: and leaves it out when rpm says (none)', () => {
    const items = parseRpmQuery(
      row('openssl', '1', '3.0.7', '27.el9', 'x86_64') + row('bash', '(none)', '5.1.8', '9.el9', 'x86_64'),
      SRC,
    );
    expect(items.map((i) => i.version)).toEqual(['5.1.8-9.el9', '1:3.0.7-27.el9']);
  });

  it('keys multilib copies by architecture', () => {
    const items = parseRpmQuery(
      row('glibc', '(none)', '2.34', '100.el9', 'x86_64') + row('glibc', '(none)', '2.34', '100.el9', 'i686'),
      SRC,
    );
    expect(items.map((i) => i.key)).toEqual(['glibc:i686', 'glibc:x86_64']);
  });

  it('lists every installed version of an install-only package in one item', () => {
    const items = parseRpmQuery(
      row('kernel-core', '(none)', '5.14.0', '427.el9', 'x86_64') +
        row('kernel-core', '(none)', '5.14.0', '362.el9', 'x86_64'),
      SRC,
    );
    expect(items).toEqual([
      {
        key: 'kernel-core:x86_64',
        manager: 'rpm',
        name: 'kernel-core',
        arch: 'x86_64',
        version: '5.14.0-362.el9, 5.14.0-427.el9',
        state: 'installed',
      },
    ]);
  });

  it('records imported signing keys as one gpg-pubkey item listing each key id and date', () => {
    const items = parseRpmQuery(
      row('gpg-pubkey', '(none)', '5a6340b3', '6229229e', '(none)') +
        row('gpg-pubkey', '(none)', 'fd431d51', '4ae0493b', '(none)'),
      SRC,
    );
    expect(items).toEqual([
      {
        key: 'gpg-pubkey',
        manager: 'rpm',
        name: 'gpg-pubkey',
        arch: '',
        version: '5a6340b3-6229229e, fd431d51-4ae0493b',
        state: 'installed',
      },
    ]);
  });

  it('accepts CRLF, blank lines and a missing final newline', () => {
    const text = `\n${FEDORA33.trimEnd().replaceAll('\n', '\r\n')}`;
    expect(parseRpmQuery(text, SRC)).toEqual(parseRpmQuery(FEDORA33, SRC));
    expect(parseRpmQuery('', SRC)).toEqual([]);
  });

  const bad: [string, string, RegExp][] = [
    ['a line with four fields', 'rpm\t(none)\t4.16.0\tx86_64\n', /5 tab-separated fields/],
    ['a non-numeric epoch', row('rpm', 'x', '4', '1', 'x86_64'), /malformed epoch/],
    ['an empty name', row('', '(none)', '4', '1', 'x86_64'), /malformed package name/],
    ['a version with a space', row('rpm', '(none)', '4 1', '1', 'x86_64'), /malformed version/],
  ];
  for (const [what, text, reason] of bad) {
    it(`refuses ${what}, naming the source and line`, () => {
      const err = parseError(() => parseRpmQuery(FEDORA33 + text, SRC));
      expect(err.file).toBe(SRC);
      expect(err.line).toBe(10);
      expect(err.message).toMatch(reason);
    });
  }

  it('returns items or throws DwParseError for random, truncated and binary input', () => {
    const check = (text: string) => {
      try {
        parseRpmQuery(text, SRC);
      } catch (err) {
        expect(err).toBeInstanceOf(DwParseError);
        expect((err as DwParseError).file).toBe(SRC);
        expect((err as DwParseError).line).toBeGreaterThanOrEqual(1);
      }
    };
    fc.assert(fc.property(fc.string({ maxLength: 300 }), check), { numRuns: 500 });
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constantFrom('\t', '\n', '(none)', 'rpm', '1'), fc.string({ maxLength: 8 })), {
          maxLength: 60,
        }),
        (parts) => check(parts.join('')),
      ),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => check(Buffer.from(b).toString('utf8'))),
      { numRuns: 300 },
    );
    for (let n = 0; n <= FEDORA33.length; n++) check(FEDORA33.slice(0, n));
  });
});
