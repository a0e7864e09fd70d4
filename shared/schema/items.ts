/** @module What each collector records about one item; the key is the item's identity in its section. */
import { z } from 'zod';
import { HexSha256Schema, HostPathSchema, type CollectorName } from './common.js';

export const PackageItemSchema = z.strictObject({
  key: z.string().min(1), // name:arch
  manager: z.enum(['dpkg', 'rpm', 'apk']),
  name: z.string().min(1),
  arch: z.string(),
  version: z.string(),
  /** `installed` for a healthy package; dpkg's other states (half-installed, config-files, ...) as dpkg names them. */
  state: z.string(),
});
export type PackageItem = z.infer<typeof PackageItemSchema>;

export const SysctlItemSchema = z.strictObject({
  key: z.string().min(1), // dotted name
  /** Value read from proc/sys now, whitespace-normalised; null when only declared. */
  runtime: z.string().nullable(),
  /** Value the sysctl.d/sysctl.conf files ask for at boot; null when nothing declares it. */
  declared: z.string().nullable(),
  declaredIn: HostPathSchema.nullable(),
});
export type SysctlItem = z.infer<typeof SysctlItemSchema>;

/**
 * A timer's enablement as `systemctl is-enabled` names it (systemd's UnitFileState, install.c), so
 * an image's `static` vendor timer and an admin's `enabled` one read the same here as on the host.
 */
export const UNIT_FILE_STATES = [
  'enabled',
  'enabled-runtime',
  'linked',
  'linked-runtime',
  'alias',
  'masked',
  'masked-runtime',
  'static',
  'indirect',
  'disabled',
  'generated',
  'transient',
] as const;
export type UnitFileState = (typeof UNIT_FILE_STATES)[number];

export const CronItemSchema = z.strictObject({
  key: z.string().min(1),
  kind: z.enum(['entry', 'env', 'script', 'timer', 'unparseable']),
  file: HostPathSchema,
  schedule: z.string().optional(),
  user: z.string().optional(),
  command: z.string().optional(),
  stdin: z.string().optional(),
  name: z.string().optional(),
  value: z.string().optional(),
  sha256: HexSha256Schema.optional(),
  mode: z.string().optional(),
  /** Timers only: the enablement state (UNIT_FILE_STATES). */
  state: z.enum(UNIT_FILE_STATES).optional(),
  /** The boolean that `state` replaced: it called a statically enabled timer disabled. */
  enabled: z
    .never({
      error:
        'replaced by `state` (the enablement as systemctl is-enabled names it): rebuild the manifest with this version of driftwarden',
    })
    .optional(),
  timer: z.record(z.string(), z.string()).optional(),
  error: z.string().optional(),
});
export type CronItem = z.infer<typeof CronItemSchema>;

export const FILE_TYPES = ['file', 'dir', 'symlink', 'char', 'block', 'fifo', 'socket'] as const;

export const FileItemSchema = z.strictObject({
  key: HostPathSchema,
  type: z.enum(FILE_TYPES),
  /** Permission bits including setuid/setgid/sticky, as four octal digits. */
  mode: z.string().regex(/^[0-7]{4}$/),
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
  size: z.number().int().nonnegative().optional(),
  sha256: HexSha256Schema.optional(),
  target: z.string().optional(),
  /** Why a regular file has no hash (e.g. EACCES); its metadata is still compared. */
  error: z.string().optional(),
});
export type FileItem = z.infer<typeof FileItemSchema>;

export const KernelModuleItemSchema = z.strictObject({
  key: z.string().min(1), // module name, `-` written `_` as the kernel does
  name: z.string().min(1),
  /** Listed in proc/modules now; false when only declared or blacklisted. */
  loaded: z.boolean(),
  /** Loaded size rounded up to a power of two: a different build moves class, the same module reloaded does not. */
  sizeClass: z.number().int().nonnegative().nullable(),
  /** The kernel's taint letters for the module (`O` out-of-tree, `E` unsigned, `F` forced, ...), `''` for none. */
  taint: z.string().nullable(),
  /** The files that ask for it at boot (etc/modules, modules-load.d), in search order. */
  declared: z.array(HostPathSchema),
  /** The modprobe.d files that blacklist it. */
  blacklisted: z.array(HostPathSchema),
  /** A modprobe.d `install` command that replaces loading it (`/bin/true`, `/bin/false` disable it). */
  installCommand: z.string().nullable(),
});
export type KernelModuleItem = z.infer<typeof KernelModuleItemSchema>;

