/**
 * @module The minimal SQLite reader against SQLite itself: random tables written by SQLite (every
 * value type, 64-bit integers, text long enough to overflow onto other pages, trees several levels
 * deep, every page size) read back the same; a real rpm database; and damaged files, which give a
 * DwParseError and never hang or read out of bounds.
 */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { columnsOf, SqliteFile } from '../../../agent/parsers/sqlite-file.js';
import { DwParseError } from '../../../shared/errors.js';
import { buildSqlite } from '../../helpers/sqlite-fixture.js';
import { tempDir } from '../../helpers/tmp.js';

type Row = { n: number | bigint | null; t: string | null; b: Uint8Array | null; r: number | null };

/** What SQLite returns for the table, with 64-bit integers kept exact. */
function sqliteRows(file: string, table: string): Record<string, unknown>[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`SELECT rowid AS _rowid, * FROM ${table} ORDER BY rowid`).safeIntegers(true).all() as Record<
      string,
      unknown
    >[];
  } finally {
    db.close();
  }
}

/** Our values normalised like SQLite's safeIntegers output (every integer a bigint, blobs as Buffers). */
function norm(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (typeof v === 'bigint') return v;
  return v;
}

const rowArb: fc.Arbitrary<Row> = fc.record({
  n: fc.oneof(
    fc.constant(null),
    fc.integer({ min: -300, max: 300 }),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.constantFrom(0, 1, 127, 128, 32767, 32768, 2 ** 31, 2 ** 47, -(2 ** 47)),
  ),
  t: fc.oneof(
    fc.constant(null),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 30 }),
    fc.string({ minLength: 600, maxLength: 9000 }),
  ),
  b: fc.oneof(fc.constant(null), fc.uint8Array({ maxLength: 3000 })),
  r: fc.oneof(fc.constant(null), fc.double({ noNaN: true, noDefaultInfinity: true })),
});

