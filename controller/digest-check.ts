/**
 * @module Does a report add up? The host's per-section digests must equal the controller's own copy of
 * the manifest with the host's deviations applied. A section that disagrees means deviations were
 * lost, filtered or invented on the way, and is itself reported as a deviation.
 */
import { digestOf, sha256Hex } from '../shared/canonical.js';
import { applyDeviations } from '../shared/diff.js';
import type { CollectorName } from '../shared/schema/common.js';
import { COLLECTOR_NAMES } from '../shared/schema/common.js';
import type { Deviation } from '../shared/schema/deviation.js';
import type { AnyItem } from '../shared/schema/items.js';
import type { Manifest } from '../shared/schema/manifest.js';

/**
 * Fleets drift in the same way on many hosts at once; the same deviations on the same manifest give
 * the same digest, so results are remembered by (manifest, section, deviations).
 */
const memo = new Map<string, string>();
const MEMO_LIMIT = 10_000;
/** Lookups since start, for /metrics: a miss costs a pass over the manifest's section (~170 ms at 130k files). */
export const digestMemoStats = { hits: 0, misses: 0 };

export interface DigestMismatch {
  section: string;
  expected: string | null;
  reported: string | null;
}

export function checkReportDigests(
  manifest: Manifest,
  reported: Record<string, string>,
  deviations: readonly Deviation[],
): DigestMismatch[] {
  const out: DigestMismatch[] = [];
  const byCollector = new Map<CollectorName, Deviation[]>();
  // IMPORTANT: push into the collector's own list; a copy per deviation (`[...old, d]`) made one
  // report of 80,000 deviations cost minutes of CPU.
  for (const d of deviations) {
    const list = byCollector.get(d.collector);
    if (list) list.push(d);
    else byCollector.set(d.collector, [d]);
  }
  const sections = new Set<string>([...Object.keys(manifest.digests.sections), ...Object.keys(reported)]);
  for (const section of sections) {
    if (!(COLLECTOR_NAMES as readonly string[]).includes(section)) {
      out.push({ section, expected: null, reported: reported[section] ?? null });
      continue;
    }
    const name = section as CollectorName;
    const devs = byCollector.get(name) ?? [];
    let expected: string | null;
    if (!manifest.sections[name]) expected = null;
    else if (devs.length === 0) expected = manifest.digests.sections[name] ?? null;
    else {
      // A cache key needs no canonical form: the same agent sends the same deviations in the same order.
      const key = `${manifest.digests.overall}\0${name}\0${sha256Hex(JSON.stringify(devs))}`;
      expected = memo.get(key) ?? null;
      if (expected !== null) digestMemoStats.hits++;
      else {
        digestMemoStats.misses++;
        expected = digestOf(applyDeviations(name, manifest.sections[name]!.items as AnyItem[], devs));
        if (memo.size >= MEMO_LIMIT) memo.delete(memo.keys().next().value!);
        memo.set(key, expected);
      }
    }
    const got = reported[section] ?? null;
    if (got !== expected) out.push({ section, expected, reported: got });
  }
  return out;
}
