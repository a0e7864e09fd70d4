/** @module The unit file parser and the fold of a timer and its drop-ins into effective [Timer] settings. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseUnitFile, timerSettings, TRIGGER_SEPARATOR } from '../../../agent/parsers/systemd-timer.js';
import { DwParseError } from '../../../shared/errors.js';

const FILE = '/usr/lib/systemd/system/apt-daily.timer';

const APT_DAILY = `[Unit]
Description=Daily apt download activities

[Timer]
OnCalendar=*-*-* 6,18:00
RandomizedDelaySec=12h
Persistent=true

[Install]
WantedBy=timers.target
`;

function settings(...files: string[]): Record<string, string> {
  return timerSettings(files.flatMap((text, i) => parseUnitFile(text, `/drop-in-${i}.conf`)));
}

describe('parseUnitFile', () => {
  it('reads sections and assignments in order, with their line numbers', () => {
    expect(parseUnitFile(APT_DAILY, FILE)).toEqual([
      { section: 'Unit', key: 'Description', value: 'Daily apt download activities', line: 2 },
      { section: 'Timer', key: 'OnCalendar', value: '*-*-* 6,18:00', line: 5 },
      { section: 'Timer', key: 'RandomizedDelaySec', value: '12h', line: 6 },
      { section: 'Timer', key: 'Persistent', value: 'true', line: 7 },
      { section: 'Install', key: 'WantedBy', value: 'timers.target', line: 10 },
    ]);
  });

  it('skips # and ; comments and trims blanks around keys, values and headers', () => {
    expect(parseUnitFile('  [Timer]  \n# c\n  ; c\n  OnCalendar  =  daily  \n', FILE)).toEqual([
      { section: 'Timer', key: 'OnCalendar', value: 'daily', line: 4 },
    ]);
  });

  it('joins a line ending in a backslash with the next, skipping comment lines in between', () => {
    expect(parseUnitFile('[Timer]\nOnCalendar=Mon \\\n# note\n  *-*-* 01:00\n', FILE)).toEqual([
      { section: 'Timer', key: 'OnCalendar', value: 'Mon    *-*-* 01:00', line: 4 },
    ]);
  });

  it('does not continue after an escaped backslash', () => {
    expect(parseUnitFile('[Timer]\nA=x\\\\\nB=y\n', FILE).map((a) => [a.key, a.value])).toEqual([
      ['A', 'x\\\\'],
      ['B', 'y'],
    ]);
  });

  it('parses a continuation left open at the end of the file as it stands', () => {
    expect(parseUnitFile('[Timer]\nOnCalendar=daily \\', FILE)).toEqual([
      { section: 'Timer', key: 'OnCalendar', value: 'daily', line: 2 },
    ]);
  });

  it('accepts CRLF and a byte-order mark', () => {
    expect(parseUnitFile('\ufeff[Timer]\r\nOnBootSec=5min\r\n', FILE)).toEqual([
      { section: 'Timer', key: 'OnBootSec', value: '5min', line: 2 },
    ]);
  });

  it('ignores what systemd ignores with a warning: no "=", no key, an assignment before any section', () => {
    expect(parseUnitFile('Early=1\n[Timer]\njunk line\n=value\nOnCalendar=daily\n', FILE)).toEqual([
      { section: 'Timer', key: 'OnCalendar', value: 'daily', line: 5 },
    ]);
  });

  it('refuses a broken section header, which makes systemd refuse the unit', () => {
    for (const [text, line] of [
      ['[Unit]\nDescription=x\n[Timer\nOnCalendar=daily\n', 3],
      ['[\n', 1],
      ['[Timer]\n[Install] WantedBy=timers.target\n', 2],
    ] as const) {
      let err: unknown;
      try {
        parseUnitFile(text, FILE);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DwParseError);
      expect(err).toMatchObject({ file: FILE, line });
    }
  });
});

describe('timerSettings', () => {
  it('keeps only [Timer], sorted by key', () => {
    expect(settings(APT_DAILY)).toEqual({ OnCalendar: '*-*-* 6,18:00', Persistent: 'true', RandomizedDelaySec: '12h' });
  });

  it('joins a trigger given several times, in order', () => {
    expect(settings('[Timer]\nOnCalendar=Mon..Fri 23:30\nOnCalendar=Sat,Sun 04:00\nOnBootSec=15min\n')).toEqual({
      OnBootSec: '15min',
      OnCalendar: ['Mon..Fri 23:30', 'Sat,Sun 04:00'].join(TRIGGER_SEPARATOR),
    });
  });

  it('lets a drop-in replace the schedule: an empty trigger clears every trigger, calendar and monotonic', () => {
    expect(
      settings(
        APT_DAILY.replace('[Timer]\n', '[Timer]\nOnBootSec=5min\n'),
        '[Timer]\nOnCalendar=\nOnCalendar=*-*-* 03:00\n',
      ),
    ).toEqual({
      OnCalendar: '*-*-* 03:00',
      Persistent: 'true',
      RandomizedDelaySec: '12h',
    });
  });

  it('lets a later file win for other settings, and an empty one reset it to the default', () => {
    expect(settings(APT_DAILY, '[Timer]\nPersistent=false\nRandomizedDelaySec=\n')).toEqual({
      OnCalendar: '*-*-* 6,18:00',
      Persistent: 'false',
    });
  });

  it('adds triggers from a drop-in without an empty assignment', () => {
    expect(settings(APT_DAILY, '[Timer]\nOnCalendar=*-*-* 12:00\n').OnCalendar).toBe(
      ['*-*-* 6,18:00', '*-*-* 12:00'].join(TRIGGER_SEPARATOR),
    );
  });

  it('is empty for a unit without [Timer]', () => {
    expect(settings('[Unit]\nDescription=x\n')).toEqual({});
  });
});

describe('property: any input gives assignments or a DwParseError naming the file and a line', () => {
  function check(text: string): void {
    try {
      const assignments = parseUnitFile(text, FILE);
      for (const a of assignments) {
        expect(a.key).not.toBe('');
        expect(a.line).toBeGreaterThanOrEqual(1);
      }
      const folded = timerSettings(assignments);
      for (const v of Object.values(folded)) expect(typeof v).toBe('string');
    } catch (err) {
      expect(err).toBeInstanceOf(DwParseError);
      const e = err as DwParseError;
      expect(e.file).toBe(FILE);
      expect(e.line).toBeGreaterThanOrEqual(1);
      expect(e.line).toBeLessThanOrEqual(text.split('\n').length);
    }
  }

  const soup = fc
    .array(
      fc.constantFrom(
        '[Timer]',
        '[Unit]',
        '[',
        ']',
        '\n',
        '\r\n',
        '=',
        'OnCalendar',
        'OnBootSec',
        'Persistent',
        'daily',
        '5min',
        '\\',
        '#',
        ';',
        ' ',
        '\ufeff',
        '\u0000',
      ),
      { maxLength: 60 },
    )
    .map((parts) => parts.join(''));

  it('random unicode text', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), check));
  });

  it('random bytes decoded as UTF-8', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => check(Buffer.from(bytes).toString('utf8'))));
  });

  it('unit-shaped soup', () => {
    fc.assert(fc.property(soup, check), { numRuns: 500 });
  });

  it('a real timer cut anywhere', () => {
    fc.assert(fc.property(fc.nat(APT_DAILY.length), (n) => check(APT_DAILY.slice(0, n))));
  });
});
