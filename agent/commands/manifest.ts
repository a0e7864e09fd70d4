/** @module `driftwarden manifest build|verify`: bake what an image contains into a signed manifest, and check one. */
import { existsSync, statSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { DwError } from '../../shared/errors.js';
import { loadConfigFile } from '../../shared/config-load.js';
import {
  assertManifestHasItems,
  loadDetachedSignature,
  loadManifest,
  sealManifest,
  verifyManifest,
  type VerifyResult,
} from '../../shared/manifest.js';
import { AgentConfigSchema, type AgentConfig } from '../../shared/schema/config.js';
import { MANIFEST_SCHEMA_ID, type Manifest } from '../../shared/schema/manifest.js';
import { loadPrivateKey, loadPublicKey } from '../../shared/sign.js';
import { writeFileAtomic, writeFileAtomicPieces } from '../atomic-write.js';
import { execProgram } from '../exec.js';
import type { Logger } from '../log.js';
import { readHostname, readOs } from '../identity.js';
import { HostRoot } from '../root.js';
import { rulesFromConfig } from '../rules.js';
import { scan } from '../scan.js';
import { StatCache } from '../collectors/stat-cache.js';
import type { ScanProgress } from '../collectors/types.js';
import { AGENT_VERSION } from '../version.js';
import { canonicalJson, writeCanonical } from '../../shared/canonical.js';

export interface BuildOptions {
  root: string;
  imageId: string;
  name?: string;
  version?: string;
  source?: string;
  config?: string;
  signKey?: string;
  out: string;
  cache?: string;
  log: Logger;
  progress?: ScanProgress;
  /** The manifest's createdAt; default now. The CLI takes SOURCE_DATE_EPOCH, so a rebuilt image bakes the same bytes. */
  createdAt?: Date;
}

/**
 * SOURCE_DATE_EPOCH (reproducible-builds.org): whole seconds since 1970 in the environment. Unset means "now"; a
 * value that is not a non-negative integer is a usage error rather than a silently wrong timestamp.
 */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): Date | undefined {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,12}$/.test(raw)) {
    throw new DwError(
      'DW_ERR_USAGE',
      `SOURCE_DATE_EPOCH: expected whole seconds since 1970, got ${JSON.stringify(raw)}`,
      {
        value: raw,
      },
    );
  }
  return new Date(Number(raw) * 1000);
}

export interface BuildOutcome {
  manifest: Manifest;
  items: number;
  signatureFile: string | null;
}

/** The host path of FILE when it lies inside ROOT_DIR (as "/etc/..."), else null. */
function hostPathInside(rootDir: string, file: string): string | null {
  const rel = relative(rootDir, resolve(file));
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return null;
  return '/' + rel.split(sep).join('/');
}

function escapeGlob(path: string): string {
  return path.replace(/[*?[\]{}()!+@\\]/g, (c) => `\\${c}`);
}

export async function buildManifest(opts: BuildOptions): Promise<BuildOutcome> {
  const config: AgentConfig | undefined = opts.config ? loadConfigFile(AgentConfigSchema, opts.config) : undefined;
  // Load the key before scanning: a wrong key path should fail in a second, not after a full hash.
  const signKey: KeyObject | undefined = opts.signKey ? loadPrivateKey(opts.signKey) : undefined;
  const root = await HostRoot.open(opts.root);
  const rules = rulesFromConfig(config);
  // A manifest written into the root it describes (the bake default, /etc/driftwarden/manifest.json)
  // cannot contain itself; its outputs are ignored, and the rule is recorded so every check agrees.
  // The manifest is still guarded: its signature, and the controller's digest comparison.
  const own = [opts.out, `${opts.out}.sig`, ...(opts.cache ? [opts.cache] : [])]
    .map((f) => hostPathInside(root.dir, f))
    .filter((p): p is string => p !== null);
  rules.files.ignore = [...new Set([...rules.files.ignore, ...own.map(escapeGlob)])];
  const statCache = opts.cache ? StatCache.load(opts.cache, root.dir) : undefined;
  const { sections, results } = await scan({
    root,
    rules,
    exec: execProgram,
    log: opts.log,
    statCache,
    progress: opts.progress,
  });
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) {
    throw new DwError(
      'DW_ERR_COLLECTOR',
      `refusing to build a manifest from an incomplete scan: ${failed.map((r) => `${r.collector}: ${r.error}`).join('; ')}`,
      { collectors: failed.map((r) => r.collector) },
    );
  }
  // Before signing: an empty scan (a wrong --root, every collector disabled) is no image's manifest.
  assertManifestHasItems({ sections }, `a manifest of ${root.dir}`);
  const manifest = sealManifest(
    {
      schema: MANIFEST_SCHEMA_ID,
      image: { id: opts.imageId, name: opts.name, version: opts.version, source: opts.source },
      os: await readOs(root),
      createdAt: (opts.createdAt ?? new Date()).toISOString(),
      builder: {
        agentVersion: AGENT_VERSION,
        hostname: (await readHostname(root)) ?? (root.dir === '/' ? osHostname() : null),
      },
      rules,
      sections,
    },
    signKey,
  );
  writeFileAtomicPieces(opts.out, (write) => {
    writeCanonical(manifest, write);
    write('\n');
  });
  let signatureFile: string | null = null;
  if (manifest.signature) {
    signatureFile = `${opts.out}.sig`;
    writeFileAtomic(signatureFile, canonicalJson(manifest.signature) + '\n');
  }
  if (statCache && opts.cache) statCache.save(opts.cache);
  const items = results.reduce((n, r) => n + r.items, 0);
  return { manifest, items, signatureFile };
}

export interface LoadVerifiedOptions {
  pubkeys?: readonly string[];
  signature?: string;
  /** Called with the parsed JSON before it is checked (see loadManifest). */
  onParsed?: (raw: unknown) => void;
}

/**
 * Load a manifest and verify it: digests always; with public keys, a signature by one of them, embedded
 * or detached (FILE.sig beside it, or --signature).
 */
export function loadVerifiedManifest(
  file: string,
  opts: LoadVerifiedOptions = {},
): { manifest: Manifest; verified: VerifyResult } {
  const manifest = loadManifest(file, opts.onParsed);
  const trustedKeys = (opts.pubkeys ?? []).map(loadPublicKey);
  const sigFile =
    opts.signature ?? (existsSync(`${file}.sig`) && statSync(`${file}.sig`).isFile() ? `${file}.sig` : undefined);
  const detached =
    !manifest.signature && sigFile && trustedKeys.length > 0 ? loadDetachedSignature(sigFile) : undefined;
  const verified = verifyManifest(manifest, { trustedKeys, detached, label: file });
  return { manifest, verified };
}
