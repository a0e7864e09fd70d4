import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HashPool, type HashResult } from '../../../agent/collectors/hash-pool.js';
import { tempDir } from '../../helpers/tmp.js';

const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

/** Files of every kind the hasher meets, with the answer each must get. */
function fixture(): { path: string; size: number; want: HashResult }[] {
  const dir = tempDir();
  const big = randomBytes(5 * 1024 * 1024 + 17); // several 1 MB reads, the last one short
  writeFileSync(join(dir, 'big'), big);
  writeFileSync(join(dir, 'small'), 'hello\n');
  writeFileSync(join(dir, 'empty'), '');
  mkdirSync(join(dir, 'dir'));
  symlinkSync('small', join(dir, 'link'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  return [
    { path: join(dir, 'big'), size: big.length, want: { sha256: sha(big) } },
    { path: join(dir, 'small'), size: 6, want: { sha256: sha('hello\n') } },
    { path: join(dir, 'empty'), size: 0, want: { sha256: sha('') } },
    { path: join(dir, 'missing'), size: 0, want: { error: 'ENOENT' } },
    { path: join(dir, 'dir'), size: 0, want: { error: 'ENOTFILE' } },
    // never followed: a file swapped for a symlink since the walk is refused
    { path: join(dir, 'link'), size: 0, want: { error: 'ELOOP' } },
    // opened without blocking, and refused: a scan cannot hang on a pipe
    { path: join(dir, 'fifo'), size: 0, want: { error: 'ENOTFILE' } },
  ];
}

describe('the hash pool', () => {
  for (const size of [0, 1, 2]) {
    it(`gives every file its digest or error code with ${size === 0 ? 'no worker (this thread)' : `${size} worker(s)`}`, async () => {
      const files = fixture();
      const pool = new HashPool(size);
      try {
        const all = Promise.all(files.map((f) => pool.hash(f.path, f.size)));
        await pool.drain(); // sends the partly filled batch, as the collector does at the end of a walk
        const got = await all;
        expect(got).toEqual(files.map((f) => f.want));
        expect(pool.filesHashed).toBe(files.length);
        expect(pool.bytesHashed).toBe(files[0]!.size + 6);
        expect(pool.pending).toBe(0);
      } finally {
        await pool.close();
      }
    });
  }

  it('with no worker, lets the event loop in while it reads a large file', async () => {
    const dir = tempDir();
    const data = randomBytes(48 * 1024 * 1024);
    writeFileSync(join(dir, 'large'), data);
    const pool = new HashPool(0);
    let ticks = 0;
    let ticksWhenDone = -1;
    const timer = setInterval(() => ticks++, 1);
    try {
      const r = await pool.hash(join(dir, 'large'), data.length).finally(() => (ticksWhenDone = ticks));
      expect(r).toEqual({ sha256: sha(data) });
      // 48 reads of 1 MB in slices of ~20 ms: timers ran between the slices, not only after the file
      expect(ticksWhenDone).toBeGreaterThan(0);
    } finally {
      clearInterval(timer);
      await pool.close();
    }
  });

  it('with no worker, closes the file it was in the middle of when closed', async () => {
    const dir = tempDir();
    const large = join(dir, 'large');
    writeFileSync(large, randomBytes(128 * 1024 * 1024));
    const openOnLarge = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === large;
        } catch {
          return false;
        }
      }).length;
    const pool = new HashPool(0);
    void pool.hash(large, 128 * 1024 * 1024);
    pool.flush();
    await new Promise((r) => setImmediate(r));
    expect(openOnLarge()).toBe(1); // one slice in: the file is open
    await pool.close();
    expect(openOnLarge()).toBe(0);
  });
});
