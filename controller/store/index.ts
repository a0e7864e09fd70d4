/** @module openStore(url): the store a `store:` config value names (sqlite: or postgres://), migrated and ready. */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  sql,
  type DatabaseConnection,
  type Driver,
  type SqliteDatabase,
  type SqliteStatement,
} from 'kysely';
import pg from 'pg';
import { DwError } from '../../shared/errors.js';
import { redactUrl } from '../../shared/logger.js';
import { GroupCommitSqliteStore } from './group-commit.js';
import { KyselyStore, type DB } from './kysely-store.js';
import { startCheckpointer } from './sqlite-checkpointer.js';
import type { Store } from './types.js';

export type { Store, StoreTx } from './types.js';
export { StoreConflictError } from './types.js';

/** The part of a pino logger the store uses. */
export interface StoreLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface OpenStoreOptions {
  log?: StoreLog;
  /**
   * PostgreSQL only: the schema to use (created if missing), set as every connection's search_path.
   * Lets tests, or several deployments on one database, keep their tables apart.
   */
  schema?: string;
  /** PostgreSQL only: pool size (default 10). */
  maxConnections?: number;
  /**
   * SQLite only: checkpoint the WAL from a worker thread instead of inside commits (a long-running
   * controller; short CLI commands keep SQLite's automatic checkpoints).
   */
  backgroundCheckpoints?: boolean;
}

/** How long a SQLite writer waits for another process's write lock (e.g. `driftwarden token create`). */
const SQLITE_BUSY_TIMEOUT_MS = 5_000;
/** Distinct SQL texts kept prepared; Kysely's queries are a few dozen shapes, multi-row inserts a few more. */
const STATEMENT_CACHE_SIZE = 256;

export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<Store> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  let store: KyselyStore;
  if (scheme === 'sqlite') store = openSqlite(url.slice('sqlite:'.length), opts);
  else if (scheme === 'postgres' || scheme === 'postgresql') store = await openPostgres(url, opts);
  else {
    // Only the scheme goes into the message: the rest of a URL may carry a password.
    throw new DwError(
      'DW_ERR_CONFIG',
      `store: unsupported URL scheme ${scheme ? `"${scheme}:"` : '(none)'}; use sqlite:/path/to/file.db or postgres://user@host/db`,
      {
        key: 'store',
        scheme: scheme ?? null,
      },
    );
  }
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}

// ---- SQLite ----

function sqlitePath(rest: string): string {
  if (rest === ':memory:') return rest;
  // sqlite:///abs/path (URL style) and sqlite:/abs/path (the documented form) mean the same file.
  const p = rest.startsWith('//') ? rest.slice(2) : rest;
  if (p === '') throw new DwError('DW_ERR_CONFIG', 'store: sqlite: URL has no file path', { key: 'store' });
  return resolve(p);
}

