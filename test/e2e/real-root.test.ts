/**
 * This machine's own root: its dpkg database, /proc/sys, cron and /etc. A manifest built from it must
 * check clean straight after, and a change in a copy of a subtree must show.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckResultSchema } from '../../shared/schema/check.js';
import { tempDir } from '../helpers/tmp.js';

const BIN = fileURLToPath(new URL('../../bin/driftwarden.js', import.meta.url));
const dw = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

describe("on this machine's real root", () => {
  it('builds a manifest of / and checks it clean', () => {
    const work = tempDir();
    // /etc keeps the run short; packages, sysctl and cron read the real host in full.
    writeFileSync(join(work, 'agent.yaml'), 'collectors:\n  files: { roots: [/etc] }\n');
    const built = dw(
      'manifest',
      'build',
      '--root',
      '/',
      '--image-id',
      'self',
      '--config',
      join(work, 'agent.yaml'),
      '--out',
      join(work, 'm.json'),
    );
    expect(built.stderr).toBe('');
    expect(built.status).toBe(0);
    const r = dw('check', '--manifest', join(work, 'm.json'), '--json');
    const result = CheckResultSchema.parse(JSON.parse(r.stdout));
    expect(result.deviations).toEqual([]);
    expect(result.collectors.every((c) => c.ok)).toBe(true);
    expect(result.collectors.find((c) => c.collector === 'packages')!.items).toBeGreaterThan(50);
    expect(result.collectors.find((c) => c.collector === 'sysctl')!.items).toBeGreaterThan(100);
    // Every Debian root has users and groups and systemd's units.
    expect(result.collectors.find((c) => c.collector === 'accounts')!.items).toBeGreaterThan(20);
    expect(result.collectors.find((c) => c.collector === 'services')!.items).toBeGreaterThan(50);
    for (const c of ['kernel-modules', 'firewall'])
      expect(result.collectors.find((x) => x.collector === c)?.ok, c).toBe(true);
    expect(r.status).toBe(0);
  });

  it('reports a change made in a copy of a real subtree', () => {
    const work = tempDir();
    const root = join(work, 'root');
    cpSync('/etc', join(root, 'etc'), { recursive: true, verbatimSymlinks: true });
    writeFileSync(
      join(work, 'agent.yaml'),
      'collectors:\n  packages: { enabled: false }\n  sysctl: { enabled: false }\n  files: { roots: [/etc] }\n',
    );
    expect(
      dw(
        'manifest',
        'build',
        '--root',
        root,
        '--image-id',
        'etc-copy',
        '--config',
        join(work, 'agent.yaml'),
        '--out',
        join(work, 'm.json'),
      ).status,
    ).toBe(0);
    expect(dw('check', '--manifest', join(work, 'm.json'), '--root', root).status).toBe(0);
    appendFileSync(join(root, 'etc/passwd'), 'mallory:x:0:0::/root:/bin/bash\n');
    const r = dw('check', '--manifest', join(work, 'm.json'), '--root', root, '--json');
    expect(r.status).toBe(1);
    const result = CheckResultSchema.parse(JSON.parse(r.stdout));
    expect(result.deviations.map((d) => [d.collector, d.key, d.change, d.severity])).toEqual([
      ['files', '/etc/passwd', 'modified', 'critical'],
      ['accounts', 'user:mallory', 'added', 'critical'],
    ]);
  });
});
