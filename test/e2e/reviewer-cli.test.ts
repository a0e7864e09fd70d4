/**
 * @module The CLI as a new reviewer meets it: the built `driftwarden` against a real controller over
 * HTTP. `--help` lists every command and `help COMMAND` works for each; ids are taken as any unique
 * prefix (the 8-character ids the tables print) and hostnames wherever a host id goes, with ambiguity
 * and unknowns refused by name (exit 2); `findings` and `exemptions`; `report HOST` with expected ->
 * actual and who made the change; `audit list` newest first and readable. Needs `npm run build`.
 */
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import { COMMANDS } from '../../shared/commands.js';
import type { Attribution } from '../../shared/schema/deviation.js';
import { Harness, HOUR } from '../controller/harness.js';
import { BIN, ensureBuilt } from '../helpers/built-cli.js';

/** Async, so the controller in this process keeps answering while the CLI runs. */
function cli(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
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

const UPGRADE: Attribution = {
  source: 'apt-history',
  at: '2024-03-01T00:47:16+00:00',
  action: 'upgrade',
  package: 'openssl',
  commandLine: 'apt-get install --only-upgrade openssl',
  user: 'alice (1000)',
};

describe('driftwarden help', () => {
  beforeAll(() => {
    expect(ensureBuilt()).toEqual([]);
  }, 180_000);

  it('--help (and no arguments, and `help`) lists every command with its summary, exit 0', async () => {
    for (const args of [['--help'], [], ['help'], ['-h']]) {
      const r = await cli(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      for (const c of COMMANDS)
        expect(r.stdout).toMatch(
          new RegExp(`^  ${c.name} +${c.summary.slice(0, 20).replace(/[()[\]|.*+?^$\\]/g, '\\$&')}`, 'm'),
        );
      expect(r.stdout).toMatch(/^  help \[command\]/m);
      expect(r.stdout).toMatch(/Exit codes: 0 success; 1 drift found/);
    }
    for (const name of ['hosts', 'report', 'exempt', 'replacements', 'audit', 'token', 'findings', 'exemptions'])
      expect(COMMANDS.map((c) => c.name)).toContain(name);
  }, 240_000);

  it("`help COMMAND` is that command's own help for every command, and `help SUB` goes one level down", async () => {
    const results = await Promise.all(COMMANDS.map((c) => cli(['help', c.name])));
    results.forEach((r, i) => {
      expect(r.status, `${COMMANDS[i]!.name}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`Usage: driftwarden ${COMMANDS[i]!.name} `);
    });
    const sub = await cli(['help', 'replacements', 'approve']);
    expect(sub.status).toBe(0);
    expect(sub.stdout).toContain('Usage: driftwarden replacements approve [options] <id>');
    expect(sub.stdout).toContain('unique id prefix');
    const none = await cli(['help', 'frobnicate']);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('help: no command "frobnicate"');
  }, 120_000);
});

describe('driftwarden against a controller: prefixes, hostnames, findings, exemptions, report, audit', () => {
  let h: Harness;
  let viewer: Record<string, string>;
  let operator: Record<string, string>;

  beforeAll(async () => {
    expect(ensureBuilt()).toEqual([]);
    h = await Harness.start(await openStore('sqlite::memory:'));
    const sims = [];
    for (const id of ['a1b2c3d4e5f60718293a4b5c6d7e8f90', 'a1b2c3d4ffff0718293a4b5c6d7e8f90', 'db-01'])
      sims.push(await h.enroll(id, { group: id === 'db-01' ? 'db' : 'web' }));
    for (const s of sims) await s.scan();
    h.clock.advance(HOUR);
    const web = sims[0]!.upgrade('openssl', '3.0.13-1');
    await web.scan({
      deviations: web.deviations().map((d) => (d.key === 'openssl:amd64' ? { ...d, attribution: UPGRADE } : d)),
    });
    await sims[2]!.write('/home/alice/notes.txt', 'x').scan();
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
    viewer = { DRIFTWARDEN_URL: url, DRIFTWARDEN_TOKEN: h.tokens.viewer };
    operator = { DRIFTWARDEN_URL: url, DRIFTWARDEN_TOKEN: h.tokens.operator };
  }, 180_000);
  afterAll(async () => {
    await h?.close();
  }, 240_000);

  it('report HOST by hostname or id prefix shows expected -> actual and who made the change', async () => {
    for (const who of ['a1b2c3d4e5f60718293a4b5c6d7e8f90.example.internal', 'a1b2c3d4e5']) {
      const r = await cli(['report', who], viewer);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^host a1b2c3d4e5f60718293a4b5c6d7e8f90 /);
      expect(r.stdout).toMatch(/packages modified openssl:amd64\n\s+version: \S+ -> 3\.0\.13-1\n/);
      expect(r.stdout).toContain(
        'made by: upgraded by "apt-get install --only-upgrade openssl", run by alice (1000) at 2024-03-01 00:47:16 +00:00 (apt history)',
      );
    }
    const plain = await cli(['report', 'db-01'], viewer);
    expect(plain.stdout).toMatch(/files added \/home\/alice\/notes\.txt\n\s+actual: type=file .*sha256=[0-9a-f]{16}…/);
    expect(plain.stdout).toContain('made by: no record on the host');
  }, 240_000);

  it('an ambiguous prefix lists the candidates, an unknown one is DW_ERR_NOT_FOUND by name; both exit 2', async () => {
    const amb = await cli(['report', 'a1b2c3d4'], viewer);
    expect(amb.status).toBe(2);
    expect(amb.stderr).toMatch(
      /host a1b2c3d4 is ambiguous: it names a1b2c3d4e5f60718293a4b5c6d7e8f90 \(.*\), a1b2c3d4ffff0718293a4b5c6d7e8f90 \(.*\); give more of the id/,
    ); // DW_ERR_AMBIGUOUS
    const none = await cli(['report', 'zz-nobody'], viewer);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('host zz-nobody not found'); // DW_ERR_NOT_FOUND
    const drift = await cli(['report', 'host', 'zz-nobody', '--format', 'csv'], viewer);
    expect(drift.status).toBe(2);
    expect(drift.stderr).toContain('host zz-nobody not found');
  }, 240_000);

  it('findings: a table with the change and who made it, filtered by host (hostname), severity and state, sorted', async () => {
    const all = await cli(['findings'], viewer);
    expect(all.status, all.stderr).toBe(0);
    expect(all.stdout.split('\n')[0]).toMatch(
      /^HOSTS\s+SEVERITY\s+POLICY\s+COLLECTOR\s+CHANGE\s+KEY\s+FIRST SEEN\s+EXPECTED -> ACTUAL\s+MADE BY$/,
    );
    expect(all.stdout).toMatch(
      /openssl:amd64 .* version: \S+ -> 3\.0\.13-1 .*upgraded by "apt-get install --only-upgrade openssl"/,
    );
    const onDb = await cli(['findings', '--host', 'db-01.example.internal'], viewer);
    expect(onDb.stdout).toContain('/home/alice/notes.txt');
    expect(onDb.stdout).not.toContain('openssl');
    const tainted = await cli(['findings', '--state', 'tainted', '--json'], viewer);
    expect(JSON.parse(tainted.stdout).findings.map((f: { key: string }) => f.key)).toEqual(['openssl:amd64']);
    const sorted = await cli(['findings', '--sort', 'severity', '--json'], viewer);
    expect(JSON.parse(sorted.stdout).findings.map((f: { key: string }) => f.key)).toEqual([
      '/home/alice/notes.txt',
      'openssl:amd64',
    ]);
    const searched = await cli(['findings', '-q', 'NOTES'], viewer);
    expect(searched.stdout).toContain('/home/alice/notes.txt');
    const bad = await cli(['findings', '--sort', 'colour'], viewer);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--sort: /);
  }, 240_000);

  it('exempt by hostname, exemptions lists it, and revoke takes the 8-character id it printed', async () => {
    const made = await cli(
      ['exempt', '--host', 'db-01.example.internal', '--key', '/home/alice/*', '--reason', 'ticket 42', '--for', '24h'],
      operator,
    );
    expect(made.status, made.stderr).toBe(0);
    const list = await cli(['exemptions'], viewer);
    expect(list.status, list.stderr).toBe(0);
    const row = list.stdout.split('\n').find((l) => l.includes('/home/alice/*'))!;
    expect(row).toMatch(
      /^[0-9a-f]{8}\s+host db-01\s+any\s+\/home\/alice\/\*\s+active\s+\S+\s+token:\S+\(operator\)\s+ticket 42$/,
    );
    const short = row.slice(0, 8);
    const revoked = await cli(['exemptions', 'revoke', short], operator);
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`^exemption ${short}[0-9a-f-]+ revoked at `));
    expect((await cli(['exemptions'], viewer)).stdout).toBe('no active exemptions\n');
    expect((await cli(['exemptions', '--all'], viewer)).stdout).toMatch(/revoked by token:\S+\(operator\)/);
    const gone = await cli(['exemptions', 'revoke', 'ffffffff'], operator);
    expect(gone.status).toBe(2);
    expect(gone.stderr).toContain('exemption ffffffff not found');
  }, 240_000);

  it('replacements: request by hostname; approve and cancel take the printed 8-character id', async () => {
    const req = await cli(['replacements', 'request', 'db-01.example.internal', '--reason', 'rebuild'], operator);
    expect(req.status, req.stderr).toBe(0);
    const list = await cli(['replacements', 'list', '--host', 'db-01'], viewer);
    const short = list.stdout
      .split('\n')
      .find((l) => /\bdb-01\b/.test(l))!
      .slice(0, 8);
    expect(short).toMatch(/^[0-9a-f]{8}$/);
    const cancel = await cli(['replacements', 'cancel', short, '--reason', 'not needed'], operator);
    expect(cancel.status, cancel.stderr).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`^replacement ${short}[0-9a-f-]+ \\(host db-01\\) cancelled: cancelled`));
    const again = await cli(['replacements', 'approve', short], operator);
    expect(again.status).toBe(2); // found by its prefix, then refused: it is cancelled
    expect(again.stderr).toMatch(/is cancelled/);
  }, 240_000);

  it('audit list is newest first and readable by default; --json is the raw rows', async () => {
    const r = await cli(['audit', 'list', '--limit', '5'], viewer);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+TIME\s+ACTOR\s+ACTION\s+TARGET\s+DETAIL$/);
    const ids = lines
      .slice(1)
      .filter((l) => /^\d/.test(l))
      .map((l) => Number(l.split(/\s+/)[0]));
    expect(ids.length).toBeGreaterThan(1);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(r.stdout).not.toMatch(/\{"/);
    expect(r.stdout).toMatch(/replacement\.cancel\s+db-01\s+replacement=\S+ reason=not needed was=/);
    const raw = JSON.parse((await cli(['audit', 'list', '--limit', '5', '--json'], viewer)).stdout);
    expect(raw.audit.map((a: { id: number }) => a.id)).toEqual(ids);
    const older = await cli(['audit', 'list', '--before', String(ids.at(-1)), '--limit', '1', '--json'], viewer);
    expect(JSON.parse(older.stdout).audit[0].id).toBeLessThan(ids.at(-1)!);
  });
});
