import { describe, expect, it } from 'vitest';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadVerifiedManifest } from '../../agent/commands/manifest.js';
import type { DwError } from '../../shared/errors.js';
import {
  loadManifest,
  manifestItemCount,
  sealManifest,
  verifyManifest,
  type UnsealedManifest,
} from '../../shared/manifest.js';
import { MANIFEST_SCHEMA_ID } from '../../shared/schema/manifest.js';
import { defaultRules } from '../../shared/schema/rules.js';
import { generateKeyPair } from '../../shared/sign.js';
import { canonicalJson } from '../../shared/canonical.js';
import { tempDir } from '../helpers/tmp.js';

function unsealed(): UnsealedManifest {
  return {
    schema: MANIFEST_SCHEMA_ID,
    image: { id: 'ami-0123', name: 'web', version: '1.2.0' },
    os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
    createdAt: '2026-11-23T10:00:00.000Z',
    builder: { agentVersion: '0.1.0', hostname: 'bake-1' },
    rules: defaultRules(),
    sections: {
      packages: {
        items: [
          {
            key: 'openssl:amd64',
            manager: 'dpkg',
            name: 'openssl',
            arch: 'amd64',
            version: '3.0.11-1~deb12u2',
            state: 'installed',
          },
        ],
      },
      files: {
        items: [{ key: '/etc/motd', type: 'file', mode: '0644', uid: 0, gid: 0, size: 3, sha256: 'a'.repeat(64) }],
      },
    },
  };
}

const pair = generateKeyPair();
const priv = createPrivateKey(pair.privateKeyPem);
const pub = createPublicKey(pair.publicKeyPem);

describe('sealed manifests', () => {
  it('carry a digest per section and an overall digest, and verify unchanged', () => {
    const m = sealManifest(unsealed());
    expect(Object.keys(m.digests.sections).sort()).toEqual(['files', 'packages']);
    expect(verifyManifest(m)).toEqual({ digest: m.digests.overall, signedBy: null });
  });

  it('refuse a section changed after sealing, naming the section', () => {
    const m = sealManifest(unsealed());
    m.sections.packages!.items[0]!.version = '3.0.11-1~deb12u2+evil';
    expect(() => verifyManifest(m)).toThrow(/section "packages" does not match its digest/);
  });

  it('refuse a header changed after sealing', () => {
    const m = sealManifest(unsealed());
    m.image.id = 'ami-other';
    expect(() => verifyManifest(m)).toThrow(/overall digest does not match/);
  });

  it('verify a signature by a trusted key and name the key', () => {
    const m = sealManifest(unsealed(), priv);
    expect(verifyManifest(m, { trustedKeys: [pub] }).signedBy).toBe(pair.keyId);
  });

  it('refuse an unsigned manifest, an untrusted signer and a forged signature when keys are given', () => {
    expect(() => verifyManifest(sealManifest(unsealed()), { trustedKeys: [pub] })).toThrow(/not signed/);
    const other = generateKeyPair();
    const byOther = sealManifest(unsealed(), createPrivateKey(other.privateKeyPem));
    expect(() => verifyManifest(byOther, { trustedKeys: [pub] })).toThrow(
      new RegExp(`key ${other.keyId}, which is not a trusted key`),
    );
    const forged = sealManifest(unsealed(), priv);
    forged.signature!.keyId = pair.keyId;
    forged.signature!.value = byOther.signature!.value;
    expect(() => verifyManifest(forged, { trustedKeys: [pub] })).toThrow(/signature by key .* is invalid/);
  });

  it('refuse a signature lifted from another manifest', () => {
    const a = sealManifest(unsealed(), priv);
    const changed = unsealed();
    changed.image.version = '9.9.9';
    const b = sealManifest(changed);
    b.signature = a.signature;
    expect(() => verifyManifest(b, { trustedKeys: [pub] })).toThrow(/signature is for another manifest/);
  });

  it('accept a detached signature when none is embedded', () => {
    const m = sealManifest(unsealed(), priv);
    const sig = m.signature!;
    delete m.signature;
    expect(verifyManifest(m, { trustedKeys: [pub], detached: sig }).signedBy).toBe(pair.keyId);
  });
});

describe('loadManifest', () => {
  it('names the problem: missing file, bad JSON, wrong schema', () => {
    const dir = tempDir();
    expect(() => loadManifest(join(dir, 'none.json'))).toThrow(/does not exist/);
    writeFileSync(join(dir, 'bad.json'), '{"schema":');
    expect(() => loadManifest(join(dir, 'bad.json'))).toThrow(/not valid JSON/);
    writeFileSync(join(dir, 'wrong.json'), JSON.stringify({ schema: 'something/else' }));
    expect(() => loadManifest(join(dir, 'wrong.json'))).toThrow(
      /fails the driftwarden\/manifest\/v1 schema: schema: Invalid input/,
    );
  });

  it('reads back exactly what was written', () => {
    const dir = tempDir();
    const m = sealManifest(unsealed(), priv);
    writeFileSync(join(dir, 'm.json'), canonicalJson(m));
    expect(loadManifest(join(dir, 'm.json'))).toEqual(m);
  });
});

describe('a manifest with no items', () => {
  const empty = (): UnsealedManifest => ({
    ...unsealed(),
    sections: { packages: { items: [] }, sysctl: { items: [] }, cron: { items: [] }, files: { items: [] } },
  });

  it('is refused, signed or not, naming what is empty: every host item would be "added" against it', () => {
    for (const m of [sealManifest(empty()), sealManifest(empty(), priv)]) {
      const err = (() => {
        try {
          verifyManifest(m, m.signature ? { trustedKeys: [pub] } : {});
        } catch (e) {
          return e as DwError;
        }
        throw new Error('accepted an empty manifest');
      })();
      expect(err.code).toBe('DW_ERR_MANIFEST_INVALID');
      expect(err.message).toBe(
        "manifest has no items in any section (packages, sysctl, cron, files): it is not the manifest of a real image; build it from the image's root",
      );
    }
    expect(() => verifyManifest(sealManifest({ ...unsealed(), sections: {} }))).toThrow(/no sections at all/);
  });

  it('is refused by `manifest verify` (loadVerifiedManifest), which every check and agent start goes through', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'm.json'), canonicalJson(sealManifest(empty(), priv)));
    expect(() => loadVerifiedManifest(join(dir, 'm.json'))).toThrow(/has no items in any section/);
  });

  it('is fine when only some sections are empty: an image without cron jobs is real', () => {
    const some = { ...unsealed(), sections: { ...unsealed().sections, cron: { items: [] }, sysctl: { items: [] } } };
    expect(manifestItemCount(some)).toBe(2);
    expect(verifyManifest(sealManifest(some, priv), { trustedKeys: [pub] }).signedBy).not.toBeNull();
  });
});
