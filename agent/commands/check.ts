/** @module `driftwarden check`: collect a root with the manifest's own rules and diff it against the manifest. */
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { diffSection, diffSectionSorted } from '../../shared/diff.js';
import { sectionDigests } from '../../shared/manifest.js';
import { CHECK_SCHEMA_ID, type CheckResult } from '../../shared/schema/check.js';
import type { Manifest, Sections } from '../../shared/schema/manifest.js';
import type { CollectorName } from '../../shared/schema/common.js';
import { SEVERITIES, type Deviation } from '../../shared/schema/deviation.js';
import type { AnyItem } from '../../shared/schema/items.js';
import { CollectionRulesSchema } from '../../shared/schema/rules.js';
import { attributeDeviations } from '../attribution.js';
import { cancelEarlyWalk, startWalkEarly } from '../collectors/files.js';
import { StatCache } from '../collectors/stat-cache.js';
import type { ScanProgress } from '../collectors/types.js';
import { execProgram } from '../exec.js';
import { readHostId, readInventory } from '../identity.js';
import type { Logger } from '../log.js';
import { HostRoot } from '../root.js';
import { scan } from '../scan.js';
import { loadVerifiedManifest } from './manifest.js';
import { keepPacked, type PackedFiles } from '../packed-files.js';
import { releaseMemory } from '../daemon/release-memory.js';
import type { VerifyResult } from '../../shared/manifest.js';

export interface CheckOptions {
  manifest: string;
  root: string;
  pubkeys?: readonly string[];
  signature?: string;
  /** Stat cache file; unchanged files are not re-read. */
  cache?: string;
  stateDir?: string;
  fullRehash?: boolean;
  log: Logger;
  progress?: ScanProgress;
  /**
   * A manifest already loaded and verified (the agent keeps one for its lifetime): not read again,
   * which also saves holding a second copy of a large files section during the scan. With `files`, the
   * files section's items are those, packed (the manifest's own items array is then not read).
   */
  loaded?: { manifest: Manifest; verified: VerifyResult; files?: PackedFiles | null };
  /** The agent's watchdog: stop signal and CPU pacing. */
  signal?: AbortSignal;
  pace?: () => Promise<void>;
  /** Hash worker threads (default: one per core). */
  hashWorkers?: number;
  /** Batches the file walk may run ahead of the collector (default: no limit). */
  walkAhead?: number;
  /** Called once the collectors are done, before the diff (the agent collects its garbage there). */
  onCollected?: () => void;
}

/**
 * Start the file walk from the manifest's rules before the manifest is parsed and verified, so it
 * runs on its own thread meanwhile (a second or more for 100k+ files). Only the walk starts, and
 * nothing it finds is used unless the scan, with the verified manifest's rules, takes it over: if the
 * manifest fails, or its rules are not these, the walk is dropped unread.
 */
function startWalkFromRules(
  rootDir: string,
  raw: unknown,
  statCache: StatCache | undefined,
  fullRehash: boolean | undefined,
): boolean {
  try {
    const rules = CollectionRulesSchema.safeParse(raw);
    if (!rules.success) return false;
    startWalkEarly(new HostRoot(rootDir), rules.data, statCache, fullRehash);
    return true;
  } catch {
    // no early start: the scan walks in its turn, and reports whatever this was
    return false;
  }
}

/**
 * The manifest's rules from the first bytes of its file, without parsing the rest: a canonical
 * manifest's keys are sorted, so "rules" comes before "sections", within the first kilobytes. A guess
 * made to start the walk sooner; collect() uses the walk only if the verified rules are the same.
 */
export function rulesFromPrefix(file: string): unknown {
  const fd = openSync(file, 'r');
  let text: string;
  try {
    const buf = Buffer.alloc(64 * 1024);
    text = buf.toString('utf8', 0, readSync(fd, buf, 0, buf.length, 0));
  } finally {
    closeSync(fd);
  }
  const at = text.indexOf('"rules":{');
  if (at < 0) return undefined;
  const start = at + '"rules":'.length;
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return JSON.parse(text.slice(start, i + 1));
  }
  return undefined;
}

/** How often a scan without a pacer of its own runs a full garbage collection. */
const COLLECT_MS = 2000;

/**
 * A full collection every few seconds of a scan: V8 would otherwise let the old generation grow to a
 * multiple of what is live (the walk's batches, replaced items and hash replies are garbage within
 * moments) before collecting it.
 */
function collectEvery(ms: number): () => Promise<void> {
  let last = Date.now();
  return async () => {
    if (Date.now() - last < ms) return;
    releaseMemory();
    last = Date.now();
  };
}

function packAndRelease(loaded: { manifest: Manifest; verified: VerifyResult }) {
  const packed = keepPacked(loaded);
  // The manifest's text and parsed items are garbage now: gone before the walk allocates on top of them.
  releaseMemory();
  return packed;
}

export async function check(opts: CheckOptions): Promise<CheckResult> {
  try {
    return await checkInner(opts);
  } finally {
    cancelEarlyWalk();
  }
}

