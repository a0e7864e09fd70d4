/** @module rpm install-time query output: EVRs, install-only packages, names rpm does not have, and broken lines. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RPM_INSTALLTIME_FORMAT, parseRpmInstallTimes } from '../../../agent/parsers/rpm-installtime.js';
import { DwParseError } from '../../../shared/errors.js';

const SRC = 'rpm -q --dbpath /var/lib/rpm';
const row = (...f: string[]) => `${f.join('\t')}\n`;

describe('parseRpmInstallTimes', () => {
  it('asks rpm for six tab-separated fields, one header per line', () => {
    expect(RPM_INSTALLTIME_FORMAT).toBe('%{NAME}\\t%{ARCH}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{INSTALLTIME}\\n');
  });

  it('reads headers, spelling versions as the packages collector does, and skips names rpm does not have', () => {
    // rpm prints "package X is not installed" on stdout, among the results (rpm 4.18).
    const out =
      row('strace', 'x86_64', '(none)', '6.1', '1.fc39', '1709259247') +
      'package telnet.x86_64 is not installed\n' +
      row('kernel-core', 'x86_64', '(none)', '6.7.5', '200.fc39', '1708000000') +
      row('kernel-core', 'x86_64', '(none)', '6.7.7', '200.fc39', '1709300000') +
      row('vim-enhanced', 'x86_64', '2', '9.1.113', '1.fc39', '1709400000') +
      row('gpg-pubkey', '(none)', '(none)', '18b8e74c', '62f2920f', '1700000000');
    const r = parseRpmInstallTimes(out, SRC);
    expect(r.errors).toEqual([]);
    expect(r.entries).toEqual([
      { name: 'strace', arch: 'x86_64', evr: '6.1-1.fc39', installTime: 1709259247 },
      { name: 'kernel-core', arch: 'x86_64', evr: '6.7.5-200.fc39', installTime: 1708000000 },
      { name: 'kernel-core', arch: 'x86_64', evr: '6.7.7-200.fc39', installTime: 1709300000 },
      { name: 'vim-enhanced', arch: 'x86_64', evr: '2:9.1.113-1.fc39', installTime: 1709400000 },
      { name: 'gpg-pubkey', arch: '', evr: '18b8e74c-62f2920f', installTime: 1700000000 },
    ]);
  });

  it('skips a malformed line with an error and keeps the others', () => {
    const out =
      row('a', 'x86_64', '(none)', '1', '1') +
      row('b', 'x86_64', 'x', '1', '1', '5') +
      row('c', 'x86_64', '(none)', '1', '1', 'soon') +
      row('d', 'noarch', '(none)', '1', '1', '7');
    const r = parseRpmInstallTimes(out, SRC);
    expect(r.entries.map((e) => e.name)).toEqual(['d']);
    expect(r.errors.map((e) => e.line)).toEqual([1, 2, 3]);
  });

  it('never throws on random or binary input', () => {
    const check = (text: string) => {
      for (const e of parseRpmInstallTimes(text, SRC).errors) expect(e).toBeInstanceOf(DwParseError);
    };
    fc.assert(fc.property(fc.string({ maxLength: 300 }), check), { numRuns: 500 });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => check(Buffer.from(b).toString('utf8'))),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('\t', '\n', '(none)', 'a', '1', 'package ', ' is not installed'), { maxLength: 60 }),
        (p) => check(p.join('')),
      ),
      { numRuns: 300 },
    );
  });
});
