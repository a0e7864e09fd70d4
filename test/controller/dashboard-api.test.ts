/**
 * @module What the dashboard stands on, against a fixed fleet: session login (cookie attributes, CSRF,
 * the same roles as bearer tokens), the overview's aggregates, findings that group identical
 * deviations across hosts, the hosts table's filters, sorts and keyset pages, the OCSF pull feed, and
 * the drift report in each format.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../controller/app.js';
import { createMetrics } from '../../controller/metrics.js';
import { selfSignedCert } from '../helpers/self-signed-cert.js';
import { tempDir } from '../helpers/tmp.js';
import { CSV_COLUMNS, csvCell } from '../../controller/drift-report.js';
import { DASHBOARD_CSP } from '../../controller/routes/dashboard.js';
import { OCSF_CLASS_SCHEMAS, OCSF_VERSION } from '../../controller/siem/ocsf.js';
import { openStore } from '../../controller/store/index.js';
import type { Store } from '../../controller/store/types.js';
import { pgStores, requirePostgres, SKIP_PG } from '../helpers/postgres.js';
import { Harness, HOUR, IMAGE, inject, silentLog, type Res } from './harness.js';

await requirePostgres();
const pgOpen = pgStores('dw_dash');

const STORES: { name: string; open: () => Promise<Store>; skip: boolean }[] = [
  { name: 'sqlite', open: () => openStore('sqlite::memory:'), skip: false },
  // Skipped only with DRIFTWARDEN_SKIP_PG=1 (machines without PostgreSQL), as in api.postgres.test.ts.
  { name: 'postgres', open: pgOpen, skip: SKIP_PG },
];

// PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1 (see STORES above); SQLite never is.
for (const { name, open, skip } of STORES)
  describe.skipIf(skip)(`dashboard API on ${name}`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await Harness.start(await open());
    });
    afterEach(async () => {
      await h.close();
    });

    /**
     * The fixed fleet: web-01..web-05 in group web, db-01 in group db. openssl patched by hand to the same
     * version on web-01..web-03 (one finding, three hosts, tainted); a user file on web-04 (reported);
     * web-05 and db-01 clean.
     */
    async function fixedFleet() {
      const sims = [];
      for (const id of ['web-01', 'web-02', 'web-03', 'web-04', 'web-05'])
        sims.push(await h.enroll(id, { group: 'web' }));
      sims.push(await h.enroll('db-01', { group: 'db' }));
      for (const s of sims) await s.scan();
      h.clock.advance(HOUR);
      for (const s of sims.slice(0, 3))
        expect((await s.upgrade('openssl', '3.0.13-1').scan()).body.state).toBe('tainted');
      expect((await sims[3]!.write('/home/alice/=cmd|calc.csv', 'x,"y"\n').scan()).body.state).toBe('drifted');
      return sims;
    }

    function cookieOf(r: Res): string {
      const set = String(r.headers['set-cookie']);
      return set.split(';')[0]!;
    }

    async function login(role: 'viewer' | 'operator' | 'admin') {
      const r = await h.req('POST', '/api/v1/session', { body: { token: h.tokens[role] } });
      expect(r.status, r.text).toBe(200);
      return { cookie: cookieOf(r), csrf: r.body.csrf as string, res: r };
    }

    describe('sessions', () => {
      it('login sets an HttpOnly, SameSite=Strict cookie that carries no token, and reads back the role', async () => {
        const { cookie, res } = await login('operator');
        const set = String(res.headers['set-cookie']);
        expect(set).toMatch(/HttpOnly/);
        expect(set).toMatch(/SameSite=Strict/);
        expect(set).toMatch(/Path=\//);
        expect(set).not.toMatch(/Secure/); // plain HTTP here; under TLS it is Secure (tls test below)
        expect(set).not.toContain(h.tokens.operator);
        expect(set).not.toContain(h.tokens.operator.slice(4, 20));
        const me = await h.req('GET', '/api/v1/session', { headers: { cookie } });
        expect(me.body).toMatchObject({ role: 'operator', name: 'operator', tokenId: h.tokenIds.operator });
        expect((await h.req('GET', '/api/v1/hosts', { headers: { cookie } })).status).toBe(200);
        expect((await h.store.listAudit({ limit: 100 })).map((a) => a.action)).toContain('session.login');
      });

      it('refuses unknown and enrollment tokens, forged or expired cookies', async () => {
        expect((await h.req('POST', '/api/v1/session', { body: { token: 'dwt_nope' } })).status).toBe(401);
        expect((await h.req('POST', '/api/v1/session', { body: { token: h.tokens.agent } })).status).toBe(403);
        const { cookie } = await login('admin');
        const [name, value] = cookie.split('=') as [string, string];
        const forged = `${name}=${Buffer.from(JSON.stringify({ t: h.tokenIds.admin, e: Date.now() * 2, n: 'x' })).toString('base64url')}.${value.split('.')[1]}`;
        expect((await h.req('GET', '/api/v1/hosts', { headers: { cookie: forged } })).status).toBe(401);
        h.clock.advance(9 * HOUR); // past the 8h default
        expect((await h.req('GET', '/api/v1/hosts', { headers: { cookie } })).status).toBe(401);
      });

      it('a change through the session needs the CSRF token, and a same-origin Origin', async () => {
        await h.enroll('web-01');
        const { cookie, csrf } = await login('operator');
        const body = { hostId: 'web-01', keyPattern: '/etc/motd', collector: 'files', reason: 'banner', for: '1d' };
        const none = await h.req('POST', '/api/v1/exemptions', { headers: { cookie }, body });
        expect(none.status).toBe(403);
        expect(none.body.message).toMatch(/CSRF/);
        expect(
          (
            await h.req('POST', '/api/v1/exemptions', {
              headers: { cookie, 'x-csrf-token': 'x'.repeat(csrf.length) },
              body,
            })
          ).status,
        ).toBe(403);
        expect(
          (
            await h.req('POST', '/api/v1/exemptions', {
              headers: { cookie, 'x-csrf-token': csrf, origin: 'https://evil.example', host: 'localhost' },
              body,
            })
          ).status,
        ).toBe(403);
        const ok = await h.req('POST', '/api/v1/exemptions', { headers: { cookie, 'x-csrf-token': csrf }, body });
        expect(ok.status, ok.text).toBe(201);
        expect(ok.body.actor).toBe(h.actor('operator'));
      });

      it('a viewer session is refused an operator action exactly as a viewer token is', async () => {
        await h.enroll('web-01');
        const { cookie, csrf } = await login('viewer');
        const body = { hostId: 'web-01', keyPattern: '/etc/motd', collector: 'files', reason: 'banner', for: '1d' };
        const viaSession = await h.req('POST', '/api/v1/exemptions', {
          headers: { cookie, 'x-csrf-token': csrf },
          body,
        });
        const viaToken = await h.req('POST', '/api/v1/exemptions', { token: h.tokens.viewer, body });
        expect(viaSession.status).toBe(403);
        expect(viaSession.body).toEqual(viaToken.body);
      });

      it('revoking the token ends its sessions; a session cannot enroll or report', async () => {
        const { cookie } = await login('operator');
        expect((await h.req('POST', '/api/v1/enroll', { headers: { cookie }, body: {} })).status).toBe(401);
        expect((await h.req('DELETE', `/api/v1/tokens/${h.tokenIds.operator}`, { token: h.tokens.admin })).status).toBe(
          200,
        );
        const after = await h.req('GET', '/api/v1/hosts', { headers: { cookie } });
        expect(after.status).toBe(401);
        expect(after.body.message).toMatch(/revoked/);
      });

      it('serves the dashboard itself under a CSP that allows nothing from elsewhere', async () => {
        const page = await h.req('GET', '/');
        expect(page.status).toBe(200);
        expect(page.headers['content-type']).toMatch(/text\/html/);
        expect(page.headers['content-security-policy']).toBe(DASHBOARD_CSP);
        expect(page.text).toContain('/ui/app.js');
        expect(page.text).not.toMatch(/https?:\/\//);
        expect((await h.req('GET', '/ui/core.js')).headers['content-type']).toMatch(/javascript/);
        expect((await h.req('GET', '/ui/..%2Fsession.ts')).status).toBe(400);
        expect((await h.req('GET', '/ui/nope.js')).status).toBe(404);
      });
    });

    describe('fleet views', () => {
      it('the overview counts hosts by state, image and group, and charts drift per day', async () => {
        await fixedFleet();
        const o = (await h.get('/api/v1/fleet/overview?days=7')).body;
        expect(o.total).toBe(6);
        expect(o.states).toMatchObject({ tainted: 3, drifted: 1, clean: 2 });
        expect(o.images).toEqual([{ value: IMAGE, hosts: 6, tainted: 3, drifted: 1 }]);
        expect(o.groups).toEqual([
          { value: 'web', group: 'web', hosts: 5, tainted: 3, drifted: 1 },
          { value: 'db', group: 'db', hosts: 1, tainted: 0, drifted: 0 },
        ]);
        expect(o.drift).toHaveLength(7);
        expect(o.drift[6]).toMatchObject({ day: h.clock.iso().slice(0, 10), deviations: 4, tainted: 3, drifted: 1 });
      });

      it('identical deviations across hosts are one finding, with its hosts and first sighting', async () => {
        await fixedFleet();
        const findings = (await h.get('/api/v1/findings')).body.findings;
        expect(findings).toHaveLength(2);
        expect(findings[0]).toMatchObject({
          collector: 'packages',
          key: 'openssl:amd64',
          change: 'modified',
          hosts: 3,
          action: 'taint',
          firstSeenAt: h.clock.iso(),
          actual: expect.objectContaining({ version: '3.0.13-1' }),
        });
        expect(findings[1]).toMatchObject({
          collector: 'files',
          key: '/home/alice/=cmd|calc.csv',
          change: 'added',
          hosts: 1,
          action: 'report',
        });
        const f = findings[0];
        const hosts = (
          await h.get(
            `/api/v1/findings/hosts?${new URLSearchParams({ collector: f.collector, key: f.key, change: f.change, actualDigest: f.actualDigest, limit: '2' })}`,
          )
        ).body;
        expect(hosts.hosts.map((x: { hostId: string }) => x.hostId)).toEqual(['web-01', 'web-02']);
        expect(hosts.next).toBe('web-02');
        // A different version on another host is another finding.
        await h.hosts.get('web-05')!.upgrade('openssl', '3.0.14-1').scan();
        expect(
          (await h.get('/api/v1/findings?collector=packages')).body.findings.map((x: { hosts: number }) => x.hosts),
        ).toEqual([3, 1]);
      });

      it('the hosts table filters by state, collector and severity, sorts, counts, and pages by cursor', async () => {
        await fixedFleet();
        const ids = async (q: string) =>
          (await h.get(`/api/v1/hosts?${q}`)).body.hosts.map((x: { id: string }) => x.id);
        expect(await ids('state=tainted')).toEqual(['web-01', 'web-02', 'web-03']);
        expect(await ids('collector=files')).toEqual(['web-04']);
        expect(await ids('severity=medium')).toEqual(['web-04']);
        expect(await ids('q=db')).toEqual(['db-01']);
        expect(await ids('group=web&state=clean')).toEqual(['web-05']);
        const bySev = await h.get('/api/v1/hosts?sort=deviations&order=desc&limit=4&count=true');
        expect(bySev.body.total).toBe(6);
        expect(bySev.body.hosts.map((x: { id: string; deviationCount: number }) => x.deviationCount)).toEqual([
          1, 1, 1, 1,
        ]);
        const rest = await h.get(`/api/v1/hosts?sort=deviations&order=desc&limit=4&after=${bySev.body.next}`);
        expect(rest.body.hosts.map((x: { id: string }) => x.id)).toEqual(['web-05', 'db-01']);
        expect(rest.body.next).toBeNull();
        expect((await h.get('/api/v1/hosts?sort=deviations&after=garbage')).status).toBe(400);
      });

      it("a host's events: its new deviations and state changes, newest first", async () => {
        await fixedFleet();
        const ev = (await h.get('/api/v1/hosts/web-01/events')).body.events;
        expect(
          ev.map(
            (e: { kind: string; detail: { to?: string; key?: string } }) => `${e.kind}:${e.detail.to ?? e.detail.key}`,
          ),
        ).toEqual(['state:tainted', 'deviation:openssl:amd64', 'state:clean', 'state:pending']);
      });
    });

    describe('SIEM pull feed', () => {
      it('GET /api/v1/events?since= gives OCSF JSON lines of every class, valid against the required fields, and a cursor', async () => {
        await fixedFleet();
        const r = await h.get('/api/v1/events?since=0&limit=5000');
        expect(r.headers['content-type']).toMatch(/application\/x-ndjson/);
        expect(r.headers['x-ocsf-version']).toBe(OCSF_VERSION);
        const lines = r.text
          .trim()
          .split('\n')
          .map(
            (l) =>
              JSON.parse(l) as {
                class_uid: keyof typeof OCSF_CLASS_SCHEMAS;
                metadata: { version: string; sequence: number };
              },
          );
        expect(new Set(lines.map((l) => l.class_uid))).toEqual(new Set([2003, 5019, 1001]));
        for (const l of lines) {
          expect(OCSF_CLASS_SCHEMAS[l.class_uid].safeParse(l).success).toBe(true);
          expect(l.metadata.version).toBe('1.3.0');
        }
        const file = lines.find((l) => l.class_uid === 1001) as unknown as {
          activity_id: number;
          type_uid: number;
          file: { path: string; name: string };
        };
        expect(file).toMatchObject({
          activity_id: 1,
          type_uid: 100101,
          file: { path: '/home/alice/=cmd|calc.csv', name: '=cmd|calc.csv' },
        });
        const next = Number(r.headers['x-next-since']);
        expect(next).toBe(lines[lines.length - 1]!.metadata.sequence);
        const again = await h.get(`/api/v1/events?since=${next}`);
        expect(again.text).toBe('');
        await h.hosts.get('web-05')!.upgrade('curl', '8.0.0-1').scan();
        const more = (await h.get(`/api/v1/events?since=${next}`)).text
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { class_uid: number });
        expect(more.map((l) => l.class_uid)).toEqual([5019, 2003]);
      });
    });

    describe('drift reports', () => {
      const get = (q: string) => h.get(`/api/v1/drift-report?${q}`);

      it('JSON: the fleet, an image, a host, with summary, findings and deviations', async () => {
        await fixedFleet();
        const fleet = (await get('scope=fleet&format=json')).body;
        expect(fleet).toMatchObject({
          schema: 'driftwarden/drift-report/v1',
          generatedAt: h.clock.iso(),
          scope: { kind: 'fleet' },
          summary: {
            hosts: 6,
            deviations: 4,
            byState: expect.objectContaining({ tainted: 3, drifted: 1, clean: 2 }),
            bySeverity: { high: 3, medium: 1 },
            byAction: { taint: 3, report: 1 },
            truncated: false,
          },
        });
        expect(fleet.findings.map((f: { key: string; hosts: number }) => [f.key, f.hosts])).toEqual([
          ['openssl:amd64', 3],
          ['/home/alice/=cmd|calc.csv', 1],
        ]);
        expect(fleet.deviations.map((d: { hostId: string }) => d.hostId)).toEqual([
          'web-01',
          'web-02',
          'web-03',
          'web-04',
        ]);
        expect((await get(`scope=image&id=${IMAGE}`)).body.summary.hosts).toBe(6);
        const host = (await get('scope=host&id=web-04')).body;
        expect(host.host).toMatchObject({ id: 'web-04', state: 'drifted', group: 'web' });
        expect(host.deviations).toHaveLength(1);
        expect((await get('scope=host&id=nope')).status).toBe(404);
        expect((await get('scope=image')).status).toBe(400);
      });

      it('CSV: one row per deviation, quoted, with formula-looking cells defused', async () => {
        await fixedFleet();
        const r = await get('scope=fleet&format=csv&download=true');
        expect(r.headers['content-type']).toMatch(/text\/csv/);
        expect(r.headers['content-disposition']).toBe(
          `attachment; filename="drift-fleet-${h.clock.iso().slice(0, 10)}.csv"`,
        );
        const lines = r.text.split('\r\n');
        expect(lines[0]).toBe(CSV_COLUMNS.join(','));
        expect(lines).toHaveLength(6); // header, 4 rows, trailing empty
        expect(lines[1]).toMatch(
          /^web-01,web-01\.example\.internal,ami-web-1,web,tainted,packages,openssl:amd64,modified,high,taint,/,
        );
        expect(lines[4]).toContain(
          ',/home/alice/=cmd|calc.csv,added,medium,report,rule:default/home-directories,,"{""type"":""file"",',
        );
      });

      it('CSV cells: RFC 4180 quoting, and a leading apostrophe on anything a spreadsheet would run as a formula', () => {
        expect(csvCell('plain')).toBe('plain');
        expect(csvCell('a,"b"\nc')).toBe('"a,""b""\nc"');
        for (const f of ['=HYPERLINK("x")', '+1', '-2+3', '@SUM(A1)', '\tx'])
          expect(csvCell(f).replace(/^"/, '')).toMatch(/^'/);
        expect(csvCell(null)).toBe('');
        expect(csvCell({ a: 1 })).toBe('"{""a"":1}"');
      });

      it('HTML: a printable page with everything escaped and no script', async () => {
        await fixedFleet();
        await h.enroll('evil-1').then((s) => s.write('/home/x/<img src=x onerror=alert(1)>', 'x').scan());
        const r = await get('scope=fleet&format=html');
        expect(r.headers['content-type']).toMatch(/text\/html/);
        expect(r.headers['content-security-policy']).toMatch(/^default-src 'none'; style-src 'sha256-/);
        expect(r.text).toContain('<h1>Drift report: the fleet</h1>');
        expect(r.text).toContain('&lt;img src=x onerror=alert(1)&gt;');
        expect(r.text).not.toMatch(/<script|<img/);
        expect(r.text).toMatch(/@media print/);
      });
    });

    describe('with TLS', () => {
      it('the session cookie is Secure', async () => {
        const dir = tempDir();
        selfSignedCert(dir);
        const app = await buildApp({
          store: h.store,
          config: h.config,
          policy: h.policy,
          trustedKeys: [],
          log: silentLog,
          metrics: createMetrics(),
          clock: h.clock.now,
          https: { cert: readFileSync(join(dir, 'tls.crt')), key: readFileSync(join(dir, 'tls.key')) },
        });
        try {
          const r = await inject(app, 'POST', '/api/v1/session', { body: { token: h.tokens.viewer } });
          expect(String(r.headers['set-cookie'])).toMatch(/; Secure$/);
        } finally {
          await app.close();
        }
      });
    });
  });
