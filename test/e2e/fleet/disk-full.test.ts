/**
 * Fault: the agent's disk fills up while it is spooling (its controller unreachable). The agent keeps
 * running, logs why it cannot spool, leaves no half-written file, and loses nothing it had already
 * spooled; when space returns it scans again (the change it could not record as an event shows up in
 * the scan) and everything arrives, in order, exactly once.
 *
 * The state directory is a small tmpfs, so the full disk is real (ENOSPC from the kernel). Mounting
 * needs root; where it is not permitted the test says so and skips.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../../helpers/agent-host.js';
import { tempDir } from '../../helpers/tmp.js';
import { drained, verifyHost } from './harness.js';
import { Fleet, freshStore } from './fleet.js';

function mountTmpfs(dir: string, size: string): string | null {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error) return `cannot run mount: ${r.error.message}`;
  return r.status === 0 ? null : `mount -t tmpfs is not permitted here: ${r.stderr.trim()}`;
}

const probeDir = tempDir('dw-tmpfs-probe-');
const noMount = mountTmpfs(probeDir, '64k');
if (!noMount) spawnSync('umount', [probeDir]);
else console.warn(`disk-full test skipped: ${noMount}`);

let fleet: Fleet;
const mounted: string[] = [];
afterEach(async () => {
  await fleet?.teardown();
  for (const m of mounted.splice(0)) spawnSync('umount', ['-l', m]);
});

/** Fill the file system at dir: write until ENOSPC. */
function fill(dir: string): string {
  const file = join(dir, 'filler');
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(4096, 0x61);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return file;
}

describe("an agent's disk full while spooling", () => {
  // Skipped only where a tmpfs cannot be mounted (not root, no mount permission); the test's name then says why.
  it.skipIf(noMount !== null)(
    `keeps running, loses nothing spooled, and recovers when space returns${noMount ? ` (skipped: ${noMount})` : ''}`,
    async () => {
      fleet = new Fleet();
      const ctl = await fleet.controller({ store: await freshStore('sqlite') });
      const stateDir = join(tempDir('dw-fleet-tmpfs-'), 'state');
      mkdirSync(stateDir);
      expect(mountTmpfs(stateDir, '2m')).toBeNull();
      mounted.push(stateDir);
      const h = fleet.host({
        path: { kind: 'proxy', controller: { host: '127.0.0.1', port: ctl.port } },
        stateDir,
        scan: '*/1 * * * * *',
        heartbeat: '200ms',
      });
      await h.start();
      await until(
        async () => (await fleet.api.host(h.id))?.host.state === 'clean',
        () => `host clean\n${h.log.slice(-2000)}`,
        60_000,
        200,
      );

      h.cut();
      await until(() => h.spooled().filter((e) => e.kind === 'scan').length >= 2, 'two scans spooled', 20_000);
      const filler = fill(stateDir);
      const spooledBefore = h.spooled().filter((e) => e.kind !== 'heartbeat');
      // A change while nothing can be written: the event cannot be spooled...
      const errorsBefore = h.logLines().filter((l) => l.level === 50).length;
      writeFileSync(join(h.root, 'etc/ssh/sshd_config'), 'PermitRootLogin yes\n');
      await until(
        () => h.logLines().filter((l) => l.level === 50 && /ENOSPC/.test(JSON.stringify(l))).length >= 3,
        () => `ENOSPC errors logged\n${h.log.slice(-2000)}`,
        20_000,
      );
      expect(h.logLines().filter((l) => l.level === 50).length).toBeGreaterThan(errorsBefore);
      expect(h.proc!.exitCode, 'the agent is still running').toBeNull();
      // ...and nothing half written is left behind, nor anything spooled before lost.
      expect(readdirSync(h.spoolDir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      h.spoolIntact();
      const names = new Set(h.spooled().map((e) => e.name));
      expect(spooledBefore.filter((e) => !names.has(e.name))).toEqual([]);

      rmSync(filler);
      h.restore();
      await drained([h], 60_000);
      // The change it could not spool as an event is found by the next scan.
      await until(
        async () => (await fleet.api.host(h.id))?.host.state === 'tainted',
        () => `host tainted after recovery\n${h.log.slice(-2000)}`,
        30_000,
        200,
      );
      await h.stop();

      expect(h.exits).toEqual([{ code: 0, signal: null }]);
      await verifyHost(fleet.api, h);
      const stored = new Set((await fleet.api.reports(h.id)).map((r) => r.seq));
      expect(
        spooledBefore.filter((e) => !stored.has(e.seq)),
        'spooled before the disk filled, never stored',
      ).toEqual([]);
    },
    180_000,
  );
});