async function checkInner(opts: CheckOptions): Promise<CheckResult> {
  const started = performance.now();
  // The stat cache first (reading it never fails: a bad one is an empty one), so the early walk can
  // do its lookups.
  const cacheFile = opts.cache ?? (opts.stateDir ? join(opts.stateDir, 'stat-cache') : undefined);
  const statCache = cacheFile ? StatCache.load(cacheFile, new HostRoot(opts.root).dir) : undefined;
  let early = false;
  if (!opts.loaded) {
    try {
      early = startWalkFromRules(opts.root, rulesFromPrefix(opts.manifest), statCache, opts.fullRehash);
    } catch {
      // unreadable or odd: loading the manifest below says what is wrong
    }
  }
  // Packed once verified, like the agent's scan: the parsed items are most of a manifest's memory.
  const loaded =
    opts.loaded ??
    packAndRelease(
      loadVerifiedManifest(opts.manifest, {
        pubkeys: opts.pubkeys,
        signature: opts.signature,
        onParsed: early
          ? undefined
          : (raw) =>
              startWalkFromRules(opts.root, (raw as { rules?: unknown } | null)?.rules, statCache, opts.fullRehash),
      }),
    );
  const { manifest, verified } = loaded;
  const root = await HostRoot.open(opts.root);
  // Who the host is (machine-id, os-release, systeminformation, which runs programs) is found while
  // the scan runs rather than after it.
  const host = readHostId(root, opts.stateDir).then((hostId) => readInventory(root, hostId));
  host.catch(() => undefined); // awaited below; a failed scan must not leave it unhandled
  const scannedAt = new Date().toISOString();
  // The manifest's rules, not local ones: a host must not be able to widen its own blind spots.
  const { sections, results } = await scan({
    root,
    rules: manifest.rules,
    exec: execProgram,
    log: opts.log,
    statCache,
    fullRehash: opts.fullRehash,
    progress: opts.progress,
    signal: opts.signal,
    pace: opts.pace ?? collectEvery(COLLECT_MS),
    hashWorkers: opts.hashWorkers,
    walkAhead: opts.walkAhead,
  });
  (opts.onCollected ?? releaseMemory)();
  if (statCache && cacheFile) statCache.save(cacheFile);

  const deviations: Deviation[] = [];
  const unchanged = new Set<string>();
  for (const r of results) {
    if (!r.ok) continue;
    const name: CollectorName = r.collector;
    const actual = (sections[name]?.items ?? []) as AnyItem[];
    const packed = name === 'files' ? loaded.files : null;
    let found: Deviation[];
    let sameKeys: () => boolean;
    if (packed) {
      found = diffSectionSorted(name, packed, actual);
      sameKeys = () => packed.sameKeys(actual);
    } else {
      const expected = (manifest.sections[name]?.items ?? []) as AnyItem[];
      found = diffSection(name, expected, actual);
      sameKeys = () => sameKeyOrder(expected, actual);
    }
    // One push per deviation: spreading 100k+ of them into push() overflows the stack.
    for (const d of found) deviations.push(d);
    if (found.length === 0 && sameKeys()) unchanged.add(name);
  }
  await attributeDeviations({ root, exec: execProgram, log: opts.log, since: manifest.createdAt }, deviations);
  const byCollector: Record<string, number> = {};
  const bySeverity = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<(typeof SEVERITIES)[number], number>;
  for (const d of deviations) {
    byCollector[d.collector] = (byCollector[d.collector] ?? 0) + 1;
    bySeverity[d.severity]++;
  }
  return {
    schema: CHECK_SCHEMA_ID,
    clean: deviations.length === 0,
    complete: results.every((r) => r.ok),
    root: root.dir,
    host: await host,
    image: { id: manifest.image.id, name: manifest.image.name, version: manifest.image.version },
    manifestDigest: verified.digest,
    signedBy: verified.signedBy,
    scannedAt,
    durationMs: Math.round(performance.now() - started),
    digests: actualDigests(sections, manifest, unchanged),
    collectors: results,
    deviations,
    summary: { total: deviations.length, byCollector, bySeverity },
  };
}

function sameKeyOrder(a: readonly AnyItem[], b: readonly AnyItem[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.key !== b[i]!.key) return false;
  return true;
}

/**
 * Digests of the actual sections, as sectionDigests computes them. A section without deviations whose
 * items line up with the manifest's, key for key, has the same canonical form as the manifest's
 * section (every field of every item compared equal), so its digest is the manifest's, which
 * verifyManifest has just recomputed: no need to serialise 100k+ items a second time.
 */
function actualDigests(sections: Sections, manifest: Manifest, unchanged: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, section] of Object.entries(sections)) {
    if (!section) continue;
    const known =
      unchanged.has(name) && manifest.sections[name as CollectorName] ? manifest.digests.sections[name] : undefined;
    out[name] = known ?? sectionDigests({ [name]: section })[name]!;
  }
  return out;
}

/** 0 clean, 1 drift found, 2 when a collector failed and no drift was found (a partial scan proves nothing). */
export function checkExitCode(result: CheckResult): 0 | 1 | 2 {
  if (!result.clean) return 1;
  return result.complete ? 0 : 2;
}
