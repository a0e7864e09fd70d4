/** @module A deviation: one item that differs between the manifest and the live host. */
import { z } from 'zod';
import { CollectorNameSchema } from './common.js';
import { LIMITS } from './limits.js';
import { SEVERITIES } from './severities.js';

export { SEVERITIES };
export const SeveritySchema = z.enum(SEVERITIES);
export type Severity = z.infer<typeof SeveritySchema>;

export const ChangeSchema = z.enum(['added', 'removed', 'modified']);
export type Change = z.infer<typeof ChangeSchema>;

/**
 * `expected` and `actual` hold the whole item (without its key) so that the manifest's section
 * with the deviations applied gives exactly the host's section: the controller relies on that to
 * check a report's digests against its own copy of the manifest.
 */
/**
 * The package-manager transaction that explains a deviation, where the host keeps one: a reviewer
 * sees "installed by apt-get install strace, run by alice at 02:14", not only a changed hash.
 */
export const AttributionSchema = z.strictObject({
  /** Where it was found: dpkg.log, apt history.log, dnf history, rpm database, the auth log (useradd, sudo systemctl ...). */
  source: z.enum(['dpkg-log', 'apt-history', 'dnf-history', 'rpm', 'auth-log']),
  /** When the transaction ran (ISO time; local times are recorded as the host wrote them, with its offset when known). */
  at: z.string(),
  /** install, upgrade, remove, purge, downgrade, reinstall, configure... */
  action: z.string(),
  /** The package of a package-manager transaction; absent for an auth-log action. */
  package: z.string().optional(),
  fromVersion: z.string().optional(),
  toVersion: z.string().optional(),
  /** The command that ran the transaction, e.g. "apt-get install strace". */
  commandLine: z.string().optional(),
  /** Who ran it, e.g. "alice (1000)". */
  user: z.string().optional(),
  /** For a file deviation: the package that owns the file. */
  ownedBy: z.string().optional(),
});
export type Attribution = z.infer<typeof AttributionSchema>;

export const DeviationSchema = z.strictObject({
  collector: CollectorNameSchema,
  key: z
    .string()
    .min(1)
    // A UTF-16 code unit is at most 3 bytes of UTF-8: most keys are settled without encoding them.
    .refine(
      (k) => k.length * 3 <= LIMITS.maxKeyBytes || Buffer.byteLength(k) <= LIMITS.maxKeyBytes,
      `at most ${LIMITS.maxKeyBytes} bytes of UTF-8 (the store indexes it)`,
    ),
  change: ChangeSchema,
  // Item bodies: their strings, depth and size are bounded for every request in controller/app.ts.
  expected: z.record(z.string().max(128), z.unknown()).nullable(),
  actual: z.record(z.string().max(128), z.unknown()).nullable(),
  /** Names of the fields that differ, for a modified item. */
  fields: z.array(z.string().max(128)).max(64).optional(),
  severity: SeveritySchema,
  attribution: AttributionSchema.optional(),
});
export type Deviation = z.infer<typeof DeviationSchema>;
