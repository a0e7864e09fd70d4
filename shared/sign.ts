/** @module ed25519 keys (PEM files), signing and verification with node:crypto. */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DwError } from './errors.js';
import { sha256Hex } from './canonical.js';

export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
  keyId: string;
}

export function generateKeyPair(): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

/** A short, stable name for a public key: the first 16 hex digits of the sha256 of its SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  return sha256Hex(publicKey.export({ type: 'spki', format: 'der' })).slice(0, 16);
}

function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new DwError('DW_ERR_KEY', `cannot read key file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      path,
    });
  }
}

export function loadPrivateKey(path: string): KeyObject {
  const pem = readKeyFile(path);
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new DwError('DW_ERR_KEY', `${path} is not a PEM private key`, { path });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new DwError('DW_ERR_KEY', `${path} is a ${key.asymmetricKeyType} key; driftwarden signs with ed25519`, {
      path,
    });
  }
  return key;
}

export function loadPublicKey(path: string): KeyObject {
  const pem = readKeyFile(path);
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new DwError('DW_ERR_KEY', `${path} is not a PEM public key`, { path });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new DwError('DW_ERR_KEY', `${path} is a ${key.asymmetricKeyType} key; driftwarden verifies ed25519`, {
      path,
    });
  }
  return key;
}

export function signBytes(data: string | Uint8Array, key: KeyObject): string {
  return sign(null, typeof data === 'string' ? Buffer.from(data) : data, key).toString('base64');
}

export function verifyBytes(data: string | Uint8Array, signatureB64: string, key: KeyObject): boolean {
  const sig = Buffer.from(signatureB64, 'base64');
  if (sig.length !== 64) return false;
  return verify(null, typeof data === 'string' ? Buffer.from(data) : data, key, sig);
}
