/**
 * @module A PostgreSQL database of a test's own (not a schema in the shared `test` database): tests
 * that run several controllers on one database, or cut the controllers' connections with
 * pg_terminate_backend, then touch nothing anyone else's tests use. Dropped (WITH FORCE) by drop().
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PG_URL } from './postgres.js';

export interface TestDatabase {
  name: string;
  url: string;
  /** Ends every connection to this database but the caller's own; how many it ended. */
  terminateBackends(): Promise<number>;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  const name = `${prefix}_${process.pid}_${randomBytes(3).toString('hex')}`;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad database name ${name}`);
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const run = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  return {
    name,
    url: withDatabase(PG_URL, name),
    terminateBackends: () =>
      run(async (c) => {
        const r = await c.query<{ ok: boolean }>(
          'select pg_terminate_backend(pid) as ok from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
          [name],
        );
        return r.rows.filter((x) => x.ok).length;
      }),
    drop: () => run(async (c) => void (await c.query(`drop database if exists "${name}" with (force)`))),
  };
}
