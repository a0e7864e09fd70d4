/** @module `driftwarden check`: collect a root with the manifest's own rules and diff it against the manifest. */
import { join } from 'node:path';
import { diffSection } from '../../shared/diff.js';
import { sectionDigests } from '../../shared/manifest.js';
import { CHECK_SCHEMA_ID, type CheckResult } from '../../shared/schema/check.js';
import type { CollectorName } from '../../shared/schema/common.js';
import { SEVERITIES, type Deviation } from '../../shared/schema/deviation.js';
import type { AnyItem } from '../../shared/schema/items.js';
import { attributeDeviations } from '../attribution.js';
import { StatCache } from '../collectors/stat-cache.js';
import type { ScanProgress } from '../collectors/types.js';
import { execProgram } from '../exec.js';
import { readHostId, readInventory } from '../identity.js';
import type { Logger } from '../log.js';
import { HostRoot } from '../root.js';
import { scan } from '../scan.js';
import { loadVerifiedManifest } from './manifest.js';

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
}

export async function check(opts: CheckOptions): Promise<CheckResult> {
  const started = performance.now();
  const { manifest, verified } = loadVerifiedManifest(opts.manifest, { pubkeys: opts.pubkeys, signature: opts.signature });
  const root = await HostRoot.open(opts.root);
  const cacheFile = opts.cache ?? (opts.stateDir ? join(opts.stateDir, 'stat-cache') : undefined);
  const statCache = cacheFile ? StatCache.load(cacheFile, root.dir) : undefined;
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
  });
  if (statCache && cacheFile) statCache.save(cacheFile);

  const deviations: Deviation[] = [];
  for (const r of results) {
    if (!r.ok) continue;
    const name: CollectorName = r.collector;
    const expected = (manifest.sections[name]?.items ?? []) as AnyItem[];
    const actual = (sections[name]?.items ?? []) as AnyItem[];
    deviations.push(...diffSection(name, expected, actual));
  }
  await attributeDeviations({ root, exec: execProgram, log: opts.log, since: manifest.createdAt }, deviations);
  const byCollector: Record<string, number> = {};
  const bySeverity = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<(typeof SEVERITIES)[number], number>;
  for (const d of deviations) {
    byCollector[d.collector] = (byCollector[d.collector] ?? 0) + 1;
    bySeverity[d.severity]++;
  }
  const hostId = await readHostId(root, opts.stateDir);
  return {
    schema: CHECK_SCHEMA_ID,
    clean: deviations.length === 0,
    complete: results.every((r) => r.ok),
    root: root.dir,
    host: await readInventory(root, hostId),
    image: { id: manifest.image.id, name: manifest.image.name, version: manifest.image.version },
    manifestDigest: verified.digest,
    signedBy: verified.signedBy,
    scannedAt,
    durationMs: Math.round(performance.now() - started),
    digests: sectionDigests(sections),
    collectors: results,
    deviations,
    summary: { total: deviations.length, byCollector, bySeverity },
  };
}

/** 0 clean, 1 drift found, 2 when a collector failed and no drift was found (a partial scan proves nothing). */
export function checkExitCode(result: CheckResult): 0 | 1 | 2 {
  if (!result.clean) return 1;
  return result.complete ? 0 : 2;
}
