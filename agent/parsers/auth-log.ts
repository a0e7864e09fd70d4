/**
 * @module What the host's auth log (syslog `auth.log` on Debian, `secure` on RHEL) says was done to
 * accounts, services, kernel modules and the firewall: shadow-utils' own lines (useradd, groupadd,
 * usermod, gpasswd, userdel, passwd) and sudo's COMMAND lines. Pure: text in, actions out.
 */
import { lines } from './lines.js';

export interface AuthAction {
  /** As the log wrote it: RFC 3339 (rsyslog's default on Debian 12) or `Mmm dd hh:mm:ss`. */
  at: string;
  /** Epoch ms when the stamp says it (RFC 3339, or the traditional form in `year`); undefined otherwise. */
  atMs: number | undefined;
  /** `useradd`, `usermod`, `systemctl enable`, `modprobe`, `nft`, ... */
  action: string;
  /** Deviation keys it explains: `accounts user:x`, `services rsync.service`, `kernel-modules wireguard`, `firewall *`. */
  targets: string[];
  commandLine?: string;
  user?: string;
}

const RFC3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))\s+\S+\s+([\w.-]+)(?:\[\d+\])?:\s(.*)$/;
const TRADITIONAL = /^([A-Z][a-z]{2}\s+\d{1,2} \d\d:\d\d:\d\d)\s+\S+\s+([\w.-]+)(?:\[\d+\])?:\s(.*)$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const UNIT_VERBS = new Set([
  'enable',
  'disable',
  'mask',
  'unmask',
  'reenable',
  'link',
  'preset',
  'revert',
  'add-wants',
  'add-requires',
  'edit',
]);

function unitName(arg: string): string {
  return /\.[a-z]+$/.test(arg) ? arg : `${arg}.service`;
}

/** The targets of a command run through sudo, from its argument vector. */
function commandTargets(argv: string[]): { action: string; targets: string[] } | null {
  const prog = (argv[0] ?? '').split('/').pop()!;
  const args = argv.slice(1);
  const positional = args.filter((a) => !a.startsWith('-'));
  switch (prog) {
    case 'systemctl': {
      const verb = positional[0];
      if (!verb || !UNIT_VERBS.has(verb)) return null;
      return { action: `systemctl ${verb}`, targets: positional.slice(1).map((u) => `services ${unitName(u)}`) };
    }
    case 'modprobe':
    case 'insmod': {
      if (args.includes('-r')) return null;
      const name = positional[0]
        ?.split('/')
        .pop()
        ?.replace(/\.ko(\.[gx]z|\.zst)?$/, '')
        .replaceAll('-', '_');
      return name ? { action: prog, targets: [`kernel-modules ${name}`] } : null;
    }
    case 'nft':
    case 'iptables':
    case 'ip6tables':
    case 'iptables-restore':
    case 'ip6tables-restore':
    case 'ufw':
      return { action: prog, targets: ['firewall *'] };
    case 'useradd':
    case 'adduser':
    case 'userdel':
    case 'deluser':
    case 'passwd':
    case 'chage':
      return positional.length > 0
        ? { action: prog, targets: [`accounts user:${positional[positional.length - 1]}`] }
        : null;
    case 'usermod':
      return positional.length > 0
        ? {
            action: prog,
            targets: [
              `accounts user:${positional[positional.length - 1]}`,
              ...groupsOf(args).map((g) => `accounts group:${g}`),
            ],
          }
        : null;
    case 'groupadd':
    case 'groupdel':
    case 'groupmod':
      return positional.length > 0
        ? { action: prog, targets: [`accounts group:${positional[positional.length - 1]}`] }
        : null;
    case 'gpasswd':
      return positional.length > 0
        ? { action: prog, targets: [`accounts group:${positional[positional.length - 1]}`] }
        : null;
    case 'visudo':
      return { action: prog, targets: ['accounts sudoers:*'] };
    default:
      return null;
  }
}

function groupsOf(args: string[]): string[] {
  const i = args.findIndex((a) => a === '-G' || a === '--groups' || a === '-aG');
  return i >= 0 && args[i + 1] ? args[i + 1]!.split(',') : [];
}

/** shadow-utils' own syslog lines. */
function shadowTargets(program: string, msg: string): { action: string; targets: string[] } | null {
  let m: RegExpExecArray | null;
  if ((m = /^new user: name=([^,\s]+)/.exec(msg))) return { action: program, targets: [`accounts user:${m[1]}`] };
  if ((m = /^new group: name=([^,\s]+)/.exec(msg))) return { action: program, targets: [`accounts group:${m[1]}`] };
  if ((m = /^add '([^']+)' to (?:shadow )?group '([^']+)'/.exec(msg)))
    return { action: program, targets: [`accounts group:${m[2]}`] };
  if ((m = /^user (\S+) added by \S+ to group (\S+)/.exec(msg)))
    return { action: program, targets: [`accounts group:${m[2]}`] };
  if ((m = /^delete user '([^']+)'/.exec(msg))) return { action: program, targets: [`accounts user:${m[1]}`] };
  if ((m = /password changed for (\S+)/.exec(msg))) return { action: 'passwd', targets: [`accounts user:${m[1]}`] };
  return null;
}

/** `year`: the year a traditional stamp (which has none) is read in. */
export function parseAuthLog(text: string, year: number): AuthAction[] {
  const out: AuthAction[] = [];
  for (const [line] of lines(text)) {
    let at: string;
    let atMs: number | undefined;
    let program: string;
    let msg: string;
    let m = RFC3339.exec(line);
    if (m) {
      [, at, program, msg] = m as unknown as [string, string, string, string];
      atMs = Date.parse(at);
    } else if ((m = TRADITIONAL.exec(line))) {
      [, at, program, msg] = m as unknown as [string, string, string, string];
      const [mon, day, time] = at.split(/\s+/) as [string, string, string];
      // The host's local time, read as UTC: close enough to order it against a baseline taken days before.
      atMs = Date.parse(`${year}-${String(MONTHS.indexOf(mon) + 1).padStart(2, '0')}-${day.padStart(2, '0')}T${time}Z`);
    } else continue;
    if (program === 'sudo') {
      const s = /^\s*(\S+) : .*?COMMAND=(.*)$/.exec(msg);
      if (!s) continue;
      const commandLine = s[2]!.trim();
      const t = commandTargets(commandLine.split(/\s+/));
      if (t) out.push({ at, atMs, ...t, commandLine, user: s[1]! });
      continue;
    }
    const t = shadowTargets(program, msg);
    if (t) out.push({ at, atMs, ...t });
  }
  return out;
}
