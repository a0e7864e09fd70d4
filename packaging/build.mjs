#!/usr/bin/env node
// `npm run package`: the bundles, the agent's single executable and the two Debian packages, into dist/.
//   node packaging/build.mjs [bundle] [sea] [deb]     (no argument: all three, in that order)
// Needs: esbuild and postject (devDependencies), and on the machine dpkg-deb, strip (binutils), gzip.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const VERSION = PKG.version;
const DIST = join(ROOT, 'dist');
const BUNDLE = join(DIST, 'bundle');
const SEA = join(DIST, 'sea');
const DEB = join(DIST, 'deb');
const require = createRequire(import.meta.url);

/** What the agent build must never contain: the controller's server, store and cloud SDKs. */
const AGENT_FORBIDDEN = [
  /node_modules\/(fastify|@fastify|better-sqlite3|kysely|pg|@aws-sdk|@kubernetes)\//,
  /^controller\//,
];

/** Debian 12's libc6 and libstdc++6: the shipped binaries may need nothing newer. */
const DEBIAN12 = { GLIBC: '2.36', GLIBCXX: '3.4.30' };

/**
 * A reproducible build time for the package metadata (changelog date): the last commit's, or
 * SOURCE_DATE_EPOCH when set.
 */
function buildEpoch() {
  if (process.env.SOURCE_DATE_EPOCH) return Number(process.env.SOURCE_DATE_EPOCH);
  try {
    return Number(execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' }).trim());
  } catch {
    return Math.floor(Date.now() / 1000);
  }
}

function run(file, args, opts = {}) {
  return execFileSync(file, args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...opts });
}

function need(tool, debianPackage) {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { stdio: 'ignore' });
  } catch {
    throw new Error(`packaging needs ${tool}: apt-get install ${debianPackage}`);
  }
}

function log(text) {
  process.stderr.write(`package: ${text}\n`);
}

// ---------------------------------------------------------------------------------------------
// Bundles

