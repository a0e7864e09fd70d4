/**
 * @module Attribution against fixture roots: package and file deviations get the transaction that
 * made them, hand edits get none, and broken or missing logs cost attributions, never the check.
 */
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  appendFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  LIMITS,
  attributeDeviations,
  correlate,
  type AttributionContext,
  type Transaction,
} from '../../agent/attribution.js';
import { execProgram, type ExecFn } from '../../agent/exec.js';
import { silentLogger } from '../../agent/log.js';
import { parseAptHistory } from '../../agent/parsers/apt-history.js';
import { parseDpkgConffiles, parseDpkgDiversions, parseDpkgList } from '../../agent/parsers/dpkg-info.js';
import { parseDpkgLog } from '../../agent/parsers/dpkg-log.js';
import { RPM_INSTALLTIME_FORMAT } from '../../agent/parsers/rpm-installtime.js';
import { HostRoot } from '../../agent/root.js';
import { AttributionSchema, type Attribution, type Deviation } from '../../shared/schema/deviation.js';
import { copyFixture, FIXTURES, tempDir } from '../helpers/tmp.js';

const DEBIAN = join(FIXTURES, 'attribution/debian');
/** The image was baked here; every transaction after it may explain a change. */
const SINCE = '2024-02-01T00:00:00Z';

/** Real compressed rotations are made from the plain fixtures, so no binary file is committed. */
function gzipRotations(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.gz.plain')) continue;
    const plain = join(entry.parentPath, entry.name);
    writeFileSync(plain.slice(0, -'.plain'.length), gzipSync(readFileSync(plain)));
    rmSync(plain);
  }
}

function debianRoot(): string {
  const dir = copyFixture(DEBIAN);
  gzipRotations(dir);
  return dir;
}

const noExec: ExecFn = async (file) => {
  throw new Error(`no program should run here, but ${file} did`);
};

/** A logger that keeps what it is told, to see that a skipped source says why (at debug). */
function recordingLog() {
  const records: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), records };
}

function ctx(dir: string, extra: Partial<AttributionContext> = {}): AttributionContext {
  return { root: new HostRoot(dir), exec: noExec, log: silentLogger, since: SINCE, ...extra };
}

const dpkgItem = (name: string, arch: string, version: string, state = 'installed') => ({
  manager: 'dpkg',
  name,
  arch,
  version,
  state,
});

function pkgDev(
  change: Deviation['change'],
  name: string,
  arch: string,
  before: string | null,
  after: string | null,
  opts: { manager?: string; state?: string } = {},
): Deviation {
  const item = (v: string) => ({ ...dpkgItem(name, arch, v, opts.state), manager: opts.manager ?? 'dpkg' });
  const fields = change === 'modified' ? (before === after ? ['state'] : ['version']) : undefined;
  return {
    collector: 'packages',
    key: `${name}:${arch}`,
    change,
    expected: before === null ? null : { ...item(before), state: 'installed' },
    actual: after === null ? null : item(after),
    ...(fields ? { fields } : {}),
    severity: 'high',
  };
}

const fileItem = (type = 'file', mode = '0755') => ({ type, mode, uid: 0, gid: 0, size: 10, sha256: 'a'.repeat(64) });

function fileDev(
  change: Deviation['change'],
  key: string,
  fields: string[] = ['sha256', 'size'],
  type = 'file',
): Deviation {
  return {
    collector: 'files',
    key,
    change,
    expected: change === 'added' ? null : fileItem(type),
    actual: change === 'removed' ? null : { ...fileItem(type), sha256: 'b'.repeat(64) },
    ...(change === 'modified' ? { fields } : {}),
    severity: 'critical',
  };
}

async function attribute(
  dir: string,
  devs: Deviation[],
  extra: Partial<AttributionContext> = {},
): Promise<Map<string, Attribution | undefined>> {
  const out = await attributeDeviations(ctx(dir, extra), devs);
  expect(out).toBe(devs);
  for (const d of out) if (d.attribution) AttributionSchema.parse(d.attribution);
  return new Map(out.map((d) => [d.key, d.attribution]));
}

