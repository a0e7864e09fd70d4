/**
 * A busy controller, end to end: the real agent (a child process) behind a proxy that answers its
 * first reports 503 with Retry-After, as an overloaded controller does. The agent sends nothing more,
 * not even the heartbeats that fall due meanwhile, until Retry-After (plus its jitter, at most half
 * again) has passed, keeps every report spooled, and delivers them all once the controller takes them.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import {
  agentFor,
  bake,
  killAll,
  publishedController,
  until,
  type Baked,
  type Controller,
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

/** Forwards to `target`, except that the first `busy` report posts get 503 Retry-After: `seconds`; every report post's time is kept. */
async function busyProxy(target: string, busy: number, seconds: number) {
  const to = new URL(target);
  const reportsAt: number[] = [];
  const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/api/v1/reports') {
      reportsAt.push(Date.now());
      if (reportsAt.length <= busy) {
        req.resume();
        res
          .writeHead(503, { 'content-type': 'application/json', 'retry-after': String(seconds) })
          .end(JSON.stringify({ error: 'DW_ERR_UNAVAILABLE', message: 'the controller is busy' }));
        return;
      }
    }
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
  return { url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, reportsAt };
}

describe('a busy controller (503 with Retry-After)', () => {
  it('holds every send for Retry-After plus at most half again, keeps the reports spooled, then delivers them all', async () => {
    const c = await publishedController(baked, controllers);
    const proxy = await busyProxy(c.url, 2, 2);
    const a = agentFor(baked, c, { watch: null, heartbeat: '200ms', controllerUrl: proxy.url });
    a.start();
    await until(
      async () => (await c.host())?.host.state === 'clean',
      () => `host clean\n${a.log.slice(-2000)}`,
      60_000,
      100,
    );
    const [first, second, third] = proxy.reportsAt;
    // Heartbeats fell due every 200 ms meanwhile: none was sent through the hold.
    expect(second! - first!).toBeGreaterThanOrEqual(2000);
    expect(second! - first!).toBeLessThan(3000 + 1000);
    expect(third! - second!).toBeGreaterThanOrEqual(2000);
    expect(third! - second!).toBeLessThan(3000 + 1000);
    expect(a.log).toMatch(/controller busy: reports stay spooled until its Retry-After/);
    // Everything spooled during the hold gets through afterwards, in order.
    await until(
      () => a.spooled().length === 0,
      () => `spool empty\n${a.log.slice(-2000)}`,
      30_000,
      100,
    );
    const host = await c.host();
    expect(host!.host.lastSeq).toBeGreaterThan(3);
  }, 120_000);
});
