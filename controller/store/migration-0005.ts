/**
 * @module Migration 0005_pinned_identity: a host's identity (hostname, group, addresses) is pinned at
 * enrollment and providers act on it; what later reports claim is kept beside it, never in its place.
 * `hostname` and `host_group` stay the pinned columns; `enrolled_addresses` pins the addresses, and
 * `reported_hostname` / `reported_group` hold a different claim a report made (null while it agrees).
 */
import type { Kysely } from 'kysely';

export async function migratePinnedIdentity(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('hosts').addColumn('enrolled_addresses', 'text').execute(); // JSON array
  await db.schema.alterTable('hosts').addColumn('reported_hostname', 'text').execute();
  await db.schema.alterTable('hosts').addColumn('reported_group', 'text').execute();
  // Hosts enrolled before this migration had their addresses overwritten by every report, so the
  // latest inventory is the best pin there is; the aws-asg provider still refuses when it and the
  // pinned hostname point at different instances.
  const rows = await db.selectFrom('hosts').select(['id', 'inventory']).where('inventory', 'is not', null).execute();
  for (const r of rows) {
    let addresses: unknown = [];
    try {
      addresses = (JSON.parse(r.inventory) as { addresses?: unknown }).addresses ?? [];
    } catch {
      addresses = [];
    }
    const list = Array.isArray(addresses) ? addresses.filter((a): a is string => typeof a === 'string') : [];
    await db
      .updateTable('hosts')
      .set({ enrolled_addresses: JSON.stringify(list) })
      .where('id', '=', r.id)
      .execute();
  }
}
