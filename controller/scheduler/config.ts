/**
 * @module The `scheduler:` block of controller.yaml: modes, budgets, maintenance windows, the breaker,
 * providers, retries. Validated with the rest of the config at start-up; every key is documented in
 * README.md ("Replacement").
 */
import { z } from 'zod';
import { HostPathSchema } from '../../shared/schema/common.js';
import { DurationSchema } from '../../shared/schema/config.js';
import { isTimeZone, parseCron } from './windows.js';

export const MODES = ['off', 'dry-run', 'enforce'] as const;
export type Mode = (typeof MODES)[number];

const CountOrPercent = z.union([
  z.number().int().nonnegative(),
  z.string().regex(/^\d+(\.\d+)?%$/, 'expected a count or a percentage such as "10%"'),
]);

const CronSchema = z
  .string()
  .refine(
    (s) => parseCron(s) !== null,
    'expected a 5-field cron expression (minute hour day-of-month month day-of-week), e.g. "0 2 * * 1-5"',
  );

export const WindowSchema = z.strictObject({
  /** When a window opens, on the wall clock of `timeZone`. */
  schedule: CronSchema,
  /** How long it stays open (elapsed time: a window across a DST change is still this long). */
  duration: DurationSchema,
  /** An IANA time zone name ("Europe/Berlin"); checked against the runtime's tz database at start-up. */
  timeZone: z
    .string()
    .refine(isTimeZone, {
      error: (iss) =>
        `unknown time zone ${JSON.stringify(iss.input)}: expected an IANA name such as "Europe/Berlin" or "UTC"`,
    })
    .default('UTC'),
});
export type Window = z.infer<typeof WindowSchema>;

export const RateSchema = z.strictObject({ max: z.number().int().nonnegative(), per: DurationSchema });

/** A disruption budget; `group` is a glob on group names, and every entry that matches a group applies (the strictest wins). */
export const BudgetSchema = z.strictObject({
  group: z.string().min(1),
  /** Replacements in flight plus hosts already unavailable (silent, being replaced), as a count or a share of the group (rounded up). */
  maxUnavailable: CountOrPercent.optional(),
  /** At most `max` replacements started per `per`. */
  rate: RateSchema.optional(),
  /** Replacements start only while one of these is open; none means always. */
  windows: z.array(WindowSchema).optional(),
  /** No replacement starts while the group has fewer clean, reporting hosts than this. */
  minClean: z.number().int().nonnegative().optional(),
});
export type Budget = z.infer<typeof BudgetSchema>;

/** The fleet-wide budget: the same limits, over every group together. */
export const OverallBudgetSchema = BudgetSchema.omit({ group: true, minClean: true });
export type OverallBudget = z.infer<typeof OverallBudgetSchema>;

const SecretRef = {
  secret: z.string().min(1).optional(),
  secretFile: HostPathSchema.optional(),
};

export const AwsAsgProviderSchema = z.strictObject({
  type: z.literal('aws-asg'),
  /** Required: a missing region is a configuration error at start-up, not a transient failure to retry. */
  region: z.string({ error: 'required: the AWS region of the auto-scaling groups, e.g. eu-west-1' }).min(1),
  /** Another endpoint (a VPC endpoint, LocalStack, a test server). */
  endpoint: z.string().url().optional(),
  /**
   * `terminate`: TerminateInstanceInAutoScalingGroup without decrementing the desired capacity.
   * `unhealthy`: SetInstanceHealth Unhealthy, so the group's own lifecycle hooks replace it.
   * `detach`: launch before terminate (DetachInstances, wait for a clean successor, then terminate or hold).
   */
  strategy: z.enum(['terminate', 'unhealthy', 'detach']).default('terminate'),
  /** With `detach`: keep the old instance stopped and tagged for investigation instead of terminating it. */
  forensicHold: z.boolean().default(false),
  /** With `detach`: how long to wait for a clean successor before giving up (the attempt then fails). */
  successorTimeout: DurationSchema.default('20m'),
  /**
   * A host whose instance is in no auto-scaling group: `fail` (the default; nothing would launch a
   * successor) or `terminate` it with TerminateInstances (no successor is launched).
   */
  standalone: z.enum(['fail', 'terminate']).default('fail'),
  /**
   * Shrink the group instead of replacing the instance: `terminate` and `detach` decrement the desired
   * capacity, so no successor launches (for a group being scaled in, or a host not to be replaced).
   * With `detach` the instance is then terminated, or held with forensicHold, at once.
   */
  decrementDesiredCapacity: z.boolean().default(false),
});

export const KubernetesProviderSchema = z.strictObject({
  type: z.literal('kubernetes'),
  /** A kubeconfig file; default: in-cluster service account, else $KUBECONFIG / ~/.kube/config. */
  kubeconfig: HostPathSchema.optional(),
  context: z.string().min(1).optional(),
  /** Give up evicting (and fail the attempt) after this long; PodDisruptionBudgets are never overridden. */
  drainTimeout: DurationSchema.default('10m'),
  /** Wait between eviction rounds while a PodDisruptionBudget refuses (429). */
  evictionRetry: DurationSchema.default('5s'),
  /** Evict pods no controller manages (nothing recreates them), like `kubectl drain --force`; else such a pod stops the drain. */
  force: z.boolean().default(false),
  /** Evict pods with emptyDir volumes (their data is lost), like `kubectl drain --delete-emptydir-data`; else such a pod stops the drain. */
  deleteEmptyDirData: z.boolean().default(false),
  /** Node names are host names unless the agent's hostname differs; `hostname` or `id`. */
  nodeName: z.enum(['hostname', 'id']).default('hostname'),
});

