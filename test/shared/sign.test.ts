import { describe, expect, it } from 'vitest';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, keyIdOf, loadPrivateKey, loadPublicKey, signBytes, verifyBytes } from '../../shared/sign.js';
import { keygen } from '../../agent/commands/keygen.js';
import { DwError } from '../../shared/errors.js';
import { tempDir } from '../helpers/tmp.js';

describe('ed25519 signing', () => {
  it('verifies its own signature and rejects a changed message or another key', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    const sig = signBytes('sha256:abc', createPrivateKey(a.privateKeyPem));
    expect(verifyBytes('sha256:abc', sig, createPublicKey(a.publicKeyPem))).toBe(true);
    expect(verifyBytes('sha256:abd', sig, createPublicKey(a.publicKeyPem))).toBe(false);
    expect(verifyBytes('sha256:abc', sig, createPublicKey(b.publicKeyPem))).toBe(false);
    expect(verifyBytes('sha256:abc', 'c2hvcnQ=', createPublicKey(a.publicKeyPem))).toBe(false);
  });

  it('names keys by a stable id derived from the public key', () => {
    const a = generateKeyPair();
    expect(a.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(keyIdOf(createPublicKey(createPrivateKey(a.privateKeyPem)))).toBe(a.keyId);
  });
});

describe('keygen', () => {
  it('writes the private key 0600 and the public key 0644, and refuses to overwrite', () => {
    const dir = tempDir();
    const r = keygen({ out: dir, name: 'bake' });
    expect(statSync(r.privateKeyFile).mode & 0o777).toBe(0o600);
    expect(statSync(r.publicKeyFile).mode & 0o777).toBe(0o644);
    expect(loadPublicKey(r.publicKeyFile).asymmetricKeyType).toBe('ed25519');
    expect(() => keygen({ out: dir, name: 'bake' })).toThrow(/already exists/);
  });

  it('narrows a replaced private key to 0600 with --force', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bake.key'), 'old', { mode: 0o644 });
    const r = keygen({ out: dir, name: 'bake', force: true });
    expect(statSync(r.privateKeyFile).mode & 0o777).toBe(0o600);
  });
});

describe('loading keys', () => {
  it('names the file when it is missing, not PEM, or not ed25519', () => {
    const dir = tempDir();
    expect(() => loadPrivateKey(join(dir, 'none.key'))).toThrow(DwError);
    expect(() => loadPrivateKey(join(dir, 'none.key'))).toThrow(/none\.key.*ENOENT/);
    writeFileSync(join(dir, 'junk.pub'), 'not a key');
    expect(() => loadPublicKey(join(dir, 'junk.pub'))).toThrow(/junk\.pub is not a PEM public key/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    writeFileSync(join(dir, 'rsa.pub'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));
    expect(() => loadPublicKey(join(dir, 'rsa.pub'))).toThrow(/rsa key; driftwarden verifies ed25519/);
  });
});
