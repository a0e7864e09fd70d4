/** @module The services collector on the web fixture, its enablement states checked against systemctl itself. */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { services } from '../../../agent/collectors/services.js';
import { diffSection } from '../../../shared/diff.js';
import { ServiceItemSchema } from '../../../shared/schema/items.js';
import { ctx, link, put, WEB, webCopy } from './new-collectors.helpers.js';

function systemctlState(root: string, unit: string): string | null {
  try {
    return execFileSync('systemctl', [`--root=${root}`, 'is-enabled', unit], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (err) {
    const out = (err as { stdout?: string; code?: string }).stdout?.trim();
    // systemctl exits non-zero for disabled / masked units but still prints the state; ENOENT: not installed.
    return (err as { code?: string }).code === 'ENOENT' ? null : (out ?? null);
  }
}

describe('services collector', () => {
  it('records every unit but timers with its enablement, content hash and the presets', async () => {
    const { items } = await services.collect(ctx(WEB));
    for (const i of items) ServiceItemSchema.parse(i);
    expect(items.map((i) => `${i.key} ${i.state ?? i.kind}`)).toEqual([
      'multi-user.target static',
      'nftables.service enabled',
      'preset:/usr/lib/systemd/system-preset/90-systemd.preset preset',
      'rsync.service disabled',
      'ssh.service enabled',
      'sshd.service alias',
    ]);
  });

  it('names each state as systemctl --root is-enabled does, on the fixture and after changes by hand', async () => {
    const root = webCopy();
    link(root, 'etc/systemd/system/multi-user.target.wants/rsync.service', '/usr/lib/systemd/system/rsync.service');
    link(root, 'etc/systemd/system/nftables.service', '/dev/null');
    // Unlinked from multi-user.target but still enabled: its Alias= link (sshd.service) in /etc counts, as systemctl agrees.
    rmSync(join(root, 'etc/systemd/system/multi-user.target.wants/ssh.service'));
    const { items } = await services.collect(ctx(root));
    const ours = new Map(items.filter((i) => i.kind === 'unit').map((i) => [i.key, i.state]));
    expect(Object.fromEntries(ours)).toEqual({
      'multi-user.target': 'static',
      'nftables.service': 'masked',
      'rsync.service': 'enabled',
      'ssh.service': 'enabled',
      'sshd.service': 'alias',
    });
    // The oracle: systemd's own install logic, where systemctl is installed (it is on Debian; skipped only without it).
    if (systemctlState(root, 'ssh.service') === null) return;
    for (const [unit, state] of ours) expect(`${unit} ${systemctlState(root, unit)}`).toBe(`${unit} ${state}`);
  });

  it('sees a unit enabled by hand during an incident, and a drop-in added to one (under every name of the unit)', async () => {
    const before = (await services.collect(ctx(WEB))).items;
    const root = webCopy();
    link(root, 'etc/systemd/system/multi-user.target.wants/rsync.service', '/usr/lib/systemd/system/rsync.service');
    put(
      root,
      'etc/systemd/system/ssh.service.d/override.conf',
      '[Service]\nExecStart=\nExecStart=/usr/sbin/sshd -D -o PermitRootLogin=yes\n',
    );
    const devs = diffSection('services', before, (await services.collect(ctx(root))).items);
    expect(devs.map((d) => `${d.change} ${d.key} ${d.fields?.join(',')}`)).toEqual([
      'modified rsync.service state',
      'modified ssh.service dropIns',
      'modified sshd.service dropIns',
    ]);
    expect(devs[0]).toMatchObject({ expected: { state: 'disabled' }, actual: { state: 'enabled' }, severity: 'high' });
    // A drop-in under the alias's name changes the unit too.
    const other = webCopy();
    put(other, 'etc/systemd/system/sshd.service.d/10-listen.conf', '[Service]\nEnvironment=SSHD_OPTS=-p2222\n');
    const ssh = (await services.collect(ctx(other))).items.find((i) => i.key === 'ssh.service')!;
    expect(ssh.dropIns?.map((d) => d.path)).toEqual(['/etc/systemd/system/sshd.service.d/10-listen.conf']);
  });
});
