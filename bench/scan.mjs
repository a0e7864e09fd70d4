#!/usr/bin/env node
/**
 * Scan benchmark: driftwarden's full scan and unchanged re-scan of a real tree, side by side with the
 * references over the same files, repeated, medians in a markdown table.
 *
 *   npm run bench -- [--tree /usr] [--runs 5] [--aide-runs 3] [--skip-aide] [--only name,name] [--out FILE]
 *                    [--quiet 0.15] [--wait-max 180]
 *
 * Contestants (each run end to end as a user runs it, under /usr/bin/time for max RSS):
 *   openssl-2p   `openssl dgst -sha256` on two processes, the file list split in two halves by bytes (the floor)
 *   dw-build     `driftwarden manifest build` with a files-only config whose roots are [TREE]
 *   aide-check   `aide --check --workers=2` with a config limited to TREE, sha256 only, after `aide --init`
 *   find-stat    `find TREE -printf '%s %T@ %i\n'` (a stat-only walk)
 *   dw-check     `driftwarden check --cache FILE` after a priming run (every file in the stat cache)
 *   coll-full / coll-cached   the files collector alone, in-process (bench/collector.mjs), for diagnosis
 *
 * The page cache is warm: preparation builds a manifest (reads the whole tree) and every contestant runs
 * once untimed before the timed rounds. Rounds interleave the contestants so load drifts hit all of them.
 * The machine may be shared: before each timed run the bench waits (up to --wait-max seconds) until the
 * CPUs have been at most --quiet busy (fraction, from /proc/stat) for a second, and records what it saw.
 * Targets (issue 15), printed with met or missed: full scan ≤ 1.15× the openssl floor, ≥ 8× faster than
 * `aide --check`, unchanged re-scan ≤ 2× the stat-only walk, peak RSS of build and check ≤ 150 MB.
 * A tree that yields no regular file, or fewer timed runs than asked, is not reported (exit 2).
 * Every report names the commit measured and `uptime` before and after.
 * Needs: a built dist/ (npm run build), openssl, GNU time, aide (apt-get install -y aide) unless --skip-aide.
 * Work files go to bench/work/ (gitignored).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');
const WORK = join(HERE, 'work');
const CLI = join(REPO, 'bin', 'driftwarden.js');

function parseArgs(argv) {
  const o = {
    tree: '/usr',
    runs: 5,
    aideRuns: 3,
    skipAide: false,
    only: null,
    out: join(WORK, 'latest.md'),
    quiet: 0.15,
    waitMax: 180,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--tree') o.tree = resolve(val());
    else if (a === '--runs') o.runs = Number(val());
    else if (a === '--aide-runs') o.aideRuns = Number(val());
    else if (a === '--skip-aide') o.skipAide = true;
    else if (a === '--only') o.only = new Set(val().split(','));
    else if (a === '--out') o.out = resolve(val());
    else if (a === '--quiet') o.quiet = Number(val());
    else if (a === '--wait-max') o.waitMax = Number(val());
    else if (a === '-h' || a === '--help') {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0] + '*/\n');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  if (!(o.runs >= 1) || !(o.aideRuns >= 1)) throw new Error('--runs and --aide-runs must be >= 1');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const log = (s) => process.stderr.write(`[bench] ${s}\n`);
