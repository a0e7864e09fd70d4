/**
 * The bake default writes the manifest into the image it describes (/etc/driftwarden/manifest.json,
 * under the /etc file root): the manifest must not count itself, or every host would drift at once.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { copyFixture, FIXTURES, tempDir } from '../helpers/tmp.js';

const BIN = fileURLToPath(new URL('../../bin/driftwarden.js', import.meta.url));

function dw(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'error' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('a manifest written inside the root it describes', () => {
  it('ignores its own file and signature, records that, and the root checks clean; other changes there still show', () => {
    const root = copyFixture(join(FIXTURES, 'hosts/web'));
    const keys = tempDir();
    expect(dw('keygen', '--out', keys).code).toBe(0);
    mkdirSync(join(root, 'etc/driftwarden'), { recursive: true });
    const manifest = join(root, 'etc/driftwarden/manifest.json');
    const build = dw(
      'manifest',
      'build',
      '--root',
      root,
      '--image-id',
      'ami-in-root',
      '--sign-key',
      join(keys, 'bake.key'),
      '--out',
      manifest,
    );
    expect(build.stderr).toBe('');
    expect(build.code).toBe(0);
    const rules = (JSON.parse(readFileSync(manifest, 'utf8')) as { rules: { files: { ignore: string[] } } }).rules;
    expect(rules.files.ignore).toEqual(
      expect.arrayContaining(['/etc/driftwarden/manifest.json', '/etc/driftwarden/manifest.json.sig']),
    );

    const check = dw('check', '--root', root, '--manifest', manifest, '--pubkey', join(keys, 'bake.pub'), '--json');
    expect(check.stderr).toBe('');
    expect(JSON.parse(check.stdout).deviations).toEqual([]);
    expect(check.code).toBe(0);

    writeFileSync(join(root, 'etc/driftwarden/agent.yaml'), 'root: /\n');
    const drift = dw('check', '--root', root, '--manifest', manifest, '--pubkey', join(keys, 'bake.pub'), '--json');
    expect(drift.code).toBe(1);
    expect(JSON.parse(drift.stdout).deviations.map((d: { key: string }) => d.key)).toEqual([
      '/etc/driftwarden/agent.yaml',
    ]);
  });
});
