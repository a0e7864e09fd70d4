/** @module A report: one scan of one host, as the agent sends it and `check --json` prints it. */
import { z } from 'zod';
import { CollectorNameSchema, DigestSchema, IsoTimeSchema } from './common.js';
import { DeviationSchema } from './deviation.js';

export const REPORT_SCHEMA_ID = 'driftwarden/report/v1';

export const CollectorResultSchema = z.strictObject({
  collector: CollectorNameSchema,
  ok: z.boolean(),
  durationMs: z.number().nonnegative(),
  items: z.number().int().nonnegative(),
  error: z.string().optional(),
  warnings: z.array(z.string()).optional(),
});
export type CollectorResult = z.infer<typeof CollectorResultSchema>;

export const InventorySchema = z.strictObject({
  hostId: z.string(),
  hostname: z.string().nullable(),
  os: z.string().nullable(),
  kernel: z.string().nullable(),
  addresses: z.array(z.string()),
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

export const ReportSchema = z.strictObject({
  schema: z.literal(REPORT_SCHEMA_ID),
  kind: ReportKindSchema.default('scan'),
  reportId: z.string().uuid(),
  hostId: z.string().min(1).max(128),
  imageId: z.string().min(1).max(256),
  manifestDigest: DigestSchema,
  agentVersion: z.string(),
  seq: z.number().int().nonnegative(),
  scannedAt: IsoTimeSchema,
  /** Per-section digests of the host's actual state. */
  digests: z.record(z.string(), DigestSchema),
  collectors: z.array(CollectorResultSchema),
  deviations: z.array(DeviationSchema),
  inventory: InventorySchema.optional(),
  group: z.string().min(1).max(256).optional(),
  /** Reports the agent's spool had to drop for space since the last acknowledged count. */
  spoolDropped: z.number().int().nonnegative().optional(),
  truncated: TruncatedSchema.optional(),
  undeliveredScan: UndeliveredScanSchema.optional(),
});
export type Report = z.infer<typeof ReportSchema>;
