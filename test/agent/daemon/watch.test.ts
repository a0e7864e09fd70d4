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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
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
  watcher = new ChangeWatcher(root, ['/etc', '/var/lib'], (b) => batches.push(b), silentLogger, { quietMs: 100, exclude: ['/var/lib/driftwarden'], onPath: (p) => seen.push(p) });
  await watcher.start();
  return { dir, batches, seen };
}

describe('ChangeWatcher', () => {
  it('reports nothing for what was there before it started, symlinks included', async () => {
    const { batches, seen } = await watched((dir) => {
      writeFileSync(join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
      // Links to files that exist (a dangling link does not trigger it), like /etc/alternatives.
      for (let i = 0; i < 20; i++) symlinkSync(join(dir, 'etc/hosts'), join(dir, `etc/alternatives/tool-${i}`));
    });
    await sleep(600);
    expect(seen).toEqual([]);
    expect(batches).toEqual([]);
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
    for (let i = 0; i < 100 && batches.length === 0; i++) await sleep(20);
    await sleep(200);
    expect(batches).toEqual([['/etc/alternatives/new', '/etc/hosts']]);
    expect([...new Set(seen)].sort()).toEqual(['/etc/alternatives/new', '/etc/hosts']);
  });
});
