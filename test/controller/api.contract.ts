/**
 * @module The controller's behaviour over its HTTP API, one suite for every store (hono's
 * `runTest({ newRouter })` pattern): enrollment, the host state machine driven by reports and by the
 * background loop, exemptions, replay and forgery defences, manifests, roles, malformed input,
 * listing, retention and the audit log. Each test gets a fresh store, a fake clock and app.inject().
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createPublicKey, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildManifest } from '../../agent/commands/manifest.js';
import { check } from '../../agent/commands/check.js';
import { silentLogger } from '../../agent/log.js';
import type { App } from '../../controller/app.js';
import { detectSilence, pruneOldReports, type BackgroundOptions } from '../../controller/background.js';
import { loadPolicy } from '../../controller/policy.js';
import type { Store } from '../../controller/store/types.js';
import { signDigest } from '../../shared/manifest.js';
import type { CheckResult } from '../../shared/schema/check.js';
import type { Manifest } from '../../shared/schema/manifest.js';
import { REPORT_SCHEMA_ID, type Report } from '../../shared/schema/report.js';
import { copyFixture, FIXTURES, tempDir } from '../helpers/tmp.js';
import {
  bakeKey,
  bakeManifest,
  DAY,
  Harness,
  HOUR,
  IMAGE,
  imageSections,
  inject,
  MINUTE,
  pkg,
  silentLog,
  T0,
  type HostSim,
  type Res,
} from './harness.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** The error body every refusal has: a code from the catalog and a message naming the problem. */
function refused(r: Res, status: number, code: string, names?: RegExp | string): void {
  expect(r.status, r.text).toBe(status);
  expect(r.body.error, r.text).toBe(code);
  expect(typeof r.body.message).toBe('string');
  if (names !== undefined) expect(r.body.message).toMatch(names);
}

/** The agent's own check of a fixture host root, done once: manifest, check results, host identity. */
let agentRun: Promise<{ manifest: Manifest; clean: CheckResult; drifted: CheckResult; publicKeyPem: string }> | null =
  null;
