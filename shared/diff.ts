/**
 * @module Compare two sections item by item, and the inverse: apply deviations to a section. The
 * controller uses the inverse to check that a report's digests agree with its own manifest copy.
 */
import { canonicalJson } from './canonical.js';
import type { CollectorName } from './schema/common.js';
import type { Deviation } from './schema/deviation.js';
import type { AnyItem } from './schema/items.js';
import { defaultSeverity } from './severity.js';

type Item = AnyItem & Record<string, unknown>;

/** The item without its key: what `expected` and `actual` carry. */
function body(item: Item): Record<string, unknown> {
  const { key: _key, ...rest } = item;
  return rest;
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  return canonicalJson(a) === canonicalJson(b);
}

/** Names of the fields that differ between two items (fields absent on one side count). */
export function changedFields(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if (k !== 'key' && !same(a[k], b[k])) out.push(k);
  return out.sort();
}

/** Deviations between an expected and an actual section, ordered by key. */
export function diffSection(collector: CollectorName, expected: readonly AnyItem[], actual: readonly AnyItem[]): Deviation[] {
  const want = new Map<string, Item>();
  for (const item of expected) want.set(item.key, item as Item);
  const out: Deviation[] = [];
  const dev = (change: Deviation['change'], key: string, e: Item | null, a: Item | null, fields?: string[]): Deviation => {
    const expectedBody = e ? body(e) : null;
    const actualBody = a ? body(a) : null;
    return {
      collector,
      key,
      change,
      expected: expectedBody,
      actual: actualBody,
      ...(fields ? { fields } : {}),
      severity: defaultSeverity(collector, change, key, expectedBody, actualBody),
    };
  };
  for (const item of actual as Item[]) {
    const e = want.get(item.key);
    if (!e) {
      out.push(dev('added', item.key, null, item));
      continue;
    }
    want.delete(item.key);
    const fields = changedFields(e, item);
    if (fields.length > 0) out.push(dev('modified', item.key, e, item, fields));
  }
  for (const [key, e] of want) out.push(dev('removed', key, e, null));
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** The section a host must have if `deviations` are exactly its differences from `expected`. */
export function applyDeviations(collector: CollectorName, expected: readonly AnyItem[], deviations: readonly Deviation[]): AnyItem[] {
  const items = new Map<string, AnyItem>();
  for (const item of expected) items.set(item.key, item);
  for (const d of deviations) {
    if (d.collector !== collector) continue;
    if (d.change === 'removed') items.delete(d.key);
    else items.set(d.key, { ...(d.actual ?? {}), key: d.key } as AnyItem);
  }
  return [...items.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
