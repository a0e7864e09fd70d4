/**
 * @module A minimal Debian 12 root for the packaging tests: made once with debootstrap, cached as a
 * tarball (keyed by suite, variant and what it includes) and extracted fresh for each run. Commands
 * run inside it through chroot, in a private mount namespace so /proc and /dev go away with the
 * command even when it fails.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Debian package that provides each tool the packaging tests run (CI installs these). */
export const TOOLS: Record<string, string> = {
  'dpkg-deb': 'dpkg',
  debootstrap: 'debootstrap',
  lintian: 'lintian',
  'systemd-analyze': 'systemd',
  strip: 'binutils',
  objdump: 'binutils',
  unshare: 'util-linux',
  chroot: 'coreutils',
  tar: 'tar',
};

/** Fails (never skips) with what to install when the machine cannot run the packaging tests. */
export function requirePackagingTools(): void {
  if (process.getuid?.() !== 0)
    throw new Error('the packaging tests need root (debootstrap, chroot, dpkg -i into a test root)');
  const missing = Object.keys(TOOLS).filter(
    (tool) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0,
  );
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => TOOLS[t]!))].join(' ');
    throw new Error(`the packaging tests need ${missing.join(', ')}: apt-get install ${pkgs}`);
  }
}

const SUITE = 'bookworm';
const VARIANT = 'minbase';
/**
 * What every Debian 12 server has beyond minbase: systemd (`systemd-analyze verify --root` needs the
 * targets the units hang off) and procps (kill, for the agent's ExecReload).
 */
const INCLUDE = ['systemd', 'procps'];
const MIRROR = process.env.DRIFTWARDEN_TEST_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

export function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? '/var/cache', 'driftwarden-test');
}

function must(r: SpawnSyncReturns<string>, what: string): SpawnSyncReturns<string> {
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${r.stderr}\n${r.stdout}`.slice(0, 8000));
  return r;
}

/** The cached tarball of the minimal root, made with debootstrap on first use (about a minute). */
export function cachedRootTarball(): string {
  const arch = must(
    spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }),
    'dpkg --print-architecture',
  ).stdout.trim();
  const tarball = join(cacheDir(), `${SUITE}-${VARIANT}+${INCLUDE.join('+')}-${arch}.tar`);
  if (existsSync(tarball)) return tarball;
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), 'debootstrap-'));
  try {
    must(
      spawnSync(
        'debootstrap',
        [`--variant=${VARIANT}`, `--include=${INCLUDE.join(',')}`, `--arch=${arch}`, SUITE, join(work, 'root'), MIRROR],
        { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
      ),
      `debootstrap ${SUITE}`,
    );
    must(
      spawnSync('tar', ['-C', join(work, 'root'), '-cf', `${tarball}.part`, '.'], { encoding: 'utf8' }),
      'tar of the debootstrap root',
    );
    renameSync(`${tarball}.part`, tarball);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return tarball;
}

export interface DebianRoot {
  dir: string;
  /** Runs argv inside the root (chroot, /proc and /dev mounted in a private namespace), with a clean environment. */
  run(argv: string[], opts?: { env?: Record<string, string>; input?: string }): SpawnSyncReturns<string>;
  remove(): void;
}

/** A fresh copy of the cached root under the system's temp directory. */
export function freshDebianRoot(): DebianRoot {
  const tarball = cachedRootTarball();
  const dir = mkdtempSync(join(tmpdir(), 'dw-debian-root-'));
  must(spawnSync('tar', ['-C', dir, '-xf', tarball], { encoding: 'utf8' }), 'extracting the cached root');
  const script =
    'set -e; root="$1"; shift; mount -t proc proc "$root/proc"; mount --rbind /dev "$root/dev"; exec chroot "$root" "$@"';
  return {
    dir,
    run(argv, opts = {}) {
      return spawnSync(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          '--fork',
          '--',
          'sh',
          '-c',
          script,
          'sh',
          dir,
          'env',
          '-i',
          'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          'HOME=/root',
          'LANG=C.UTF-8',
          ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
          ...argv,
        ],
        {
          encoding: 'utf8',
          input: opts.input,
          maxBuffer: 64 * 1024 * 1024,
          timeout: 300_000,
        },
      );
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
