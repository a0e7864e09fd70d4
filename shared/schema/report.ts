/** @module A report: one scan of one host, as the agent sends it and `check --json` prints it. */
import { z } from 'zod';
import { CollectorNameSchema, DigestSchema, IsoTimeSchema } from './common.js';
import { DeviationSchema } from './deviation.js';
import { CloudIdentitySchema } from './identity.js';
import { AgentVersionSchema, HostnameSchema, LIMITS, MessageSchema, nameSchema } from './limits.js';

export const REPORT_SCHEMA_ID = 'driftwarden/report/v1';

export const CollectorResultSchema = z.strictObject({
  collector: CollectorNameSchema,
  ok: z.boolean(),
  durationMs: z.number().nonnegative(),
  items: z.number().int().nonnegative(),
  error: MessageSchema.optional(),
  warnings: z.array(MessageSchema).max(LIMITS.maxWarnings).optional(),
});
export type CollectorResult = z.infer<typeof CollectorResultSchema>;

/** The host id (machine-id, or the id the agent made once): the same characters everywhere it is taken. */
export const HostIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{1,128}$/, 'expected the host id (machine-id): 1-128 letters, digits, . _ : -');

/** Every field bounded and free of control characters: they reach the dashboard, logs and providers. */
export const InventorySchema = z.strictObject({
  hostId: HostIdSchema,
  hostname: HostnameSchema.nullable(),
  os: nameSchema().nullable(),
  kernel: nameSchema().nullable(),
  addresses: z.array(nameSchema(64)).max(LIMITS.maxAddresses),
});
export type Inventory = z.infer<typeof InventorySchema>;

/**
 * `scan`: a full fingerprint with every deviation. `heartbeat`: nothing changed since the last scan;
 * digests only, no deviations. `event`: deviations the file watcher found between scans.
 */
export const ReportKindSchema = z.enum(['scan', 'heartbeat', 'event']);

/**
 * A scan cut short to fit the controller's body limits: only the `sent` most severe of `deviations`
 * are in the report. The controller cannot judge the rest, so it treats the host as having drift it
 * could not see (an integrity deviation, `agent:scan-truncated`).
 */
export const TruncatedSchema = z.strictObject({
  deviations: z.number().int().nonnegative(),
  sent: z.number().int().nonnegative(),
});

/**
 * Carried by heartbeats and events while the agent holds a scan the controller did not take (refused
 * with a 4xx, or failing for longer than the agent's bound while the controller answers): the host must
 * not look clean on the strength of heartbeats alone.
 */
export const UndeliveredScanSchema = z.strictObject({
  since: IsoTimeSchema,
  reason: z.string().max(1000),
  deviations: z.number().int().nonnegative(),
});
export type UndeliveredScan = z.infer<typeof UndeliveredScanSchema>;

/**
 * The agent refused its manifest at start (a signature that does not verify against `trustedKeys`):
 * it says so once before it stops, so the controller taints instead of only seeing the host go quiet.
 */
export const ManifestRefusedSchema = z.strictObject({
  code: z.enum(['DW_ERR_MANIFEST_SIGNATURE', 'DW_ERR_MANIFEST_DIGEST']),
  reason: z.string().max(1000),
});

export const ReportSchema = z.strictObject({
  schema: z.literal(REPORT_SCHEMA_ID),
  kind: ReportKindSchema.default('scan'),
  reportId: z.string().uuid(),
  hostId: HostIdSchema,
  imageId: nameSchema(),
  manifestDigest: DigestSchema,
  agentVersion: AgentVersionSchema,
  seq: z.number().int().nonnegative(),
  scannedAt: IsoTimeSchema,
  /** Per-section digests of the host's actual state. */
  digests: z.record(nameSchema(64), DigestSchema).refine((d) => Object.keys(d).length <= 32, 'at most 32 sections'),
  collectors: z.array(CollectorResultSchema).max(32),
  deviations: z.array(DeviationSchema).max(LIMITS.maxDeviations),
  inventory: InventorySchema.optional(),
  /** Where the host runs (agent/cloud-identity.ts); held against the identity pinned at enrollment. */
  identity: CloudIdentitySchema.optional(),
  group: nameSchema().optional(),
  /** Reports the agent's spool had to drop for space since the last acknowledged count. */
  spoolDropped: z.number().int().nonnegative().optional(),
  truncated: TruncatedSchema.optional(),
  undeliveredScan: UndeliveredScanSchema.optional(),
  manifestRefused: ManifestRefusedSchema.optional(),
});
export type Report = z.infer<typeof ReportSchema>;