describe('package deviations on a Debian host', () => {
  it('attributes an install to the apt run that did it, with its command line and user', async () => {
    const a = await attribute(debianRoot(), [pkgDev('added', 'strace', 'amd64', null, '6.1-0.1')]);
    expect(a.get('strace:amd64')).toEqual({
      source: 'apt-history',
      at: '2024-03-01T02:14:07+01:00',
      action: 'install',
      package: 'strace:amd64',
      toVersion: '6.1-0.1',
      commandLine: 'apt-get install strace',
      user: 'alice (1000)',
    });
  });

  it("attributes an upgrade, a purge and a downgrade, each with apt's own word for it", async () => {
    const a = await attribute(debianRoot(), [
      pkgDev('modified', 'openssl', 'amd64', '3.0.11-1~deb12u2', '3.0.13-1~deb12u1'),
      pkgDev('removed', 'telnet', 'amd64', '0.17-44', null),
      pkgDev('modified', 'vim', 'amd64', '2:9.0.1378-2+deb12u2', '2:9.0.1378-2'),
    ]);
    expect(a.get('openssl:amd64')).toEqual({
      source: 'apt-history',
      at: '2024-03-02T09:00:01+01:00',
      action: 'upgrade',
      package: 'openssl:amd64',
      fromVersion: '3.0.11-1~deb12u2',
      toVersion: '3.0.13-1~deb12u1',
      commandLine: 'apt-get upgrade',
    });
    expect(a.get('telnet:amd64')).toMatchObject({
      action: 'purge',
      at: '2024-03-03T11:00:01+01:00',
      user: 'bob (1001)',
      commandLine: 'apt-get purge telnet',
      fromVersion: '0.17-44',
    });
    // dpkg logs a downgrade as "upgrade"; apt knows better.
    expect(a.get('vim:amd64')).toMatchObject({ action: 'downgrade', user: 'alice (1000)', toVersion: '2:9.0.1378-2' });
  });

  it('attributes a package installed by hand with dpkg -i to dpkg.log alone', async () => {
    const a = await attribute(debianRoot(), [pkgDev('modified', 'curl', 'amd64', '7.88.1-10', '7.88.1-10+deb12u5')]);
    expect(a.get('curl:amd64')).toEqual({
      source: 'dpkg-log',
      at: '2024-03-04T12:00:00+01:00',
      action: 'upgrade',
      package: 'curl:amd64',
      fromVersion: '7.88.1-10',
      toVersion: '7.88.1-10+deb12u5',
    });
  });

  it('attributes nothing that the logs do not account for', async () => {
    const a = await attribute(debianRoot(), [
      // 00:30 in Berlin is before the baseline in UTC, though the local time reads later.
      pkgDev('modified', 'edgepkg', 'amd64', '1.0-1', '1.0-2'),
      // apt tried and failed: dpkg's log, which covers that day, never installed it.
      pkgDev('added', 'broken', 'amd64', null, '1.0'),
      // A hold is not logged; the last transaction is the bake's install.
      pkgDev('modified', 'bash', 'amd64', '5.2.15-2+b7', '5.2.15-2+b7', { state: 'installed (hold)' }),
      // The status file says a version no transaction installed.
      pkgDev('modified', 'libssl3', 'amd64', '3.0.11-1~deb12u2', '3.0.14-9'),
      // No transaction at all.
      pkgDev('added', 'ghost', 'amd64', null, '1'),
    ]);
    expect([...a.values()]).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it("reads rotated and gzip'd logs, oldest first, and apt runs from before dpkg.log begins", async () => {
    const devs = [pkgDev('added', 'nano', 'amd64', null, '7.2-1'), pkgDev('added', 'htop', 'amd64', null, '3.2.2-2')];
    const a = await attribute(debianRoot(), devs, { since: undefined });
    expect(a.get('nano:amd64')).toMatchObject({
      source: 'apt-history',
      at: '2023-12-20T09:00:00+01:00',
      commandLine: 'apt-get install nano',
      user: 'carol (1002)',
    });
    expect(a.get('htop:amd64')).toMatchObject({
      source: 'apt-history',
      at: '2023-11-01T10:00:00+01:00',
      action: 'install',
      toVersion: '3.2.2-2',
    });
    // The same transactions predate the baseline, so with it they explain nothing.
    const b = await attribute(debianRoot(), [pkgDev('added', 'nano', 'amd64', null, '7.2-1')]);
    expect(b.get('nano:amd64')).toBeUndefined();
  });

  it('without a baseline time, attributes a version change but never a state-only one', async () => {
    const a = await attribute(
      debianRoot(),
      [
        pkgDev('modified', 'openssl', 'amd64', '3.0.11-1~deb12u2', '3.0.13-1~deb12u1'),
        pkgDev('modified', 'bash', 'amd64', '5.2.15-2+b7', '5.2.15-2+b7', { state: 'installed (hold)' }),
      ],
      { since: undefined },
    );
    expect(a.get('openssl:amd64')?.action).toBe('upgrade');
    expect(a.get('bash:amd64')).toBeUndefined();
  });

  it("matches apt's native-arch name for an arch:all package to dpkg's :all", async () => {
    const a = await attribute(debianRoot(), [pkgDev('modified', 'postgresql-common', 'all', '248', '248+deb12u1')]);
    expect(a.get('postgresql-common:all')).toMatchObject({
      source: 'apt-history',
      package: 'postgresql-common:all',
      commandLine: 'apt-get upgrade',
    });
  });
});

describe('correlate', () => {
  const dpkgInstall = (at: string): Transaction => ({
    source: 'dpkg-log',
    at,
    order: 0,
    action: 'install',
    name: 'a',
    arch: 'amd64',
    toVersion: '1',
  });
  const unfinished = {
    line: 1,
    start: '2024-01-01 10:00:00',
    commandLine: 'apt-get install a',
    packages: [{ action: 'install' as const, name: 'a', arch: 'amd64', toVersion: '1' }],
  };

  it('pins a dpkg line on the apt run it falls in, even one apt did not finish', () => {
    expect(
      correlate([dpkgInstall('2024-01-01 10:00:05')], '2024-01-01 00:00:00', [unfinished]).latest('a', 'amd64'),
    ).toMatchObject({ source: 'apt-history', commandLine: 'apt-get install a' });
  });

  it('does not pin a dpkg -i made months later on an unfinished apt run', () => {
    expect(
      correlate([dpkgInstall('2024-06-01 10:00:00')], '2024-01-01 00:00:00', [unfinished]).latest('a', 'amd64'),
    ).toMatchObject({ source: 'dpkg-log' });
    const next = { line: 9, start: '2024-01-01 10:00:03', packages: [] };
    expect(
      correlate([dpkgInstall('2024-01-01 10:00:05')], '2024-01-01 00:00:00', [unfinished, next]).latest('a', 'amd64'),
    ).toMatchObject({ source: 'dpkg-log' });
  });
});

describe('file deviations on a Debian host', () => {
  it("attributes a file to its package's transaction when its content is what the package shipped", async () => {
    const a = await attribute(debianRoot(), [
      fileDev('added', '/usr/bin/strace'),
      fileDev('modified', '/usr/bin/openssl'),
      // A conffile: checked against the hash in the status file.
      fileDev('modified', '/etc/ssl/openssl.cnf'),
    ]);
    expect(a.get('/usr/bin/strace')).toEqual({
      source: 'apt-history',
      at: '2024-03-01T02:14:07+01:00',
      action: 'install',
      package: 'strace:amd64',
      toVersion: '6.1-0.1',
      commandLine: 'apt-get install strace',
      user: 'alice (1000)',
      ownedBy: 'strace',
    });
    expect(a.get('/usr/bin/openssl')).toMatchObject({
      action: 'upgrade',
      ownedBy: 'openssl',
      commandLine: 'apt-get upgrade',
      toVersion: '3.0.13-1~deb12u1',
    });
    expect(a.get('/etc/ssl/openssl.cnf')).toMatchObject({ action: 'upgrade', ownedBy: 'openssl' });
  });

  it('never dresses up a hand edit as a package change', async () => {
    const a = await attribute(debianRoot(), [
      // libssl3 was upgraded, but this content is not what it shipped: changed after, by someone else.
      fileDev('modified', '/usr/lib/x86_64-linux-gnu/libssl.so.3'),
      // bash was never upgraded since the bake.
      fileDev('modified', '/usr/bin/bash'),
      // A metadata change whose ctime (this copy's) is nowhere near the upgrade.
      fileDev('modified', '/usr/bin/openssl', ['mode']),
      // Owned by no package, and removed.
      fileDev('added', '/usr/local/bin/tool'),
      fileDev('removed', '/usr/bin/strace'),
    ]);
    expect([...a.values()]).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('finds the owner of a /usr-merged path that its package lists under /bin', async () => {
    const a = await attribute(debianRoot(), [fileDev('modified', '/usr/bin/ls')]);
    expect(a.get('/usr/bin/ls')).toMatchObject({ ownedBy: 'coreutils', package: 'coreutils:amd64', action: 'upgrade' });
  });

  it('keeps /bin and /usr/bin apart on a root that is not merged', async () => {
    const dir = debianRoot();
    rmSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'bin'));
    const a = await attribute(dir, [fileDev('modified', '/usr/bin/ls')]);
    expect(a.get('/usr/bin/ls')).toBeUndefined();
  });

  it('follows diversions: the diverting package owns the path, the others own the diverted copy, a local diversion has no owner', async () => {
    const a = await attribute(debianRoot(), [
      fileDev('modified', '/usr/bin/pg_config'),
      fileDev('modified', '/usr/bin/pg_config.libpq-dev'),
      fileDev('modified', '/etc/issue'),
      fileDev('modified', '/etc/issue.dist'),
    ]);
    expect(a.get('/usr/bin/pg_config')).toMatchObject({
      ownedBy: 'postgresql-common',
      package: 'postgresql-common:all',
    });
    expect(a.get('/usr/bin/pg_config.libpq-dev')).toMatchObject({ ownedBy: 'libpq-dev', package: 'libpq-dev:amd64' });
    expect(a.get('/etc/issue')).toBeUndefined();
    expect(a.get('/etc/issue.dist')).toMatchObject({ ownedBy: 'base-files' });
  });

  it('gives a path several packages share no single owner, but one shared by the arch copies of one package its latest', async () => {
    const a = await attribute(debianRoot(), [
      fileDev('modified', '/usr/share/doc', ['mode'], 'dir'),
      fileDev('modified', '/usr/share/doc/libc6/changelog.gz'),
    ]);
    expect(a.get('/usr/share/doc')).toBeUndefined();
    expect(a.get('/usr/share/doc/libc6/changelog.gz')?.ownedBy).toMatch(/^libc6:(amd64|i386)$/);
  });

  it('attributes a metadata change only when the file changed during the transaction', async () => {
    const dir = debianRoot();
    // The host's clock is Berlin's: write the log in its local time, around now.
    const local = (ms: number) =>
      new Intl.DateTimeFormat('sv-SE', {
        timeZone: 'Europe/Berlin',
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
        hourCycle: 'h23',
      }).format(new Date(ms));
    const now = Date.now();
    const run = (name: string, from: number, to: number) => {
      appendFileSync(join(dir, 'var/log/dpkg.log'), `${local(from + 1000)} upgrade ${name}:amd64 1 2\n`);
      appendFileSync(
        join(dir, 'var/log/apt/history.log'),
        `\nStart-Date: ${local(from).replace(' ', '  ')}\nCommandline: apt-get install ${name}\nUpgrade: ${name}:amd64 (1, 2)\nEnd-Date: ${local(to).replace(' ', '  ')}\n`,
      );
    };
    run('strace', now - 5000, now + 5000);
    chmodSync(join(dir, 'usr/bin/strace'), 0o700); // ctime: now, inside the run
    const a = await attribute(dir, [fileDev('modified', '/usr/bin/strace', ['mode'])], {
      since: new Date(now - 3_600_000).toISOString(),
    });
    expect(a.get('/usr/bin/strace')).toMatchObject({
      action: 'upgrade',
      ownedBy: 'strace',
      commandLine: 'apt-get install strace',
    });

    const dir2 = debianRoot();
    const hourAgo = now - 3_600_000;
    appendFileSync(join(dir2, 'var/log/dpkg.log'), `${local(hourAgo)} upgrade strace:amd64 1 2\n`);
    chmodSync(join(dir2, 'usr/bin/strace'), 0o700); // an hour after the upgrade: someone else's chmod
    const b = await attribute(dir2, [fileDev('modified', '/usr/bin/strace', ['mode'])], {
      since: new Date(now - 7_200_000).toISOString(),
    });
    expect(b.get('/usr/bin/strace')).toBeUndefined();
  });

  it('reads the dpkg info directory once per call, however many files deviate', async () => {
    const dir = debianRoot();
    const root = new HostRoot(dir);
    const reads: string[] = [];
    const original = root.readFile.bind(root);
    root.readFile = async (p: string) => {
      reads.push(p);
      return original(p);
    };
    await attributeDeviations({ ...ctx(dir), root }, [
      fileDev('modified', '/usr/bin/openssl'),
      fileDev('modified', '/usr/bin/ls'),
      fileDev('added', '/usr/bin/strace'),
      fileDev('modified', '/usr/bin/bash'),
    ]);
    const lists = reads.filter((p) => p.endsWith('.list'));
    expect(lists.length).toBe(new Set(lists).size);
    expect(lists.length).toBe(readdirSync(join(dir, 'var/lib/dpkg/info')).filter((n) => n.endsWith('.list')).length);
  });
});

describe('degrading, never failing', () => {
  it('changes nothing and reads nothing when no package or file deviates', async () => {
    const devs: Deviation[] = [
      {
        collector: 'sysctl',
        key: 'vm.swappiness',
        change: 'modified',
        expected: { runtime: '10' },
        actual: { runtime: '60' },
        fields: ['runtime'],
        severity: 'high',
      },
    ];
    const before = structuredClone(devs);
    expect(await attributeDeviations(ctx('/nonexistent-root'), devs)).toEqual(before);
  });

  it('attributes nothing, and throws nothing, on a root without any logs', async () => {
    const a = await attribute(tempDir(), [
      pkgDev('added', 'strace', 'amd64', null, '6.1-0.1'),
      fileDev('added', '/usr/bin/strace'),
    ]);
    expect([...a.values()]).toEqual([undefined, undefined]);
  });

  it('skips broken lines, corrupt rotations, bombs, odd files and a missing history, keeping what is good', async () => {
    const dir = debianRoot();
    const dpkgLog = join(dir, 'var/log/dpkg.log');
    writeFileSync(
      dpkgLog,
      Buffer.concat([
        Buffer.from('\u0000\u0000\u00ff\u00fe binary junk\n'),
        readFileSync(dpkgLog),
        Buffer.from([0, 1, 2, 0xff, 0x0a]),
      ]),
    );
    writeFileSync(join(dir, 'var/log/dpkg.log.3.gz'), 'not gzip at all');
    // Decompresses past the limit: a gzip bomb is skipped, not inflated.
    writeFileSync(join(dir, 'var/log/dpkg.log.4.gz'), gzipSync(Buffer.alloc(LIMITS.logBytes + 1024, 0x61)));
    mkdirSync(join(dir, 'var/log/dpkg.log.5'));
    rmSync(join(dir, 'var/log/apt'), { recursive: true });
    writeFileSync(join(dir, 'var/lib/dpkg/info/junk.list'), 'relative/path\n\u0000\u0001\n');
    mkdirSync(join(dir, 'var/lib/dpkg/info/dir.list'));
    writeFileSync(join(dir, 'var/lib/dpkg/diversions'), '/usr/bin/pg_config\n/usr/bin/pg_config.libpq-dev\n');
    writeFileSync(join(dir, 'var/lib/dpkg/info/openssl.md5sums'), 'garbage\n');
    const { log, records } = recordingLog();
    const a = await attribute(
      dir,
      [
        pkgDev('added', 'strace', 'amd64', null, '6.1-0.1'),
        fileDev('added', '/usr/bin/strace'),
        fileDev('modified', '/usr/bin/openssl'),
      ],
      { log },
    );
    expect(a.get('strace:amd64')).toMatchObject({
      source: 'dpkg-log',
      action: 'install',
      at: '2024-03-01T02:14:07+01:00',
    });
    expect(a.get('/usr/bin/strace')).toMatchObject({ source: 'dpkg-log', ownedBy: 'strace' });
    // Its md5sums are garbage: nothing to check the content against, so no claim.
    expect(a.get('/usr/bin/openssl')).toBeUndefined();
    const said = records.map((r) => `${String(r.msg)} ${String(r.file ?? '')}`);
    expect(said).toContain('skipped malformed lines /var/log/dpkg.log');
    expect(said).toContain('log skipped /var/log/dpkg.log.3.gz');
    expect(said).toContain('log skipped /var/log/dpkg.log.4.gz');
    expect(said).toContain('skipped malformed lines /var/lib/dpkg/info/junk.list');
    expect(said).toContain('skipped malformed lines /var/lib/dpkg/diversions');
    expect(records.every((r) => r.level === 20)).toBe(true);
  });

  it('skips a log larger than its limit', async () => {
    const dir = debianRoot();
    const saved = LIMITS.logBytes;
    LIMITS.logBytes = 100;
    try {
      const a = await attribute(dir, [pkgDev('added', 'strace', 'amd64', null, '6.1-0.1')]);
      expect(a.get('strace:amd64')).toBeUndefined();
    } finally {
      LIMITS.logBytes = saved;
    }
  });

  it('does not follow a log link out of the root', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'var/log'), { recursive: true });
    writeFileSync(join(dir, 'outside.log'), '2024-03-01 02:14:07 install strace:amd64 <none> 6.1-0.1\n');
    // Absolute link: resolved inside the root, where /work/... does not exist.
    const { symlinkSync } = await import('node:fs');
    symlinkSync(join(dir, 'outside.log'), join(dir, 'var/log/dpkg.log'));
    const a = await attribute(dir, [pkgDev('added', 'strace', 'amd64', null, '6.1-0.1')]);
    expect(a.get('strace:amd64')).toBeUndefined();
  });
});

