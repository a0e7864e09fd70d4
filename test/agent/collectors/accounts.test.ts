/** @module The accounts collector on the web fixture: users, groups, sudoers and ssh keys, and never a secret. */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { accounts } from '../../../agent/collectors/accounts.js';
import { diffSection } from '../../../shared/diff.js';
import { AccountItemSchema } from '../../../shared/schema/items.js';
import { append, ctx, put, WEB, webCopy } from './new-collectors.helpers.js';

describe('accounts collector', () => {
  it('records users with their password state (not the hash), groups, sudoers rules and keys by fingerprint', async () => {
    const { items, warnings } = await accounts.collect(ctx(WEB));
    expect(warnings).toEqual([]);
    for (const i of items) AccountItemSchema.parse(i);
    const byKey = new Map(items.map((i) => [i.key, i]));
    expect(byKey.get('user:alice')).toEqual({
      key: 'user:alice',
      kind: 'user',
      uid: 1000,
      gid: 1000,
      home: '/home/alice',
      shell: '/bin/bash',
      gecos: 'Alice Ops,,,',
      password: 'set',
      passwordChanged: '19810',
    });
    expect(byKey.get('group:sudo')).toEqual({ key: 'group:sudo', kind: 'group', gid: 27, members: ['alice'] });
    expect(byKey.get('sudoers:/etc/sudoers')!.rules).toContain('%sudo ALL=(ALL:ALL) ALL');
    expect(items.filter((i) => i.kind === 'key').map((i) => i.key)).toEqual([
      'key:alice:SHA256:LpfQJdsGwEwmkPwCjAvf7SZOMhlHiPRep/xdviGhbvg',
      'key:alice:SHA256:RvOHLbo7xGHDseoCskA7+crug915J1l/R8ZOI8gOjts',
    ]);
    const text = JSON.stringify(items);
    const hash = readFileSync(join(WEB, 'etc/shadow'), 'utf8').match(/alice:([^:]+)/)![1]!;
    expect(text).not.toContain(hash);
    expect(text).not.toContain('AAAAC3NzaC1lZDI1NTE5');
    expect(text).not.toContain('alice@laptop');
  });

  it('sees a user added by useradd, put in sudo, given a key and a NOPASSWD rule', async () => {
    const before = (await accounts.collect(ctx(WEB))).items;
    const root = webCopy();
    append(root, 'etc/passwd', 'mallory:x:1001:1001::/home/mallory:/bin/bash\n');
    append(root, 'etc/shadow', 'mallory:$y$j9T$x$y:20400:0:99999:7:::\n');
    append(root, 'etc/group', 'mallory:x:1001:\n');
    put(
      root,
      'etc/group',
      readFileSync(join(root, 'etc/group'), 'utf8').replace('sudo:x:27:alice', 'sudo:x:27:alice,mallory'),
    );
    put(root, 'etc/sudoers.d/90-incident', 'mallory ALL=(ALL) NOPASSWD: ALL\n');
    put(
      root,
      'home/mallory/.ssh/authorized_keys',
      readFileSync(join(WEB, 'home/alice/.ssh/authorized_keys'), 'utf8').split('\n')[0] + '\n',
    );
    const devs = diffSection('accounts', before, (await accounts.collect(ctx(root))).items);
    expect(devs.map((d) => `${d.change} ${d.key} ${d.severity}`)).toEqual([
      'added group:mallory high',
      'modified group:sudo critical',
      'added key:mallory:SHA256:LpfQJdsGwEwmkPwCjAvf7SZOMhlHiPRep/xdviGhbvg critical',
      'added sudoers:/etc/sudoers.d/90-incident critical',
      'added user:mallory critical',
    ]);
  });

  it('sees a password locked or set, not what it is', async () => {
    const before = (await accounts.collect(ctx(WEB))).items;
    const root = webCopy();
    put(
      root,
      'etc/shadow',
      readFileSync(join(root, 'etc/shadow'), 'utf8').replace('root:*:19800', 'root:$y$j9T$new$hash:20400'),
    );
    const devs = diffSection('accounts', before, (await accounts.collect(ctx(root))).items);
    expect(devs).toHaveLength(1);
    expect(devs[0]).toMatchObject({
      key: 'user:root',
      fields: ['password', 'passwordChanged'],
      expected: { password: 'disabled' },
      actual: { password: 'set', passwordChanged: '20400' },
    });
  });

  it('fails without etc/passwd: a host always has one, so its absence is not "no users"', async () => {
    const root = webCopy();
    rmSync(join(root, 'etc/passwd'));
    await expect(accounts.collect(ctx(root))).rejects.toThrow('/etc/passwd not found under the root');
  });
});
