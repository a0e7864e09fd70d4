/** @module The agent's YAML configuration: parsed once, validated with zod, frozen. */
import { validate as validateCron } from 'node-cron';
import { z } from 'zod';
import { collectorDef } from '../collectors.js';
import { COLLECTOR_NAMES, HostPathSchema, type CollectorName } from './common.js';
import { GlobListSchema } from './rules.js';
import { DEFAULT_LIMITS } from '../agent-limits.js';
import { parseDuration } from '../duration.js';

export { parseDuration };

export const DurationSchema = z
  .string()
  .refine((s) => parseDuration(s) !== null, 'expected a duration such as 500ms, 60s, 10m, 1h or 2d');

const CronExprSchema = z
  .string()
  .refine(
    (s) => validateCron(s),
    'expected a cron expression (5 fields, or 6 with seconds first), e.g. "*/30 * * * *"',
  );

const toggle = { enabled: z.boolean().default(true) };

/** 127.0.0.0/8, ::1 and localhost: traffic to them never leaves the host. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (/^::ffff:127\.\d+\.\d+\.\d+$/.test(h)) return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export const AgentControllerSchema = z
  .strictObject({
    url: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//i.test(u), 'expected an http(s) URL'),
    enrollmentToken: z.string().min(1).optional(),
    enrollmentTokenFile: HostPathSchema.optional(),
    caFile: HostPathSchema.optional(),
    /** A client certificate and its key (0600) for a controller that requires mTLS; the host credential is still sent. */
    certFile: HostPathSchema.optional(),
    keyFile: HostPathSchema.optional(),
    /** Plain http:// to a host other than loopback sends the host credential and every report in the clear. */
    allowInsecure: z.boolean().default(false),
    /**
     * A scan the controller does not take for this long, while the controller answers its health check,
     * is set aside as undelivered and announced in every heartbeat until a scan gets through.
     */
    undeliveredAfter: DurationSchema.default('15m'),
  })
  .superRefine((c, ctx) => {
    const url = new URL(c.url);
    if (url.protocol === 'http:' && !c.allowInsecure && !isLoopbackHost(url.hostname)) {
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        message: `plain http:// to ${url.hostname}, which is not loopback, would send the host credential and reports in the clear: use https://, or set controller.allowInsecure: true`,
      });
    }
    if ((c.certFile === undefined) !== (c.keyFile === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [c.certFile === undefined ? 'certFile' : 'keyFile'],
        message: 'a client certificate needs both controller.certFile and controller.keyFile',
      });
    }
    if (c.certFile && url.protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'a client certificate is only sent over https://' });
    }
  });

/** Collectors whose only setting is `enabled`, defaulting as the registry says. */
type SimpleCollector = Exclude<CollectorName, 'sysctl' | 'files'>;
const SIMPLE = COLLECTOR_NAMES.filter((n): n is SimpleCollector => n !== 'sysctl' && n !== 'files');
const simpleDefaults = () =>
  Object.fromEntries(SIMPLE.map((n) => [n, { enabled: collectorDef(n)!.enabledByDefault }])) as Record<
    SimpleCollector,
    { enabled: boolean }
  >;
const simpleToggles = Object.fromEntries(
  SIMPLE.map((n) => [
    n,
    z
      .strictObject({ enabled: z.boolean().default(collectorDef(n)!.enabledByDefault) })
      .default({ enabled: collectorDef(n)!.enabledByDefault }),
  ]),
) as Record<SimpleCollector, z.ZodDefault<z.ZodObject<{ enabled: z.ZodDefault<z.ZodBoolean> }, z.core.$strict>>>;

export const AgentConfigSchema = z.strictObject({
  controller: AgentControllerSchema.optional(),
  manifest: HostPathSchema.optional(),
  /**
   * Public keys (PEM files) the manifest must be signed by: with any, an unsigned or badly signed
   * manifest stops the agent at start. The controller checks the digest the agent reports against its
   * own signed copy either way; this refuses a bad manifest on the host itself, before it is used.
   */
  trustedKeys: z.array(HostPathSchema).min(1).optional(),
  root: HostPathSchema.default('/'),
  stateDir: HostPathSchema.default('/var/lib/driftwarden'),
  /**
   * Where the host runs, sent in every report (agent/cloud-identity.ts). `auto`: a Kubernetes node when
   * NODE_NAME is set, else one IMDSv2 probe within `imdsTimeout`, else a plain host (machine-id); the
   * answer is cached in stateDir. Read only for the live root (`root: /`): a mounted root is another
   * machine's files, and this machine's IMDS says nothing about it. `enroll: aws` enrolls with the
   * signed identity document (POST /api/v1/enroll/aws) instead of an enrollment token.
   */
  identity: z
    .strictObject({
      mode: z.enum(['auto', 'aws', 'kubernetes', 'host']).default('auto'),
      imdsEndpoint: z
        .string()
        .url()
        .refine((u) => /^https?:\/\//.test(u), 'expected an http(s) URL')
        .default('http://169.254.169.254'),
      imdsTimeout: DurationSchema.default('1s'),
      enroll: z.enum(['token', 'aws']).default('token'),
    })
    .default({ mode: 'auto', imdsEndpoint: 'http://169.254.169.254', imdsTimeout: '1s', enroll: 'token' }),
  group: z.string().min(1).optional(),
  schedule: z
    .strictObject({
      scan: CronExprSchema.default('*/30 * * * *'),
      fullRehash: CronExprSchema.default('0 3 * * 0'),
      heartbeat: DurationSchema.default('60s'),
    })
    .default({ scan: '*/30 * * * *', fullRehash: '0 3 * * 0', heartbeat: '60s' }),
  collectors: z
    .strictObject({
      ...simpleToggles,
      sysctl: z
        .strictObject({ ...toggle, exclude: GlobListSchema.default([]) })
        .default({ enabled: true, exclude: [] }),
      files: z
        .strictObject({
          ...toggle,
          /** Replaces the default roots when given. */
          roots: z.array(HostPathSchema).min(1).optional(),
          /** Added to the default ignore globs. */
          ignore: GlobListSchema.default([]),
        })
        .default({ enabled: true, ignore: [] }),
    })
    .default(() => ({
      ...simpleDefaults(),
      sysctl: { enabled: collectorDef('sysctl')!.enabledByDefault, exclude: [] },
      files: { enabled: collectorDef('files')!.enabledByDefault, ignore: [] },
    })),
  watch: z.strictObject({ paths: z.array(HostPathSchema) }).optional(),
  /** The durable spool's bound in bytes (default 64 MiB); past it the oldest reports go first, never the newest scan. */
  spool: z.strictObject({ maxBytes: z.number().int().positive().optional() }).optional(),
  /** The scan watchdog: the agent is a guest on the host. */
  limits: z
    .strictObject({
      /** Share of one core a scan may use on average (2 = two cores). */
      cpuShare: z.number().gt(0).max(64).default(DEFAULT_LIMITS.cpuShare),
      /**
       * Resident memory of the scan process past which the agent kills it and reports the scan
       * incomplete; its V8 heap limit is 60 % of it. The task process alone (Node and the scanning code)
       * takes about 70 MB, hence the minimum.
       */
      memoryMb: z.number().int().min(128).default(DEFAULT_LIMITS.memoryMb),
      maxScanDuration: DurationSchema.default(DEFAULT_LIMITS.maxScanDuration),
    })
    .default({ ...DEFAULT_LIMITS }),
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;
/** The config as a user writes it: keys with defaults may be left out. */
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;
