/**
 * @module The dashboard in a real browser (Debian's chromium, driven by playwright-core) against a real
 * controller listening on a port, with seeded hosts: sign in, the overview, filter hosts, open one,
 * read its diff, exempt a deviation as an operator, be refused the same as a viewer, export CSV.
 * Screenshots of the main pages go to test-results/screenshots/. Chromium must be installed
 * (/usr/bin/chromium); DRIFTWARDEN_SKIP_BROWSER=1 skips this file on machines without it.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import { Harness, HOUR } from '../controller/harness.js';
import { tempDir } from '../helpers/tmp.js';

const CHROMIUM = process.env.DRIFTWARDEN_CHROMIUM ?? '/usr/bin/chromium';
const SKIP = process.env.DRIFTWARDEN_SKIP_BROWSER === '1';
export const SCREENSHOTS = join(process.cwd(), 'test-results', 'screenshots');

if (!SKIP && !existsSync(CHROMIUM))
  throw new Error(
    `browser tests need Chromium at ${CHROMIUM} (apt-get install chromium), or DRIFTWARDEN_SKIP_BROWSER=1 on a machine without it`,
  );

// Skipped only with DRIFTWARDEN_SKIP_BROWSER=1; a missing Chromium fails the run above, so CI runs these.
const ATTRIBUTION = {
  source: 'apt-history' as const,
  at: '2024-03-01T00:47:16+00:00',
  action: 'upgrade',
  package: 'openssl',
  commandLine: 'apt-get install --only-upgrade openssl',
  user: 'alice (1000)',
};
const ATTRIBUTION_TEXT =
  'upgraded by "apt-get install --only-upgrade openssl", run by alice (1000) at 2024-03-01 00:47:16 +00:00 (apt history)';

/** WCAG 2 contrast ratio of two `rgb(r, g, b)` colours. */
function contrast(a: string, b: string): number {
  const lum = (c: string) => {
    const [r, g, bl] = (c.match(/\d+/g) ?? []).slice(0, 3).map((v) => {
      const x = Number(v) / 255;
      return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * bl!;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

describe.skipIf(SKIP)('dashboard in Chromium', () => {
  let h: Harness;
  let browser: Browser;
  let url: string;

  beforeAll(async () => {
    h = await Harness.start(await openStore(`sqlite:${join(tempDir('dw-browser-'), 'controller.db')}`));
    // A fleet: openssl patched by hand on web-01..web-03 (tainted), a user file on web-04 (drifted), the rest clean.
    const sims = [];
    for (let i = 1; i <= 24; i++)
      sims.push(await h.enroll(`web-${String(i).padStart(2, '0')}`, { group: i <= 16 ? 'web' : 'api' }));
    for (const s of sims) await s.scan();
    h.clock.advance(HOUR);
    for (const s of sims.slice(0, 3)) {
      s.upgrade('openssl', '3.0.13-1');
      // web-02's agent found who did it in apt's history; the others kept no record.
      const who = s.id === 'web-02' ? { attribution: ATTRIBUTION } : {};
      await s.scan({ deviations: s.deviations().map((d) => (d.key === 'openssl:amd64' ? { ...d, ...who } : d)) });
    }
    await sims[3]!.write('/home/alice/.bashrc', 'alias ls=rm\n').scan();
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
    mkdirSync(SCREENSHOTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  async function signIn(role: 'viewer' | 'operator'): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const offsite: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(url)) offsite.push(r.url());
    });
    page.on('pageerror', (err) => {
      throw err;
    });
    await page.goto(url);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('API token').fill(h.tokens[role]);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: /Fleet: 24 hosts/ }).waitFor();
    expect(offsite).toEqual([]);
    return page;
  }

  it('an operator signs in, sees the overview, filters hosts, reads a diff, exempts a deviation and exports CSV', async () => {
    const page = await signIn('operator');
    const cookies = await page.context().cookies();
    expect(cookies).toEqual([expect.objectContaining({ name: 'dw_session', httpOnly: true, sameSite: 'Strict' })]);
    expect(cookies[0]!.value).not.toContain(h.tokens.operator.slice(4));
    await expect.poll(() => page.locator('.card.tainted .n').textContent()).toBe('3');
    await expect.poll(() => page.locator('.card.drifted .n').textContent()).toBe('1');
    // A zero is not painted as an alarm; a count is.
    const color = (sel: string) => page.locator(sel).evaluate((el) => getComputedStyle(el).color);
    expect(await page.locator('.card.replacing').getAttribute('class')).toContain('zero');
    expect(await color('.card.replacing .n')).toBe('rgb(102, 102, 119)');
    expect(await color('.card.tainted .n')).toBe('rgb(198, 40, 40)');
    expect(await page.locator('#groups-panel tr').count()).toBe(3); // header, web, api
    await page.screenshot({ path: join(SCREENSHOTS, 'overview.png'), fullPage: true });

    // Export CSV from the overview's fleet report links.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('main > p .downloads a[data-test=csv-link]').click(),
    ]);
    const csv = readFileSync((await download.path())!, 'utf8').split('\r\n');
    expect(download.suggestedFilename()).toMatch(/^drift-fleet-\d{4}-\d\d-\d\d\.csv$/);
    expect(csv[0]).toMatch(/^host_id,hostname,image_id,group,state,collector,key/);
    expect(csv.filter((l) => l.includes('openssl:amd64'))).toHaveLength(3);

    // Filter the hosts table.
    await page.getByRole('link', { name: 'Hosts' }).click();
    await page.locator('[data-test=hosts-table]').waitFor();
    await expect.poll(() => page.locator('[data-test=host-count]').textContent()).toMatch(/24 hosts match/);
    await page.locator('select[name=state]').selectOption('tainted');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => page.locator('[data-test=host-count]').textContent()).toMatch(/3 hosts match/);
    // Hostnames first; the id beside them.
    expect(await page.locator('[data-test=hosts-table] tr td:first-child').allTextContents()).toEqual([
      'web-01.example.internal',
      'web-02.example.internal',
      'web-03.example.internal',
    ]);
    expect(await page.locator('[data-test=hosts-table] tr td:nth-child(2)').first().textContent()).toBe('web-01');
    await page.screenshot({ path: join(SCREENSHOTS, 'hosts.png'), fullPage: true });

    // Open a host and read its diff: the image's openssl against the host's.
    await page.getByRole('link', { name: 'web-02.example.internal' }).click();
    const dev = page.locator('.deviation[data-key="openssl:amd64"]');
    await dev.waitFor();
    // Who made the change, as the host's apt history says, where a reviewer reads the diff.
    await expect.poll(() => dev.locator('[data-test=attribution]').textContent()).toBe(`Made by: ${ATTRIBUTION_TEXT}`);
    expect(await dev.locator('[data-test=attribution]').isVisible()).toBe(true);
    const versionRow = dev.locator('table.diff tr', { hasText: 'version' });
    expect(await versionRow.locator('td').allTextContents()).toEqual(['version', '3.0.11-1', '3.0.13-1']);
    expect(await page.locator('[data-test=timeline]').textContent()).toMatch(/clean → tainted/);
    await page.screenshot({ path: join(SCREENSHOTS, 'host.png'), fullPage: true });

    // Exempt it: a reason and an expiry are required, and the action is confirmed.
    await dev.locator('[data-test=exempt]').click();
    const dialog = page.locator('dialog#confirm');
    await dialog.getByRole('button', { name: 'Exempt' }).click();
    // Not sent without a reason: the browser holds the form back, the dialog stays open.
    expect(
      await dialog
        .locator('textarea[name=reason]')
        .evaluate((el) => (el as unknown as { validity: { valueMissing: boolean } }).validity.valueMissing),
    ).toBe(true);
    expect(await dialog.evaluate((el) => (el as unknown as { open: boolean }).open)).toBe(true);
    expect(await h.store.listExemptions({})).toEqual([]);
    await dialog.locator('textarea[name=reason]').fill('CVE-2026-0001 hotfix until the next bake');
    await dialog.locator('select[name=for]').selectOption('30d');
    await page.screenshot({ path: join(SCREENSHOTS, 'exempt-dialog.png') });
    await dialog.getByRole('button', { name: 'Exempt' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: /Exemption .* active until/ })
      .waitFor();
    const exemptions = await h.store.listExemptions({});
    expect(exemptions).toEqual([
      expect.objectContaining({
        hostId: 'web-02',
        collector: 'packages',
        keyPattern: 'openssl:amd64',
        reason: 'CVE-2026-0001 hotfix until the next bake',
        actor: h.actor('operator'),
      }),
    ]);
    expect((await h.store.listAudit({ limit: 200 })).filter((a) => a.action === 'exemption.create')).toEqual([
      expect.objectContaining({ actor: h.actor('operator'), target: exemptions[0]!.id }),
    ]);

    for (const [name, shot] of [
      ['Findings', 'findings'],
      ['Audit log', 'audit'],
    ] as const) {
      await page.getByRole('link', { name }).click();
      await page.getByRole('heading', { name: name === 'Findings' ? 'Findings' : 'Audit log' }).waitFor();
      await page.locator('table tr:nth-child(2)').waitFor();
      await page.screenshot({ path: join(SCREENSHOTS, `${shot}.png`), fullPage: true });
    }
    expect(await page.locator('[data-test=audit-table]').textContent()).toMatch(/exemption\.create/);
    // The detail reads as lines of `key: value`, not a JSON blob.
    const detail = page
      .locator('[data-test=audit-table] tr', { hasText: 'exemption.create' })
      .locator('[data-test=detail]');
    expect(await detail.locator('div').allTextContents()).toContain('reason: CVE-2026-0001 hotfix until the next bake');
    expect(await detail.textContent()).not.toMatch(/\{"/);
    await page.getByRole('link', { name: 'Findings' }).click();
    const finding = page.locator('[data-test=finding]', { hasText: 'openssl:amd64' });
    expect(await finding.locator('td').first().textContent()).toBe('3');
    expect(await finding.locator('[data-test=change]').textContent()).toBe('version: 3.0.11-1 → 3.0.13-1');
    expect(await finding.locator('[data-test=attribution]').textContent()).toBe(
      `${ATTRIBUTION_TEXT} (1 of 3 hosts have a record)`,
    );
    // Search and sort go to the API: a path substring leaves only its finding.
    await page.locator('input[name=q]').fill('bashrc');
    await page.locator('select[name=sort]').selectOption('-severity');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => page.locator('[data-test=finding]').count()).toBe(1);
    expect(await page.locator('[data-test=finding]').textContent()).toContain('/home/alice/.bashrc');
    await page.context().close();
  }, 120_000);

  it('a viewer sees the same host, and the controller refuses the viewer the same action', async () => {
    const page = await signIn('viewer');
    await page.goto(`${url}/#/host/web-01`);
    const dev = page.locator('.deviation[data-key="openssl:amd64"]');
    await dev.waitFor();
    await dev.locator('[data-test=exempt]').click();
    const dialog = page.locator('dialog#confirm');
    await dialog.locator('textarea[name=reason]').fill('just because');
    await dialog.getByRole('button', { name: 'Exempt' }).click();
    await expect.poll(() => dialog.locator('.error').textContent()).toMatch(/Refused: this needs role operator/);
    expect((await h.store.listExemptions({})).filter((e) => e.hostId === 'web-01')).toEqual([]);
    await page.context().close();
  }, 120_000);

  it('the replacement queue and the breaker: seen on their page and the overview, resumed by an operator (refused to a viewer), a replacement requested from a host page', async () => {
    // The scheduler (dry-run by default) queues the three tainted hosts; the breaker has tripped on group api.
    for (const sim of h.hosts.values()) expect((await sim.send({ kind: 'heartbeat' })).status).toBe(200); // all reachable: none counts as unavailable
    expect((await h.req('POST', '/api/v1/scheduler/tick', { token: h.tokens.admin })).body).toMatchObject({
      queued: 3,
    });
    await h.store.replacements.putGroup({
      name: 'api',
      paused: true,
      pausedReason:
        '5 hosts tainted within 15m by the same deviation (files /etc/ssh/sshd_config modified), at least sameDeviation 5',
      pausedAt: h.clock.iso(),
      pausedBy: 'breaker',
      resumedAt: null,
      resumedBy: null,
      breakerSince: null,
    });

    const viewer = await signIn('viewer');
    const groupsRow = (p: Page, name: string) =>
      p.locator(`#groups-panel tr`, { has: p.locator(`td:first-child`, { hasText: new RegExp(`^${name}$`) }) });
    await expect
      .poll(() => groupsRow(viewer, 'api').locator('[data-test=breaker]').textContent())
      .toMatch(/^tripped .*same deviation/);
    expect(await groupsRow(viewer, 'web').locator('[data-test=breaker]').textContent()).toBe('closed');
    expect(await groupsRow(viewer, 'web').locator('.mode').textContent()).toBe('dry-run');
    await viewer.screenshot({ path: join(SCREENSHOTS, 'overview-breaker.png'), fullPage: true });

    await viewer.getByRole('link', { name: 'Replacements' }).click();
    const table = viewer.locator('[data-test=replacements-table]');
    await table.waitFor();
    expect(await table.locator('tr[data-host] td:first-child .mono').allTextContents()).toEqual([
      'web-01',
      'web-02',
      'web-03',
    ]);
    const first = table.locator('tr[data-host=web-01]');
    expect(await first.locator('.decision').textContent()).toBe('would replace');
    expect(await first.textContent()).toMatch(/within budgets/);
    expect(await table.locator('tr[data-host=web-03] .decision').textContent()).toBe('waiting');
    expect(await table.locator('tr[data-host=web-03]').textContent()).toMatch(/maxUnavailable/);
    const apiGroup = viewer.locator('[data-test=replacement-groups] tr[data-group=api]');
    expect(await apiGroup.locator('[data-test=breaker]').textContent()).toMatch(/^tripped/);
    expect(await viewer.locator('[data-test=replacement-groups] tr[data-group=web]').textContent()).toMatch(
      /"\*": maxUnavailable 10%/,
    );
    await viewer.screenshot({ path: join(SCREENSHOTS, 'replacements.png'), fullPage: true });

    // A viewer may look, not resume: the controller refuses and the group stays paused.
    await apiGroup.locator('[data-test=resume]').click();
    const vDialog = viewer.locator('dialog#confirm');
    await vDialog.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => vDialog.locator('.error').textContent()).toMatch(/Refused: this needs role operator/);
    expect(await h.store.replacements.getGroup('api')).toMatchObject({ paused: true });
    await viewer.context().close();

    const op = await signIn('operator');
    await op.goto(`${url}/#/replacements`);
    const opGroup = op.locator('[data-test=replacement-groups] tr[data-group=api]');
    await opGroup.locator('[data-test=resume]').click();
    const dialog = op.locator('dialog#confirm');
    await op.screenshot({ path: join(SCREENSHOTS, 'replacements-resume-dialog.png') });
    await dialog.getByRole('button', { name: 'Resume' }).click();
    await op
      .getByRole('status')
      .filter({ hasText: /Group api resumed by/ })
      .waitFor();
    expect(
      await op.locator('[data-test=replacement-groups] tr[data-group=api] [data-test=breaker]').textContent(),
    ).toBe('closed');
    expect(await h.store.replacements.getGroup('api')).toMatchObject({ paused: false, resumedBy: h.actor('operator') });
    expect((await h.store.listAudit({ limit: 500 })).filter((a) => a.action === 'replacement.resume')).toEqual([
      expect.objectContaining({ actor: h.actor('operator'), target: 'api' }),
    ]);

    // From a clean host's page: request its replacement; the page then shows its progress.
    await op.goto(`${url}/#/host/web-20`);
    await op.locator('[data-test=request-host]').click();
    await expect.poll(() => dialog.locator('h2, h1').first().textContent()).toBe('Replace web-20.example.internal');
    await dialog.locator('textarea[name=reason]').fill('suspected credential leak (INC-42)');
    await dialog.getByRole('button', { name: 'Request replacement' }).click();
    await op
      .getByRole('status')
      .filter({ hasText: /Replacement of web-20 requested/ })
      .waitFor();
    await expect.poll(() => op.locator('[data-test=replacement-progress] li.current').textContent()).toBe('queued');
    // A request is not drift: the clean host stays clean while it waits.
    expect(await op.locator('h1 .state').textContent()).toBe('clean');
    const pill = op.locator('h1 .state');
    const [fg, bg] = await pill.evaluate((el) => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]);
    expect(contrast(fg!, bg!)).toBeGreaterThanOrEqual(4.5);
    expect(await h.store.replacements.list({ hostId: 'web-20', limit: 5 })).toEqual([
      expect.objectContaining({
        state: 'queued',
        requestedBy: h.actor('operator'),
        reason: 'suspected credential leak (INC-42)',
      }),
    ]);
    expect((await h.store.listAudit({ limit: 500 })).filter((a) => a.action === 'replacement.request')).toEqual([
      expect.objectContaining({ actor: h.actor('operator'), target: 'web-20' }),
    ]);
    await op.screenshot({ path: join(SCREENSHOTS, 'host-replacement.png'), fullPage: true });
    await op.context().close();
  }, 120_000);
});
