import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  type Stats,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import picomatch from 'picomatch';
import { cancelEarlyWalk, files, literalBase, startWalkEarly } from '../../../agent/collectors/files.js';
import { Walk } from '../../../agent/collectors/walker.js';
import { StatCache, statPrefix, walkOrder } from '../../../agent/collectors/stat-cache.js';
import type { CollectContext } from '../../../agent/collectors/types.js';
import { execProgram } from '../../../agent/exec.js';
import { silentLogger } from '../../../agent/log.js';
import { HostRoot } from '../../../agent/root.js';
import { defaultRules, type CollectionRules } from '../../../shared/schema/rules.js';
import type { FileItem } from '../../../shared/schema/items.js';
import { tempDir } from '../../helpers/tmp.js';

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const rulesFor = (roots: string[], ignore: string[] = []): CollectionRules => ({
  ...defaultRules(),
  files: { roots, ignore },
});

function ctx(dir: string, rules: CollectionRules, extra: Partial<CollectContext> = {}): CollectContext {
  return { root: new HostRoot(dir), rules, exec: execProgram, log: silentLogger, ...extra };
}

/** The walk as the collector did it on one thread before the walk worker: the reference. */
function referenceWalk(dir: string, roots: string[], ignore: string[]): Map<string, FileItem> {
  const ignored = ignore.length > 0 ? picomatch(ignore, { dot: true }) : () => false;
  const out = new Map<string, FileItem>();
  const type = (st: Stats): FileItem['type'] =>
    st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : 'socket';
  const visit = (host: string) => {
    const real = join(dir, host);
    const st = lstatSync(real, { throwIfNoEntry: false });
    if (!st) return;
    const item: FileItem = {
      key: host,
      type: type(st),
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      uid: st.uid,
      gid: st.gid,
    };
    if (item.type === 'file') {
      item.size = st.size;
      item.sha256 = sha(readFileSync(real));
    }
    if (item.type === 'symlink') item.target = readlinkSync(real);
    out.set(host, item);
    if (item.type !== 'dir') return;
    for (const name of readdirSync(real).sort()) {
      const child = host === '/' ? `/${name}` : `${host}/${name}`;
      if (!ignored(child)) visit(child);
    }
  };
  for (const r of roots) if (!ignored(r)) visit(r);
  return out;
}

const NAMES = [
  'a',
  'a-b',
  'a.b',
  'b',
  'x.log',
  '__pycache__',
  'm.pyc',
  'é',
  '日本',
  'sp ace',
  '.hidden',
  'ssh_host_key',
];

describe('the files walk (worker thread)', () => {
  it('finds what the one-thread walk with picomatch found, for any tree and ignore globs', async () => {
    const globPool = [
      '/r/a/**',
      '/r/a-b/*',
      '**/*.log',
      '**/__pycache__',
      '**/__pycache__/**',
      '**/*.pyc',
      '/r/a/b',
      '/r/{a,b}/a.b',
      '/r/?/x.log',
      '/r/[ab]/é',
      '!/r/a/**',
      '/r/*/ssh_host_*',
      '/r/a.b/**/b',
      '/r',
      '**/.hidden',
      '/r/日本/**',
    ];
    const tree = fc.array(fc.array(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 4 }), {
      minLength: 1,
      maxLength: 25,
    });
    await fc.assert(
      fc.asyncProperty(tree, fc.subarray(globPool), async (paths, ignore) => {
        const dir = tempDir();
        mkdirSync(join(dir, 'r'));
        for (const p of paths) {
          const full = join(dir, 'r', ...p);
          try {
            mkdirSync(join(full, '..'), { recursive: true });
            if (p.length % 2 === 0) mkdirSync(full, { recursive: true });
            else writeFileSync(full, p.join('/'));
          } catch {
            // a file where a directory was wanted, or the reverse: skip this path
          }
        }
        try {
          symlinkSync('../a', join(dir, 'r', 'link'));
        } catch {
          // exists
        }
        const out = await files.collect(ctx(dir, rulesFor(['/r'], ignore)));
        const want = referenceWalk(dir, ['/r'], ignore);
        expect(new Map(out.items.map((i) => [i.key, i]))).toEqual(want);
        expect(out.items.map((i) => i.key)).toEqual([...want.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
        rmSync(dir, { recursive: true, force: true });
      }),
      { numRuns: 60 },
    );
  });

  it("reads a glob's literal base only when matches must lie under it", () => {
    expect(literalBase('/etc/ssh/ssh_host_*')).toBe('/etc/ssh');
    expect(literalBase('/var/log/**')).toBe('/var/log');
    expect(literalBase('/etc/resolv.conf')).toBe('/etc/resolv.conf');
    expect(literalBase('**/*.log')).toBeNull();
    expect(literalBase('!/x/**')).toBeNull();
    expect(literalBase('/a/b/')).toBeNull();
    expect(literalBase('etc/*')).toBeNull();
  });

  it('fails the collection when the walk fails, as the one-thread walk did', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'etc', 'f'), 'x');
    // a root that is a file: walked as a leaf, not an error
    const out = await files.collect(ctx(dir, rulesFor(['/etc/f'])));
    expect(out.items.map((i) => i.key)).toEqual(['/etc/f']);
  });
});

