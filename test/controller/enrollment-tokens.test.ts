/**
 * @module Enrollment tokens under attack (issue 21): a token enrolls at most its use count, only until
 * it expires, only into the groups it allows, and not after it is revoked; racing enrollments on a
 * 1-use token enroll one host. Each attack fails with nothing lost for the honest hosts, on SQLite and
 * PostgreSQL.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, sql, SqliteDialect } from 'kysely';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import { LEGACY_ENROLLMENT_GRACE_MS } from '../../controller/store/migration-0006.js';
import { createMigrator } from '../../controller/store/migrations.js';
import { tempDir } from '../helpers/tmp.js';
import type { Store } from '../../controller/store/types.js';
import { PG_URL, pgStores, requirePostgres, SKIP_PG } from '../helpers/postgres.js';
import { DAY, Harness, HOUR, IMAGE, type Res } from './harness.js';

await requirePostgres();
const pgOpen = pgStores('dw_enrolltok');

const STORES: { name: string; open: () => Promise<Store>; skip: boolean }[] = [
  { name: 'sqlite', open: () => openStore('sqlite::memory:'), skip: false },
  { name: 'postgres', open: pgOpen, skip: SKIP_PG },
];

// PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without it (requirePostgres fails the run otherwise); SQLite never is.
for (const { name, open, skip } of STORES)
  describe.skipIf(skip)(`enrollment tokens on ${name}`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await Harness.start(await open());
    });
    afterEach(async () => {
      await h.close();
    });

    /** POST /api/v1/tokens as the admin; the secret comes back once. */
    async function token(body: Record<string, unknown>): Promise<{
      id: string;
      secret: string;
      expiresAt: string | null;
      maxUses: number | null;
      groups: string[] | null;
    }> {
      const r = await h.req('POST', '/api/v1/tokens', {
        token: h.tokens.admin,
        body: { name: 'launch', role: 'agent', ...body },
      });
      expect(r.status, r.text).toBe(201);
      return r.body;
    }

    function enroll(secret: string, hostId: string, group?: string): Promise<Res> {
      return h.req('POST', '/api/v1/enroll', {
        token: secret,
        body: {
          hostId,
          hostname: `${hostId}.example.internal`,
          imageId: IMAGE,
          ...(group !== undefined ? { group } : {}),
        },
      });
    }

    const hostIds = async () => (await h.store.listHosts({ limit: 100 })).hosts.map((x) => x.id).sort();

    it('by default an enrollment token enrolls one host within 24 hours', async () => {
      const t = await token({});
      expect(t).toMatchObject({
        maxUses: 1,
        groups: null,
        expiresAt: new Date(h.clock.now().getTime() + DAY).toISOString(),
      });
      expect((await enroll(t.secret, 'web-1')).status).toBe(201);
      const again = await enroll(t.secret, 'fake-1');
      expect(again.status).toBe(401);
      expect(again.body).toEqual({
        error: 'DW_ERR_UNAUTHORIZED',
        message: `enrollment token ${t.id} is used up (1 of 1 enrollments); create a new one`,
      });
      expect(await hostIds()).toEqual(['web-1']);
      expect(await h.store.getToken(t.id)).toMatchObject({ uses: 1, maxUses: 1, lastUsedAt: h.clock.iso() });
    });

    it('attack: fifteen fake hosts on a 3-use token: three enroll, twelve are refused, and the honest hosts still report', async () => {
      const t = await token({ maxUses: 3, expiresIn: '30d' });
      const results: number[] = [];
      for (let i = 0; i < 15; i++) results.push((await enroll(t.secret, `fake-${i}`)).status);
      expect(results.filter((s) => s === 201)).toHaveLength(3);
      expect(results.slice(3).every((s) => s === 401)).toBe(true);
      expect(await hostIds()).toEqual(['fake-0', 'fake-1', 'fake-2']);
      // Exactly one token.use row per enrollment, counting up.
      const uses = (await h.store.listAudit({ limit: 1000 })).filter((a) => a.action === 'token.use');
      expect(uses.map((a) => [a.target, a.detail])).toEqual(
        [0, 1, 2].map((i) => [t.id, { hostId: `fake-${i}`, uses: i + 1, maxUses: 3 }]),
      );
      // Hosts enrolled on other tokens are untouched.
      const honest = await h.enroll('web-1');
      expect((await honest.scan()).status).toBe(200);
    });

    it('attack: concurrent enrollments on a 1-use token: exactly one host enrolls', async () => {
      const t = await token({});
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => enroll(t.secret, `race-${i}`)));
      const won = results.filter((r) => r.status === 201);
      expect(won).toHaveLength(1);
      for (const r of results.filter((x) => x.status !== 201)) expect(r.status, r.text).toBe(401);
      expect(await hostIds()).toHaveLength(1);
      expect((await h.store.getToken(t.id))?.uses).toBe(1);
      expect((await h.store.listAudit({ limit: 1000 })).filter((a) => a.action === 'token.use')).toHaveLength(1);
    });

    it('attack: an expired token enrolls nothing, and says so', async () => {
      const t = await token({ maxUses: 'unlimited', expiresIn: '2h' });
      expect((await enroll(t.secret, 'web-1')).status).toBe(201);
      h.clock.advance(2 * HOUR);
      const r = await enroll(t.secret, 'late-1');
      expect(r.status).toBe(401);
      expect(r.body.message).toBe(`token ${t.id} expired at ${t.expiresAt}`);
      expect(await hostIds()).toEqual(['web-1']);
    });

    it('attack: a host cannot join a group the token does not allow, or no group when it requires one', async () => {
      const t = await token({ maxUses: 10, groups: ['web-*', 'batch'] });
      const outside = await enroll(t.secret, 'fake-1', 'db-prod');
      expect(outside.status).toBe(403);
      expect(outside.body).toEqual({
        error: 'DW_ERR_FORBIDDEN',
        message: `enrollment token ${t.id} only enrolls hosts into groups matching web-*, batch, not "db-prod"`,
      });
      const none = await enroll(t.secret, 'fake-2');
      expect(none.status).toBe(403);
      expect(none.body.message).toBe(
        `enrollment token ${t.id} only enrolls hosts into groups matching web-*, batch; this enrollment names no group`,
      );
      // A group name with a line break is no group at all: refused at validation, before any glob sees it.
      expect((await enroll(t.secret, 'fake-3', 'web-x\ndb-prod')).status).toBe(400);
      expect((await enroll(t.secret, 'fake-4', 'batchy')).status).toBe(403);
      expect(await hostIds()).toEqual([]);
      // Refusals cost no use; allowed groups enroll.
      expect((await h.store.getToken(t.id))?.uses).toBe(0);
      expect((await enroll(t.secret, 'web-1', 'web-asg')).status).toBe(201);
      expect((await enroll(t.secret, 'batch-1', 'batch')).status).toBe(201);
      expect((await h.host('web-1')).group).toBe('web-asg');
      expect((await h.store.getToken(t.id))?.uses).toBe(2);
    });

    it('a refused enrollment (a host id already enrolled) costs the token no use', async () => {
      await h.enroll('web-1');
      const t = await token({});
      expect((await enroll(t.secret, 'web-1')).status).toBe(409);
      expect((await h.store.getToken(t.id))?.uses).toBe(0);
      expect((await enroll(t.secret, 'web-2')).status).toBe(201);
    });

    it('a revoked token enrolls nothing; tokens are listed without secrets or hashes', async () => {
      const t = await token({ maxUses: 'unlimited', expiresIn: 'never', groups: ['web-*'] });
      expect(t.expiresAt).toBeNull();
      expect(t.maxUses).toBeNull();
      const list = await h.req('GET', '/api/v1/tokens', { token: h.tokens.admin });
      expect(list.status).toBe(200);
      expect(list.body.tokens.find((x: { id: string }) => x.id === t.id)).toEqual({
        id: t.id,
        name: 'launch',
        role: 'agent',
        createdAt: h.clock.iso(),
        createdBy: h.actor('admin'),
        expiresAt: null,
        revokedAt: null,
        lastUsedAt: null,
        uses: 0,
        maxUses: null,
        groups: ['web-*'],
        legacy: false,
      });
      expect(list.text).not.toContain(t.secret);
      expect(list.text).not.toMatch(/"hash"/);
      expect((await h.req('DELETE', `/api/v1/tokens/${t.id}`, { token: h.tokens.admin })).status).toBe(200);
      const r = await enroll(t.secret, 'web-1', 'web-a');
      expect(r.status).toBe(401);
      expect(r.body.message).toBe(`token ${t.id} was revoked`);
      const audit = (await h.store.listAudit({ limit: 1000 }))
        .filter((a) => a.target === t.id)
        .map((a) => [a.action, a.detail]);
      expect(audit).toEqual([
        ['token.create', { name: 'launch', role: 'agent', expiresAt: null, maxUses: null, groups: ['web-*'] }],
        ['token.revoke', {}],
      ]);
    });

    it('an unknown token learns nothing beyond "unknown"', async () => {
      const r = await enroll('dwt_guess', 'fake-1');
      expect(r.body).toEqual({ error: 'DW_ERR_UNAUTHORIZED', message: 'unknown token' });
    });

    it('refuses token options that make no sense, naming them, and creates nothing', async () => {
      const before = (await h.store.listTokens()).length;
      const bad = async (body: Record<string, unknown>, field: RegExp) => {
        const r = await h.req('POST', '/api/v1/tokens', { token: h.tokens.admin, body: { name: 'x', ...body } });
        expect(r.status, r.text).toBe(400);
        expect(r.body.message).toMatch(field);
      };
      await bad({ role: 'viewer', maxUses: 5 }, /maxUses: only enrollment tokens/);
      await bad({ role: 'operator', groups: ['web-*'] }, /groups: only enrollment tokens/);
      await bad({ role: 'agent', maxUses: 0 }, /maxUses/);
      await bad({ role: 'agent', expiresIn: '0s' }, /expiresIn/);
      await bad({ role: 'agent', groups: [] }, /groups/);
      await bad({ role: 'agent', groups: ['web-\n*'] }, /groups/);
      expect(await h.store.listTokens()).toHaveLength(before);
    });
  });

