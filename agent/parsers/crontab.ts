/** @module Parse a crontab (Vixie cron as Debian and cronie ship it) into cron entry and environment items. */
import { DwParseError } from '../../shared/errors.js';
import type { CronItem } from '../../shared/schema/items.js';

export interface CrontabOptions {
  /** Host path of the crontab: it starts every key and names the file in errors. */
  file: string;
  /** `/etc/crontab` and `/etc/cron.d/*` name the user on each line; user crontabs do not. */
  hasUserField: boolean;
  /** Owner of a user crontab (cron takes it from the file name). */
  user?: string;
}

/**
 * Item keys, so that identity is "which file, which job":
 *   entry  `<file> <command>`   a changed schedule, user or stdin is a modification of that job;
 *   env    `<file> env <NAME>`  a changed value is a modification of that setting;
 * a repeat of the same base key in one file gets ` #2`, ` #3`, ... in file order. `claimKey` is
 * the one place that numbers, so a key is unique even when a command happens to read `env PATH`.
 */
export function claimKey(taken: Set<string>, base: string): string {
  let key = base;
  for (let n = 2; taken.has(key); n++) key = `${base} #${n}`;
  taken.add(key);
  return key;
}

/**
 * A piece of a host file, made safe to put in an error message: control characters (a crafted
 * crontab could carry terminal escapes) become `\xNN`, and long text is cut, all inside quotes.
 */
export function shown(text: string, max = 60): string {
  const cut = text.length > max ? `${text.slice(0, max)}...` : text;
  return `"${cut.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}"`;
}

/** cron's own spelling of each nickname; the aliases are normalised so renaming one is no drift. */
const NICKNAMES: Readonly<Record<string, string>> = {
  '@reboot': '@reboot',
  '@yearly': '@yearly',
  '@annually': '@yearly',
  '@monthly': '@monthly',
  '@weekly': '@weekly',
  '@daily': '@daily',
  '@midnight': '@daily',
  '@hourly': '@hourly',
};

