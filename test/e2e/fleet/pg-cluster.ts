/**
 * @module A private PostgreSQL cluster for tests that restart or kill the database: initdb in a temp
 * directory, run by the `postgres` user on a port of its own, so the shared test server (5432) that
 * other tests use is never touched. pgClusterUnavailable() says why one cannot be made here.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function pgBin(): string | null {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin/pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], 'bin') : null;
}

function ids(user: string): { uid: number; gid: number } | null {
  const r = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', user], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return null;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

export function pgClusterUnavailable(): string | null {
  if (!pgBin()) return 'no PostgreSQL server binaries under /usr/lib/postgresql/*/bin';
  if (process.getuid?.() !== 0) return 'a private PostgreSQL cluster is run as the postgres user, which needs root';
  if (!ids('postgres')) return 'there is no postgres user';
  return null;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const addr = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return typeof addr === 'object' && addr ? addr.port : 0;
}

export class PgCluster {
  readonly dir: string;
  port = 0;
  private readonly bin: string;

  constructor() {
    const bin = pgBin();
    if (!bin) throw new Error('no PostgreSQL server binaries');
    this.bin = bin;
    this.dir = mkdtempSync(join(tmpdir(), 'dw-pgcluster-'));
    const u = ids('postgres')!;
    chownSync(this.dir, u.uid, u.gid);
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private run(cmd: string, args: string[]): void {
    const r = spawnSync('runuser', ['-u', 'postgres', '--', join(this.bin, cmd), ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr || r.stdout}`);
  }

  private ctl(action: string, extra: string[] = []): void {
    const data = join(this.dir, 'data');
    // -k: the socket goes in our own directory, not the shared /var/run/postgresql.
    this.run('pg_ctl', [
      '-D',
      data,
      '-l',
      join(this.dir, 'server.log'),
      '-w',
      '-t',
      '30',
      '-o',
      `-p ${this.port} -k ${this.dir} -c fsync=off -c max_connections=100`,
      action,
      ...extra,
    ]);
  }

  async init(): Promise<void> {
    this.port = await freePort();
    this.run('initdb', ['-D', join(this.dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync']);
    this.ctl('start');
  }

  /** An immediate restart: the server dies without a checkpoint (as in a crash) and comes back. */
  restart(): void {
    this.ctl('restart', ['-m', 'immediate']);
  }

  stopNow(): void {
    this.ctl('stop', ['-m', 'immediate']);
  }

  start(): void {
    this.ctl('start');
  }

  destroy(): void {
    try {
      this.ctl('stop', ['-m', 'immediate']);
    } catch {
      // already stopped
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
