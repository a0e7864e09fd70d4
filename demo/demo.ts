/**
 * @module `driftwarden demo`: the story on a sample image root, with no setup. Bake and sign a manifest,
 * check the untouched root (clean), drift it the way servers drift, check again, show that a tampered
 * manifest is refused, then run a controller on SQLite with three hosts reporting and watch the drifted
 * ones become drifted and tainted. Everything happens in a temporary directory that is removed after.
 * It lives outside agent/ and controller/ because it drives both.
 */
import { appendFileSync, chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { api } from '../shared/api-client.js';
import { isDwError } from '../shared/errors.js';
import { checkExitCode, check } from '../agent/commands/check.js';
import { keygen } from '../agent/commands/keygen.js';
import { buildManifest, loadVerifiedManifest } from '../agent/commands/manifest.js';
import { formatCheck } from '../agent/format.js';
import { createLogger } from '../agent/log.js';
import { reportFromCheck } from '../agent/report.js';
import { ControllerConfigSchema } from '../controller/config.js';
import { createToken } from '../controller/routes/tokens.js';
import { startController } from '../controller/server.js';
import type { HostRow, TransitionRow } from '../controller/store/types.js';

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

    const fleet = await runFleet(work, keys.publicKeyFile, keys.privateKeyFile, say, step);

    step('Done');
    say(`${drifted.summary.total} deviations found on the drifted root; in the fleet, ${fleet.tainted} host tainted, ${fleet.drifted} drifted, ${fleet.clean} clean.`);
    say('Tainted hosts are never repaired: the replacement scheduler (next to be built) replaces them within disruption budgets.');
    say(opts.keep ? `kept the demo files in ${work}` : 'removed the demo files.');
    return !drifted.clean && fleet.tainted === 1 && fleet.drifted === 1 && fleet.clean === 1 ? 0 : 1;
  } finally {
    if (!opts.keep) rmSync(work, { recursive: true, force: true });
  }
}

/** A fresh copy of the sample image as one host: its own machine-id and hostname. */
function makeHost(work: string, name: string, n: number): string {
  const root = join(work, 'hosts', name);
  cpSync(join(work, 'image'), root, { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(root, 'etc/machine-id'), `${String(n).padStart(2, '0')}${'d'.repeat(30)}\n`);
  writeFileSync(join(root, 'etc/hostname'), `${name}\n`);
  return root;
}

async function runFleet(
  work: string,
  publicKeyFile: string,
  privateKeyFile: string,
  say: (s?: string) => void,
  step: (s: string) => void,
): Promise<{ tainted: number; drifted: number; clean: number }> {
  step('6. A controller on SQLite: publish the image manifest, enroll three hosts');
  // The image of the fleet: the sample root with a login banner the policy tolerates (report, not taint).
  const image = join(work, 'image');
  cpSync(sampleRoot(), image, { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(image, 'etc/motd'), 'Authorised use only.\n');
  const manifestFile = join(work, 'fleet-manifest.json');
  const log = createLogger('error');
  await buildManifest({ root: image, imageId: 'img-web-1.1.0', name: 'web', version: '1.1.0', signKey: privateKeyFile, out: manifestFile, log });
  writeFileSync(join(work, 'policy.yaml'), 'rules:\n  - name: login banner\n    collector: files\n    key: /etc/motd\n    action: report\n    severity: low\n');
  const config = ControllerConfigSchema.parse({
    listen: '127.0.0.1:0',
    store: `sqlite:${join(work, 'controller', 'controller.db')}`,
    trustedKeys: [publicKeyFile],
    policy: join(work, 'policy.yaml'),
  });
  const ctl = await startController(config, { log: pino({ level: 'silent' }) });
  try {
    const admin = await ctl.store.transaction((tx) => createToken(tx, { name: 'demo-admin', role: 'admin' }, 'demo', new Date()));
    const enrollment = await ctl.store.transaction((tx) => createToken(tx, { name: 'demo-enroll', role: 'agent' }, 'demo', new Date()));
    const asAdmin = { url: ctl.url, token: admin.secret };
    say(`controller at ${ctl.url}, store ${config.store}`);
    const published = await api<{ digest: string; signedBy: string }>(asAdmin, 'POST', '/api/v1/manifests', { manifest: JSON.parse(readFileSync(manifestFile, 'utf8')) });
    say(`$ driftwarden manifest publish fleet-manifest.json   -> image img-web-1.1.0, signature by ${published.signedBy} checked`);

    const hosts = ['web-1', 'web-2', 'web-3'].map((name, i) => ({ name, root: makeHost(work, name, i + 1), credential: '', seq: 0, id: '' }));
    for (const h of hosts) {
      const first = await check({ manifest: manifestFile, root: h.root, log });
      h.id = first.host.hostId;
      const enrolled = await api<{ credential: string }>({ url: ctl.url, token: enrollment.secret }, 'POST', '/api/v1/enroll', { hostId: h.id, hostname: h.name, imageId: 'img-web-1.1.0', group: 'web' });
      h.credential = enrolled.credential;
      await api({ url: ctl.url, token: h.credential }, 'POST', '/api/v1/reports', reportFromCheck(first, { seq: ++h.seq, group: 'web' }));
    }
    say('three hosts enrolled (each gets its own credential) and sent their first scan: all clean');

    step('7. web-2 is patched by hand; someone edits the login banner on web-3');
    for (const d of driftSampleRoot(hosts[1]!.root)) say(`  web-2: ${d}`);
    writeFileSync(join(hosts[2]!.root, 'etc/motd'), 'Authorised use only. Maintenance tonight.\n');
    say('  web-3: /etc/motd edited (policy: report, do not taint)');
    for (const h of hosts) {
      const r = await check({ manifest: manifestFile, root: h.root, log });
      await api({ url: ctl.url, token: h.credential }, 'POST', '/api/v1/reports', reportFromCheck(r, { seq: ++h.seq, group: 'web' }));
    }

    step('8. What the security team sees');
    const list = await api<{ hosts: HostRow[] }>(asAdmin, 'GET', '/api/v1/hosts');
    say('$ driftwarden hosts');
    say(['HOSTNAME'.padEnd(8), 'STATE'.padEnd(8), 'DEVIATIONS'].join('  '));
    for (const h of list.hosts) say([String(h.hostname).padEnd(8), h.state.padEnd(8), String(h.deviationCount)].join('  '));
    const detail = await api<{ timeline: { transitions: TransitionRow[] } }>(asAdmin, 'GET', `/api/v1/hosts/${hosts[1]!.id}`);
    say('\n$ driftwarden report web-2   (timeline)');
    for (const t of detail.timeline.transitions) say(`  ${t.from ?? '(new)'} -> ${t.to}: ${t.cause}`);
    say('\nrevert the change on web-2 and it stays tainted: taint is sticky, only replacement ends it.');
    const count = (s: string) => list.hosts.filter((h) => h.state === s).length;
    return { tainted: count('tainted'), drifted: count('drifted'), clean: count('clean') };
  } finally {
    await ctl.close();
  }
}
