/** @module The store's one set of migrations (Kysely schema builder), run on SQLite and PostgreSQL alike. */
import { migrateHistoryChain } from './migration-0003.js';
import { migratePinnedIdentity } from './migration-0005.js';
import { migrateTokenLimits } from './migration-0006.js';
import { migrateLastScan } from './migration-0008.js';
import { migrateCloudIdentity } from './migration-0009.js';
import { migrateHostLifecycle } from './migration-0010.js';
import { migrateRetentionCheckpoints } from './migration-0011.js';
import { migrateDeviationAttribution } from './migration-0012.js';
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { createReplacementTables } from './replacements.js';

export type Dialect = 'sqlite' | 'postgres';

/**
 * Column types that mean the same on both dialects. Ids and times are text: ISO-8601 UTC strings of
 * one fixed format sort chronologically as strings. On PostgreSQL they use the "C" collation so that
 * ordering and keyset pagination are bytewise, like SQLite's default BINARY, whatever the database's
 * locale is (and comparisons skip the locale's slower rules).
 */
function types(dialect: Dialect) {
  const pg = dialect === 'postgres';
  return {
    key: pg ? sql`text collate "C"` : ('text' as const),
    time: pg ? sql`text collate "C"` : ('text' as const),
    /** Append-only ids (transitions, audit): never reused, increasing in insertion order. */
    serial: pg ? ('bigint' as const) : ('integer' as const),
  };
}

/**
 * IMPORTANT: migrations are append-only. A released migration is never edited; a schema change is a
 * new entry with the next number. Their names sort in the order they must run (Kysely's Migrator
 * checks that order).
 */
