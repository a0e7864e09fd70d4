/**
 * The shipped artefacts, end to end: `npm run package` builds the bundles, the agent's single
 * executable and the two .deb packages; the packages install into a minimal Debian 12 root that has
 * no Node.js, work there, pass lintian (or each remaining tag is explained), and purge cleanly.
 * Needs root and Debian tools; a missing one fails the file with what to install.
 */
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDebianRoot, requirePackagingTools, type DebianRoot } from './debian-root.js';

const REPO = join(import.meta.dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const SEA = join(REPO, 'dist/sea/driftwarden');
const FIXTURE_ROOT = join(REPO, 'test/fixtures/hosts/web');

function debs(): { agent: string; controller: string } {
  const dir = join(REPO, 'dist/deb');
  const find = (name: string) => {
    const f = readdirSync(dir).find((n) => n.startsWith(`${name}_${VERSION}_`) && n.endsWith('.deb'));
    if (!f) throw new Error(`no ${name} package in dist/deb`);
    return join(dir, f);
  };
  return { agent: find('driftwarden-agent'), controller: find('driftwarden-controller') };
}

/** Runs a program outside the root; returns what it printed and how it exited. */
function sh(file: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(file, args, { encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024, timeout: 600_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr };
}

requirePackagingTools();

beforeAll(() => {
  // xz -1: the test checks what is in the packages, not how small they are.
  const r = sh('npm', ['run', '--silent', 'package'], { ...process.env, DRIFTWARDEN_DEB_XZ_LEVEL: '1' });
  if (r.code !== 0) throw new Error(`npm run package failed:\n${r.err}`);
}, 1_200_000);

describe('the agent single executable', { timeout: 120_000 }, () => {
  const noNode = { PATH: '/nonexistent', HOME: tmpdir() };
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'dw-sea-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('prints the package version', () => {
    expect(sh(SEA, ['--version'], noNode).out.trim()).toBe(VERSION);
  });

  it('builds a manifest and checks a machine path with no Node on PATH: clean, then drift', () => {
    expect(sh('/bin/sh', ['-c', 'command -v node'], noNode).code).not.toBe(0);
    const root = join(work, 'root');
    cpSync(FIXTURE_ROOT, root, { recursive: true, verbatimSymlinks: true });
    const keys = join(work, 'keys');
    expect(sh(SEA, ['keygen', '--out', keys], noNode).code).toBe(0);
    const manifest = join(work, 'manifest.json');
    const build = sh(
      SEA,
      [
        'manifest',
        'build',
        '--root',
        root,
        '--image-id',
        'ami-sea',
        '--sign-key',
        join(keys, 'bake.key'),
        '--out',
        manifest,
      ],
      noNode,
    );
    expect(build.err).toBe('');
    expect(build.code).toBe(0);

    const clean = sh(
      SEA,
      ['check', '--root', root, '--manifest', manifest, '--pubkey', join(keys, 'bake.pub'), '--json'],
      noNode,
    );
    expect(clean.code).toBe(0);
    expect(JSON.parse(clean.out).deviations ?? []).toEqual([]);

    appendFileSync(join(root, 'etc/added-after-the-bake.conf'), 'added\n');
    const drift = sh(
      SEA,
      ['check', '--root', root, '--manifest', manifest, '--pubkey', join(keys, 'bake.pub'), '--json'],
      noNode,
    );
    expect(drift.code).toBe(1);
    expect(drift.out).toContain('/etc/added-after-the-bake.conf');
  });

  it('runs its scan in a task process of its own (the executable re-run): --once spools a complete scan', () => {
    const root = join(work, 'agent-root');
    cpSync(FIXTURE_ROOT, root, { recursive: true, verbatimSymlinks: true });
    const manifest = join(work, 'agent-manifest.json');
    expect(
      sh(SEA, ['manifest', 'build', '--root', root, '--image-id', 'ami-sea', '--out', manifest], noNode).code,
    ).toBe(0);
    const state = join(work, 'agent-state');
    const config = join(work, 'agent.yaml');
    writeFileSync(
      config,
      [
        // Nothing listens there: the report stays spooled, where the test reads it.
        'controller: { url: "http://127.0.0.1:9" }',
        `manifest: ${manifest}`,
        `root: ${root}`,
        `stateDir: ${state}`,
        'watch: { paths: [] }',
        '',
      ].join('\n'),
    );
    const r = sh(SEA, ['agent', '--config', config, '--once'], { ...noNode, DRIFTWARDEN_LOG_LEVEL: 'info' });
    expect(r.code, r.err).toBe(2);
    // The scan ran (in the task process) and was spooled; with no enrollment token it can go nowhere.
    expect(r.err).toMatch(/"msg":"scan spooled"/);
    expect(r.err).toMatch(/not enrolled and no enrollment token/);
    const spooled = readdirSync(join(state, 'spool')).filter((f) => f.endsWith('.json'));
    expect(spooled).toHaveLength(1);
    const report = JSON.parse(readFileSync(join(state, 'spool', spooled[0]!), 'utf8')) as {
      kind: string;
      collectors: { collector: string; ok: boolean }[];
    };
    expect(report.kind).toBe('scan');
    expect(report.collectors.map((c) => c.collector)).toContain('files');
    expect(report.collectors.every((c) => c.ok)).toBe(true);
  });

  it('refuses the controller commands it does not carry, naming the package that has them', () => {
    const r = sh(SEA, ['token', 'create'], noNode);
    expect(r.code).toBe(2);
    expect(r.err).toContain('driftwarden-controller');
  });

  it('carries no controller code', () => {
    const meta = JSON.parse(readFileSync(join(REPO, 'dist/bundle/agent/meta.json'), 'utf8')) as {
      inputs: Record<string, unknown>;
    };
    const inputs = Object.keys(meta.inputs);
    expect(inputs.some((i) => i.startsWith('agent/'))).toBe(true);
    expect(inputs.filter((i) => /node_modules\/(fastify|better-sqlite3|kysely|pg)\/|^controller\//.test(i))).toEqual(
      [],
    );
  });
});

describe('the systemd units', () => {
  it('are hardened and timer-free', () => {
    const units = ['driftwarden-agent.service', 'driftwarden-controller.service'].map((u) =>
      join(REPO, 'packaging/systemd', u),
    );
    // systemd-analyze verify runs on them installed (below): outside that root their programs do not exist.
    for (const unit of units) {
      const text = readFileSync(unit, 'utf8');
      expect(text).toMatch(/^Restart=on-failure$/m);
      expect(text).toMatch(/^NoNewPrivileges=yes$/m);
      expect(text).toMatch(/^ProtectSystem=strict$/m);
      expect(text).toMatch(/^PrivateTmp=yes$/m);
      expect(text).toMatch(/^CapabilityBoundingSet=/m);
      expect(text).not.toMatch(/^\[Timer\]/m);
    }
    const agent = readFileSync(units[0]!, 'utf8');
    expect(agent.match(/^ReadWritePaths=(.*)$/m)?.[1]).toBe('/var/lib/driftwarden');
    expect(agent).toMatch(/^User=root$/m);
    expect(agent).toMatch(/^IOSchedulingClass=/m);
    // The kernel's guardrails behind the agent's own watchdog; the daemon survives an OOM kill of its scan.
    expect(agent).toMatch(/^MemoryMax=\d+M$/m);
    expect(agent).toMatch(/^CPUQuota=\d+%$/m);
    expect(agent).toMatch(/^OOMPolicy=continue$/m);
    expect(readFileSync(units[1]!, 'utf8')).toMatch(/^User=driftwarden$/m);
  });
});

describe('the Debian packages', { timeout: 300_000 }, () => {
  let root: DebianRoot;
  const inRoot = (argv: string[], env?: Record<string, string>) => {
    const r = root.run(argv, { env });
    if (r.error) throw r.error;
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const ok = (argv: string[], env?: Record<string, string>) => {
    const r = inRoot(argv, env);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code} in the Debian root:\n${r.err}\n${r.out}`);
    return r.out;
  };
  const passwdEntry = (name: string) =>
    readFileSync(join(root.dir, 'etc/passwd'), 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => f[0] === name);

  beforeAll(() => {
    root = freshDebianRoot();
    const { agent, controller } = debs();
    cpSync(agent, join(root.dir, 'tmp/agent.deb'));
    cpSync(controller, join(root.dir, 'tmp/controller.deb'));
  }, 600_000);
  afterAll(() => root?.remove());

  it('start from a Debian 12 root without Node.js', () => {
    expect(readFileSync(join(root.dir, 'etc/debian_version'), 'utf8')).toMatch(/^12\./);
    expect(inRoot(['sh', '-c', 'command -v node nodejs']).code).not.toBe(0);
  });

  it('install with dpkg -i, their dependencies met by stock Debian 12', () => {
    ok(['dpkg', '-i', '/tmp/agent.deb', '/tmp/controller.deb']);
    const status = ok([
      'dpkg-query',
      '-W',
      '-f',
      '${Package} ${Version} ${db:Status-Abbrev}\n',
      'driftwarden-agent',
      'driftwarden-controller',
    ]);
    expect(status).toContain(`driftwarden-agent ${VERSION} ii`);
    expect(status).toContain(`driftwarden-controller ${VERSION} ii`);
  });

  it('put files where the design says, with the right owners and modes', () => {
    const user = passwdEntry('driftwarden');
    expect(user, 'the driftwarden user').toBeDefined();
    const [uid, gid] = [Number(user![2]), Number(user![3])];
    const expectStat = (path: string, mode: number, owner = 0, group = 0) => {
      const st = lstatSync(join(root.dir, path));
      expect({ path, mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid }).toEqual({
        path,
        mode: mode.toString(8),
        uid: owner,
        gid: group,
      });
    };
    expectStat('usr/bin/driftwarden', 0o755);
    expectStat('usr/bin/driftwarden-controller', 0o755);
    expectStat('usr/lib/driftwarden/node', 0o755);
    expectStat('usr/lib/driftwarden/controller/node_modules/better-sqlite3/build/Release/better_sqlite3.node', 0o644);
    expectStat('lib/systemd/system/driftwarden-agent.service', 0o644);
    expectStat('lib/systemd/system/driftwarden-controller.service', 0o644);
    expectStat('etc/driftwarden/agent.yaml', 0o644);
    expectStat('etc/driftwarden/controller.yaml', 0o640, 0, gid);
    expectStat('var/lib/driftwarden', 0o700);
    expectStat('var/lib/driftwarden-controller', 0o700, uid, gid);
    expectStat('usr/share/man/man1/driftwarden.1.gz', 0o644);
    // Enabled (the symlink deb-systemd-helper makes), not started: no systemd runs in a chroot.
    for (const unit of ['driftwarden-agent.service', 'driftwarden-controller.service']) {
      expect(lstatSync(join(root.dir, 'etc/systemd/system/multi-user.target.wants', unit)).isSymbolicLink()).toBe(true);
    }
  });

  it('create the controller a system user with no login', () => {
    const user = passwdEntry('driftwarden')!;
    expect(Number(user[2])).toBeLessThan(1000);
    expect(user[5]).toBe('/var/lib/driftwarden-controller');
    expect(user[6]).toMatch(/nologin|false/);
  });

  it('mark the configs under /etc/driftwarden as conffiles', () => {
    expect(ok(['dpkg-query', '-W', '-f', '${Conffiles}', 'driftwarden-agent'])).toMatch(
      /^ \/etc\/driftwarden\/agent\.yaml [0-9a-f]{32}$/m,
    );
    expect(ok(['dpkg-query', '-W', '-f', '${Conffiles}', 'driftwarden-controller'])).toMatch(
      /^ \/etc\/driftwarden\/controller\.yaml [0-9a-f]{32}$/m,
    );
  });

  it('print their version', () => {
    expect(ok(['driftwarden', '--version']).trim()).toBe(VERSION);
    expect(ok(['driftwarden-controller', '--version']).trim()).toBe(VERSION);
  });

  it('run the controller on the runtime it carries: its SQLite store works as the driftwarden user', () => {
    const out = ok([
      'runuser',
      '-u',
      'driftwarden',
      '--',
      'driftwarden-controller',
      'token',
      'create',
      '--config',
      '/etc/driftwarden/controller.yaml',
      '--role',
      'admin',
      '--name',
      'packaging-test',
    ]);
    expect(out).toMatch(/^dwt_/m);
    const db = statSync(join(root.dir, 'var/lib/driftwarden-controller/controller.db'));
    expect(db.uid).toBe(Number(passwdEntry('driftwarden')![2]));
  });

  it('check the root they are installed in: clean against a manifest built there, drift after a change', () => {
    ok(['driftwarden', 'keygen', '--out', '/root/bake-keys']);
    ok([
      'driftwarden',
      'manifest',
      'build',
      '--root',
      '/',
      '--image-id',
      'debian-12-test',
      '--config',
      '/etc/driftwarden/agent.yaml',
      '--sign-key',
      '/root/bake-keys/bake.key',
      '--out',
      '/etc/driftwarden/manifest.json',
    ]);
    const clean = inRoot([
      'driftwarden',
      'check',
      '--config',
      '/etc/driftwarden/agent.yaml',
      '--pubkey',
      '/root/bake-keys/bake.pub',
    ]);
    expect(clean.out, clean.err).toContain('CLEAN');
    expect(clean.code).toBe(0);

    appendFileSync(join(root.dir, 'etc/issue'), 'changed after the bake\n');
    const drift = inRoot([
      'driftwarden',
      'check',
      '--config',
      '/etc/driftwarden/agent.yaml',
      '--pubkey',
      '/root/bake-keys/bake.pub',
      '--json',
    ]);
    expect(drift.code).toBe(1);
    expect(drift.out).toContain('/etc/issue');
  });

  it('carry units that pass systemd-analyze verify in the installed root', () => {
    // --man=no: the root has no man-db; the pages themselves are checked above.
    for (const unit of ['driftwarden-agent.service', 'driftwarden-controller.service']) {
      const r = sh('systemd-analyze', ['verify', `--root=${root.dir}`, '--man=no', `/lib/systemd/system/${unit}`]);
      expect({ unit, code: r.code, err: r.err }).toEqual({ unit, code: 0, err: '' });
    }
  });

  it('remove cleanly, keeping the conffiles, then purge everything they made', () => {
    // The manifest is the image's, not the package's: dpkg leaves files it does not own (and says so).
    rmSync(join(root.dir, 'etc/driftwarden/manifest.json'));
    rmSync(join(root.dir, 'etc/driftwarden/manifest.json.sig'), { force: true });

    ok(['dpkg', '-r', 'driftwarden-agent', 'driftwarden-controller']);
    expect(existsSync(join(root.dir, 'usr/bin/driftwarden'))).toBe(false);
    expect(existsSync(join(root.dir, 'usr/lib/driftwarden'))).toBe(false);
    expect(existsSync(join(root.dir, 'etc/driftwarden/agent.yaml'))).toBe(true);
    expect(ok(['dpkg-query', '-W', '-f', '${db:Status-Abbrev}', 'driftwarden-agent']).trim()).toBe('rc');

    ok(['dpkg', '-P', 'driftwarden-agent', 'driftwarden-controller']);
    for (const gone of [
      'etc/driftwarden',
      'var/lib/driftwarden',
      'var/lib/driftwarden-controller',
      'etc/systemd/system/multi-user.target.wants/driftwarden-agent.service',
      'etc/systemd/system/multi-user.target.wants/driftwarden-controller.service',
    ]) {
      expect({ gone, exists: existsSync(join(root.dir, gone)) }).toEqual({ gone, exists: false });
    }
    expect(inRoot(['dpkg-statoverride', '--list', '/etc/driftwarden/controller.yaml']).code).not.toBe(0);
    expect(inRoot(['dpkg-query', '-W', 'driftwarden-agent']).code).not.toBe(0);
  });
});

describe('lintian', () => {
  it('finds nothing in the packages that packaging/README.md does not explain', () => {
    const { agent, controller } = debs();
    const r = sh('lintian', [
      '--no-tag-display-limit',
      '--display-info',
      '--pedantic',
      '--show-overrides',
      agent,
      controller,
    ]);
    expect(r.err).not.toMatch(/^(internal error|error)/im);
    // Every tag lintian still emits, and every override, is explained by name in packaging/README.md.
    const tags = [
      ...new Set(r.out.split('\n').flatMap((l) => /^[EWIPXO]: [^:]+: ([a-z0-9][a-z0-9+.-]*)/.exec(l)?.[1] ?? [])),
    ];
    const readme = readFileSync(join(REPO, 'packaging/README.md'), 'utf8');
    expect(tags.filter((t) => !readme.includes(`\`${t}\``))).toEqual([]);
    // Errors and warnings are fixed or overridden; only informational and pedantic tags may remain.
    expect(r.out.split('\n').filter((l) => /^[EW]: /.test(l))).toEqual([]);
  }, 900_000);
});
