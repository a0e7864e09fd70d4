/** @module A deviation: one item that differs between the manifest and the live host. */
import { z } from 'zod';
import { CollectorNameSchema } from './common.js';

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export const SeveritySchema = z.enum(SEVERITIES);
export type Severity = z.infer<typeof SeveritySchema>;

export const ChangeSchema = z.enum(['added', 'removed', 'modified']);
export type Change = z.infer<typeof ChangeSchema>;

/**
 * `expected` and `actual` hold the whole item (without its key) so that the manifest's section
 * with the deviations applied gives exactly the host's section: the controller relies on that to
 * check a report's digests against its own copy of the manifest.
 */
export const DeviationSchema = z.strictObject({
  collector: CollectorNameSchema,
  key: z.string().min(1),
  change: ChangeSchema,
  expected: z.record(z.string(), z.unknown()).nullable(),
  actual: z.record(z.string(), z.unknown()).nullable(),
  /** Names of the fields that differ, for a modified item. */
  fields: z.array(z.string()).optional(),
  severity: SeveritySchema,
});
export type Deviation = z.infer<typeof DeviationSchema>;
