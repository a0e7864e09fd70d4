/** @module The Store contract on SQLite, plus what only SQLite has: the file, its modes and pragmas. */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Kysely, SqliteDialect } from 'kysely';
import { openStore } from '../../../controller/store/index.js';
import { createMigrator } from '../../../controller/store/migrations.js';
import { DwError } from '../../../shared/errors.js';
import { tempDir } from '../../helpers/tmp.js';
import { at, hostRow, runStoreContract } from './store.contract.js';

runStoreContract('sqlite (memory)', () => openStore('sqlite::memory:'));

// A file database too: WAL, the file lock and `begin immediate` only exist there.
runStoreContract('sqlite (file)', () => openStore(`sqlite:${join(tempDir('dw-store-'), 'controller.db')}`));

describe('openStore(sqlite:)', () => {
  it('creates the directory 0700 and the database 0600, in WAL mode, and keeps data across reopening', async () => {
    const dir = join(tempDir('dw-store-'), 'var', 'lib', 'driftwarden');
    const file = join(dir, 'controller.db');
    const store = await openStore(`sqlite:${file}`);
    expect(store.kind).toBe('sqlite');
    await store.insertHost(hostRow('h1'));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(`${file}-wal`).mode & 0o777).toBe(0o600);
    await store.close();

    const raw = new Database(file, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();

    const again = await openStore(`sqlite://${file}`);
    expect((await again.getHost('h1'))?.id).toBe('h1');
    await again.close();
  });

  it('tightens the mode of an existing database file', async () => {
    const file = join(tempDir('dw-store-'), 'c.db');
    const s1 = await openStore(`sqlite:${file}`);
    await s1.close();
    const { chmodSync } = await import('node:fs');
    chmodSync(file, 0o644);
    const s2 = await openStore(`sqlite:${file}`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await s2.close();
  });

  it('rejects updates and deletes of audit rows in the database itself', async () => {
    const file = join(tempDir('dw-store-'), 'c.db');
    const store = await openStore(`sqlite:${file}`);
    await store.appendAudit({ at: at(0), actor: 'a', action: 'x', target: null, detail: {} });
    const raw = new Database(file);
    expect(() => raw.prepare("update audit set actor = 'mallory'").run()).toThrow(/append-only/);
    expect(() => raw.prepare('delete from audit').run()).toThrow(/append-only/);
    raw.close();
    expect((await store.listAudit({ limit: 10 }))[0]?.actor).toBe('a');
    await store.close();
  });
});

describe('openStore(url)', () => {
  it('refuses an unknown scheme with DW_ERR_CONFIG naming the scheme, not the rest of the URL', async () => {
    const err = await openStore('mysql://root:hunter2@db/drift').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DwError);
    expect((err as DwError).code).toBe('DW_ERR_CONFIG');
    expect((err as DwError).message).toContain('"mysql:"');
    expect((err as DwError).message).not.toContain('hunter2');
    await expect(openStore('/var/lib/driftwarden/controller.db')).rejects.toMatchObject({ code: 'DW_ERR_CONFIG' });
    await expect(openStore('sqlite:')).rejects.toMatchObject({ code: 'DW_ERR_CONFIG' });
  });
});

describe('migration 0005_pinned_identity', () => {
  it('upgrades a 0004 database: hostname and group stay the pinned identity, the latest addresses become the pinned ones', async () => {
    const file = join(tempDir('dw-store-'), 'old.db');
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new Database(file) }) });
    const r = await createMigrator(db, 'sqlite').migrateTo('0004_replacements_by_host');
    expect(r.error).toBeUndefined();
    const now = at(0);
    const base = {
      image_id: 'ami-1',
      state: 'clean',
      state_since: now,
      enrolled_at: now,
      last_seq: 1,
      deviation_count: 0,
    };
    await db
      .insertInto('hosts')
      .values({
        ...base,
        id: 'h1',
        credential_hash: 'c1',
        hostname: 'ip-10-0-0-5.ec2.internal',
        host_group: 'web',
        inventory: JSON.stringify({
          hostId: 'h1',
          hostname: 'ip-10-0-0-5.ec2.internal',
          os: null,
          kernel: null,
          addresses: ['10.0.0.5'],
        }),
      })
      .execute();
    await db
      .insertInto('hosts')
      .values({ ...base, id: 'h2', credential_hash: 'c2', hostname: null, host_group: null, inventory: null })
      .execute();
    await db.destroy();

    const store = await openStore(`sqlite:${file}`);
    expect(await store.getHost('h1')).toMatchObject({
      hostname: 'ip-10-0-0-5.ec2.internal',
      group: 'web',
      enrolledAddresses: ['10.0.0.5'],
      reportedHostname: null,
      reportedGroup: null,
    });
    expect(await store.getHost('h2')).toMatchObject({ hostname: null, enrolledAddresses: [], reportedHostname: null });
    await store.close();
  });
});
