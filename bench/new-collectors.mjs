#!/usr/bin/env node
/**
 * What the kernel-modules, services, accounts and firewall collectors add to an unchanged re-scan of a
 * stock Debian 12 host (this machine's /): `driftwarden check` with the default collectors and roots,
 * against the same check with the four switched off, rounds interleaved in one run, medians reported.
 *   npm run build && node bench/new-collectors.mjs [--runs 7] [--root /]
 * Prints one JSON line per round and a summary: {baselineMs, withNewMs, addedMs, addedPct, items}.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustMeasure, parseCli } from './lib/cli.mjs';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(REPO, 'bin/driftwarden.js');
const WORK = join(REPO, 'bench/work/new-collectors');
const args = parseCli(import.meta.url, { runs: 'value', root: 'value' });
const runs = Number(args.runs ?? '7');
const root = args.root ?? '/';
if (!(runs >= 1)) throw new Error('--runs: at least 1');
const NEW = ['kernel-modules', 'services', 'accounts', 'firewall'];

mkdirSync(WORK, { recursive: true });
const variants = {
  baseline: `collectors:\n${NEW.map((c) => `  ${c}: { enabled: false }`).join('\n')}\n`,
  withNew: '{}\n',
};
const dw = (argv) => {
  const r = spawnSync(process.execPath, [BIN, ...argv], {
    encoding: 'utf8',
    env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'error' },
  });
  return r;
};
for (const [name, yaml] of Object.entries(variants)) {
  writeFileSync(join(WORK, `${name}.yaml`), yaml);
  const b = dw([
    'manifest',
    'build',
    '--root',
    root,
    '--image-id',
    `bench-${name}`,
    '--config',
    join(WORK, `${name}.yaml`),
    '--out',
    join(WORK, `${name}.json`),
    '--cache',
    join(WORK, `${name}.cache`),
  ]);
  if (b.status !== 0) throw new Error(`build ${name}: ${b.stderr}`);
  // Priming check: fills the page cache and the stat cache, as a host's previous scan would have.
  dw([
    'check',
    '--root',
    root,
    '--manifest',
    join(WORK, `${name}.json`),
    '--cache',
    join(WORK, `${name}.cache`),
    '--json',
  ]);
}
const times = { baseline: [], withNew: [] };
let items = null;
for (let i = 0; i < runs; i++) {
  for (const name of i % 2 === 0 ? ['baseline', 'withNew'] : ['withNew', 'baseline']) {
    const t = performance.now();
    const r = dw([
      'check',
      '--root',
      root,
      '--manifest',
      join(WORK, `${name}.json`),
      '--cache',
      join(WORK, `${name}.cache`),
      '--json',
    ]);
    const ms = performance.now() - t;
    if (r.status !== 0) throw new Error(`check ${name} exited ${r.status}: ${r.stderr || r.stdout.slice(0, 500)}`);
    times[name].push(ms);
    if (name === 'withNew' && items === null)
      items = Object.fromEntries(
        JSON.parse(r.stdout).collectors.map((c) => [c.collector, { items: c.items, ms: c.durationMs }]),
      );
    process.stdout.write(JSON.stringify({ round: i, variant: name, ms: Math.round(ms) }) + '\n');
  }
}
mustMeasure(
  times.baseline.length === runs && times.withNew.length === runs,
  `${times.baseline.length} and ${times.withNew.length} of ${runs} rounds`,
);
mustMeasure(items !== null && Object.values(items).some((c) => c.items > 0), `the check of ${root} collected no item`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const baselineMs = median(times.baseline);
const withNewMs = median(times.withNew);
process.stdout.write(
  JSON.stringify({
    runs,
    baselineMs: Math.round(baselineMs),
    withNewMs: Math.round(withNewMs),
    addedMs: Math.round(withNewMs - baselineMs),
    addedPct: Math.round(((withNewMs - baselineMs) / baselineMs) * 1000) / 10,
    collectors: items,
  }) + '\n',
);