export function migrations(dialect: Dialect): Record<string, Migration> {
  const t = types(dialect);
  const pg = dialect === 'postgres';
  return {
    '0001_initial': {
      async up(db: Kysely<any>): Promise<void> {
        await db.schema
          .createTable('tokens')
          .addColumn('id', t.key, (c) => c.primaryKey())
          .addColumn('hash', 'text', (c) => c.notNull().unique())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('created_at', t.time, (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('expires_at', t.time)
          .addColumn('revoked_at', t.time)
          .addColumn('last_used_at', t.time)
          .execute();

        await db.schema
          .createTable('hosts')
          .addColumn('id', t.key, (c) => c.primaryKey())
          // Unique: a credential identifies exactly one host ("one host cannot speak for another").
          .addColumn('credential_hash', 'text', (c) => c.notNull().unique())
          .addColumn('hostname', 'text')
          .addColumn('image_id', t.key, (c) => c.notNull())
          .addColumn('host_group', t.key)
          .addColumn('state', t.key, (c) => c.notNull())
          .addColumn('state_since', t.time, (c) => c.notNull())
          .addColumn('enrolled_at', t.time, (c) => c.notNull())
          .addColumn('last_seen_at', t.time)
          .addColumn('last_report_at', t.time)
          .addColumn('last_seq', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('deviation_count', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('tainted_at', t.time)
          .addColumn('agent_version', 'text')
          .addColumn('manifest_digest', 'text')
          .addColumn('inventory', 'text') // JSON
          .execute();
        // Each filter of listHosts is followed by id, so `filter = ? and id > ? order by id limit n`
        // is one index range scan at any fleet size (keyset pagination).
        await db.schema.createIndex('hosts_state_id').on('hosts').columns(['state', 'id']).execute();
        await db.schema.createIndex('hosts_image_id').on('hosts').columns(['image_id', 'id']).execute();
        await db.schema.createIndex('hosts_group_id').on('hosts').columns(['host_group', 'id']).execute();
        // Silent detection: hosts in a few states not seen since a time.
        await db.schema.createIndex('hosts_state_seen').on('hosts').columns(['state', 'last_seen_at']).execute();

        await db.schema
          .createTable('manifests')
          .addColumn('image_id', t.key, (c) => c.primaryKey())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('signed_by', 'text')
          .addColumn('name', 'text')
          .addColumn('version', 'text')
          .addColumn('body', 'text', (c) => c.notNull())
          .addColumn('published_at', t.time, (c) => c.notNull())
          .addColumn('published_by', 'text', (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('reports')
          .addColumn('report_id', t.key, (c) => c.primaryKey())
          .addColumn('host_id', t.key, (c) => c.notNull().references('hosts.id'))
          .addColumn('seq', 'bigint', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('scanned_at', t.time, (c) => c.notNull())
          .addColumn('received_at', t.time, (c) => c.notNull())
          .addColumn('digests', 'text', (c) => c.notNull()) // JSON
          .addColumn('deviation_count', 'integer', (c) => c.notNull())
          .addColumn('digest_mismatch', 'text', (c) => c.notNull()) // JSON
          .addColumn('body', 'text', (c) => c.notNull()) // JSON
          .execute();
        await db.schema.createIndex('reports_host_seq').on('reports').columns(['host_id', 'seq']).execute();
        // Retention: pruneReports deletes by received time.
        await db.schema.createIndex('reports_received').on('reports').column('received_at').execute();

        await db.schema
          .createTable('host_deviations')
          .addColumn('host_id', t.key, (c) => c.notNull().references('hosts.id'))
          .addColumn('collector', t.key, (c) => c.notNull())
          .addColumn('item_key', t.key, (c) => c.notNull())
          .addColumn('change', 'text', (c) => c.notNull())
          .addColumn('expected', 'text') // JSON
          .addColumn('actual', 'text') // JSON
          .addColumn('severity', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('decided_by', 'text', (c) => c.notNull())
          .addColumn('first_seen_at', t.time, (c) => c.notNull())
          .addColumn('last_seen_at', t.time, (c) => c.notNull())
          .addPrimaryKeyConstraint('host_deviations_pk', ['host_id', 'collector', 'item_key'])
          .execute();

        // Transitions and audit outlive reports (pruneReports), so report_id is not a foreign key.
        await db.schema
          .createTable('transitions')
          .addColumn('id', t.serial, (c) =>
            pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
          )
          .addColumn('host_id', t.key, (c) => c.notNull().references('hosts.id'))
          .addColumn('from_state', 'text')
          .addColumn('to_state', 'text', (c) => c.notNull())
          .addColumn('cause', 'text', (c) => c.notNull())
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('at', t.time, (c) => c.notNull())
          .addColumn('report_id', 'text')
          .execute();
        await db.schema.createIndex('transitions_host_id').on('transitions').columns(['host_id', 'id']).execute();

        await db.schema
          .createTable('audit')
          .addColumn('id', t.serial, (c) =>
            pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
          )
          .addColumn('at', t.time, (c) => c.notNull())
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('target', 'text')
          .addColumn('detail', 'text', (c) => c.notNull()) // JSON
          .execute();
        // Append-only in the database too, not only in the Store interface: a bug (or a stray admin
        // statement) that updates or deletes audit rows fails instead of rewriting history. A later
        // retention feature would drop these triggers in its own migration.
        if (pg) {
          await sql`create function dw_audit_append_only() returns trigger language plpgsql as $$
            begin raise exception 'audit is append-only'; end $$`.execute(db);
          await sql`create trigger audit_append_only before update or delete or truncate on audit
            for each statement execute function dw_audit_append_only()`.execute(db);
        } else {
          await sql`create trigger audit_no_update before update on audit
            begin select raise(abort, 'audit is append-only'); end`.execute(db);
          await sql`create trigger audit_no_delete before delete on audit
            begin select raise(abort, 'audit is append-only'); end`.execute(db);
        }

        await db.schema
          .createTable('exemptions')
          .addColumn('id', t.key, (c) => c.primaryKey())
          .addColumn('host_id', t.key)
          .addColumn('image_id', t.key)
          .addColumn('collector', 'text')
          .addColumn('key_pattern', 'text', (c) => c.notNull())
          .addColumn('reason', 'text', (c) => c.notNull())
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('created_at', t.time, (c) => c.notNull())
          .addColumn('expires_at', t.time, (c) => c.notNull())
          .addColumn('revoked_at', t.time)
          .addColumn('revoked_by', 'text')
          .execute();
        await db.schema.createIndex('exemptions_expires').on('exemptions').column('expires_at').execute();
      },
    },
    '0002_replacements': {
      async up(db: Kysely<any>): Promise<void> {
        await createReplacementTables(db, dialect);
      },
    },
    '0003_history_chain': {
      async up(db: Kysely<any>): Promise<void> {
        await migrateHistoryChain(db, dialect);
      },
    },
    '0004_replacements_by_host': {
      async up(db: Kysely<any>): Promise<void> {
        // The scheduler asks, for every tainted host, whether it has a replacement (active or cancelled),
        // and the host page lists a host's replacements: without this, each of those scans the table.
        await db.schema
          .createIndex('replacements_host_state')
          .on('replacements')
          .columns(['host_id', 'state'])
          .execute();
      },
    },
    '0005_pinned_identity': {
      async up(db: Kysely<any>): Promise<void> {
        await migratePinnedIdentity(db);
      },
    },
    '0006_token_limits_sessions': {
      async up(db: Kysely<any>): Promise<void> {
        await migrateTokenLimits(db, dialect);
      },
    },
    '0008_last_scan': {
      async up(db: Kysely<any>): Promise<void> {
        await migrateLastScan(db, dialect);
      },
    },
    '0009_cloud_identity': {
      async up(db: Kysely<any>): Promise<void> {
        await migrateCloudIdentity(db);
      },
    },
    '0010_host_lifecycle': {
      async up(db: Kysely<any>): Promise<void> {
        await migrateHostLifecycle(db, dialect);
      },
    },
    '0011_retention_checkpoints': {
      async up(db: Kysely<any>): Promise<void> {
        await migrateRetentionCheckpoints(db, dialect);
      },
    },
    '0012_deviation_attribution': {
      async up(db: Kysely<any>): Promise<void> {
        await migrateDeviationAttribution(db);
      },
    },
  };
}

/** Fixed from the start: Kysely cannot rename its bookkeeping tables later. */
export const MIGRATION_TABLE = 'dw_migration';
export const MIGRATION_LOCK_TABLE = 'dw_migration_lock';

/**
 * `pgSchema`: the PostgreSQL schema the store's tables live in. Kysely must be told: without it, its
 * check for the bookkeeping tables looks in every schema, and another store's tables in the same
 * database (another deployment, a parallel test run) would count as ours.
 */
export function createMigrator(db: Kysely<any>, dialect: Dialect, pgSchema?: string): Migrator {
  const all = migrations(dialect);
  const provider: MigrationProvider = { getMigrations: async () => all };
  return new Migrator({
    db,
    provider,
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
    ...(dialect === 'postgres' && pgSchema !== undefined ? { migrationTableSchema: pgSchema } : {}),
  });
}

/** Brings the schema to the latest migration; each migration runs in its own transaction on both dialects. */
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect, pgSchema?: string): Promise<string[]> {
  let outcome = await createMigrator(db, dialect, pgSchema).migrateToLatest();
  // Kysely's check for its bookkeeping table lists the tables of every schema and asks for privileges
  // by schema name: another schema dropped meanwhile (another deployment or test run in the same
  // database) fails that query with 3F000 before any migration ran. Asking again is safe.
  for (
    let attempt = 1;
    attempt < 5 && outcome.error && (outcome.error as { code?: string }).code === '3F000';
    attempt++
  ) {
    outcome = await createMigrator(db, dialect, pgSchema).migrateToLatest();
  }
  const { error, results } = outcome;
  const failed = results?.find((r) => r.status === 'Error');
  if (error) {
    throw new Error(
      `store migration ${failed ? `${failed.migrationName} ` : ''}failed: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
