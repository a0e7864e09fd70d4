/**
 * @module Migration 0010_host_lifecycle: the operator actions on one host. `reset_at`: reset by an
 * operator, its credential refused, one re-enrollment of its id accepted; `retired_at`: forgotten,
 * out of the fleet views and counts, its credential refused for good, its history kept;
 * `scan_requested_at`: a re-check asked for, answered on the next heartbeat, cleared by the next scan;
 * `scan_request_sent_at`: when a heartbeat answer last carried it (asked once, again only if no scan came).
 * Stored, not held in memory, so a request survives a restart and reaches whichever controller the
 * host talks to.
 */
import { sql, type Kysely } from 'kysely';
import type { Dialect } from './migrations.js';

export async function migrateHostLifecycle(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const time = dialect === 'postgres' ? sql`text collate "C"` : ('text' as const);
  await db.schema.alterTable('hosts').addColumn('reset_at', time).execute();
  await db.schema.alterTable('hosts').addColumn('retired_at', time).execute();
  await db.schema.alterTable('hosts').addColumn('scan_requested_at', time).execute();
  await db.schema.alterTable('hosts').addColumn('scan_request_sent_at', time).execute();
}
