/**
 * Large and undeliverable scans, end to end: the real agent (a child process) on a copy of the web
 * fixture, over real HTTP to a real controller. A 15 MB drift arrives whole (gzip); past the
 * controller's limits the scan arrives truncated and says so; a scan something between host and
 * controller will not carry is announced by the heartbeats, so the host is never shown clean; and
 * http:// to a controller that is not on loopback is refused at start.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  agentFor,
  bake,
  dw,
  killAll,
  publishedController,
  until,
  type AgentHost,
  type AgentOptions,
  type Baked,
  type Controller,
  type HostDetail,
} from '../helpers/agent-host.js';

let baked: Baked;
beforeAll(() => {
  baked = bake();
}, 60_000);

const controllers: Controller[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await killAll();
  for (const c of controllers.splice(0)) await c.stop();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

const host = (c: Controller, opts: Partial<AgentOptions> = {}): AgentHost =>
  agentFor(baked, c, { watch: null, heartbeat: '500ms', ...opts });

/** `count` files added under ROOT/opt/bulk, each with its own content (and so its own hash). */
function addFiles(a: AgentHost, count: number): void {
  for (let d = 0; d < Math.ceil(count / 1000); d++) {
    const dir = join(
      a.root,
      'opt/bulk',
      `vendor-library-directory-${String(d).padStart(3, '0')}`,
      'lib/x86_64-linux-gnu/plugins',
    );
    mkdirSync(dir, { recursive: true });
    for (let i = d * 1000; i < Math.min(count, (d + 1) * 1000); i++)
      writeFileSync(join(dir, `libplugin-with-a-long-name-${String(i).padStart(6, '0')}.so.1.2.3`), `file ${i}\n`);
  }
}

/**
 * An HTTP proxy that resets the connection of any request whose body is over `maxBody` bytes, as a
 * middlebox that drops large uploads does: the agent sees ECONNRESET or EPIPE, never an answer.
 */
