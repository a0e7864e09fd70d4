/** @module Seal (digest and sign), load and verify manifests. Nothing in a manifest is trusted before verifyManifest. */
import { existsSync, readFileSync } from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { digestOf } from './canonical.js';
import { DwError } from './errors.js';
import { formatIssues } from './config-load.js';
import { ManifestSchema, SignatureSchema, type Manifest, type Sections, type Signature } from './schema/manifest.js';
import { keyIdOf, signBytes, verifyBytes } from './sign.js';
import { isFileItemFast } from './schema/file-item-fast.js';

export type UnsealedManifest = Omit<Manifest, 'digests' | 'signature'>;

/** Per-section digests of a set of sections: the same function digests a host's actual state. */
export function sectionDigests(sections: Sections): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, section] of Object.entries(sections)) {
    if (section) out[name] = digestOf(section.items);
  }
  return out;
}

/** The overall digest covers everything but itself and the signature; sections enter through their digests. */
function overallDigest(m: UnsealedManifest, sections: Record<string, string>): string {
  const { sections: _omit, ...head } = m;
  return digestOf({ ...head, sectionDigests: sections });
}

export function sealManifest(m: UnsealedManifest, signKey?: KeyObject): Manifest {
  const sections = sectionDigests(m.sections);
  const overall = overallDigest(m, sections);
  const sealed: Manifest = { ...m, digests: { sections, overall } };
  if (signKey) sealed.signature = signDigest(overall, signKey);
  return sealed;
}

export function signDigest(digest: string, privateKey: KeyObject): Signature {
  return { alg: 'ed25519', keyId: keyIdOf(createPublicKey(privateKey)), digest, value: signBytes(digest, privateKey) };
}

/**
 * Read and schema-check a manifest file; digests and signature are checked by verifyManifest.
 * `onParsed` sees the parsed JSON before any check, for work that may start early but must trust
 * nothing in it (check starts its file walk from the rules while the rest is verified).
 */
export function loadManifest(path: string, onParsed?: (raw: unknown) => void): Manifest {
  if (!existsSync(path)) throw new DwError('DW_ERR_MANIFEST_MISSING', `manifest ${path} does not exist`, { path });
  let raw: unknown;
  try {
    raw = JSON.parse(readJsonText(path));
  } catch (err) {
    throw new DwError('DW_ERR_MANIFEST_INVALID', `manifest ${path} is not valid JSON: ${(err as Error).message}`, {
      path,
    });
  }
  onParsed?.(raw);
  parseManifest(raw, path);
  // The parsed file itself, not zod's copy: equal in value once it validates (the schema has no defaults
  // or transforms; test/shared/manifest-load.test.ts holds it to that), and it keeps the file's canonical
  // key order, so recomputing the digests takes canonicalJson's JSON.stringify path (seconds on 100k+ files).
  return raw as Manifest;
}

export function parseManifest(raw: unknown, label: string): Manifest {
  if (validFast(raw)) return raw as Manifest;
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const detail = formatIssues('', parsed.error).split('\n').slice(0, 5).join('; ');
    throw new DwError(
      'DW_ERR_MANIFEST_INVALID',
      `manifest ${label} fails the driftwarden/manifest/v1 schema: ${detail}`,
      { path: label },
    );
  }
  return parsed.data;
}

/**
 * True only if ManifestSchema accepts `raw`; false means "ask the schema". The schema checks all of it
 * but the files section's items, with the items left out; each of those gets isFileItemFast, which
 * accepts nothing FileItemSchema refuses and copies nothing (zod copies every object it parses: for
 * 100k+ items that is most of the time and memory of loading a manifest).
 */
function validFast(raw: unknown): boolean {
  const sections = (raw as { sections?: unknown } | null)?.sections;
  const files = (sections as { files?: unknown } | null | undefined)?.files;
  const items = (files as { items?: unknown } | null | undefined)?.items;
  if (!Array.isArray(items) || !isPlain(raw) || !isPlain(sections) || !isPlain(files)) return false;
  const rest = { ...raw, sections: { ...sections, files: { ...files, items: [] } } };
  if (!ManifestSchema.safeParse(rest).success) return false;
  for (let i = 0; i < items.length; i++) if (!(i in items) || !isFileItemFast(items[i])) return false;
  return true;
}

