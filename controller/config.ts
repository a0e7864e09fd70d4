/** @module The controller's YAML configuration: validated once at start-up, frozen, errors name the key. */
import { isIP } from 'node:net';
import { z } from 'zod';
import { loadConfigFile } from '../shared/config-load.js';
import { HostPathSchema } from '../shared/schema/common.js';
import { AwsAccountIdSchema, AwsRegionSchema } from '../shared/schema/identity.js';
import { LIMITS } from '../shared/schema/limits.js';
import { DurationSchema, parseDuration } from '../shared/schema/config.js';
import type { RetentionPolicy } from './retention.js';
import { SCHEDULER_DEFAULT, SchedulerConfigSchema } from './scheduler/config.js';

const ListenSchema = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[0-9.]+|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected HOST:PORT, e.g. 0.0.0.0:8443');

const StoreUrlSchema = z
  .string()
  .refine(
    (s) => s.startsWith('sqlite:') || s.startsWith('postgres://') || s.startsWith('postgresql://'),
    'expected sqlite:/path/to/file.db or postgres://user@host/db',
  );

/** A webhook that receives signed POSTs (HMAC-SHA256 over timestamp and body, when a secret is set). */
const WebhookSinkSchema = z.strictObject({
  url: z
    .string()
    .url()
    .refine((u) => /^https?:\/\//.test(u), 'expected an http(s) URL'),
  secretFile: HostPathSchema.optional(),
});

/** A token bucket: a burst of `max` attempts, refilled at `max` per `per`. */
const AttemptRateSchema = z.strictObject({
  max: z.number().int().min(1).max(1_000_000),
  per: DurationSchema.refine((d) => parseDuration(d)! > 0, 'expected a duration above zero'),
});

/** A proxy address or CIDR block whose X-Forwarded-For is believed. */
const ProxyAddressSchema = z.string().refine((s) => {
  const [addr, bits, extra] = s.split('/');
  if (extra !== undefined || isIP(addr ?? '') === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d{1,3}$/.test(bits) && n <= (isIP(addr!) === 4 ? 32 : 128);
}, 'expected an IP address or CIDR block, e.g. 10.0.0.0/8');

export const RATE_LIMIT_DEFAULT = {
  failedAuth: { max: 20, per: '1m' },
  enroll: { max: 10, per: '1m' },
  maxSources: 10_000,
};

export const OVERLOAD_DEFAULT = { maxInFlight: 1024, maxStoreWaiting: 512, retryAfter: '5s' };
/** A retention age: a duration, or `forever` (not pruned by age). */
const RetentionAgeSchema = z
  .string()
  .refine((s) => s === 'forever' || parseDuration(s) !== null, 'expected a duration such as 30d or 12h, or forever');

export const RETENTION_DEFAULT = {
  reports: { maxAge: '30d', maxPerHost: 2_000 },
  events: { maxAge: '90d' },
  audit: { maxAge: '365d' },
  resolvedFindings: { maxAge: '90d' },
  every: '1h',
};

const ReportRetentionSchema = z.strictObject({
  maxAge: RetentionAgeSchema.default(RETENTION_DEFAULT.reports.maxAge),
  /** The newest this many per host are kept (whatever their age); null: no count limit. */
  maxPerHost: z.number().int().min(1).nullable().default(RETENTION_DEFAULT.reports.maxPerHost),
});

const RetentionSchema = z.strictObject({
  /** `reports: 30d` (the form before per-host counts) is `{ maxAge: 30d }` with the default count. */
  reports: z
    .union([
      RetentionAgeSchema.transform((maxAge) => ({ maxAge, maxPerHost: RETENTION_DEFAULT.reports.maxPerHost })),
      ReportRetentionSchema,
    ])
    .default(RETENTION_DEFAULT.reports),
  events: z.strictObject({ maxAge: RetentionAgeSchema.default('90d') }).default(RETENTION_DEFAULT.events),
  /** Pruned only under a checkpoint, so `audit verify` still proves what is kept. */
  audit: z.strictObject({ maxAge: RetentionAgeSchema.default('365d') }).default(RETENTION_DEFAULT.audit),
  /** The deviations left on a host once it is replaced (its findings resolved), counted from the replacement. */
  resolvedFindings: z
    .strictObject({ maxAge: RetentionAgeSchema.default('90d') })
    .default(RETENTION_DEFAULT.resolvedFindings),
  /** How often a pruning pass starts (one at a time). */
  every: DurationSchema.refine((d) => parseDuration(d)! >= 60_000, 'at least 1m').default('1h'),
});

export const ControllerConfigSchema = z.strictObject({
  listen: ListenSchema.default('127.0.0.1:8443'),
  tls: z
    .strictObject({
      certFile: HostPathSchema,
      keyFile: HostPathSchema,
      /** CA that client certificates must chain to (mTLS); agents then send controller.certFile/keyFile. */
      clientCaFile: HostPathSchema.optional(),
      /** With clientCaFile: refuse, at the TLS handshake, a client without a valid certificate (default true). */
      requireClientCert: z.boolean().default(true),
    })
    .optional(),
  store: StoreUrlSchema.default('sqlite:/var/lib/driftwarden/controller.db'),
  /**
   * Enrollment by AWS identity (POST /api/v1/enroll/aws), beside enrollment tokens: an instance whose
   * signed identity document verifies against one of `certificates` (AWS's published regional
   * certificates for the base64 `signature` document, PEM files), names one of `accounts` and, when
   * given, one of `regions`, and launched at most `maxAge` ago, enrolls without a token, into a group
   * matching `groups` when that is set. Absent: the route answers 403.
   */
  enrollment: z
    .strictObject({
      aws: z
        .strictObject({
          certificates: z
            .array(HostPathSchema)
            .min(1, 'at least one certificate: without one no document can be verified'),
          accounts: z
            .array(AwsAccountIdSchema)
            .min(1, 'at least one account: any account at all would let anyone with an EC2 instance enroll'),
          regions: z.array(AwsRegionSchema).default([]),
          maxAge: DurationSchema.default('1h'),
          groups: z.array(z.string().min(1)).optional(),
        })
        .optional(),
    })
    .default({}),
  /** Public keys whose manifest signatures are trusted. */
  trustedKeys: z.array(HostPathSchema).default([]),
  allowUnsignedManifests: z.boolean().default(false),
  policy: HostPathSchema.optional(),
  /** A host not heard from for this long becomes silent... */
  silentAfter: DurationSchema.default('10m'),
  /** ...and after this long, tainted: a host that stays dark cannot be vouched for. */
  taintSilentAfter: DurationSchema.default('24h'),
  /**
   * The longest a host may go without a full scan reaching the controller before it is tainted:
   * heartbeats and watcher events alone never keep a host clean. Set it to a few of the agents' scan
   * intervals; the default allows a daily scan an hour's slack.
   */
  scanMaxAge: DurationSchema.default('25h'),
  /** What is pruned, and when (controller/retention.ts); `forever` keeps a kind by age. */
  retention: RetentionSchema.default(RETENTION_DEFAULT),
  /** Largest request body accepted, in bytes, as sent (gzip-compressed or not). */
  bodyLimit: z
    .number()
    .int()
    .positive()
    .max(256 * 1024 * 1024)
    .default(8 * 1024 * 1024),
  /** Largest report body once decompressed, in bytes: a small gzip body cannot expand past it. */
  decodedBodyLimit: z
    .number()
    .int()
    .positive()
    .max(1024 * 1024 * 1024)
    .default(64 * 1024 * 1024),
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
          appName: z
            .string()
            .regex(/^[!-~]{1,48}$/, 'printable ASCII without spaces, at most 48')
            .default('driftwarden'),
          facility: z.number().int().min(0).max(23).default(10),
        })
        .optional(),
      /** How often the forwarders look for new events. */
      interval: DurationSchema.default('5s'),
    })
    .default({ interval: '5s' }),
  /**
   * Per source address (IPv6 by /64): failed authentications of any kind (bearer tokens, host
   * credentials, enrollment tokens, dashboard sign-ins, session cookies), and enrollment attempts.
   * A source past either gets 429 with Retry-After on everything that needs a credential.
   */
  rateLimit: z
    .strictObject({
      failedAuth: AttemptRateSchema.default(RATE_LIMIT_DEFAULT.failedAuth),
      enroll: AttemptRateSchema.default(RATE_LIMIT_DEFAULT.enroll),
      /** Sources tracked at once (bounded memory); the least recently seen is forgotten first. */
      maxSources: z.number().int().min(100).max(1_000_000).default(RATE_LIMIT_DEFAULT.maxSources),
    })
    .default(RATE_LIMIT_DEFAULT),
  /**
   * Load shedding (overload.ts): past either bound a request is answered 503 DW_ERR_UNAVAILABLE with
   * Retry-After at once, whoever sends it, instead of queueing until everything times out.
   */
  overload: z
    .strictObject({
      /** Requests with a credential handled at once (/healthz is never shed). */
      maxInFlight: z.number().int().min(1).max(1_000_000).default(OVERLOAD_DEFAULT.maxInFlight),
      /** Queries waiting for a PostgreSQL pool connection (SQLite never queues this way). */
      maxStoreWaiting: z.number().int().min(0).max(1_000_000).default(OVERLOAD_DEFAULT.maxStoreWaiting),
      /** What Retry-After says (whole seconds); agents wait that plus up to half again, at random. */
      retryAfter: DurationSchema.refine((d) => parseDuration(d)! >= 1000, 'expected at least 1s').default(
        OVERLOAD_DEFAULT.retryAfter,
      ),
    })
    .default(OVERLOAD_DEFAULT),
  /**
   * Behind a reverse proxy or load balancer, which X-Forwarded-For to believe: the proxies' addresses
   * or CIDR blocks, or a number of hops. Off by default: a client could otherwise name any address
   * it likes and escape the rate limits.
   */
  trustProxy: z
    .union([z.literal(false), z.number().int().min(1).max(10), z.array(ProxyAddressSchema).min(1)])
    .default(false),
  /**
   * Periodic anchors of the audit log and event stream (audit-anchor.ts), written as anchor-*.json
   * files into `dir`: point it at storage the database's owner cannot rewrite (a mount of write-once
   * storage, a directory another host collects from). Signed with `keyFile` when given.
   */
  audit: z
    .strictObject({
      anchors: z
        .strictObject({ dir: HostPathSchema, keyFile: HostPathSchema.optional(), every: DurationSchema.default('1h') })
        .optional(),
    })
    .default({}),
  /** Chat notifications on taint, breaker trips and failed replacements. */
  notifications: z.strictObject({ webhook: WebhookSinkSchema }).optional(),
});
export type ControllerConfig = z.infer<typeof ControllerConfigSchema>;

export function loadControllerConfig(path: string): ControllerConfig {
  return loadConfigFile(ControllerConfigSchema, path);
}

/** The config's retention as retention.ts takes it. */
export function retentionPolicy(config: ControllerConfig): RetentionPolicy {
  const r = config.retention;
  return {
    reports: { maxAgeMs: retentionAgeMs(r.reports.maxAge), maxPerHost: r.reports.maxPerHost },
    events: { maxAgeMs: retentionAgeMs(r.events.maxAge) },
    audit: { maxAgeMs: retentionAgeMs(r.audit.maxAge) },
    resolvedFindings: { maxAgeMs: retentionAgeMs(r.resolvedFindings.maxAge) },
  };
}

/** A retention age in ms; null for `forever`. */
export function retentionAgeMs(text: string): number | null {
  return text === 'forever' ? null : durationMs(text);
}

export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new Error(`not a duration: ${text}`);
  return ms;
}
