/**
 * @module Migration 0003_history_chain: the hash-chained event stream (drift events, state changes and
 * later scheduler events), hash columns on the audit log (existing rows are chained in id order), the
 * digest that groups identical deviations across hosts into findings, the indexes the dashboard sorts
 * and filters on, and the SIEM forwarders' cursors.
 */
import { sql, type Kysely } from 'kysely';
import { canonicalJson, sha256Hex } from '../../shared/canonical.js';
import { auditContent, chainHash, GENESIS } from './chain.js';
import type { Dialect } from './migrations.js';

/** The digest of a deviation's `actual` that findings group by ('' when there is none). */
export function actualDigest(actual: unknown): string {
  return actual === null || actual === undefined ? '' : sha256Hex(canonicalJson(actual)).slice(0, 32);
}

export async function migrateHistoryChain(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const key = pg ? sql`text collate "C"` : ('text' as const);
  const serial = pg ? ('bigint' as const) : ('integer' as const);

  await db.schema
    .createTable('events')
    .addColumn('id', serial, (c) => (pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement()))
    .addColumn('at', key, (c) => c.notNull())
    .addColumn('kind', key, (c) => c.notNull())
    // Not a foreign key: the stream outlives hosts and reports, like the audit log.
    .addColumn('host_id', key)
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('detail', 'text', (c) => c.notNull()) // JSON
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('events_host_id').on('events').columns(['host_id', 'id']).execute();
  // The overview's drift chart counts events and transitions per day.
  await db.schema.createIndex('events_at_kind').on('events').columns(['at', 'kind']).execute();
  await db.schema.createIndex('transitions_at').on('transitions').columns(['at', 'to_state']).execute();

  await db.schema.alterTable('audit').addColumn('prev_hash', 'text').execute();
  await db.schema.alterTable('audit').addColumn('hash', 'text').execute();
  // Rows written before this migration join the chain in id order; the append-only triggers are
  // lifted for exactly this backfill.
  if (pg) await sql`alter table audit disable trigger audit_append_only`.execute(db);
  else {
    await sql`drop trigger audit_no_update`.execute(db);
  }
  let prev = GENESIS;
  const rows = await db.selectFrom('audit').selectAll().orderBy('id').execute();
  for (const r of rows) {
    const hash = chainHash(
      prev,
      auditContent({ at: r.at, actor: r.actor, action: r.action, target: r.target, detail: JSON.parse(r.detail) }),
    );
    await db.updateTable('audit').set({ prev_hash: prev, hash }).where('id', '=', r.id).execute();
    prev = hash;
  }
  if (pg) {
    await sql`alter table audit enable trigger audit_append_only`.execute(db);
    await sql`create function dw_events_append_only() returns trigger language plpgsql as $$
      begin raise exception 'events are append-only'; end $$`.execute(db);
    await sql`create trigger events_append_only before update or delete or truncate on events
      for each statement execute function dw_events_append_only()`.execute(db);
  } else {
    await sql`create trigger audit_no_update before update on audit
      begin select raise(abort, 'audit is append-only'); end`.execute(db);
    await sql`create trigger events_no_update before update on events
      begin select raise(abort, 'events are append-only'); end`.execute(db);
    await sql`create trigger events_no_delete before delete on events
      begin select raise(abort, 'events are append-only'); end`.execute(db);
  }

  // Findings: identical deviations (collector, key, change, actual) across hosts are one finding.
  await db.schema
    .alterTable('host_deviations')
    .addColumn('actual_digest', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
  const devs = await db
    .selectFrom('host_deviations')
    .select(['host_id', 'collector', 'item_key', 'actual'])
    .where('actual', 'is not', null)
    .execute();
  for (const d of devs) {
    await db
      .updateTable('host_deviations')
      .set({ actual_digest: actualDigest(JSON.parse(d.actual)) })
      .where('host_id', '=', d.host_id)
      .where('collector', '=', d.collector)
      .where('item_key', '=', d.item_key)
      .execute();
  }
  await db.schema
    .createIndex('host_deviations_finding')
    .on('host_deviations')
    .columns(['collector', 'item_key', 'change', 'actual_digest', 'host_id'])
    .execute();
  // The hosts table's collector and severity filters are semi-joins answered from these alone (covering).
  await db.schema
    .createIndex('host_deviations_collector_host')
    .on('host_deviations')
    .columns(['collector', 'host_id', 'action'])
    .execute();
  await db.schema
    .createIndex('host_deviations_severity_host')
    .on('host_deviations')
    .columns(['severity', 'host_id', 'action'])
    .execute();

  // Every sortable column of the hosts table (never null) is followed by id, for keyset pagination in
  // either direction, alone and after the state filter.
  for (const col of ['deviation_count', 'state_since']) {
    await db.schema.createIndex(`hosts_${col}_id`).on('hosts').columns([col, 'id']).execute();
    await db.schema.createIndex(`hosts_state_${col}_id`).on('hosts').columns(['state', col, 'id']).execute();
  }
  // The overview's per-image and per-group state counts, from the index alone.
  await db.schema.createIndex('hosts_image_state').on('hosts').columns(['image_id', 'state']).execute();
  await db.schema.createIndex('hosts_group_state').on('hosts').columns(['host_group', 'state']).execute();
  // The search box: a prefix of the hostname is a range of this index (and of the primary key for ids).
  await db.schema.createIndex('hosts_hostname').on('hosts').columns(['hostname']).execute();

  await db.schema
    .createTable('event_cursors')
    .addColumn('name', key, (c) => c.primaryKey())
    .addColumn('last_id', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', key, (c) => c.notNull())
    .execute();
}
