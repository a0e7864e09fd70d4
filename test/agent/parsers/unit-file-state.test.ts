/** @module The [Install] fold and the unit-state rules of systemd's install.c, on plain descriptions of a search path. */
import { describe, expect, it } from 'vitest';
import { parseUnitFile } from '../../../agent/parsers/systemd-timer.js';
import {
  installSection,
  templateOf,
  unitFileState,
  type FoundUnit,
  type SearchDir,
} from '../../../agent/parsers/unit-file-state.js';
import { CronItemSchema } from '../../../shared/schema/items.js';

const install = (text: string) => installSection(parseUnitFile(text, '/usr/lib/systemd/system/x.timer'));
const NONE = install('');

describe('installSection', () => {
  it('splits list settings on blanks, accumulates them, and resets on an empty assignment', () => {
    expect(
      install(
        '[Install]\nWantedBy=timers.target  multi-user.target\nWantedBy=\nWantedBy=timers.target\nAlias=a.timer b.timer\nAlso=x.socket\nDefaultInstance=root\n',
      ),
    ).toEqual({
      wantedBy: ['timers.target'],
      requiredBy: [],
      upheldBy: [],
      alias: ['a.timer', 'b.timer'],
      also: ['x.socket'],
      defaultInstance: 'root',
    });
  });

  it('reads only the [Install] section', () => {
    expect(install('[Timer]\nWantedBy=timers.target\n[Unit]\nAlso=x\n')).toEqual(NONE);
  });
});

describe('unitFileState', () => {
  const dir = (path: string, wantsLinks: string[] = [], links: { name: string; target: string }[] = []): SearchDir => ({
    path,
    wantsLinks,
    links,
  });
  const unit = (over: Partial<FoundUnit> = {}): FoundUnit => ({
    name: 'x.timer',
    dir: '/usr/lib/systemd/system',
    path: '/usr/lib/systemd/system/x.timer',
    masked: false,
    aliasOf: null,
    install: NONE,
    ...over,
  });
  const etc = '/etc/systemd/system';
  const vendor = '/usr/lib/systemd/system';

  it('a vendor link to a unit without [Install] is static; with [Install] it is disabled; an /etc link enables either', () => {
    expect(unitFileState(unit(), [dir(etc), dir(vendor, ['x.timer'])])).toBe('static');
    expect(
      unitFileState(unit({ install: install('[Install]\nWantedBy=timers.target\n') }), [
        dir(etc),
        dir(vendor, ['x.timer']),
      ]),
    ).toBe('disabled');
    expect(unitFileState(unit(), [dir(etc, ['x.timer']), dir(vendor)])).toBe('enabled');
  });

  it('a link under /run is enabled-runtime, a mask under /run masked-runtime', () => {
    expect(unitFileState(unit(), [dir(etc), dir('/run/systemd/system', ['x.timer']), dir(vendor)])).toBe(
      'enabled-runtime',
    );
    expect(unitFileState(unit({ masked: true, dir: '/run/systemd/system' }), [])).toBe('masked-runtime');
    expect(unitFileState(unit({ masked: true, dir: etc }), [])).toBe('masked');
  });

  it('an instance linked from a vendor directory is statically enabled', () => {
    expect(unitFileState(unit({ name: 'getty@tty1.timer' }), [dir(etc), dir(vendor, ['getty@tty1.timer'])])).toBe(
      'static',
    );
  });

  it('a template is enabled through its DefaultInstance, indirect through another instance', () => {
    const t = { name: 'scrub@.timer', path: `${vendor}/scrub@.timer` };
    const wanted = install('[Install]\nWantedBy=timers.target\nDefaultInstance=root\n');
    expect(unitFileState(unit({ ...t, install: wanted }), [dir(etc, ['scrub@root.timer'])])).toBe('enabled');
    expect(unitFileState(unit({ ...t, install: wanted }), [dir(etc, ['scrub@home.timer'])])).toBe('indirect');
  });

  it('a same-name link in /etc to a file outside the search path is linked; one to another name is an alias', () => {
    expect(
      unitFileState(unit({ dir: etc, path: '/opt/app/x.timer' }), [
        dir(etc, [], [{ name: 'x.timer', target: 'x.timer' }]),
      ]),
    ).toBe('linked');
    expect(unitFileState(unit({ dir: etc, aliasOf: 'y.timer' }), [])).toBe('alias');
  });

  it('units in generator and transient directories say so', () => {
    expect(
      unitFileState(unit({ dir: '/run/systemd/generator.late', path: '/run/systemd/generator.late/x.timer' }), []),
    ).toBe('generated');
    expect(unitFileState(unit({ dir: '/run/systemd/transient', path: '/run/systemd/transient/x.timer' }), [])).toBe(
      'transient',
    );
  });

  it('templateOf maps an instance to its template and nothing else', () => {
    expect(templateOf('getty@tty1.timer')).toBe('getty@.timer');
    expect(templateOf('getty@.timer')).toBeNull();
    expect(templateOf('plain.timer')).toBeNull();
  });
});

describe('the cron item schema', () => {
  it('refuses the enabled boolean of older manifests, saying what replaced it', () => {
    const r = CronItemSchema.safeParse({
      key: '/usr/lib/systemd/system/x.timer',
      kind: 'timer',
      file: '/usr/lib/systemd/system/x.timer',
      enabled: true,
    });
    expect(r.success).toBe(false);
    expect(r.error!.issues).toMatchObject([
      { path: ['enabled'], message: expect.stringContaining('replaced by `state`') },
    ]);
  });

  it('takes only the states systemctl names', () => {
    const item = (state: string) =>
      CronItemSchema.safeParse({ key: '/x.timer', kind: 'timer', file: '/x.timer', state }).success;
    expect(item('static')).toBe(true);
    expect(item('enabled-runtime')).toBe(true);
    expect(item('on')).toBe(false);
  });
});
