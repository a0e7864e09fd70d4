/** @module Collection rules: what a manifest was built from, baked in so every check collects the same way. */
import { z } from 'zod';
import { COLLECTOR_DEFS } from '../collectors.js';
import { CollectorNameSchema, HostPathSchema } from './common.js';

/** Paths a healthy host rewrites by itself; comparing them would only produce noise. */
export const DEFAULT_FILE_IGNORES: readonly string[] = [
  '/etc/resolv.conf',
  '/etc/hostname',
  '/etc/machine-id',
  '/etc/mtab',
  '/etc/adjtime',
  '/etc/.pwd.lock',
  '/etc/ssh/ssh_host_*',
  '/etc/ld.so.cache',
  '/var/log/**',
  '/var/cache/**',
  '/var/tmp/**',
  '/tmp/**',
  '/run/**',
  '**/*.log',
  '**/__pycache__',
  '**/__pycache__/**',
  '**/*.pyc',
];

export const DEFAULT_FILE_ROOTS: readonly string[] = ['/etc', '/usr', '/opt', '/boot', '/root/.ssh', '/home/*/.ssh'];

/**
 * Kernel parameters that change on their own (counters, entropy, per-boot random values) or are
 * per-interface in a way containers churn; excluding them keeps a healthy host clean.
 */
export const DEFAULT_SYSCTL_EXCLUDES: readonly string[] = [
  'kernel.random.*',
  '*.stat',
  'fs.dentry-state',
  'fs.inode-nr',
  'fs.inode-state',
  'fs.file-nr',
  'fs.aio-nr',
  'fs.quota.*',
  'fs.binfmt_misc.*',
  'kernel.ns_last_pid',
  'kernel.pty.nr',
  'kernel.perf_event_max_sample_rate',
  'kernel.hostname',
  'kernel.domainname',
  'kernel.sched_domain.*',
  'net.netfilter.nf_conntrack_count',
  'net.ipv4.conf.veth*.*',
  'net.ipv6.conf.veth*.*',
  'net.ipv4.neigh.veth*.*',
  'net.ipv6.neigh.veth*.*',
  'vm.stat_refresh',
  'vm.drop_caches',
  'vm.compact_memory',
  'dev.cdrom.info',
];

export const GlobListSchema = z.array(z.string().min(1));

export const CollectionRulesSchema = z.strictObject({
  collectors: z.array(CollectorNameSchema),
  files: z.strictObject({
    roots: z.array(HostPathSchema).min(1),
    ignore: GlobListSchema,
  }),
  sysctl: z.strictObject({
    exclude: GlobListSchema,
  }),
});
export type CollectionRules = z.infer<typeof CollectionRulesSchema>;

export function defaultRules(): CollectionRules {
  return {
    collectors: COLLECTOR_DEFS.filter((d) => d.enabledByDefault).map((d) => d.name),
    files: { roots: [...DEFAULT_FILE_ROOTS], ignore: [...DEFAULT_FILE_IGNORES] },
    sysctl: { exclude: [...DEFAULT_SYSCTL_EXCLUDES] },
  };
}
