/** @module What each collector records about one item; the key is the item's identity in its section. */
import { z } from 'zod';
import { HexSha256Schema, HostPathSchema } from './common.js';

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
export const UNIT_FILE_STATES = ['enabled', 'enabled-runtime', 'linked', 'linked-runtime', 'alias', 'masked', 'masked-runtime', 'static', 'indirect', 'disabled', 'generated', 'transient'] as const;
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
  enabled: z.never({ error: 'replaced by `state` (the enablement as systemctl is-enabled names it): rebuild the manifest with this version of driftwarden' }).optional(),
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

export interface ItemTypes {
  packages: PackageItem;
  sysctl: SysctlItem;
  cron: CronItem;
  files: FileItem;
}
export type AnyItem = ItemTypes[keyof ItemTypes];
