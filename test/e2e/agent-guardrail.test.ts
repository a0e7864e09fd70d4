/**
 * The agent's guardrail, end to end: the real agent's scan process, over its memory limit, is killed by
 * the daemon's watchdog, and the controller hears of an incomplete scan (never of a clean one).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentFor, bake, killAll, publishedController, type Baked, type Controller } from '../helpers/agent-host.js';

let baked: Baked;
beforeAll(() => {
  baked = bake();
}, 60_000);

const controllers: Controller[] = [];
const bulk: string[] = [];
// Before the temp directories' own clean-up (hooks after run last-registered first), with time for 60,000 files.
afterAll(() => {
  for (const d of bulk.splice(0)) rmSync(d, { recursive: true, force: true });
}, 120_000);
afterEach(async () => {
  await killAll();
  for (const c of controllers.splice(0)) await c.stop();
});

describe('the scan guardrail', () => {
  it('kills a scan process over limits.memoryMb and reports the scan incomplete: the host is drifted, not clean', async () => {
    const c = await publishedController(baked, controllers);
    const a = agentFor(baked, c, { watch: null });
    // 60,000 files the manifest does not know: the daemon and its prepare task stay small (the manifest
    // is the fixture's), but the scan walks, hashes and diffs them all, far past 128 MB.
    bulk.push(join(a.root, 'opt/bulk'));
    for (let d = 0; d < 60; d++) {
      const dir = join(a.root, 'opt/bulk', String(d));
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 1000; f++) writeFileSync(join(dir, `f${f}`), `${d}/${f}\n`);
    }
    writeFileSync(a.configFile, stringify({ ...a.configObject(), limits: { memoryMb: 128 } }));
    const r = await a.once();
    // Delivered: the report of an incomplete scan is a report like any other.
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/scan incomplete: reported as such/);
    const detail = (await c.host())!;
    expect(detail.host.state).toBe('drifted');
    const failed = detail.deviations.filter((d) => d.key.startsWith('collector-failed:'));
    expect(failed.map((d) => d.key)).toContain('collector-failed:files');
    expect(JSON.stringify(failed[0]!.actual)).toMatch(
      /scan stopped by the watchdog: the scan process used \d+ MB, over the 128 MB limit/,
    );
    // Nothing of the partial scan is passed off as found: no file deviations were sent.
    expect(detail.deviations.filter((d) => d.collector === 'files')).toEqual([]);
  }, 180_000);
});
