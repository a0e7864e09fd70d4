import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyDeviations, diffSection } from '../../shared/diff.js';
import { digestOf } from '../../shared/canonical.js';
import type { FileItem, PackageItem } from '../../shared/schema/items.js';

const pkg = (name: string, version: string, state = 'installed'): PackageItem => ({
  key: `${name}:amd64`,
  manager: 'dpkg',
  name,
  arch: 'amd64',
  version,
  state,
});

describe('diffSection', () => {
  it('finds added, removed and modified items, naming the changed fields', () => {
    const expected = [pkg('bash', '5.2.15-2'), pkg('curl', '7.88.1-10'), pkg('openssl', '3.0.11-1')];
    const actual = [pkg('bash', '5.2.15-2'), pkg('openssl', '3.0.11-1+local'), pkg('strace', '6.1-0.1')];
    const devs = diffSection('packages', expected, actual);
    expect(devs.map((d) => [d.key, d.change, d.fields])).toEqual([
      ['curl:amd64', 'removed', undefined],
      ['openssl:amd64', 'modified', ['version']],
      ['strace:amd64', 'added', undefined],
    ]);
    expect(devs[1]!.expected).toMatchObject({ version: '3.0.11-1' });
    expect(devs[1]!.actual).toMatchObject({ version: '3.0.11-1+local' });
    expect(devs[1]!.actual).not.toHaveProperty('key');
  });

  it('marks a binary replaced under /usr/bin and a setuid bit gained as critical', () => {
    const f = (key: string, mode: string, sha: string): FileItem => ({
      key,
      type: 'file',
      mode,
      uid: 0,
      gid: 0,
      size: 1,
      sha256: sha.repeat(64),
    });
    const devs = diffSection(
      'files',
      [f('/usr/bin/ls', '0755', 'a'), f('/etc/motd', '0644', 'a')],
      [f('/usr/bin/ls', '0755', 'b'), f('/etc/motd', '4755', 'a')],
    );
    expect(devs.map((d) => [d.key, d.severity])).toEqual([
      ['/etc/motd', 'critical'],
      ['/usr/bin/ls', 'critical'],
    ]);
  });

  it('applying the deviations to the expected section gives the actual section (the digest contract)', () => {
    const item = fc.record({
      name: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'),
      version: fc.constantFrom('1', '2', '3'),
    });
    const section = fc
      .uniqueArray(item, { selector: (i) => i.name })
      .map((xs) => xs.map((x) => pkg(x.name, x.version)).sort((a, b) => (a.key < b.key ? -1 : 1)));
    fc.assert(
      fc.property(section, section, (expected, actual) => {
        const devs = diffSection('packages', expected, actual);
        expect(digestOf(applyDeviations('packages', expected, devs))).toBe(digestOf(actual));
        expect(devs.length === 0).toBe(digestOf(expected) === digestOf(actual));
      }),
    );
  });
});
