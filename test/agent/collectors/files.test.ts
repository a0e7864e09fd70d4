import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, statSync, utimesSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { files, expandRoots } from '../../../agent/collectors/files.js';
import { StatCache } from '../../../agent/collectors/stat-cache.js';
import type { CollectContext } from '../../../agent/collectors/types.js';
import { execProgram } from '../../../agent/exec.js';
import { silentLogger } from '../../../agent/log.js';
import { HostRoot } from '../../../agent/root.js';
import { defaultRules } from '../../../shared/schema/rules.js';
import type { FileItem } from '../../../shared/schema/items.js';
import { copyFixture, FIXTURES, tempDir } from '../../helpers/tmp.js';

function ctxFor(dir: string, extra: Partial<CollectContext> = {}): CollectContext {
  return { root: new HostRoot(dir), rules: defaultRules(), exec: execProgram, log: silentLogger, ...extra };
}

async function collect(dir: string, extra: Partial<CollectContext> = {}): Promise<Map<string, FileItem>> {
  const out = await files.collect(ctxFor(dir, extra));
  return new Map(out.items.map((i) => [i.key, i]));
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('files collector', () => {
  it('records type, mode, owner, size and sha256 of regular files under the default roots', async () => {
    const dir = copyFixture(join(FIXTURES, 'files/basic'));
    chmodSync(join(dir, 'usr/bin/tool'), 0o4755);
    const items = await collect(dir);
    const st = lstatSync(join(dir, 'etc/motd'));
    expect(items.get('/etc/motd')).toEqual({
      key: '/etc/motd',
      type: 'file',
      mode: '0644',
      uid: st.uid,
      gid: st.gid,
      size: 8,
      sha256: sha('Welcome\n'),
    });
    expect(items.get('/usr/bin/tool')).toMatchObject({ type: 'file', mode: '4755' });
    expect(items.get('/etc/ssh')).toMatchObject({ type: 'dir' });
    expect(items.get('/etc/ssh')).not.toHaveProperty('size');
  });

  it('records symlinks with their target and never follows them, inside or out of the tree', async () => {
    const dir = copyFixture(join(FIXTURES, 'files/basic'));
    const items = await collect(dir);
    expect(items.get('/etc/motd.link')).toMatchObject({ type: 'symlink', target: 'motd' });
    expect(items.get('/etc/abs-escape')).toMatchObject({ type: 'symlink', target: '/etc/shadow' });
    expect(items.get('/etc/abs-escape')).not.toHaveProperty('sha256');
    expect(items.get('/etc/rel-escape')).toMatchObject({ type: 'symlink', target: '../../../../../../etc/shadow' });
    // A symlinked directory is a leaf: nothing under /opt/data is walked.
    expect(items.get('/opt/data')).toMatchObject({ type: 'symlink', target: '/var/lib' });
    expect([...items.keys()].some((k) => k.startsWith('/opt/data/'))).toBe(false);
  });

  it('leaves out the default ignores: resolv.conf, ssh host keys, logs', async () => {
    const dir = copyFixture(join(FIXTURES, 'files/basic'));
    const items = await collect(dir);
    expect(items.has('/etc/resolv.conf')).toBe(false);
    expect(items.has('/etc/ssh/ssh_host_ed25519_key')).toBe(false);
    expect(items.has('/etc/app.log')).toBe(false);
    expect(items.has('/etc/ssh/sshd_config')).toBe(true);
  });

  it('applies ignore globs to names with a newline, CR or U+2028 as the controller policy does (shared/glob.ts)', async () => {
    const dir = tempDir();
    for (const c of ['\n', '\r', '\u2028']) {
      mkdirSync(join(dir, `etc/d${c}d`), { recursive: true });
      writeFileSync(join(dir, `etc/d${c}d/x.log`), 'ignored');
      writeFileSync(join(dir, `etc/d${c}d/x.conf`), 'kept');
    }
    const rules = { ...defaultRules(), files: { roots: ['/etc'], ignore: ['**/*.log'] } };
    const keys = [...(await collect(dir, { rules })).keys()];
    expect(keys.filter((k) => k.endsWith('.log'))).toEqual([]);
    expect(keys.filter((k) => k.endsWith('.conf')).sort()).toEqual([
      '/etc/d\nd/x.conf',
      '/etc/d\rd/x.conf',
      '/etc/d\u2028d/x.conf',
    ]);
  });

  it('expands /home/*/.ssh and skips roots that do not exist', async () => {
    const dir = copyFixture(join(FIXTURES, 'files/basic'));
    expect(expandRoots(ctxFor(dir), ['/home/*/.ssh', '/boot', '/etc', '/etc/ssh'])).toEqual([
      '/boot',
      '/etc',
      '/home/alice/.ssh',
      '/home/bob/.ssh',
    ]);
    const items = await collect(dir);
    expect(items.has('/home/alice/.ssh/authorized_keys')).toBe(true);
    expect(items.has('/home/bob/.profile')).toBe(false);
    expect(items.has('/root/.ssh/authorized_keys')).toBe(true);
    expect([...items.keys()].some((k) => k.startsWith('/boot'))).toBe(false);
  });

  it('expands a root glob over hidden and oddly named directories too: none is a blind spot', () => {
    const dir = tempDir();
    for (const u of ['.hidden', 'a\nb', 'carol']) mkdirSync(join(dir, 'home', u, '.ssh'), { recursive: true });
    expect(expandRoots(ctxFor(dir), ['/home/*/.ssh'])).toEqual([
      '/home/.hidden/.ssh',
      '/home/a\nb/.ssh',
      '/home/carol/.ssh',
    ]);
  });

  it('records fifos, sockets and devices by type without reading them', async () => {
    const dir = copyFixture(join(FIXTURES, 'files/basic'));
    execFileSync('mkfifo', [join(dir, 'etc/pipe')]);
    const items = await collect(dir);
    expect(items.get('/etc/pipe')).toMatchObject({ type: 'fifo' });
    expect(items.get('/etc/pipe')).not.toHaveProperty('sha256');
  });

  it('returns items sorted by path with unique keys', async () => {
    const dir = copyFixture(join(FIXTURES, 'files/basic'));
    mkdirSync(join(dir, 'etc/a'));
    writeFileSync(join(dir, 'etc/a/x'), '1');
    writeFileSync(join(dir, 'etc/a-b'), '2');
    const out = await files.collect(ctxFor(dir));
    const keys = out.items.map((i) => i.key);
    expect(keys).toEqual([...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('hashes large files across many batches the same as a one-shot hash', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    const big = Buffer.alloc(5 * 1024 * 1024 + 17, 7);
    writeFileSync(join(dir, 'etc/big'), big);
    for (let i = 0; i < 300; i++) writeFileSync(join(dir, `etc/f${i}`), `file ${i}\n`);
    const items = await collect(dir, { rules: { ...defaultRules(), files: { roots: ['/etc'], ignore: [] } } });
    expect(items.get('/etc/big')!.sha256).toBe(createHash('sha256').update(big).digest('hex'));
    expect(items.get('/etc/f299')!.sha256).toBe(sha('file 299\n'));
  });
});

describe('the stat cache', () => {
  const rules = { ...defaultRules(), files: { roots: ['/etc'], ignore: [] } };

  it('re-scans an unchanged tree from the cache, and re-reads a file whose content changed', async () => {
    const dir = copyFixture(join(FIXTURES, 'files/basic'));
    const cacheFile = join(tempDir(), 'stat-cache');
    const first = new StatCache(dir);
    await collect(dir, { rules, statCache: first });
    first.save(cacheFile);
    expect(statSync(cacheFile).mode & 0o777).toBe(0o600);

    const second = StatCache.load(cacheFile, dir);
    await collect(dir, { rules, statCache: second });
    expect(second.misses).toBe(0);
    expect(second.hits).toBeGreaterThan(0);

    // Same size, mtime put back: ctime still moves, so the change is seen.
    const motd = join(dir, 'etc/motd');
    const before = statSync(motd);
    writeFileSync(motd, 'Welcomf\n');
    utimesSync(motd, before.atime, before.mtime);
    const third = StatCache.load(cacheFile, dir);
    const items = await collect(dir, { rules, statCache: third });
    expect(items.get('/etc/motd')!.sha256).toBe(sha('Welcomf\n'));
  });

  it('is bypassed by a full re-hash, which defeats a cache fooled by a reset clock', async () => {
    const dir = copyFixture(join(FIXTURES, 'files/basic'));
    const cache = new StatCache(dir);
    await collect(dir, { rules, statCache: cache });
    const motd = join(dir, 'etc/motd');
    writeFileSync(motd, 'Welcomf\n');
    // What a reset clock achieves: the cache entry matches the new inode, size, mtime and ctime.
    const st = statSync(motd);
    cache.set('/etc/motd', st.ino, st.size, st.mtimeMs, st.ctimeMs, sha('Welcome\n'));
    expect((await collect(dir, { rules, statCache: cache })).get('/etc/motd')!.sha256).toBe(sha('Welcome\n'));
    expect((await collect(dir, { rules, statCache: cache, fullRehash: true })).get('/etc/motd')!.sha256).toBe(
      sha('Welcomf\n'),
    );
  });

  it('treats a cache for another root, or a corrupt one, as empty', () => {
    const file = join(tempDir(), 'c');
    const c = new StatCache('/a');
    c.set('/etc/x', 1, 2, 3, 4, 'f'.repeat(64));
    c.save(file);
    expect(StatCache.load(file, '/b').size).toBe(0);
    expect(StatCache.load(file, '/a').size).toBe(1);
    writeFileSync(file, readFileSync(file, 'utf8').replace('f'.repeat(64), 'zz'));
    expect(StatCache.load(file, '/a').size).toBe(0);
  });
});
