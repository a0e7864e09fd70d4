/** @module dpkg.log parsing: every line kind dpkg writes, old pre-multi-arch lines, and broken lines skipped, never fatal. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDpkgLog, type DpkgLogEntry } from '../../../agent/parsers/dpkg-log.js';
import { DwParseError } from '../../../shared/errors.js';

const F = '/var/log/dpkg.log';

/** Real lines from a Debian 12 host's dpkg.log. */
const REAL = `2025-06-24 14:36:25 startup archives unpack
2025-06-24 14:36:25 upgrade libsystemd0:amd64 252.36-1~deb12u1 252.38-1~deb12u1
2025-06-24 14:36:25 status triggers-pending libc-bin:amd64 2.36-9+deb12u10
2025-06-24 14:36:25 status half-configured libsystemd0:amd64 252.36-1~deb12u1
2025-06-24 14:36:29 install lsb-release:all <none> 12.0-1
2026-05-09 07:28:50 configure tzdata:all 2025b-0+deb12u2 <none>
2026-05-09 07:28:51 trigproc libc-bin:amd64 2.36-9+deb12u10 <none>
2024-03-03 11:00:00 remove telnet:amd64 0.17-44 <none>
2024-03-03 11:00:01 purge telnet:amd64 0.17-44 <none>
2024-03-03 11:00:01 status not-installed telnet:amd64 <none>
2024-03-02 09:00:03 conffile /etc/ssl/openssl.cnf keep
`;

