/** @module dnf's history database (libdnf swdb) read without SQLite: transactions, their packages, and what is not a dnf history. */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDnfHistory } from '../../../agent/parsers/dnf-history.js';
import { DwParseError } from '../../../shared/errors.js';
import { buildSqlite, buildSqliteFromFile } from '../../helpers/sqlite-fixture.js';
import { FIXTURES, tempDir } from '../../helpers/tmp.js';

const SQL = join(FIXTURES, 'attribution/fedora/var/lib/dnf/history.sql');

function fixtureDb(pageSize?: number): string {
  const file = join(tempDir(), 'history.sqlite');
  buildSqliteFromFile(file, SQL, pageSize ? { pageSize } : {});
  return file;
}

describe('parseDnfHistory', () => {
  it('reads every transaction with its time, command line, login uid, state and rpm items', () => {
    const file = fixtureDb();
    const r = parseDnfHistory(readFileSync(file), file);
    expect(r.errors).toEqual([]);
    expect(r.transactions.map((t) => [t.id, t.begin, t.end, t.userId, t.commandLine, t.state])).toEqual([
      [1, 1704877200, 1704877260, 4294967295, 'install openssl-libs telnet less', 'done'],
      [2, 1709283600, 1709283642, 1000, 'upgrade openssl-libs', 'done'],
      [3, 1709373600, 1709373610, 1001, 'install strace @admin-tools', 'done'],
      [4, 1709460000, 1709460003, 1000, 'remove telnet', 'done'],
      [5, 1709546400, 1709546401, 1000, 'install nmap', 'error'],
      [6, 1709632800, 1709632805, 1234, 'downgrade less', 'done'],
    ]);
    const items = Object.fromEntries(r.transactions.map((t) => [t.id, t.items]));
    expect(items[2]).toEqual([
      { action: 'upgrade', name: 'openssl-libs', arch: 'x86_64', evr: '1:3.1.1-4.fc39', state: 'done' },
      { action: 'upgraded', name: 'openssl-libs', arch: 'x86_64', evr: '1:3.1.1-2.fc39', state: 'done' },
    ]);
    // The comps group that came with strace has no rpm row: not a package.
    expect(items[3]).toEqual([{ action: 'install', name: 'strace', arch: 'x86_64', evr: '6.7-1.fc39', state: 'done' }]);
    expect(items[4]).toEqual([
      { action: 'remove', name: 'telnet', arch: 'x86_64', evr: '1:0.17-88.fc39', state: 'done' },
    ]);
    expect(items[5]).toEqual([
      { action: 'install', name: 'nmap', arch: 'x86_64', evr: '2:7.93-1.fc39', state: 'error' },
    ]);
    expect(items[6]!.map((i) => `${i.action} ${i.evr}`)).toEqual(['downgrade 608-8.fc39', 'downgraded 633-2.fc39']);
  });

  it('reads the same on every page size (trees of other shapes)', () => {
    const want = parseDnfHistory(readFileSync(fixtureDb()), 'h').transactions;
    for (const size of [512, 1024, 8192, 65536])
      expect(parseDnfHistory(readFileSync(fixtureDb(size)), 'h').transactions).toEqual(want);
  });

  it('keeps every transaction of a long history, with long command lines cut', () => {
    const file = fixtureDb(1024);
    const db = new Database(file);
    const long = `install ${'pkg '.repeat(1000)}`;
    db.transaction(() => {
      for (let i = 0; i < 3000; i++) {
        db.prepare(
          'INSERT INTO trans (dt_begin, dt_end, releasever, user_id, cmdline, state) VALUES (?, ?, ?, ?, ?, 1)',
        ).run(1710000000 + i, 1710000001 + i, '39', 1000, i === 2999 ? long : `update ${i}`);
        const item = db.prepare('INSERT INTO item (item_type) VALUES (1)').run().lastInsertRowid;
        db.prepare('INSERT INTO rpm VALUES (?, ?, 0, ?, ?, ?)').run(item, `p${i}`, '1.0', '1.fc39', 'noarch');
        db.prepare(
          'INSERT INTO trans_item (trans_id, item_id, repo_id, action, reason, state) VALUES (last_insert_rowid() * 0 + (SELECT max(id) FROM trans), ?, 3, 1, 2, 1)',
        ).run(item);
      }
    })();
    db.close();
    const r = parseDnfHistory(readFileSync(file), file);
    expect(r.errors).toEqual([]);
    expect(r.transactions).toHaveLength(6 + 3000);
    const last = r.transactions.at(-1)!;
    expect(last.items).toEqual([
      { action: 'install', name: 'p2999', arch: 'noarch', evr: '1.0-1.fc39', state: 'done' },
    ]);
    expect(last.commandLine).toHaveLength(2001);
    expect(last.commandLine!.endsWith('…')).toBe(true);
  });

  it('skips a row it cannot read with an error, and keeps the rest', () => {
    const file = fixtureDb();
    const db = new Database(file);
    // Rows that no foreign key would allow: what a damaged or hand-edited database can still hold.
    db.pragma('foreign_keys = OFF');
    db.exec(
      "INSERT INTO trans_item (trans_id, item_id, repo_id, action, reason, state) VALUES (99, 4, 3, 6, 2, 1), (2, 4, 3, 42, 2, 1); INSERT INTO trans (id, dt_begin, releasever, user_id, state) VALUES (7, 'soon', '39', 0, 1);",
    );
    db.close();
    const r = parseDnfHistory(readFileSync(file), file);
    expect(r.transactions).toHaveLength(6);
    expect(r.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/trans row 7: missing id or dt_begin/),
      expect.stringMatching(/trans_item row 12: unknown transaction, item or action/),
      expect.stringMatching(/trans_item row 13: unknown transaction, item or action/),
    ]);
  });

  it('refuses a SQLite file that is not a dnf history, and a file that is not SQLite, with a DwParseError', () => {
    const other = join(tempDir(), 'other.sqlite');
    buildSqlite(other, 'CREATE TABLE trans (id INTEGER PRIMARY KEY);');
    expect(() => parseDnfHistory(readFileSync(other), other)).toThrow(
      /no table trans_item: not a dnf history database/,
    );
    expect(() => parseDnfHistory(Buffer.from('SQLite format 2\0'.padEnd(200, 'x')), 'x')).toThrow(DwParseError);
  });

  it('never throws anything but a DwParseError on damaged files', () => {
    const good = readFileSync(fixtureDb(512));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.option(fc.nat(good.length)),
        (flips, cut) => {
          const b = Buffer.from(good);
          for (const [at, v] of flips) b[at] = v;
          try {
            for (const e of parseDnfHistory(cut === null ? b : b.subarray(0, cut), 'h').errors)
              expect(e).toBeInstanceOf(DwParseError);
          } catch (err) {
            expect(err).toBeInstanceOf(DwParseError);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
