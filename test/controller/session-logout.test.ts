/**
 * @module Logout ends the session on the controller (issue 21): the cookie of a session that logged
 * out is refused afterwards, wherever it was copied to and by every controller sharing the store,
 * while other sessions of the same token go on; on SQLite and PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import type { Store } from '../../controller/store/types.js';
import { pgStores, requirePostgres, SKIP_PG } from '../helpers/postgres.js';
import { buildApp } from '../../controller/app.js';
import { hashSecret } from '../../controller/auth.js';
import { createMetrics } from '../../controller/metrics.js';
import { Harness, HOUR, inject, silentLog, type Res } from './harness.js';

await requirePostgres();
const pgOpen = pgStores('dw_logout');

const STORES: { name: string; open: () => Promise<Store>; skip: boolean }[] = [
  { name: 'sqlite', open: () => openStore('sqlite::memory:'), skip: false },
  { name: 'postgres', open: pgOpen, skip: SKIP_PG },
];

// PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without it (requirePostgres fails the run otherwise); SQLite never is.
for (const { name, open, skip } of STORES)
  describe.skipIf(skip)(`logout on ${name}`, () => {
    let h: Harness;
    const sessionKey = randomBytes(32);
    beforeEach(async () => {
      h = await Harness.start(await open());
      // Two controllers behind one name share the session key (dashboard.sessionKeyFile) and the store.
      await h.app.close();
      h.app = await buildApp({
        store: h.store,
        config: h.config,
        policy: h.policy,
        trustedKeys: [h.key.publicKey],
        log: silentLog,
        metrics: createMetrics(),
        clock: h.clock.now,
        sessionKey,
      });
    });
    afterEach(async () => {
      await h.close();
    });

    const cookieOf = (r: Res) => String(r.headers['set-cookie']).split(';')[0]!;
    async function login(): Promise<{ cookie: string; csrf: string }> {
      const r = await h.req('POST', '/api/v1/session', { body: { token: h.tokens.admin } });
      expect(r.status, r.text).toBe(200);
      return { cookie: cookieOf(r), csrf: r.body.csrf };
    }

    it('attack: a cookie kept after logout is refused, here and on a second controller', async () => {
      const other = await buildApp({
        store: h.store,
        config: h.config,
        policy: h.policy,
        trustedKeys: [h.key.publicKey],
        log: silentLog,
        metrics: createMetrics(),
        clock: h.clock.now,
        sessionKey,
      });
      try {
        const a = await login();
        const b = await login();
        expect((await h.req('GET', '/api/v1/hosts', { headers: { cookie: a.cookie } })).status).toBe(200);
        expect((await inject(other, 'GET', '/api/v1/hosts', { headers: { cookie: a.cookie } })).status).toBe(200);

        const out = await h.req('DELETE', '/api/v1/session', { headers: { cookie: a.cookie, 'x-csrf-token': a.csrf } });
        expect(out.status, out.text).toBe(200);
        expect(String(out.headers['set-cookie'])).toMatch(/^dw_session=; .*Max-Age=0/);

        // The copied cookie is still correctly signed and unexpired, and still refused.
        h.clock.advance(HOUR);
        for (const app of [h.app, other]) {
          const r = await inject(app, 'GET', '/api/v1/hosts', { headers: { cookie: a.cookie } });
          expect(r.status).toBe(401);
          expect(r.body.message).toBe('the session was ended (logged out); log in again');
          const change = await inject(app, 'POST', '/api/v1/tokens', {
            headers: { cookie: a.cookie, 'x-csrf-token': a.csrf },
            body: { name: 'backdoor', role: 'admin' },
          });
          expect(change.status).toBe(401);
        }
        expect((await h.store.listTokens()).map((t) => t.name)).not.toContain('backdoor');
        // The other session of the same token goes on.
        expect((await h.req('GET', '/api/v1/hosts', { headers: { cookie: b.cookie } })).status).toBe(200);
        expect((await h.store.listAudit({ limit: 100 })).filter((x) => x.action === 'session.logout')).toHaveLength(1);
      } finally {
        await other.close();
      }
    });

    it('a cookie signed with the key but unknown to the store (from before the upgrade, or forged with a stolen key) is refused', async () => {
      const { issueSession, setCookieHeader } = await import('../../controller/session.js');
      const token = (await h.store.listTokens()).find((t) => t.role === 'admin')!;
      const { cookie } = issueSession(sessionKey, token.id, h.clock.now(), HOUR);
      const header = setCookieHeader(cookie, { secure: false, maxAgeSeconds: 3600 }).split(';')[0]!;
      const r = await h.req('GET', '/api/v1/hosts', { headers: { cookie: header } });
      expect(r.status).toBe(401);
      expect(r.body.message).toMatch(/not known to the controller/);
    });

    it('expired sessions are pruned from the store at the next sign-in', async () => {
      const idOf = (cookie: string) =>
        hashSecret(JSON.parse(Buffer.from(cookie.split('=')[1]!.split('.')[0]!, 'base64url').toString()).n);
      const first = idOf((await login()).cookie);
      expect(await h.store.getSession(first)).toMatchObject({ endedAt: null });
      h.clock.advance(9 * HOUR); // past dashboard.sessionTtl (8h)
      const second = idOf((await login()).cookie);
      expect(await h.store.getSession(first)).toBeNull();
      expect(await h.store.getSession(second)).not.toBeNull();
    });
  });
