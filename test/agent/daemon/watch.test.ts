/**
 * The change watcher on a temp root: changes come in one coalesced batch of host paths, the excluded
 * state directory never shows, and the symlinks chokidar meets in its initial walk are not changes
 * (it reports them as added despite ignoreInitial: paulmillr/chokidar#804, #1270).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChangeWatcher } from '../../../agent/daemon/watch.js';
import { silentLogger } from '../../../agent/log.js';
import { HostRoot } from '../../../agent/root.js';
import { tempDir } from '../../helpers/tmp.js';
import { until } from '../../helpers/wait.js';

/**
 * A file written now, and the batch that reports it: the watcher hands over changes in order, so once
 * the sentinel's batch is in, every batch for what came before it is in too. This is how the tests
 * see that nothing else was reported, without sleeping for a guessed while.
 */
async function sentinel(dir: string, batches: string[][]): Promise<void> {
  writeFileSync(join(dir, 'etc/zz-sentinel'), 'x');
  await until(
    () => batches.some((b) => b.includes('/etc/zz-sentinel')),
    () => `the sentinel's batch; batches: ${JSON.stringify(batches)}`,
    10_000,
    10,
  );
}
let watcher: ChangeWatcher | null = null;
afterEach(async () => {
  await watcher?.close();
  watcher = null;
});

async function watched(setup: (dir: string) => void) {
  const dir = tempDir();
  mkdirSync(join(dir, 'etc/alternatives'), { recursive: true });
  mkdirSync(join(dir, 'var/lib/driftwarden'), { recursive: true });
  setup(dir);
  const root = await HostRoot.open(dir);
  const batches: string[][] = [];
  const seen: string[] = [];
  watcher = new ChangeWatcher(root, ['/etc', '/var/lib'], (b) => batches.push(b), silentLogger, {
    quietMs: 100,
    exclude: ['/var/lib/driftwarden'],
    onPath: (p) => seen.push(p),
  });
  await watcher.start();
  return { dir, batches, seen };
}

describe('ChangeWatcher', () => {
  it('reports nothing for what was there before it started, symlinks included', async () => {
    const { dir, batches, seen } = await watched((d) => {
      writeFileSync(join(d, 'etc/hosts'), '127.0.0.1 localhost\n');
      // Links to files that exist (a dangling link does not trigger it), like /etc/alternatives.
      for (let i = 0; i < 20; i++) symlinkSync(join(d, 'etc/hosts'), join(d, `etc/alternatives/tool-${i}`));
    });
    await sentinel(dir, batches);
    // Only the sentinel, written after start: nothing that was there before.
    expect(seen).toEqual(['/etc/zz-sentinel']);
    expect(batches).toEqual([['/etc/zz-sentinel']]);
    expect(watcher!.status).toMatchObject({ state: 'active' });
  });

  it('hands over a burst of changes as one batch of host paths, each path also seen as it came', async () => {
    const { dir, batches, seen } = await watched((d) => {
      writeFileSync(join(d, 'etc/vimrc'), '');
      symlinkSync(join(d, 'etc/vimrc'), join(d, 'etc/alternatives/editor'));
    });
    writeFileSync(join(dir, 'etc/hosts'), '10.0.0.1 evil\n');
    writeFileSync(join(dir, 'etc/alternatives/new'), 'x');
    writeFileSync(join(dir, 'var/lib/driftwarden/seq'), '7\n');
    await until(() => batches.length > 0, 'the first batch', 10_000, 10);
    await sentinel(dir, batches);
    // One batch for the burst (then the sentinel's own): the burst was not split, nothing else came.
    expect(batches).toEqual([['/etc/alternatives/new', '/etc/hosts'], ['/etc/zz-sentinel']]);
    const beforeSentinel = seen.slice(0, seen.indexOf('/etc/zz-sentinel'));
    expect([...new Set(beforeSentinel)].sort()).toEqual(['/etc/alternatives/new', '/etc/hosts']);
  });
});
