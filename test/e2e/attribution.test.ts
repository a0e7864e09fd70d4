/**
 * @module The real CLI on a fixture host whose logs record an upgrade after the bake: `check` shows
 * who upgraded the package and the file it wrote, and gives a hand-edited file nothing.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../../shared/canonical.js';
import { applyDeviations } from '../../shared/diff.js';
import { CheckResultSchema } from '../../shared/schema/check.js';
import type { CollectorName } from '../../shared/schema/common.js';
import type { AnyItem } from '../../shared/schema/items.js';
import { ManifestSchema } from '../../shared/schema/manifest.js';
import { copyFixture, FIXTURES, tempDir } from '../helpers/tmp.js';

const BIN = fileURLToPath(new URL('../../bin/driftwarden.js', import.meta.url));

function dw(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'error' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The fixture host has no /etc/localtime, so its logs are in UTC, as glibc would write them. */
const utc = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

/** What `apt-get install --only-upgrade openssl`, run through sudo by alice, leaves on a host. */
function upgradeOpenssl(root: string): void {
  const at = Date.now() + 60_000; // after the manifest's createdAt, whatever the clock's resolution
  const status = join(root, 'var/lib/dpkg/status');
  writeFileSync(
    status,
    readFileSync(status, 'utf8').replace(
      /(Package: openssl\n(?:.+\n)*?)Version: 3\.0\.11-1~deb12u2/,
      '$1Version: 3.0.13-1~deb12u1',
    ),
  );
  const content = '#!/bin/sh\necho openssl 3.0.13\n';
  writeFileSync(join(root, 'usr/bin/openssl'), content, { mode: 0o755 });
  const md5 = createHash('md5').update(content).digest('hex');
  writeFileSync(
    join(root, 'var/lib/dpkg/info/openssl.md5sums'),
    readFileSync(join(root, 'var/lib/dpkg/info/openssl.md5sums'), 'utf8').replace(
      /^[0-9a-f]{32}(?=  usr\/bin\/openssl$)/m,
      md5,
    ),
  );
  appendFileSync(
    join(root, 'var/log/dpkg.log'),
    `${utc(at)} startup archives unpack\n${utc(at)} upgrade openssl:amd64 3.0.11-1~deb12u2 3.0.13-1~deb12u1\n${utc(at + 1000)} configure openssl:amd64 3.0.13-1~deb12u1 <none>\n`,
  );
  appendFileSync(
    join(root, 'var/log/apt/history.log'),
    `\nStart-Date: ${utc(at - 1000).replace(' ', '  ')}\nCommandline: apt-get install --only-upgrade openssl\nRequested-By: alice (1000)\nUpgrade: openssl:amd64 (3.0.11-1~deb12u2, 3.0.13-1~deb12u1)\nEnd-Date: ${utc(at + 2000).replace(' ', '  ')}\n`,
  );
}

describe('driftwarden check attributes deviations to package transactions', () => {
  let work: string;
  let base: string;
  let manifest: string;

  beforeAll(() => {
    work = tempDir();
    base = copyFixture(join(FIXTURES, 'hosts/web'));
    cpSync(join(FIXTURES, 'attribution/e2e'), base, { recursive: true });
    manifest = join(work, 'manifest.json');
    const built = dw('manifest', 'build', '--root', base, '--image-id', 'img-web-1', '--out', manifest);
    expect(built.stderr).toBe('');
    expect(built.code).toBe(0);
  });

  function drifted(): string {
    const root = copyFixture(base);
    upgradeOpenssl(root);
    // Owned by bash, which no transaction touched since the bake: a hand edit, and nothing else.
    writeFileSync(join(root, 'usr/bin/bash'), '#!/bin/sh\necho not really bash\n');
    return root;
  }

  it('shows the upgrade on the package and on the file it wrote, and nothing on the hand edit', () => {
    const r = dw('check', '--json', '--manifest', manifest, '--root', drifted());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const result = CheckResultSchema.parse(JSON.parse(r.stdout));
    const byKey = new Map(result.deviations.map((d) => [d.key, d]));
    expect([...byKey.keys()].sort()).toEqual(['/usr/bin/bash', '/usr/bin/openssl', 'openssl:amd64']);
    const upgrade = {
      source: 'apt-history',
      action: 'upgrade',
      package: 'openssl:amd64',
      fromVersion: '3.0.11-1~deb12u2',
      toVersion: '3.0.13-1~deb12u1',
      commandLine: 'apt-get install --only-upgrade openssl',
      user: 'alice (1000)',
    };
    expect(byKey.get('openssl:amd64')!.attribution).toEqual({
      ...upgrade,
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/),
    });
    expect(byKey.get('/usr/bin/openssl')!.attribution).toEqual({
      ...upgrade,
      at: byKey.get('openssl:amd64')!.attribution!.at,
      ownedBy: 'openssl',
    });
    expect(byKey.get('/usr/bin/bash')!.attribution).toBeUndefined();
  });

  it("keeps the report's digests true: attribution is beside the deviation, not part of the state", () => {
    const r = dw('check', '--json', '--manifest', manifest, '--root', drifted());
    const result = CheckResultSchema.parse(JSON.parse(r.stdout));
    const m = ManifestSchema.parse(JSON.parse(readFileSync(manifest, 'utf8')));
    for (const name of ['packages', 'files'] as CollectorName[]) {
      expect(digestOf(applyDeviations(name, m.sections[name]!.items as AnyItem[], result.deviations)), name).toBe(
        result.digests[name],
      );
    }
  });

  it('prints the attribution under the deviation for people', () => {
    const r = dw('check', '--manifest', manifest, '--root', drifted());
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /modified openssl:amd64 {2}\[high\]\n {6}version: 3\.0\.11-1~deb12u2 -> 3\.0\.13-1~deb12u1\n {6}upgraded by "apt-get install --only-upgrade openssl", run by alice \(1000\) at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+00:00 \(apt history\)\n/,
    );
    expect(r.stdout).toMatch(
      / {6}owned by openssl, upgraded 3\.0\.11-1~deb12u2 -> 3\.0\.13-1~deb12u1 by "apt-get install --only-upgrade openssl", run by alice \(1000\) at .* \(apt history\)\n/,
    );
    expect(r.stdout).not.toMatch(/usr\/bin\/bash.*\n(?: {6}.*\n)* {6}.*\(apt history\)/);
  });

  it('checks as before when the logs are gone', () => {
    const root = drifted();
    writeFileSync(join(root, 'var/log/dpkg.log'), '\u0000\u0001 not a log\n');
    writeFileSync(join(root, 'var/log/apt/history.log'), 'Start-Date: never\n');
    const r = dw('check', '--json', '--manifest', manifest, '--root', root);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const result = CheckResultSchema.parse(JSON.parse(r.stdout));
    expect(result.deviations.filter((d) => d.attribution)).toEqual([]);
    expect(result.summary.total).toBe(3);
  });
});
