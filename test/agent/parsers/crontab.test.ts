/** @module The crontab parser: cron's own rules for settings, schedules, users and `%`, line by line. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkTimeField,
  parseCrontab,
  parseEnvSetting,
  shown,
  splitCommand,
  TIME_FIELDS,
} from '../../../agent/parsers/crontab.js';
import { DwParseError } from '../../../shared/errors.js';
import { CronItemSchema, type CronItem } from '../../../shared/schema/items.js';

const SYS = '/etc/cron.d/test';
const USER = '/var/spool/cron/crontabs/alice';

function system(text: string): CronItem[] {
  return parseCrontab(text, { file: SYS, hasUserField: true });
}

function user(text: string): CronItem[] {
  return parseCrontab(text, { file: USER, hasUserField: false, user: 'alice' });
}

/** The DwParseError a text raises, for asserting on its line and reason. */
function refusal(run: () => unknown): DwParseError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(DwParseError);
    return err as DwParseError;
  }
  throw new Error('expected a DwParseError');
}

describe('lines cron skips', () => {
  it('skips blank lines and comments, also when indented', () => {
    expect(system('\n   \n\t\n# a comment\n   # an indented one\n\t#\n')).toEqual([]);
  });

  it('accepts an empty file', () => {
    expect(system('')).toEqual([]);
  });

  it('keeps a # after a command as part of the command, as cron does', () => {
    expect(system('0 0 * * * root backup # nightly\n')[0]!.command).toBe('backup # nightly');
  });
});

describe('environment settings', () => {
  it('records NAME=value keyed by file and name', () => {
    expect(system('PATH=/usr/bin:/bin\n')).toEqual([
      { key: `${SYS} env PATH`, kind: 'env', file: SYS, name: 'PATH', value: '/usr/bin:/bin' },
    ]);
  });

  it('drops blanks around = and trailing blanks of an unquoted value, keeps inner ones', () => {
    expect(user('  GREETING  =   hello   world  \n')[0]).toMatchObject({ name: 'GREETING', value: 'hello   world' });
    expect(parseEnvSetting('GREETING  =   hello   world  ')).toEqual({ name: 'GREETING', value: 'hello   world' });
  });

  it('strips matching single or double quotes and keeps the blanks inside them', () => {
    expect(parseEnvSetting('MAILTO=""')).toEqual({ name: 'MAILTO', value: '' });
    expect(parseEnvSetting("TZ = ' Europe/Paris '")).toEqual({ name: 'TZ', value: ' Europe/Paris ' });
    expect(parseEnvSetting('A="x = y"')).toEqual({ name: 'A', value: 'x = y' });
    expect(parseEnvSetting('"MY VAR"=1')).toEqual({ name: 'MY VAR', value: '1' });
  });

  it('keeps quotes that do not match, as part of the value', () => {
    expect(parseEnvSetting(`A="it's`)).toBeNull();
    expect(parseEnvSetting(`A=it's`)).toEqual({ name: 'A', value: "it's" });
  });

  it('is not a setting when text follows a closing quote, or the name is followed by a word', () => {
    expect(parseEnvSetting('A="x" y')).toBeNull();
    expect(parseEnvSetting('A B=c')).toBeNull();
    expect(parseEnvSetting('* * * * * FOO=bar cmd')).toBeNull();
  });

  it('refuses NAME= with nothing after it, which cron reads as a broken job, and says what to write', () => {
    const err = refusal(() => user('# mail\nMAILTO=\n'));
    expect(err.line).toBe(2);
    expect(err.message).toBe(`${USER}:2: environment setting "MAILTO=" has no value: cron wants MAILTO=""`);
  });

  it('numbers a setting repeated in one file, in file order', () => {
    const items = user('MAILTO=a\n0 0 * * * one\nMAILTO=b\n0 1 * * * two\n');
    expect(items.filter((i) => i.kind === 'env').map((i) => [i.key, i.value])).toEqual([
      [`${USER} env MAILTO`, 'a'],
      [`${USER} env MAILTO #2`, 'b'],
    ]);
  });
});