async function uploadDroppingProxy(target: string, maxBody: number): Promise<string> {
  const to = new URL(target);
  const server = createServer((req, res) => {
    if (Number(req.headers['content-length'] ?? 0) > maxBody) return req.socket.resetAndDestroy();
    const up = request(
      { host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

const deviations = (d: HostDetail | null) => d?.deviations ?? [];

describe('delivery of large and undeliverable scans', () => {
  it('delivers a 15 MB scan of 45,000 added files whole, compressed, and the host is tainted', async () => {
    const c = await publishedController(baked, controllers);
    const a = host(c);
    addFiles(a, 45_000);
    a.start();
    const detail = await until(
      async () => ((await c.host())?.host.state === 'tainted' ? c.host() : null),
      () => `host tainted\n${a.log.slice(-2000)}`,
      240_000,
      500,
    );
    const spooled = JSON.parse(a.log.split('\n').find((l) => l.includes('"msg":"scan spooled"'))!) as {
      deviations: number;
      bytes: number;
    };
    // Over the controller's 8 MiB body limit as JSON: it could only have arrived compressed.
    expect(spooled.bytes).toBeGreaterThan(15_000_000);
    expect(spooled.deviations).toBeGreaterThanOrEqual(45_000);
    const [scan] = (await c.reports()).filter((r) => r.kind === 'scan');
    expect(scan!.deviationCount).toBe(spooled.deviations);
    expect(detail.host.deviationCount).toBeGreaterThanOrEqual(45_000);
    expect(a.log).not.toMatch(/truncated|refused/);
    expect(readdirSync(a.rejectedDir())).toEqual([]);
    // Here, within the test's time, rather than in the temp-dir cleanup's 10 s.
    await killAll();
    rmSync(join(a.root, 'opt/bulk'), { recursive: true, force: true });
  }, 300_000);

  it('past the controller limits, sends the most severe deviations flagged truncated: the host is tainted for it', async () => {
    const c = await publishedController(baked, controllers, 0, { bodyLimit: 32 * 1024 });
    const a = host(c);
    addFiles(a, 3000);
    a.start();
    await until(
      async () => (await c.host())?.host.state === 'tainted',
      () => `host tainted\n${a.log.slice(-2000)}`,
      60_000,
      200,
    );
    const truncated = await until(
      async () => deviations(await c.host()).find((d) => d.key === 'agent:scan-truncated'),
      'the truncation recorded',
    );
    expect(truncated).toMatchObject({
      collector: 'integrity',
      action: 'taint',
      actual: { value: expect.stringMatching(/^\d+ of 30\d\d deviations sent$/) },
    });
    const [scan] = (await c.reports()).filter((r) => r.kind === 'scan');
    expect(scan!.deviationCount).toBeGreaterThan(0);
    expect(scan!.deviationCount).toBeLessThan(3000);
    expect(a.log).toMatch(/refused the report as too large/);
    // Nothing set aside: the report the controller took is the scan itself, cut to fit.
    expect(readdirSync(a.rejectedDir())).toEqual([]);
  }, 120_000);

  it('a scan that never gets through keeps the host from looking clean; an honest host on the same path stays clean', async () => {
    const c = await publishedController(baked, controllers);
    const proxy = await uploadDroppingProxy(c.url, 16 * 1024);
    const a = host(c, { controllerUrl: proxy, controllerKeys: { undeliveredAfter: '2s' } });
    addFiles(a, 3000);
    const honest = host(c, { controllerUrl: proxy, controllerKeys: { undeliveredAfter: '2s' } });
    writeFileSync(join(honest.root, 'etc/machine-id'), 'fedcba9876543210fedcba9876543210\n');
    a.start();
    honest.start();
    await until(
      async () => (await c.host())?.host.state === 'tainted',
      () => `host tainted\n${a.log.slice(-3000)}`,
      60_000,
      200,
    );
    const undelivered = deviations(await c.host()).find((d) => d.key === 'agent:scan-undelivered');
    expect(undelivered).toMatchObject({
      collector: 'integrity',
      action: 'taint',
      actual: { value: expect.stringMatching(/: 30\d\d deviations: /) },
    });
    // The scan is set aside with its reason; the heartbeats carried the news.
    const [rejected] = readdirSync(a.rejectedDir()).filter((n) => n.includes('-scan-') && n.endsWith('.json'));
    expect(readFileSync(join(a.rejectedDir(), `${rejected}.reason`), 'utf8')).toMatch(
      /^undeliverable: (ECONNRESET|EPIPE)/,
    );
    expect((await a.status()).undeliveredScan).toMatchObject({
      deviations: expect.any(Number),
      reason: expect.stringMatching(/ECONNRESET|EPIPE/),
    });
    expect((await c.reports()).filter((r) => r.kind === 'scan')).toEqual([]);
    // The honest host's scan is small: it goes through the same proxy, and the host is clean.
    await until(
      async () => (await c.host('fedcba9876543210fedcba9876543210'))?.host.state === 'clean',
      () => `honest host clean\n${honest.log.slice(-2000)}`,
      30_000,
      200,
    );
    expect(readdirSync(honest.rejectedDir())).toEqual([]);
  }, 120_000);

  it('refuses http:// to a controller that is not on loopback, naming the key; allowInsecure lets it', async () => {
    const c = await publishedController(baked, controllers);
    const a = host(c, { controllerUrl: 'http://203.0.113.10:8443' });
    const r = dw(['agent', '--config', a.configFile, '--once']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/controller\.url: plain http:\/\/ to 203\.0\.113\.10.*controller\.allowInsecure: true/);
    expect(readdirSync(a.dir)).not.toContain('state');
    // Explicitly allowed, the agent starts (and finds nothing there to talk to).
    writeFileSync(
      a.configFile,
      stringify({
        ...a.configObject(),
        controller: { url: 'http://203.0.113.10:8443', enrollmentTokenFile: a.tokenFile, allowInsecure: true },
      }),
    );
    const status = dw(['agent', 'status', '--config', a.configFile]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).controller).toMatchObject({ url: 'http://203.0.113.10:8443', reachable: false });
  }, 60_000);
});
