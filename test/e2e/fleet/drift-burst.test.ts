/**
 * Fault: a large share of one group drifts at once, the same way (a bad image or a sanctioned change made
 * by hand everywhere, not eight independent snowflakes). The scheduler runs in `enforce` with the `exec`
 * provider, whose command records every call, so "replaced" is observable: the breaker must pause that
 * group before anything there reaches the provider, while another group with unrelated drifts is replaced
 * within its budget. Once an operator resumes the paused group, its replacements proceed, never more at
 * once than maxUnavailable and never more than its rate.
 *
 * The test plays the platform: when the provider is asked to replace a host, it stops that host's agent
 * (the instance is gone), and the scheduler completes the replacement once the host has been quiet for
 * `quietFor`. It runs the scheduler's passes itself (`POST /api/v1/scheduler/tick`; the loop's interval is
 * an hour) so which taints a pass sees does not depend on timing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dwAsync, until } from '../../helpers/agent-host.js';
import { FIXTURES, tempDir } from '../../helpers/tmp.js';
import { verifyHost, type FleetHost } from './harness.js';
import { Fleet, freshStore } from './fleet.js';

const RECORDER = join(FIXTURES, 'providers/exec-record.mjs');
const BURST = { name: 'burst', hosts: 8, drifted: 6, maxUnavailable: 2, rate: 3 };
const STEADY = { name: 'steady', hosts: 4, drifted: 2, maxUnavailable: 1 };
const QUIET_MS = 2000;

interface Call {
  at: string;
  argv: string[];
  action: string;
  stdin: {
    action: string;
    replacementId: string;
    group: string;
    reason: string;
    host: { id: string; hostname: string | null; imageId: string };
  };
}

interface Replacement {
  id: string;
  hostId: string;
  group: string;
  state: string;
  decision: string | null;
  decisionReason: string | null;
  provider: string | null;
  providerRef: string | null;
  scheduledAt: string | null;
  finishedAt: string | null;
}

interface Group {
  name: string;
  paused: boolean;
  pausedBy: string | null;
  pausedReason: string | null;
  resumedBy: string | null;
  inFlight: number;
}

let fleet: Fleet;
afterEach(async () => {
  await fleet.teardown();
});

describe('a burst: most of a group drifts at once, the same way', () => {
  it('the breaker pauses that group before any provider call, the other group is replaced within budget, and after a resume the burst is replaced within budget and rate', async () => {
    fleet = new Fleet();
    const calls = join(tempDir('dw-burst-'), 'provider-calls.jsonl');
    const ctl = await fleet.controller({
      store: await freshStore('sqlite'),
      scheduler: {
        mode: 'enforce',
        interval: '1h',
        budgets: [
          { group: BURST.name, maxUnavailable: BURST.maxUnavailable, rate: { max: BURST.rate, per: '1h' } },
          { group: STEADY.name, maxUnavailable: STEADY.maxUnavailable },
        ],
        // 2 of 4 steady hosts (50%) is not past it; 6 of 8 burst hosts (75%) is.
        breaker: { taintedShare: 0.5, window: '15m', minTainted: 2, sameDeviation: 5 },
        provider: { type: 'exec', command: [process.execPath, RECORDER, calls], timeout: '30s' },
        quietFor: `${QUIET_MS / 1000}s`,
      },
    });
    const burst: FleetHost[] = [];
    const steady: FleetHost[] = [];
    for (let i = 0; i < BURST.hosts; i++)
      burst.push(
        fleet.host({
          path: { kind: 'direct', controllerUrl: ctl.url },
          group: BURST.name,
          scan: '*/5 * * * * *',
          heartbeat: '500ms',
          watch: ['/opt'],
        }),
      );
    for (let i = 0; i < STEADY.hosts; i++)
      steady.push(
        fleet.host({
          path: { kind: 'direct', controllerUrl: ctl.url },
          group: STEADY.name,
          scan: '*/5 * * * * *',
          heartbeat: '500ms',
          watch: ['/opt'],
        }),
      );
    const hosts = [...burst, ...steady];
    const byId = new Map(hosts.map((h) => [h.id, h]));
    for (const h of hosts) await h.start();
    const state = async (h: FleetHost) => (await fleet.api.host(h.id))?.host.state;
    await until(
      async () => {
        for (const h of hosts) if ((await state(h)) !== 'clean') return false;
        return true;
      },
      () => `every host clean\n${hosts.map((h) => `${h.name}: ${h.log.slice(-400)}`).join('\n')}`,
      60_000,
      250,
    );

    // The burst: the same hand-made change on six of eight hosts; in the other group, two unrelated ones.
    const burstDrifted = burst.slice(0, BURST.drifted);
    const steadyDrifted = steady.slice(0, STEADY.drifted);
    for (const h of burstDrifted)
      writeFileSync(
        join(h.root, 'opt/app/bin/start'),
        '#!/bin/sh\n# hotfix applied by hand everywhere\nexec /opt/app/bin/server --workers 64\n',
      );
    steadyDrifted.forEach((h, i) =>
      writeFileSync(
        join(h.root, 'opt/app/bin/start'),
        `#!/bin/sh\n# debugging ${h.name}, session ${i}\nexec strace -f /opt/app/bin/server\n`,
      ),
    );
    const drifted = [...burstDrifted, ...steadyDrifted];
    await until(
      async () => {
        for (const h of drifted) if ((await state(h)) !== 'tainted') return false;
        return true;
      },
      'every drifted host tainted',
      30_000,
      100,
    );

    // The platform: each host the provider is asked to replace goes away (its agent stops).
    const readCalls = (): Call[] =>
      existsSync(calls)
        ? readFileSync(calls, 'utf8')
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Call)
        : [];
    const terminated = new Set<string>();
    const list = async () =>
      (await fleet.api.call<{ replacements: Replacement[] }>('GET', '/api/v1/replacements?limit=5000')).body
        .replacements;
    const groups = async () =>
      new Map(
        (await fleet.api.call<{ groups: Group[] }>('GET', '/api/v1/replacement-groups')).body.groups.map((g) => [
          g.name,
          g,
        ]),
      );
    const inFlight = (rows: Replacement[], group: string) =>
      rows.filter((r) => r.group === group && (r.state === 'scheduled' || r.state === 'replacing')).length;
    const tick = async () => {
      const r = await fleet.api.call<{ tripped: string[]; started: number; completed: number }>(
        'POST',
        '/api/v1/scheduler/tick',
      );
      expect(r.status).toBe(200);
      for (const c of readCalls()) {
        if (terminated.has(c.stdin.host.id)) continue;
        terminated.add(c.stdin.host.id);
        await byId.get(c.stdin.host.id)!.stop();
      }
      // After every pass, as an operator would see it: no group has more in flight than its budget.
      const rows = await list();
      expect(inFlight(rows, BURST.name)).toBeLessThanOrEqual(BURST.maxUnavailable);
      expect(inFlight(rows, STEADY.name)).toBeLessThanOrEqual(STEADY.maxUnavailable);
      return r.body;
    };

    // The first pass sees the whole burst: the breaker trips, nothing in that group reaches the provider.
    const first = await tick();
    expect(first.tripped).toEqual([BURST.name]);
    let g = await groups();
    expect(g.get(BURST.name)).toMatchObject({ paused: true, pausedBy: 'breaker', inFlight: 0 });
    expect(g.get(BURST.name)!.pausedReason).toMatch(
      /^6 of 8 hosts \(75%\) tainted within 15m, more than taintedShare 50%/,
    );
    expect(g.get(STEADY.name)!.paused).toBe(false);
    let rows = await list();
    const burstRows = rows.filter((r) => r.group === BURST.name);
    expect(burstRows.map((r) => r.hostId).sort()).toEqual(burstDrifted.map((h) => h.id).sort());
    for (const r of burstRows)
      expect(r, 'a burst host held back by the breaker').toMatchObject({
        state: 'queued',
        decision: 'paused',
        provider: null,
      });
    // Steady: the budget lets one go; the other waits for it.
    expect(readCalls().map((c) => c.stdin.group)).toEqual([STEADY.name]);
    const waiting = rows.find((r) => r.group === STEADY.name && r.state === 'queued')!;
    expect(waiting).toMatchObject({ decision: 'waiting' });
    // (The reason counts what was unavailable as the pass began: the slot went to the head of the queue in it.)
    expect(waiting.decisionReason).toMatch(/^budget "steady": maxUnavailable 1, /);

    const audit = (
      await fleet.api.call<{
        audit: { actor: string; action: string; target: string | null; detail: { reason?: string } }[];
      }>('GET', '/api/v1/audit?limit=1000')
    ).body.audit;
    const trips = audit.filter((a) => a.action === 'replacement.breaker-trip');
    expect(trips).toHaveLength(1);
    expect(trips[0]).toMatchObject({ actor: 'controller', target: BURST.name });
    expect(trips[0]!.detail.reason).toMatch(/6 of 8 hosts/);

    // More passes: steady is replaced one at a time; the burst stays paused and untouched.
    await until(
      async () => {
        await tick();
        return (
          (await list()).filter((r) => r.group === STEADY.name && r.state === 'replaced').length === STEADY.drifted
        );
      },
      () => `steady replaced\n${readFileSync(calls, 'utf8')}`,
      30_000,
      500,
    );
    expect(readCalls().filter((c) => c.stdin.group === BURST.name)).toEqual([]);
    g = await groups();
    expect(g.get(BURST.name)).toMatchObject({ paused: true, inFlight: 0 });
    for (const h of burstDrifted) expect(await state(h)).toBe('tainted');

    // An operator looks, then resumes the group with the CLI (an operator token, not an admin's).
    const token = await dwAsync([
      'token',
      'create',
      '--config',
      ctl.configFile,
      '--role',
      'operator',
      '--name',
      'oncall',
    ]);
    expect(token.code, token.stderr).toBe(0);
    const resumed = await dwAsync([
      'replacements',
      'resume',
      BURST.name,
      '--url',
      ctl.url,
      '--token',
      token.stdout.trim(),
    ]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/^group burst resumed at \d{4}-/);
    g = await groups();
    expect(g.get(BURST.name)).toMatchObject({ paused: false, resumedBy: expect.stringContaining('oncall') });

    // Replacements proceed within budget: two at a time, three in all (the rate), then the rest wait.
    await until(
      async () => {
        await tick();
        return (await list()).filter((r) => r.group === BURST.name && r.state === 'replaced').length === BURST.rate;
      },
      () => `burst replaced up to its rate\n${readFileSync(calls, 'utf8')}`,
      40_000,
      500,
    );
    await tick();
    rows = await list();
    const burstAfter = rows.filter((r) => r.group === BURST.name);
    expect(burstAfter.filter((r) => r.state === 'replaced')).toHaveLength(BURST.rate);
    const held = burstAfter.filter((r) => r.state === 'queued');
    expect(held).toHaveLength(BURST.drifted - BURST.rate);
    for (const r of held) expect(r.decisionReason).toMatch(/rate 3 per 1h, 3 started/);
    // Resumed, the breaker does not trip again on the taints from before the resume.
    expect((await groups()).get(BURST.name)!.paused).toBe(false);

    // The provider calls: one per replaced host, with the argument vector as configured and the host on stdin.
    const recorded = readCalls();
    expect(recorded).toHaveLength(STEADY.drifted + BURST.rate);
    for (const c of recorded) {
      expect(c.argv).toEqual([RECORDER, calls]);
      expect(c.action).toBe('replace');
      const row = rows.find((r) => r.id === c.stdin.replacementId)!;
      expect(row, `a replacement for call ${c.stdin.replacementId}`).toBeDefined();
      expect(row).toMatchObject({
        hostId: c.stdin.host.id,
        state: 'replaced',
        provider: 'exec',
        providerRef: `recorded-${row.id}`,
      });
      expect(c.stdin).toMatchObject({
        group: row.group,
        reason: 'tainted',
        host: { hostname: byId.get(row.hostId)!.name },
      });
      expect(await state(byId.get(row.hostId)!)).toBe('replaced');
    }
    expect(new Set(recorded.map((c) => c.stdin.host.id)).size).toBe(recorded.length);
    // Never more in flight at once than the budget: the replacements' own times, scheduled to finished.
    for (const [group, max] of [
      [BURST.name, BURST.maxUnavailable],
      [STEADY.name, STEADY.maxUnavailable],
    ] as const) {
      const spans = rows
        .filter((r) => r.group === group && r.scheduledAt && r.finishedAt)
        .map((r) => [Date.parse(r.scheduledAt!), Date.parse(r.finishedAt!)] as const);
      const most = Math.max(...spans.map(([s]) => spans.filter(([a, b]) => a <= s && s < b).length));
      expect(most, `${group}: replacements in flight at once`).toBeLessThanOrEqual(max);
    }
    const actions = (
      await fleet.api.call<{ audit: { actor: string; action: string; target: string | null }[] }>(
        'GET',
        '/api/v1/audit?limit=1000',
      )
    ).body.audit;
    expect(actions.filter((a) => a.action === 'replacement.resume')).toEqual([
      expect.objectContaining({ target: BURST.name, actor: expect.stringContaining('oncall') }),
    ]);
    expect(actions.filter((a) => a.action === 'replacement.complete')).toHaveLength(STEADY.drifted + BURST.rate);

    // Nothing lost: every host's reports, row and transitions agree (the replaced ones included).
    for (const h of hosts) await h.stop();
    for (const h of hosts) {
      expect(h.exits, `${h.name} ran until stopped`).toEqual([{ code: 0, signal: null }]);
      await verifyHost(fleet.api, h);
    }
  }, 120_000);
});