describe('five-field schedules', () => {
  it('reads a job with the user field of /etc/crontab and cron.d', () => {
    expect(system('17 * * * * root cd / && run-parts --report /etc/cron.hourly\n')).toEqual([
      {
        key: `${SYS} cd / && run-parts --report /etc/cron.hourly`,
        kind: 'entry',
        file: SYS,
        schedule: '17 * * * *',
        user: 'root',
        command: 'cd / && run-parts --report /etc/cron.hourly',
      },
    ]);
  });

  it('takes the user of a user crontab from the options, not from the line', () => {
    expect(user('30 2 * * * root-cause --fix\n')[0]).toMatchObject({ user: 'alice', command: 'root-cause --fix' });
  });

  it('accepts tabs and runs of blanks between fields, and normalises them to one space', () => {
    expect(system('25 6\t* *  *\t\troot\ttest -x /usr/sbin/anacron || run-parts /etc/cron.daily\n')[0]).toMatchObject({
      schedule: '25 6 * * *',
      user: 'root',
      command: 'test -x /usr/sbin/anacron || run-parts /etc/cron.daily',
    });
  });

  it('accepts numbers, ranges, steps on ranges and on *, lists and names', () => {
    for (const schedule of [
      '0 0 1 1 0',
      '59 23 31 12 7',
      '*/15 * * * *',
      '5-55/10 0-23/2 1-31 * 1-5',
      '0,30 8-12,14-18 * * *',
      '0 9 * jan-mar,OCT Mon-Fri',
      '0 0 * DEC sun',
      '00 09 01 01 00',
    ]) {
      expect(user(`${schedule} job\n`)[0]!.schedule).toBe(schedule);
    }
  });

  it.each([
    ['60 * * * *', 1, 'bad minute "60": 60 is outside 0-59'],
    ['* 24 * * *', 1, 'bad hour "24": 24 is outside 0-23'],
    ['* * 0 * *', 1, 'bad day-of-month "0": 0 is outside 1-31'],
    ['* * 32 * *', 1, 'bad day-of-month "32": 32 is outside 1-31'],
    ['* * * 13 *', 1, 'bad month "13": 13 is outside 1-12'],
    ['* * * * 8', 1, 'bad day-of-week "8": 8 is outside 0-7'],
    ['*/0 * * * *', 1, 'bad minute "*/0": step 0'],
    ['5/10 * * * *', 1, 'bad minute "5/10": a step needs a range or *'],
    ['30-10 * * * *', 1, 'bad minute "30-10": range runs backwards'],
    ['mon * * * *', 1, 'bad minute "mon": unknown name "mon"'],
    ['* * * january *', 1, 'bad month "january": unknown name "january"'],
    ['* * * * fri-mon', 1, 'bad day-of-week "fri-mon": range runs backwards'],
    ['1,,2 * * * *', 1, 'bad minute "1,,2"'],
    ['1, * * * *', 1, 'bad minute "1,"'],
    ['*x * * * *', 1, 'bad minute "*x"'],
    ['1-2-3 * * * *', 1, 'bad minute "1-2-3"'],
    ['--5 * * * *', 1, 'bad minute "-5"'],
  ])('refuses %j', (schedule, line, reason) => {
    const err = refusal(() => user(`${schedule} job\n`));
    expect(err.line).toBe(line);
    expect(err.message).toBe(`${USER}:${line}: ${reason}`);
  });

  it('refuses a job cut short, saying which field is missing', () => {
    expect(refusal(() => user('0 0 * *\n')).message).toBe(`${USER}:1: missing day-of-week field`);
    expect(refusal(() => user('0 0 * * *\n')).message).toBe(`${USER}:1: missing command`);
    expect(refusal(() => system('0 0 * * *   \n')).message).toBe(`${SYS}:1: missing user and command`);
    expect(refusal(() => system('0 0 * * * root\n')).message).toBe(`${SYS}:1: missing command`);
  });

  it('refuses a sixth time field, cron\'s "common typo" check', () => {
    expect(refusal(() => system('0 0 * * * * root job\n')).message).toBe(
      `${SYS}:1: "*" where the user should be: too many time fields?`,
    );
    expect(refusal(() => user('0 0 * * * */2 job\n')).message).toBe(
      `${USER}:1: "*/2" where the command should be: too many time fields?`,
    );
  });

  it('refuses a line that is neither a setting nor a job', () => {
    expect(refusal(() => user('0 0 * * * ok\nhello world\n')).message).toBe(
      `${USER}:2: bad minute "hello": unknown name "hello"`,
    );
  });

  it('checks each field on its own', () => {
    const [minute, month, dow] = [TIME_FIELDS[0]!, TIME_FIELDS[3]!, TIME_FIELDS[4]!];
    expect(checkTimeField('0-59/5', minute)).toBeNull();
    expect(checkTimeField('', minute)).toBe('empty minute field');
    expect(checkTimeField('Feb,aug-Sep', month)).toBeNull();
    expect(checkTimeField('SAT,sun', dow)).toBeNull();
    expect(checkTimeField('7', dow)).toBeNull();
  });
});