function agentCheckOfFixture() {
  agentRun ??= (async () => {
    const root = copyFixture(join(FIXTURES, 'hosts/web'));
    const dir = tempDir('dw-api-');
    const key = bakeKey();
    writeFileSync(join(dir, 'bake.key'), key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const out = join(dir, 'manifest.json');
    const built = await buildManifest({
      root,
      imageId: 'ami-fixture-web',
      signKey: join(dir, 'bake.key'),
      out,
      log: silentLogger,
    });
    const clean = await check({ manifest: out, root, log: silentLogger });
    // A package upgraded in place on the running host.
    const status = join(root, 'var/lib/dpkg/status');
    const text = readFileSync(status, 'utf8');
    const upgraded = text.replace(/(Package: openssl\n(?:.+\n)*?)Version: [^\n]+/, '$1Version: 9.9.9-1');
    expect(upgraded).not.toBe(text);
    writeFileSync(status, upgraded);
    const drifted = await check({ manifest: out, root, log: silentLogger });
    return { manifest: built.manifest, clean, drifted, publicKeyPem: key.publicKeyPem };
  })();
  return agentRun;
}

function reportFromCheck(c: CheckResult, seq: number): Report {
  return {
    schema: REPORT_SCHEMA_ID,
    kind: 'scan',
    reportId: randomUUID(),
    hostId: c.host.hostId,
    imageId: c.image.id,
    manifestDigest: c.manifestDigest,
    agentVersion: '0.1.0',
    seq,
    scannedAt: c.scannedAt,
    digests: c.digests,
    collectors: c.collectors,
    deviations: c.deviations,
    inventory: c.host,
  };
}

/** Every route the controller serves, the least role it needs, and a request that does nothing when allowed. */
const ROUTES: {
  method: string;
  url: string;
  need: 'enroll' | 'identity' | 'host' | 'viewer' | 'operator' | 'admin';
  body?: unknown;
}[] = [
  { method: 'POST', url: '/api/v1/enroll', need: 'enroll', body: {} },
  // The signed AWS identity document in the body is the credential (test/controller/enroll-aws.test.ts).
  { method: 'POST', url: '/api/v1/enroll/aws', need: 'identity', body: {} },
  { method: 'POST', url: '/api/v1/reports', need: 'host', body: {} },
  { method: 'POST', url: '/api/v1/manifests', need: 'operator', body: {} },
  { method: 'GET', url: '/api/v1/manifests', need: 'viewer' },
  { method: 'GET', url: '/api/v1/manifests/ami-none', need: 'viewer' },
  { method: 'GET', url: '/api/v1/hosts', need: 'viewer' },
  { method: 'GET', url: '/api/v1/hosts/none', need: 'viewer' },
  { method: 'GET', url: '/api/v1/hosts/none/reports', need: 'viewer' },
  { method: 'POST', url: '/api/v1/hosts/none/reset', need: 'operator', body: {} },
  { method: 'POST', url: '/api/v1/hosts/none/forget', need: 'operator', body: {} },
  { method: 'POST', url: '/api/v1/hosts/none/recheck', need: 'operator', body: {} },
  { method: 'POST', url: '/api/v1/exemptions', need: 'operator', body: {} },
  { method: 'GET', url: '/api/v1/exemptions', need: 'viewer' },
  { method: 'DELETE', url: '/api/v1/exemptions/none', need: 'operator' },
  { method: 'GET', url: '/api/v1/audit', need: 'viewer' },
  { method: 'POST', url: '/api/v1/tokens', need: 'admin', body: {} },
  { method: 'GET', url: '/api/v1/tokens', need: 'admin' },
  { method: 'DELETE', url: '/api/v1/tokens/none', need: 'admin' },
  { method: 'GET', url: '/api/v1/fleet/overview', need: 'viewer' },
  { method: 'GET', url: '/api/v1/findings', need: 'viewer' },
  { method: 'GET', url: '/api/v1/findings/hosts', need: 'viewer' },
  { method: 'GET', url: '/api/v1/hosts/none/events', need: 'viewer' },
  { method: 'GET', url: '/api/v1/events', need: 'viewer' },
  { method: 'GET', url: '/api/v1/drift-report', need: 'viewer' },
  { method: 'GET', url: '/api/v1/openapi.json', need: 'viewer' },
  { method: 'GET', url: '/metrics', need: 'viewer' },
  { method: 'GET', url: '/api/v1/replacements', need: 'viewer' },
  { method: 'GET', url: '/api/v1/replacements/none', need: 'viewer' },
  { method: 'POST', url: '/api/v1/replacements', need: 'operator', body: {} },
  { method: 'POST', url: '/api/v1/replacements/none/approve', need: 'operator' },
  { method: 'POST', url: '/api/v1/replacements/none/cancel', need: 'operator', body: {} },
  { method: 'POST', url: '/api/v1/replacements/none/done', need: 'operator', body: {} },
  { method: 'GET', url: '/api/v1/replacement-groups', need: 'viewer' },
  { method: 'POST', url: '/api/v1/replacement-groups/none/resume', need: 'operator' },
  { method: 'POST', url: '/api/v1/replacement-groups/none/pause', need: 'operator', body: {} },
  { method: 'POST', url: '/api/v1/scheduler/tick', need: 'admin' },
];
const RANK = { viewer: 1, operator: 2, admin: 3 } as const;

/**
 * Registers the suite. `open` must return a new, empty, migrated store on every call; the suite
 * closes it.
 */
export function runApiContract(name: string, open: () => Promise<Store>): void {
  describe(`controller API: ${name}`, () => {
    let h: Harness;
    const extraApps: App[] = [];
    /** Another app on this test's store (a different config or policy); closed after the test. */
    const appWith = async (o: Parameters<Harness['buildApp']>[0]) => {
      const app = await h.buildApp(o);
      extraApps.push(app);
      return app;
    };
    const background = (o: Partial<BackgroundOptions> = {}): BackgroundOptions => ({
      store: h.store,
      log: silentLog,
      clock: h.clock.now,
      silentAfterMs: 10 * MINUTE,
      taintSilentAfterMs: 24 * HOUR,
      scanMaxAgeMs: 25 * HOUR,
      reportRetentionMs: 30 * DAY,
      startedAt: new Date(T0),
      ...o,
    });
    const transitions = async (hostId: string) =>
      (await h.store.listTransitions(hostId)).map(({ from, to, cause, actor, at }) => ({ from, to, cause, actor, at }));

    beforeEach(async () => {
      h = await Harness.start(await open());
    });
    afterEach(async () => {
      for (const app of extraApps.splice(0)) await app.close();
      await h.close();
    });

    // -----------------------------------------------------------------------------------------
    describe('enrollment', () => {
      it('needs an agent enrollment token: none is 401, people’s tokens are 403', async () => {
        const body = { hostId: 'web-1', imageId: IMAGE };
        refused(await h.req('POST', '/api/v1/enroll', { body }), 401, 'DW_ERR_UNAUTHORIZED', /bearer/i);
        for (const role of ['viewer', 'operator', 'admin'] as const) {
          refused(
            await h.req('POST', '/api/v1/enroll', { token: h.tokens[role], body }),
            403,
            'DW_ERR_FORBIDDEN',
            /agent token/,
          );
        }
        expect(await h.store.getHost('web-1')).toBeNull();
      });

      it('returns a per-host credential that authenticates that host’s reports', async () => {
        const r = await h.req('POST', '/api/v1/enroll', {
          token: h.tokens.agent,
          body: { hostId: 'web-1', imageId: IMAGE, group: 'web-asg' },
        });
        expect(r.status).toBe(201);
        expect(r.body).toEqual({ hostId: 'web-1', credential: expect.stringMatching(/^dwh_[A-Za-z0-9_-]{40,}$/) });
        const report = { ...(await h.enroll('other')).report(), hostId: 'web-1' };
        const sent = await h.req('POST', '/api/v1/reports', { token: r.body.credential, body: report });
        expect(sent.status, sent.text).toBe(200);
        expect(sent.body.status).toBe('accepted');
        // The enrollment token is not a host credential.
        refused(
          await h.req('POST', '/api/v1/reports', {
            token: h.tokens.agent,
            body: { ...report, seq: 2, reportId: randomUUID() },
          }),
          401,
          'DW_ERR_UNAUTHORIZED',
          /host credential/,
        );
      });

      it('refuses a second enrollment of the same host id with 409, and the first credential keeps working', async () => {
        const web1 = await h.enroll('web-1');
        const before = await h.snapshot();
        const again = await h.req('POST', '/api/v1/enroll', {
          token: h.tokens.agent,
          body: { hostId: 'web-1', imageId: IMAGE },
        });
        refused(again, 409, 'DW_ERR_CONFLICT', /web-1.*already enrolled/);
        expect(again.body).not.toHaveProperty('credential');
        expect(await h.snapshot()).toEqual(before);
        expect((await web1.scan()).body.status).toBe('accepted');
      });

      it('lets exactly one of two simultaneous enrollments of one host id through; the other is 409', async () => {
        const body = { hostId: 'web-1', imageId: IMAGE };
        const results = await Promise.all(
          [0, 1, 2].map(() => h.req('POST', '/api/v1/enroll', { token: h.tokens.agent, body })),
        );
        expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
        expect(await h.store.listTransitions('web-1')).toHaveLength(1);
      });

      it('starts the host pending, with the enrollment recorded as a transition (cause, actor, time) and audited', async () => {
        h.clock.advance(5 * MINUTE);
        await h.enroll('web-1', { group: 'web-asg' });
        expect(await h.host('web-1')).toMatchObject({
          state: 'pending',
          stateSince: iso(T0 + 5 * MINUTE),
          enrolledAt: iso(T0 + 5 * MINUTE),
          imageId: IMAGE,
          group: 'web-asg',
          lastSeq: 0,
          hostname: 'web-1.example.internal',
        });
        const actor = h.actor('agent');
        expect(await transitions('web-1')).toEqual([
          { from: null, to: 'pending', cause: 'enrolled', actor, at: iso(T0 + 5 * MINUTE) },
        ]);
        const audit = await h.store.listAudit({ limit: 100 });
        expect(audit.find((a) => a.action === 'host.enroll')).toMatchObject({
          actor,
          target: 'web-1',
          detail: { imageId: IMAGE, group: 'web-asg' },
        });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('host states', () => {
      it('pending → clean: a first report that matches the manifest', async () => {
        const web1 = await h.enroll('web-1');
        h.clock.advance(MINUTE);
        const r = await web1.scan();
        expect(r.body).toMatchObject({ status: 'accepted', state: 'clean', deviations: 0, digestMismatch: [] });
        expect(await web1.row()).toMatchObject({
          state: 'clean',
          stateSince: iso(T0 + MINUTE),
          lastSeq: 1,
          lastReportAt: iso(T0 + MINUTE),
        });
        expect((await transitions('web-1')).at(-1)).toEqual({
          from: 'pending',
          to: 'clean',
          cause: 'clean: first report matches the manifest',
          actor: 'policy',
          at: iso(T0 + MINUTE),
        });
      });

      it('clean → drifted: a deviation the policy only reports (a file under /home)', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan();
        h.clock.advance(MINUTE);
        const r = await web1.write('/home/alice/notes.txt', 'todo\n').scan();
        expect(r.body).toMatchObject({ status: 'accepted', state: 'drifted', deviations: 1 });
        expect((await transitions('web-1')).at(-1)).toEqual({
          from: 'clean',
          to: 'drifted',
          cause: 'drift: files /home/alice/notes.txt added (rule "default/home-directories")',
          actor: 'policy',
          at: iso(T0 + MINUTE),
        });
        expect(await h.store.listHostDeviations('web-1')).toEqual([
          expect.objectContaining({
            collector: 'files',
            key: '/home/alice/notes.txt',
            change: 'added',
            action: 'report',
            decidedBy: 'rule:default/home-directories',
          }),
        ]);
      });

      it('clean → drifted by a rule in the operator’s policy (a package the policy only reports)', async () => {
        const app = await appWith({ policy: loadPolicy(join(FIXTURES, 'policy/policy.yaml')) });
        const sections = imageSections();
        sections.packages!.items = [...sections.packages!.items, pkg('falcon-sensor', '7.10.0')].sort((a, b) =>
          a.key < b.key ? -1 : 1,
        );
        const manifest = bakeManifest('ami-edr-1', h.key.privateKey, sections);
        expect((await h.publish(manifest)).status).toBe(201);
        const web1 = await h.enroll('edr-1', { imageId: 'ami-edr-1', manifest });
        const send = (report: Report) =>
          inject(app, 'POST', '/api/v1/reports', { token: web1.credential, body: report });
        expect((await send(web1.report({ seq: 1 }))).body.state).toBe('clean');
        const r = await send(web1.upgrade('falcon-sensor', '7.11.0').report({ seq: 2 }));
        expect(r.body).toMatchObject({ status: 'accepted', state: 'drifted' });
        expect((await transitions('edr-1')).at(-1)?.cause).toBe(
          'drift: packages falcon-sensor:amd64 modified (rule "edr self-update")',
        );
      });

      it('drifted → clean: the reported change is undone', async () => {
        const web1 = await h.enroll('web-1');
        await web1.write('/home/alice/notes.txt', 'todo\n').scan();
        expect((await web1.row()).state).toBe('drifted');
        h.clock.advance(MINUTE);
        const r = await web1.revert().scan();
        expect(r.body).toMatchObject({ state: 'clean', deviations: 0 });
        expect(await h.store.listHostDeviations('web-1')).toEqual([]);
        expect((await transitions('web-1')).at(-1)).toEqual({
          from: 'drifted',
          to: 'clean',
          cause: 'clean: no reported deviations remain',
          actor: 'policy',
          at: iso(T0 + MINUTE),
        });
      });

      it('clean → tainted: a package change, recorded and audited with the report that caused it', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan();
        h.clock.advance(MINUTE);
        const report = web1.upgrade('openssl', '3.0.13-1').report();
        const r = await web1.send(report);
        expect(r.body).toMatchObject({ status: 'accepted', state: 'tainted', deviations: 1 });
        expect(await web1.row()).toMatchObject({ state: 'tainted', taintedAt: iso(T0 + MINUTE) });
        const last = (await h.store.listTransitions('web-1')).at(-1);
        expect(last).toMatchObject({
          from: 'clean',
          to: 'tainted',
          cause: 'taint: packages openssl:amd64 modified (rule "default/packages")',
          actor: 'policy',
          at: iso(T0 + MINUTE),
          reportId: report.reportId,
        });
        const taint = (await h.store.listAudit({ limit: 100 })).filter((a) => a.action === 'host.taint');
        expect(taint).toEqual([
          expect.objectContaining({
            actor: 'controller',
            target: 'web-1',
            detail: { cause: last!.cause, reportId: report.reportId },
          }),
        ]);
      });

      it('taint is sticky: a clean report after the taint keeps the host tainted', async () => {
        const web1 = await h.enroll('web-1');
        await web1.upgrade('openssl', '3.0.13-1').scan();
        h.clock.advance(HOUR);
        const r = await web1.revert().scan();
        expect(r.body).toMatchObject({ status: 'accepted', state: 'tainted', deviations: 0 });
        expect(await web1.row()).toMatchObject({ state: 'tainted', taintedAt: iso(T0), lastSeq: 2 });
        expect((await transitions('web-1')).map((t) => t.to)).toEqual(['pending', 'tainted']);
      });

      it('goes silent after the grace period, but not before the controller has been up that long', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan();
        // The controller restarted five minutes after the host's last report.
        const bg = background({ startedAt: new Date(T0 + 5 * MINUTE) });
        h.clock.advance(11 * MINUTE);
        expect(await detectSilence(bg)).toBe(0);
        expect((await web1.row()).state).toBe('clean');
        h.clock.advance(4 * MINUTE); // up for 10 minutes now, host quiet for 15
        expect(await detectSilence(bg)).toBe(1);
        expect(await web1.row()).toMatchObject({ state: 'silent', stateSince: iso(T0 + 15 * MINUTE) });
        expect((await transitions('web-1')).at(-1)).toEqual({
          from: 'clean',
          to: 'silent',
          cause: 'silent: no contact for more than 10m',
          actor: 'controller',
          at: iso(T0 + 15 * MINUTE),
        });
        expect(await detectSilence(bg)).toBe(0);
      });

      it('leaves a host that keeps reporting alone, and a pending host that never reports goes silent too', async () => {
        const web1 = await h.enroll('web-1');
        await h.enroll('web-2');
        for (let i = 0; i < 3; i++) {
          h.clock.advance(6 * MINUTE);
          await web1.scan();
          await detectSilence(background());
        }
        expect((await web1.row()).state).toBe('clean');
        expect((await h.host('web-2')).state).toBe('silent');
        expect((await transitions('web-2')).at(-1)).toMatchObject({
          from: 'pending',
          to: 'silent',
          actor: 'controller',
        });
      });

      it('silent → clean on the next full report; a heartbeat alone does not end silence', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan();
        h.clock.advance(11 * MINUTE);
        await detectSilence(background());
        expect((await web1.row()).state).toBe('silent');
        h.clock.advance(MINUTE);
        const beat = await web1.send({ kind: 'heartbeat' });
        expect(beat.body).toMatchObject({ status: 'accepted', state: 'silent' });
        expect(await web1.row()).toMatchObject({ state: 'silent', lastSeenAt: iso(T0 + 12 * MINUTE), lastSeq: 2 });
        h.clock.advance(MINUTE);
        expect((await web1.scan()).body.state).toBe('clean');
        expect((await transitions('web-1')).at(-1)).toEqual({
          from: 'silent',
          to: 'clean',
          cause: 'clean: reporting again, nothing the policy reports',
          actor: 'policy',
          at: iso(T0 + 13 * MINUTE),
        });
      });

      it('a long silence taints, and the taint is audited', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan();
        h.clock.advance(11 * MINUTE);
        await detectSilence(background());
        h.clock.advance(24 * HOUR);
        expect(await detectSilence(background())).toBe(1);
        expect(await web1.row()).toMatchObject({ state: 'tainted', taintedAt: iso(T0 + 11 * MINUTE + 24 * HOUR) });
        expect((await transitions('web-1')).at(-1)).toEqual({
          from: 'silent',
          to: 'tainted',
          cause: 'taint: silent for more than 1440m, nothing vouches for the host any more',
          actor: 'controller',
          at: iso(T0 + 11 * MINUTE + 24 * HOUR),
        });
        expect((await h.store.listAudit({ limit: 100 })).filter((a) => a.action === 'host.taint')).toEqual([
          expect.objectContaining({ actor: 'controller', target: 'web-1' }),
        ]);
        // Reporting again does not clean it.
        expect((await web1.scan()).body.state).toBe('tainted');
      });

      it('a host that only heartbeats is tainted once no full scan has arrived within scanMaxAge', async () => {
        const web1 = await h.enroll('web-1');
        const web2 = await h.enroll('web-2');
        await web1.scan();
        await web2.scan();
        // web-1's agent keeps heartbeating (and sends a watcher event) but its full scans stop; web-2 keeps scanning.
        for (let i = 0; i < 5; i++) {
          h.clock.advance(5 * HOUR);
          expect((await web1.send({ kind: i === 2 ? 'event' : 'heartbeat', deviations: [] })).status).toBe(200);
          expect((await web2.scan()).status).toBe(200);
        }
        expect(await detectSilence(background())).toBe(0); // 25 h: not more than scanMaxAge yet
        h.clock.advance(MINUTE);
        await web1.send({ kind: 'heartbeat' });
        await web2.scan();
        expect(await detectSilence(background())).toBe(1);
        expect(await web1.row()).toMatchObject({
          state: 'tainted',
          taintedAt: iso(T0 + 25 * HOUR + MINUTE),
          lastScanAt: iso(T0),
        });
        expect((await transitions('web-1')).at(-1)).toEqual({
          from: 'clean',
          to: 'tainted',
          cause: 'taint: no full scan received for more than 1500m; heartbeats alone do not vouch for the host',
          actor: 'controller',
          at: iso(T0 + 25 * HOUR + MINUTE),
        });
        expect((await h.store.listAudit({ limit: 100 })).filter((a) => a.action === 'host.taint')).toEqual([
          expect.objectContaining({ actor: 'controller', target: 'web-1' }),
        ]);
        expect(await h.host('web-2')).toMatchObject({ state: 'clean', lastScanAt: iso(T0 + 25 * HOUR + MINUTE) });
        // Taint is sticky: the overdue scan arriving now does not clean it.
        expect((await web1.scan()).body.state).toBe('tainted');
      });

      it('asks for a full scan in the heartbeat answer once half of scanMaxAge has passed without one', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan();
        h.clock.advance(12 * HOUR);
        expect((await web1.send({ kind: 'heartbeat' })).body).toMatchObject({
          status: 'accepted',
          scanRequested: false,
        });
        h.clock.advance(HOUR);
        expect((await web1.send({ kind: 'heartbeat' })).body).toMatchObject({
          status: 'accepted',
          scanRequested: true,
        });
        // Asked once: the heartbeats while that scan runs do not start another, until the resend interval.
        h.clock.advance(MINUTE);
        expect((await web1.send({ kind: 'heartbeat' })).body).toMatchObject({
          status: 'accepted',
          scanRequested: false,
        });
        h.clock.advance(5 * MINUTE);
        expect((await web1.send({ kind: 'heartbeat' })).body).toMatchObject({
          status: 'accepted',
          scanRequested: true,
        });
        await web1.scan();
        expect((await web1.send({ kind: 'heartbeat' })).body).toMatchObject({
          status: 'accepted',
          scanRequested: false,
        });
      });

      it('a host that enrolls and heartbeats but never sends a scan is tainted scanMaxAge after enrollment', async () => {
        const web1 = await h.enroll('web-1');
        h.clock.advance(25 * HOUR + MINUTE);
        await web1.send({ kind: 'heartbeat' });
        expect(await detectSilence(background({ scanMaxAgeMs: 25 * HOUR }))).toBe(1);
        expect(await web1.row()).toMatchObject({ state: 'tainted', lastScanAt: null });
      });

      it('checks overdue scans only once the controller has been up for the grace period, not for scanMaxAge', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan();
        h.clock.advance(30 * HOUR);
        await web1.send({ kind: 'heartbeat' });
        // Restarted five minutes ago: agents get the grace period to deliver what they spooled.
        const bg = background({ startedAt: new Date(T0 + 30 * HOUR - 5 * MINUTE) });
        expect(await detectSilence(bg)).toBe(0);
        h.clock.advance(4 * MINUTE);
        await web1.send({ kind: 'heartbeat' });
        expect(await detectSilence(bg)).toBe(0);
        h.clock.advance(2 * MINUTE); // up for 11 minutes
        await web1.send({ kind: 'heartbeat' });
        expect(await detectSilence(bg)).toBe(1);
        expect((await web1.row()).state).toBe('tainted');
      });

      it('records the whole life of a host, every transition with cause, time and actor', async () => {
        const web1 = await h.enroll('web-1');
        const enrolledBy = h.actor('agent');
        h.clock.advance(MINUTE);
        await web1.scan();
        h.clock.advance(MINUTE);
        await web1.write('/home/alice/notes.txt', 'x\n').scan();
        h.clock.advance(MINUTE);
        await web1.revert().scan();
        h.clock.advance(11 * MINUTE);
        await detectSilence(background());
        h.clock.advance(MINUTE);
        await web1.scan();
        h.clock.advance(MINUTE);
        await web1.upgrade('nginx', '1.22.1-10').scan();
        h.clock.advance(MINUTE);
        await web1.revert().scan();
        expect(await transitions('web-1')).toEqual([
          { from: null, to: 'pending', cause: 'enrolled', actor: enrolledBy, at: iso(T0) },
          {
            from: 'pending',
            to: 'clean',
            cause: 'clean: first report matches the manifest',
            actor: 'policy',
            at: iso(T0 + MINUTE),
          },
          {
            from: 'clean',
            to: 'drifted',
            cause: expect.stringMatching(/^drift: files \/home\/alice\/notes.txt added/),
            actor: 'policy',
            at: iso(T0 + 2 * MINUTE),
          },
          {
            from: 'drifted',
            to: 'clean',
            cause: 'clean: no reported deviations remain',
            actor: 'policy',
            at: iso(T0 + 3 * MINUTE),
          },
          {
            from: 'clean',
            to: 'silent',
            cause: 'silent: no contact for more than 10m',
            actor: 'controller',
            at: iso(T0 + 14 * MINUTE),
          },
          {
            from: 'silent',
            to: 'clean',
            cause: 'clean: reporting again, nothing the policy reports',
            actor: 'policy',
            at: iso(T0 + 15 * MINUTE),
          },
          {
            from: 'clean',
            to: 'tainted',
            cause: expect.stringMatching(/^taint: packages nginx:amd64 modified/),
            actor: 'policy',
            at: iso(T0 + 16 * MINUTE),
          },
        ]);
        const detail = await h.get('/api/v1/hosts/web-1');
        expect(detail.body.timeline.transitions.map((t: { to: string }) => t.to)).toEqual([
          'pending',
          'clean',
          'drifted',
          'clean',
          'silent',
          'clean',
          'tainted',
        ]);
      });

      it('accepts reports computed by the agent’s own check() of a host root: untouched is clean, an upgraded package taints', async () => {
        const run = await agentCheckOfFixture();
        const app = await appWith({ trustedKeys: [createPublicKey(run.publicKeyPem)] });
        expect((await h.publish(run.manifest, { app })).status).toBe(201);
        expect(run.clean.clean).toBe(true);
        const hostId = run.clean.host.hostId;
        const enrolled = await inject(app, 'POST', '/api/v1/enroll', {
          token: h.tokens.agent,
          body: { hostId, imageId: run.manifest.image.id, inventory: run.clean.host },
        });
        expect(enrolled.status, enrolled.text).toBe(201);
        const send = (report: Report) =>
          inject(app, 'POST', '/api/v1/reports', { token: enrolled.body.credential, body: report });
        expect((await send(reportFromCheck(run.clean, 1))).body).toMatchObject({
          status: 'accepted',
          state: 'clean',
          digestMismatch: [],
        });
        const r = await send(reportFromCheck(run.drifted, 2));
        expect(r.body).toMatchObject({ status: 'accepted', state: 'tainted', digestMismatch: [] });
        expect((await h.store.listHostDeviations(hostId)).map((d) => `${d.collector} ${d.key} ${d.action}`)).toContain(
          'packages openssl:amd64 taint',
        );
        expect((await h.host(hostId)).hostname).toBe('web-1');
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('exemptions', () => {
      const exempt = (body: Record<string, unknown>, token = h.tokens.operator) =>
        h.req('POST', '/api/v1/exemptions', { token, body });

      it('a matching deviation no longer taints while the exemption lasts; after expiry the next report taints', async () => {
        const web1 = await h.enroll('web-1');
        const e = await exempt({
          collector: 'packages',
          keyPattern: 'openssl:*',
          imageId: IMAGE,
          reason: 'CVE-2026-0001 hotfix until the next bake',
          for: '2h',
        });
        expect(e.status, e.text).toBe(201);
        expect(e.body).toMatchObject({
          expiresAt: iso(T0 + 2 * HOUR),
          actor: h.actor('operator'),
          reason: 'CVE-2026-0001 hotfix until the next bake',
        });
        const r = await web1.upgrade('openssl', '3.0.13-1').scan();
        expect(r.body).toMatchObject({ status: 'accepted', state: 'clean', deviations: 1 });
        expect(await h.store.listHostDeviations('web-1')).toEqual([
          expect.objectContaining({ key: 'openssl:amd64', action: 'exempt', decidedBy: `exemption:${e.body.id}` }),
        ]);
        h.clock.advance(HOUR);
        expect((await web1.scan()).body.state).toBe('clean');
        h.clock.advance(HOUR + MINUTE);
        expect((await web1.scan()).body.state).toBe('tainted');
        expect((await transitions('web-1')).at(-1)).toMatchObject({
          from: 'clean',
          to: 'tainted',
          cause: expect.stringMatching(/openssl:amd64/),
        });
      });

      it('keeps a drifted host drifted: the exempted taint does not count, the reported drift still does', async () => {
        const web1 = await h.enroll('web-1');
        await web1.write('/home/alice/notes.txt', 'x\n').scan();
        expect(
          (
            await exempt({
              hostId: 'web-1',
              collector: 'packages',
              keyPattern: 'openssl:amd64',
              reason: 'hotfix',
              for: '1h',
            })
          ).status,
        ).toBe(201);
        const r = await web1.upgrade('openssl', '3.0.13-1').scan();
        expect(r.body).toMatchObject({ state: 'drifted', deviations: 2 });
        // Scoped to web-1: the same change on web-2 taints.
        const web2 = await h.enroll('web-2');
        expect((await web2.upgrade('openssl', '3.0.13-1').scan()).body.state).toBe('tainted');
      });

      it('refuses an exemption without a reason: 400 naming reason, nothing stored', async () => {
        const before = await h.snapshot();
        refused(
          await exempt({ keyPattern: 'openssl:*', collector: 'packages', imageId: IMAGE, for: '1h' }),
          400,
          'DW_ERR_VALIDATION',
          /reason/,
        );
        refused(
          await exempt({ keyPattern: 'openssl:*', collector: 'packages', imageId: IMAGE, for: '1h', reason: '   ' }),
          400,
          'DW_ERR_VALIDATION',
          /reason/,
        );
        refused(
          await exempt({ keyPattern: 'openssl:*', collector: 'packages', reason: 'x', for: '365d' }),
          400,
          'DW_ERR_VALIDATION',
          /for.*90 days/,
        );
        refused(
          await exempt({ keyPattern: '**', reason: 'everything', for: '1h' }),
          400,
          'DW_ERR_VALIDATION',
          /keyPattern.*catch-all/,
        );
        expect(await h.snapshot()).toEqual(before);
      });

      it('needs an operator: a viewer is 403 and nothing is stored', async () => {
        refused(
          await exempt({ keyPattern: 'openssl:*', collector: 'packages', reason: 'x', for: '1h' }, h.tokens.viewer),
          403,
          'DW_ERR_FORBIDDEN',
          /operator/,
        );
        expect(await h.store.listExemptions({})).toEqual([]);
        const made = await exempt({
          keyPattern: 'openssl:*',
          collector: 'packages',
          imageId: IMAGE,
          reason: 'x',
          for: '1h',
        });
        refused(
          await h.req('DELETE', `/api/v1/exemptions/${made.body.id}`, { token: h.tokens.viewer }),
          403,
          'DW_ERR_FORBIDDEN',
        );
        expect((await h.get('/api/v1/exemptions')).body.exemptions).toHaveLength(1);
      });

      it('revocation is audited with its actor, ends the exemption at once, and cannot be repeated', async () => {
        const web1 = await h.enroll('web-1');
        const made = await exempt({
          keyPattern: 'openssl:*',
          collector: 'packages',
          imageId: IMAGE,
          reason: 'hotfix',
          for: '1h',
        });
        h.clock.advance(MINUTE);
        const del = await h.req('DELETE', `/api/v1/exemptions/${made.body.id}`, { token: h.tokens.admin });
        expect(del.status, del.text).toBe(200);
        expect(del.body).toEqual({ id: made.body.id, revokedAt: iso(T0 + MINUTE) });
        refused(
          await h.req('DELETE', `/api/v1/exemptions/${made.body.id}`, { token: h.tokens.admin }),
          404,
          'DW_ERR_NOT_FOUND',
          made.body.id,
        );
        const audit = (await h.store.listAudit({ limit: 100 })).filter((a) => a.action.startsWith('exemption.'));
        expect(audit).toEqual([
          expect.objectContaining({
            action: 'exemption.create',
            target: made.body.id,
            actor: h.actor('operator'),
            detail: expect.objectContaining({ reason: 'hotfix' }),
          }),
          expect.objectContaining({
            action: 'exemption.revoke',
            target: made.body.id,
            actor: h.actor('admin'),
            at: iso(T0 + MINUTE),
          }),
        ]);
        expect((await h.get('/api/v1/exemptions?active=true')).body.exemptions).toEqual([]);
        expect((await h.get('/api/v1/exemptions')).body.exemptions).toEqual([
          expect.objectContaining({ id: made.body.id, revokedAt: iso(T0 + MINUTE), revokedBy: h.actor('admin') }),
        ]);
        expect((await web1.upgrade('openssl', '3.0.13-1').scan()).body.state).toBe('tainted');
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('retries, replays and forgeries', () => {
      it('a retry of the same report (same reportId and seq) is a duplicate: nothing is stored twice', async () => {
        const web1 = await h.enroll('web-1');
        const report = web1.write('/home/alice/notes.txt', 'x\n').report();
        expect((await web1.send(report)).body).toMatchObject({ status: 'accepted', state: 'drifted' });
        const before = await h.snapshot();
        h.clock.advance(MINUTE);
        const again = await web1.send(report);
        expect(again.status).toBe(200);
        expect(again.body).toEqual({
          status: 'duplicate',
          reportId: report.reportId,
          state: 'drifted',
          deviations: 1,
          digestMismatch: [],
          scanRequested: false,
        });
        expect(await h.snapshot()).toEqual(before);
        expect(await h.store.listReports('web-1', { limit: 10 })).toHaveLength(1);
      });

      it('a retry sent while the original is still being ingested is a duplicate too, not a replay', async () => {
        const web1 = await h.enroll('web-1');
        const report = web1.upgrade('openssl', '3.0.13-1').report();
        const results = await Promise.all([0, 1, 2, 3].map(() => web1.send(report)));
        expect(results.map((r) => `${r.status} ${r.body.status ?? r.body.error}`).sort()).toEqual([
          '200 accepted',
          '200 duplicate',
          '200 duplicate',
          '200 duplicate',
        ]);
        expect(await h.store.listReports('web-1', { limit: 10 })).toHaveLength(1);
        expect((await h.store.listTransitions('web-1')).map((t) => t.to)).toEqual(['pending', 'tainted']);
        expect((await h.store.listAudit({ limit: 100 })).filter((a) => a.action === 'host.taint')).toHaveLength(1);
      });

      it('refuses a replayed or out-of-order seq (equal or lower) with 409 naming the seq', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan({ seq: 5 });
        const before = await h.snapshot();
        refused(await web1.scan({ seq: 5 }), 409, 'DW_ERR_REPLAY', /seq 5 is not greater than the last accepted seq 5/);
        refused(await web1.scan({ seq: 3 }), 409, 'DW_ERR_REPLAY', /seq 3 .*seq 5/);
        expect(await h.snapshot()).toEqual(before);
        expect((await web1.scan({ seq: 6 })).body.status).toBe('accepted');
      });

      it('refuses a reportId reused with another seq: 409 naming the report', async () => {
        const web1 = await h.enroll('web-1');
        const first = web1.report();
        await web1.send(first);
        const before = await h.snapshot();
        refused(await web1.scan({ reportId: first.reportId, seq: 2 }), 409, 'DW_ERR_REPLAY', first.reportId);
        expect(await h.snapshot()).toEqual(before);
      });

      it('one host cannot speak for another: 403, and neither host changes', async () => {
        const a = await h.enroll('web-a');
        const b = await h.enroll('web-b');
        await a.scan();
        await b.scan();
        const before = await h.snapshot();
        const forged = b.upgrade('openssl', '6.6.6').report({ seq: 2 });
        refused(await a.send(forged), 403, 'DW_ERR_FORBIDDEN', /belongs to host web-a.*cannot report for host web-b/);
        expect(await h.snapshot()).toEqual(before);
        expect((await a.row()).state).toBe('clean');
        expect((await b.row()).state).toBe('clean');
      });

      it('refuses a report for another image than the one the host enrolled with: 409', async () => {
        const other = bakeManifest('ami-web-2', h.key.privateKey, imageSections(), { version: '2026.03.2' });
        expect((await h.publish(other)).status).toBe(201);
        const web1 = await h.enroll('web-1');
        const before = await h.snapshot();
        refused(
          await web1.scan({ imageId: 'ami-web-2', manifestDigest: other.digests.overall }),
          409,
          'DW_ERR_CONFLICT',
          /enrolled from image ami-web-1 but reports image ami-web-2/,
        );
        expect(await h.snapshot()).toEqual(before);
      });

      it('refuses reports for an image whose manifest was never published: 422', async () => {
        const web9 = await h.enroll('web-9', { imageId: 'ami-unpublished' });
        refused(await web9.scan(), 422, 'DW_ERR_NO_MANIFEST', /ami-unpublished/);
        expect((await web9.row()).state).toBe('pending');
      });

      it('a report whose deviations were filtered (its digests do not add up) taints with an integrity deviation', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan();
        // The agent hides the package change but the digests still describe the real host.
        web1.upgrade('openssl', '3.0.13-1').write('/home/alice/notes.txt', 'x\n');
        const r = await web1.scan({ filter: (d) => d.collector !== 'packages' });
        expect(r.body).toMatchObject({ status: 'accepted', state: 'tainted', digestMismatch: ['packages'] });
        const devs = await h.store.listHostDeviations('web-1');
        expect(devs).toContainEqual(
          expect.objectContaining({
            collector: 'integrity',
            key: 'digest:packages',
            action: 'taint',
            severity: 'critical',
            decidedBy: 'integrity',
          }),
        );
        expect((await transitions('web-1')).at(-1)).toMatchObject({
          to: 'tainted',
          cause: expect.stringMatching(/integrity digest:packages/),
        });
        expect((await h.store.listReports('web-1', { limit: 1 }))[0]?.digestMismatch).toEqual(['packages']);
      });

      it('a report made against another manifest than the controller’s copy taints with an integrity deviation', async () => {
        const web1 = await h.enroll('web-1');
        // A host that rewrote its own baseline: its manifest has the upgraded package in it.
        const rebaked = bakeManifest(IMAGE, undefined, web1.upgrade('openssl', '3.0.13-1').actual);
        const r = await web1.scan({ manifestDigest: rebaked.digests.overall, deviations: [] });
        expect(r.body).toMatchObject({ status: 'accepted', state: 'tainted' });
        const devs = await h.store.listHostDeviations('web-1');
        expect(devs).toContainEqual(
          expect.objectContaining({
            collector: 'integrity',
            key: 'manifest',
            action: 'taint',
            expected: { value: h.manifest.digests.overall },
            actual: { value: rebaked.digests.overall },
          }),
        );
      });
      it('a heartbeat saying the agent refused its manifest (signature) taints; only a heartbeat may say it', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan();
        const manifestRefused = {
          code: 'DW_ERR_MANIFEST_SIGNATURE',
          reason: 'manifest signed by key 0123, which is not a trusted key',
        };
        refused(
          await web1.send({ ...web1.report({ kind: 'scan' }), manifestRefused } as never),
          400,
          'DW_ERR_VALIDATION',
          /manifestRefused: only a heartbeat/,
        );
        const r = await web1.send({ ...web1.report({ kind: 'heartbeat' }), manifestRefused } as never);
        expect(r.body).toMatchObject({ status: 'accepted', state: 'tainted' });
        expect(await h.store.listHostDeviations('web-1')).toContainEqual(
          expect.objectContaining({
            collector: 'integrity',
            key: 'agent:manifest-signature',
            action: 'taint',
            actual: { value: `DW_ERR_MANIFEST_SIGNATURE: ${manifestRefused.reason}` },
          }),
        );
      });

      it('a heartbeat naming another manifest than the controller’s copy taints, as a scan would', async () => {
        const web1 = await h.enroll('web-1');
        const web2 = await h.enroll('web-2');
        await web1.scan();
        await web2.scan();
        const rebaked = bakeManifest(IMAGE, undefined, web1.upgrade('openssl', '3.0.13-1').actual);
        const r = await web1.send({ kind: 'heartbeat', manifestDigest: rebaked.digests.overall });
        expect(r.body).toMatchObject({ status: 'accepted', state: 'tainted', deviations: 1 });
        expect(await h.store.listHostDeviations('web-1')).toContainEqual(
          expect.objectContaining({
            collector: 'integrity',
            key: 'manifest',
            action: 'taint',
            expected: { value: h.manifest.digests.overall },
            actual: { value: rebaked.digests.overall },
          }),
        );
        expect(await web1.row()).toMatchObject({ state: 'tainted', deviationCount: 1 });
        expect((await transitions('web-1')).at(-1)).toMatchObject({
          from: 'clean',
          to: 'tainted',
          cause: expect.stringMatching(/integrity manifest/),
        });
        // An honest host's heartbeat is still just a heartbeat.
        expect((await web2.send({ kind: 'heartbeat' })).body).toMatchObject({ status: 'accepted', state: 'clean' });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('manifests', () => {
      const unsealed = () => {
        const m = bakeManifest('ami-web-3', undefined);
        return m;
      };

      it('refuses an unsigned manifest (400 naming the signature) unless allowUnsignedManifests', async () => {
        const m = unsealed();
        refused(await h.publish(m), 400, 'DW_ERR_MANIFEST_SIGNATURE', /not signed/);
        expect(await h.store.getManifest('ami-web-3')).toBeNull();
        const lax = await appWith({ config: { allowUnsignedManifests: true } });
        const r = await h.publish(m, { app: lax });
        expect(r.status, r.text).toBe(201);
        expect(r.body).toEqual({ imageId: 'ami-web-3', digest: m.digests.overall, signedBy: null, status: 'stored' });
      });

      it('refuses a manifest signed by a key the controller does not trust', async () => {
        const stranger = bakeKey();
        refused(
          await h.publish(bakeManifest('ami-web-3', stranger.privateKey)),
          400,
          'DW_ERR_MANIFEST_SIGNATURE',
          new RegExp(`key ${stranger.keyId}, which is not a trusted key`),
        );
        // Even where unsigned manifests are allowed, a bad signature is not ignored.
        const lax = await appWith({ config: { allowUnsignedManifests: true } });
        refused(
          await h.publish(bakeManifest('ami-web-3', stranger.privateKey), { app: lax }),
          400,
          'DW_ERR_MANIFEST_SIGNATURE',
          /not a trusted key/,
        );
        expect(await h.store.getManifest('ami-web-3')).toBeNull();
      });

      it('refuses a manifest changed after it was signed (digest mismatch)', async () => {
        const m = bakeManifest('ami-web-3', h.key.privateKey);
        const tampered = structuredClone(m);
        (tampered.sections.packages!.items[0] as { version: string }).version = '0.0.1-evil';
        refused(
          await h.publish(tampered),
          400,
          'DW_ERR_MANIFEST_DIGEST',
          /section "packages" does not match its digest/,
        );
        const header = structuredClone(m);
        header.image.version = 'forged';
        refused(await h.publish(header), 400, 'DW_ERR_MANIFEST_DIGEST', /overall digest/);
        expect(await h.store.getManifest('ami-web-3')).toBeNull();
      });

      it('accepts a detached signature, and answers a second publication of the same manifest with 200 unchanged', async () => {
        const m = bakeManifest('ami-web-3', undefined);
        const signature = signDigest(m.digests.overall, h.key.privateKey);
        const first = await h.publish(m, { signature });
        expect(first.status, first.text).toBe(201);
        expect(first.body).toEqual({
          imageId: 'ami-web-3',
          digest: m.digests.overall,
          signedBy: h.key.keyId,
          status: 'stored',
        });
        const auditBefore = await h.store.listAudit({ limit: 100 });
        const again = await h.publish(m, { signature });
        expect(again.status).toBe(200);
        expect(again.body.status).toBe('unchanged');
        expect(await h.store.listAudit({ limit: 100 })).toEqual(auditBefore);
        const stored = await h.req('GET', '/api/v1/manifests/ami-web-3', { token: h.tokens.viewer });
        expect(stored.status).toBe(200);
        expect(stored.body.digests.overall).toBe(m.digests.overall);
        expect(stored.body.signature).toEqual(signature);
      });

      it('refuses a different manifest for an image id that already has one: 409', async () => {
        const other = bakeManifest(IMAGE, h.key.privateKey, imageSections(), { version: '2026.03.9' });
        refused(await h.publish(other), 409, 'DW_ERR_CONFLICT', new RegExp(`image ${IMAGE} already has a manifest`));
        expect((await h.store.getManifest(IMAGE))?.digest).toBe(h.manifest.digests.overall);
      });

      it('a viewer cannot publish: 403', async () => {
        refused(
          await h.publish(bakeManifest('ami-web-3', h.key.privateKey), { token: h.tokens.viewer }),
          403,
          'DW_ERR_FORBIDDEN',
          /operator/,
        );
        expect(await h.store.getManifest('ami-web-3')).toBeNull();
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('authentication and roles', () => {
      it('lists every route the controller serves in this table', async () => {
        const paths = (await h.get('/api/v1/openapi.json')).body.paths as Record<string, Record<string, unknown>>;
        const served = new Set(
          Object.entries(paths).flatMap(([p, methods]) =>
            Object.keys(methods).map((m) => `${m.toUpperCase()} ${p.replace(/\{[^}]+\}/g, ':param')}`),
          ),
        );
        const tabled = new Set(
          ROUTES.map((r) => `${r.method} ${r.url.replace(/\/(none|ami-none)(?=\/|$)/g, '/:param')}`),
        );
        for (const route of served) expect(tabled, `${route} is missing from ROUTES`).toContain(route);
        // The rest are hidden from the document (not API resources) but authenticated all the same.
        expect([...tabled].filter((route) => !served.has(route)).sort()).toEqual([
          'GET /api/v1/openapi.json',
          'GET /metrics',
        ]);
      });

      it('every route refuses a request without a token, or with an unknown one: 401', async () => {
        for (const r of ROUTES) {
          if (r.need === 'identity') {
            // No token to miss: without a signed document in the body it is a 400 naming the field.
            refused(await h.req(r.method, r.url, { body: r.body }), 400, 'DW_ERR_VALIDATION', /awsIdentity/);
            continue;
          }
          refused(await h.req(r.method, r.url, { body: r.body }), 401, 'DW_ERR_UNAUTHORIZED', /missing bearer token/);
          refused(await h.req(r.method, r.url, { body: r.body, token: 'dwt_not-a-token' }), 401, 'DW_ERR_UNAUTHORIZED');
          refused(
            await h.req(r.method, r.url, { body: r.body, headers: { authorization: `Basic ${h.tokens.admin}` } }),
            401,
            'DW_ERR_UNAUTHORIZED',
          );
        }
      });

      it('each credential reaches exactly the routes it may: people by rank (viewer < operator < admin), agents enroll, hosts report', async () => {
        const web1 = await h.enroll('web-1');
        const credentials = {
          viewer: h.tokens.viewer,
          operator: h.tokens.operator,
          admin: h.tokens.admin,
          agent: h.tokens.agent,
          host: web1.credential,
        };
        const expected = (
          need: (typeof ROUTES)[number]['need'],
          who: keyof typeof credentials,
        ): 'allowed' | 401 | 403 => {
          if (need === 'identity') return 'allowed'; // a token proves nothing here; the empty body is a 400
          if (need === 'host') return who === 'host' ? 'allowed' : 401; // only a host credential is one
          if (who === 'host') return 401; // and it is no token
          if (need === 'enroll') return who === 'agent' ? 'allowed' : 403;
          if (who === 'agent') return 403;
          return RANK[who] >= RANK[need] ? 'allowed' : 403;
        };
        for (const r of ROUTES) {
          for (const [who, token] of Object.entries(credentials) as [keyof typeof credentials, string][]) {
            const res = await h.req(r.method, r.url, { token, body: r.body });
            const want = expected(r.need, who);
            // Allowed requests are harmless ones: a 400 for an empty body or a 404 for `none` is fine.
            if (want === 'allowed')
              expect([401, 403], `${who} ${r.method} ${r.url}: ${res.text}`).not.toContain(res.status);
            else expect(res.status, `${who} ${r.method} ${r.url}: ${res.text}`).toBe(want);
          }
        }
        expect((await h.store.listHosts({ limit: 10 })).hosts.map((x) => x.id)).toEqual(['web-1']);
      });

      it('a viewer can read hosts, audit and exemptions, but not publish, exempt or create tokens', async () => {
        await h.enroll('web-1');
        for (const url of [
          '/api/v1/hosts',
          '/api/v1/hosts/web-1',
          '/api/v1/hosts/web-1/reports',
          '/api/v1/audit',
          '/api/v1/exemptions',
          '/api/v1/manifests',
          `/api/v1/manifests/${IMAGE}`,
        ]) {
          expect((await h.get(url, h.tokens.viewer)).status, url).toBe(200);
        }
        const before = await h.snapshot();
        refused(
          await h.publish(bakeManifest('ami-web-3', h.key.privateKey), { token: h.tokens.viewer }),
          403,
          'DW_ERR_FORBIDDEN',
        );
        refused(
          await h.req('POST', '/api/v1/exemptions', {
            token: h.tokens.viewer,
            body: { keyPattern: 'openssl:*', collector: 'packages', reason: 'x', for: '1h' },
          }),
          403,
          'DW_ERR_FORBIDDEN',
        );
        refused(
          await h.req('POST', '/api/v1/tokens', { token: h.tokens.viewer, body: { name: 'me', role: 'admin' } }),
          403,
          'DW_ERR_FORBIDDEN',
        );
        expect(await h.snapshot()).toEqual(before);
      });

      it('an operator cannot manage tokens; an admin can create, list and revoke them', async () => {
        refused(
          await h.req('POST', '/api/v1/tokens', { token: h.tokens.operator, body: { name: 'ci', role: 'viewer' } }),
          403,
          'DW_ERR_FORBIDDEN',
          /admin/,
        );
        refused(await h.get('/api/v1/tokens', h.tokens.operator), 403, 'DW_ERR_FORBIDDEN');
        refused(
          await h.req('DELETE', `/api/v1/tokens/${h.tokenIds.viewer}`, { token: h.tokens.operator }),
          403,
          'DW_ERR_FORBIDDEN',
        );
        const made = await h.req('POST', '/api/v1/tokens', {
          token: h.tokens.admin,
          body: { name: 'ci', role: 'viewer', expiresIn: '30d' },
        });
        expect(made.status).toBe(201);
        expect(made.body).toMatchObject({
          name: 'ci',
          role: 'viewer',
          createdBy: h.actor('admin'),
          expiresAt: iso(T0 + 30 * DAY),
          secret: expect.stringMatching(/^dwt_/),
        });
        const list = await h.get('/api/v1/tokens', h.tokens.admin);
        expect(list.body.tokens.map((t: { id: string }) => t.id)).toContain(made.body.id);
        expect(JSON.stringify(list.body)).not.toContain(made.body.secret);
        expect(JSON.stringify(list.body)).not.toMatch(/hash/);
        expect((await h.get('/api/v1/hosts', made.body.secret)).status).toBe(200);
        expect((await h.req('DELETE', `/api/v1/tokens/${made.body.id}`, { token: h.tokens.admin })).status).toBe(200);
      });

      it('revoked and expired tokens are 401', async () => {
        const short = await h.req('POST', '/api/v1/tokens', {
          token: h.tokens.admin,
          body: { name: 'short', role: 'viewer', expiresIn: '1h' },
        });
        expect((await h.get('/api/v1/hosts', short.body.secret)).status).toBe(200);
        expect((await h.req('DELETE', `/api/v1/tokens/${h.tokenIds.operator}`, { token: h.tokens.admin })).status).toBe(
          200,
        );
        refused(
          await h.get('/api/v1/hosts', h.tokens.operator),
          401,
          'DW_ERR_UNAUTHORIZED',
          new RegExp(`token ${h.tokenIds.operator} was revoked`),
        );
        h.clock.advance(HOUR);
        refused(await h.get('/api/v1/hosts', short.body.secret), 401, 'DW_ERR_UNAUTHORIZED', /expired at/);
        // A revoked enrollment token enrolls nobody.
        expect((await h.req('DELETE', `/api/v1/tokens/${h.tokenIds.agent}`, { token: h.tokens.admin })).status).toBe(
          200,
        );
        refused(
          await h.req('POST', '/api/v1/enroll', { token: h.tokens.agent, body: { hostId: 'web-1', imageId: IMAGE } }),
          401,
          'DW_ERR_UNAUTHORIZED',
          /revoked/,
        );
        expect(await h.store.getHost('web-1')).toBeNull();
      });

      it('an agent enrollment token cannot read hosts (403), and a host credential is no API token (401)', async () => {
        const web1 = await h.enroll('web-1');
        refused(await h.get('/api/v1/hosts', h.tokens.agent), 403, 'DW_ERR_FORBIDDEN', /role agent/);
        refused(await h.get('/api/v1/hosts/web-1', h.tokens.agent), 403, 'DW_ERR_FORBIDDEN');
        refused(await h.get('/api/v1/hosts', web1.credential), 401, 'DW_ERR_UNAUTHORIZED', /unknown token/);
        refused(
          await h.req('POST', '/api/v1/enroll', { token: web1.credential, body: { hostId: 'web-2', imageId: IMAGE } }),
          401,
          'DW_ERR_UNAUTHORIZED',
        );
      });

      it('/healthz is the only route open without a token', async () => {
        const r = await h.req('GET', '/healthz');
        expect(r.status).toBe(200);
        expect(r.body).toEqual({ ok: true });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('malformed input is refused with a 4xx naming the problem, and changes nothing', () => {
      let web1: HostSim;
      beforeEach(async () => {
        web1 = await h.enroll('web-1');
        await web1.write('/home/alice/notes.txt', 'x\n').scan();
      });

      const post = (payload: string | Buffer, headers: Record<string, string> = {}) =>
        h.req('POST', '/api/v1/reports', { token: web1.credential, payload, headers });
      const withReport = (change: (r: Record<string, unknown>) => void) => {
        const r = web1.report() as unknown as Record<string, unknown>;
        change(r);
        return JSON.stringify(r);
      };

      const cases: [string, () => Promise<Res>, number, string, RegExp][] = [
        [
          'invalid JSON',
          () => post('{"schema": "driftwarden/report/v1", "seq": '),
          400,
          'DW_ERR_VALIDATION',
          /not valid JSON/,
        ],
        ['an empty body', () => post(''), 400, 'DW_ERR_VALIDATION', /body/i],
        ['a missing seq', () => post(withReport((r) => delete r.seq)), 400, 'DW_ERR_VALIDATION', /body\.seq/],
        [
          'a missing reportId',
          () => post(withReport((r) => delete r.reportId)),
          400,
          'DW_ERR_VALIDATION',
          /body\.reportId/,
        ],
        [
          'a seq that is text',
          () => post(withReport((r) => (r.seq = 'two'))),
          400,
          'DW_ERR_VALIDATION',
          /body\.seq: .*expected number/,
        ],
        ['a negative seq', () => post(withReport((r) => (r.seq = -1))), 400, 'DW_ERR_VALIDATION', /body\.seq/],
        [
          'deviations that are not a list',
          () => post(withReport((r) => (r.deviations = 'none'))),
          400,
          'DW_ERR_VALIDATION',
          /body\.deviations/,
        ],
        [
          'a deviation of an unknown collector',
          () =>
            post(
              withReport(
                (r) =>
                  (r.deviations = [
                    { collector: 'bogus', key: 'k', change: 'added', expected: null, actual: {}, severity: 'low' },
                  ]),
              ),
            ),
          400,
          'DW_ERR_VALIDATION',
          /body\.deviations\.0\.collector/,
        ],
        [
          'a digest that is not sha256',
          () => post(withReport((r) => (r.digests = { packages: 'md5:abc' }))),
          400,
          'DW_ERR_VALIDATION',
          /body\.digests\.packages/,
        ],
        [
          'a reportId that is not a UUID',
          () => post(withReport((r) => (r.reportId = 'report-1'))),
          400,
          'DW_ERR_VALIDATION',
          /body\.reportId/,
        ],
        ['an unknown field', () => post(withReport((r) => (r.admin = true))), 400, 'DW_ERR_VALIDATION', /admin/],
        [
          'a heartbeat that carries deviations',
          () => post(withReport((r) => (r.kind = 'heartbeat'))),
          400,
          'DW_ERR_VALIDATION',
          /heartbeat carries no deviations/,
        ],
        [
          'a body that is not JSON at all',
          () => post('seq=2', { 'content-type': 'application/x-www-form-urlencoded' }),
          400,
          'DW_ERR_VALIDATION',
          /content type.*application\/json/,
        ],
      ];
      for (const [what, send, status, code, names] of cases) {
        it(`refuses ${what}`, async () => {
          const before = await h.snapshot();
          refused(await send(), status, code, names);
          expect(await h.snapshot()).toEqual(before);
          // The host is not stuck: its next good report goes through.
          expect((await web1.scan()).body.status).toBe('accepted');
        });
      }

      it('refuses a body over the configured limit with 413', async () => {
        const small = await appWith({ config: { bodyLimit: 4096 } });
        const before = await h.snapshot();
        const big = web1.report({
          deviations: web1.deviations().concat(
            Array.from({ length: 60 }, (_, i) => ({
              collector: 'files' as const,
              key: `/home/alice/f${i}`,
              change: 'added' as const,
              expected: null,
              actual: { type: 'file' },
              severity: 'low' as const,
            })),
          ),
        });
        const r = await inject(small, 'POST', '/api/v1/reports', { token: web1.credential, body: big });
        refused(r, 413, 'DW_ERR_TOO_LARGE', /larger than the limit/);
        expect(await h.snapshot()).toEqual(before);
        // The same limit does not stop an ordinary report.
        expect(
          (await inject(small, 'POST', '/api/v1/reports', { token: web1.credential, body: web1.report() })).status,
        ).toBe(200);
      });

      it('answers an unknown route with 404 naming it', async () => {
        refused(await h.get('/api/v1/nope'), 404, 'DW_ERR_NOT_FOUND', 'GET /api/v1/nope');
        refused(
          await h.req('POST', '/api/v2/reports', { token: web1.credential, body: web1.report() }),
          404,
          'DW_ERR_NOT_FOUND',
          '/api/v2/reports',
        );
        refused(await h.get('/api/v1/hosts/web-404'), 404, 'DW_ERR_NOT_FOUND', 'web-404');
      });

      it('refuses malformed query strings and enrollment bodies', async () => {
        const before = await h.snapshot();
        refused(await h.get('/api/v1/hosts?state=on-fire'), 400, 'DW_ERR_VALIDATION', /querystring\.state/);
        refused(await h.get('/api/v1/hosts?limit=0'), 400, 'DW_ERR_VALIDATION', /querystring\.limit/);
        refused(await h.get('/api/v1/hosts?colour=red'), 400, 'DW_ERR_VALIDATION', /colour/);
        refused(
          await h.req('POST', '/api/v1/enroll', {
            token: h.tokens.agent,
            body: { hostId: '../../etc/passwd', imageId: IMAGE },
          }),
          400,
          'DW_ERR_VALIDATION',
          /body\.hostId/,
        );
        refused(
          await h.req('POST', '/api/v1/enroll', { token: h.tokens.agent, body: { hostId: 'web-2' } }),
          400,
          'DW_ERR_VALIDATION',
          /body\.imageId/,
        );
        refused(
          await h.req('POST', '/api/v1/tokens', { token: h.tokens.admin, body: { name: 'x', role: 'root' } }),
          400,
          'DW_ERR_VALIDATION',
          /body\.role/,
        );
        refused(
          await h.req('POST', '/api/v1/manifests', {
            token: h.tokens.operator,
            body: { manifest: { schema: 'nope' } },
          }),
          400,
          'DW_ERR_MANIFEST_INVALID',
          /schema/,
        );
        expect(await h.snapshot()).toEqual(before);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('reading the fleet', () => {
      async function fleet() {
        const web = [
          await h.enroll('web-1', { group: 'web' }),
          await h.enroll('web-2', { group: 'web' }),
          await h.enroll('web-3', { group: 'web' }),
        ];
        const other = bakeManifest('ami-db-1', h.key.privateKey, imageSections(), { version: 'db' });
        await h.publish(other);
        const db = [
          await h.enroll('db-1', { group: 'db', imageId: 'ami-db-1', manifest: other }),
          await h.enroll('db-2', { group: 'db', imageId: 'ami-db-1', manifest: other }),
        ];
        await web[0]!.scan();
        await web[1]!.write('/home/alice/notes.txt', 'x\n').scan();
        await web[2]!.upgrade('curl', '8.0.0').scan();
        await db[0]!.scan();
        return { web, db };
      }
      const ids = (r: Res) => r.body.hosts.map((x: { id: string }) => x.id);

      it('filters GET /api/v1/hosts by state, image and group', async () => {
        await fleet();
        expect(ids(await h.get('/api/v1/hosts'))).toEqual(['db-1', 'db-2', 'web-1', 'web-2', 'web-3']);
        expect(ids(await h.get('/api/v1/hosts?state=clean'))).toEqual(['db-1', 'web-1']);
        expect(ids(await h.get('/api/v1/hosts?state=tainted'))).toEqual(['web-3']);
        expect(ids(await h.get('/api/v1/hosts?state=pending'))).toEqual(['db-2']);
        expect(ids(await h.get('/api/v1/hosts?image=ami-db-1'))).toEqual(['db-1', 'db-2']);
        expect(ids(await h.get('/api/v1/hosts?group=web&state=drifted'))).toEqual(['web-2']);
        expect(ids(await h.get('/api/v1/hosts?group=none'))).toEqual([]);
        const row = (await h.get('/api/v1/hosts?state=drifted')).body.hosts[0];
        expect(row).toEqual({
          id: 'web-2',
          hostname: 'web-2.example.internal',
          imageId: IMAGE,
          group: 'web',
          state: 'drifted',
          stateSince: iso(T0),
          deviationCount: 1,
          lastSeenAt: iso(T0),
          lastReportAt: iso(T0),
          lastScanAt: iso(T0),
          identity: null,
          instanceId: null,
        });
      });

      it('pages with next (keyset): every host once, in id order, and next is null at the end', async () => {
        await fleet();
        const seen: string[] = [];
        let url = '/api/v1/hosts?limit=2';
        for (let page = 0; page < 10; page++) {
          const r = await h.get(url);
          seen.push(...ids(r));
          if (r.body.next === null) break;
          url = `/api/v1/hosts?limit=2&after=${encodeURIComponent(r.body.next)}`;
        }
        expect(seen).toEqual(['db-1', 'db-2', 'web-1', 'web-2', 'web-3']);
        const web = await h.get('/api/v1/hosts?group=web&limit=2');
        expect(ids(web)).toEqual(['web-1', 'web-2']);
        expect(ids(await h.get(`/api/v1/hosts?group=web&limit=2&after=${web.body.next}`))).toEqual(['web-3']);
      });

      it('shows a host’s detail: current deviations with expected and actual, and its timeline', async () => {
        const { web } = await fleet();
        h.clock.advance(MINUTE);
        await web[1]!.upgrade('openssl', '3.0.13-1').scan();
        const r = await h.get('/api/v1/hosts/web-2');
        expect(r.status).toBe(200);
        expect(r.body.host).toMatchObject({ id: 'web-2', state: 'tainted', deviationCount: 2, lastSeq: 2 });
        expect(r.body.host).not.toHaveProperty('credentialHash');
        expect(r.body.deviations).toEqual(
          expect.arrayContaining([
            expect.objectContaining({
              collector: 'files',
              key: '/home/alice/notes.txt',
              change: 'added',
              action: 'report',
              firstSeenAt: iso(T0),
              lastSeenAt: iso(T0 + MINUTE),
            }),
            expect.objectContaining({
              collector: 'packages',
              key: 'openssl:amd64',
              change: 'modified',
              action: 'taint',
              expected: expect.objectContaining({ version: '3.0.11-1' }),
              actual: expect.objectContaining({ version: '3.0.13-1' }),
            }),
          ]),
        );
        expect(r.body.timeline.transitions.map((t: { to: string }) => t.to)).toEqual(['pending', 'drifted', 'tainted']);
        expect(r.body.timeline.reports.map((x: { seq: number }) => x.seq)).toEqual([2, 1]);
        const reports = await h.get('/api/v1/hosts/web-2/reports');
        expect(
          reports.body.reports.map((x: { seq: number; deviationCount: number }) => [x.seq, x.deviationCount]),
        ).toEqual([
          [2, 2],
          [1, 1],
        ]);
      });

      it('serves the OpenAPI document to a viewer, listing the routes with their methods', async () => {
        const r = await h.get('/api/v1/openapi.json');
        expect(r.status).toBe(200);
        expect(r.body.openapi).toMatch(/^3\./);
        const paths = r.body.paths as Record<string, Record<string, unknown>>;
        expect(Object.keys(paths)).toEqual(
          expect.arrayContaining([
            '/api/v1/enroll',
            '/api/v1/reports',
            '/api/v1/manifests',
            '/api/v1/hosts',
            '/api/v1/hosts/{id}',
            '/api/v1/exemptions',
            '/api/v1/audit',
            '/api/v1/tokens',
          ]),
        );
        expect(Object.keys(paths['/api/v1/reports']!)).toEqual(['post']);
        expect(Object.keys(paths['/api/v1/exemptions/{id}']!)).toEqual(['delete']);
        expect(r.body.components.securitySchemes.bearer).toEqual({ type: 'http', scheme: 'bearer' });
      });

      it('exposes hosts by state and ingest counters on /metrics', async () => {
        const { web } = await fleet();
        await web[0]!.scan({ seq: 1 }); // a replay: refused
        await web[0]!.send({ kind: 'heartbeat' });
        const r = await h.get('/metrics');
        expect(r.status).toBe(200);
        expect(String(r.headers['content-type'])).toMatch(/^text\/plain/);
        const line = (prefix: string) => r.text.split('\n').find((l) => l.startsWith(prefix));
        expect(line('driftwarden_hosts{state="clean"}')).toBe('driftwarden_hosts{state="clean"} 2');
        expect(line('driftwarden_hosts{state="drifted"}')).toBe('driftwarden_hosts{state="drifted"} 1');
        expect(line('driftwarden_hosts{state="tainted"}')).toBe('driftwarden_hosts{state="tainted"} 1');
        expect(line('driftwarden_hosts{state="pending"}')).toBe('driftwarden_hosts{state="pending"} 1');
        expect(line('driftwarden_reports_ingested_total{kind="scan",status="accepted"}')).toBe(
          'driftwarden_reports_ingested_total{kind="scan",status="accepted"} 4',
        );
        expect(line('driftwarden_reports_ingested_total{kind="heartbeat",status="accepted"}')).toBe(
          'driftwarden_reports_ingested_total{kind="heartbeat",status="accepted"} 1',
        );
        expect(line('driftwarden_requests_rejected_total{code="DW_ERR_REPLAY"}')).toBe(
          'driftwarden_requests_rejected_total{code="DW_ERR_REPLAY"} 1',
        );
        expect(line('driftwarden_report_ingest_seconds_count')).toBe('driftwarden_report_ingest_seconds_count 5');
        refused(await h.get('/metrics', null), 401, 'DW_ERR_UNAUTHORIZED');
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('retention', () => {
      it('pruneOldReports removes reports past retention but keeps the taint evidence, transitions, audit and host state', async () => {
        const web1 = await h.enroll('web-1');
        await web1.scan();
        h.clock.advance(DAY);
        await web1.scan();
        const tainting = web1.upgrade('openssl', '3.0.13-1').report();
        await web1.send(tainting);
        h.clock.advance(31 * DAY);
        const fresh = web1.report();
        await web1.send(fresh);
        const transitionsBefore = await h.store.listTransitions('web-1');
        const auditBefore = await h.store.listAudit({ limit: 1000 });
        const hostBefore = await web1.row();
        expect(await pruneOldReports(background())).toBe(2);
        // The report that tainted the host stays while the host is not replaced.
        expect((await h.store.listReports('web-1', { limit: 10 })).map((r) => r.reportId)).toEqual([
          fresh.reportId,
          tainting.reportId,
        ]);
        expect(await h.store.listTransitions('web-1')).toEqual(transitionsBefore);
        expect(await h.store.listAudit({ limit: 1000 })).toEqual(auditBefore);
        expect(await web1.row()).toEqual(hostBefore);
        expect(await pruneOldReports(background())).toBe(0);
        // A pruned report's seq is still spent.
        refused(await web1.scan({ seq: 1 }), 409, 'DW_ERR_REPLAY');
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('audit', () => {
      it('records every action with its actor: token create/revoke/use, publish, enroll, exemption create/revoke, taint', async () => {
        const admin = h.actor('admin');
        const operator = h.actor('operator');
        const agent = h.actor('agent');
        const ci = await h.req('POST', '/api/v1/tokens', {
          token: h.tokens.admin,
          body: { name: 'ci', role: 'viewer' },
        });
        await h.req('DELETE', `/api/v1/tokens/${ci.body.id}`, { token: h.tokens.admin });
        const web1 = await h.enroll('web-1');
        const ex = await h.req('POST', '/api/v1/exemptions', {
          token: h.tokens.operator,
          body: { hostId: 'web-1', keyPattern: '/home/**', collector: 'files', reason: 'user files', for: '1d' },
        });
        await h.req('DELETE', `/api/v1/exemptions/${ex.body.id}`, { token: h.tokens.operator });
        await web1.upgrade('openssl', '3.0.13-1').scan();
        const r = await h.get('/api/v1/audit?limit=1000', h.tokens.admin);
        const rows = r.body.audit as {
          id: number;
          actor: string;
          action: string;
          target: string | null;
          at: string;
          detail: Record<string, unknown>;
        }[];
        expect(rows.map((a) => [a.action, a.actor, a.target])).toEqual([
          ['token.create', 'cli:root', h.tokenIds.admin],
          ['token.create', 'cli:root', h.tokenIds.agent],
          ['token.create', 'cli:root', h.tokenIds.viewer],
          ['token.create', 'cli:root', h.tokenIds.operator],
          ['manifest.publish', operator, IMAGE],
          ['token.create', admin, ci.body.id],
          ['token.revoke', admin, ci.body.id],
          ['token.use', agent, h.tokenIds.agent],
          ['host.enroll', agent, 'web-1'],
          ['exemption.create', operator, ex.body.id],
          ['exemption.revoke', operator, ex.body.id],
          ['host.taint', 'controller', 'web-1'],
        ]);
        // What was done is in the detail; no secret is.
        expect(rows[5]!.detail).toEqual({ name: 'ci', role: 'viewer', expiresAt: null });
        expect(rows[4]!.detail).toEqual({ digest: h.manifest.digests.overall, signedBy: h.key.keyId });
        expect(JSON.stringify(rows)).not.toContain(ci.body.secret);
        expect(rows.every((a) => a.at === iso(T0))).toBe(true);
        const page = await h.get(`/api/v1/audit?limit=4`, h.tokens.admin);
        expect(page.body.next).toBe(rows[3]!.id);
        expect((await h.get(`/api/v1/audit?limit=100&afterId=${page.body.next}`, h.tokens.admin)).body.audit).toEqual(
          rows.slice(4),
        );
      });

      it('has no route that changes or deletes audit rows', async () => {
        const before = await h.store.listAudit({ limit: 1000 });
        const id = before[0]!.id;
        for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
          for (const url of ['/api/v1/audit', `/api/v1/audit/${id}`]) {
            const r = await h.req(method, url, {
              token: h.tokens.admin,
              body: method === 'DELETE' ? undefined : { actor: 'mallory' },
            });
            expect([404, 405], `${method} ${url}`).toContain(r.status);
          }
        }
        expect(await h.store.listAudit({ limit: 1000 })).toEqual(before);
        const paths = (await h.get('/api/v1/openapi.json')).body.paths as Record<string, Record<string, unknown>>;
        const auditPaths = Object.entries(paths).filter(([p]) => p.startsWith('/api/v1/audit'));
        expect(auditPaths.map(([p, methods]) => [p, Object.keys(methods)])).toEqual([['/api/v1/audit', ['get']]]);
      });
    });
  });
}
