import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { z } from 'zod';
import { isFileItemFast } from '../../shared/schema/file-item-fast.js';
import { FileItemSchema } from '../../shared/schema/items.js';
import { HostPathSchema } from '../../shared/schema/common.js';

const segment = fc.constantFrom('usr', 'bin', '..', '.', '', '..b', 'a..', 'x y', 'é', '\n');
const path = fc.array(segment, { maxLength: 4 }).map((s) => s.join('/'));
/** Mostly good values, now and then a bad one: items near the boundary of what the schema accepts. */
const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: bad, weight: 1 });
const field = {
  key: mostly(
    path.map((p) => '/' + p),
    fc.oneof(path, fc.string(), fc.integer()),
  ),
  type: mostly(
    fc.constantFrom('file', 'dir', 'symlink', 'char', 'block', 'fifo', 'socket'),
    fc.oneof(fc.constantFrom('File', 'link', ''), fc.integer()),
  ),
  mode: mostly(
    fc.constantFrom('0644', '4755', '0000', '7777'),
    fc.oneof(fc.constantFrom('0844', '644', '00644', '0644\n', ' 644'), fc.integer()),
  ),
  uid: mostly(
    fc.nat(),
    fc.oneof(fc.integer({ max: -1 }), fc.constantFrom(-0, 0.5, 2 ** 53, 2 ** 53 - 1, Number.NaN, Infinity, '0')),
  ),
  gid: mostly(fc.nat(), fc.constantFrom(-1, 2 ** 53, Number.NaN)),
  size: mostly(fc.nat(), fc.constantFrom(-1, 1.5, 2 ** 60, Infinity, '1', undefined)),
  sha256: mostly(
    fc.constantFrom('a'.repeat(64), '0123456789abcdef'.repeat(4)),
    fc.constantFrom('A'.repeat(64), 'a'.repeat(63), 'g'.repeat(64), `${'a'.repeat(64)}\n`, undefined, 1),
  ),
  target: mostly(fc.string(), fc.constantFrom(undefined, 1, null)),
  error: mostly(fc.string(), fc.constantFrom(undefined, null)),
  extra: fc.string(),
};
const item = fc
  .record(field, { requiredKeys: [] })
  .chain((o) =>
    fc.constantFrom(
      o,
      Object.assign(Object.create(null), o),
      Object.assign([], o),
      Object.assign(new (class Item {})(), o),
      Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'extra')),
    ),
  );

describe('isFileItemFast', () => {
  it('accepts nothing FileItemSchema refuses', () => {
    let accepted = 0;
    fc.assert(
      fc.property(item, (v) => {
        if (!isFileItemFast(v)) return;
        accepted++;
        expect(FileItemSchema.safeParse(v).success).toBe(true);
      }),
      { numRuns: 20000 },
    );
    expect(accepted).toBeGreaterThan(50); // the property was exercised, not vacuously true
  });

  it('accepts the items the files collector makes', () => {
    const base = { key: '/usr/bin/ls', type: 'file', mode: '0755', uid: 0, gid: 0 } as const;
    for (const v of [
      { ...base, size: 10, sha256: 'a'.repeat(64) },
      { ...base, size: 10, error: 'EACCES' },
      { ...base, type: 'symlink', target: '../x' },
      { ...base, type: 'dir', error: 'EACCES' },
      { ...base, type: 'fifo' },
    ]) {
      expect(isFileItemFast(v)).toBe(true);
      expect(FileItemSchema.safeParse(v).success).toBe(true);
    }
  });

  it('finds ".." path segments exactly as HostPathSchema does', () => {
    fc.assert(
      fc.property(path, (p) => {
        const v = { key: '/' + p, type: 'dir', mode: '0755', uid: 0, gid: 0 };
        expect(isFileItemFast(v)).toBe(HostPathSchema.safeParse(v.key).success);
      }),
      { numRuns: 5000 },
    );
  });

  // A tripwire: when FileItemSchema changes, isFileItemFast must be brought in line (it refuses unknown
  // keys by itself, but a new limit on a known field would otherwise let it accept more than the schema).
  it('is written against this exact FileItemSchema', () => {
    expect(FileItemSchema.shape.key).toBe(HostPathSchema);
    expect(z.toJSONSchema(FileItemSchema)).toEqual({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      properties: {
        key: { type: 'string' },
        type: { type: 'string', enum: ['file', 'dir', 'symlink', 'char', 'block', 'fifo', 'socket'] },
        mode: { type: 'string', pattern: '^[0-7]{4}$' },
        uid: { type: 'integer', minimum: 0, maximum: 9007199254740991 },
        gid: { type: 'integer', minimum: 0, maximum: 9007199254740991 },
        size: { type: 'integer', minimum: 0, maximum: 9007199254740991 },
        sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
        target: { type: 'string' },
        error: { type: 'string' },
      },
      required: ['key', 'type', 'mode', 'uid', 'gid'],
      additionalProperties: false,
    });
  });
});
