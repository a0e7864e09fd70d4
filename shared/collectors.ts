/**
 * @module The collector registry: every collector declared once (what it reads, what an item is, which
 * fields are compared, how severe a change is, what policy does by default, which host paths make the
 * agent look again). Policy, rule validation, the manifest schema, the dashboard, the OCSF mapping and
 * the README's "What is compared" table are derived from this list; test/shared/collectors.test.ts
 * fails when one of them drifts from it. Shared code only: no agent or controller imports.
 */
import type { Change, Severity } from './schema/deviation.js';

/** How a key glob is matched; see shared/schema/policy.ts (KeyStyle). */
export type CollectorKeyStyle = 'path' | 'entry' | 'name';

export interface CollectorField {
  name: string;
  /** False for fields that are part of the item's identity (they cannot differ without the key differing). */
  compared: boolean;
  doc: string;
}

export interface CollectorDef {
  name: string;
  /** What the dashboard shows. */
  label: string;
  /** Host paths (or programs, `exec:`) read under the root, for docs and `--help`. */
  reads: readonly string[];
  /** What an item's key is made of. */
  itemKey: string;
  keyStyle: CollectorKeyStyle;
  fields: readonly CollectorField[];
  /** Default severity of each change, before the finer rules of shared/severity.ts. */
  severity: Readonly<Record<Change, Severity>>;
  /** What the shipped policy does with a deviation of this collector (after its ignore rules). */
  defaultAction: 'taint' | 'report';
  /**
   * Host path prefixes whose change between scans makes the agent run this collector again at once
   * (besides the files collector for the path itself). Empty: only on the schedule.
   */
  watch: readonly string[];
  /** OCSF class of its deviations: File System Activity (1001) or Device Config State Change (5019). */
  ocsfClass: 1001 | 5019;
  enabledByDefault: boolean;
  /** One sentence for the README and `--help`. */
  describe: string;
}

const f = (name: string, doc: string, compared = true): CollectorField => ({ name, compared, doc });

