/**
 * @module The collector registry (shared/collectors.ts) is the one declaration: every place that used
 * to restate the list of collectors is checked here against it, so adding a collector without its
 * schema, policy, config toggle, implementation, dashboard entry, OCSF class or README row fails.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COLLECTORS } from '../../agent/collectors/index.js';
import { silentLogger } from '../../agent/log.js';
import { HostRoot } from '../../agent/root.js';
import { execProgram } from '../../agent/exec.js';
import { defaultPolicy, evaluate } from '../../controller/policy.js';
import { toOcsf } from '../../controller/siem/ocsf.js';
import { openStore } from '../../controller/store/index.js';
import { COLLECTOR_DEFS, collectorDef, compareTableMarkdown, dashboardModule } from '../../shared/collectors.js';
import { COLLECTOR_NAMES } from '../../shared/schema/common.js';
import { AgentConfigSchema } from '../../shared/schema/config.js';
import { ITEM_SCHEMAS } from '../../shared/schema/items.js';
import { SectionsSchema } from '../../shared/schema/manifest.js';
import { DEFAULT_POLICY, keyStyleOf } from '../../shared/schema/policy.js';
import { defaultRules } from '../../shared/schema/rules.js';
import { Harness } from '../controller/harness.js';
import { FIXTURES } from '../helpers/tmp.js';

const REPO = new URL('../../', import.meta.url).pathname;
const names = COLLECTOR_DEFS.map((d) => d.name);

describe('the collector registry', () => {
  it('declares each collector once, with a field list that is exactly its item schema', () => {
    expect(new Set(names).size).toBe(names.length);
    expect([...COLLECTOR_NAMES]).toEqual(names);
    for (const d of COLLECTOR_DEFS) {
      const shape = Object.keys(ITEM_SCHEMAS[d.name].shape)
        .filter((k) => k !== 'key')
        .sort();
      expect(d.fields.map((f) => f.name).sort(), d.name).toEqual(shape);
    }
  });

  it('gives the manifest one section per collector, and nothing else', () => {
    for (const n of names) expect(SectionsSchema.safeParse({ [n]: { items: [] } }).success, n).toBe(true);
    expect(SectionsSchema.safeParse({ 'no-such-collector': { items: [] } }).success).toBe(false);
  });

  it('gives the agent config a toggle per collector, on by default as declared, and the default rules collect exactly those', () => {
    const config = AgentConfigSchema.parse({});
    for (const d of COLLECTOR_DEFS) expect(config.collectors[d.name].enabled, d.name).toBe(d.enabledByDefault);
    expect(defaultRules().collectors).toEqual(COLLECTOR_DEFS.filter((d) => d.enabledByDefault).map((d) => d.name));
    expect(AgentConfigSchema.safeParse({ collectors: { 'kernel-modules': { enabled: false } } }).success).toBe(true);
    expect(AgentConfigSchema.safeParse({ collectors: { modules: { enabled: false } } }).success).toBe(false);
  });

  it('has an agent implementation under the same name for every collector', () => {
    expect(Object.keys(COLLECTORS)).toEqual(names);
    for (const n of names) expect(COLLECTORS[n]!.name).toBe(n);
  });

  it('drives policy: key style, and the shipped default action for a deviation of each collector', () => {
    const policy = defaultPolicy();
    for (const d of COLLECTOR_DEFS) {
      expect(keyStyleOf(d.name), d.name).toBe(d.keyStyle);
      // A key that no ignore rule touches.
      const key = d.keyStyle === 'name' ? 'drift-test-key' : '/srv/drift-test-key';
      const got = evaluate(
        policy,
        { collector: d.name, key, change: 'added', severity: d.severity.added },
        { hostId: 'h', imageId: 'i', now: 0, exemptions: [] },
      );
      expect(got.action, d.name).toBe(d.defaultAction);
      // Path-keyed collectors are decided by path rules and the no-rule default, not one catch-all rule.
      if (d.defaultAction === 'taint' && d.keyStyle !== 'path')
        expect(DEFAULT_POLICY.some((r) => r.name === `default/${d.name}` && r.action === 'taint')).toBe(true);
    }
  });

  it("maps each collector's deviations to the OCSF class it declares", () => {
    for (const d of COLLECTOR_DEFS) {
      const key = d.keyStyle === 'path' ? '/etc/x' : 'x';
      const e = toOcsf({
        id: 1,
        at: '2026-01-01T00:00:00.000Z',
        kind: 'deviation',
        hostId: 'h1',
        actor: 'agent:h1',
        prevHash: '0',
        hash: '1',
        detail: {
          collector: d.name,
          key,
          change: 'added',
          severity: 'high',
          action: 'taint',
          expected: null,
          actual: { type: 'file' },
        },
      });
      expect(e.class_uid, d.name).toBe(d.ocsfClass);
    }
  });

  it("is the dashboard's list: served as /ui/collectors.js, and no page restates the names", async () => {
    const h = await Harness.start(await openStore('sqlite::memory:'));
    try {
      const res = await h.req('GET', '/ui/collectors.js');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/javascript/);
      expect(res.text).toBe(dashboardModule());
      for (const d of COLLECTOR_DEFS) expect(res.text).toContain(JSON.stringify(d.label));
    } finally {
      await h.close();
    }
    const dir = join(REPO, 'controller/dashboard');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.js'))) {
      const text = readFileSync(join(dir, file), 'utf8');
      // A literal list of collector names ('packages', 'sysctl', ...) is the restatement this registry replaced.
      expect(text, file).not.toMatch(/'packages',\s*'sysctl'/);
    }
  });

  it('is the README\'s "What is compared" table, word for word', () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const m = /<!-- collectors:begin[^>]*-->\n([\s\S]*?)\n<!-- collectors:end -->/.exec(readme);
    expect(m, 'README.md has the generated table between its markers').not.toBeNull();
    expect(m![1]).toBe(compareTableMarkdown());
  });

  it('declares every path a collector really reads (run on the web fixture, every read recorded)', async () => {
    class RecordingRoot extends HostRoot {
      readonly seen = new Set<string>();
      override path(hostPath: string): string {
        this.seen.add(hostPath);
        return super.path(hostPath);
      }
    }
    const undeclared: string[] = [];
    for (const d of COLLECTOR_DEFS) {
      if (d.name === 'files') continue; // reads its configured roots, not fixed paths
      const root = new RecordingRoot(join(FIXTURES, 'hosts/web'));
      await COLLECTORS[d.name]!.collect({ root, rules: defaultRules(), exec: execProgram, log: silentLogger });
      const declared = collectorDef(d.name)!.reads.filter((r) => r.startsWith('/'));
      const homes =
        d.name === 'accounts'
          ? collectorDef(d.name)!
              .reads.filter((r) => r.startsWith('<home>'))
              .map((r) => r.slice('<home>'.length))
          : [];
      for (const p of root.seen) {
        // Reads are of the declared paths, below them, or the directories on the way to them (resolving links).
        const ok =
          declared.some(
            (r) => p === r || p.startsWith(`${r}/`) || p.startsWith(`${r}.`) || r.startsWith(`${p}/`) || p === '/',
          ) ||
          homes.some(
            (h) => p.endsWith(h) || p.includes(`${h}`) || h.startsWith(p.replace(/^\/home\/[^/]+|^\/root/, '')),
          );
        if (!ok) undeclared.push(`${d.name} read ${p}`);
      }
    }
    expect(undeclared).toEqual([]);
  });
});
