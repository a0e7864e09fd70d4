/** @module What `driftwarden check --json` prints: a contract for machines, so it has a schema. */
import { z } from 'zod';
import { DigestSchema, IsoTimeSchema } from './common.js';
import { DeviationSchema, SeveritySchema } from './deviation.js';
import { CollectorResultSchema, InventorySchema } from './report.js';

export const CHECK_SCHEMA_ID = 'driftwarden/check/v1';

export const CheckResultSchema = z.strictObject({
  schema: z.literal(CHECK_SCHEMA_ID),
  clean: z.boolean(),
  /** True when every collector ran; a clean result with a failed collector proves nothing. */
  complete: z.boolean(),
  root: z.string(),
  host: InventorySchema,
  image: z.strictObject({ id: z.string(), name: z.string().optional(), version: z.string().optional() }),
  manifestDigest: DigestSchema,
  signedBy: z.string().nullable(),
  scannedAt: IsoTimeSchema,
  durationMs: z.number().nonnegative(),
  digests: z.record(z.string(), DigestSchema),
  collectors: z.array(CollectorResultSchema),
  deviations: z.array(DeviationSchema),
  summary: z.strictObject({
    total: z.number().int(),
    byCollector: z.record(z.string(), z.number().int()),
    bySeverity: z.record(SeveritySchema, z.number().int()),
  }),
});
export type CheckResult = z.infer<typeof CheckResultSchema>;