/** The order is the order of manifest sections, of scans and of output. */
export const COLLECTOR_DEFS = [
  {
    name: 'packages',
    label: 'Packages',
    reads: [
      '/var/lib/dpkg/status',
      '/var/lib/dpkg/status.d',
      '/usr/lib/sysimage/rpm',
      '/var/lib/rpm',
      '/lib/apk/db/installed',
      '/usr/lib/apk/db/installed',
    ],
    itemKey: '`name:arch`',
    keyStyle: 'name',
    fields: [
      f('manager', 'dpkg, rpm or apk'),
      f('name', 'package name', false),
      f('arch', 'architecture', false),
      f('version', 'version'),
      f('state', "`installed`, or dpkg's `half-installed`, `config-files`, …"),
    ],
    severity: { added: 'high', removed: 'medium', modified: 'high' },
    defaultAction: 'taint',
    watch: ['/var/lib/dpkg/status', '/var/lib/rpm', '/usr/lib/sysimage/rpm', '/lib/apk/db'],
    ocsfClass: 5019,
    enabledByDefault: true,
    describe: 'Installed packages from dpkg, rpm or apk.',
  },
  {
    name: 'sysctl',
    label: 'Kernel parameters',
    reads: [
      '/proc/sys',
      '/etc/sysctl.conf',
      '/etc/sysctl.d',
      '/run/sysctl.d',
      '/usr/local/lib/sysctl.d',
      '/usr/lib/sysctl.d',
      '/lib/sysctl.d',
    ],
    itemKey: 'dotted name',
    keyStyle: 'name',
    fields: [
      f('runtime', 'value in proc/sys now'),
      f('declared', 'value sysctl.d/sysctl.conf ask for'),
      f('declaredIn', 'where it was declared'),
    ],
    severity: { added: 'medium', removed: 'medium', modified: 'medium' },
    defaultAction: 'taint',
    watch: ['/etc/sysctl.conf', '/etc/sysctl.d', '/usr/lib/sysctl.d', '/run/sysctl.d'],
    ocsfClass: 5019,
    enabledByDefault: true,
    describe: 'Kernel parameters: runtime values beside the declared ones.',
  },
  {
    name: 'cron',
    label: 'Scheduled jobs',
    reads: [
      '/etc/crontab',
      '/etc/cron.d',
      '/var/spool/cron',
      '/etc/anacrontab',
      '/etc/cron.hourly',
      '/etc/cron.daily',
      '/etc/cron.weekly',
      '/etc/cron.monthly',
      '/etc/systemd/system',
      '/run/systemd',
      '/usr/local/lib/systemd/system',
      '/lib/systemd/system',
      '/usr/lib/systemd/system',
    ],
    itemKey: 'source file + entry',
    keyStyle: 'entry',
    fields: [
      f('kind', 'entry, env, script, timer or unparseable', false),
      f('file', 'source file', false),
      f('schedule', 'schedule'),
      f('user', 'user'),
      f('command', 'command'),
      f('stdin', 'stdin'),
      f('name', 'environment name'),
      f('value', 'environment value'),
      f('sha256', 'scripts and timers by content hash'),
      f('mode', 'script mode'),
      f('state', 'timer enablement as systemctl is-enabled names it'),
      f('enabled', 'refused: replaced by `state`'),
      f('timer', 'effective `[Timer]` settings after drop-ins'),
      f('error', 'why it could not be parsed'),
    ],
    severity: { added: 'high', removed: 'medium', modified: 'high' },
    defaultAction: 'taint',
    watch: [
      '/etc/crontab',
      '/etc/cron.',
      '/etc/anacrontab',
      '/var/spool/cron',
      '/etc/systemd/system',
      '/usr/lib/systemd/system',
      '/lib/systemd/system',
    ],
    ocsfClass: 5019,
    enabledByDefault: true,
    describe: 'Crontab jobs, anacrontab, run-parts scripts and systemd timers.',
  },
  {
    name: 'files',
    label: 'Files',
    reads: ['the file roots (default /etc, /usr, /opt, /boot, /root/.ssh, /home/*/.ssh) minus the ignore globs'],
    itemKey: 'path',
    keyStyle: 'path',
    fields: [
      f('type', 'file, dir, symlink, …'),
      f('mode', 'mode with setuid bits'),
      f('uid', 'owner'),
      f('gid', 'group'),
      f('size', 'size'),
      f('sha256', 'content hash'),
      f('target', 'symlink target'),
      f('error', 'why a file has no hash'),
    ],
    severity: { added: 'medium', removed: 'medium', modified: 'medium' },
    // By path: the shipped rules report home directories and taint system paths; a path no rule
    // foresaw falls to the policy's no-rule default, which taints.
    defaultAction: 'taint',
    watch: [],
    ocsfClass: 1001,
    enabledByDefault: true,
    describe: 'Files under the configured roots: metadata and content hash.',
  },
  {
    name: 'kernel-modules',
    label: 'Kernel modules',
    reads: [
      '/proc/modules',
      '/etc/modules',
      '/etc/modules-load.d',
      '/run/modules-load.d',
      '/usr/local/lib/modules-load.d',
      '/usr/lib/modules-load.d',
      '/lib/modules-load.d',
      '/etc/modprobe.d',
      '/run/modprobe.d',
      '/usr/local/lib/modprobe.d',
      '/usr/lib/modprobe.d',
      '/lib/modprobe.d',
    ],
    itemKey: 'module name (`-` and `_` alike)',
    keyStyle: 'name',
    fields: [
      f('name', 'module name, underscores', false),
      f('loaded', 'listed in proc/modules now'),
      f('sizeClass', 'loaded size rounded up to a power of two (a rebuilt module moves class, a reload does not)'),
      f('taint', 'taint flags (O out-of-tree, E unsigned, F forced, …)'),
      f('declared', 'the files that ask for it to load at boot'),
      f('blacklisted', 'the modprobe.d files that blacklist it'),
      f('installCommand', 'an `install` line replacing its loading (`/bin/true` disables it)'),
    ],
    severity: { added: 'high', removed: 'medium', modified: 'high' },
    defaultAction: 'taint',
    watch: ['/etc/modules', '/etc/modules-load.d', '/etc/modprobe.d', '/usr/lib/modules-load.d', '/usr/lib/modprobe.d'],
    ocsfClass: 5019,
    enabledByDefault: true,
    describe: 'Loaded kernel modules (proc/modules) beside the ones declared to load at boot and the blacklisted ones.',
  },
  {
    name: 'services',
    label: 'Services (systemd units)',
    reads: [
      '/etc/systemd/system',
      '/run/systemd',
      '/usr/local/lib/systemd/system',
      '/lib/systemd/system',
      '/usr/lib/systemd/system',
      '/etc/systemd/system-preset',
      '/usr/local/lib/systemd/system-preset',
      '/usr/lib/systemd/system-preset',
      '/lib/systemd/system-preset',
    ],
    itemKey: 'unit name, or `preset:<host path>`',
    keyStyle: 'name',
    fields: [
      f('kind', 'unit or preset', false),
      f('path', 'the unit file systemd uses'),
      f('state', 'enablement as systemctl is-enabled names it'),
      f('sha256', 'unit or preset file by content hash'),
      f('dropIns', 'drop-in files by path and content hash'),
      f('error', 'why it could not be read'),
    ],
    severity: { added: 'high', removed: 'medium', modified: 'high' },
    defaultAction: 'taint',
    watch: ['/etc/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system', '/etc/systemd/system-preset'],
    ocsfClass: 5019,
    enabledByDefault: true,
    describe:
      'systemd units (not timers, which cron covers): enabled, disabled, masked, static…, unit files and drop-ins by content hash, and preset files.',
  },
  {
    name: 'accounts',
    label: 'Users, groups, sudo, ssh keys',
    reads: [
      '/etc/passwd',
      '/etc/group',
      '/etc/shadow',
      '/etc/sudoers',
      '/etc/sudoers.d',
      '<home>/.ssh/authorized_keys',
      '<home>/.ssh/authorized_keys2',
    ],
    itemKey: '`user:<name>`, `group:<name>`, `sudoers:<host path>`, `key:<user>:<SHA256 fingerprint>`',
    keyStyle: 'name',
    fields: [
      f('kind', 'user, group, sudoers or key', false),
      f('uid', 'user id'),
      f('gid', 'user or group id'),
      f('home', 'home directory'),
      f('shell', 'login shell'),
      f('gecos', 'comment field'),
      f('password', 'from shadow only: set, none, locked or disabled (never the hash)'),
      f('passwordChanged', 'from shadow: day of the last password change'),
      f('members', 'group members'),
      f('sha256', 'sudoers file by content hash'),
      f('rules', 'sudoers rules, normalised (comments and blank lines dropped)'),
      f('type', 'key type (ssh-ed25519, …)'),
      f('file', 'the authorized_keys file'),
      f('options', 'key options (from=, command=, …)'),
      f('error', 'why it could not be read'),
    ],
    severity: { added: 'critical', removed: 'medium', modified: 'critical' },
    defaultAction: 'taint',
    watch: ['/etc/passwd', '/etc/group', '/etc/shadow', '/etc/sudoers', '/root/.ssh', '/home'],
    ocsfClass: 5019,
    enabledByDefault: true,
    describe:
      "Users and groups, whether a password is set or locked (never the hash), sudoers rules and every user's authorized ssh keys by fingerprint.",
  },
  {
    name: 'firewall',
    label: 'Firewall rules',
    reads: [
      '/etc/nftables.conf',
      '/etc/nftables.d',
      '/etc/iptables/rules.v4',
      '/etc/iptables/rules.v6',
      '/etc/sysconfig/iptables',
      '/etc/sysconfig/ip6tables',
      '/etc/sysconfig/nftables.conf',
      '/etc/nftables',
      '/etc/ufw',
      'exec: nft list ruleset, else iptables-save and ip6tables-save, found in usr/sbin, sbin, usr/bin or bin (only when checking /)',
    ],
    itemKey:
      '`saved:<host path>`, `live:nft:<family> <table> <chain|set|map> <name>`, `live:iptables:<table> <chain>` (and `ip6tables`)',
    keyStyle: 'name',
    fields: [
      f('source', 'saved file or live ruleset', false),
      f('sha256', 'saved file by content hash'),
      f('rules', 'rules in order, counters and handles removed'),
      f('policy', 'chain policy'),
      f('error', 'why it could not be read'),
    ],
    severity: { added: 'high', removed: 'high', modified: 'high' },
    defaultAction: 'taint',
    watch: ['/etc/nftables.conf', '/etc/nftables.d', '/etc/iptables', '/etc/sysconfig/iptables'],
    ocsfClass: 5019,
    enabledByDefault: true,
    describe: 'nftables and iptables rulesets: the saved files, and the live ruleset when checking /.',
  },
] as const satisfies readonly CollectorDef[];