const sh = (cmd) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
const q = (s) => `'${String(s).replaceAll("'", `'\\''`)}'`;
const load1 = () => loadavg()[0];
const uptime = () => spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
const commit = (() => {
  const h = spawnSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no'], {
    encoding: 'utf8',
  }).stdout.trim();
  return `${h || 'unknown'}${dirty ? '+dirty' : ''}`;
})();
const uptimeBefore = uptime();
/** A measurement that is empty or smaller than asked is not reported. */
const mustMeasure = (ok, what) => {
  if (!ok) {
    process.stderr.write(`scan bench: refusing to report: ${what}\n`);
    process.exit(2);
  }
};

// ---------------------------------------------------------------- environment
const cpuModel =
  (readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? cpus()[0]?.model ?? '?';
const shaNi = /\bsha_ni\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
const env = {
  date: new Date().toISOString(),
  cpu: `${cpuModel}${shaNi ? ' (sha_ni)' : ''}`,
  cores: cpus().length,
  memGB: (Number((readFileSync('/proc/meminfo', 'utf8').match(/MemTotal:\s*(\d+)/) ?? [])[1]) / 1024 / 1024).toFixed(1),
  node: process.version,
  openssl: sh('openssl version').stdout.trim(),
  aide: opts.skipAide ? 'skipped' : (sh('aide --version 2>&1').stdout.split('\n')[0] ?? '').trim(),
  kernel: sh('uname -r').stdout.trim(),
};
for (const [bin, hint] of [
  ['/usr/bin/time', 'apt-get install -y time'],
  ['openssl', 'apt-get install -y openssl'],
  ...(opts.skipAide ? [] : [['aide', 'apt-get install -y aide, or pass --skip-aide']]),
]) {
  if (sh(`command -v ${bin}`).status !== 0) throw new Error(`${bin} is missing: ${hint}`);
}
if (!existsSync(join(REPO, 'dist', 'cli.js'))) {
  log('dist/ missing: npm run build');
  if (spawnSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'inherit' }).status !== 0) throw new Error('build failed');
}

// ---------------------------------------------------------------- preparation
mkdirSync(WORK, { recursive: true });
const P = {
  config: join(WORK, 'files-only.yaml'),
  manifest: join(WORK, 'manifest.json'),
  buildOut: join(WORK, 'manifest-bench.json'),
  statCache: join(WORK, 'stat-cache'),
  collCache: join(WORK, 'collector-stat-cache'),
  halfA: join(WORK, 'half-a.lst'),
  halfB: join(WORK, 'half-b.lst'),
  aideDir: join(WORK, 'aide'),
};
writeFileSync(
  P.config,
  `# files collector only, one root: what the benchmark scans\ncollectors:\n  packages: { enabled: false }\n  sysctl: { enabled: false }\n  cron: { enabled: false }\n  files: { roots: [${JSON.stringify(opts.tree)}] }\n`,
);

function mustRun(cmd, what) {
  const r = sh(cmd);
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${cmd}\n${r.stderr}`);
  return r;
}

log(
  `load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} before preparation`,
);
log(`building the reference manifest of ${opts.tree} (this also warms the page cache)`);
mustRun(
  `node ${q(CLI)} manifest build --root / --config ${q(P.config)} --image-id bench --out ${q(P.manifest)}`,
  'manifest build',
);

// The exact files driftwarden hashed (regular files, ignore globs applied), split in two halves by bytes
// for the openssl floor. Sequential split keeps each half in directory order, as a walk reads it.
const items = JSON.parse(readFileSync(P.manifest, 'utf8')).sections.files.items;
const regular = items.filter((i) => i.type === 'file' && typeof i.sha256 === 'string');
const stats = {
  entries: items.length,
  files: regular.length,
  bytes: regular.reduce((n, i) => n + i.size, 0),
  unreadable: items.filter((i) => i.type === 'file' && i.error).length,
};
{
  let acc = 0;
  const a = [];
  const b = [];
  for (const it of regular) {
    (acc < stats.bytes / 2 ? a : b).push(it.key);
    acc += it.size;
  }
  writeFileSync(P.halfA, a.join('\0') + '\0');
  writeFileSync(P.halfB, b.join('\0') + '\0');
  stats.halves = [a.length, b.length];
}
log(`${stats.entries} entries, ${stats.files} regular files, ${(stats.bytes / 1e9).toFixed(2)} GB`);
mustMeasure(
  stats.files > 0 && stats.bytes > 0,
  `the manifest of ${opts.tree} holds ${stats.files} regular files (${stats.entries} entries): nothing to scan (is the tree under an ignored path?)`,
);

let aideConf = null;
if (!opts.skipAide) {
  mkdirSync(P.aideDir, { recursive: true });
  aideConf = join(P.aideDir, 'aide.conf');
  const esc = opts.tree.replace(/[.[\]()*+?^$|\\]/g, '\\$&');
  const conf = [
    `# ${opts.tree} only, sha256 only, the same ignore globs as driftwarden's defaults`,
    `database_in=file:${P.aideDir}/aide.db`,
    `database_out=file:${P.aideDir}/aide.db.new`,
    'gzip_dbout=no',
    'database_attrs=sha256',
    `report_url=file:${P.aideDir}/report.txt`,
    '# type, permissions, owner, group, size, link target, sha256: what driftwarden records',
    'DW = ftype+p+u+g+s+l+sha256',
    `${opts.tree} DW`,
    `!${esc}/.*/__pycache__(/.*)?$`,
    `!${esc}/.*\\.pyc$`,
    `!${esc}/.*\\.log$`,
    '',
  ].join('\n');
  const old = existsSync(aideConf) ? readFileSync(aideConf, 'utf8') : null;
  if (old !== conf || !existsSync(join(P.aideDir, 'aide.db'))) {
    writeFileSync(aideConf, conf);
    log('aide --init (once; the database is reused while aide.conf is unchanged)');
    mustRun(
      `aide -c ${q(aideConf)} --init --workers=2 > /dev/null && mv ${q(P.aideDir + '/aide.db.new')} ${q(P.aideDir + '/aide.db')}`,
      'aide --init',
    );
  }
}

