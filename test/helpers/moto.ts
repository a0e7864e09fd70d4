/**
 * @module A local moto server (a real implementation of the AWS Auto Scaling and EC2 query APIs) for a
 * test file: found through DRIFTWARDEN_MOTO_SERVER, else `moto_server` on PATH, else pyenv's
 * versions; started on 127.0.0.1 on a free port, awaited until it answers, stopped afterwards.
 * Missing moto fails the file with what to install, unless DRIFTWARDEN_SKIP_MOTO=1 (explicit, like
 * DRIFTWARDEN_SKIP_PG in postgres.ts).
 */
import { afterAll, beforeAll } from 'vitest';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

export const SKIP_MOTO = process.env.DRIFTWARDEN_SKIP_MOTO === '1';

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where moto_server is, or null. */
export function findMotoServer(): string | null {
  const env = process.env.DRIFTWARDEN_MOTO_SERVER;
  if (env) return executable(env) ? env : null;
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    if (executable(join(dir, 'moto_server'))) return join(dir, 'moto_server');
  }
  for (const root of [process.env.PYENV_ROOT, join(homedir(), '.pyenv'), '/root/.pyenv'].filter(
    (x): x is string => !!x,
  )) {
    let versions: string[] = [];
    try {
      versions = readdirSync(join(root, 'versions')).sort().reverse();
    } catch {
      continue;
    }
    for (const v of versions) {
      const p = join(root, 'versions', v, 'bin', 'moto_server');
      if (executable(p)) return p;
    }
  }
  return null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Moto {
  url: string;
  stop(): Promise<void>;
  /** Forgets every resource (moto's reset endpoint), so each test starts from an empty account. */
  reset(): Promise<void>;
}

/** Starts moto_server; throws with what to install when it cannot be found or does not answer. */
export async function startMoto(): Promise<Moto> {
  const bin = findMotoServer();
  if (!bin) {
    throw new Error(
      'aws-asg tests need moto (a local AWS API server): install it (`pip install "moto[server]==5.2.1"`), ' +
        'point DRIFTWARDEN_MOTO_SERVER at its moto_server, or set DRIFTWARDEN_SKIP_MOTO=1 to skip these tests explicitly.',
    );
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server (${bin}) exited with ${child.exitCode}: ${stderr}`);
    try {
      const r = await fetch(`${url}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      if (r.status < 500) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`moto_server (${bin}) did not answer on ${url} within 30 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  return {
    url,
    async reset() {
      const r = await fetch(`${url}/moto-api/reset`, { method: 'POST' });
      if (!r.ok) throw new Error(`moto reset: ${r.status}`);
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/**
 * One moto server for a describe block, with SDK clients on it and dummy credentials in the
 * environment (restored afterwards): the getters are valid inside the block's tests.
 */
export function useMotoAws(region: string): { moto: () => Moto; asg: () => AutoScalingClient; ec2: () => EC2Client } {
  const saved = { ...process.env };
  let moto: Moto | undefined;
  let asg: AutoScalingClient | undefined;
  let ec2: EC2Client | undefined;
  beforeAll(async () => {
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_MAX_ATTEMPTS: '1',
    });
    delete process.env.AWS_PROFILE;
    moto = await startMoto();
    asg = new AutoScalingClient({ region, endpoint: moto.url });
    ec2 = new EC2Client({ region, endpoint: moto.url });
  }, 60_000);
  afterAll(async () => {
    process.env = saved;
    await moto?.stop();
  });
  return { moto: () => moto!, asg: () => asg!, ec2: () => ec2! };
}
