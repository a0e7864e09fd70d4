import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { canonicalJson, digestOf } from '../../shared/canonical.js';

/** The plain recursive writer canonicalJson had before its JSON.stringify fast path: the reference. */
function reference(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON cannot hold ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) {
        const parts: string[] = [];
        value.forEach((item, i) => parts.push((i > 0 ? ',' : '') + reference(item === undefined ? null : item)));
        return `[${parts.join('')}]`;
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${reference(obj[k])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}

const outcome = (f: () => string) => {
  try {
    return { ok: f() };
  } catch (err) {
    return { threw: (err as Error).message };
  }
};

/** Values that exercise the fast path (sorted keys) and every way out of it. */
const sortedObject = (v: fc.Arbitrary<unknown>) =>
  fc.dictionary(fc.string(), v).map((o) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1))));
const odd = fc.constantFrom<unknown>(
  undefined,
  Number.NaN,
  Infinity,
  -0,
  new Date(0),
  Object.create(null),
  [1, , 2],
  new String('ab'),
  { toJSON: () => 'x' },
  { 10: 1, 9: 2 },
  { b: 1, a: undefined },
);
const value = fc.letrec((tie) => ({
  any: fc.oneof({ depthSize: 'small' }, fc.jsonValue(), odd, tie('arr'), tie('obj'), tie('sorted')),
  arr: fc.array(tie('any'), { maxLength: 4 }),
  obj: fc.dictionary(fc.string(), tie('any'), { maxKeys: 4 }),
  sorted: sortedObject(tie('any')),
})).any;

describe('canonicalJson fast path', () => {
  it('gives exactly what the plain writer gives, or throws the same error', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(outcome(() => canonicalJson(v))).toEqual(outcome(() => reference(v)));
      }),
      { numRuns: 2000 },
    );
  });

  it('handles the shapes manifests are made of', () => {
    const item = { gid: 0, key: '/usr/bin/ls', mode: '0755', sha256: 'a'.repeat(64), size: 10, type: 'file', uid: 0 };
    const cases: unknown[] = [
      { items: [item, { ...item, key: '/usr/bin/x' }] },
      { schema: 'x', sections: { files: { items: [item] } } },
      [item, { key: '/a', type: 'dir', mode: '0755', uid: 0, gid: 0 }],
      { z: [{ b: 1, a: 2 }], a: 1 },
      { a: [1, undefined, 2] },
      [Object.assign(Object.create(null), { b: 1, a: 2 })],
    ];
    for (const c of cases) expect(canonicalJson(c)).toBe(reference(c));
  });

  it('streams large values into digests with the same bytes', () => {
    const item = (i: number) => ({
      gid: 0,
      key: `/usr/f${i}`,
      mode: '0644',
      sha256: 'c'.repeat(64),
      size: i,
      type: 'file',
      uid: 0,
    });
    const big = Array.from({ length: 3000 }, (_, i) => item(i));
    const cases: unknown[] = [
      big,
      { sections: { files: { items: big } }, schema: 'x' },
      {
        b: [big.slice(0, 300), [1, , 3]],
        a: big.slice(0, 700).map((x, i) => (i % 97 ? x : { ...x, key: undefined, z: [undefined] })),
      },
    ];
    for (const c of cases) {
      const ref = reference(c);
      expect(canonicalJson(c)).toBe(ref);
      expect(digestOf(c)).toBe(`sha256:${createHash('sha256').update(ref).digest('hex')}`);
    }
  });

  it('digests whatever it serialises, for any value', () => {
    fc.assert(
      fc.property(value, (v) => {
        const r = outcome(() => reference(v));
        if ('ok' in r) expect(digestOf(v)).toBe(`sha256:${createHash('sha256').update(r.ok!).digest('hex')}`);
        else expect(() => digestOf(v)).toThrow(r.threw);
      }),
      { numRuns: 1000 },
    );
  });
});