type Defs = typeof COLLECTOR_DEFS;
export type RegisteredCollectorName = Defs[number]['name'];

/** The names in registry order. */
export const REGISTERED_COLLECTORS = COLLECTOR_DEFS.map((d) => d.name) as unknown as readonly [
  RegisteredCollectorName,
  ...RegisteredCollectorName[],
];

const BY_NAME: ReadonlyMap<string, CollectorDef> = new Map(COLLECTOR_DEFS.map((d) => [d.name, d as CollectorDef]));

export function collectorDef(name: string): CollectorDef | undefined {
  return BY_NAME.get(name);
}

/** The fields a deviation's `fields` may name for this collector: the compared ones. */
export function comparedFields(name: string): string[] {
  return (collectorDef(name)?.fields ?? []).filter((x) => x.compared).map((x) => x.name);
}

/** The README's "What is compared" table, generated: test/shared/collectors.test.ts checks the README holds exactly this. */
export function compareTableMarkdown(): string {
  const code = (s: string) =>
    s.startsWith('exec:') || s.startsWith('the ') || s.startsWith('<') ? s : `\`${s.replace(/^\//, '')}\``;
  const rows = COLLECTOR_DEFS.map((d) => {
    const compared = d.fields
      .filter((x) => x.compared)
      .map((x) => (x.doc === x.name ? x.name : `${x.name} (${x.doc})`))
      .join('; ');
    return `| \`${d.name}\` | ${d.reads.map(code).join(', ')} | ${d.itemKey} | ${compared} | ${d.enabledByDefault ? 'on' : 'off'} |`;
  });
  return [
    '| collector | reads (under `--root`) | item key | compared | default |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/** The dashboard's view of the registry, served as /ui/collectors.js: names, labels and whether an exemption can name it. */
export function dashboardModule(): string {
  const list = COLLECTOR_DEFS.map((d) => ({ name: d.name, label: d.label }));
  return `// Generated by the controller from shared/collectors.ts: do not edit.\nexport const COLLECTORS = Object.freeze(${JSON.stringify(list)});\n`;
}