log('priming the stat caches (a check with an empty cache hashes everything)');
sh(`rm -f ${q(P.statCache)} ${q(P.collCache)}`);
const prime = sh(`node ${q(CLI)} check --manifest ${q(P.manifest)} --cache ${q(P.statCache)} > /dev/null`);
if (prime.status !== 0 && prime.status !== 1) throw new Error(`priming check failed: ${prime.stderr}`);
mustRun(
  `node ${q(join(HERE, 'collector.mjs'))} --tree ${q(opts.tree)} --cache ${q(P.collCache)}`,
  'priming the collector cache',
);

// ---------------------------------------------------------------- contestants
const opensslHalf = (f) => `xargs -0 openssl dgst -sha256 < ${q(f)} > /dev/null`;
const CONTESTANTS = [
  {
    name: 'openssl-2p',
    what: 'floor: `openssl dgst -sha256`, 2 processes, halves by bytes',
    cmd: `${opensslHalf(P.halfA)} & ${opensslHalf(P.halfB)} & wait`,
  },
  {
    name: 'dw-build',
    what: 'driftwarden full scan (`manifest build`)',
    cmd: `node ${q(CLI)} manifest build --root / --config ${q(P.config)} --image-id bench --out ${q(P.buildOut)} > /dev/null`,
  },
  ...(opts.skipAide
    ? []
    : [
        {
          name: 'aide-check',
          what: '`aide --check --workers=2`',
          cmd: `aide -c ${q(aideConf)} --check --workers=2 > /dev/null`,
          okCodes: [0, 1, 2, 3, 4, 5, 6, 7],
          aide: true,
        },
      ]),
  {
    name: 'find-stat',
    what: "stat-only walk: `find TREE -printf '%s %T@ %i\\n'`",
    cmd: `find ${q(opts.tree)} -printf '%s %T@ %i\\n' > /dev/null`,
  },
  {
    name: 'dw-check',
    what: 'driftwarden unchanged re-scan (`check --cache`)',
    cmd: `node ${q(CLI)} check --manifest ${q(P.manifest)} --cache ${q(P.statCache)} > /dev/null`,
    okCodes: [0, 1],
  },
  {
    name: 'coll-full',
    what: 'files collector alone, in-process, no cache (diagnosis)',
    cmd: `node ${q(join(HERE, 'collector.mjs'))} --tree ${q(opts.tree)}`,
    inproc: true,
  },
  {
    name: 'coll-cached',
    what: 'files collector alone, in-process, stat cache primed (diagnosis)',
    cmd: `node ${q(join(HERE, 'collector.mjs'))} --tree ${q(opts.tree)} --cache ${q(P.collCache)}`,
    inproc: true,
  },
].filter((c) => !opts.only || opts.only.has(c.name));

