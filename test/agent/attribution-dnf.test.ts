/**
 * @module Attribution on an rpm host with dnf's history (test/fixtures/attribution/fedora): package
 * deviations get the dnf transaction that made them, with its command line and the person who ran it;
 * what dnf's history does not account for falls back to rpm's install times, or gets nothing.
 */
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { attributeDeviations } from '../../agent/attribution.js';
import type { ExecFn } from '../../agent/exec.js';
import { silentLogger } from '../../agent/log.js';
import { RPM_INSTALLTIME_FORMAT } from '../../agent/parsers/rpm-installtime.js';
import { HostRoot } from '../../agent/root.js';
import { AttributionSchema, type Attribution, type Deviation } from '../../shared/schema/deviation.js';
import { buildSqliteFromFile } from '../helpers/sqlite-fixture.js';
import { FIXTURES, tempDir } from '../helpers/tmp.js';

const FEDORA = join(FIXTURES, 'attribution/fedora');
/** The image was baked on 2024-02-01; dnf's first transaction (the bake's own) came before. */
const SINCE = '2024-02-01T00:00:00Z';

/** The fixture root with var/lib/dnf/history.sqlite built from its SQL, and an rpm database to find. */
function fedoraRoot(): string {
  const dir = tempDir();
  cpSync(FEDORA, dir, { recursive: true });
  buildSqliteFromFile(join(dir, 'var/lib/dnf/history.sqlite'), join(dir, 'var/lib/dnf/history.sql'));
  rmSync(join(dir, 'var/lib/dnf/history.sql'));
  return dir;
}

const rpmItem = (name: string, arch: string, version: string) => ({
  manager: 'rpm',
  name,
  arch,
  version,
  state: 'installed',
});

function dev(
  change: Deviation['change'],
  name: string,
  before: string | null,
  after: string | null,
  arch = 'x86_64',
): Deviation {
  return {
    collector: 'packages',
    key: `${name}:${arch}`,
    change,
    expected: before === null ? null : rpmItem(name, arch, before),
    actual: after === null ? null : rpmItem(name, arch, after),
    ...(change === 'modified' ? { fields: ['version'] } : {}),
    severity: 'high',
  };
}

/** rpm as the fallback sees it: no database here, so it must not run unless a test gives one. */
const noRpm: ExecFn = async (file) => {
  throw new Error(`${file} should not run: there is no rpm database in this root`);
};

async function attribute(
  dir: string,
  devs: Deviation[],
  exec: ExecFn = noRpm,
): Promise<Map<string, Attribution | undefined>> {
  const out = await attributeDeviations({ root: new HostRoot(dir), exec, log: silentLogger, since: SINCE }, devs);
  for (const d of out) if (d.attribution) AttributionSchema.parse(d.attribution);
  return new Map(out.map((d) => [d.key, d.attribution]));
}

describe('package deviations on an rpm host with dnf history', () => {
  it('credits an upgrade, an install and a removal to their dnf transactions, with the command and who ran it', async () => {
    const a = await attribute(fedoraRoot(), [
      dev('modified', 'openssl-libs', '1:3.1.1-2.fc39', '1:3.1.1-4.fc39'),
      dev('added', 'strace', null, '6.7-1.fc39'),
      dev('removed', 'telnet', '1:0.17-88.fc39', null),
    ]);
    expect(a.get('openssl-libs:x86_64')).toEqual({
      source: 'dnf-history',
      at: '2024-03-01T09:00:00+00:00',
      action: 'upgrade',
      package: 'openssl-libs:x86_64',
      fromVersion: '1:3.1.1-2.fc39',
      toVersion: '1:3.1.1-4.fc39',
      commandLine: 'upgrade openssl-libs',
      user: 'alice (1000)',
    });
    expect(a.get('strace:x86_64')).toEqual({
      source: 'dnf-history',
      at: '2024-03-02T10:00:00+00:00',
      action: 'install',
      package: 'strace:x86_64',
      toVersion: '6.7-1.fc39',
      commandLine: 'install strace @admin-tools',
      user: 'bob (1001)',
    });
    expect(a.get('telnet:x86_64')).toEqual({
      source: 'dnf-history',
      at: '2024-03-03T10:00:00+00:00',
      action: 'remove',
      package: 'telnet:x86_64',
      fromVersion: '1:0.17-88.fc39',
      commandLine: 'remove telnet',
      user: 'alice (1000)',
    });
  });

  it('names a uid that /etc/passwd does not know by its number, and takes an explicit epoch 0 as none', async () => {
    const a = await attribute(fedoraRoot(), [dev('modified', 'less', '633-2.fc39', '0:608-8.fc39')]);
    expect(a.get('less:x86_64')).toMatchObject({
      action: 'downgrade',
      fromVersion: '633-2.fc39',
      toVersion: '608-8.fc39',
      user: '(1234)',
      commandLine: 'downgrade less',
    });
  });

  it('credits nothing that the latest transaction does not account for: a failed install, another version, a package still there, the bake', async () => {
    const a = await attribute(fedoraRoot(), [
      // dnf's nmap install failed: the nmap on the host came from elsewhere (rpm -i).
      dev('added', 'nmap', null, '2:7.93-1.fc39'),
      // openssl-libs at a version dnf never installed: someone rebuilt or forced it.
      dev('modified', 'openssl-libs', '1:3.1.1-2.fc39', '1:3.1.1-9.fc39'),
      // dnf removed telnet, yet it is installed: put back by hand.
      dev('modified', 'telnet', '1:0.17-88.fc39', '1:0.17-90.fc39'),
    ]);
    expect([...a.values()]).toEqual([undefined, undefined, undefined]);
  });

  it('falls back to rpm install times for what dnf history does not explain', async () => {
    const dir = fedoraRoot();
    mkdirSync(join(dir, 'var/lib/rpm'), { recursive: true });
    writeFileSync(join(dir, 'var/lib/rpm/rpmdb.sqlite'), '');
    const calls: (readonly string[])[] = [];
    const exec: ExecFn = async (_file, args) => {
      calls.push(args);
      return {
        stdout: `nmap\tx86_64\t2\t7.93\t1.fc39\t${Date.parse('2024-03-06T00:00:00Z') / 1000}\n`,
        stderr: '',
        code: 0,
      };
    };
    const a = await attribute(
      dir,
      [dev('added', 'nmap', null, '2:7.93-1.fc39'), dev('added', 'strace', null, '6.7-1.fc39')],
      exec,
    );
    expect(a.get('nmap:x86_64')).toEqual({
      source: 'rpm',
      at: '2024-03-06T00:00:00+00:00',
      action: 'install',
      package: 'nmap:x86_64',
      toVersion: '2:7.93-1.fc39',
    });
    expect(a.get('strace:x86_64')).toMatchObject({ source: 'dnf-history' });
    // Only the package dnf did not explain was asked of rpm.
    expect(calls).toEqual([
      ['--dbpath', join(dir, 'var/lib/rpm'), '-q', '--queryformat', RPM_INSTALLTIME_FORMAT, 'nmap.x86_64'],
    ]);
  });

  it('costs only attributions when the history is damaged or missing', async () => {
    const dir = fedoraRoot();
    writeFileSync(join(dir, 'var/lib/dnf/history.sqlite'), 'SQLite format 3\0garbage');
    expect([...(await attribute(dir, [dev('added', 'strace', null, '6.7-1.fc39')])).values()]).toEqual([undefined]);
    rmSync(join(dir, 'var/lib/dnf'), { recursive: true });
    expect([...(await attribute(dir, [dev('added', 'strace', null, '6.7-1.fc39')])).values()]).toEqual([undefined]);
  });
});
