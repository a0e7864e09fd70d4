/**
 * @module Tamper evidence: the audit log and the event stream are hash chains, and verification finds
 * the first changed or removed row (changed by the database owner, bypassing the append-only
 * triggers), on SQLite and PostgreSQL; rows written before migration 0003 join the chain.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import { GENESIS } from '../../controller/store/chain.js';
import { createMigrator } from '../../controller/store/migrations.js';
import type { Store } from '../../controller/store/types.js';
import { verifyChain } from '../../controller/verify-history.js';
import { PG_URL, requirePostgres, SKIP_PG } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';
import { Harness, HOUR } from './harness.js';

await requirePostgres();

interface Backdoor {
  /** Runs SQL as the database owner with the append-only triggers out of the way. */
  exec(sqlText: string): Promise<void>;
  close(): Promise<void>;
}

const cases: { name: string; open: () => Promise<{ store: Store; backdoor: Backdoor }> }[] = [
  {
    name: 'sqlite',
    async open() {
      const file = join(tempDir('dw-history-'), 'controller.db');
      const store = await openStore(`sqlite:${file}`);
      return {
        store,
        backdoor: {
          async exec(sqlText) {
            const raw = new Database(file);
            raw.exec(
              'drop trigger if exists audit_no_update; drop trigger if exists audit_no_delete; drop trigger if exists events_no_update; drop trigger if exists events_no_delete;',
            );
            raw.exec(sqlText);
            raw.close();
          },
          async close() {},
        },
      };
    },
  },
  ...(SKIP_PG
    ? []
    : [
        {
          name: 'postgres',
          async open() {
            const schema = `dw_history_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
            const store = await openStore(PG_URL, { schema, maxConnections: 2 });
            const admin = new pg.Client({ connectionString: PG_URL });
            await admin.connect();
            return {
              store,
              backdoor: {
                async exec(sqlText: string) {
                  // Statement triggers are skipped in replica mode (needs the superuser the test server has).
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
          },
        },
      ]),
];

describe.each(cases)('hash-chained history: $name', ({ open }) => {
  let h: Harness;
  let backdoor: Backdoor;
  afterEach(async () => {
    await h?.close();
    await backdoor?.close();
  });

  /** A little history: tokens, a manifest, enrollments, drift, a taint, an exemption. */
  async function withHistory() {
    const o = await open();
    backdoor = o.backdoor;
    h = await Harness.start(o.store);
    const web1 = await h.enroll('web-1');
    const web2 = await h.enroll('web-2');
    await web1.scan();
    await web2.write('/home/alice/notes.txt', 'x\n').scan();
    h.clock.advance(HOUR);
    await web1.upgrade('openssl', '3.0.13-1').scan();
    await h.req('POST', '/api/v1/exemptions', {
      token: h.tokens.operator,
      body: { hostId: 'web-2', keyPattern: '/home/**', collector: 'files', reason: 'user files', for: '1d' },
    });
  }

  it('a history written through the API verifies, and each row links to the one before it', async () => {
    await withHistory();
    const audit = await verifyChain(h.store, 'audit');
    const events = await verifyChain(h.store, 'events');
    expect(audit).toMatchObject({ ok: true });
    expect(audit.rows).toBeGreaterThanOrEqual(8);
    expect(events).toMatchObject({ ok: true });
    expect(events.rows).toBeGreaterThanOrEqual(5);
    const rows = await h.store.listAudit({ limit: 100 });
    expect(rows[0]!.prevHash).toBe(GENESIS);
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.prevHash).toBe(rows[i - 1]!.hash);
    expect(audit.head).toBe(rows[rows.length - 1]!.hash);
  });

  it('a changed audit row breaks its own hash: verify names its id', async () => {
    await withHistory();
    const victim = (await h.store.listAudit({ limit: 100 })).find((a) => a.action === 'host.taint')!;
    await backdoor.exec(`update audit set actor = 'someone-else' where id = ${victim.id}`);
    const r = await verifyChain(h.store, 'audit');
    expect(r).toMatchObject({ ok: false, broken: { id: victim.id, problem: 'hash' } });
  });

  it("a removed audit row breaks the next row's link", async () => {
    await withHistory();
    const rows = await h.store.listAudit({ limit: 100 });
    const victim = rows[3]!;
    await backdoor.exec(`delete from audit where id = ${victim.id}`);
    const r = await verifyChain(h.store, 'audit');
    expect(r).toMatchObject({
      ok: false,
      broken: { id: rows[4]!.id, problem: 'prev-hash', expected: rows[2]!.hash, found: victim.hash },
    });
  });

  it('a changed or removed event breaks the event chain', async () => {
    await withHistory();
    const events = await h.store.listEvents({ limit: 100 });
    const state = events.find((e) => e.kind === 'state' && e.detail.to === 'tainted')!;
    await backdoor.exec(`update events set detail = replace(detail, 'tainted', 'clean') where id = ${state.id}`);
    expect(await verifyChain(h.store, 'events')).toMatchObject({
      ok: false,
      broken: { id: state.id, problem: 'hash' },
    });
  });

  it('rows cut from the end are caught against a head recorded earlier', async () => {
    await withHistory();
    const before = await verifyChain(h.store, 'audit');
    const last = (await h.store.listAudit({ beforeId: Number.MAX_SAFE_INTEGER, limit: 1 }))[0]!;
    await backdoor.exec(`delete from audit where id = ${last.id}`);
    expect(await verifyChain(h.store, 'audit')).toMatchObject({ ok: true }); // the chain alone cannot tell
    expect(await verifyChain(h.store, 'audit', before.head)).toMatchObject({
      ok: false,
      headMismatch: { expected: before.head },
    });
  });
});

describe('migration 0003 on an existing database', () => {
  it('chains the audit rows written before it, in id order', async () => {
    const file = join(tempDir('dw-history-'), 'old.db');
    const raw = new Database(file);
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: raw }) });
    const r = await createMigrator(db, 'sqlite').migrateTo('0001_initial');
    expect(r.error).toBeUndefined();
    for (let i = 0; i < 3; i++) {
      await db
        .insertInto('audit')
        .values({
          at: `2026-01-0${i + 1}T00:00:00.000Z`,
          actor: 'cli:root',
          action: 'token.create',
          target: `t${i}`,
          detail: JSON.stringify({ i }),
        })
        .execute();
    }
    await db.destroy();
    const store = await openStore(`sqlite:${file}`);
    try {
      expect(await verifyChain(store, 'audit')).toMatchObject({ ok: true, rows: 3 });
      await store.appendAudit({
        at: '2026-01-04T00:00:00.000Z',
        actor: 'cli:root',
        action: 'token.revoke',
        target: 't0',
        detail: {},
      });
      expect(await verifyChain(store, 'audit')).toMatchObject({ ok: true, rows: 4 });
    } finally {
      await store.close();
    }
  });
});