/** Fraction of all CPUs busy over `ms` milliseconds, from /proc/stat. */
function cpuTimes() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0);
  return { idle, total: f.reduce((a, b) => a + b, 0) };
}
async function busyOver(ms) {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTimes();
  return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
}
/** Wait until the machine is quiet (others' tests finished); gives up after --wait-max seconds. */
async function waitQuiet() {
  const until = Date.now() + opts.waitMax * 1000;
  for (;;) {
    const busy = await busyOver(1000);
    if (busy <= opts.quiet || Date.now() > until) return busy;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function runOnce(c, busyBefore = null) {
  return new Promise((resolvePromise, reject) => {
    const timeFile = join(WORK, `.time-${c.name}`);
    const loadBefore = load1();
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, 'sh', '-c', c.cmd], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const wall = (performance.now() - t0) / 1000;
      const ok = (c.okCodes ?? [0]).includes(code);
      if (!ok) return reject(new Error(`${c.name} exited ${code}: ${err.slice(-2000)}`));
      const [, rssKb] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
      let detail = null;
      if (c.inproc) detail = JSON.parse(out.trim().split('\n').pop());
      resolvePromise({ wall, rssMB: rssKb / 1024, code, detail, load: Math.max(loadBefore, load1()), busyBefore });
    });
  });
}

log(
  `load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; warm-up pass: every contestant once, untimed`,
);
for (const c of CONTESTANTS) {
  const r = await runOnce(c);
  log(`  warm-up ${c.name}: ${r.wall.toFixed(2)} s`);
}

const results = new Map(CONTESTANTS.map((c) => [c.name, []]));
const loads = [];
const busies = [];
const rounds = Math.max(opts.runs, opts.skipAide ? 0 : opts.aideRuns);
for (let round = 1; round <= rounds; round++) {
  for (const c of CONTESTANTS) {
    if (round > (c.aide ? opts.aideRuns : opts.runs)) continue;
    const busy = await waitQuiet();
    const r = await runOnce(c, busy);
    loads.push(r.load);
    busies.push(busy);
    results.get(c.name).push(r);
    log(
      `  round ${round} ${c.name}: ${r.wall.toFixed(2)} s, ${r.rssMB.toFixed(0)} MB, load ${r.load.toFixed(2)}, CPUs ${(busy * 100).toFixed(0)}% busy before`,
    );
  }
}

// ---------------------------------------------------------------- report
for (const c of CONTESTANTS) {
  const want = c.aide ? opts.aideRuns : opts.runs;
  mustMeasure(results.get(c.name).length === want, `${c.name}: ${results.get(c.name).length} of ${want} timed runs`);
}
mustMeasure(CONTESTANTS.length > 0, '--only named no contestant');
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const med = (name, f = (r) => r.wall) => (results.get(name)?.length ? median(results.get(name).map(f)) : NaN);
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

const rows = CONTESTANTS.map((c) => {
  const rs = results.get(c.name);
  const walls = rs.map((r) => r.wall);
  let note = '';
  if (c.name === 'dw-check' && rs.some((r) => r.code === 1)) note = ' (drift found)';
  if (c.inproc) note = ` (collect ${fmt(median(rs.map((r) => r.detail.ms / 1000)))} s)`;
  return `| ${c.name} | ${c.what}${note} | ${fmt(median(walls))} | ${fmt(Math.min(...walls))}–${fmt(Math.max(...walls))} | ${fmt(median(rs.map((r) => r.rssMB)), 0)} | ${rs.length} |`;
});