describe('nicknames', () => {
  it.each([
    ['@reboot', '@reboot'],
    ['@yearly', '@yearly'],
    ['@annually', '@yearly'],
    ['@monthly', '@monthly'],
    ['@weekly', '@weekly'],
    ['@daily', '@daily'],
    ['@midnight', '@daily'],
    ['@hourly', '@hourly'],
  ])('reads %s as %s', (nick, normal) => {
    expect(system(`${nick}\troot   /usr/local/bin/job\n`)[0]).toMatchObject({
      schedule: normal,
      user: 'root',
      command: '/usr/local/bin/job',
    });
  });

  it('refuses an unknown nickname, and one cron spells differently (case matters)', () => {
    expect(refusal(() => user('@fortnightly job\n')).message).toBe(`${USER}:1: unknown schedule "@fortnightly"`);
    expect(refusal(() => user('@Daily job\n')).message).toBe(`${USER}:1: unknown schedule "@Daily"`);
  });

  it('refuses a nickname with no command', () => {
    expect(refusal(() => user('@reboot   \n')).message).toBe(`${USER}:1: missing command`);
  });
});

describe('cronie quiet jobs', () => {
  it('keeps the leading "-" (do not syslog this job) in the schedule', () => {
    expect(user('-*/5 * * * * job\n-@hourly other\n').map((i) => i.schedule)).toEqual(['-*/5 * * * *', '-@hourly']);
  });
});

describe('% in commands', () => {
  it('ends the command at the first unescaped % and sends the rest as stdin, % as newlines', () => {
    expect(user('0 22 * * 1-5 mail -s "It\'s 10pm" joe%Joe,%%Where are your kids?%\n')[0]).toMatchObject({
      command: 'mail -s "It\'s 10pm" joe',
      stdin: 'Joe,\n\nWhere are your kids?\n',
    });
  });

  it('turns \\% into a literal % in the command and in stdin', () => {
    expect(splitCommand('date +\\%Y-\\%m-\\%d')).toEqual({ command: 'date +%Y-%m-%d' });
    expect(splitCommand('cat%100\\% done')).toEqual({ command: 'cat', stdin: '100% done' });
  });

  it('keeps every other backslash as written', () => {
    expect(splitCommand('printf "a\\tb\\n"')).toEqual({ command: 'printf "a\\tb\\n"' });
    expect(splitCommand('echo \\\\%x')).toEqual({ command: 'echo \\\\', stdin: 'x' });
    expect(splitCommand('cat%a\\tb\\')).toEqual({ command: 'cat', stdin: 'a\\tb\\' });
  });

  it('records an empty stdin when the command ends in %, and none when there is no %', () => {
    expect(splitCommand('job%')).toEqual({ command: 'job', stdin: '' });
    expect(user('0 0 * * * job\n')[0]).not.toHaveProperty('stdin');
  });

  it('keys the job by the command alone, so a new stdin is a modification of the same job', () => {
    expect(user('0 0 * * * cat%old\n')[0]!.key).toBe(user('0 0 * * * cat%new\n')[0]!.key);
  });
});

