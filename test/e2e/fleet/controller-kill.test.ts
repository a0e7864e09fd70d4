/**
 * Fault: the controller is SIGKILLed and restarted, several times, while a fleet of agents sends
 * scans, heartbeats and events to it (SQLite and PostgreSQL). Whatever a killed controller had
 * acknowledged is stored; what it had not is resent from the agents' spools and stored exactly once,
 * in order; no host row is left half written.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../../helpers/agent-host.js';
import { requirePostgres, SKIP_PG } from '../../helpers/postgres.js';
import { drained, verifyHost } from './harness.js';
import { Fleet, freshStore } from './fleet.js';

await requirePostgres();

const HOSTS = 6;
const KILLS = 3;
let fleet: Fleet;
afterEach(async () => {
  await fleet.teardown();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(['sqlite', 'postgres'] as const)('controller SIGKILLed under load (%s)', (kind) => {
  // The PostgreSQL case is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without PostgreSQL.
  it.skipIf(kind === 'postgres' && SKIP_PG)(
    'loses nothing acknowledged and stores every spooled report once, in order',
    async () => {
      fleet = new Fleet();
      const ctl = await fleet.controller({ store: await freshStore(kind) });
      const hosts = Array.from({ length: HOSTS }, () =>
        fleet.host({ path: { kind: 'direct', controllerUrl: ctl.url }, scan: '*/1 * * * * *', heartbeat: '100ms' }),
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

      for (let k = 0; k < KILLS; k++) {
        // Killed mid-stream: with six agents sending every 100 ms, requests are in flight at any moment.
        await sleep(700 + Math.random() * 800);
        const before = Math.max(...hosts.map((h) => h.delivered().length));
        await ctl.kill();
        // A change while the controller is down: an event that must wait in the spool.
        writeFileSync(join(hosts[k]!.root, 'etc/ssh/sshd_config'), `PermitRootLogin yes # ${k}\n`);
        await until(
          () => hosts[k]!.spooled().some((e) => e.kind === 'event'),
          `${hosts[k]!.name} spools its event`,
          10_000,
        );
        await sleep(500);
        await ctl.start();
        await until(
          () =>
            hosts.every((h) => h.delivered().length > 0) &&
            Math.max(...hosts.map((h) => h.delivered().length)) > before,
          'deliveries after the restart',
          30_000,
        );
      }
      await sleep(1_000);
      await drained(hosts);
      for (const h of hosts) await h.stop();

      expect(ctl.exits.filter((e) => e.signal === 'SIGKILL')).toHaveLength(KILLS);
      for (const h of hosts) {
        expect(h.exits, `${h.name} ran throughout`).toEqual([{ code: 0, signal: null }]);
        const v = await verifyHost(fleet.api, h);
        expect(v.stored).toBeGreaterThan(3);
      }
      for (let k = 0; k < KILLS; k++) expect((await fleet.api.host(hosts[k]!.id))!.host.state).toBe('tainted');
      for (let k = KILLS; k < HOSTS; k++) expect((await fleet.api.host(hosts[k]!.id))!.host.state).toBe('clean');
    },
    180_000,
  );
});
