/**
 * @module One sentence for an attribution (who or what made a change, from the host's own records), the
 * same in `check`, `report HOST`, the drift reports and the SIEM feed's message.
 */
import type { Attribution } from './schema/deviation.js';

const DONE: Record<string, string> = {
  install: 'installed',
  reinstall: 'reinstalled',
  upgrade: 'upgraded',
  downgrade: 'downgraded',
  remove: 'removed',
  purge: 'purged',
  configure: 'configured',
};
const SOURCES: Record<Attribution['source'], string> = {
  'dpkg-log': 'dpkg.log',
  'apt-history': 'apt history',
  'dnf-history': 'dnf history',
  rpm: 'rpm database',
  'auth-log': 'auth log',
};

/**
 * One line a reviewer reads as a sentence: `upgraded by "apt-get upgrade", run by alice (1000) at
 * 2024-03-01 02:14:07 +00:00 (apt history)`. A file's line names its package and versions first,
 * since the deviation above it shows only the file.
 */
export function describeAttribution(a: Attribution): string {
  // A command line and a user come from a log on the host: never let them drive the reader's terminal.
  const clean = (t: string) =>
    t.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  let s = DONE[a.action] ?? a.action;
  if (a.ownedBy !== undefined) {
    const versions =
      a.fromVersion !== undefined && a.toVersion !== undefined
        ? ` ${a.fromVersion} -> ${a.toVersion}`
        : a.toVersion !== undefined
          ? ` ${a.toVersion}`
          : '';
    s = `owned by ${a.ownedBy}, ${s}${versions}`;
  }
  if (a.commandLine !== undefined) s += ` by "${clean(a.commandLine)}"`;
  if (a.user !== undefined) s += `, run by ${clean(a.user)}`;
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(Z|[+-]\d\d:\d\d)?$/.exec(a.at);
  const when = m ? `${m[1]} ${m[2]}${m[3] === undefined ? '' : ` ${m[3] === 'Z' ? 'UTC' : m[3]}`}` : a.at;
  return `${s} at ${when} (${SOURCES[a.source]})`;
}
