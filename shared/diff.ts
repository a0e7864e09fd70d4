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

const isOwnEnumerable = Object.prototype.propertyIsEnumerable;

/** Names of the fields that differ between two items (fields absent on one side count). */
export function changedFields(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  // Runs once per item of a section (100k+ for files): no Set, no spread, nothing to sort when equal.
  let out: string[] | null = null;
  for (const k of Object.keys(a)) {
    if (k !== 'key' && !same(a[k], b[k])) (out ??= []).push(k);
  }
  for (const k of Object.keys(b)) {
    if (k !== 'key' && !isOwnEnumerable.call(a, k) && !same(a[k], b[k])) (out ??= []).push(k);
  }
  return out ? out.sort() : [];
}

/**
 * True only when changedFields(a, b) is empty, checked the quick way that suits items built alike
 * (the same keys in the same order): one walk over the keys, no arrays built but the two key lists.
 */
function unchanged(a: Item, b: Item): boolean {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) {
    const k = ka[i]!;
    if (k !== kb[i]) return false;
    const x = a[k];
    const y = b[k];
    if (x !== y && k !== 'key' && !same(x, y)) return false;
  }
  return true;
}

/** Every key a string, each greater than the one before: no duplicates, nothing out of order. */
function strictlySorted(items: readonly AnyItem[]): boolean {
  for (let i = 0; i < items.length; i++) {
    const k = items[i]!.key as unknown;
    if (typeof k !== 'string' || (i > 0 && !((items[i - 1]!.key as string) < k))) return false;
  }
  return true;
}

type Dev = (change: Deviation['change'], key: string, e: Item | null, a: Item | null, fields?: string[]) => Deviation;

function deviationMaker(collector: CollectorName): Dev {
  return (change, key, e, a, fields) => {
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
}

/**
 * Two sections sorted by key walked side by side: no map of 100k+ keys to build, and the deviations
 * come out in key order. The expected side is taken one item at a time, so it need not be an array.
 */
function diffSorted(dev: Dev, next: () => Item | undefined, A: readonly Item[]): Deviation[] {
  const out: Deviation[] = [];
  let e = next();
  let j = 0;
  while (e !== undefined || j < A.length) {
    const a = A[j];
    if (a !== undefined && e !== undefined && e.key === a.key) {
      const fields = unchanged(e, a) ? null : changedFields(e, a);
      if (fields && fields.length > 0) out.push(dev('modified', a.key, e, a, fields));
      e = next();
      j++;
    } else if (a === undefined || (e !== undefined && e.key < a.key)) {
      out.push(dev('removed', e!.key, e!, null));
      e = next();
    } else {
      out.push(dev('added', a.key, null, a));
      j++;
    }
  }
  return out;
}

/** Deviations between an expected and an actual section, ordered by key. */
export function diffSection(
  collector: CollectorName,
  expected: readonly AnyItem[],
  actual: readonly AnyItem[],
): Deviation[] {
  const dev = deviationMaker(collector);
  if (strictlySorted(expected) && strictlySorted(actual)) {
    const E = expected as Item[];
    let i = 0;
    return diffSorted(dev, () => E[i++], actual as Item[]);
  }
  const out: Deviation[] = [];
  const want = new Map<string, Item>();
  for (const item of expected) want.set(item.key, item as Item);
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

/**
 * diffSection for an expected section given as items in strictly increasing key order, one at a
 * time (the agent's packed manifest): the same deviations, without the expected items all held at once.
 */
export function diffSectionSorted(
  collector: CollectorName,
  expected: Iterable<AnyItem>,
  actual: readonly AnyItem[],
): Deviation[] {
  if (!strictlySorted(actual)) return diffSection(collector, [...expected], actual);
  const it = expected[Symbol.iterator]();
  return diffSorted(
    deviationMaker(collector),
    () => {
      const r = it.next();
      return r.done ? undefined : (r.value as Item);
    },
    actual as Item[],
  );
}

/** The section a host must have if `deviations` are exactly its differences from `expected`. */
export function applyDeviations(
  collector: CollectorName,
  expected: readonly AnyItem[],
  deviations: readonly Deviation[],
): AnyItem[] {
  const items = new Map<string, AnyItem>();
  for (const item of expected) items.set(item.key, item);
  for (const d of deviations) {
    if (d.collector !== collector) continue;
    if (d.change === 'removed') items.delete(d.key);
    else items.set(d.key, { ...(d.actual ?? {}), key: d.key } as AnyItem);
  }
  return [...items.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