/** A database as 0004 left it, with an old-style agent token (no expiry) and an API token. */
async function legacyDatabase(
  kind: 'sqlite' | 'postgres',
): Promise<{ open: () => Promise<Store>; cleanup: () => Promise<void> }> {
  let db: Kysely<any>;
  let open: () => Promise<Store>;
  let cleanup = async () => {};
  let pgSchema: string | undefined;
  if (kind === 'sqlite') {
    const file = join(tempDir('dw-legacy-'), 'old.db');
    db = new Kysely<any>({ dialect: new SqliteDialect({ database: new Database(file) }) });
    open = () => openStore(`sqlite:${file}`);
  } else {
    const schema = `dw_legacy_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    pgSchema = schema;
    db = new Kysely<any>({
      dialect: new PostgresDialect({
        pool: new pg.Pool({ connectionString: PG_URL, max: 1, options: `-c search_path=${schema}` }),
      }),
    });
    await sql`create schema ${sql.id(schema)}`.execute(db);
    open = () => openStore(PG_URL, { schema, maxConnections: 2 });
    cleanup = async () => {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`drop schema if exists "${schema}" cascade`);
      await c.end();
    };
  }
  const r = await createMigrator(db, kind, pgSchema).migrateTo('0004_replacements_by_host');
  expect(r.error).toBeUndefined();
  const row = (id: string, role: string, expires_at: string | null) => ({
    id,
    hash: `hash-${id}`,
    name: id,
    role,
    created_at: '2026-01-01T00:00:00.000Z',
    created_by: 'cli:root',
    expires_at,
    revoked_at: null,
    last_used_at: null,
  });
  await db
    .insertInto('tokens')
    .values([
      row('baked', 'agent', null),
      row('soon', 'agent', '2026-01-02T00:00:00.000Z'),
      row('people', 'admin', null),
    ])
    .execute();
  await db.destroy();
  return { open, cleanup };
}

describe.each([
  { kind: 'sqlite' as const, skip: false },
  { kind: 'postgres' as const, skip: SKIP_PG },
])('migration 0006 on an existing $kind database', ({ kind, skip }) => {
  // PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without it (requirePostgres fails the run otherwise); SQLite never is.
  it.skipIf(skip)(
    'keeps old enrollment tokens working, marked legacy with unlimited uses, expiring 14 days after the upgrade at the latest',
    async () => {
      const { open, cleanup } = await legacyDatabase(kind);
      const before = Date.now();
      const store = await open();
      try {
        const byId = Object.fromEntries((await store.listTokens()).map((t) => [t.id, t]));
        expect(byId.baked).toMatchObject({ legacy: true, uses: 0, maxUses: null, groups: null });
        const expires = Date.parse(byId.baked!.expiresAt!);
        expect(expires).toBeGreaterThanOrEqual(before + LEGACY_ENROLLMENT_GRACE_MS);
        expect(expires).toBeLessThanOrEqual(Date.now() + LEGACY_ENROLLMENT_GRACE_MS);
        // An earlier expiry stays; people's tokens are not enrollment tokens and are left alone.
        expect(byId.soon).toMatchObject({ legacy: true, expiresAt: '2026-01-02T00:00:00.000Z' });
        expect(byId.people).toMatchObject({ legacy: false, expiresAt: null, maxUses: null });
        // Still counts its uses, without a limit, until the grace expiry.
        expect(await store.useToken('baked', new Date().toISOString())).toBe(true);
        expect(await store.useToken('baked', new Date().toISOString())).toBe(true);
        expect(await store.useToken('baked', new Date(expires).toISOString())).toBe(false);
        expect((await store.getToken('baked'))?.uses).toBe(2);
      } finally {
        await store.close();
        await cleanup();
      }
    },
  );
});
