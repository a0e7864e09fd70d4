/** @module The anacrontab parser: anacron's own line reader and its job and setting lines. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { anacronLines, parseAnacrontab } from '../../../agent/parsers/anacrontab.js';
import { DwParseError } from '../../../shared/errors.js';
import { CronItemSchema } from '../../../shared/schema/items.js';

const FILE = '/etc/anacrontab';

function parse(text: string) {
  return parseAnacrontab(text, FILE);
}

function refusal(text: string): DwParseError {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(DwParseError);
    return err as DwParseError;
  }
  throw new Error('expected a DwParseError');
}

const DEBIAN = `# /etc/anacrontab: configuration file for anacron

# See anacron(8) and anacrontab(5) for details.

SHELL=/bin/sh
HOME=/root
LOGNAME=root

# These replace cron's entries
1\t5\tcron.daily\trun-parts --report /etc/cron.daily
7\t10\tcron.weekly\trun-parts --report /etc/cron.weekly
@monthly\t15\tcron.monthly\trun-parts --report /etc/cron.monthly
`;

describe('anacrontab', () => {
  it("reads Debian's default: settings, numeric and named periods, keyed by job-id", () => {
    expect(parse(DEBIAN)).toEqual([
      { key: `${FILE} env SHELL`, kind: 'env', file: FILE, name: 'SHELL', value: '/bin/sh' },
      { key: `${FILE} env HOME`, kind: 'env', file: FILE, name: 'HOME', value: '/root' },
      { key: `${FILE} env LOGNAME`, kind: 'env', file: FILE, name: 'LOGNAME', value: 'root' },
      {
        key: `${FILE} cron.daily`,
        kind: 'entry',
        file: FILE,
        schedule: 'period=1 delay=5',
        user: 'root',
        command: 'run-parts --report /etc/cron.daily',
      },
      {
        key: `${FILE} cron.weekly`,
        kind: 'entry',
        file: FILE,
        schedule: 'period=7 delay=10',
        user: 'root',
        command: 'run-parts --report /etc/cron.weekly',
      },
      {
        key: `${FILE} cron.monthly`,
        kind: 'entry',
        file: FILE,
        schedule: 'period=@monthly delay=15',
        user: 'root',
        command: 'run-parts --report /etc/cron.monthly',
      },
    ]);
  });

  it("reads RHEL's START_HOURS_RANGE and RANDOM_DELAY as plain settings", () => {
    const items = parse(
      'RANDOM_DELAY=45\nSTART_HOURS_RANGE=3-22\n1\t5\tcron.daily\t\tnice run-parts /etc/cron.daily\n',
    );
    expect(items.map((i) => [i.key, i.value ?? i.schedule])).toEqual([
      [`${FILE} env RANDOM_DELAY`, '45'],
      [`${FILE} env START_HOURS_RANGE`, '3-22'],
      [`${FILE} cron.daily`, 'period=1 delay=5'],
    ]);
  });

  it('keys by job-id, so a new period, delay or command is a modification of the same job', () => {
    expect(parse('1 5 backup /bin/a\n')[0]!.key).toBe(parse('7 30 backup /bin/b\n')[0]!.key);
  });

  it('keeps a setting exactly as anacron passes it on: blanks after = and quotes included', () => {
    expect(parse('  SHELL = /bin/bash  \nMAILTO="ops"\n').map((i) => [i.name, i.value])).toEqual([
      ['SHELL', ' /bin/bash  '],
      ['MAILTO', '"ops"'],
    ]);
  });

  it.each([
    ['@daily', '@daily'],
    ['@weekly', '@weekly'],
    ['@monthly', '@monthly'],
    ['@yearly', '@yearly'],
    ['@annually', '@yearly'],
    ['@annualy', '@yearly'],
  ])('reads period %s as %s', (period, normal) => {
    expect(parse(`${period} 10 job run\n`)[0]!.schedule).toBe(`period=${normal} delay=10`);
  });

  it('normalises numbers, so 07 and 7 are the same period', () => {
    expect(parse('07 010 weekly run\n')[0]!.schedule).toBe('period=7 delay=10');
  });

  it('keeps the command to the end of the line, inner and trailing blanks included', () => {
    expect(parse('1 5 job  echo  a   b \n')[0]!.command).toBe('echo  a   b ');
  });

  it('numbers a job-id used twice (anacron would share one timestamp file between them)', () => {
    expect(parse('1 5 job a\n7 5 job b\n').map((i) => i.key)).toEqual([`${FILE} job`, `${FILE} job #2`]);
  });

  it('joins a line ending in a backslash with the next, as anacron does, and drops other backslashes', () => {
    expect(parse('1 5 long run-parts \\\n  /etc/cron.daily\n2 5 sed sed s/\\./x/\n').map((i) => i.command)).toEqual([
      'run-parts    /etc/cron.daily',
      'sed s/./x/',
    ]);
    expect(anacronLines('a\\\nb\nc\\')).toEqual([
      { text: 'a b', line: 1 },
      { text: 'c\\', line: 3 },
    ]);
  });

  it('accepts CRLF', () => {
    expect(parse('SHELL=/bin/sh\r\n1 5 job run\r\n').map((i) => i.value ?? i.command)).toEqual(['/bin/sh', 'run']);
  });

  it.each([
    ['1 5', 1, 'neither NAME=value nor "period delay job-id command"'],
    ['1 5 job', 1, 'neither NAME=value nor "period delay job-id command"'],
    ['x 5 job run', 1, 'neither NAME=value nor "period delay job-id command"'],
    ['1 5 a/b run', 1, 'neither NAME=value nor "period delay job-id command"'],
    ['@fortnightly 5 job run', 1, 'unknown period "@fortnightly" (anacron knows @daily, @weekly, @monthly, @yearly)'],
    ['99999999999 5 job run', 1, 'period 99999999999 is too large'],
    ['1 99999999999 job run', 1, 'delay 99999999999 is too large'],
  ])('refuses %j', (line, at, reason) => {
    const err = refusal(`${line}\n`);
    expect(err.message).toBe(`${FILE}:${at}: ${reason}`);
  });

  it('reports the physical line a bad logical line starts on', () => {
    expect(refusal('# x\n1 5 ok \\\n  run\n\nbroken\n').line).toBe(5);
  });
});

describe('property: any input gives items or a DwParseError naming the file and a line', () => {
  function check(text: string): void {
    try {
      const items = parse(text);
      for (const item of items) expect(CronItemSchema.safeParse(item).success).toBe(true);
      expect(new Set(items.map((i) => i.key)).size).toBe(items.length);
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
        '1',
        '07',
        '@daily',
        '@x',
        ' ',
        '\t',
        '\n',
        '\r\n',
        '\\',
        '\\\n',
        'job',
        'a/b',
        '=',
        'SHELL',
        '#',
        'run-parts',
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

  it('anacrontab-shaped soup', () => {
    fc.assert(fc.property(soup, check), { numRuns: 500 });
  });

  it('a real anacrontab cut anywhere', () => {
    fc.assert(fc.property(fc.nat(DEBIAN.length), (n) => check(DEBIAN.slice(0, n))));
  });
});