function isPlain(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * A JSON file's text for JSON.parse, parsed to the same value as its UTF-8 decoding but held one byte a
 * character: a single character above U+00FF anywhere (one odd file name among 100k paths) makes V8
 * hold the whole decoded text at two bytes a character. So the file is read as latin1, and each run
 * of non-ASCII bytes (which valid JSON has only inside strings) is decoded as UTF-8 and written as
 * \uXXXX escapes, which JSON.parse turns back into the same characters.
 */
export function readJsonText(path: string): string {
  const text = readFileSync(path, 'latin1');
  if (!NON_ASCII.test(text)) return text;
  return text.replace(NON_ASCII_RUNS, (run) => {
    const decoded = Buffer.from(run, 'latin1').toString('utf8');
    let out = '';
    for (let i = 0; i < decoded.length; i++) out += `\\u${decoded.charCodeAt(i).toString(16).padStart(4, '0')}`;
    return out;
  });
}
const NON_ASCII = /[\x80-\xff]/;
const NON_ASCII_RUNS = /[\x80-\xff]+/g;

/** Read a detached signature file (manifest.json.sig). */
export function loadDetachedSignature(path: string): Signature {
  let raw: unknown;
  try {
    raw = JSON.parse(readJsonText(path));
  } catch (err) {
    throw new DwError(
      'DW_ERR_MANIFEST_SIGNATURE',
      `signature file ${path} is unreadable or not JSON: ${(err as Error).message}`,
      { path },
    );
  }
  const parsed = SignatureSchema.safeParse(raw);
  if (!parsed.success)
    throw new DwError(
      'DW_ERR_MANIFEST_SIGNATURE',
      `signature file ${path} is malformed: ${formatIssues(path, parsed.error)}`,
      { path },
    );
  return parsed.data;
}

export interface VerifyOptions {
  /** Keys the caller trusts; when given, a valid signature by one of them is required. */
  trustedKeys?: readonly KeyObject[];
  /** A detached signature, used when the manifest carries none of its own. */
  detached?: Signature;
  label?: string;
}

export interface VerifyResult {
  digest: string;
  signedBy: string | null;
}

/** Items across every section of a manifest. */
export function manifestItemCount(m: Pick<Manifest, 'sections'>): number {
  let n = 0;
  for (const section of Object.values(m.sections)) n += section?.items.length ?? 0;
  return n;
}

/**
 * A manifest with no item in any section describes no image: against it every item of a host is
 * "added", and a baseline that vouches for nothing should not be signed, published or checked
 * against. One empty section is fine (an image without cron jobs); all of them empty is refused.
 */
export function assertManifestHasItems(m: Pick<Manifest, 'sections'>, label: string): void {
  if (manifestItemCount(m) > 0) return;
  const names = Object.keys(m.sections);
  throw new DwError(
    'DW_ERR_MANIFEST_INVALID',
    `${label} has no items in any section (${names.length > 0 ? names.join(', ') : 'no sections at all'}): it is not the manifest of a real image; build it from the image's root`,
    { sections: names },
  );
}

/**
 * Recompute every digest and, with trusted keys, check the signature. Order matters: digests first,
 * so a signature can only ever vouch for the content actually present. Then a manifest with no item
 * at all is refused, signed or not (assertManifestHasItems).
 */
export function verifyManifest(m: Manifest, opts: VerifyOptions = {}): VerifyResult {
  const label = opts.label ?? 'manifest';
  const recomputed = sectionDigests(m.sections);
  const declared = m.digests.sections;
  const names = new Set([...Object.keys(recomputed), ...Object.keys(declared)]);
  for (const name of names) {
    if (recomputed[name] !== declared[name]) {
      throw new DwError(
        'DW_ERR_MANIFEST_DIGEST',
        `${label}: section "${name}" does not match its digest (the manifest was changed after it was built)`,
        { section: name },
      );
    }
  }
  const { digests: _d, signature: _s, ...unsealed } = m;
  const overall = overallDigest(unsealed, recomputed);
  if (overall !== m.digests.overall) {
    throw new DwError(
      'DW_ERR_MANIFEST_DIGEST',
      `${label}: overall digest does not match (the manifest header was changed after it was built)`,
      {},
    );
  }
  assertManifestHasItems(m, label);
  const keys = opts.trustedKeys;
  if (!keys || keys.length === 0) return { digest: overall, signedBy: null };
  const sig = m.signature ?? opts.detached;
  if (!sig) throw new DwError('DW_ERR_MANIFEST_SIGNATURE', `${label} is not signed, and a trusted key was given`, {});
  if (sig.digest !== overall)
    throw new DwError(
      'DW_ERR_MANIFEST_SIGNATURE',
      `${label}: the signature is for another manifest (digest ${sig.digest})`,
      { keyId: sig.keyId },
    );
  const key = keys.find((k) => keyIdOf(k) === sig.keyId);
  if (!key)
    throw new DwError(
      'DW_ERR_MANIFEST_SIGNATURE',
      `${label} is signed by key ${sig.keyId}, which is not a trusted key`,
      { keyId: sig.keyId },
    );
  if (!verifyBytes(sig.digest, sig.value, key))
    throw new DwError('DW_ERR_MANIFEST_SIGNATURE', `${label}: the signature by key ${sig.keyId} is invalid`, {
      keyId: sig.keyId,
    });
  return { digest: overall, signedBy: sig.keyId };
}