const full = med('dw-build');
const floor = med('openssl-2p');
const aide = med('aide-check');
const recheck = med('dw-check');
const stat = med('find-stat');
/** Median over rounds of a/b within the same round: adjacent runs share the machine's state. */
const paired = (a, b) => {
  const xs = results.get(a) ?? [];
  const ys = results.get(b) ?? [];
  const n = Math.min(xs.length, ys.length);
  return n > 0 ? median(Array.from({ length: n }, (_, i) => xs[i].wall / ys[i].wall)) : NaN;
};
const rss = Math.max(...['dw-build', 'dw-check'].flatMap((n) => (results.get(n) ?? []).map((r) => r.rssMB)));
const verdict = (ok) => (ok === null ? 'n/a' : ok ? 'met' : '**missed**');
const has = (x) => Number.isFinite(x);
// issue 15's targets
const targets = [
  `| full scan / openssl floor | ≤ 1.15× | ${fmt(full / floor)}× | ${fmt(paired('dw-build', 'openssl-2p'))}× | ${verdict(has(full / floor) ? full / floor <= 1.15 : null)} |`,
  `| aide --check / full scan | ≥ 8× | ${fmt(aide / full)}× | ${fmt(1 / paired('dw-build', 'aide-check'))}× | ${verdict(has(aide / full) ? aide / full >= 8 : null)} |`,
  `| unchanged re-scan / stat-only walk | ≤ 2× | ${fmt(recheck / stat)}× | ${fmt(paired('dw-check', 'find-stat'))}× | ${verdict(has(recheck / stat) ? recheck / stat <= 2 : null)} |`,
  `| max RSS of driftwarden (build, check; worst run) | ≤ 150 MB | ${fmt(rss, 0)} MB | | ${verdict(Number.isFinite(rss) ? rss <= 150 : null)} |`,
];

const md = [
  `### Run of ${env.date} at commit ${commit}`,
  '',
  `\`uptime\` before: ${uptimeBefore}; after: ${uptime()}. The machine may be shared: a quiet-machine re-run decides the final figures.`,
  '',
  `Tree \`${opts.tree}\`: ${stats.entries.toLocaleString('en')} entries after ignore globs, ${stats.files.toLocaleString('en')} regular files, ` +
    `${(stats.bytes / 1e9).toFixed(2)} GB (openssl halves: ${stats.halves[0]} + ${stats.halves[1]} files)` +
    `${stats.unreadable ? `, ${stats.unreadable} unreadable` : ''}.`,
  `Machine: ${env.cpu}, ${env.cores} cores, ${env.memGB} GB RAM, Linux ${env.kernel}; Node ${env.node}; ${env.openssl}; ${env.aide}.`,
  `Warm page cache (preparation read the tree, then one untimed warm-up pass of every contestant); ` +
    `medians of ${opts.runs} runs (aide: ${opts.skipAide ? 0 : opts.aideRuns}), contestants interleaved round by round. ` +
    `1-minute load average seen: ${fmt(Math.min(...loads))}–${fmt(Math.max(...loads))} (it includes this bench's own runs, aide's most of all); ` +
    `CPUs busy in the second before a run (others' work): median ${fmt(median(busies) * 100, 0)}%, worst ${fmt(Math.max(...busies) * 100, 0)}% ` +
    `(the bench waits up to ${opts.waitMax} s for ≤ ${fmt(opts.quiet * 100, 0)}%).`,
  '',
  '| contestant | what | median s | range s | max RSS MB | runs |',
  '|---|---|---:|---:|---:|---:|',
  ...rows,
  '',
  '| target (issue 15) | wanted | ratio of medians | median of per-round ratios | |',
  '|---|---|---:|---:|---|',
  ...targets,
  '',
  'Commands (run from the repository root; `bench/work/` holds the config, lists and databases):',
  '',
  '```sh',
  ...CONTESTANTS.map((c) => `# ${c.name}\n${c.cmd.replaceAll(REPO + '/', '')}`),
  '```',
  '',
];
const text = md.join('\n');
writeFileSync(opts.out, text);
process.stdout.write(text);
log(`written to ${opts.out}`);
