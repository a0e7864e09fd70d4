/** @module Parse /etc/anacrontab (`period delay job-id command` and `NAME=value` lines) into cron items. */
import { DwParseError } from '../../shared/errors.js';
import type { CronItem } from '../../shared/schema/items.js';
import { claimKey, shown } from './crontab.js';

/**
 * anacron's named periods (readtab.c); `@annualy` is anacron's own spelling, `@annually` the one
 * people write, and both mean `@yearly`.
 */
const PERIODS: Readonly<Record<string, string>> = {
  '@daily': '@daily',
  '@weekly': '@weekly',
  '@monthly': '@monthly',
  '@yearly': '@yearly',
  '@annually': '@yearly',
  '@annualy': '@yearly',
};

/** anacron reads numbers with strtol into an int and skips the line when they overflow. */
const INT_MAX = 2147483647;

// The regular expressions readtab.c matches, in its order; POSIX `.` also matches a newline.
const EMPTY = /^[ \t]*($|#)/;
const ENV = /^[ \t]*([^ \t=]+)[ \t]*=(.*)$/s;
const JOB = /^[ \t]*([0-9]+|@[^ \t]+)[ \t]+([0-9]+)[ \t]+([^ \t/]+)[ \t]+([^ \t].*)$/s;

interface LogicalLine {
  text: string;
  /** Physical line the logical line starts on, for errors. */
  line: number;
}

/**
 * anacron's read_tab_line(), character for character: a backslash before a newline joins the next
 * line (the newline becomes a space), and every other backslash is dropped, except one that is the
 * file's last character. So `sed 's/\./x/'` runs as `sed 's/./x/'`, and that is what is recorded.
 */
export function anacronLines(text: string): LogicalLine[] {
  const src = text.replace(/\r\n/g, '\n');
  const out: LogicalLine[] = [];
  let cur = '';
  let prev: string | null = null;
  let start = 1;
  let phys = 1;
  for (let i = 0; i <= src.length; i++) {
    const c = i < src.length ? src[i]! : null;
    if ((c === '\n' && prev !== '\\') || c === null) {
      if (prev !== null) cur += prev;
      out.push({ text: cur, line: start });
      if (c === null) break;
      cur = '';
      prev = null;
      phys++;
      start = phys;
      continue;
    }
    if (prev !== '\\' && prev !== null && prev !== '\n') cur += prev;
    else if (prev === '\n') cur += ' ';
    if (c === '\n') phys++;
    prev = c;
  }
  return out;
}

/**
 * Jobs become `entry` items keyed `<file> <job-id>` (anacron's identity for a job: it names the
 * timestamp file), with schedule `period=<days|@name> delay=<minutes>` and user root, since anacron
 * runs jobs as whoever runs anacron. Settings become `env` items keyed `<file> env <NAME>`, with the
 * value exactly as anacron passes it on (it strips neither blanks after `=` nor quotes).
 */
export function parseAnacrontab(text: string, file: string): CronItem[] {
  const items: CronItem[] = [];
  const taken = new Set<string>();
  for (const { text: line, line: lineNo } of anacronLines(text)) {
    if (EMPTY.test(line)) continue;
    const env = ENV.exec(line);
    if (env !== null) {
      const [, name, value] = env as unknown as [string, string, string];
      items.push({ key: claimKey(taken, `${file} env ${name}`), kind: 'env', file, name, value });
      continue;
    }
    const job = JOB.exec(line);
    if (job === null) throw new DwParseError(file, lineNo, 'neither NAME=value nor "period delay job-id command"');
    const [, periodText, delayText, id, command] = job as unknown as [string, string, string, string, string];
    let period: string;
    if (periodText.startsWith('@')) {
      const named = PERIODS[periodText];
      if (named === undefined)
        throw new DwParseError(
          file,
          lineNo,
          `unknown period ${shown(periodText)} (anacron knows @daily, @weekly, @monthly, @yearly)`,
        );
      period = named;
    } else {
      period = String(checkedInt(periodText, 'period', file, lineNo));
    }
    const delay = checkedInt(delayText, 'delay', file, lineNo);
    items.push({
      key: claimKey(taken, `${file} ${id}`),
      kind: 'entry',
      file,
      schedule: `period=${period} delay=${delay}`,
      user: 'root',
      command,
    });
  }
  return items;
}

function checkedInt(digits: string, what: string, file: string, lineNo: number): number {
  const n = Number(digits);
  if (n > INT_MAX) throw new DwParseError(file, lineNo, `${what} ${digits} is too large`);
  return n;
}
