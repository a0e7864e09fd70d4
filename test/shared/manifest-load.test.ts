import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalJson } from '../../shared/canonical.js';
import {
  loadManifest,
  readJsonText,
  sealManifest,
  verifyManifest,
  type UnsealedManifest,
} from '../../shared/manifest.js';
import { ManifestSchema, MANIFEST_SCHEMA_ID } from '../../shared/schema/manifest.js';
import { defaultRules } from '../../shared/schema/rules.js';
import { tempDir } from '../helpers/tmp.js';

/** Every section and every optional field, so a default or transform anywhere in the schema would show. */
function full(): UnsealedManifest {
  return {
    schema: MANIFEST_SCHEMA_ID,
    image: { id: 'ami-0123', name: 'web', version: '1.2.0', source: 'git:abc' },
    os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
    createdAt: '2026-11-23T10:00:00.000Z',
    builder: { agentVersion: '0.1.0', hostname: null },
    rules: defaultRules(),
    sections: {
      packages: {
        items: [
          {
            key: 'openssl:amd64',
            manager: 'dpkg',
            name: 'openssl',
            arch: 'amd64',
            version: '3.0.11',
            state: 'installed',
          },
        ],
      },
      sysctl: { items: [{ key: 'net.ipv4.ip_forward', runtime: '0', declared: null, declaredIn: null }] },
      cron: {
        items: [
          {
            key: '/etc/cron.d/x#1',
            kind: 'entry',
            file: '/etc/cron.d/x',
            schedule: '* * * * *',
            user: 'root',
            command: 'true',
            stdin: '',
            name: 'n',
            value: 'v',
            sha256: 'b'.repeat(64),
            mode: '0644',
            state: 'static',
            timer: { OnCalendar: 'daily' },
            error: 'e',
          },
        ],
      },
      files: {
        items: [
          { key: '/etc/motd', type: 'file', mode: '0644', uid: 0, gid: 0, size: 3, sha256: 'a'.repeat(64) },
          { key: '/etc/shadow', type: 'file', mode: '0640', uid: 0, gid: 42, size: 3, error: 'EACCES' },
          { key: '/usr/bin/sh', type: 'symlink', mode: '0777', uid: 0, gid: 0, target: 'dash' },
        ],
      },
    },
  };
}

describe('loadManifest', () => {
  it('returns exactly what the schema would (the schema neither adds nor changes anything)', () => {
    const m = sealManifest(full());
    const file = join(tempDir(), 'm.json');
    writeFileSync(file, canonicalJson(m) + '\n');
    const loaded = loadManifest(file);
    expect(loaded).toStrictEqual(ManifestSchema.parse(JSON.parse(canonicalJson(m))));
    expect(verifyManifest(loaded).digest).toBe(m.digests.overall);
  });

  it('still refuses what the schema refuses', () => {
    const m = sealManifest(full());
    const bad = JSON.parse(canonicalJson(m));
    bad.sections.files.items[0].mode = '755';
    const file = join(tempDir(), 'm.json');
    writeFileSync(file, JSON.stringify(bad));
    expect(() => loadManifest(file)).toThrow(/fails the driftwarden\/manifest\/v1 schema/);
  });
});

describe('loadManifest with a large files section', () => {
  it('accepts and refuses exactly as the schema does, item by item', () => {
    const m = sealManifest(full());
    const good = m.sections.files!.items[0]!;
    const variants: unknown[] = [
      { ...good },
      { ...good, mode: '0844' },
      { ...good, uid: -1 },
      { ...good, key: '/etc/../x' },
      { ...good, extra: 1 },
      { ...good, sha256: 'A'.repeat(64) },
      { ...good, size: 1.5 },
    ];
    for (const v of variants) {
      const raw = JSON.parse(canonicalJson(m));
      raw.sections.files.items.push(v);
      const file = join(tempDir(), 'm.json');
      writeFileSync(file, JSON.stringify(raw));
      const schemaSays = ManifestSchema.safeParse(raw).success;
      if (schemaSays) expect(() => loadManifest(file)).not.toThrow();
      else expect(() => loadManifest(file)).toThrow(/fails the driftwarden\/manifest\/v1 schema/);
    }
  });

  it('still checks the rest of the manifest with the schema', () => {
    const raw = JSON.parse(canonicalJson(sealManifest(full())));
    raw.sections.packages.items[0].manager = 'pip';
    const file = join(tempDir(), 'm.json');
    writeFileSync(file, JSON.stringify(raw));
    expect(() => loadManifest(file)).toThrow(/sections\.packages\.items\[0\]\.manager/);
    const raw2 = JSON.parse(canonicalJson(sealManifest(full())));
    raw2.sections.files.extra = 1;
    writeFileSync(file, JSON.stringify(raw2));
    expect(() => loadManifest(file)).toThrow(/sections\.files/);
  });
});

describe('readJsonText', () => {
  it('parses to exactly what the UTF-8 text parses to, whatever the characters', () => {
    const dir = tempDir();
    const values: unknown[] = [
      { a: 'plain' },
      { path: '/usr/share/café/日本語/😀', k: ['é', 'ü', '\u2028', 'x\u00ffy'] },
      ['\u0100', 'mixed é 日 end'],
    ];
    for (const v of values) {
      const file = join(dir, 'x.json');
      writeFileSync(file, JSON.stringify(v));
      expect(JSON.parse(readJsonText(file))).toStrictEqual(JSON.parse(readFileSync(file, 'utf8')));
    }
    // invalid UTF-8 inside a string: U+FFFD, as the UTF-8 decoder gives
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      Buffer.concat([Buffer.from('{"a":"x'), Buffer.from([0xc3, 0x28, 0xff, 0xe6, 0x97]), Buffer.from('y"}')]),
    );
    expect(JSON.parse(readJsonText(file))).toStrictEqual(JSON.parse(readFileSync(file, 'utf8')));
  });

  it('loads a manifest with non-ASCII paths to the same value and digest', () => {
    const m = full();
    m.sections.files!.items.push({
      key: '/usr/share/日本語/café 😀',
      type: 'file',
      mode: '0644',
      uid: 0,
      gid: 0,
      size: 1,
      sha256: 'c'.repeat(64),
    });
    m.sections.files!.items.sort((a, b) => (a.key < b.key ? -1 : 1));
    const sealed = sealManifest(m);
    const file = join(tempDir(), 'm.json');
    writeFileSync(file, canonicalJson(sealed) + '\n');
    const loaded = loadManifest(file);
    expect(loaded).toStrictEqual(JSON.parse(readFileSync(file, 'utf8')));
    expect(verifyManifest(loaded).digest).toBe(sealed.digests.overall);
  });
});
