/**
 * @module Severity: the one order of the four levels (for sorting, "worst of", and SQL), and the default
 * severity of a deviation before any controller policy: what a reviewer should look at first.
 */
import { collectorDef } from './collectors.js';
import { globMatcher } from './glob.js';
import type { CollectorName } from './schema/common.js';
import type { Change, Severity } from './schema/deviation.js';
import { SEVERITIES } from './schema/severities.js';

/**
 * IMPORTANT: the one severity order, from SEVERITIES: low 1, medium 2, high 3, critical 4; 0 stands for
 * none. The replacement queue stores it (severity_rank) and pages on it: renumbering needs a migration.
 */
export const SEVERITY_RANK: Readonly<Record<Severity, number>> = Object.freeze(
  Object.fromEntries(SEVERITIES.map((s, i) => [s, i + 1])) as Record<Severity, number>,
);

/** The rank of a severity, 0 for none or an unknown word (a stored row from an older version). */
export function severityRank(severity: string | null | undefined): number {
  return (SEVERITY_RANK as Record<string, number>)[severity ?? ''] ?? 0;
}

/** The same order as a SQL CASE over `column`, for max() and ORDER BY in the store; `otherwise` for anything else. */
export function severityRankSql(column: string, otherwise = 0): string {
  if (!/^[a-z_][a-z0-9_.]*$/i.test(column)) throw new Error(`severityRankSql: not a column name: ${column}`);
  const whens = SEVERITIES.map((s) => `when '${s}' then ${SEVERITY_RANK[s]}`).join(' ');
  return `case ${column} ${whens} else ${otherwise} end`;
}

/** Where a changed file means code execution or credentials: binaries, libraries, boot, auth, keys. */
const CRITICAL_PATHS = globMatcher(
  [
    '/usr/bin/**',
    '/usr/sbin/**',
    '/bin/**',
    '/sbin/**',
    '/usr/local/bin/**',
    '/usr/local/sbin/**',
    '/usr/lib/**/*.so',
    '/usr/lib/**/*.so.*',
    '/usr/lib64/**',
    '/lib/**',
    '/lib64/**',
    '/usr/libexec/**',
    '/boot/**',
    '/root/.ssh/**',
    '/home/*/.ssh/**',
    '/etc/sudoers',
    '/etc/sudoers.d/**',
    '/etc/passwd',
    '/etc/shadow',
    '/etc/group',
    '/etc/gshadow',
    '/etc/pam.d/**',
    '/etc/ld.so.preload',
    '/etc/ssh/sshd_config',
    '/etc/ssh/sshd_config.d/**',
    '/etc/security/**',
  ],
  'path',
);

/** Kernel parameters that switch off a protection or turn a host into a router. */
const SECURITY_SYSCTLS = globMatcher(
  [
    'kernel.kptr_restrict',
    'kernel.dmesg_restrict',
    'kernel.yama.ptrace_scope',
    'kernel.modules_disabled',
    'kernel.unprivileged_bpf_disabled',
    'kernel.randomize_va_space',
    'kernel.kexec_load_disabled',
    'kernel.sysrq',
    'kernel.core_pattern',
    'fs.protected_*',
    'fs.suid_dumpable',
    'net.ipv4.ip_forward',
    'net.ipv6.conf.*.forwarding',
    'net.ipv4.conf.*.accept_redirects',
    'net.ipv4.conf.*.rp_filter',
    'net.core.bpf_jit_harden',
    'user.max_user_namespaces',
    'kernel.unprivileged_userns_clone',
  ],
  'name',
);

function setuidGained(expected: Record<string, unknown> | null, actual: Record<string, unknown> | null): boolean {
  const bits = (v: unknown) => (typeof v === 'string' ? parseInt(v, 8) & 0o6000 : 0);
  return bits(actual?.mode) & ~bits(expected?.mode) ? true : false;
}

export function defaultSeverity(
  collector: CollectorName,
  change: Change,
  key: string,
  expected: Record<string, unknown> | null,
  actual: Record<string, unknown> | null,
): Severity {
  switch (collector) {
    case 'sysctl':
      return SECURITY_SYSCTLS(key) ? 'high' : 'medium';
    case 'files':
      if (setuidGained(expected, actual)) return 'critical';
      if (CRITICAL_PATHS(key)) return change === 'removed' ? 'high' : 'critical';
      if (key.startsWith('/etc/') || key.startsWith('/opt/') || key.startsWith('/usr/'))
        return change === 'removed' ? 'medium' : 'high';
      return 'medium';
    case 'accounts':
      // A group alone grants nothing until someone is in it; a user, a key or a sudo rule is a way in.
      if (key.startsWith('group:') && change === 'added') return 'high';
      if (
        change !== 'removed' &&
        (actual?.uid === 0 ||
          (key.startsWith('group:') && ['root', 'sudo', 'wheel', 'adm', 'docker'].includes(key.slice(6))))
      )
        return 'critical';
      return collectorDef(collector)!.severity[change];
    default:
      // Packages and cron (persistence) and the rest: as the registry declares.
      return collectorDef(collector)!.severity[change];
  }
}
