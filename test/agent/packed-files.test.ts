import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { diffSection, diffSectionSorted } from '../../shared/diff.js';
import { canonicalJson } from '../../shared/canonical.js';
import type { FileItem } from '../../shared/schema/items.js';
import { keepPacked, PackedFiles } from '../../agent/packed-files.js';
import { sealManifest, verifyManifest } from '../../shared/manifest.js';
import { fileDeviations } from '../../agent/daemon/fingerprint.js';
import type { HostRoot } from '../../agent/root.js';
import { defaultRules } from '../../shared/schema/rules.js';

/** Items as a canonical manifest holds them: keys of every item in sorted order, items sorted by key. */
const fileItem = fc
  .record(
    {
      error: fc.constantFrom('EACCES', 'vanished during scan'),
      gid: fc.constantFrom(0, 4, 1000, 2 ** 40),
      key: fc.constantFrom(
        '/etc/a',
        '/etc/a-b',
        '/etc/a/b',
        '/usr/bin/ls',
        '/usr/bin/é',
        '/usr/lib/y',
        '/opt/z',
        '/opt/\u4e2d',
      ),
      mode: fc.constantFrom('0644', '0755', '4755', '1777'),
      sha256: fc.constantFrom('a'.repeat(64), '0123456789abcdef'.repeat(4)),
      size: fc.constantFrom(0, 1, 2 ** 50),
      target: fc.constantFrom('x', '../lib/\u00fc', ''),
      type: fc.constantFrom('file', 'dir', 'symlink', 'fifo'),
      uid: fc.constantFrom(0, 1000),
    },
    { requiredKeys: ['gid', 'key', 'mode', 'type', 'uid'] },
  )
  .map((i) => i as FileItem);
const section = fc
  .uniqueArray(fileItem, { selector: (i) => i.key })
  .map((items) => items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));

describe('PackedFiles', () => {
  it('gives back every item exactly: the same fields, values and key order', () => {
    fc.assert(
      fc.property(section, (items) => {
        const packed = PackedFiles.pack(items)!;
        expect(packed).not.toBeNull();
        const back = [...packed];
        expect(JSON.stringify(back)).toBe(JSON.stringify(items));
        expect(canonicalJson(back)).toBe(canonicalJson(items));
        for (const item of items) expect(JSON.stringify(packed.get(item.key))).toBe(JSON.stringify(item));
        expect(packed.get('/nowhere')).toBeUndefined();
        expect(packed.sameKeys(items)).toBe(true);
      }),
    );
  });

  it('diffs against a scan exactly as the items it was packed from do', () => {
    fc.assert(
      fc.property(section, section, (expected, actual) => {
        expect(diffSectionSorted('files', PackedFiles.pack(expected)!, actual)).toEqual(
          diffSection('files', expected, actual),
        );
      }),
    );
  });

  it('diffs an unsorted scan too (by falling back to the map diff)', () => {
    const expected: FileItem[] = [
      { gid: 0, key: '/a', mode: '0644', type: 'file', uid: 0 },
      { gid: 0, key: '/b', mode: '0644', type: 'file', uid: 0 },
    ];
    const actual: FileItem[] = [
      { gid: 0, key: '/c', mode: '0644', type: 'file', uid: 0 },
      { gid: 0, key: '/a', mode: '0600', type: 'file', uid: 0 },
    ];
    const found = diffSectionSorted('files', PackedFiles.pack(expected)!, actual);
    expect(found).toEqual(diffSection('files', expected, actual));
    expect(found.map((d) => `${d.change} ${d.key}`)).toEqual(['modified /a', 'removed /b', 'added /c']);
  });

  it('refuses what it could not give back exactly, so the caller keeps the items', () => {
    const a: FileItem = { gid: 0, key: '/a', mode: '0644', type: 'file', uid: 0 };
    const b: FileItem = { gid: 0, key: '/b', mode: '0644', type: 'file', uid: 0 };
    expect(PackedFiles.pack([b, a])).toBeNull(); // out of order
    expect(PackedFiles.pack([a, a])).toBeNull(); // a duplicate key
    expect(PackedFiles.pack([{ key: '/a', gid: 0, mode: '0644', type: 'file', uid: 0 }])).toBeNull(); // keys not in canonical order
    expect(PackedFiles.pack([{ ...a, sha256: 'A'.repeat(64) }])).toBeNull(); // upper-case hex would come back lower-case
    expect(PackedFiles.pack([{ ...a, size: undefined }])).toBeNull(); // a present-but-undefined field
    expect(PackedFiles.pack([{ ...a, extra: 1 } as FileItem])).toBeNull();
    expect(PackedFiles.pack([{ ...a, key: '/a\ud800' }])).toBeNull(); // a lone surrogate: UTF-8 cannot hold it
    expect(PackedFiles.pack([])?.length).toBe(0);
  });
});

describe('keepPacked', () => {
  const items: FileItem[] = [
    { gid: 0, key: '/etc/hosts', mode: '0644', sha256: 'c'.repeat(64), size: 10, type: 'file', uid: 0 },
    { gid: 0, key: '/etc/passwd', mode: '0644', sha256: 'd'.repeat(64), size: 20, type: 'file', uid: 0 },
  ];
  const manifest = sealManifest({
    schema: 'driftwarden/manifest/v1',
    image: { id: 'img-1', name: 'web', version: '1' },
    createdAt: '2026-01-01T00:00:00.000Z',
    rules: { ...defaultRules(), collectors: ['files'], files: { roots: ['/etc'], ignore: [] } },
    sections: { files: { items } },
  } as never);

  it('keeps the files section packed and the manifest without its items, digests untouched', () => {
    const verified = verifyManifest(manifest);
    const kept = keepPacked({ manifest, verified });
    expect(kept.files).not.toBeNull();
    expect([...kept.files!]).toEqual(items);
    expect(kept.manifest.sections.files?.items).toEqual([]);
    expect(kept.manifest.digests).toEqual(manifest.digests);
    expect(manifest.sections.files?.items).toEqual(items); // the verified manifest itself is not changed
  });

  it('lets the watcher diff a changed path against the packed items', () => {
    const kept = keepPacked({ manifest, verified: verifyManifest(manifest) });
    // A root where /etc/passwd is gone: it is reported removed, with the manifest's item as expected.
    const root = { dir: '/nonexistent-root', path: (p: string) => `/nonexistent-root${p}` } as unknown as HostRoot;
    const found = fileDeviations(root, kept.manifest, ['/etc/passwd'], kept.files);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      change: 'removed',
      key: '/etc/passwd',
      expected: { sha256: 'd'.repeat(64), size: 20 },
    });
  });
});
