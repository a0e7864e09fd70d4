/**
 * Fault: hosts cut off from the controller for a while, then reconnected. While cut off they go on
 * scanning and seeing changes; everything waits in their spools and, once the link is back, arrives
 * in order and exactly once. The rest of the fleet is not held up meanwhile.
 *
 * Twice: over loopback with a fault-injecting proxy per host (every machine), and with each host in a
 * network namespace of its own, cut by taking its link down (where the machine allows namespaces).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../../helpers/agent-host.js';
import { drained, verifyHost, type FleetHost } from './harness.js';
import { Fleet, freshStore } from './fleet.js';
import { NetLab, netnsUnavailable } from './netns.js';

const HOSTS = 4;
const CUT = 2;
let fleet: Fleet;
let lab: NetLab | null = null;
afterEach(async () => {
  await fleet.teardown();
  lab?.destroy();
  lab = null;
});

const noNetns = netnsUnavailable();
if (noNetns) console.warn(`partition test in network namespaces skipped: ${noNetns}`);

async function partition(mode: 'proxy' | 'netns'): Promise<void> {
  fleet = new Fleet();
  let hostAddress = '127.0.0.1';
  if (mode === 'netns') {
    lab = new NetLab();
    lab.create();
    hostAddress = lab.controllerAddress;
  }
  const ctl = await fleet.controller({ store: await freshStore('sqlite'), host: hostAddress });
  const hosts: FleetHost[] = [];
  for (let i = 0; i < HOSTS; i++) {
    const path =
      mode === 'netns'
        ? { kind: 'netns' as const, lab: lab!, net: lab!.addHost(), controllerUrl: ctl.url }
        : { kind: 'proxy' as const, controller: { host: hostAddress, port: ctl.port } };
    hosts.push(fleet.host({ path, scan: '*/1 * * * * *', heartbeat: '200ms' }));
  }
  for (const h of hosts) await h.start();
  await until(
    async () => {
      for (const h of hosts) if ((await fleet.api.host(h.id))?.host.state !== 'clean') return false;
      return true;
    },
    () => `every host clean\n${hosts.map((h) => h.log.slice(-800)).join('\n')}`,
    60_000,
    200,
  );

  const cut = hosts.slice(0, CUT);
  const rest = hosts.slice(CUT);
  const lastSeqBefore = new Map<string, number>();
  for (const h of cut) {
    h.cut();
    lastSeqBefore.set(h.id, (await fleet.api.host(h.id))!.host.lastSeq);
  }
  // While cut off: scans pile up and a change becomes an event, all in the spool.
  const seen = new Map<string, Set<number>>(cut.map((h) => [h.id, new Set<number>()]));
  const watch = setInterval(() => {
    for (const h of cut) for (const e of h.spooled()) if (e.kind !== 'heartbeat') seen.get(h.id)!.add(e.seq);
  }, 20);
  try {
    await until(
      () => cut.every((h) => h.spooled().filter((e) => e.kind === 'scan').length >= 3),
      'three scans spooled on each cut-off host',
      30_000,
    );
    writeFileSync(join(cut[0]!.root, 'opt/app/bin/start'), '#!/bin/sh\nexec /tmp/implant\n');
    await until(() => cut[0]!.spooled().some((e) => e.kind === 'event'), 'the change spooled as an event', 10_000);
    // The others are not held up.
    const restDelivered = rest.map((h) => h.delivered().length);
    await until(
      () => rest.every((h, i) => h.delivered().length > restDelivered[i]! + 3),
      'the rest of the fleet keeps reporting',
      15_000,
    );
    for (const h of cut)
      expect((await fleet.api.host(h.id))!.host.lastSeq, `${h.name} heard nothing while cut off`).toBe(
        lastSeqBefore.get(h.id),
      );
  } finally {
    clearInterval(watch);
  }
  for (const h of cut) h.restore();
  await drained(hosts, 90_000);
  for (const h of hosts) await h.stop();

  for (const h of hosts) {
    expect(h.exits, `${h.name} ran throughout`).toEqual([{ code: 0, signal: null }]);
    await verifyHost(fleet.api, h);
  }
  for (const h of cut) {
    const stored = new Set((await fleet.api.reports(h.id)).map((r) => r.seq));
    const waited = [...seen.get(h.id)!];
    expect(waited.length).toBeGreaterThanOrEqual(3);
    expect(
      waited.filter((q) => !stored.has(q)),
      `${h.name}: spooled while cut off and never stored`,
    ).toEqual([]);
  }
  expect((await fleet.api.host(cut[0]!.id))!.host.state).toBe('tainted');
  expect((await fleet.api.host(cut[1]!.id))!.host.state).toBe('clean');
}

describe('a host cut off from the controller, then reconnected', () => {
  it('over loopback through a fault-injecting proxy: spooled reports arrive in order, exactly once', async () => {
    await partition('proxy');
  }, 120_000);

  // Skipped only where network namespaces cannot be made (not root, no iproute2); the test's name then says why,
  // and the same fault runs over loopback through the proxy in the test above on every machine.
  it.skipIf(noNetns !== null)(
    `in network namespaces, the link taken down${noNetns ? ` (skipped: ${noNetns})` : ''}: spooled reports arrive in order, exactly once`,
    async () => {
      await partition('netns');
    },
    180_000,
  );
});
