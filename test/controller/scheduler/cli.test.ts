/**
 * @module `driftwarden replacements …` as a person runs it: the built CLI against a controller over real
 * HTTP, in dry-run: the queue with its decisions, the groups with breaker and budgets, a request by
 * hand, a pause and a resume, and the refusal a viewer gets.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControllerConfigSchema } from '../../../controller/config.js';
import { createToken } from '../../../controller/routes/tokens.js';
import { startController, type RunningController } from '../../../controller/server.js';
import { tempDir } from '../../helpers/tmp.js';
import { FakeClock, silentLog } from '../harness.js';
import { addHost } from './fixtures.js';
import { BIN, ensureBuilt } from '../../helpers/built-cli.js';

let ctl: RunningController;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  expect(ensureBuilt()).toEqual([]);
  const config = ControllerConfigSchema.parse({
    listen: '127.0.0.1:0',
    store: `sqlite:${join(tempDir('dw-cli-'), 'controller.db')}`,
    scheduler: { interval: '1h', budgets: [{ group: '*', maxUnavailable: 1 }], breaker: { taintedShare: 0.9 } },
  });
  ctl = await startController(config, { log: silentLog });
  const clock = new FakeClock(Date.now());
  for (let i = 0; i < 6; i++)
    await addHost(ctl.store, clock, `web-${i}`, {
      group: 'web-asg',
      state: i < 2 ? 'tainted' : 'clean',
      taintedAgoMs: (10 - i) * 60_000,
    });
  await ctl.store.transaction(async (tx) => {
    for (const role of ['viewer', 'operator', 'admin'] as const)
      tokens[role] = (await createToken(tx, { name: role, role }, 'cli:root', new Date())).secret;
  });
}, 180_000);

afterAll(async () => {
  await ctl?.close();
});

/** Asynchronously: the controller answering it runs in this process. */
const dw = (role: string, ...args: string[]) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'replacements', ...args],
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

describe('driftwarden replacements', () => {
  it('tick, list and groups show what dry-run would do and why', async () => {
    const t = await dw('admin', 'tick');
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toBe('queued 2, scheduled 0, wouldReplace 1, started 0, completed 0, failed 0, tripped -\n');
    const list = await dw('viewer', 'list');
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(
      /^scheduler mode: dry-run\nID +HOST +GROUP +SEVERITY +STATE +DECISION +ATTEMPTS +REPLACED BY +WHY\n/,
    );
    expect(list.stdout).toMatch(/web-0\.example\.internal +web-asg +high +queued +would-replace +0 +- +within budgets/);
    expect(list.stdout).toMatch(
      /web-1\.example\.internal +web-asg +high +queued +waiting +0 +- +budget "\*": maxUnavailable 1, 0 unavailable/,
    );
    const json = JSON.parse((await dw('viewer', 'list', '--json')).stdout);
    expect(json.replacements.map((r: { hostId: string }) => r.hostId)).toEqual(['web-0', 'web-1']);
    const groups = await dw('viewer', 'groups');
    expect(groups.stdout).toMatch(/web-asg +dry-run +closed +6 +0 +0 +2 +1/);
  }, 120_000);

  it('request, pause and resume as an operator; a viewer is refused with exit 2', async () => {
    const refused = await dw('viewer', 'request', 'web-5', '--reason', 'x');
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/403.*needs role operator/);
    const r = await dw('operator', 'request', 'web-5', '--reason', 'INC-9 suspected compromise');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^replacement [0-9a-f-]{36} \(host web-5\) queued: queued\n$/);
    expect((await dw('operator', 'pause', 'web-asg', '--reason', 'image rollout')).stdout).toMatch(
      /^group web-asg paused: image rollout \(paused by token:[0-9a-f]+\(operator\)\)\n$/,
    );
    expect((await dw('viewer', 'groups')).stdout).toMatch(/web-asg +dry-run +PAUSED: image rollout/);
    const resumed = await dw('operator', 'resume', 'web-asg');
    expect(resumed.stdout).toMatch(/^group web-asg resumed at \d{4}-/);
    const again = await dw('operator', 'resume', 'web-asg');
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/409.*group web-asg is not paused/);
  }, 120_000);
});
