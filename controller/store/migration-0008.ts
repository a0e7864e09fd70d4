/**
 * @module Migration 0008_last_scan: when each host's last full scan reached the controller, so that a
 * host which only heartbeats (or only sends watcher events) is tainted once no scan has vouched for it
 * within `scanMaxAge`. Existing hosts take the receipt time of their newest stored scan.
 */
import { sql, type Kysely } from 'kysely';
import type { Dialect } from './migrations.js';

export async function migrateLastScan(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const time = dialect === 'postgres' ? sql`text collate "C"` : ('text' as const);
  await db.schema.alterTable('hosts').addColumn('last_scan_at', time).execute();
  await sql`update hosts set last_scan_at = (select max(r.received_at) from reports r where r.host_id = hosts.id and r.kind = 'scan')`.execute(
    db,
  );
  // The background pass asks for hosts in a few states whose last scan is older than a time, in that order.
  await db.schema.createIndex('hosts_state_scan').on('hosts').columns(['state', 'last_scan_at']).execute();
}
