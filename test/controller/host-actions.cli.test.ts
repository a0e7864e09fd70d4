/**
 * @module `driftwarden hosts reset|forget|recheck HOST` as a person runs it: the built CLI against a
 * controller over real HTTP; a hostname that names one host works where an id does, an ambiguous one
 * is refused, and a viewer is refused with exit 2.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControllerConfigSchema } from '../../controller/config.js';
import { createToken } from '../../controller/routes/tokens.js';
import { startController, type RunningController } from '../../controller/server.js';
import { tempDir } from '../helpers/tmp.js';
import { FakeClock, silentLog } from './harness.js';
import { addHost } from './scheduler/fixtures.js';
import { BIN, ensureBuilt } from '../helpers/built-cli.js';

let ctl: RunningController;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  expect(ensureBuilt()).toEqual([]);
  const config = ControllerConfigSchema.parse({
    listen: '127.0.0.1:0',
    store: `sqlite:${join(tempDir('dw-cli-hosts-'), 'controller.db')}`,
    scheduler: { interval: '1h' },
  });
  ctl = await startController(config, { log: silentLog });
  const clock = new FakeClock(Date.now());
  await addHost(ctl.store, clock, 'web-1', { hostname: 'web-1.example.internal' });
  await addHost(ctl.store, clock, 'web-2', { hostname: 'twin.example.internal' });
  await addHost(ctl.store, clock, 'web-3', { hostname: 'twin.example.internal' });
  await ctl.store.transaction(async (tx) => {
    for (const role of ['viewer', 'operator'] as const)
      tokens[role] = (await createToken(tx, { name: role, role }, 'cli:root', new Date())).secret;
  });
}, 180_000);

afterAll(async () => {
  await ctl?.close();
});

const dw = (role: string, ...args: string[]) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'hosts', ...args],
      {
        encoding: 'utf8',
        env: {
          ...process.env,
          DRIFTWARDEN_URL: ctl.url,
          DRIFTWARDEN_TOKEN: tokens[role],
          DRIFTWARDEN_LOG_LEVEL: 'error',
        },
      },
      (err, stdout, stderr) =>
        resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

describe('driftwarden hosts reset|forget|recheck', () => {
  it('a viewer is refused with exit 2 and nothing changes', async () => {
    const r = await dw('viewer', 'recheck', 'web-1');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/403.*needs role operator/);
    expect((await ctl.store.getHost('web-1'))?.scanRequestedAt).toBeNull();
  }, 60_000);

  it('recheck by hostname, reset by id, forget; the list still works beside them', async () => {
    const recheck = await dw('operator', 'recheck', 'web-1.example.internal', '--reason', 'INC-4');
    expect(recheck.status, recheck.stderr).toBe(0);
    expect(recheck.stdout).toMatch(/^host web-1: scan requested \(\d{4}-.*\); its next heartbeat asks for it\n$/);
    expect((await ctl.store.getHost('web-1'))?.scanRequestedAt).not.toBeNull();

    const reset = await dw('operator', 'reset', 'web-1', '--json');
    expect(reset.status, reset.stderr).toBe(0);
    expect(JSON.parse(reset.stdout)).toMatchObject({ hostId: 'web-1', lifecycle: 'reset-pending' });

    const forget = await dw('operator', 'forget', 'web-1');
    expect(forget.status, forget.stderr).toBe(0);
    expect(forget.stdout).toMatch(/^host web-1 forgotten at \d{4}-/);
    const list = await dw('viewer', '--json');
    expect(list.status, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).hosts.map((h: { id: string }) => h.id)).toEqual(['web-2', 'web-3']);
    const audit = (await ctl.store.listAudit({ limit: 100 }))
      .filter((a) => a.action.startsWith('host.'))
      .map((a) => [a.action, a.target]);
    expect(audit).toEqual([
      ['host.recheck', 'web-1'],
      ['host.reset', 'web-1'],
      ['host.forget', 'web-1'],
    ]);
  }, 60_000);

  it('an ambiguous or unknown hostname is refused, never guessed', async () => {
    const twin = await dw('operator', 'recheck', 'twin.example.internal');
    expect(twin.status).toBe(2);
    expect(twin.stderr).toMatch(/hostname twin.example.internal names 2 hosts \(web-2, web-3\); give the host id/);
    const none = await dw('operator', 'reset', 'nobody.example.internal');
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(
      /host nobody.example.internal not found \(no host id, hostname or id prefix matches it\)/,
    );
    expect((await ctl.store.getHost('web-2'))?.scanRequestedAt).toBeNull();
  }, 60_000);
});