describe('keys', () => {
  it('numbers repeats of one command in file order, whatever their schedule', () => {
    expect(user('30 2 * * * sync\n45 2 * * * sync\n@reboot sync\n').map((i) => [i.key, i.schedule])).toEqual([
      [`${USER} sync`, '30 2 * * *'],
      [`${USER} sync #2`, '45 2 * * *'],
      [`${USER} sync #3`, '@reboot'],
    ]);
  });

  it('keeps keys unique when a command reads like another key', () => {
    const items = user('PATH=/bin\n0 0 * * * env PATH\n0 1 * * * sync #2\n0 2 * * * sync\n0 3 * * * sync\n');
    const keys = items.map((i) => i.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toEqual([
      `${USER} env PATH`,
      `${USER} env PATH #2`,
      `${USER} sync #2`,
      `${USER} sync`,
      `${USER} sync #3`,
    ]);
  });
});

describe('line ends', () => {
  it('accepts CRLF and drops the CR from values and commands', () => {
    expect(user('MAILTO=ops\r\n0 0 * * * job --now\r\n')).toEqual([
      { key: `${USER} env MAILTO`, kind: 'env', file: USER, name: 'MAILTO', value: 'ops' },
      {
        key: `${USER} job --now`,
        kind: 'entry',
        file: USER,
        schedule: '0 0 * * *',
        user: 'alice',
        command: 'job --now',
      },
    ]);
  });

  it('refuses a last job without a newline, which cron does not run as written', () => {
    const err = refusal(() => user('0 0 * * * first\n0 1 * * * last'));
    expect(err.line).toBe(2);
    expect(err.message).toContain('no newline at the end of the file');
  });

  it('accepts a last comment without a newline', () => {
    expect(user('0 0 * * * job\n# end')).toHaveLength(1);
  });
});

describe('errors', () => {
  it('name the file and the line, and nothing else is thrown', () => {
    const err = refusal(() => system('# header\n\nSHELL=/bin/sh\n0 0 * * * root ok\n99 * * * * root bad\n'));
    expect(err).toMatchObject({ file: SYS, line: 5, code: 'DW_ERR_PARSE' });
  });

  it('show control characters from the file escaped, never raw', () => {
    const err = refusal(() => user('\u001b[31mred * * * * job\n'));
    expect(err.message).toBe(`${USER}:1: bad minute "\\x1b[31mred"`);
    expect(shown('x'.repeat(100))).toBe(`"${'x'.repeat(60)}..."`);
  });
});

describe('property: any input gives items or a DwParseError naming the file and a line', () => {
  const REAL = [
    'SHELL=/bin/sh',
    'MAILTO=""',
    "TZ = 'UTC'",
    '17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly',
    '@reboot root /usr/local/bin/start',
    '0 8 * * 1 root mail -s "x \\% y" a%b%%c',
    '5-55/10 0-23/2 1,15 jan-mar mon-fri root job',
    '# comment',
    '',
  ].join('\n');

  function check(text: string, hasUserField: boolean): void {
    const file = hasUserField ? SYS : USER;
    try {
      const items = parseCrontab(text, { file, hasUserField, user: 'alice' });
      for (const item of items) {
        expect(CronItemSchema.safeParse(item).success).toBe(true);
        expect(item.key.startsWith(`${file} `)).toBe(true);
      }
      expect(new Set(items.map((i) => i.key)).size).toBe(items.length);
    } catch (err) {
      expect(err).toBeInstanceOf(DwParseError);
      const e = err as DwParseError;
      expect(e.file).toBe(file);
      expect(e.line).toBeGreaterThanOrEqual(1);
      expect(e.line).toBeLessThanOrEqual(text.split('\n').length);
    }
  }

  const soup = fc
    .array(
      fc.constantFrom(
        '*',
        '0',
        '59',
        '7',
        '-',
        '/',
        ',',
        ' ',
        '\t',
        '\n',
        '\r\n',
        'root',
        '%',
        '\\',
        '@daily',
        '@x',
        '=',
        '"',
        "'",
        '#',
        'jan',
        'Mon',
        'cmd',
        '\u0000',
        '\u00ff',
      ),
      { maxLength: 80 },
    )
    .map((parts) => parts.join(''));

  it('random unicode text', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.boolean(), (text, u) => check(text, u)));
  });

  it('random bytes decoded as UTF-8', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, u) =>
        check(Buffer.from(bytes).toString('utf8'), u),
      ),
    );
  });

  it('crontab-shaped soup', () => {
    fc.assert(
      fc.property(soup, fc.boolean(), (text, u) => check(text, u)),
      { numRuns: 500 },
    );
  });

  it('a real crontab cut anywhere', () => {
    fc.assert(fc.property(fc.nat(REAL.length), fc.boolean(), (n, u) => check(REAL.slice(0, n), u)));
    expect(system(`${REAL}\n`)).toHaveLength(7);
  });
});
