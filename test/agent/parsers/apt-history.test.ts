/** @module apt history.log parsing: stanzas, package lists of every action, who ran it, and broken stanzas skipped. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_COMMAND_LINE, parseAptHistory } from '../../../agent/parsers/apt-history.js';
import { DwParseError } from '../../../shared/errors.js';

const F = '/var/log/apt/history.log';

/** Shaped as apt 2.6 writes it: a blank line before each stanza, two spaces inside the dates. */
const REAL = `
Start-Date: 2025-06-24  14:36:25
Commandline: apt-get -qqy upgrade
Upgrade: libsystemd0:amd64 (252.36-1~deb12u1, 252.38-1~deb12u1), libudev1:amd64 (252.36-1~deb12u1, 252.38-1~deb12u1)
End-Date: 2025-06-24  14:36:25

Start-Date: 2024-03-01  02:14:05
Commandline: apt-get install strace
Requested-By: alice (1000)
Install: strace:amd64 (6.1-0.1), libunwind8:amd64 (1.6.2-3, automatic)
End-Date: 2024-03-01  02:14:09

Start-Date: 2024-03-03  10:59:59
Commandline: apt-get purge telnet nginx
Requested-By: bob (1001)
Remove: nginx:amd64 (1.22.1-9)
Purge: telnet:amd64 (0.17-44)
End-Date: 2024-03-03  11:00:02

Start-Date: 2024-03-05  12:59:59
Commandline: apt-get install --reinstall vim vim-runtime=2:9.0.1378-2
Reinstall: vim:amd64 (2:9.0.1378-2+deb12u2)
Downgrade: vim-runtime:amd64 (2:9.0.1378-2+deb12u2, 2:9.0.1378-2)
End-Date: 2024-03-05  13:00:05
`;

