/**
 * Fault: PostgreSQL restarted (immediate shutdown, as in a crash) under two running controllers that
 * share it, each serving half the fleet. The controllers stay up, answer 5xx while the database is
 * gone (agents keep their reports spooled and retry), reconnect on their own, and nothing acknowledged
 * is lost or stored twice.
 *
 * The database is a private cluster on a port of its own (never the shared test server).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../../helpers/agent-host.js';
import { drained, verifyHost, type FleetHost } from './harness.js';
import { Fleet, freshStore } from './fleet.js';
import { PgCluster, pgClusterUnavailable } from './pg-cluster.js';

const noCluster = pgClusterUnavailable();
if (noCluster) console.warn(`PostgreSQL restart test skipped: ${noCluster}`);

let cluster: PgCluster | null = null;
let fleet: Fleet;
beforeAll(async () => {
  if (noCluster) return;
  cluster = new PgCluster();
  await cluster.init();
}, 120_000);
afterAll(() => cluster?.destroy());
afterEach(async () => {
  await fleet?.teardown();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PostgreSQL restarted while controllers run', () => {
  // Skipped only where a private PostgreSQL cluster cannot be made (not root, no server binaries); the name says why.
  it.skipIf(noCluster !== null)(
    `two controllers ride out two database restarts${noCluster ? ` (skipped: ${noCluster})` : ''}`,
    async () => {
      fleet = new Fleet();
      const store = await freshStore('postgres', cluster!.url);
      const a = await fleet.controller({ store });
      const b = await fleet.controller({ store });
      const hosts: FleetHost[] = [];
      for (let i = 0; i < 6; i++)
        hosts.push(
          fleet.host({
            path: { kind: 'direct', controllerUrl: (i % 2 ? b : a).url },
            scan: '*/1 * * * * *',
            heartbeat: '100ms',
          }),
        );
      for (const h of hosts) await h.start();
      await until(
        async () => {
          for (const h of hosts) if ((await fleet.api.host(h.id))?.host.state !== 'clean') return false;
          return true;
        },
        'every host clean',
        60_000,
        200,
      );

      for (let round = 0; round < 2; round++) {
        await sleep(1_000);
        const before = hosts.map((h) => h.delivered().length);
        cluster!.stopNow();
        // While the database is down, a host on each controller sees a change: events that must wait.
        writeFileSync(join(hosts[round * 2]!.root, 'etc/ssh/sshd_config'), `PermitRootLogin yes # ${round}\n`);
        writeFileSync(join(hosts[round * 2 + 1]!.root, 'etc/ssh/sshd_config'), `PermitRootLogin yes # ${round}\n`);
        await until(
          () => [hosts[round * 2]!, hosts[round * 2 + 1]!].every((h) => h.spooled().some((e) => e.kind === 'event')),
          'events spooled while the database is down',
          15_000,
        );
        await sleep(1_000);
        cluster!.start();
        await until(
          () => hosts.every((h, i) => h.delivered().length > before[i]! + 2),
          () => `every host delivering again\n${a.log.slice(-1500)}\n${b.log.slice(-1500)}`,
          60_000,
          100,
        );
      }
      await drained(hosts);
      for (const h of hosts) await h.stop();

      expect(a.exits, 'controller a stayed up').toEqual([]);
      expect(b.exits, 'controller b stayed up').toEqual([]);
      for (const h of hosts) {
        expect(h.exits, `${h.name} ran throughout`).toEqual([{ code: 0, signal: null }]);
        await verifyHost(fleet.api, h);
      }
      for (let i = 0; i < 4; i++) expect((await fleet.api.host(hosts[i]!.id))!.host.state).toBe('tainted');
      for (let i = 4; i < 6; i++) expect((await fleet.api.host(hosts[i]!.id))!.host.state).toBe('clean');
    },
    240_000,
  );
});