function openSqlite(rest: string, opts: OpenStoreOptions): KyselyStore {
  const file = sqlitePath(rest);
  if (file !== ':memory:') {
    // The database holds token and credential hashes and every host's inventory: owner only.
    // mkdir's mode applies to directories it creates; an existing directory (e.g. made by the
    // package) keeps its own.
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    closeSync(openSync(file, 'a', 0o600));
    chmodSync(file, 0o600);
  }
  const raw = new Database(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  try {
    raw.pragma('journal_mode = WAL');
    // WAL + synchronous=NORMAL: a commit is in the WAL (written to the OS's page cache) before it
    // returns, and the group committer answers no caller before its commit returned. So a SIGKILL of
    // the controller right after a 2xx loses nothing (the OS still writes the pages). An OS crash or
    // power loss can roll back the last transactions not yet fsynced (the WAL is fsynced at each
    // checkpoint, every 250 ms from sqlite-checkpointer.ts); the database stays consistent either way.
    // FULL would fsync every commit (a few ms each on this class of disk, blocking the event loop).
    raw.pragma('synchronous = NORMAL');
    raw.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    raw.pragma('foreign_keys = ON');
  } catch (err) {
    raw.close();
    throw err;
  }
  if (file !== ':memory:') {
    // SQLite gives -wal and -shm the main file's mode; re-assert in case they predate us.
    for (const extra of [`${file}-wal`, `${file}-shm`]) if (existsSync(extra)) chmodSync(extra, 0o600);
  }
  opts.log?.info({ file, journalMode: raw.pragma('journal_mode', { simple: true }) }, 'store opened (sqlite)');
  const db = new Kysely<DB>({
    dialect: new ImmediateSqliteDialect({ database: statementCache(raw, STATEMENT_CACHE_SIZE) }),
  });
  const checkpointer =
    opts.backgroundCheckpoints && file !== ':memory:'
      ? startCheckpointer(raw, file, (message) => opts.log?.warn({ file, message }, 'store: WAL checkpoint failed'))
      : null;
  // One writer: concurrent transactions share a commit (controller/store/group-commit.ts).
  return new GroupCommitSqliteStore(db, checkpointer);
}

/**
 * Kysely's SqliteDriver runs `begin` (deferred): a transaction that reads first takes the write lock
 * only at its first write, and if another process committed in between, SQLite answers SQLITE_BUSY
 * at once (busy_timeout cannot help a lock upgrade). `begin immediate` takes the write lock up front,
 * where busy_timeout applies. Inside this process transactions are already serialized by Kysely's
 * connection mutex.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: ConstructorParameters<typeof SqliteDialect>[0];
  constructor(config: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

/**
 * Kysely's SqliteDriver calls `prepare` for every query; better-sqlite3 does not cache, so each call
 * would re-parse and re-plan its SQL. Kysely produces the same text for the same query shape, so a
 * small cache keyed by text keeps one prepared statement per shape. Safe because the driver never
 * runs two statements at once (its mutex) and never streams; SQLite re-prepares a cached statement
 * itself after a schema change.
 */
function statementCache(raw: Database.Database, max: number): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => raw.close(),
    prepare(text: string): SqliteStatement {
      const hit = cache.get(text);
      if (hit) return hit;
      const stmt = raw.prepare(text) as unknown as SqliteStatement;
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      cache.set(text, stmt);
      return stmt;
    },
  };
}

// ---- PostgreSQL ----

async function openPostgres(url: string, opts: OpenStoreOptions): Promise<KyselyStore> {
  const schema = opts.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new DwError(
      'DW_ERR_CONFIG',
      `store: PostgreSQL schema name ${JSON.stringify(schema)} must be lower-case letters, digits and _`,
      { key: 'store' },
    );
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.maxConnections ?? 10,
    application_name: 'driftwarden-controller',
    // A startup parameter, so every pooled connection has it without an extra round trip.
    ...(schema !== undefined ? { options: `-c search_path=${schema}` } : {}),
  });
  // An idle client losing its server emits 'error' on the pool; unhandled, that would kill the
  // controller. The pool replaces the client; the next query reports any lasting outage.
  pool.on('error', (err) => opts.log?.warn({ err }, 'store: idle PostgreSQL connection failed'));
  // A connection checked out between two queries (inside a transaction, say) that loses its server
  // emits 'error' on the client, where the pool's handler is not: without this the controller dies
  // on a database restart. The next query on it fails, and the pool discards it on release.
  pool.on('connect', (client) =>
    client.on('error', (err) => opts.log?.warn({ err }, 'store: PostgreSQL connection lost')),
  );
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  let current: string;
  try {
    if (schema !== undefined) await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
    // The schema unqualified names resolve to: where the migrations create the tables.
    const r = await sql<{ s: string | null }>`select current_schema() as s`.execute(db);
    const s = r.rows[0]?.s;
    if (!s) throw new Error('no schema on the search_path exists (current_schema() is null)');
    current = s;
  } catch (err) {
    await db.destroy().catch(() => {});
    throw new DwError(
      'DW_ERR_IO',
      `store: cannot use PostgreSQL at ${redactUrl(url)}: ${err instanceof Error ? err.message : String(err)}`,
      { key: 'store' },
      { cause: err },
    );
  }
  opts.log?.info({ url: redactUrl(url), schema: current }, 'store opened (postgres)');
  return new KyselyStore(db, 'postgres', {
    pgSchema: current,
    waiting: () => pool.waitingCount,
    onRetry: (err, attempt, delayMs) =>
      opts.log?.info(
        { code: (err as { code?: string }).code, attempt, delayMs: Math.round(delayMs) },
        'store: transaction aborted by PostgreSQL (deadlock or serialization conflict); running it again',
      ),
  });
}
