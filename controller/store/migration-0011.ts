/**
 * @module Migration 0011_retention_checkpoints: the audit log and the event stream may lose their oldest
 * rows, but only under a checkpoint. `chain_checkpoints` (append-only, itself hash-chained) records for
 * each prune the range of ids removed, how many rows, the hash they chained from and the hash of the
 * last one, so verification starts from the checkpoint instead of GENESIS. The append-only triggers are
 * replaced by ones that still refuse every update, and refuse a delete of any row not covered by a
 * checkpoint already written: the database itself keeps "nothing is removed without a record of it".
 */
import { sql, type Kysely } from 'kysely';
import type { Dialect } from './migrations.js';

const NOT_UNDER_CHECKPOINT = 'rows are removed only under a retention checkpoint';

export async function migrateRetentionCheckpoints(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const key = pg ? sql`text collate "C"` : ('text' as const);
  const serial = pg ? ('bigint' as const) : ('integer' as const);
  await db.schema
    .createTable('chain_checkpoints')
    .addColumn('id', serial, (c) => (pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement()))
    .addColumn('chain', key, (c) => c.notNull())
    .addColumn('first_id', 'bigint', (c) => c.notNull())
    .addColumn('through_id', 'bigint', (c) => c.notNull())
    .addColumn('from_hash', 'text', (c) => c.notNull())
    .addColumn('through_hash', 'text', (c) => c.notNull())
    .addColumn('rows', 'bigint', (c) => c.notNull())
    .addColumn('total_rows', 'bigint', (c) => c.notNull())
    .addColumn('cutoff', key, (c) => c.notNull())
    .addColumn('at', key, (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text')
    .addColumn('signature', 'text')
    .execute();
  // The delete guards ask for max(through_id) of one chain on every deleted row.
  await db.schema
    .createIndex('chain_checkpoints_chain')
    .on('chain_checkpoints')
    .columns(['chain', 'through_id'])
    .unique()
    .execute();

  if (pg) {
    // Qualified with the schema the migration runs in: a trigger must not find another deployment's table.
    const r = await sql<{ s: string }>`select current_schema() as s`.execute(db);
    const schema = sql.id(r.rows[0]!.s);
    await sql`create function dw_chain_prune_guard() returns trigger language plpgsql as $$
      begin
        if old.id > coalesce((select max(through_id) from ${schema}.chain_checkpoints where chain = tg_argv[0]), 0) then
          raise exception '% is append-only: ${sql.raw(NOT_UNDER_CHECKPOINT)}', tg_table_name;
        end if;
        return old;
      end $$`.execute(db);
    for (const [table, fn] of [
      ['audit', 'dw_audit_append_only'],
      ['events', 'dw_events_append_only'],
    ] as const) {
      await sql`drop trigger ${sql.id(`${table}_append_only`)} on ${sql.id(table)}`.execute(db);
      await sql`create trigger ${sql.id(`${table}_append_only`)} before update or truncate on ${sql.id(table)}
        for each statement execute function ${sql.id(fn)}()`.execute(db);
      await sql`create trigger ${sql.id(`${table}_prune_only`)} before delete on ${sql.id(table)}
        for each row execute function dw_chain_prune_guard(${sql.lit(table)})`.execute(db);
    }
    await sql`create function dw_checkpoints_append_only() returns trigger language plpgsql as $$
      begin raise exception 'chain_checkpoints are append-only'; end $$`.execute(db);
    await sql`create trigger chain_checkpoints_append_only before update or delete or truncate on chain_checkpoints
      for each statement execute function dw_checkpoints_append_only()`.execute(db);
  } else {
    // Same names as before, so whoever dropped them to repair a database by hand still can.
    for (const table of ['audit', 'events'] as const) {
      await sql`drop trigger ${sql.id(`${table}_no_delete`)}`.execute(db);
      await sql`create trigger ${sql.id(`${table}_no_delete`)} before delete on ${sql.id(table)}
        when old.id > coalesce((select max(through_id) from chain_checkpoints where chain = ${sql.lit(table)}), 0)
        begin select raise(abort, ${sql.lit(`${table} is append-only: ${NOT_UNDER_CHECKPOINT}`)}); end`.execute(db);
    }
    await sql`create trigger chain_checkpoints_no_update before update on chain_checkpoints
      begin select raise(abort, 'chain_checkpoints are append-only'); end`.execute(db);
    await sql`create trigger chain_checkpoints_no_delete before delete on chain_checkpoints
      begin select raise(abort, 'chain_checkpoints are append-only'); end`.execute(db);
  }
  // Retention of resolved findings walks replaced hosts by how long they have been replaced; 0003's
  // (state, state_since, id) index answers it. Report retention walks reports by receipt (0001's index)
  // and per host by seq (reports_host_seq).
}
