import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOsRelease, readHostId, readHostname, readInventory, readOs } from '../../agent/identity.js';
import { HostRoot } from '../../agent/root.js';
import { InventorySchema } from '../../shared/schema/report.js';
import { copyFixture, FIXTURES, tempDir } from '../helpers/tmp.js';

describe('host identity', () => {
  it('comes from the root: machine-id, hostname and os-release', async () => {
    const root = new HostRoot(copyFixture(join(FIXTURES, 'hosts/web')));
    expect(await readHostId(root)).toBe('0123456789abcdef0123456789abcdef');
    expect(await readHostname(root)).toBe('web-1');
    expect(await readOs(root)).toEqual({ id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' });
    const inv = await readInventory(root, '0123456789abcdef0123456789abcdef');
    expect(inv).toEqual({
      hostId: '0123456789abcdef0123456789abcdef',
      hostname: 'web-1',
      os: 'Debian GNU/Linux 12 (bookworm)',
      kernel: null,
      addresses: [],
    });
  });

  it('without a machine-id, is generated once, kept 0600 in the state directory, and reused', async () => {
    const root = new HostRoot(tempDir());
    const state = join(tempDir(), 'state');
    expect(await readHostId(root)).toBeNull();
    const id = await readHostId(root, state);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(await readHostId(root, state)).toBe(id);
    expect(statSync(join(state, 'host-id')).mode & 0o777).toBe(0o600);
  });

  it('ignores a malformed machine-id rather than trusting it', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'etc/machine-id'), 'uninitialized\n');
    expect(await readHostId(new HostRoot(dir))).toBeNull();
  });

  it('sends only what the controller takes: a hostname that is not RFC 1123 as null, other names without control characters', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    for (const bad of ['web_1', 'a'.repeat(300), '-rf', 'web\u00001']) {
      writeFileSync(join(dir, 'etc/hostname'), `${bad}\n`);
      writeFileSync(join(dir, 'etc/os-release'), 'PRETTY_NAME="Debian\u0085\u0007 12"\n');
      const inv = await readInventory(new HostRoot(dir), 'x');
      expect(inv.hostname, bad).toBeNull();
      expect(InventorySchema.parse(inv).os).toBe('Debian   12');
    }
  });

  it('on the live root, reads the kernel and addresses through systeminformation', async () => {
    const inv = await readInventory(new HostRoot('/'), 'x');
    expect(inv.kernel).toBe(readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
  });
});

describe('parseOsRelease', () => {
  it('unquotes values and falls back sensibly', () => {
    expect(
      parseOsRelease('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'),
    ).toEqual({ id: 'alpine', versionId: '3.19.1', prettyName: 'Alpine Linux v3.19' });
    expect(parseOsRelease('ID=fedora\r\nVERSION_ID=40\r\n')).toEqual({
      id: 'fedora',
      versionId: '40',
      prettyName: 'fedora',
    });
    expect(parseOsRelease('# nothing here\n')).toBeNull();
  });

  it('never throws on arbitrary input', () => {
    fc.assert(fc.property(fc.string(), (s) => void parseOsRelease(s)));
  });
});