describe('parseDpkgLog', () => {
  const { entries, errors } = parseDpkgLog(REAL, F);

  it('reads every kind of line dpkg writes, in file order', () => {
    expect(errors).toEqual([]);
    expect(entries.map((e) => e.kind)).toEqual([
      'startup',
      'action',
      'status',
      'status',
      'action',
      'action',
      'action',
      'action',
      'action',
      'status',
      'conffile',
    ]);
    expect(entries[0]).toEqual({ kind: 'startup', line: 1, at: '2025-06-24 14:36:25', detail: 'archives unpack' });
  });

  it('gives each action the versions before and after it', () => {
    const actions = entries.filter((e) => e.kind === 'action');
    expect(actions.map((a) => [a.action, `${a.name}:${a.arch}`, a.fromVersion, a.toVersion])).toEqual([
      ['upgrade', 'libsystemd0:amd64', '252.36-1~deb12u1', '252.38-1~deb12u1'],
      ['install', 'lsb-release:all', undefined, '12.0-1'],
      ['configure', 'tzdata:all', undefined, '2025b-0+deb12u2'],
      ['trigproc', 'libc-bin:amd64', undefined, '2.36-9+deb12u10'],
      ['remove', 'telnet:amd64', '0.17-44', undefined],
      ['purge', 'telnet:amd64', '0.17-44', undefined],
    ]);
    // `<none>` is an absent version, not a version named "<none>".
    expect(actions[1]).not.toHaveProperty('fromVersion');
  });

  it('reads status lines, including a not-installed one without a version', () => {
    expect(entries[2]).toEqual({
      kind: 'status',
      line: 3,
      at: '2025-06-24 14:36:25',
      state: 'triggers-pending',
      name: 'libc-bin',
      arch: 'amd64',
      version: '2.36-9+deb12u10',
    });
    expect(entries[9]).toEqual({
      kind: 'status',
      line: 10,
      at: '2024-03-03 11:00:01',
      state: 'not-installed',
      name: 'telnet',
      arch: 'amd64',
    });
  });

  it('keeps a conffile path whole even with spaces in it', () => {
    expect(parseDpkgLog('2024-03-02 09:00:03 conffile /etc/odd dir/x.conf install\n', F).entries[0]).toMatchObject({
      path: '/etc/odd dir/x.conf',
      decision: 'install',
    });
  });

  it('reads lines of dpkg before multi-arch, which wrote bare package names', () => {
    const r = parseDpkgLog('2011-02-03 10:00:00 install vim <none> 2:7.2.445+hg~cb94c42-1\n', F);
    expect(r.entries[0]).toMatchObject({
      action: 'install',
      name: 'vim',
      arch: '',
      toVersion: '2:7.2.445+hg~cb94c42-1',
    });
  });

  it('keeps epochs, tildes and pluses in versions', () => {
    const r = parseDpkgLog('2024-03-05 13:00:01 upgrade vim:amd64 2:9.0.1378-2+deb12u2 2:9.0.1378-2\n', F);
    expect(r.entries[0]).toMatchObject({ fromVersion: '2:9.0.1378-2+deb12u2', toVersion: '2:9.0.1378-2' });
  });

  it('skips a malformed line with an error naming file and line, and keeps the lines around it', () => {
    const text = [
      '2024-03-01 02:14:07 install strace:amd64 <none> 6.1-0.1',
      '2024-03-01 02:14:0 corrupted by a full disk',
      'no time at all',
      '2024-13-01 02:14:07 install x:amd64 <none> 1',
      '2024-02-30 02:14:07 install x:amd64 <none> 1',
      '2024-03-01 25:14:07 install x:amd64 <none> 1',
      '2024-03-01 02:14:07 frobnicate x:amd64 1 2',
      '2024-03-01 02:14:07 install x:amd64 <none>',
      '2024-03-01 02:14:07 status installed x:amd64',
      '2024-03-01 02:14:07 install :amd64 <none> 1',
      '2024-03-01 02:14:07 install x: <none> 1',
      '2024-03-01 02:14:07 install x:amd64:i386 <none> 1',
      '2024-03-01 02:14:07 startup',
      '2024-03-01 02:14:07 conffile relative/path keep',
      '2024-03-01 02:14:08 configure strace:amd64 6.1-0.1 <none>',
    ].join('\n');
    const r = parseDpkgLog(text, F);
    expect(r.entries.map((e) => e.line)).toEqual([1, 15]);
    expect(r.errors.map((e) => e.line)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    for (const e of r.errors) expect(e).toBeInstanceOf(DwParseError);
    expect(r.errors[0]!.message).toMatch(/^\/var\/log\/dpkg\.log:2: malformed time/);
    expect(r.errors[5]!.message).toMatch(/unknown dpkg log word "frobnicate"/);
  });

  it('accepts CRLF line ends, blank lines, a leap second and a last line without a newline', () => {
    const r = parseDpkgLog(
      '\r\n2016-12-31 23:59:60 install a:amd64 <none> 1\r\n\n2017-01-01 00:00:00 remove a:amd64 1 <none>',
      F,
    );
    expect(r.errors).toEqual([]);
    expect(r.entries.map((e) => [e.line, e.at])).toEqual([
      [2, '2016-12-31 23:59:60'],
      [4, '2017-01-01 00:00:00'],
    ]);
  });

  it('drops a line cut off mid-way (a truncated rotation) without losing the earlier ones', () => {
    const full = REAL.trimEnd();
    const cut = full.slice(0, full.lastIndexOf('\n') + 20);
    const r = parseDpkgLog(cut, F);
    expect(r.entries).toHaveLength(10);
    expect(r.errors).toHaveLength(1);
  });
});

describe('parseDpkgLog properties', () => {
  const check = (text: string) => {
    const r = parseDpkgLog(text, F);
    const lines = text.split('\n').length;
    for (const e of r.errors) {
      expect(e).toBeInstanceOf(DwParseError);
      expect(e.line).toBeGreaterThanOrEqual(1);
      expect(e.line).toBeLessThanOrEqual(lines);
    }
    for (const e of r.entries) expect(e.at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  };

  it('never throws on random, truncated or binary input', () => {
    fc.assert(fc.property(fc.string({ maxLength: 400 }), check), { numRuns: 500 });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => check(Buffer.from(b).toString('utf8'))),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.constantFrom(
              '2024-03-01',
              '02:14:07',
              ' ',
              '\n',
              'install',
              'status',
              '<none>',
              'a:amd64',
              ':',
              '\r',
              '\t',
            ),
            fc.string({ maxLength: 6 }),
          ),
          { maxLength: 80 },
        ),
        (parts) => check(parts.join('')),
      ),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: REAL.length }), (n) => check(REAL.slice(0, n))),
      { numRuns: 200 },
    );
  });

  it('reads back every well-formed action line it is given, whatever surrounds it', () => {
    const token = fc.stringMatching(/^[a-z0-9][a-z0-9.+~-]{0,10}$/);
    const line = fc.record({
      action: fc.constantFrom('install', 'upgrade', 'remove', 'purge', 'configure', 'trigproc'),
      name: token,
      arch: fc.constantFrom('amd64', 'all', 'i386'),
      v1: token,
      v2: fc.oneof(token, fc.constant('<none>')),
      day: fc.integer({ min: 1, max: 28 }),
    });
    fc.assert(
      fc.property(
        fc.array(line, { maxLength: 30 }),
        fc.array(
          fc.string({ maxLength: 30 }).filter((s) => !s.includes('\n')),
          { maxLength: 10 },
        ),
        (ls, noise) => {
          const good = ls.map(
            (l) => `2024-02-${String(l.day).padStart(2, '0')} 10:00:00 ${l.action} ${l.name}:${l.arch} ${l.v1} ${l.v2}`,
          );
          const text = [...good, ...noise].join('\n');
          const actions = parseDpkgLog(text, F).entries.filter(
            (e): e is Extract<DpkgLogEntry, { kind: 'action' }> => e.kind === 'action',
          );
          expect(actions.slice(0, ls.length).map((a) => [a.action, a.name, a.arch])).toEqual(
            ls.map((l) => [l.action, l.name, l.arch]),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