export const WebhookProviderSchema = z.strictObject({
  type: z.literal('webhook'),
  url: z.string().url(),
  ...SecretRef,
  timeout: DurationSchema.default('10s'),
  retries: z.number().int().min(0).max(10).default(3),
});

export const ExecProviderSchema = z.strictObject({
  type: z.literal('exec'),
  /** The argument vector: never a shell string. */
  command: z.array(z.string().min(1)).min(1),
  timeout: DurationSchema.default('5m'),
  /** Also run to ask whether a replacement is done (exit 0 done, 3 still running, else failed); else done when the command exits 0. */
  statusCommand: z.array(z.string().min(1)).min(1).optional(),
});

export const ProviderConfigSchema = z.discriminatedUnion('type', [
  AwsAsgProviderSchema,
  KubernetesProviderSchema,
  WebhookProviderSchema,
  ExecProviderSchema,
]);
export type ProviderConfig = z.infer<typeof ProviderConfigSchema>;

export const GroupSettingsSchema = z.strictObject({
  /** Overrides scheduler.mode for this group (scheduler.mode: off still stops everything). */
  mode: z.enum(MODES).optional(),
  /** Scheduled replacements wait for an operator's approval (API, CLI, dashboard). */
  requireApproval: z.boolean().optional(),
  /** Overrides scheduler.provider for this group. */
  provider: ProviderConfigSchema.optional(),
});

export const BreakerSchema = z.strictObject({
  /** Pause a group when more than this share of it was tainted within `window`. */
  taintedShare: z.number().gt(0).lte(1).default(0.3),
  window: DurationSchema.default('15m'),
  /** ...and at least this many hosts (a group of three is not "unusual" after one taint). */
  minTainted: z.number().int().min(1).default(2),
  /** Pause a group when this many hosts were tainted within `window` by the same deviation (collector, key, actual value). */
  sameDeviation: z.number().int().min(2).default(5),
  /** Where to POST an alert (signed like the webhook provider) when a group is paused. */
  alertWebhook: z
    .strictObject({ url: z.string().url(), ...SecretRef, timeout: DurationSchema.default('10s') })
    .optional(),
});

const BREAKER_DEFAULT = { taintedShare: 0.3, window: '15m', minTainted: 2, sameDeviation: 5 };

export const SchedulerConfigSchema = z.strictObject({
  mode: z.enum(MODES).default('dry-run'),
  /** How often the scheduler runs. */
  interval: DurationSchema.default('30s'),
  budgets: z.array(BudgetSchema).default([{ group: '*', maxUnavailable: '10%' }]),
  overall: OverallBudgetSchema.optional(),
  breaker: BreakerSchema.default(BREAKER_DEFAULT),
  provider: ProviderConfigSchema.optional(),
  /** Per-group settings, keyed by group name (exact) or a glob; the first matching key wins. */
  groups: z.record(z.string().min(1), GroupSettingsSchema).default({}),
  retry: z
    .strictObject({
      /** Attempts before a replacement is surfaced to operators as failed. */
      maxAttempts: z.number().int().min(1).default(5),
      backoff: DurationSchema.default('1m'),
      maxBackoff: DurationSchema.default('1h'),
    })
    .default({ maxAttempts: 5, backoff: '1m', maxBackoff: '1h' }),
  /** An attempt the provider has not confirmed within this long fails (and is retried). */
  replaceTimeout: DurationSchema.default('30m'),
  /** After the provider confirms, the host must have stopped reporting for this long to count as replaced. */
  quietFor: DurationSchema.default('2m'),
  /** A controller's hold on a replacement it is acting on; another controller takes over after it lapses. */
  lease: DurationSchema.default('2m'),
  /**
   * Provider calls (replace, status) a pass runs at once, taken from the groups in turn: a slow or
   * hanging platform holds its own slots until replaceTimeout, never every slot.
   */
  parallelism: z.number().int().min(1).max(64).default(4),
  /** Group name for hosts that report none. */
  defaultGroup: z.string().min(1).default('ungrouped'),
});
export type SchedulerConfig = z.infer<typeof SchedulerConfigSchema>;

export const SCHEDULER_DEFAULT = {
  mode: 'dry-run' as const,
  interval: '30s',
  budgets: [{ group: '*', maxUnavailable: '10%' }],
  breaker: BREAKER_DEFAULT,
  groups: {},
  retry: { maxAttempts: 5, backoff: '1m', maxBackoff: '1h' },
  replaceTimeout: '30m',
  quietFor: '2m',
  lease: '2m',
  parallelism: 4,
  defaultGroup: 'ungrouped',
};