describe('parseAptHistory', () => {
  const { stanzas, errors } = parseAptHistory(REAL, F);

  it('reads one stanza per apt run, with its times, command line and user', () => {
    expect(errors).toEqual([]);
    expect(stanzas.map((s) => [s.line, s.start, s.end, s.commandLine, s.requestedBy])).toEqual([
      [2, '2025-06-24 14:36:25', '2025-06-24 14:36:25', 'apt-get -qqy upgrade', undefined],
      [7, '2024-03-01 02:14:05', '2024-03-01 02:14:09', 'apt-get install strace', 'alice (1000)'],
      [13, '2024-03-03 10:59:59', '2024-03-03 11:00:02', 'apt-get purge telnet nginx', 'bob (1001)'],
      [
        20,
        '2024-03-05 12:59:59',
        '2024-03-05 13:00:05',
        'apt-get install --reinstall vim vim-runtime=2:9.0.1378-2',
        undefined,
      ],
    ]);
  });

  it('reads each list with the versions its action carries', () => {
    expect(stanzas.flatMap((s) => s.packages)).toEqual([
      {
        action: 'upgrade',
        name: 'libsystemd0',
        arch: 'amd64',
        fromVersion: '252.36-1~deb12u1',
        toVersion: '252.38-1~deb12u1',
      },
      {
        action: 'upgrade',
        name: 'libudev1',
        arch: 'amd64',
        fromVersion: '252.36-1~deb12u1',
        toVersion: '252.38-1~deb12u1',
      },
      { action: 'install', name: 'strace', arch: 'amd64', toVersion: '6.1-0.1' },
      { action: 'install', name: 'libunwind8', arch: 'amd64', toVersion: '1.6.2-3', automatic: true },
      { action: 'remove', name: 'nginx', arch: 'amd64', fromVersion: '1.22.1-9' },
      { action: 'purge', name: 'telnet', arch: 'amd64', fromVersion: '0.17-44' },
      { action: 'reinstall', name: 'vim', arch: 'amd64', toVersion: '2:9.0.1378-2+deb12u2' },
      {
        action: 'downgrade',
        name: 'vim-runtime',
        arch: 'amd64',
        fromVersion: '2:9.0.1378-2+deb12u2',
        toVersion: '2:9.0.1378-2',
      },
    ]);
  });

  it('keeps a run apt did not finish: no End-Date, and the next Start-Date opens a new stanza even without a blank line', () => {
    const r = parseAptHistory(
      'Start-Date: 2024-01-01  10:00:00\nInstall: a:amd64 (1)\nStart-Date: 2024-01-02  10:00:00\nInstall: b:amd64 (2)\nEnd-Date: 2024-01-02  10:00:01\n',
      F,
    );
    expect(r.errors).toEqual([]);
    expect(r.stanzas.map((s) => [s.start, s.end, s.packages.map((p) => p.name)])).toEqual([
      ['2024-01-01 10:00:00', undefined, ['a']],
      ['2024-01-02 10:00:00', '2024-01-02 10:00:01', ['b']],
    ]);
  });

  it('records an Error field, and ignores fields it does not know', () => {
    const r = parseAptHistory(
      'Start-Date: 2024-03-06  10:00:00\nComment: future field\nInstall: broken:amd64 (1.0)\nError: Sub-process /usr/bin/dpkg returned an error code (1)\n',
      F,
    );
    expect(r.errors).toEqual([]);
    expect(r.stanzas[0]).toMatchObject({
      error: 'Sub-process /usr/bin/dpkg returned an error code (1)',
      packages: [{ name: 'broken' }],
    });
  });

  it('drops a stanza whose Start-Date is missing or malformed, keeping its neighbours', () => {
    const r = parseAptHistory(
      'Commandline: apt-get install x\nInstall: x:amd64 (1)\n\nStart-Date: 2024-02-30  10:00:00\nInstall: y:amd64 (1)\n\nStart-Date: 2024-03-01  10:00:00\nInstall: z:amd64 (1)\n',
      F,
    );
    expect(r.stanzas.map((s) => s.packages[0]!.name)).toEqual(['z']);
    expect(r.errors.map((e) => [e.line, e.message])).toEqual([
      [1, `${F}:1: stanza has no valid Start-Date; skipped`],
      [4, `${F}:4: malformed Start-Date "2024-02-30  10:00:00"`],
      [4, `${F}:4: stanza has no valid Start-Date; skipped`],
    ]);
  });

  it('keeps the entries before a malformed one in a list, and reports it', () => {
    const r = parseAptHistory(
      'Start-Date: 2024-03-01  10:00:00\nInstall: a:amd64 (1), b:amd64 1.0, c:amd64 (3)\nUpgrade: d:amd64 (1), e:amd64 (1, 2)\nRemove: f:amd64 (1, 2, 3)\nnot a field\n',
      F,
    );
    expect(r.stanzas[0]!.packages.map((p) => p.name)).toEqual(['a']);
    expect(r.errors.map((e) => e.line)).toEqual([2, 3, 4, 5]);
    expect(r.errors[1]!.message).toMatch(/upgrade of d:amd64 needs "\(old, new\)"/);
  });

  it('cuts a pasted novel of a command line, so one run cannot bloat every report', () => {
    const r = parseAptHistory(
      `Start-Date: 2024-03-01  10:00:00\nCommandline: apt-get install ${'x '.repeat(5000)}\n`,
      F,
    );
    expect(r.stanzas[0]!.commandLine!.length).toBe(MAX_COMMAND_LINE + 1);
  });

  it('accepts CRLF line ends', () => {
    const r = parseAptHistory(REAL.replace(/\n/g, '\r\n'), F);
    expect(r.errors).toEqual([]);
    expect(r.stanzas).toEqual(stanzas);
  });
});

describe('parseAptHistory properties', () => {
  const check = (text: string) => {
    const r = parseAptHistory(text, F);
    for (const e of r.errors) expect(e).toBeInstanceOf(DwParseError);
    for (const s of r.stanzas) {
      expect(s.start).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      for (const p of s.packages) expect(p.name).not.toBe('');
    }
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
              'Start-Date: 2024-03-01  10:00:00',
              'Install: ',
              'Upgrade: ',
              'a:amd64',
              ' (',
              ')',
              ', ',
              '1.0',
              'automatic',
              '\n',
              '\n\n',
              ':',
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
});
