/**
 * @module PostgreSQL for tests: the server is probed once and must answer (set DRIFTWARDEN_SKIP_PG=1
 * only on a machine without one); stores live in schemas of their own, dropped after the file.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE } from '../../controller/store/migrations.js';
import type { Store } from '../../controller/store/types.js';

export const PG_URL = process.env.DRIFTWARDEN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Skipping is explicit: an unreachable server fails the file instead of turning half the suite green by omission. */
export const SKIP_PG = process.env.DRIFTWARDEN_SKIP_PG === '1';

/** Throws with what to do when PostgreSQL is unreachable (await it at the top level of a test file). */
export async function requirePostgres(): Promise<void> {
  if (SKIP_PG) return;
  const probe = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5_000 });
  try {
    await probe.connect();
    await probe.query('select 1');
  } catch (err) {
    throw new Error(
      `PostgreSQL tests: cannot reach ${PG_URL} (${err instanceof Error ? err.message : String(err)}). ` +
        'Start PostgreSQL (trust auth, database "test"), point DRIFTWARDEN_TEST_PG_URL at one, ' +
        'or set DRIFTWARDEN_SKIP_PG=1 on a machine without PostgreSQL.',
    );
  } finally {
    await probe.end().catch(() => {});
  }
}

/**
 * A factory of empty, migrated stores for one test file.
 *
 * Creating and migrating a schema is DDL that PostgreSQL syncs to disk: a few hundred milliseconds,
 * which over a suite of many short tests is most of its run time. So the file gets one schema and one
 * store, migrated once; every later call empties the schema (DELETE every row, restart the id
 * sequences) and hands out the same store again, whose close() is then a no-op until the file ends:
 * the same empty, migrated state, at a fraction of the cost. The audit table refuses deletes by
 * trigger; the reset runs with session_replication_role = replica, which skips ordinary triggers and
 * needs a superuser (the test server's `postgres`). Without that right, each call opens a store on a
 * new schema instead. Callers are done with one store before asking for the next.
 */
export function pgStores(prefix: string): () => Promise<Store> {
  const runId = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const schemas: string[] = [];
  const opened: Store[] = [];
  let shared: { store: Store; schema: string; reset: string } | null = null;
  let admin: pg.Client | null = null;
  let recycle = true;
  const fresh = async () => {
    const schema = `${prefix}_${runId}_${schemas.length}`;
    schemas.push(schema);
    const store = await openStore(PG_URL, { schema, maxConnections: 4 });
    opened.push(store);
    return { store, schema };
  };
  afterAll(async () => {
    for (const s of opened) await s.close().catch(() => {});
    if (SKIP_PG || schemas.length === 0) return;
    const c = admin ?? new pg.Client({ connectionString: PG_URL });
    if (!admin) await c.connect();
    try {
      for (const s of schemas) await c.query(`drop schema if exists "${s}" cascade`);
    } finally {
      await c.end();
    }
  });
  /** The store, with a close() that leaves it open for the next test. */
  const lent = (store: Store): Store =>
    new Proxy(store, {
      get(target, key) {
        if (key === 'close') return async () => {};
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  return async () => {
    if (!recycle) return (await fresh()).store;
    if (!admin) {
      admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
    }
    if (!shared) {
      const { store, schema } = await fresh();
      shared = { store, schema, reset: await resetSql(admin, schema) };
      try {
        await admin.query(shared.reset); // proves the right to reset before lending the store
      } catch (err) {
        await admin.query('rollback');
        if ((err as { code?: string }).code !== '42501') throw err; // insufficient_privilege: not a superuser
        recycle = false;
        return store;
      }
      return lent(store);
    }
    await admin.query(shared.reset);
    return lent(shared.store);
  };
}

/**
 * One round trip that empties every table but the migrations' bookkeeping (which must go on saying
 * "migrated") and restarts the id sequences. DELETE rather than TRUNCATE: truncation creates and
 * syncs new files, many times slower here.
 */
async function resetSql(admin: pg.Client, schema: string): Promise<string> {
  const tables = await admin.query<{ t: string }>(
    `select tablename as t from pg_tables where schemaname = $1 and tablename <> all($2)`,
    [schema, [MIGRATION_TABLE, MIGRATION_LOCK_TABLE]],
  );
  const seqs = await admin.query<{ s: string }>(`select sequencename as s from pg_sequences where schemaname = $1`, [
    schema,
  ]);
  return [
    'begin',
    'set local session_replication_role = replica',
    ...tables.rows.map((r) => `delete from "${schema}"."${r.t}"`),
    ...seqs.rows.map((r) => `select setval('"${schema}"."${r.s}"', 1, false)`),
    'commit',
  ].join(';\n');
}
