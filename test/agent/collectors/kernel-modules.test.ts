/** @module The kernel-modules collector on the web fixture: loaded, declared and blacklisted side by side, and a failure is a failure. */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kernelModules } from '../../../agent/collectors/kernel-modules.js';
import { diffSection } from '../../../shared/diff.js';
import { KernelModuleItemSchema } from '../../../shared/schema/items.js';
import { append, ctx, put, WEB, webCopy } from './new-collectors.helpers.js';

describe('kernel-modules collector', () => {
  it('records each loaded module with its size class and taint, beside what modules-load.d declares and modprobe.d blacklists', async () => {
    const { items, warnings } = await kernelModules.collect(ctx(WEB));
    expect(warnings).toEqual([]);
    for (const i of items) KernelModuleItemSchema.parse(i);
    const byKey = new Map(items.map((i) => [i.key, i]));
    expect(byKey.get('nf_tables')).toEqual({
      key: 'nf_tables',
      name: 'nf_tables',
      loaded: true,
      sizeClass: 524288,
      taint: '',
      declared: ['/etc/modules-load.d/nf.conf'],
      blacklisted: [],
      installCommand: null,
    });
    expect(byKey.get('dccp')).toEqual({
      key: 'dccp',
      name: 'dccp',
      loaded: false,
      sizeClass: null,
      taint: null,
      declared: [],
      blacklisted: ['/etc/modprobe.d/blacklist-rare-network.conf'],
      installCommand: '/bin/true',
    });
    expect(items.map((i) => i.key)).toEqual([...items.map((i) => i.key)].sort());
  });

  it('sees a module loaded by hand (out of tree, unsigned) and one declared in a new file', async () => {
    const before = (await kernelModules.collect(ctx(WEB))).items;
    const root = webCopy();
    append(root, 'proc/modules', 'wireguard 118784 0 - Live 0x0000000000000000 (OE)\n');
    put(root, 'etc/modules-load.d/incident.conf', 'br_netfilter\n');
    const after = (await kernelModules.collect(ctx(root))).items;
    const devs = diffSection('kernel-modules', before, after);
    expect(devs.map((d) => `${d.change} ${d.key}`)).toEqual(['added br_netfilter', 'added wireguard']);
    expect(devs[1]!.actual).toMatchObject({ loaded: true, taint: 'OE' });
    expect(devs[1]!.severity).toBe('high');
  });

  it('without proc/modules (no module support, an offline image) collects the declarations and says so', async () => {
    const root = webCopy();
    rmSync(join(root, 'proc/modules'));
    const { items, warnings } = await kernelModules.collect(ctx(root));
    expect(warnings).toEqual(['/proc/modules not found under the root: loaded modules not collected']);
    expect(items.every((i) => !i.loaded)).toBe(true);
    expect(items.map((i) => i.key)).toEqual(['dccp', 'nf_tables', 'sctp']);
  });

  it('fails when proc/modules is there but cannot be read, rather than reporting no modules', async () => {
    const root = webCopy();
    rmSync(join(root, 'proc/modules'));
    mkdirSync(join(root, 'proc/modules'));
    await expect(kernelModules.collect(ctx(root))).rejects.toThrow(/EISDIR/);
  });
});
