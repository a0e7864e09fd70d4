/** @module The controller's YAML configuration: validated once at start-up, frozen, errors name the key. */
import { z } from 'zod';
import { loadConfigFile } from '../shared/config-load.js';
import { HostPathSchema } from '../shared/schema/common.js';
import { LIMITS } from '../shared/schema/limits.js';
import { DurationSchema, parseDuration } from '../shared/schema/config.js';
import { SCHEDULER_DEFAULT, SchedulerConfigSchema } from './scheduler/config.js';

const ListenSchema = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[0-9.]+|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected HOST:PORT, e.g. 0.0.0.0:8443');

const StoreUrlSchema = z
  .string()
  .refine((s) => s.startsWith('sqlite:') || s.startsWith('postgres://') || s.startsWith('postgresql://'), 'expected sqlite:/path/to/file.db or postgres://user@host/db');

/** A webhook that receives signed POSTs (HMAC-SHA256 over timestamp and body, when a secret is set). */
const WebhookSinkSchema = z.strictObject({
  url: z.string().url().refine((u) => /^https?:\/\//.test(u), 'expected an http(s) URL'),
  secretFile: HostPathSchema.optional(),
});

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
  /**
   * Wall time one report may take to ingest; past it the report is rolled back and answered 503 (the
   * agent retries later). The limits in shared/schema/limits.ts keep the largest report well inside it.
   */
  requestTimeBudget: DurationSchema.default(`${LIMITS.requestTimeBudgetMs / 1000}s`),
  /** The replacement scheduler (controller/scheduler/config.ts). */
  scheduler: SchedulerConfigSchema.default(SCHEDULER_DEFAULT),
  /** The web dashboard served at `/`. */
  dashboard: z
    .strictObject({
      sessionTtl: DurationSchema.default('8h'),
      /** At least 32 random bytes shared by every controller behind one name; else a per-process key. */
      sessionKeyFile: HostPathSchema.optional(),
    })
    .default({ sessionTtl: '8h' }),
  /** The SIEM feed: the event stream as OCSF JSON lines, pushed to a webhook and/or syslog. */
  siem: z
    .strictObject({
      webhook: WebhookSinkSchema.optional(),
      syslog: z
        .strictObject({
          host: z.string().min(1),
          port: z.number().int().min(1).max(65535).default(514),
          protocol: z.enum(['udp', 'tcp']).default('udp'),
          /** RFC 5424 APP-NAME. */
          appName: z.string().regex(/^[!-~]{1,48}$/, 'printable ASCII without spaces, at most 48').default('driftwarden'),
          facility: z.number().int().min(0).max(23).default(10),
        })
        .optional(),
      /** How often the forwarders look for new events. */
      interval: DurationSchema.default('5s'),
    })
    .default({ interval: '5s' }),
  /** Chat notifications on taint, breaker trips and failed replacements. */
  notifications: z.strictObject({ webhook: WebhookSinkSchema }).optional(),
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
