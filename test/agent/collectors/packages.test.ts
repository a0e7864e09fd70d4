/** @module The packages collector against fixture roots: which databases it finds, and how it degrades. */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { packages } from '../../../agent/collectors/packages.js';
import type { CollectContext } from '../../../agent/collectors/types.js';
import { execProgram, type ExecFn } from '../../../agent/exec.js';
import { silentLogger } from '../../../agent/log.js';
import { RPM_QUERY_FORMAT } from '../../../agent/parsers/rpm.js';
import { collectorDef } from '../../../shared/collectors.js';
import { HostRoot } from '../../../agent/root.js';
import { DwError, DwParseError } from '../../../shared/errors.js';
import { PackageItemSchema } from '../../../shared/schema/items.js';
import { defaultRules } from '../../../shared/schema/rules.js';

const FIXTURES = join(import.meta.dirname, '../../fixtures/packages');
/** Real package databases live in the sibling checkout ../shared (see its fixtures/README.md), not in this repo. */
const SHARED = join(import.meta.dirname, '../../../../shared/fixtures');

const noExec: ExecFn = async (file) => {
  throw new Error(`no program should run here, but ${file} did`);
};

function context(dir: string, exec: ExecFn = noExec): CollectContext {
  return { root: new HostRoot(dir), rules: defaultRules(), exec, log: silentLogger };
}

/** An exec that answers like rpm with the given output and remembers how it was called. */
function fakeRpm(stdout: string, code = 0, stderr = ''): ExecFn & { calls: [string, readonly string[]][] } {
  const calls: [string, readonly string[]][] = [];
  const fn = async (file: string, args: readonly string[]) => {
    calls.push([file, args]);
    return { stdout, stderr, code };
  };
  return Object.assign(fn, { calls });
}

const temps: string[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) rmSync(t, { recursive: true, force: true });
});

