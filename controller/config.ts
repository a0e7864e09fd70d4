/** @module The controller's YAML configuration: validated once at start-up, frozen, errors name the key. */
import { z } from 'zod';
import { loadConfigFile } from '../shared/config-load.js';
import { HostPathSchema } from '../shared/schema/common.js';
import { DurationSchema, parseDuration } from '../shared/schema/config.js';
import { SCHEDULER_DEFAULT, SchedulerConfigSchema } from './scheduler/config.js';

const ListenSchema = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[0-9.]+|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected HOST:PORT, e.g. 0.0.0.0:8443');

const StoreUrlSchema = z
  .string()
  .refine((s) => s.startsWith('sqlite:') || s.startsWith('postgres://') || s.startsWith('postgresql://'), 'expected sqlite:/path/to/file.db or postgres://user@host/db');

export const ControllerConfigSchema = z.strictObject({
  listen: ListenSchema.default('127.0.0.1:8443'),
  tls: z.strictObject({ certFile: HostPathSchema, keyFile: HostPathSchema }).optional(),
  store: StoreUrlSchema.default('sqlite:/var/lib/driftwarden/controller.db'),
  /** Public keys whose manifest signatures are trusted. */
  trustedKeys: z.array(HostPathSchema).default([]),
  allowUnsignedManifests: z.boolean().default(false),
  policy: HostPathSchema.optional(),
  /** A host not heard from for this long becomes silent... */
  silentAfter: DurationSchema.default('10m'),
  /** ...and after this long, tainted: a host that stays dark cannot be vouched for. */
  taintSilentAfter: DurationSchema.default('24h'),
  retention: z.strictObject({ reports: DurationSchema.default('30d') }).default({ reports: '30d' }),
  /** Largest request body accepted, in bytes. */
  bodyLimit: z.number().int().positive().max(256 * 1024 * 1024).default(8 * 1024 * 1024),
  /** The replacement scheduler (controller/scheduler/config.ts). */
  scheduler: SchedulerConfigSchema.default(SCHEDULER_DEFAULT),
});
export type ControllerConfig = z.infer<typeof ControllerConfigSchema>;

export function loadControllerConfig(path: string): ControllerConfig {
  return loadConfigFile(ControllerConfigSchema, path);
}

export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new Error(`not a duration: ${text}`);
  return ms;
}
