import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { changedFields, diffSection } from '../../shared/diff.js';
import { canonicalJson } from '../../shared/canonical.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import type { AnyItem } from '../../shared/schema/items.js';
import { defaultSeverity } from '../../shared/severity.js';

type Item = AnyItem & Record<string, unknown>;

/** diffSection and changedFields as they were before the sorted-merge path: the reference. */
function referenceFields(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const same = (x: unknown, y: unknown) =>
    x === y ||
    (x !== null &&
      y !== null &&
      typeof x === 'object' &&
      typeof y === 'object' &&
      canonicalJson(x) === canonicalJson(y));
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) if (k !== 'key' && !same(a[k], b[k])) out.push(k);
  return out.sort();
}
function reference(expected: readonly Item[], actual: readonly Item[]): Deviation[] {
  const want = new Map<string, Item>();
  for (const item of expected) want.set(item.key, item);
  const out: Deviation[] = [];
  const body = (i: Item) => {
    const { key: _k, ...rest } = i;
    return rest;
  };
  const dev = (
    change: Deviation['change'],
    key: string,
    e: Item | null,
    a: Item | null,
    fields?: string[],
  ): Deviation => {
    const eb = e ? body(e) : null;
    const ab = a ? body(a) : null;
    return {
      collector: 'files',
      key,
      change,
      expected: eb,
      actual: ab,
      ...(fields ? { fields } : {}),
      severity: defaultSeverity('files', change, key, eb, ab),
    };
  };
  for (const item of actual) {
    const e = want.get(item.key);
    if (!e) {
      out.push(dev('added', item.key, null, item));
      continue;
    }
    want.delete(item.key);
    const fields = referenceFields(e, item);
    if (fields.length > 0) out.push(dev('modified', item.key, e, item, fields));
  }
  for (const [key, e] of want) out.push(dev('removed', key, e, null));
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

const fileItem = fc.record(
  {
    key: fc.constantFrom('/etc/a', '/etc/a-b', '/etc/a/b', '/usr/bin/ls', '/usr/bin/x', '/usr/lib/y', '/opt/z'),
    type: fc.constantFrom('file', 'dir', 'symlink'),
    mode: fc.constantFrom('0644', '0755', '4755'),
    uid: fc.constantFrom(0, 1000),
    gid: fc.constantFrom(0, 1000),
    size: fc.constantFrom(1, 2),
    sha256: fc.constantFrom('a'.repeat(64), 'b'.repeat(64)),
    target: fc.constantFrom('x', undefined),
    extra: fc.constantFrom<unknown>({ n: 1 }, { n: 2 }, [1], undefined, null),
  },
  { requiredKeys: ['key', 'type', 'mode', 'uid', 'gid'] },
) as fc.Arbitrary<Item>;
const byKey = (a: Item, b: Item) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
const sortedUnique = fc.uniqueArray(fileItem, { selector: (i) => i.key }).map((xs) => xs.sort(byKey));
const anyOrder = fc.array(fileItem, { maxLength: 8 });

describe('diffSection, sorted-merge path', () => {
  it('gives what the map-based diff gives, sorted or not, duplicates or not', () => {
    fc.assert(
      fc.property(fc.oneof(sortedUnique, anyOrder), fc.oneof(sortedUnique, anyOrder), (expected, actual) => {
        expect(diffSection('files', expected, actual)).toEqual(reference(expected, actual));
      }),
      { numRuns: 3000 },
    );
  });

  it('names the same changed fields as before, absent and undefined fields included', () => {
    fc.assert(
      fc.property(fileItem, fileItem, (a, b) => {
        expect(changedFields(a, b)).toEqual(referenceFields(a, b));
      }),
      { numRuns: 2000 },
    );
  });
});