export interface TimeField {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

// Bounds as entry.c has them (FIRST_DOM is 1 although crontab(5) says 0-31); names match case-insensitively.
export const TIME_FIELDS: readonly TimeField[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  { name: 'day-of-week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

const BLANK = /^[ \t]*/;
const TOKEN = /^[^ \t]*/;

function isCSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\v' || ch === '\f' || ch === '\r';
}

/**
 * An environment setting as cron's load_env() reads it: `NAME = value`, the name and the value each
 * optionally in matching single or double quotes (which are removed), blanks around `=` dropped,
 * trailing blanks of an unquoted value dropped. Returns null when the line is not a setting, which
 * is exactly when cron goes on to read it as a job. Note `NAME=` with nothing after it is not a
 * setting to cron (it wants `NAME=""`).
 */
export function parseEnvSetting(line: string): { name: string; value: string } | null {
  // load_env()'s states, in the order it moves through them.
  type State = 'nameStart' | 'name' | 'eq1' | 'eq2' | 'valueStart' | 'value' | 'fini' | 'error';
  let state: State = 'nameStart';
  let quote = '';
  let name = '';
  let value = '';
  let i = 0;
  while (state !== 'error' && i < line.length) {
    const ch = line[i]!;
    switch (state) {
      case 'nameStart':
      case 'valueStart':
        if (ch === "'" || ch === '"') {
          quote = ch;
          i++;
        }
        state = state === 'nameStart' ? 'name' : 'value';
        break;
      case 'name':
      case 'value':
        if (quote !== '') {
          if (ch === quote) {
            state = state === 'name' ? 'eq1' : 'fini';
            i++;
            break;
          }
          if (state === 'name' && ch === '=') {
            state = 'error';
            break;
          }
        } else if (state === 'name') {
          if (isCSpace(ch)) {
            state = 'eq1';
            i++;
            break;
          }
          if (ch === '=') {
            state = 'eq1';
            break;
          }
        }
        if (state === 'name') name += ch;
        else value += ch;
        i++;
        break;
      case 'eq1':
        if (ch === '=') {
          state = 'eq2';
          quote = '';
        } else if (!isCSpace(ch)) state = 'error';
        i++;
        break;
      case 'eq2':
      case 'fini':
        if (isCSpace(ch)) i++;
        else state = state === 'eq2' ? 'valueStart' : 'error';
        break;
    }
  }
  if (state !== 'fini' && !(state === 'value' && quote === '')) return null;
  if (state === 'value') {
    let end = value.length;
    while (end > 0 && isCSpace(value[end - 1]!)) end--;
    value = value.slice(0, end);
  }
  return { name, value };
}

/**
 * Check one of the five time fields the way entry.c's get_list/get_range/get_number do: a list of
 * `*`, a number or name, or a range `a-b`, where `*` and ranges may take a `/step`. Returns a reason
 * when the field is bad. Stricter than cron in one way: cron silently skips junk after `*` (`*x`).
 */
export function checkTimeField(text: string, field: TimeField): string | null {
  if (text === '') return `empty ${field.name} field`;
  for (const element of text.split(',')) {
    const m = /^(?:(\*)|([0-9]+|[A-Za-z]+)(?:-([0-9]+|[A-Za-z]+))?)(?:\/([0-9]+))?$/.exec(element);
    if (m === null) return `bad ${field.name} ${shown(text)}`;
    const [, star, from, to, step] = m;
    if (step !== undefined) {
      if (star === undefined && to === undefined) return `bad ${field.name} ${shown(text)}: a step needs a range or *`;
      if (Number(step) === 0) return `bad ${field.name} ${shown(text)}: step 0`;
    }
    if (star !== undefined) continue;
    const low = fieldValue(from!, field);
    if (typeof low === 'string') return `bad ${field.name} ${shown(text)}: ${low}`;
    if (to !== undefined) {
      const high = fieldValue(to, field);
      if (typeof high === 'string') return `bad ${field.name} ${shown(text)}: ${high}`;
      if (low > high) return `bad ${field.name} ${shown(text)}: range runs backwards`;
    }
  }
  return null;
}

function fieldValue(token: string, field: TimeField): number | string {
  if (/^[0-9]+$/.test(token)) {
    const n = Number(token);
    return n >= field.min && n <= field.max ? n : `${token} is outside ${field.min}-${field.max}`;
  }
  const i = field.names?.indexOf(token.toLowerCase()) ?? -1;
  return i >= 0 ? i + field.min : `unknown name ${shown(token)}`;
}

/**
 * Split a command at its first unescaped `%` as cron's do_command.c does: before it, `\%` becomes
 * `%` (every other backslash stays); after it is standard input, where each unescaped `%` is a
 * newline and `\%` again a literal `%`.
 */
export function splitCommand(raw: string): { command: string; stdin?: string } {
  let command = '';
  let escaped = false;
  let i = 0;
  for (; i < raw.length; i++) {
    const ch = raw[i]!;
    if (escaped) {
      escaped = false;
      command = ch === '%' ? command.slice(0, -1) + '%' : command + ch;
      continue;
    }
    if (ch === '%') break;
    if (ch === '\\') escaped = true;
    command += ch;
  }
  if (i >= raw.length) return { command };
  let stdin = '';
  escaped = false;
  for (let ch of raw.slice(i + 1)) {
    if (escaped) {
      if (ch !== '%') stdin += '\\';
    } else if (ch === '%') ch = '\n';
    escaped = ch === '\\';
    if (!escaped) stdin += ch;
  }
  if (escaped) stdin += '\\';
  return { command, stdin };
}

/** The next blank-separated word of `rest` and what follows it with leading blanks removed. */
function nextToken(rest: string): [string, string] {
  const token = TOKEN.exec(rest)![0];
  const after = rest.slice(token.length);
  return [token, after.slice(BLANK.exec(after)![0].length)];
}

/**
 * Parse a whole crontab. Blank lines and lines whose first non-blank character is `#` are skipped;
 * every other line is an environment setting or a job, else the file is refused with a
 * DwParseError naming the line. CRLF line ends are accepted (the CR is dropped).
 */
export function parseCrontab(text: string, opts: CrontabOptions): CronItem[] {
  const { file } = opts;
  const items: CronItem[] = [];
  const taken = new Set<string>();
  const lines = text.split('\n');
  // A final newline leaves one empty string after split; that is not a line.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const lastUnterminated = !text.endsWith('\n');

  lines.forEach((rawLine, index) => {
    const lineNo = index + 1;
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    const body = line.slice(BLANK.exec(line)![0].length);
    if (body === '' || body.startsWith('#')) return;
    if (lastUnterminated && index === lines.length - 1) {
      // cronie drops such a last job and Debian's cron ignores the whole file; either way it is not what it says.
      throw new DwParseError(
        file,
        lineNo,
        'no newline at the end of the file: cron does not read this last line as written',
      );
    }

    const env = parseEnvSetting(body);
    if (env !== null) {
      items.push({
        key: claimKey(taken, `${file} env ${env.name}`),
        kind: 'env',
        file,
        name: env.name,
        value: env.value,
      });
      return;
    }
    const bare = /^([^ \t=]+)[ \t]*=[ \t]*$/.exec(body);
    if (bare !== null) {
      const name = shown(bare[1]!).slice(1, -1);
      throw new DwParseError(file, lineNo, `environment setting "${name}=" has no value: cron wants ${name}=""`);
    }
    const entry = parseJob(body, opts, lineNo);
    const item: CronItem = {
      key: claimKey(taken, `${file} ${entry.command}`),
      kind: 'entry',
      file,
      schedule: entry.schedule,
    };
    if (entry.user !== undefined) item.user = entry.user;
    item.command = entry.command;
    if (entry.stdin !== undefined) item.stdin = entry.stdin;
    items.push(item);
  });
  return items;
}

function parseJob(
  body: string,
  opts: CrontabOptions,
  lineNo: number,
): { schedule: string; user?: string; command: string; stdin?: string } {
  const fail = (reason: string): never => {
    throw new DwParseError(opts.file, lineNo, reason);
  };
  let rest = body;
  // cronie only: a leading `-` asks cron not to syslog the job. Kept in the schedule, since it changes what the job leaves behind.
  const quiet = rest.startsWith('-') ? '-' : '';
  rest = rest.slice(quiet.length);

  let schedule: string;
  if (rest.startsWith('@')) {
    const [nick, after] = nextToken(rest);
    const normal = NICKNAMES[nick];
    if (normal === undefined) fail(`unknown schedule ${shown(nick)}`);
    schedule = normal!;
    rest = after;
  } else {
    const fields: string[] = [];
    for (const field of TIME_FIELDS) {
      const [token, after] = nextToken(rest);
      if (token === '')
        fail(fields.length === 0 ? 'not a job or an environment setting' : `missing ${field.name} field`);
      const bad = checkTimeField(token, field);
      if (bad !== null) fail(bad);
      fields.push(token);
      rest = after;
    }
    schedule = fields.join(' ');
  }
  schedule = quiet + schedule;

  // entry.c's check for a common typo: six time fields leave a `*` where the user or command should be.
  if (rest.startsWith('*'))
    fail(
      `${shown(rest.split(/[ \t]/)[0]!)} where the ${opts.hasUserField ? 'user' : 'command'} should be: too many time fields?`,
    );
  let user = opts.user;
  if (opts.hasUserField) {
    const [token, after] = nextToken(rest);
    if (token === '') fail('missing user and command');
    user = token;
    rest = after;
  }
  if (rest === '') fail('missing command');
  const { command, stdin } = splitCommand(rest);
  const out: { schedule: string; user?: string; command: string; stdin?: string } = { schedule, command };
  if (user !== undefined) out.user = user;
  if (stdin !== undefined) out.stdin = stdin;
  return out;
}
