/** @module Attribution of the new kinds from the auth log: who added the user, who enabled the unit, and nothing from before the baseline. */
import { mkdirSync, symlinkSync, appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { check } from '../../agent/commands/check.js';
import { buildManifest } from '../../agent/commands/manifest.js';
import { describeAttribution } from '../../agent/format.js';
import { silentLogger } from '../../agent/log.js';
import { parseAuthLog } from '../../agent/parsers/auth-log.js';
import { copyFixture, FIXTURES, tempDir } from '../helpers/tmp.js';

const AUTH_LOG = `2026-12-04T02:10:11.204518+00:00 web-1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/sbin/useradd -m -s /bin/bash mallory
2026-12-04T02:10:11.230001+00:00 web-1 groupadd[2411]: group added to /etc/group: name=mallory, GID=1001
2026-12-04T02:10:11.231020+00:00 web-1 useradd[2412]: new group: name=mallory, GID=1001
2026-12-04T02:10:11.240377+00:00 web-1 useradd[2412]: new user: name=mallory, UID=1001, GID=1001, home=/home/mallory, shell=/bin/bash, from=/dev/pts/0
2026-12-04T02:12:40.001000+00:00 web-1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl enable rsync
2026-12-04T02:13:02.500000+00:00 web-1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/sbin/modprobe wireguard
Dec  4 02:14:09 web-1 usermod[2501]: add 'mallory' to group 'sudo'
`;

describe('auth log parser', () => {
  it('turns shadow-utils lines and sudo commands into actions on deviation keys', () => {
    const got = parseAuthLog(AUTH_LOG, 2026).map(
      (a) => `${a.action} ${a.targets.join(',')}${a.user ? ` by ${a.user}` : ''}`,
    );
    expect(got).toEqual([
      'useradd accounts user:mallory by alice',
      'useradd accounts group:mallory',
      'useradd accounts user:mallory',
      'systemctl enable services rsync.service by alice',
      'modprobe kernel-modules wireguard by alice',
      'usermod accounts group:sudo',
    ]);
    expect(parseAuthLog(AUTH_LOG, 2026)[5]!.atMs).toBe(Date.parse('2026-12-04T02:14:09Z'));
  });
});

describe('check attributes the new kinds from the auth log', () => {
  it('names the sudo command and its user for a user added and a unit enabled, but not for drift older than the baseline', async () => {
    const root = copyFixture(join(FIXTURES, 'hosts/web'));
    const out = join(tempDir(), 'm.json');
    await buildManifest({ root, imageId: 'img', out, log: silentLogger });
    appendFileSync(join(root, 'etc/passwd'), 'mallory:x:1001:1001::/home/mallory:/bin/bash\n');
    symlinkSync(
      '/usr/lib/systemd/system/rsync.service',
      join(root, 'etc/systemd/system/multi-user.target.wants/rsync.service'),
    );
    appendFileSync(join(root, 'proc/modules'), 'wireguard 118784 0 - Live 0x0000000000000000 (OE)\n');
    mkdirSync(join(root, 'var/log'), { recursive: true });
    // The useradd line from before the baseline must not explain anything.
    // The incident happens after the bake: the log's times are moved to just after the manifest was built.
    const shift = Date.now() + 60_000 - Date.parse('2026-12-04T02:10:00Z');
    const later = AUTH_LOG.replace(
      /^(\S+?)(\+00:00)/gm,
      (_m, t: string) => new Date(Date.parse(`${t}Z`) + shift).toISOString().replace('Z', '') + '+00:00',
    );
    writeFileSync(
      join(root, 'var/log/auth.log'),
      '2026-12-03T09:00:00+00:00 web-1 sudo: bob : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/usr/sbin/useradd bob mallory\n' +
        later,
    );
    const r = await check({ manifest: out, root, log: silentLogger });
    const by = new Map(r.deviations.map((d) => [`${d.collector} ${d.key}`, d]));
    expect(by.get('accounts user:mallory')!.attribution).toMatchObject({ source: 'auth-log', action: 'useradd' });
    expect(by.get('accounts user:mallory')!.attribution!.user).not.toBe('bob');
    const enabled = by.get('services rsync.service')!.attribution!;
    expect(enabled).toMatchObject({
      source: 'auth-log',
      action: 'systemctl enable',
      commandLine: '/usr/bin/systemctl enable rsync',
      user: 'alice',
    });
    expect(describeAttribution(enabled)).toBe(
      `systemctl enable by "/usr/bin/systemctl enable rsync", run by alice at ${enabled.at} (auth log)`,
    );
    expect(by.get('kernel-modules wireguard')!.attribution).toMatchObject({ action: 'modprobe', user: 'alice' });
  });
});