describe('the stat cache, looked up by the walk worker', () => {
  function tree(): string {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc/sub'), { recursive: true });
    writeFileSync(join(dir, 'etc/a'), 'a\n');
    writeFileSync(join(dir, 'etc/sub/b'), 'b\n');
    writeFileSync(join(dir, 'etc/日本 é'), 'wide\n');
    return dir;
  }
  const rules = rulesFor(['/etc']);

  it('answers an unchanged tree from the cache without reading (or rewriting) the cache here', async () => {
    const dir = tree();
    const file = join(tempDir(), 'cache');
    const first = StatCache.load(file, dir);
    const a = await files.collect(ctx(dir, rules, { statCache: first }));
    expect(first.misses).toBe(3);
    first.save(file);
    const savedAt = statSync(file).mtimeMs;

    const second = StatCache.load(file, dir);
    const b = await files.collect(ctx(dir, rules, { statCache: second }));
    expect([second.hits, second.misses]).toEqual([3, 0]);
    expect(b.items).toEqual(a.items);
    expect(b.items.find((i) => i.key === '/etc/日本 é')!.sha256).toBe(sha('wide\n'));
    second.save(file);
    expect(statSync(file).mtimeMs).toBe(savedAt); // unchanged: not rewritten
    expect(second.size).toBe(3);
  });

  it('re-reads a changed file and drops the entries of files gone, then saves', async () => {
    const dir = tree();
    const file = join(tempDir(), 'cache');
    const first = StatCache.load(file, dir);
    await files.collect(ctx(dir, rules, { statCache: first }));
    first.save(file);

    writeFileSync(join(dir, 'etc/a'), 'changed\n');
    rmSync(join(dir, 'etc/sub/b'));
    mkdirSync(join(dir, 'etc/sub/b')); // the path is now a directory: its entry goes too
    const second = StatCache.load(file, dir);
    const out = await files.collect(ctx(dir, rules, { statCache: second }));
    expect(out.items.find((i) => i.key === '/etc/a')!.sha256).toBe(sha('changed\n'));
    expect([second.hits, second.misses]).toEqual([1, 1]);
    expect(second.size).toBe(2);
    second.save(file);
    const third = StatCache.load(file, dir);
    expect(third.size).toBe(2);
    expect(
      third.lookup(
        '/etc/a',
        statSync(join(dir, 'etc/a')).ino,
        8,
        statSync(join(dir, 'etc/a')).mtimeMs,
        statSync(join(dir, 'etc/a')).ctimeMs,
      ),
    ).toBe(sha('changed\n'));
  });

  it('ignores a cache entry whose hash field holds a tab, as loading here does', async () => {
    const dir = tree();
    const file = join(tempDir(), 'cache');
    const first = StatCache.load(file, dir);
    await files.collect(ctx(dir, rules, { statCache: first }));
    first.save(file);
    // the hash's first digit turned into a tab: still 64 characters after the stat, but seven fields
    writeFileSync(file, readFileSync(file, 'utf8').replace(/(\/etc\/a\t(?:[^\t\n]*\t){4})[0-9a-f]/, '$1\t'));
    const second = StatCache.load(file, dir);
    const out = await files.collect(ctx(dir, rules, { statCache: second }));
    expect(out.items.find((i) => i.key === '/etc/a')!.sha256).toBe(sha('a\n'));
    expect(second.misses).toBe(1);
  });
});

describe('a walk started early', () => {
  it('is taken over by a collect with the same root, rules and cache', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'etc/a'), 'a');
    const rules = rulesFor(['/etc']);
    startWalkEarly(new HostRoot(dir), rules);
    const out = await files.collect(ctx(dir, rules));
    expect(out.items.map((i) => i.key)).toEqual(['/etc', '/etc/a']);
  });

  it('is dropped when the rules differ, and the collect walks by its own rules', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    mkdirSync(join(dir, 'opt'));
    writeFileSync(join(dir, 'etc/a'), 'a');
    writeFileSync(join(dir, 'opt/b'), 'b');
    startWalkEarly(new HostRoot(dir), rulesFor(['/opt']));
    const out = await files.collect(ctx(dir, rulesFor(['/etc'])));
    expect(out.items.map((i) => i.key)).toEqual(['/etc', '/etc/a']);
    startWalkEarly(new HostRoot(dir), rulesFor(['/etc']));
    cancelEarlyWalk();
    const again = await files.collect(ctx(dir, rulesFor(['/etc'], ['/etc/a'])));
    expect(again.items.map((i) => i.key)).toEqual(['/etc']);
  });
});

