/** @module SQLite fixtures built at test time from committed SQL, with SQLite itself (better-sqlite3, a test-only dependency here). */
import Database from 'better-sqlite3';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Runs `sql` into a new database file, in rollback-journal mode (nothing left in a -wal file). */
export function buildSqlite(out: string, sql: string, opts: { pageSize?: number } = {}): void {
  mkdirSync(dirname(out), { recursive: true });
  const db = new Database(out);
  try {
    if (opts.pageSize) db.pragma(`page_size = ${opts.pageSize}`);
    db.pragma('journal_mode = DELETE');
    db.exec(sql);
  } finally {
    db.close();
  }
}

export function buildSqliteFromFile(out: string, sqlFile: string, opts: { pageSize?: number } = {}): void {
  buildSqlite(out, readFileSync(sqlFile, 'utf8'), opts);
}