describe('rpm package deviations', () => {
  function rpmRoot(): string {
    const dir = tempDir();
    mkdirSync(join(dir, 'usr/lib/sysimage/rpm'), { recursive: true });
    writeFileSync(join(dir, 'usr/lib/sysimage/rpm/rpmdb.sqlite'), '');
    return dir;
  }
  const row = (...f: (string | number)[]) => `${f.join('\t')}\n`;
  /** Answers like rpm 4.18 does for these names, and remembers its arguments. */
  function fakeRpm(stdout: string): ExecFn & { calls: (readonly string[])[] } {
    const calls: (readonly string[])[] = [];
    return Object.assign(
      async (_file: string, args: readonly string[]) => {
        calls.push(args);
        return { stdout, stderr: '', code: 1 };
      },
      { calls },
    );
  }
  const rpmDev = (
    change: Deviation['change'],
    name: string,
    arch: string,
    before: string | null,
    after: string | null,
  ) => pkgDev(change, name, arch, before, after, { manager: 'rpm' });

  it('says when the new header was installed, one rpm run for all packages', async () => {
    const dir = rpmRoot();
    const t = Date.parse('2024-03-01T01:14:07Z') / 1000;
    const exec = fakeRpm(
      row('strace', 'x86_64', '(none)', '6.1', '1.fc39', t) +
        row('kernel-core', 'x86_64', '(none)', '6.7.5', '200.fc39', t - 86400 * 30) +
        row('kernel-core', 'x86_64', '(none)', '6.7.7', '200.fc39', t + 60) +
        row('old', 'noarch', '(none)', '1', '1', Date.parse('2024-01-01T00:00:00Z') / 1000) +
        'package gone.x86_64 is not installed\n',
    );
    const a = await attribute(
      dir,
      [
        rpmDev('added', 'strace', 'x86_64', null, '6.1-1.fc39'),
        rpmDev('modified', 'kernel-core', 'x86_64', '6.7.5-200.fc39', '6.7.5-200.fc39, 6.7.7-200.fc39'),
        rpmDev('added', 'old', 'noarch', null, '1-1'),
        rpmDev('removed', 'gone', 'x86_64', '1-1', null),
      ],
      { exec },
    );
    expect(exec.calls).toEqual([
      [
        '--dbpath',
        join(dir, 'usr/lib/sysimage/rpm'),
        '-q',
        '--queryformat',
        RPM_INSTALLTIME_FORMAT,
        'kernel-core.x86_64',
        'old.noarch',
        'strace.x86_64',
      ],
    ]);
    expect(a.get('strace:x86_64')).toEqual({
      source: 'rpm',
      at: '2024-03-01T01:14:07+00:00',
      action: 'install',
      package: 'strace:x86_64',
      toVersion: '6.1-1.fc39',
    });
    // The new kernel, not the one kept from the image.
    expect(a.get('kernel-core:x86_64')).toMatchObject({ toVersion: '6.7.7-200.fc39', at: '2024-03-01T01:15:07+00:00' });
    // Installed before the baseline: it explains nothing that changed since.
    expect(a.get('old:noarch')).toBeUndefined();
    expect(a.get('gone:x86_64')).toBeUndefined();
  });

  it('attributes nothing when rpm is missing or fails', async () => {
    const missing: ExecFn = async () => {
      throw Object.assign(new Error('spawn rpm ENOENT'), { code: 'ENOENT' });
    };
    const a = await attribute(rpmRoot(), [rpmDev('added', 'strace', 'x86_64', null, '6.1-1.fc39')], { exec: missing });
    expect(a.get('strace:x86_64')).toBeUndefined();
  });

  const SHARED = join(import.meta.dirname, '../../../shared/fixtures/rpm-fedora33');
  const haveRpm = existsSync('/usr/bin/rpm') || existsSync('/bin/rpm');
  // Skipped only where ../shared (the Fedora database) or the rpm program is absent; CI installs rpm and has ../shared.
  it.skipIf(!existsSync(SHARED) || !haveRpm)(
    'reads install times from a real Fedora 33 rpm database with the real rpm (needs ../shared and rpm)',
    async () => {
      const dir = tempDir();
      cpSync(SHARED, dir, { recursive: true });
      const a = await attribute(
        dir,
        [pkgDev('added', 'deltarpm', 'x86_64', null, '3.6.2-7.fc33', { manager: 'rpm' })],
        { exec: execProgram, since: undefined },
      );
      expect(a.get('deltarpm:x86_64')).toEqual({
        source: 'rpm',
        at: '2020-10-19T23:37:24+00:00',
        action: 'install',
        package: 'deltarpm:x86_64',
        toVersion: '3.6.2-7.fc33',
      });
    },
  );
});