describe('the stat cache file in walk order', () => {
  it('walkOrder is the order a depth-first walk with sorted directory entries visits paths in', () => {
    const name = fc.constantFrom('a', 'a-b', 'a.b', 'a b', 'ab', 'b', 'é', '!', 'A', 'a~');
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.array(name, { minLength: 1, maxLength: 4 }).map((s) => '/' + s.join('/'))),
        (paths) => {
          // the tree those paths (and their parents) make, walked depth first
          const children = new Map<string, Set<string>>();
          const all = new Set<string>();
          for (const p of paths) {
            const parts = p.split('/').slice(1);
            for (let i = 1; i <= parts.length; i++) {
              const parent = i === 1 ? '' : '/' + parts.slice(0, i - 1).join('/');
              if (!children.has(parent)) children.set(parent, new Set());
              children.get(parent)!.add(parts[i - 1]!);
              all.add('/' + parts.slice(0, i).join('/'));
            }
          }
          const walked: string[] = [];
          const visit = (p: string) => {
            for (const n of [...(children.get(p) ?? [])].sort()) {
              walked.push(`${p}/${n}`);
              visit(`${p}/${n}`);
            }
          };
          visit('');
          expect([...all].sort(walkOrder)).toEqual(walked);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('reads a large cache alongside the walk, across chunk boundaries, and drops what is gone', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    const real = ['zz1', 'zz2 é', 'zz3'];
    for (const n of real) writeFileSync(join(dir, 'etc', n), n);
    const root = new HostRoot(dir);
    const lines: string[] = [];
    // 30,000 entries of files that are not there (well over a megabyte) before the real ones
    for (let i = 0; i < 30000; i++) lines.push(`/etc/a${String(i).padStart(6, '0')}\t1\t2\t3\t4\t${'e'.repeat(64)}`);
    for (const n of real) {
      const st = statSync(join(dir, 'etc', n));
      lines.push(`/etc/${n}\t${statPrefix(st.ino, st.size, st.mtimeMs, st.ctimeMs)}${sha(n)}`);
    }
    const file = join(tempDir(), 'cache');
    lines.sort((a, b) => walkOrder(a.split('\t')[0]!, b.split('\t')[0]!));
    writeFileSync(file, ['driftwarden-stat-cache v1', root.dir, ...lines].join('\n') + '\n');
    const cache = StatCache.load(file, root.dir);
    const out = await files.collect(ctx(dir, rulesFor(['/etc']), { statCache: cache }));
    expect([cache.hits, cache.misses]).toEqual([3, 0]);
    expect(out.items.find((i) => i.key === '/etc/zz2 é')!.sha256).toBe(sha('zz2 é'));
    expect(cache.size).toBe(3);
  });

  it('still uses a cache written in another order, and rewrites it in walk order', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc/a'), { recursive: true });
    writeFileSync(join(dir, 'etc/a/x'), 'x');
    writeFileSync(join(dir, 'etc/a-b'), 'y');
    const root = new HostRoot(dir);
    const line = (p: string, content: string) => {
      const st = statSync(join(dir, p));
      return `${p}\t${statPrefix(st.ino, st.size, st.mtimeMs, st.ctimeMs)}${sha(content)}`;
    };
    const file = join(tempDir(), 'cache');
    // plain string order puts /etc/a-b before /etc/a/x; the walk visits /etc/a/x first
    writeFileSync(
      file,
      ['driftwarden-stat-cache v1', root.dir, line('/etc/a-b', 'y'), line('/etc/a/x', 'x')].join('\n') + '\n',
    );
    const cache = StatCache.load(file, root.dir);
    await files.collect(ctx(dir, rulesFor(['/etc']), { statCache: cache }));
    expect([cache.hits, cache.misses]).toEqual([2, 0]);
    cache.save(file);
    expect(
      readFileSync(file, 'utf8')
        .split('\n')
        .slice(2, 4)
        .map((l) => l.split('\t')[0]),
    ).toEqual(['/etc/a/x', '/etc/a-b']);
  });
});

describe('a walk kept a few batches ahead of its consumer', () => {
  function wideTree(files: number): string {
    const dir = tempDir();
    for (let d = 0; d < 10; d++) {
      mkdirSync(join(dir, 'r', `d${d}`), { recursive: true });
      for (let f = 0; f < files / 10; f++) writeFileSync(join(dir, 'r', `d${d}`, `f${f}`), `${d}/${f}`);
    }
    return dir;
  }

  it('finds the same items, in the same order, as a walk without a limit', async () => {
    const dir = wideTree(10_000); // three batches of 4,096 entries
    const unlimited = await files.collect(ctx(dir, rulesFor(['/r'])));
    const limited = await files.collect(ctx(dir, rulesFor(['/r']), { walkAhead: 1, hashWorkers: 0 }));
    expect(limited.items).toHaveLength(10_011);
    expect(limited.items).toEqual(unlimited.items);
  });

  it('can be cancelled while it waits for its consumer', async () => {
    const dir = wideTree(10_000);
    const walk = new Walk({ starts: [{ host: '/r', real: join(dir, 'r') }], ignoreExact: [], ignoreRes: [], ahead: 1 });
    const batches = walk.batchesInOrder();
    const first = await batches.next();
    expect(first.done).toBe(false);
    // The worker has sent its next batch and is waiting for this one to be taken: cancel returns anyway.
    await new Promise((r) => setTimeout(r, 100));
    await walk.cancel();
  });
});
