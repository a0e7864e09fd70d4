/** @module The retention suite on PostgreSQL: a schema per test, and a second store on it for a second controller. */
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, describe } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import { PG_URL, SKIP_PG, requirePostgres } from '../helpers/postgres.js';
import { runRetentionMigrationCase, runRetentionSuite } from './retention.suite.js';

await requirePostgres();

let n = 0;

// PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without it (requirePostgres fails the run otherwise).
describe.skipIf(SKIP_PG)('postgres', () => {
  runRetentionSuite('postgres', async () => {
    const schema = `dw_retention_${process.pid}_${n++}`;
    const store = await openStore(PG_URL, { schema, maxConnections: 4 });
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    return {
      store,
      another: () => openStore(PG_URL, { schema, maxConnections: 4 }),
      backdoor: {
        async exec(sqlText: string) {
          // Triggers are skipped in replica mode (needs the superuser the test server has).
          await admin.query(
            `begin; set local session_replication_role = replica; set local search_path = ${schema}; ${sqlText}; commit;`,
          );
        },
        async close() {
          await admin.query(`drop schema if exists ${schema} cascade`);
          await admin.end();
        },
      },
    };
  });

  runRetentionMigrationCase('postgres', async () => {
    const schema = `dw_retention_${process.pid}_${n++}`;
    const pool = new pg.Pool({ connectionString: PG_URL, max: 1, options: `-c search_path=${schema}` });
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    await sql`create schema ${sql.id(schema)}`.execute(db);
    return {
      db,
      dialect: 'postgres',
      pgSchema: schema,
      open: () => openStore(PG_URL, { schema, maxConnections: 2 }),
    };
  });
  afterAll(async () => {
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const r = await admin.query<{ s: string }>(
      `select nspname as s from pg_namespace where nspname like 'dw_retention_${process.pid}_%'`,
    );
    for (const { s } of r.rows) await admin.query(`drop schema if exists "${s}" cascade`);
    await admin.end();
  });
});
