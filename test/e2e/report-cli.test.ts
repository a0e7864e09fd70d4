/**
 * @module The built CLI against a real controller: `driftwarden report host|image|fleet --format …`
 * (and `report HOST` as before), and `driftwarden audit verify --config` reading the store directly,
 * before and after a record is changed behind the controller's back. Needs `npm run build`.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import { Harness, HOUR } from '../controller/harness.js';
import { tempDir } from '../helpers/tmp.js';

const BIN = fileURLToPath(new URL('../../bin/driftwarden.js', import.meta.url));

/** Async, so the controller in this process keeps answering while the CLI runs. */
function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'error', ...env },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('driftwarden report and audit verify', () => {
  let h: Harness;
  let dir: string;
  let env: Record<string, string>;
  let config: string;

  beforeAll(async () => {
    dir = tempDir('dw-report-cli-');
    const db = join(dir, 'controller.db');
    h = await Harness.start(await openStore(`sqlite:${db}`));
    const web1 = await h.enroll('web-1', { group: 'web' });
    const web2 = await h.enroll('web-2', { group: 'web' });
    await web1.scan();
    await web2.scan();
    h.clock.advance(HOUR);
    await web1.upgrade('openssl', '3.0.13-1').scan();
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    env = {
      DRIFTWARDEN_URL: `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`,
      DRIFTWARDEN_TOKEN: h.tokens.viewer,
    };
    config = join(dir, 'controller.yaml');
    writeFileSync(config, `store: sqlite:${db}\n`);
  });
  afterAll(async () => {
    await h.close();
  });

  it('writes fleet, image and host reports in each format', async () => {
    const csv = await cli(['report', 'fleet', '--format', 'csv', '--out', join(dir, 'fleet.csv')], env);
    expect(csv.status, csv.stderr).toBe(0);
    const lines = readFileSync(join(dir, 'fleet.csv'), 'utf8').trim().split('\r\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(
      /^web-1,web-1\.example\.internal,ami-web-1,web,tainted,packages,openssl:amd64,modified,high,taint,/,
    );
    const json = await cli(['report', 'image', 'ami-web-1', '--format', 'json'], env);
    expect(JSON.parse(json.stdout)).toMatchObject({
      scope: { kind: 'image', id: 'ami-web-1' },
      summary: { hosts: 2, deviations: 1 },
    });
    const jsonl = await cli(['report', 'fleet', '--format', 'jsonl'], env);
    expect(
      jsonl.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([expect.objectContaining({ hostId: 'web-1', key: 'openssl:amd64', action: 'taint' })]);
    const html = await cli(['report', 'host', 'web-1', '--format', 'html'], env);
    expect(html.stdout).toMatch(/<h1>Drift report: host web-1<\/h1>/);
    const legacy = await cli(['report', 'web-1'], env);
    expect(legacy.stdout).toMatch(
      /^host web-1 \(web-1\.example\.internal\), image ami-web-1, group web\nstate tainted/,
    );
    const bad = await cli(['report', 'fleet', '--format', 'pdf'], env);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--format: expected one of json, csv, html/);
  });

  it('audit verify passes on the store as written, and fails (exit 1) naming the row changed behind its back', async () => {
    const ok = await cli(['audit', 'verify', '--config', config]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^audit: ok, \d+ rows, head [0-9a-f]{64}\nevents: ok, \d+ rows, head [0-9a-f]{64}\n$/);
    const victim = (await h.store.listAudit({ limit: 100 })).find((a) => a.action === 'host.enroll')!;
    const raw = new Database(join(dir, 'controller.db'));
    raw.exec(
      `drop trigger audit_no_update; update audit set detail = '{"imageId":"ami-other","group":"web"}' where id = ${victim.id}`,
    );
    raw.close();
    const broken = await cli(['audit', 'verify', '--config', config, '--json']);
    expect(broken.status).toBe(1);
    expect(JSON.parse(broken.stdout)).toMatchObject({
      ok: false,
      chains: [
        { chain: 'audit', ok: false, broken: { id: victim.id, problem: 'hash' } },
        { chain: 'events', ok: true },
      ],
    });
  });
  // Last: it enrolls another host, which the fleet report above does not expect.
  it('hosts and report HOST show the pinned cloud identity', async () => {
    const identity = {
      kind: 'aws',
      instanceId: 'i-0123456789abcdef0',
      accountId: '123456789012',
      region: 'eu-west-1',
      availabilityZone: 'eu-west-1a',
      imageId: 'ami-0abcdef1234567890',
    };
    const r = await h.req('POST', '/api/v1/enroll', {
      token: h.tokens.agent,
      body: { hostId: 'web-9', imageId: 'ami-web-1', identity },
    });
    expect(r.status, r.text).toBe(201);
    const list = await cli(['hosts'], env);
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^HOST\s.*\sIDENTITY$/m);
    expect(list.stdout).toMatch(/^web-9\s.*aws:123456789012\/eu-west-1\/i-0123456789abcdef0$/m);
    const one = await cli(['report', 'web-9'], env);
    expect(one.status, one.stderr).toBe(0);
    expect(one.stdout).toContain(
      'identity aws instance i-0123456789abcdef0 (account 123456789012, eu-west-1a, ami-0abcdef1234567890)',
    );
    expect((await cli(['report', 'web-1'], env)).stdout).toContain('identity none pinned');
  });
});
