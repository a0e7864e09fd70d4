/**
 * @module Migration 0012_deviation_attribution: the package-manager or auth-log record an agent found
 * for a deviation (who or what made the change, and when: shared/schema/deviation.ts AttributionSchema),
 * kept with the host's current deviation as JSON so the host page, findings, drift reports and the
 * SIEM feed can show it. Null where the host keeps no record of the change. (0011 is left free for
 * retention work on another branch; the Migrator only needs names to sort in the order they run.)
 */
import type { Kysely } from 'kysely';

export async function migrateDeviationAttribution(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('host_deviations').addColumn('attribution', 'text').execute();
}
