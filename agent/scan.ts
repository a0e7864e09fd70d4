/** @module Run the enabled collectors over a root; a failing collector degrades the scan, it does not end it. */
import type { CollectorName } from '../shared/schema/common.js';
import type { Sections } from '../shared/schema/manifest.js';
import type { CollectorResult } from '../shared/schema/report.js';
import type { CollectionRules } from '../shared/schema/rules.js';
import { describeError } from '../shared/errors.js';
import { COLLECTORS } from './collectors/index.js';
import type { CollectContext } from './collectors/types.js';

export interface ScanResult {
  sections: Sections;
  results: CollectorResult[];
}

export async function scan(ctx: CollectContext, rules: CollectionRules = ctx.rules): Promise<ScanResult> {
  const sections: Record<string, { items: unknown[] }> = {};
  const results: CollectorResult[] = [];
  for (const [name, collector] of Object.entries(COLLECTORS) as [
    CollectorName,
    NonNullable<(typeof COLLECTORS)[CollectorName]>,
  ][]) {
    if (!rules.collectors.includes(name)) continue;
    if (ctx.signal?.aborted) {
      results.push({ collector: name, ok: false, durationMs: 0, items: 0, error: describeError(ctx.signal.reason) });
      continue;
    }
    const started = performance.now();
    const log = ctx.log.child({ collector: name });
    try {
      const out = await collector.collect({ ...ctx, rules, log });
      sections[name] = { items: out.items };
      results.push({
        collector: name,
        ok: true,
        durationMs: Math.round(performance.now() - started),
        items: out.items.length,
        ...(out.warnings.length > 0 ? { warnings: out.warnings } : {}),
      });
      for (const w of out.warnings) log.warn({ collector: name }, w);
    } catch (err) {
      log.error({ err, collector: name }, 'collector failed');
      results.push({
        collector: name,
        ok: false,
        durationMs: Math.round(performance.now() - started),
        items: 0,
        error: describeError(err),
      });
    }
  }
  return { sections: sections as Sections, results };
}