function tempRoot(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-packages-'));
  temps.push(dir);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

function link(root: string, path: string, target: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  symlinkSync(target, join(root, path));
}

const installed = (name: string, arch: string, version: string) =>
  `Package: ${name}\nStatus: install ok installed\nArchitecture: ${arch}\nVersion: ${version}\n`;
const rpmRow = (...f: string[]) => `${f.join('\t')}\n`;

function rpmAvailable(): boolean {
  try {
    execFileSync('rpm', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('packages collector declaration', () => {
  it('is named for its section and says what it reads', () => {
    expect(packages.name).toBe('packages');
    expect(collectorDef('packages')!.reads).toContain('/var/lib/dpkg/status');
    expect(collectorDef('packages')!.reads.some((r) => r.includes('/usr/lib/sysimage/rpm'))).toBe(true);
    expect(collectorDef('packages')!.reads).toContain('/lib/apk/db/installed');
  });
});

describe('packages collector on dpkg roots', () => {
  it('reads a Debian root from its status file, sorted and schema-valid, without running anything', async () => {
    const { items, warnings } = await packages.collect(context(join(FIXTURES, 'debian')));
    expect(warnings).toEqual([]);
    for (const i of items) PackageItemSchema.parse(i);
    expect(items.map((i) => i.key)).toEqual([
      'adduser:all',
      'base-files:amd64',
      'curl:amd64',
      'libc6:amd64',
      'libc6:i386',
      'man-db:amd64',
      'nginx-common:all',
      'openssh-server:amd64',
      'postgresql-15:amd64',
      'tzdata:all',
    ]);
    expect(items.every((i) => i.manager === 'dpkg')).toBe(true);
  });

  it('reads a distroless root from status.d, with or without Status fields, ignoring md5sums files', async () => {
    const { items, warnings } = await packages.collect(context(join(FIXTURES, 'distroless')));
    expect(warnings).toEqual([]);
    expect(items.map((i) => [i.key, i.version, i.state])).toEqual([
      ['base-files:amd64', '12.4+deb12u11', 'installed'],
      ['libc6:amd64', '2.36-9+deb12u14', 'installed'],
      ['netbase:all', '6.4', 'installed'],
      ['tzdata:all', '2025b-0+deb12u2', 'installed'],
    ]);
  });

  it('finds nothing, and complains about nothing, in a bare root', async () => {
    expect(await packages.collect(context(join(FIXTURES, 'empty')))).toEqual({ items: [], warnings: [] });
  });

  it('skips one unparseable status.d file with a warning and keeps the rest', async () => {
    const dir = tempRoot();
    cpSync(join(FIXTURES, 'distroless'), dir, { recursive: true });
    writeFileSync(join(dir, 'var/lib/dpkg/status.d/broken'), 'Version: 1\n');
    mkdirSync(join(dir, 'var/lib/dpkg/status.d/subdir'));
    const { items, warnings } = await packages.collect(context(dir));
    expect(items).toHaveLength(4);
    expect(warnings).toEqual([
      '/var/lib/dpkg/status.d/broken:1: stanza has no Package field; skipped',
      '/var/lib/dpkg/status.d/subdir is not a regular file; skipped',
    ]);
  });

  it('keeps the status file when a status.d file disagrees with it, and says so', async () => {
    const dir = tempRoot({
      'var/lib/dpkg/status': installed('libc6', 'amd64', '2.36-9'),
      'var/lib/dpkg/status.d/libc6': installed('libc6', 'amd64', '2.36-1'),
      'var/lib/dpkg/status.d/zlib1g': installed('zlib1g', 'amd64', '1:1.2.13'),
    });
    const { items, warnings } = await packages.collect(context(dir));
    expect(items.map((i) => [i.key, i.version])).toEqual([
      ['libc6:amd64', '2.36-9'],
      ['zlib1g:amd64', '1:1.2.13'],
    ]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/status\.d\/libc6: libc6:amd64 2\.36-1 .* disagrees with \/var\/lib\/dpkg\/status/);
  });

  it('fails the section when the status file itself is broken, rather than report every package removed', async () => {
    const dir = tempRoot({ 'var/lib/dpkg/status': `${installed('a', 'amd64', '1')}\nStatus: install ok installed\n` });
    const err = await packages.collect(context(dir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DwParseError);
    expect((err as DwParseError).file).toBe('/var/lib/dpkg/status');
    expect((err as DwParseError).line).toBe(6);
  });

  it('follows a symlinked status file inside the root, never out of it', async () => {
    const dir = tempRoot({ 'srv/dpkg/status': installed('inside', 'amd64', '1') });
    link(dir, 'var/lib/dpkg/status', '/srv/dpkg/status');
    const { items } = await packages.collect(context(dir));
    expect(items.map((i) => i.key)).toEqual(['inside:amd64']);
  });
});

describe('packages collector on rpm roots (recorded rpm output)', () => {
  const OUTPUT =
    rpmRow('bash', '(none)', '5.1.8', '9.el9', 'x86_64') + rpmRow('openssl', '1', '3.0.7', '27.el9', 'x86_64');

  it('runs rpm with --dbpath inside the root and parses what it prints', async () => {
    const dir = tempRoot({ 'var/lib/rpm/rpmdb.sqlite': '' });
    const exec = fakeRpm(OUTPUT);
    const { items, warnings } = await packages.collect(context(dir, exec));
    expect(exec.calls).toEqual([
      ['rpm', ['--dbpath', join(dir, 'var/lib/rpm'), '-qa', '--queryformat', RPM_QUERY_FORMAT]],
    ]);
    expect(warnings).toEqual([]);
    expect(items.map((i) => [i.key, i.manager, i.version])).toEqual([
      ['bash:x86_64', 'rpm', '5.1.8-9.el9'],
      ['openssl:x86_64', 'rpm', '1:3.0.7-27.el9'],
    ]);
  });

  it('reads /usr/lib/sysimage/rpm once when /var/lib/rpm is an absolute symlink to it (Fedora 36+, RHEL 10)', async () => {
    const dir = tempRoot({ 'usr/lib/sysimage/rpm/rpmdb.sqlite': '' });
    link(dir, 'var/lib/rpm', '/usr/lib/sysimage/rpm');
    const exec = fakeRpm(OUTPUT);
    const { warnings } = await packages.collect(context(dir, exec));
    expect(exec.calls.map(([, args]) => args[1])).toEqual([join(dir, 'usr/lib/sysimage/rpm')]);
    expect(warnings).toEqual([]);
  });

  it('prefers /usr/lib/sysimage/rpm when both locations hold a database, and says so', async () => {
    const dir = tempRoot({ 'usr/lib/sysimage/rpm/rpmdb.sqlite': '', 'var/lib/rpm/Packages': '' });
    const exec = fakeRpm(OUTPUT);
    const { warnings } = await packages.collect(context(dir, exec));
    expect(exec.calls.map(([, args]) => args[1])).toEqual([join(dir, 'usr/lib/sysimage/rpm')]);
    expect(warnings).toEqual([
      'rpm databases in both /usr/lib/sysimage/rpm and /var/lib/rpm; read /usr/lib/sysimage/rpm, the one current rpm uses',
    ]);
  });

  it('does not climb out of the root through a symlink full of ..', async () => {
    const outside = tempRoot({ 'rpmdb.sqlite': '' });
    const dir = tempRoot();
    link(dir, 'var/lib/rpm', `${'../'.repeat(20)}${outside.slice(1)}`);
    expect(await packages.collect(context(dir))).toEqual({ items: [], warnings: [] });
  });

  it('ignores an rpm directory that holds no database', async () => {
    const dir = tempRoot({ 'var/lib/rpm/.rpm.lock': '' });
    expect(await packages.collect(context(dir))).toEqual({ items: [], warnings: [] });
  });

  it('fails clearly when the root has an rpm database but this machine has no rpm program', async () => {
    const dir = tempRoot({ 'var/lib/rpm/rpmdb.sqlite': '' });
    const missing: ExecFn = async () => {
      throw Object.assign(new Error('spawn rpm ENOENT'), { code: 'ENOENT' });
    };
    const err = await packages.collect(context(dir, missing)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DwError);
    expect((err as DwError).code).toBe('DW_ERR_COLLECTOR');
    expect((err as DwError).message).toMatch(/rpm database in \/var\/lib\/rpm, but the rpm program is not installed/);
  });

  it("fails with rpm's own complaint when rpm exits non-zero", async () => {
    const dir = tempRoot({ 'var/lib/rpm/rpmdb.sqlite': '' });
    const err = await packages
      .collect(context(dir, fakeRpm('', 1, 'error: cannot open Packages database in /x\nmore\n')))
      .catch((e: unknown) => e);
    expect((err as DwError).code).toBe('DW_ERR_EXEC');
    expect((err as DwError).message).toBe(
      'rpm -qa on /var/lib/rpm exited with 1: error: cannot open Packages database in /x',
    );
  });

  it('warns when an rpm database lists nothing', async () => {
    const dir = tempRoot({ 'var/lib/rpm/rpmdb.sqlite': '' });
    expect(await packages.collect(context(dir, fakeRpm('')))).toEqual({
      items: [],
      warnings: ['rpm database in /var/lib/rpm lists no packages'],
    });
  });
});

describe('packages collector with the real rpm program', () => {
  const FEDORA = join(SHARED, 'rpm-fedora33');

  /** A writable copy: querying an rpm database writes -shm/-wal files beside it. */
  function fedoraRoot(layout: 'var' | 'sysimage'): string {
    const dir = tempRoot();
    if (layout === 'var') {
      cpSync(FEDORA, dir, { recursive: true });
    } else {
      mkdirSync(join(dir, 'usr/lib/sysimage'), { recursive: true });
      cpSync(join(FEDORA, 'var/lib/rpm'), join(dir, 'usr/lib/sysimage/rpm'), { recursive: true });
      link(dir, 'var/lib/rpm', '../../usr/lib/sysimage/rpm');
    }
    return dir;
  }

  const skipUnlessReady = (ctx: { skip: (note?: string) => never }) => {
    if (!existsSync(FEDORA))
      ctx.skip(`${FEDORA} is absent: the real rpm database comes from the shared checkout beside this repo`);
    if (!rpmAvailable()) ctx.skip('the rpm program is not installed on this machine (apt-get install rpm)');
  };

  for (const layout of ['var', 'sysimage'] as const) {
    it(`lists the 9 packages of a Fedora 33 database (${layout === 'var' ? 'var/lib/rpm' : 'usr/lib/sysimage/rpm behind a var/lib/rpm symlink'})`, async (ctx) => {
      skipUnlessReady(ctx);
      const { items, warnings } = await packages.collect(context(fedoraRoot(layout), execProgram));
      expect(warnings).toEqual([]);
      expect(items).toHaveLength(9);
      for (const i of items) PackageItemSchema.parse(i);
      expect(items.find((i) => i.key === 'rpm:x86_64')).toEqual({
        key: 'rpm:x86_64',
        manager: 'rpm',
        name: 'rpm',
        arch: 'x86_64',
        version: '4.16.0-1.fc33',
        state: 'installed',
      });
      expect(items.find((i) => i.key === 'deltarpm:x86_64')?.version).toBe('3.6.2-7.fc33');
      expect(items.find((i) => i.key === 'systemd-rpm-macros:noarch')?.version).toBe('246.6-3.fc33');
    });
  }

  it('leaves the shared fixture untouched because it queries a copy', (ctx) => {
    if (!existsSync(FEDORA))
      ctx.skip(`${FEDORA} is absent: the real rpm database comes from the shared checkout beside this repo`);
    expect(readdirSync(join(FEDORA, 'var/lib/rpm'))).toEqual(['rpmdb.sqlite']);
  });
});

describe('packages collector on apk roots', () => {
  const ALPINE = join(SHARED, 'apk-alpine');

  it('lists the packages of a real Alpine database', async (ctx) => {
    if (!existsSync(ALPINE))
      ctx.skip(`${ALPINE} is absent: the real apk database comes from the shared checkout beside this repo`);
    const dir = tempRoot();
    cpSync(ALPINE, dir, { recursive: true });
    const { items, warnings } = await packages.collect(context(dir));
    expect(warnings).toEqual([]);
    expect(items.map((i) => `${i.key}=${i.version}`)).toEqual([
      'bash:x86_64=5.2.21-r0',
      'busybox-binsh:x86_64=1.36.1-r15',
      'musl:x86_64=1.2.4_git20230717-r4',
      'readline:x86_64=8.2.1-r2',
    ]);
  });

  it('finds the database of a usr-merged root through its /lib symlink, once', async () => {
    const dir = tempRoot({ 'usr/lib/apk/db/installed': 'P:musl\nV:1.2.5-r0\nA:aarch64\n' });
    link(dir, 'lib', 'usr/lib');
    expect(await packages.collect(context(dir))).toEqual({
      items: [
        { key: 'musl:aarch64', manager: 'apk', name: 'musl', arch: 'aarch64', version: '1.2.5-r0', state: 'installed' },
      ],
      warnings: [],
    });
  });

  it('fails the section when the apk database is broken', async () => {
    const dir = tempRoot({ 'lib/apk/db/installed': 'P:musl\nnonsense\n' });
    await expect(packages.collect(context(dir))).rejects.toThrow('/lib/apk/db/installed:2: expected "K:value"');
  });
});

describe('packages collector on a root with several managers', () => {
  it('records each package with its manager, and separates keys two managers both claim', async () => {
    const dir = tempRoot({
      'var/lib/dpkg/status': installed('tzdata', 'all', '2025b-0') + '\n' + installed('bash', 'x86_64', '5.2-1'),
      'lib/apk/db/installed': 'P:bash\nV:5.2.21-r0\nA:x86_64\n\nP:musl\nV:1.2.4-r4\nA:x86_64\n',
    });
    const { items, warnings } = await packages.collect(context(dir));
    expect(items.map((i) => [i.key, i.manager])).toEqual([
      ['apk/bash:x86_64', 'apk'],
      ['dpkg/bash:x86_64', 'dpkg'],
      ['musl:x86_64', 'apk'],
      ['tzdata:all', 'dpkg'],
    ]);
    expect(warnings).toEqual(['bash:x86_64 is claimed by apk and dpkg; keyed as apk/bash:x86_64, dpkg/bash:x86_64']);
  });
});
