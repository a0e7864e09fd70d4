/** @module `driftwarden keygen`: an ed25519 key pair for signing manifests; the private key is written 0600. */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DwError } from '../../shared/errors.js';
import { generateKeyPair } from '../../shared/sign.js';

export interface KeygenOptions {
  out: string;
  name: string;
  force?: boolean;
}

export function keygen(opts: KeygenOptions): { privateKeyFile: string; publicKeyFile: string; keyId: string } {
  if (!/^[A-Za-z0-9._-]+$/.test(opts.name))
    throw new DwError('DW_ERR_USAGE', `key name "${opts.name}" may only use letters, digits, ".", "_" and "-"`);
  mkdirSync(opts.out, { recursive: true, mode: 0o700 });
  const privateKeyFile = join(opts.out, `${opts.name}.key`);
  const publicKeyFile = join(opts.out, `${opts.name}.pub`);
  for (const f of [privateKeyFile, publicKeyFile]) {
    if (existsSync(f) && !opts.force)
      throw new DwError('DW_ERR_USAGE', `${f} already exists; pass --force to replace it`, { path: f });
  }
  const pair = generateKeyPair();
  writeFileSync(privateKeyFile, pair.privateKeyPem, { mode: 0o600 });
  // The mode option only applies when the file is created: a key replaced with --force is narrowed here.
  chmodSync(privateKeyFile, 0o600);
  writeFileSync(publicKeyFile, pair.publicKeyPem, { mode: 0o644 });
  return { privateKeyFile, publicKeyFile, keyId: pair.keyId };
}