describe("on this machine's own logs (smoke)", () => {
  const hasDpkgLog = existsSync('/var/log/dpkg.log');
  // Skipped only on a machine with no dpkg log (not Debian-family): there is nothing real to parse.
  it.skipIf(!hasDpkgLog)('parses /var/log/dpkg.log and apt history without a malformed line', () => {
    const dpkg = parseDpkgLog(readFileSync('/var/log/dpkg.log', 'utf8'), '/var/log/dpkg.log');
    expect(dpkg.errors.map((e) => e.message)).toEqual([]);
    expect(dpkg.entries.length).toBeGreaterThan(0);
    if (existsSync('/var/log/apt/history.log')) {
      const apt = parseAptHistory(readFileSync('/var/log/apt/history.log', 'utf8'), '/var/log/apt/history.log');
      expect(apt.errors.map((e) => e.message)).toEqual([]);
    }
  });

  // Skipped only on a machine without a dpkg database.
  it.skipIf(!existsSync('/var/lib/dpkg/info'))(
    'parses every .list, the diversions and the conffiles of /var/lib/dpkg',
    () => {
      const info = '/var/lib/dpkg/info';
      for (const name of readdirSync(info).filter((n) => n.endsWith('.list'))) {
        expect(parseDpkgList(readFileSync(join(info, name), 'utf8'), name).errors.map((e) => e.message)).toEqual([]);
      }
      if (existsSync('/var/lib/dpkg/diversions'))
        expect(parseDpkgDiversions(readFileSync('/var/lib/dpkg/diversions', 'utf8'), 'diversions').errors).toEqual([]);
      const status = readFileSync('/var/lib/dpkg/status', 'utf8');
      expect(parseDpkgConffiles(status, 'status', new Set(['base-files', 'openssl'])).errors).toEqual([]);
    },
  );

  // Skipped only on a machine with no dpkg log: this machine's own history is the input.
  it.skipIf(!hasDpkgLog)(
    'attributes the package this machine changed last, and a file of it, through root /',
    async () => {
      const entries = parseDpkgLog(readFileSync('/var/log/dpkg.log', 'utf8'), '/var/log/dpkg.log').entries;
      const last = entries
        .filter((e) => e.kind === 'action' && (e.action === 'install' || e.action === 'upgrade'))
        .at(-1);
      if (last === undefined || last.kind !== 'action' || last.toVersion === undefined) return;
      const listName = [`${last.name}:${last.arch}.list`, `${last.name}.list`].find((n) =>
        existsSync(join('/var/lib/dpkg/info', n)),
      );
      const sums = listName ? join('/var/lib/dpkg/info', listName.replace(/\.list$/, '.md5sums')) : undefined;
      const file =
        sums && existsSync(sums)
          ? readFileSync(sums, 'utf8')
              .split('\n')
              .map((l) => `/${l.slice(34)}`)
              .find((p) => p !== '/' && existsSync(p) && statSync(p).isFile() && statSync(p).size < 1_000_000)
          : undefined;
      const devs = [pkgDev('added', last.name, last.arch, null, last.toVersion)];
      if (file) devs.push(fileDev('modified', file));
      const { log } = recordingLog();
      const a = await attribute('/', devs, { exec: execProgram, since: undefined, log });
      expect(a.get(`${last.name}:${last.arch}`)).toMatchObject({
        package: `${last.name}:${last.arch}`,
        toVersion: last.toVersion,
      });
      // Its content is still what the package shipped, unless someone changed it on this machine.
      if (file)
        expect(a.get(file)?.ownedBy ?? 'changed locally').toMatch(
          new RegExp(`^${last.name.replace(/[.+]/g, '\\$&')}|changed locally`),
        );
    },
  );
});
