/** @module The sysctl collector against fixture roots and against this machine's own /proc/sys. */
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sysctl } from '../../../agent/collectors/sysctl.js';
import type { CollectContext } from '../../../agent/collectors/types.js';
import type { ExecFn } from '../../../agent/exec.js';
import { silentLogger } from '../../../agent/log.js';
import { HostRoot } from '../../../agent/root.js';
import { SysctlItemSchema } from '../../../shared/schema/items.js';
import { defaultRules } from '../../../shared/schema/rules.js';

const FIXTURE = join(import.meta.dirname, '../../fixtures/sysctl/host');

const noExec: ExecFn = () => Promise.reject(new Error('the sysctl collector runs no programs'));

const temps: string[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) rmSync(t, { recursive: true, force: true });
});

/** A scratch root: a copy of the fixture host (symlinks kept as written), or empty. */
function scratchRoot(from?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-sysctl-'));
  temps.push(dir);
  if (from) cpSync(from, dir, { recursive: true, verbatimSymlinks: true });
  return dir;
}

function put(root: string, rel: string, text: string): void {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  writeFileSync(join(root, rel), text);
}

function link(root: string, rel: string, target: string): void {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  symlinkSync(target, join(root, rel));
}

async function collect(dir: string, exclude?: string[]) {
  const rules = defaultRules();
  if (exclude) rules.sysctl.exclude = exclude;
  const ctx: CollectContext = { root: await HostRoot.open(dir), rules, exec: noExec, log: silentLogger };
  const out = await sysctl.collect(ctx);
  for (const item of out.items) SysctlItemSchema.parse(item);
  const keys = out.items.map((i) => i.key);
  expect(keys).toEqual([...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  expect(new Set(keys).size).toBe(keys.length);
  return out;
}

function byKey(items: { key: string }[]): Map<string, unknown> {
  return new Map(items.map((i) => [i.key, i]));
}

describe('sysctl collector on the fixture host', () => {
  it('puts runtime and declared values side by side, with the file whose value won', async () => {
    const root = scratchRoot(FIXTURE);
    // git keeps only 644/755: the write-only entry gets its real mode here.
    chmodSync(join(root, 'proc/sys/net/ipv4/route/flush'), 0o200);
    const { items, warnings } = await collect(root);
    expect(items).toEqual([
      {
        key: 'kernel.core_modes',
        runtime: 'file pipe socket',
        declared: 'file pipe socket',
        declaredIn: '/etc/sysctl.d/80-extra.conf',
      },
      {
        key: 'kernel.core_pattern',
        runtime: '|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h',
        declared: '|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h',
        declaredIn: '/run/sysctl.d/50-coredump.conf',
      },
      {
        key: 'kernel.pid_max',
        runtime: '4194304',
        declared: '4194304',
        declaredIn: '/usr/lib/sysctl.d/50-pid-max.conf',
      },
      { key: 'net.ipv4.conf.*.rp_filter', runtime: null, declared: '2', declaredIn: '/etc/sysctl.d/10-network.conf' },
      { key: 'net.ipv4.conf.all.rp_filter', runtime: '2', declared: null, declaredIn: null },
      {
        key: 'net.ipv4.conf.eth0/100.rp_filter',
        runtime: '1',
        declared: '1',
        declaredIn: '/etc/sysctl.d/10-network.conf',
      },
      { key: 'net.ipv4.ip_forward', runtime: '0', declared: '1', declaredIn: '/etc/sysctl.conf' },
      {
        key: 'net.ipv4.ip_local_port_range',
        runtime: '32768 60999',
        declared: '1024 65000',
        declaredIn: '/etc/sysctl.d/10-network.conf',
      },
      {
        key: 'net.ipv6.conf.all.disable_ipv6',
        runtime: null,
        declared: '1',
        declaredIn: '/etc/sysctl.d/10-network.conf',
      },
      { key: 'vm.overcommit_memory', runtime: '0', declared: '1', declaredIn: '/etc/sysctl.d/70-memory.conf' },
      { key: 'vm.swappiness', runtime: '60', declared: '10', declaredIn: '/etc/sysctl.conf' },
    ]);
    expect(warnings).toEqual(['/etc/sysctl.d/30-broken.conf:2: expected "key = value"; file skipped']);
  });

  it('skips a write-only entry by its mode, although root could read the fixture file', async () => {
    const root = scratchRoot(FIXTURE);
    const readable = await collect(root);
    expect(byKey(readable.items).has('net.ipv4.route.flush')).toBe(true);

    chmodSync(join(root, 'proc/sys/net/ipv4/route/flush'), 0o200);
    const writeOnly = await collect(root);
    expect(byKey(writeOnly.items).has('net.ipv4.route.flush')).toBe(false);
    expect(writeOnly.warnings).toEqual(readable.warnings);
  });

  it('leaves out excluded parameters entirely, runtime and declared alike', async () => {
    const { items } = await collect(scratchRoot(FIXTURE));
    const keys = items.map((i) => i.key);
    expect(keys.filter((k) => k.startsWith('kernel.random.') || k === 'fs.dentry-state')).toEqual([]);

    const all = await collect(scratchRoot(FIXTURE), []);
    expect(byKey(all.items).get('kernel.random.uuid')).toEqual({
      key: 'kernel.random.uuid',
      runtime: '5f0c1a3e-0000-4000-8000-000000000000',
      declared: '00000000-0000-0000-0000-000000000000',
      declaredIn: '/etc/sysctl.conf',
    });
    expect(byKey(all.items).get('fs.dentry-state')).toMatchObject({ runtime: '232750 231190 45 0 72272 0' });
  });

  it('applies a masked file nowhere: neither the /dev/null link nor the file it hides sets anything', async () => {
    const { items } = await collect(scratchRoot(FIXTURE));
    expect(byKey(items).get('kernel.pid_max')).toMatchObject({
      declared: '4194304',
      declaredIn: '/usr/lib/sysctl.d/50-pid-max.conf',
    });
    // usr/lib/sysctl.d/70-memory.conf is hidden by etc/sysctl.d/70-memory.conf, so its other key is not declared either.
    expect(byKey(items).has('vm.dirty_bytes')).toBe(false);
  });
});

describe('default exclusions', () => {
  const cases: Array<[path: string, excluded: boolean]> = [
    ['kernel/random/boot_id', true],
    ['kernel/random/entropy_avail', true],
    ['kernel/randomize_va_space', false],
    ['fs/xfs/stat', true],
    ['vm/stat_interval', false],
    ['vm/stat_refresh', true],
    ['fs/dentry-state', true],
    ['fs/file-nr', true],
    ['fs/file-max', false],
    ['fs/quota/syncs', true],
    ['fs/binfmt_misc/status', true],
    ['kernel/sched_domain/cpu0/domain0/flags', true],
    ['kernel/hostname', true],
    ['kernel/pid_max', false],
    ['net/netfilter/nf_conntrack_count', true],
    ['net/netfilter/nf_conntrack_max', false],
    ['net/ipv4/conf/veth1a2b3c/rp_filter', true],
    ['net/ipv4/conf/veth1a2b.5/rp_filter', true],
    ['net/ipv6/neigh/veth9/retrans_time_ms', true],
    ['net/ipv4/conf/eth0/rp_filter', false],
    ['net/ipv4/conf/eth0.100/rp_filter', false],
    ['dev/cdrom/info', true],
  ];

  it.each(cases)('proc/sys/%s excluded: %s', async (path, excluded) => {
    const root = scratchRoot();
    put(root, `proc/sys/${path}`, '1\n');
    const { items } = await collect(root);
    expect(items.length).toBe(excluded ? 0 : 1);
  });

  it('takes the configured list instead, with "*" crossing dots and "/" standing for a dot in a name', async () => {
    const root = scratchRoot();
    for (const p of ['net/ipv4/conf/eth0.100/rp_filter', 'net/ipv4/conf/eth0/rp_filter', 'kernel/random/uuid'])
      put(root, `proc/sys/${p}`, '1\n');
    const { items } = await collect(root, ['net.ipv4.conf.eth0/100.*']);
    expect(items.map((i) => i.key)).toEqual(['kernel.random.uuid', 'net.ipv4.conf.eth0.rp_filter']);
  });
});

describe('reading proc/sys', () => {
  it('does not follow symlinks below proc/sys', async () => {
    const root = scratchRoot();
    put(root, 'proc/sys/kernel/pid_max', '32768\n');
    put(root, 'etc/hosts', '127.0.0.1 localhost\n');
    link(root, 'proc/sys/kernel/loop', '..');
    link(root, 'proc/sys/kernel/hosts', '/etc/hosts');
    link(root, 'proc/sys/kernel/up', '../../../etc');
    const { items, warnings } = await collect(root);
    expect(items.map((i) => i.key)).toEqual(['kernel.pid_max']);
    expect(warnings).toEqual([]);
  });

  it('says so once when the root has no proc/sys, and still reports declarations', async () => {
    const root = scratchRoot();
    put(root, 'etc/sysctl.d/10-a.conf', 'vm.swappiness = 5\n');
    const { items, warnings } = await collect(root);
    expect(items).toEqual([
      { key: 'vm.swappiness', runtime: null, declared: '5', declaredIn: '/etc/sysctl.d/10-a.conf' },
    ]);
    expect(warnings).toEqual(['/proc/sys not found under the root: runtime values not collected']);
  });

  it('skips a value too large to be a kernel parameter, with a warning', async () => {
    const root = scratchRoot();
    put(root, 'proc/sys/kernel/huge', 'x'.repeat(70_000));
    put(root, 'proc/sys/kernel/pid_max', '32768\n');
    const { items, warnings } = await collect(root);
    expect(items.map((i) => i.key)).toEqual(['kernel.pid_max']);
    expect(warnings).toEqual(['1 kernel parameter(s) could not be read, e.g. kernel.huge']);
  });

  it('keeps an empty value as the empty string', async () => {
    const root = scratchRoot();
    put(root, 'proc/sys/net/ipv4/ip_local_reserved_ports', '\n');
    const { items } = await collect(root);
    expect(items).toEqual([{ key: 'net.ipv4.ip_local_reserved_ports', runtime: '', declared: null, declaredIn: null }]);
  });
});

describe('reading declarations', () => {
  it('orders files by name across directories, and sysctl.conf last', async () => {
    const root = scratchRoot();
    put(root, 'usr/lib/sysctl.d/90-vendor.conf', 'vm.swappiness = 90\n');
    put(root, 'etc/sysctl.d/20-admin.conf', 'vm.swappiness = 20\nkernel.pid_max = 20\n');
    put(root, 'run/sysctl.d/50-runtime.conf', 'kernel.pid_max = 50\n');
    put(root, 'etc/sysctl.conf', 'kernel.pid_max = 1000\n');
    put(root, 'usr/local/lib/sysctl.d/95-local.conf', 'fs.file-max = 95\n');
    put(root, 'lib/sysctl.d/96-lib.conf', 'fs.nr_open = 96\n');
    const { items } = await collect(root);
    expect(items).toEqual([
      { key: 'fs.file-max', runtime: null, declared: '95', declaredIn: '/usr/local/lib/sysctl.d/95-local.conf' },
      { key: 'fs.nr_open', runtime: null, declared: '96', declaredIn: '/lib/sysctl.d/96-lib.conf' },
      { key: 'kernel.pid_max', runtime: null, declared: '1000', declaredIn: '/etc/sysctl.conf' },
      { key: 'vm.swappiness', runtime: null, declared: '90', declaredIn: '/usr/lib/sysctl.d/90-vendor.conf' },
    ]);
  });

  it('gives the Debian 99-sysctl.conf link and sysctl.conf itself one and the same result', async () => {
    const root = scratchRoot();
    mkdirSync(join(root, 'proc/sys'), { recursive: true });
    put(root, 'etc/sysctl.conf', 'vm.swappiness = 10\n');
    link(root, 'etc/sysctl.d/99-sysctl.conf', '../sysctl.conf');
    const { items, warnings } = await collect(root);
    expect(items).toEqual([{ key: 'vm.swappiness', runtime: null, declared: '10', declaredIn: '/etc/sysctl.conf' }]);
    expect(warnings).toEqual([]);
  });

  it('resolves symlinked files and directories inside the root, never out of it', async () => {
    const root = scratchRoot();
    put(root, 'usr/share/extra/sysctl.conf', 'vm.swappiness = 7\n');
    put(root, 'usr/lib/sysctl.d/50-pid.conf', 'kernel.pid_max = 9\n');
    link(root, 'etc/sysctl.d/10-abs.conf', '/usr/share/extra/sysctl.conf');
    link(root, 'etc/sysctl.d/20-climb.conf', '../../../../../../../../usr/share/extra/sysctl.conf');
    // Absent on the fixture root but present on this machine: must not be read from here.
    link(root, 'etc/sysctl.d/30-host.conf', '/etc/passwd');
    // Merged /usr: /lib is a link, and an absolute one must still land inside the root.
    link(root, 'lib', '/usr/lib');
    const { items, warnings } = await collect(root);
    expect(items).toEqual([
      { key: 'kernel.pid_max', runtime: null, declared: '9', declaredIn: '/usr/lib/sysctl.d/50-pid.conf' },
      { key: 'vm.swappiness', runtime: null, declared: '7', declaredIn: '/etc/sysctl.d/20-climb.conf' },
    ]);
    expect(warnings).toEqual([
      '/proc/sys not found under the root: runtime values not collected',
      '/etc/sysctl.d/30-host.conf: dangling or looping symlink, skipped',
    ]);
  });

  it('degrades on bad entries: a directory named .conf, a dangling link and a broken file each only cost themselves', async () => {
    const root = scratchRoot();
    mkdirSync(join(root, 'proc/sys'), { recursive: true });
    mkdirSync(join(root, 'etc/sysctl.d/10-dir.conf'), { recursive: true });
    link(root, 'etc/sysctl.d/20-dangling.conf', 'nowhere.conf');
    put(root, 'etc/sysctl.d/30-broken.conf', 'vm.dirty_ratio = 5\nnonsense\n');
    put(root, 'etc/sysctl.d/40-good.conf', 'vm.swappiness = 1\n');
    // The dangling link still takes its name: the vendor file of that name stays masked.
    put(root, 'usr/lib/sysctl.d/20-dangling.conf', 'kernel.pid_max = 1\n');
    const { items, warnings } = await collect(root);
    expect(items).toEqual([
      { key: 'vm.swappiness', runtime: null, declared: '1', declaredIn: '/etc/sysctl.d/40-good.conf' },
    ]);
    expect(warnings).toEqual([
      '/etc/sysctl.d/10-dir.conf: not a regular file, skipped',
      '/etc/sysctl.d/20-dangling.conf: dangling or looping symlink, skipped',
      '/etc/sysctl.d/30-broken.conf:2: expected "key = value"; file skipped',
    ]);
  });

  it('ignores files that do not end in .conf', async () => {
    const root = scratchRoot();
    mkdirSync(join(root, 'proc/sys'), { recursive: true });
    put(root, 'etc/sysctl.d/README', 'not a conf file at all\n');
    put(root, 'etc/sysctl.d/10-a.conf.dpkg-old', 'vm.swappiness = 1\n');
    const { items, warnings } = await collect(root);
    expect(items).toEqual([]);
    expect(warnings).toEqual([]);
  });
});

describe.runIf(existsSync('/proc/sys/kernel/ostype'))('sysctl collector on this machine', () => {
  it('collects / twice in a row with identical items: the default exclusions remove the counters', async () => {
    const first = await collect('/');
    const started = performance.now();
    const second = await collect('/');
    const elapsedMs = performance.now() - started;
    expect(second.items).toEqual(first.items);
    expect(first.items.length).toBeGreaterThan(100);
    expect(byKey(first.items).get('kernel.ostype')).toMatchObject({ runtime: 'Linux' });
    // Generous against a loaded CI machine; a full walk takes tens of milliseconds here.
    expect(elapsedMs).toBeLessThan(2000);
  });
});