async function bundle() {
  const esbuild = await import('esbuild');
  const define = { __DRIFTWARDEN_VERSION__: JSON.stringify(VERSION) };
  rmSync(BUNDLE, { recursive: true, force: true });

  // The agent: one CommonJS file (a Node 20 single executable runs CommonJS only), everything inlined.
  // chokidar 5 is ESM-only; esbuild converts it. node-cron's ES build reads import.meta.url when it
  // loads: it gets this file's URL (in the single executable, the executable's own path).
  const agent = await esbuild.build({
    entryPoints: [join(ROOT, 'packaging/entry-agent.ts')],
    outfile: join(BUNDLE, 'agent/driftwarden.cjs'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    define: { ...define, 'import.meta.url': '__dwImportMetaUrl' },
    banner: { js: "const __dwImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
    legalComments: 'external',
    metafile: true,
    logLevel: 'warning',
  });
  const inputs = Object.keys(agent.metafile.inputs);
  const leaked = inputs.filter((i) => AGENT_FORBIDDEN.some((re) => re.test(i)));
  if (leaked.length > 0)
    throw new Error(`the agent bundle pulled in controller code: ${leaked.slice(0, 5).join(', ')}`);
  writeFileSync(join(BUNDLE, 'agent/meta.json'), JSON.stringify(agent.metafile));
  log(
    `agent bundle ${relative(ROOT, join(BUNDLE, 'agent/driftwarden.cjs'))} (${kib(join(BUNDLE, 'agent/driftwarden.cjs'))}, ${inputs.length} modules)`,
  );

  // The controller: one ES module run by the packaged Node. better-sqlite3 stays outside (its .node
  // addon is found by `bindings` relative to its own package directory), shipped in node_modules beside it.
  const controllerDir = join(BUNDLE, 'controller');
  await esbuild.build({
    entryPoints: [join(ROOT, 'packaging/entry-controller.ts')],
    outfile: join(controllerDir, 'driftwarden.mjs'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    define,
    external: ['better-sqlite3', 'pg-native'],
    // CommonJS dependencies inside an ES module bundle still call require(); give them one.
    banner: {
      js: "import { createRequire as __dwCreateRequire } from 'node:module'; const require = __dwCreateRequire(import.meta.url);",
    },
    legalComments: 'external',
    logLevel: 'warning',
  });
  for (const name of ['better-sqlite3', 'bindings', 'file-uri-to-path']) {
    const from = dirname(require.resolve(`${name}/package.json`));
    const to = join(controllerDir, 'node_modules', name);
    mkdirSync(to, { recursive: true });
    // Their LICENSE texts go to the package's doc directory with the bundle's (bundledLicenses()).
    for (const entry of ['package.json', 'lib', 'bindings.js', 'index.js']) {
      if (existsSync(join(from, entry))) cpSync(join(from, entry), join(to, entry), { recursive: true });
    }
    if (name === 'better-sqlite3') {
      mkdirSync(join(to, 'build/Release'), { recursive: true });
      const addon = join(to, 'build/Release/better_sqlite3.node');
      copyFileSync(join(from, 'build/Release/better_sqlite3.node'), addon);
      need('strip', 'binutils');
      run('strip', ['--strip-unneeded', '--remove-section=.comment', addon]);
    }
  }
  // The dashboard's static files, when the tree has them, beside the bundle as they are beside controller/*.ts.
  if (existsSync(join(ROOT, 'controller/dashboard')))
    cpSync(join(ROOT, 'controller/dashboard'), join(controllerDir, 'dashboard'), { recursive: true });
  log(
    `controller bundle ${relative(ROOT, join(controllerDir, 'driftwarden.mjs'))} (${kib(join(controllerDir, 'driftwarden.mjs'))}) + better-sqlite3 addon`,
  );
}

/** The licence notices of everything bundled (esbuild's LEGAL.txt) and of the modules shipped beside it. */
function bundledLicenses(part) {
  const dir = join(BUNDLE, part);
  const legal = readdirSync(dir).filter((f) => f.endsWith('.LEGAL.txt'));
  let text = `Licence notices of the third-party code in this package's ${part === 'agent' ? 'executable' : 'bundle'} (collected by esbuild).\n\n`;
  for (const f of legal) text += readFileSync(join(dir, f), 'utf8') + '\n';
  if (part === 'controller') {
    for (const name of ['better-sqlite3', 'bindings', 'file-uri-to-path']) {
      const from = dirname(require.resolve(`${name}/package.json`));
      const lic = readdirSync(from).find((f) => /^licen[cs]e/i.test(f));
      if (lic)
        text += `\n---- node_modules/${name} (shipped beside the bundle) ----\n\n${readFileSync(join(from, lic), 'utf8')}`;
    }
  }
  return text;
}

function kib(file) {
  return `${Math.round(statSync(file).size / 1024)} KiB`;
}

// ---------------------------------------------------------------------------------------------
// The agent's single executable

/** The newest GLIBC_/GLIBCXX_ symbol versions a binary needs. */
function symbolVersions(file) {
  // stderr dropped: objdump warns about the section postject adds.
  const text = run('objdump', ['-T', file], { maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'ignore'] });
  const newest = {};
  for (const m of text.matchAll(/\b(GLIBC|GLIBCXX)_(\d+(?:\.\d+)*)\b/g)) {
    const [, lib, v] = m;
    if (!newest[lib] || compareVersions(v, newest[lib]) > 0) newest[lib] = v;
  }
  return newest;
}

function compareVersions(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Refuses a binary that would not load on Debian 12, and returns what it needs for the Depends line. */
function checkRuns_onDebian12(file) {
  const needs = symbolVersions(file);
  for (const [lib, v] of Object.entries(needs)) {
    if (compareVersions(v, DEBIAN12[lib]) > 0)
      throw new Error(
        `${relative(ROOT, file)} needs ${lib} ${v}; Debian 12 has ${DEBIAN12[lib]}: build with an older Node runtime`,
      );
  }
  return needs;
}

/** A stripped copy of the running Node: the runtime of the single executable and of the controller. */
function strippedNode(to) {
  copyFileSync(process.execPath, to);
  chmodSync(to, 0o755);
  // --strip-unneeded keeps the dynamic symbols native addons link against (better-sqlite3).
  run('strip', ['--strip-unneeded', '--remove-section=.comment', to]);
}

async function sea() {
  need('strip', 'binutils');
  need('objdump', 'binutils');
  const [major] = process.versions.node.split('.').map(Number);
  if (major < 20) throw new Error(`the single executable needs Node >= 20 to build (running ${process.version})`);
  const main = join(BUNDLE, 'agent/driftwarden.cjs');
  if (!existsSync(main)) throw new Error('no agent bundle: run `node packaging/build.mjs bundle` first');
  rmSync(SEA, { recursive: true, force: true });
  mkdirSync(SEA, { recursive: true });
  const config = join(SEA, 'sea-config.json');
  const blob = join(SEA, 'driftwarden.blob');
  writeFileSync(config, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true }, null, 2));
  run(process.execPath, ['--experimental-sea-config', config]);
  const exe = join(SEA, 'driftwarden');
  strippedNode(exe);
  const { inject } = require('postject');
  await inject(exe, 'NODE_SEA_BLOB', readFileSync(blob), {
    sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  });
  checkRuns_onDebian12(exe);
  const version = run(exe, ['--version']).trim();
  if (version !== VERSION) throw new Error(`the single executable says its version is "${version}", not ${VERSION}`);
  log(
    `single executable ${relative(ROOT, exe)} (${Math.round(statSync(exe).size / 1048576)} MiB), --version ${version}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Debian packages

const MAINTAINER = 'driftwarden maintainers <driftwarden@example.org>';

function debArch() {
  return run('dpkg', ['--print-architecture']).trim();
}

/** The Depends line for a binary built against glibc/libstdc++, from the symbol versions it needs. */
function libcDepends(file) {
  const needs = checkRuns_onDebian12(file);
  return [`libc6 (>= ${needs.GLIBC ?? '2.17'})`, 'libgcc-s1', 'libstdc++6'].join(', ');
}

function installedSizeKiB(dir) {
  let bytes = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else bytes += statSync(p).size;
    }
  };
  walk(dir);
  return Math.ceil(bytes / 1024);
}

/** Copies a file with an exact mode (dpkg-deb keeps modes; ownership is root's via --root-owner-group). */
function put(from, to, mode) {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
  chmodSync(to, mode);
}

function putText(text, to, mode) {
  mkdirSync(dirname(to), { recursive: true });
  writeFileSync(to, text);
  chmodSync(to, mode);
}

function changelog(pkg) {
  const date = new Date(buildEpoch() * 1000).toUTCString().replace('GMT', '+0000');
  const text = `${pkg} (${VERSION}) unstable; urgency=medium\n\n  * Release ${VERSION}; see the project README for what it contains.\n\n -- ${MAINTAINER}  ${date}\n`;
  return gzipSync(Buffer.from(text), { level: 9 });
}

/** Stages one package tree under dist/deb/stage/NAME and builds NAME_VERSION_ARCH.deb from it. */
function debPackage(name, arch, fill, depends) {
  const src = join(ROOT, 'packaging/deb', name.replace('driftwarden-', ''));
  const stage = join(DEB, 'stage', name);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'DEBIAN'), { recursive: true });
  fill(stage);
  // Every package carries its copyright, changelog and lintian overrides (each one explained in packaging/README.md).
  put(join(ROOT, 'packaging/deb/copyright'), join(stage, 'usr/share/doc', name, 'copyright'), 0o644);
  const cl = join(stage, 'usr/share/doc', name, 'changelog.gz');
  mkdirSync(dirname(cl), { recursive: true });
  writeFileSync(cl, changelog(name));
  chmodSync(cl, 0o644);
  putText(
    bundledLicenses(name.replace('driftwarden-', '')),
    join(stage, 'usr/share/doc', name, 'third-party-notices'),
    0o644,
  );
  if (existsSync(join(src, 'lintian-overrides')))
    put(join(src, 'lintian-overrides'), join(stage, 'usr/share/lintian/overrides', name), 0o644);
  for (const script of ['postinst', 'prerm', 'postrm']) {
    if (existsSync(join(src, script))) put(join(src, script), join(stage, 'DEBIAN', script), 0o755);
  }
  put(join(src, 'conffiles'), join(stage, 'DEBIAN/conffiles'), 0o644);
  // md5sums for debsums and dpkg --verify: every shipped file but the conffiles (dpkg records those itself).
  const conffiles = new Set(readFileSync(join(src, 'conffiles'), 'utf8').split('\n').filter(Boolean));
  const sums = walkFiles(stage)
    .map((f) => relative(stage, f))
    .filter((rel) => !rel.startsWith('DEBIAN/') && !conffiles.has(`/${rel}`))
    .sort()
    .map(
      (rel) =>
        `${createHash('md5')
          .update(readFileSync(join(stage, rel)))
          .digest('hex')}  ${rel}\n`,
    )
    .join('');
  putText(sums, join(stage, 'DEBIAN/md5sums'), 0o644);
  const control = readFileSync(join(src, 'control'), 'utf8')
    .replaceAll('@VERSION@', VERSION)
    .replaceAll('@ARCH@', arch)
    .replaceAll('@MAINTAINER@', MAINTAINER)
    .replaceAll('@DEPENDS@', depends)
    .replaceAll('@INSTALLED_SIZE@', String(installedSizeKiB(stage)));
  putText(control, join(stage, 'DEBIAN/control'), 0o644);
  // Directories 0755 whatever the umask of the build; dpkg-deb keeps what it finds.
  const fixDirs = (d) => {
    chmodSync(d, 0o755);
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) fixDirs(join(d, e.name));
  };
  fixDirs(stage);
  const out = join(DEB, `${name}_${VERSION}_${arch}.deb`);
  // xz -6 by default; DRIFTWARDEN_DEB_XZ_LEVEL=1 trades size for time (the packaging test uses it).
  const level = process.env.DRIFTWARDEN_DEB_XZ_LEVEL ?? '6';
  if (!/^[0-9]$/.test(level)) throw new Error(`DRIFTWARDEN_DEB_XZ_LEVEL must be 0-9, not "${level}"`);
  run('dpkg-deb', ['--root-owner-group', '-Zxz', `-z${level}`, '--build', stage, out], {
    env: { ...process.env, SOURCE_DATE_EPOCH: String(buildEpoch()) },
  });
  log(`${relative(ROOT, out)} (${Math.round(statSync(out).size / 1048576)} MiB)`);
  return out;
}

function deb() {
  need('dpkg-deb', 'dpkg');
  need('strip', 'binutils');
  need('objdump', 'binutils');
  const sea = join(SEA, 'driftwarden');
  const controllerBundle = join(BUNDLE, 'controller');
  if (!existsSync(sea) || !existsSync(join(controllerBundle, 'driftwarden.mjs')))
    throw new Error('no bundle or single executable: run `node packaging/build.mjs bundle sea` first');
  rmSync(DEB, { recursive: true, force: true });
  const arch = debArch();
  const pk = join(ROOT, 'packaging');
  const manPage = (stage, name) => {
    const gz = join(stage, 'usr/share/man/man1', `${name}.1.gz`);
    mkdirSync(dirname(gz), { recursive: true });
    writeFileSync(gz, gzipSync(readFileSync(join(pk, 'deb', `${name}.1`)), { level: 9 }));
    chmodSync(gz, 0o644);
  };

  debPackage(
    'driftwarden-agent',
    arch,
    (stage) => {
      put(sea, join(stage, 'usr/bin/driftwarden'), 0o755);
      put(
        join(pk, 'systemd/driftwarden-agent.service'),
        join(stage, 'lib/systemd/system/driftwarden-agent.service'),
        0o644,
      );
      put(join(pk, 'config/agent.yaml'), join(stage, 'etc/driftwarden/agent.yaml'), 0o644);
      manPage(stage, 'driftwarden');
    },
    // procps: /bin/kill, the unit's ExecReload (SIGHUP reloads the config).
    `${libcDepends(sea)}, procps`,
  );

  const runtime = join(DEB, 'node');
  mkdirSync(DEB, { recursive: true });
  strippedNode(runtime);
  debPackage(
    'driftwarden-controller',
    arch,
    (stage) => {
      const lib = join(stage, 'usr/lib/driftwarden');
      put(runtime, join(lib, 'node'), 0o755);
      cpSync(controllerBundle, join(lib, 'controller'), { recursive: true, filter: (f) => !f.endsWith('.LEGAL.txt') });
      for (const f of walkFiles(join(lib, 'controller'))) chmodSync(f, 0o644);
      putText(
        '#!/bin/sh\n# The controller package runs on the Node runtime it carries (Debian 12 ships Node 18).\nexec /usr/lib/driftwarden/node /usr/lib/driftwarden/controller/driftwarden.mjs "$@"\n',
        join(stage, 'usr/bin/driftwarden-controller'),
        0o755,
      );
      put(
        join(pk, 'systemd/driftwarden-controller.service'),
        join(stage, 'lib/systemd/system/driftwarden-controller.service'),
        0o644,
      );
      // 0644 as shipped (it holds no secret yet); postinst makes it 0640 root:driftwarden with dpkg-statoverride.
      put(join(pk, 'config/controller.yaml'), join(stage, 'etc/driftwarden/controller.yaml'), 0o644);
      manPage(stage, 'driftwarden-controller');
    },
    libcDepends(runtime) + ', adduser',
  );
  rmSync(runtime);
}

function walkFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walkFiles(p));
    else out.push(p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const steps = process.argv.slice(2);
const want = (s) => steps.length === 0 || steps.includes(s);
try {
  if (want('bundle')) await bundle();
  if (want('sea')) await sea();
  if (want('deb')) deb();
} catch (err) {
  process.stderr.write(`package: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
