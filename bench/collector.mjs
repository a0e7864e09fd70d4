#!/usr/bin/env node
/**
 * The files collector alone, in-process, for diagnosis: no manifest, no diff, no digests.
 *   node bench/collector.mjs [--tree /usr] [--cache FILE] [--full-rehash]
 * Prints one JSON line: {ms, loadMs, saveMs, items, hits, misses, maxRssMB}. With --cache the cache is
 * loaded before and saved after, like `check --cache` does.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustMeasure, parseCli } from './lib/cli.mjs';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const args = parseCli(import.meta.url, { tree: 'value', cache: 'value', 'full-rehash': 'flag' });
const tree = resolve(args.tree ?? '/usr');
const cacheFile = args.cache;

const { files } = await import(join(DIST, 'agent/collectors/files.js'));
const { StatCache } = await import(join(DIST, 'agent/collectors/stat-cache.js'));
const { HostRoot } = await import(join(DIST, 'agent/root.js'));
const { defaultRules } = await import(join(DIST, 'shared/schema/rules.js'));

const rules = defaultRules();
rules.collectors = ['files'];
rules.files.roots = [tree];
const root = await HostRoot.open('/');
let t = performance.now();
const statCache = cacheFile ? StatCache.load(cacheFile, root.dir) : undefined;
const loadMs = performance.now() - t;
const log = { child: () => log, info() {}, warn() {}, error() {}, debug() {} };
t = performance.now();
const out = await files.collect({
  root,
  rules,
  exec: null,
  log,
  statCache,
  fullRehash: args['full-rehash'] === true,
});
const ms = performance.now() - t;
t = performance.now();
if (statCache && cacheFile) statCache.save(cacheFile);
const saveMs = performance.now() - t;
const r = {
  ms: Math.round(ms),
  loadMs: Math.round(loadMs),
  saveMs: Math.round(saveMs),
  items: out.items.length,
  hits: statCache?.hits ?? 0,
  misses: statCache?.misses ?? 0,
  maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
};
mustMeasure(r.items > 0, `the files collector found nothing under ${tree} (an ignored path?)`);
process.stdout.write(JSON.stringify(r) + '\n');