export const ServiceItemSchema = z.strictObject({
  key: z.string().min(1), // unit name, or `preset:<host path>`
  kind: z.enum(['unit', 'preset']),
  /** The file systemd uses for the unit (a same-name link's target), or the preset file. */
  path: HostPathSchema,
  /** Units only: the enablement as `systemctl is-enabled` names it. */
  state: z.enum(UNIT_FILE_STATES).optional(),
  sha256: HexSha256Schema.optional(),
  /** Drop-ins systemd applies, in the order it applies them. */
  dropIns: z.array(z.strictObject({ path: HostPathSchema, sha256: HexSha256Schema })).optional(),
  error: z.string().optional(),
});
export type ServiceItem = z.infer<typeof ServiceItemSchema>;

/** What shadow says about a password, never the hash: `set`, `none` (empty: no password needed), `locked` (`!` before a hash), `disabled` (`*`, `!` alone, `!*`). */
export const PASSWORD_STATES = ['set', 'none', 'locked', 'disabled'] as const;

export const AccountItemSchema = z.strictObject({
  key: z.string().min(1), // user:<name>, group:<name>, sudoers:<path>, key:<user>:<fingerprint>
  kind: z.enum(['user', 'group', 'sudoers', 'key']),
  uid: z.number().int().nonnegative().optional(),
  gid: z.number().int().nonnegative().optional(),
  home: z.string().optional(),
  shell: z.string().optional(),
  gecos: z.string().optional(),
  /** Users with a shadow entry: PASSWORD_STATES. */
  password: z.enum(PASSWORD_STATES).optional(),
  /** shadow's last-change field as written (days since 1970-01-01), `''` when empty. */
  passwordChanged: z.string().optional(),
  members: z.array(z.string()).optional(),
  sha256: HexSha256Schema.optional(),
  /** sudoers: the rules and defaults, one per line, continuation lines joined, comments and blanks dropped. */
  rules: z.array(z.string()).optional(),
  /** ssh keys: the key type; the key itself is kept only as its fingerprint (the key). */
  type: z.string().optional(),
  file: HostPathSchema.optional(),
  options: z.string().optional(),
  error: z.string().optional(),
});
export type AccountItem = z.infer<typeof AccountItemSchema>;

export const FirewallItemSchema = z.strictObject({
  key: z.string().min(1), // saved:<path>, live:nft:<family> <table> <chain|set ...>, live:iptables:<table> <chain>
  source: z.enum(['saved', 'live']),
  sha256: HexSha256Schema.optional(),
  /** In order, with packet/byte counters and handles removed. */
  rules: z.array(z.string()).optional(),
  policy: z.string().optional(),
  error: z.string().optional(),
});
export type FirewallItem = z.infer<typeof FirewallItemSchema>;

export interface ItemTypes {
  packages: PackageItem;
  sysctl: SysctlItem;
  cron: CronItem;
  files: FileItem;
  'kernel-modules': KernelModuleItem;
  services: ServiceItem;
  accounts: AccountItem;
  firewall: FirewallItem;
}
export type AnyItem = ItemTypes[keyof ItemTypes];

/** Each collector's item schema; the mapped type makes a collector missing here a compile error. */
export const ITEM_SCHEMAS: { readonly [N in CollectorName]: z.ZodObject } = {
  packages: PackageItemSchema,
  sysctl: SysctlItemSchema,
  cron: CronItemSchema,
  files: FileItemSchema,
  'kernel-modules': KernelModuleItemSchema,
  services: ServiceItemSchema,
  accounts: AccountItemSchema,
  firewall: FirewallItemSchema,
};
