/**
 * Scenario: the drift incident fixes leave beyond files and packages, one host per kind. Real agents
 * on copies of the web fixture scan every few seconds; on each of four hosts one hand-made change of
 * the kind a new collector sees (a module loaded, a service enabled, a user added, a firewall rule
 * opened), and a fifth host is left alone. Each drifted host must be tainted by a deviation of that
 * collector, on the key of the change; the untouched host must stay clean through the same scans.
 * A sixth host gets the same service enabled by hand: the fleet's findings show it as one finding on
 * two hosts, as the dashboard's Findings page lists it.
 */
import { appendFileSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../../helpers/agent-host.js';
import type { FleetHost } from './harness.js';
import { Fleet, freshStore } from './fleet.js';

const DRIFTS: { collector: string; key: string; change: string; apply: (root: string) => void }[] = [
  {
    collector: 'kernel-modules',
    key: 'wireguard',
    change: 'added',
    apply: (root) => appendFileSync(join(root, 'proc/modules'), 'wireguard 118784 0 - Live 0x0000000000000000 (OE)\n'),
  },
  {
    collector: 'services',
    key: 'rsync.service',
    change: 'modified',
    // `systemctl enable rsync` during an incident.
    apply: (root) =>
      symlinkSync(
        '/usr/lib/systemd/system/rsync.service',
        join(root, 'etc/systemd/system/multi-user.target.wants/rsync.service'),
      ),
  },
  {
    collector: 'accounts',
    key: 'user:mallory',
    change: 'added',
    apply: (root) => appendFileSync(join(root, 'etc/passwd'), 'mallory:x:0:0::/root:/bin/bash\n'),
  },
  {
    collector: 'firewall',
    key: 'saved:/etc/nftables.conf',
    change: 'modified',
    apply: (root) =>
      writeFileSync(
        join(root, 'etc/nftables.conf'),
        readFileSync(join(root, 'etc/nftables.conf'), 'utf8').replace(
          'tcp dport { 22, 443 } accept',
          'tcp dport { 22, 443, 8080 } accept',
        ),
      ),
  },
];

let fleet: Fleet;
afterEach(async () => {
  await fleet.teardown();
});

describe('fleet: drift in kernel modules, services, accounts and the firewall', () => {
  it('taints each drifted host on its collector and key, and leaves the untouched host clean', async () => {
    fleet = new Fleet();
    const ctl = await fleet.controller({ store: await freshStore('sqlite') });
    const opts = {
      path: { kind: 'direct' as const, controllerUrl: ctl.url },
      scan: '*/3 * * * * *',
      heartbeat: '500ms',
      watch: ['/opt'],
    };
    const drifted: FleetHost[] = DRIFTS.map(() => fleet.host(opts));
    const sameService = fleet.host(opts);
    const clean = fleet.host(opts);
    const hosts = [...drifted, sameService, clean];
    for (const h of hosts) await h.start();
    const detail = async (h: FleetHost) => (await fleet.api.host(h.id))!;
    await until(
      async () => {
        for (const h of hosts) if ((await fleet.api.host(h.id))?.host.state !== 'clean') return false;
        return true;
      },
      () => `every host clean\n${hosts.map((h) => `${h.name}: ${h.log.slice(-600)}`).join('\n')}`,
      90_000,
      250,
    );

    DRIFTS.forEach((d, i) => d.apply(drifted[i]!.root));
    DRIFTS.find((d) => d.collector === 'services')!.apply(sameService.root);
    await until(
      async () => {
        for (const h of [...drifted, sameService]) if ((await detail(h)).host.state !== 'tainted') return false;
        return true;
      },
      () => `every drifted host tainted\n${drifted.map((h) => `${h.name}: ${h.log.slice(-600)}`).join('\n')}`,
      60_000,
      250,
    );

    for (const [i, d] of DRIFTS.entries()) {
      const got = await detail(drifted[i]!);
      const own = got.deviations.filter((x) => x.collector === d.collector);
      expect(
        own.map((x) => `${x.change} ${x.key} ${x.action}`),
        d.collector,
      ).toEqual([`${d.change} ${d.key} taint`]);
      // Only the kind of drift made on that host (the files collector also sees a changed /etc file).
      expect(
        got.deviations.every((x) => x.collector === d.collector || x.collector === 'files'),
        JSON.stringify(got.deviations),
      ).toBe(true);
    }
    const findings = (
      await fleet.api.call<{ findings: { collector: string; key: string; change: string; hosts: number }[] }>(
        'GET',
        '/api/v1/findings?collector=services',
      )
    ).body.findings;
    expect(findings.map((f) => `${f.change} ${f.key} on ${f.hosts} hosts`)).toEqual([
      'modified rsync.service on 2 hosts',
    ]);
    const seqBefore = (await detail(clean)).host.lastSeq;
    await until(
      async () => (await detail(clean)).host.lastSeq > seqBefore + 2,
      'the untouched host reported again',
      30_000,
      250,
    );
    const untouched = await detail(clean);
    expect(untouched.host.state).toBe('clean');
    expect(untouched.deviations).toEqual([]);
  });
});
