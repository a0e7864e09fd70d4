/**
 * @module `driftwarden demo`: the story on a sample image root, with no setup. Bake and sign a manifest,
 * check the untouched root (clean), drift it the way servers drift, check again, and show that a
 * tampered manifest is refused. Everything happens in a temporary directory that is removed after.
 */
import { appendFileSync, chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDwError } from '../shared/errors.js';
import { checkExitCode, check } from './commands/check.js';
import { keygen } from './commands/keygen.js';
import { buildManifest, loadVerifiedManifest } from './commands/manifest.js';
import { formatCheck } from './format.js';
import { createLogger } from './log.js';

/** The sample image root ships with the sources (it is also the end-to-end test's fixture). */
function sampleRoot(): string {
  for (const rel of ['../test/fixtures/hosts/web', '../../test/fixtures/hosts/web']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(dir, 'var/lib/dpkg/status'))) return dir;
  }
  throw new Error('the sample image root (test/fixtures/hosts/web) is not beside this build; run the demo from a source checkout');
}

/** The classic drifts: each one something a person did to a running server. */
export function driftSampleRoot(root: string): string[] {
  const status = join(root, 'var/lib/dpkg/status');
  writeFileSync(status, readFileSync(status, 'utf8').replace('Package: openssl\nStatus: install ok installed\nPriority: optional\nSection: utils\nInstalled-Size: 2288\nMaintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>\nArchitecture: amd64\nVersion: 3.0.11-1~deb12u2', 'Package: openssl\nStatus: install ok installed\nPriority: optional\nSection: utils\nInstalled-Size: 2288\nMaintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>\nArchitecture: amd64\nVersion: 3.0.13-1~deb12u1'));
  writeFileSync(join(root, 'usr/bin/openssl'), '#!/bin/sh\necho openssl 3.0.13 patched by hand\n');
  appendFileSync(status, '\nPackage: strace\nStatus: install ok installed\nPriority: optional\nSection: utils\nArchitecture: amd64\nVersion: 6.1-0.1\nDescription: System call tracer\n');
  writeFileSync(join(root, 'usr/bin/strace'), '#!/bin/sh\necho strace\n', { mode: 0o755 });
  writeFileSync(join(root, 'proc/sys/net/ipv4/ip_forward'), '1\n');
  writeFileSync(join(root, 'etc/cron.d/debug-dump'), '*/5 * * * * root /usr/bin/strace -p 1 -o /tmp/trace\n');
  chmodSync(join(root, 'etc/ssh/sshd_config'), 0o666);
  unlinkSync(join(root, 'opt/app/bin/start'));
  writeFileSync(join(root, 'etc/resolv.conf'), 'nameserver 192.0.2.53\n');
  return [
    'openssl upgraded in place (dpkg database and /usr/bin/openssl)',
    'strace installed (a debugging tool left behind)',
    'net.ipv4.ip_forward tuned to 1 during an incident',
    'a cron job added in /etc/cron.d/debug-dump',
    '/etc/ssh/sshd_config made world-writable',
    '/opt/app/bin/start removed',
    '/etc/resolv.conf rewritten (ignored by default: hosts rewrite it themselves)',
  ];
}

export async function runDemo(opts: { keep?: boolean } = {}): Promise<number> {
  const say = (s = '') => process.stdout.write(s + '\n');
  const color = Boolean(process.stdout.isTTY);
  const step = (s: string) => say(color ? `\n\x1b[1m== ${s}\x1b[0m` : `\n== ${s}`);
  const work = mkdtempSync(join(tmpdir(), 'driftwarden-demo-'));
  const log = createLogger('error');
  try {
    const root = join(work, 'image-root');
    cpSync(sampleRoot(), root, { recursive: true, verbatimSymlinks: true });
    const manifestFile = join(work, 'manifest.json');

    step('1. Bake: sign a manifest of the sample image root');
    const keys = keygen({ out: join(work, 'keys'), name: 'bake' });
    say(`key pair ${keys.keyId}: ${keys.privateKeyFile} (stays with the build), ${keys.publicKeyFile} (goes to the controller)`);
    const built = await buildManifest({ root, imageId: 'img-web-1.0.0', name: 'web', version: '1.0.0', signKey: keys.privateKeyFile, out: manifestFile, log });
    say(`$ driftwarden manifest build --root ${root} --image-id img-web-1.0.0 --sign-key bake.key --out manifest.json`);
    say(`recorded ${built.items} items: ${Object.entries(built.manifest.sections).map(([k, s]) => `${k} ${s?.items.length}`).join(', ')}`);
    say(`digest ${built.manifest.digests.overall}`);

    step('2. A host boots from the image: check it against the manifest');
    const clean = await check({ manifest: manifestFile, root, pubkeys: [keys.publicKeyFile], log });
    say(`$ driftwarden check --manifest manifest.json --root ${root} --pubkey bake.pub   (exit ${checkExitCode(clean)})`);
    say(formatCheck(clean, color).trimEnd());

    step('3. Weeks later, the host has drifted');
    for (const d of driftSampleRoot(root)) say(`  - ${d}`);

    step('4. Check again: every change is found, the ignored one is not');
    const drifted = await check({ manifest: manifestFile, root, pubkeys: [keys.publicKeyFile], log });
    say(`$ driftwarden check --manifest manifest.json --root ${root} --pubkey bake.pub   (exit ${checkExitCode(drifted)})`);
    say(formatCheck(drifted, color).trimEnd());

    step('5. A host cannot rewrite its own baseline: a tampered manifest is refused');
    const m = JSON.parse(readFileSync(manifestFile, 'utf8'));
    // Bless the hand-patched binary by writing its hash into the baseline.
    const patched = drifted.deviations.find((d) => d.key === '/usr/bin/openssl');
    const item = m.sections.files.items.find((i: { key: string }) => i.key === '/usr/bin/openssl');
    item.sha256 = patched?.actual?.sha256;
    item.size = patched?.actual?.size;
    writeFileSync(manifestFile, JSON.stringify(m));
    try {
      loadVerifiedManifest(manifestFile, { pubkeys: [keys.publicKeyFile] });
      say('!! the tampered manifest was accepted');
      return 1;
    } catch (err) {
      if (!isDwError(err)) throw err;
      say(`$ driftwarden manifest verify manifest.json --pubkey bake.pub   (exit ${err.exitCode})`);
      say(`driftwarden: ${err.message}`);
    }

    step('Done');
    say(`${drifted.summary.total} deviations found on the drifted host; the controller (coming next) will taint it and schedule its replacement.`);
    say(opts.keep ? `kept the demo files in ${work}` : 'removed the demo files.');
    return drifted.clean ? 1 : 0;
  } finally {
    if (!opts.keep) rmSync(work, { recursive: true, force: true });
  }
}