describe('SqliteFile', () => {
  it('reads back what SQLite wrote: every type, big integers, overflow pages, deep trees, every page size', () => {
    const dir = tempDir();
    let run = 0;
    fc.assert(
      fc.property(
        fc.array(rowArb, { maxLength: 250 }),
        fc.constantFrom(512, 1024, 4096, 65536),
        fc.boolean(),
        (rows, pageSize, withAlias) => {
          const file = join(dir, `t${run++}.sqlite`);
          buildSqlite(
            file,
            `CREATE TABLE t (${withAlias ? 'id INTEGER PRIMARY KEY, ' : ''}n INTEGER, t TEXT, /* a comment, with a comma */ b BLOB, r REAL);`,
            { pageSize },
          );
          const db = new Database(file);
          const insert = db.prepare('INSERT INTO t (n, t, b, r) VALUES (?, ?, ?, ?)');
          db.transaction(() => {
            for (const r of rows) insert.run(r.n, r.t, r.b === null ? null : Buffer.from(r.b), r.r);
          })();
          db.close();
          const expected = sqliteRows(file, 't').map((r) =>
            Object.fromEntries(
              Object.entries(r)
                .filter(([k]) => k !== '_rowid')
                .map(([k, v]) => [k, norm(v)]),
            ),
          );
          const ours = new SqliteFile(readFileSync(file), file)
            .table('t')!
            .map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, norm(v)])));
          expect(ours).toEqual(expected);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('gives a column added by ALTER TABLE as null in rows written before it', () => {
    const file = join(tempDir(), 'a.sqlite');
    buildSqlite(
      file,
      "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t (a) VALUES ('old'); ALTER TABLE t ADD COLUMN c TEXT DEFAULT ''; INSERT INTO t (a, c) VALUES ('new', 'x');",
    );
    expect(new SqliteFile(readFileSync(file), file).table('t')).toEqual([
      { id: 1, a: 'old', c: null },
      { id: 2, a: 'new', c: 'x' },
    ]);
  });

  it('says null for a table that is not there', () => {
    const file = join(tempDir(), 'e.sqlite');
    buildSqlite(file, 'CREATE TABLE t (a);');
    expect(new SqliteFile(readFileSync(file), file).table('missing')).toBeNull();
  });

  const RPMDB = join(import.meta.dirname, '../../../../shared/fixtures/rpm-fedora33/var/lib/rpm/rpmdb.sqlite');
  // Skipped only where ../shared (a real Fedora 33 rpm database, written by rpm's own SQLite) is absent.
  it.skipIf(!existsSync(RPMDB))(
    'reads a real rpm database (Fedora 33) as SQLite does, header blobs and all (needs ../shared)',
    () => {
      // A copy: SQLite opening a WAL-mode database, even read-only, writes -shm and -wal files beside it.
      const copy = join(tempDir(), 'rpmdb.sqlite');
      copyFileSync(RPMDB, copy);
      const ours = new SqliteFile(readFileSync(copy), copy);
      const tables = [...ours.tables().keys()];
      expect(tables).toContain('Packages');
      const db = new Database(copy, { readonly: true, fileMustExist: true });
      try {
        for (const name of tables) {
          const theirs = db.prepare(`SELECT * FROM "${name}" ORDER BY rowid`).safeIntegers(true).all() as Record<
            string,
            unknown
          >[];
          const plain = (rows: Record<string, unknown>[]) =>
            rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, norm(v)])));
          expect(plain(ours.table(name)!), name).toEqual(plain(theirs));
        }
      } finally {
        db.close();
      }
    },
  );

  it('turns damage into a DwParseError: truncation, flipped bytes, a cyclic tree, a wrong header', () => {
    const file = join(tempDir(), 'd.sqlite');
    buildSqlite(
      file,
      `CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT); ${Array.from({ length: 300 }, (_, i) => `INSERT INTO t (s) VALUES ('${'x'.repeat(i * 7)}');`).join('')}`,
      { pageSize: 512 },
    );
    const good = readFileSync(file);
    const readAll = (b: Uint8Array) => {
      try {
        const db = new SqliteFile(b, 'd.sqlite');
        for (const name of db.tables().keys()) db.table(name);
      } catch (err) {
        if (!(err instanceof DwParseError)) throw err;
      }
    };
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 12 }),
        fc.option(fc.nat(good.length)),
        (flips, cut) => {
          const b = Buffer.from(good);
          for (const [at, v] of flips) b[at] = v;
          readAll(cut === null ? b : b.subarray(0, cut));
        },
      ),
      { numRuns: 400 },
    );
    expect(
      () =>
        new SqliteFile(
          Buffer.from('not a database at all, just text that is long enough to have a header'.repeat(3)),
          'x',
        ),
    ).toThrow(DwParseError);
    // The root page's right-most child pointing at itself: refused, not followed forever.
    const cyclic = Buffer.from(good);
    const pageSize = 512;
    const root = Number(new SqliteFile(good, 'x').tables().get('t')!.rootPage);
    const at = (root - 1) * pageSize;
    expect(cyclic[at]).toBe(0x05);
    cyclic.writeUInt32BE(root, at + 8);
    expect(() => new SqliteFile(cyclic, 'x').table('t')).toThrow(/reached twice/);
  });
});

describe('columnsOf', () => {
  it('reads column names in order, skipping table constraints and comments, and finds the rowid alias', () => {
    expect(
      columnsOf(
        'CREATE TABLE rpm (\n item_id INTEGER UNIQUE NOT NULL,\n name TEXT NOT NULL, /* a, b */\n "odd ""name""" TEXT -- x, y\n , [br] INT, `bt` INT,\n FOREIGN KEY(item_id) REFERENCES item(id),\n CONSTRAINT u UNIQUE (name, item_id)\n)',
        'x',
      ),
    ).toEqual({
      columns: ['item_id', 'name', 'odd "name"', 'br', 'bt'],
      rowidAlias: null,
    });
    expect(columnsOf('CREATE TABLE t (id integer primary key autoincrement, v DEFAULT (1, 2))', 'x')).toEqual({
      columns: ['id', 'v'],
      rowidAlias: 'id',
    });
  });

  it('never throws anything but a DwParseError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (sql) => {
        try {
          columnsOf(sql, 'x');
        } catch (err) {
          expect(err).toBeInstanceOf(DwParseError);
        }
      }),
      { numRuns: 500 },
    );
  });
});
