/** The demo's premise: its generated image checks clean, and each classic drift shows up as the deviations that taint. */
import { describe, expect, it } from 'vitest';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { check } from '../../agent/commands/check.js';
import { buildManifest } from '../../agent/commands/manifest.js';
import { silentLogger } from '../../agent/log.js';
import { defaultPolicy, evaluateAll } from '../../controller/policy.js';
import { DRIFTS, type DriftName } from '../../demo/drifts.js';
import { FLEET } from '../../demo/fleet.js';
import { writeSampleRoot } from '../../demo/sample-root.js';
import { tempDir } from '../helpers/tmp.js';

async function bakedImage() {
  const dir = tempDir('dw-demo-');
  const root = join(dir, 'image');
  writeSampleRoot(root);
  const manifest = join(dir, 'manifest.json');
  const built = await buildManifest({
    root,
    imageId: 'img-test',
    name: 'sample',
    version: '1',
    out: manifest,
    log: silentLogger,
  });
  return { dir, root, manifest, built };
}

describe('the demo sample image', () => {
  it('has something in every collector and checks clean against its own manifest', async () => {
    const { root, manifest, built } = await bakedImage();
    for (const collector of ['packages', 'sysctl', 'cron', 'files'] as const)
      expect(built.manifest.sections[collector]?.items.length, collector).toBeGreaterThan(0);
    const r = await check({ manifest, root, log: silentLogger });
    expect(r.complete).toBe(true);
    expect(r.deviations).toEqual([]);
  });

  const EXPECTED: Record<DriftName, string[]> = {
    'openssl-patched': [
      'files /usr/bin/openssl',
      'files /usr/lib/x86_64-linux-gnu/libssl.so.3',
      'packages libssl3:amd64',
      'packages openssl:amd64',
    ],
    'sysctl-tuned': ['files /etc/sysctl.d/99-tuning.conf', 'sysctl net.core.somaxconn'],
    'debug-session': [
      'cron /etc/cron.d/debug-trace /usr/bin/strace -f -p 1 -o /tmp/trace.log',
      'files /etc/cron.d/debug-trace',
      'files /etc/systemd/system/multi-user.target.wants',
      'files /etc/systemd/system/multi-user.target.wants/rsync.service',
      'files /usr/bin/strace',
      'packages strace:amd64',
      'services rsync.service',
    ],
  };

  it.each(Object.keys(EXPECTED) as DriftName[])(
    '%s: the deviations it causes, and the default policy taints the host',
    async (name) => {
      const { dir, root, manifest } = await bakedImage();
      const host = join(dir, name);
      cpSync(root, host, { recursive: true, verbatimSymlinks: true });
      DRIFTS[name].apply(host);
      const r = await check({ manifest, root: host, log: silentLogger });
      expect(r.deviations.map((d) => `${d.collector} ${d.key}`).sort()).toEqual(EXPECTED[name]);
      const evaluation = evaluateAll(defaultPolicy(), r.deviations, {
        hostId: 'h',
        imageId: 'img-test',
        now: new Date(),
        exemptions: [],
      });
      expect(evaluation.worst).toBe('taint');
    },
  );

  it('debug-session: the service enabled by hand is attributed to the sudo command in the auth log', async () => {
    const { dir, root, manifest } = await bakedImage();
    const host = join(dir, 'debug-session-attribution');
    cpSync(root, host, { recursive: true, verbatimSymlinks: true });
    DRIFTS['debug-session'].apply(host);
    const r = await check({ manifest, root: host, log: silentLogger });
    const enabled = r.deviations.find((d) => d.collector === 'services')!;
    expect(enabled).toMatchObject({
      key: 'rsync.service',
      change: 'modified',
      fields: ['state'],
      expected: { state: 'disabled' },
      actual: { state: 'enabled' },
    });
    expect(enabled.attribution).toMatchObject({
      source: 'auth-log',
      action: 'systemctl enable',
      user: 'deploy',
      commandLine: '/usr/bin/systemctl enable rsync',
    });
  });

  it('drifts some hosts of each group and leaves others clean, with the breaker’s 30% crossed in one group only', () => {
    const groups = [...new Set(FLEET.map((h) => h.group))];
    const shares = groups.map((group) => {
      const hosts = FLEET.filter((h) => h.group === group);
      return [group, hosts.filter((h) => h.drift).length / hosts.length] as const;
    });
    expect(shares.filter(([, s]) => s > 0.3).map(([g]) => g)).toEqual(['web']);
    expect(shares.every(([, s]) => s > 0 && s < 1)).toBe(true);
    expect(new Set(FLEET.flatMap((h) => (h.drift ? [h.drift] : [])))).toEqual(new Set(Object.keys(DRIFTS)));
  });
});
