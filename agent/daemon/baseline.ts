/**
 * @module The watched paths' part of the verified manifest, which the daemon keeps instead of the
 * manifest: the files under the watched paths and the sections of the collectors a watched path feeds.
 * The task process that verified the manifest writes it to STATE_DIR/baseline.json; the daemon reads it
 * once (a few hundred KB where the manifest is tens of MB), so an event check never loads the manifest.
 * The state directory is the agent's own (0700, root): what it trusts here it already trusts for its
 * credential and spool; the report's manifest digest comes from the same verification.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { COLLECTOR_DEFS } from '../../shared/collectors.js';
import type { CollectorName } from '../../shared/schema/common.js';
import type { AnyItem, FileItem } from '../../shared/schema/items.js';
import type { CollectionRules } from '../../shared/schema/rules.js';

/** Paths watched when the config names none: config, cron, ssh keys, local binaries, /opt. */
export const DEFAULT_WATCH_PATHS = [
  '/etc',
  '/var/spool/cron',
  '/root/.ssh',
  '/usr/local/bin',
  '/usr/local/sbin',
  '/opt',
];

export const BASELINE_SCHEMA = 'driftwarden/baseline/v1';

export interface Baseline {
  schema: typeof BASELINE_SCHEMA;
  /** The verified manifest's digest (the one reports carry) and who signed it. */
  manifestDigest: string;
  signedBy: string | null;
  image: { id: string; name?: string; version?: string };
  createdAt: string;
  rules: CollectionRules;
  watchPaths: string[];
  /** The manifest's file items inside the watched paths, in manifest order. */
  files: FileItem[];
  /** The expected items of each enabled collector that a watched path feeds. */
  sections: Partial<Record<CollectorName, AnyItem[]>>;
}

export function baselineFile(stateDir: string): string {
  return join(stateDir, 'baseline.json');
}

/** Under (or equal to) one of the prefixes. */
export function under(path: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`));
}

/**
 * The collectors a change under these watched paths makes the agent run again (the registry's watch
 * triggers): a trigger inside a watched path, or a watched path inside a trigger.
 */
export function watchedCollectors(rules: CollectionRules, watchPaths: readonly string[]): CollectorName[] {
  return COLLECTOR_DEFS.filter(
    (d) =>
      d.watch.length > 0 &&
      rules.collectors.includes(d.name as CollectorName) &&
      d.watch.some((t) => under(t, watchPaths) || watchPaths.some((w) => under(w, [t]))),
  ).map((d) => d.name as CollectorName);
}

/** Which of `collectors` a batch of changed paths touches (a path equal to or under one of its triggers). */
export function touchedCollectors(collectors: readonly CollectorName[], paths: readonly string[]): CollectorName[] {
  return collectors.filter((c) => {
    const triggers = COLLECTOR_DEFS.find((d) => d.name === c)?.watch ?? [];
    return paths.some((p) => triggers.some((t) => p === t || p.startsWith(t)));
  });
}

export function readBaseline(file: string, manifestDigest: string): Baseline {
  const b = JSON.parse(readFileSync(file, 'utf8')) as Baseline;
  if (b.schema !== BASELINE_SCHEMA || b.manifestDigest !== manifestDigest)
    throw new Error(`${file}: not the baseline of the manifest ${manifestDigest}`);
  return b;
}
