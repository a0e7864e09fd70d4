/** @module The host's time zone from its root, and local log times placed as instants (or honestly not). */
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  fixedZoneFromPosix,
  instantToIso,
  isAfter,
  localToIso,
  localToUtcMs,
  readHostZone,
  UTC,
  type HostZone,
} from '../../agent/host-time.js';
import { localTime } from '../../agent/parsers/local-time.js';
import { HostRoot } from '../../agent/root.js';
import { tempDir } from '../helpers/tmp.js';

const BERLIN: HostZone = { kind: 'iana', name: 'Europe/Berlin' };
const UNKNOWN: HostZone = { kind: 'unknown' };

describe('local times', () => {
  it('validates calendar dates and times', () => {
    expect(localTime('2024-02-29', '23:59:59')).toBe('2024-02-29 23:59:59');
    expect(localTime('2024-02-30', '10:00:00')).toBeNull();
    expect(localTime('2024-1-01', '10:00:00')).toBeNull();
    expect(localTime('2024-01-01', '24:00:00')).toBeNull();
    expect(localTime('2024-01-01', '10:00')).toBeNull();
  });

  it('places a local time in a named zone, summer and winter', () => {
    expect(localToIso('2024-03-01 02:14:07', BERLIN)).toBe('2024-03-01T02:14:07+01:00');
    expect(localToIso('2024-07-01 02:14:07', BERLIN)).toBe('2024-07-01T02:14:07+02:00');
    expect(localToUtcMs('2024-07-01 02:14:07', BERLIN)).toBe(Date.parse('2024-07-01T00:14:07Z'));
    expect(localToIso('2024-03-01 02:14:07', UTC)).toBe('2024-03-01T02:14:07+00:00');
    expect(localToIso('2024-03-01 02:14:07', { kind: 'fixed', name: 'IST-5:30', offsetMinutes: 330 })).toBe(
      '2024-03-01T02:14:07+05:30',
    );
  });

  it('leaves a local time local when the zone is unknown, rather than guess', () => {
    expect(localToIso('2024-03-01 02:14:07', UNKNOWN)).toBe('2024-03-01T02:14:07');
    expect(localToUtcMs('2024-03-01 02:14:07', UNKNOWN)).toBeUndefined();
  });

  it('tells after from before across zones, and says "cannot tell" within a day when the zone is unknown', () => {
    const since = Date.parse('2024-02-01T00:00:00Z');
    // 00:30 in Berlin is 23:30 UTC the day before: before the baseline, though it reads later.
    expect(isAfter('2024-02-01 00:30:00', BERLIN, since)).toBe(false);
    expect(isAfter('2024-02-01 01:30:00', BERLIN, since)).toBe(true);
    expect(isAfter('2024-02-01 00:30:00', UNKNOWN, since)).toBeUndefined();
    expect(isAfter('2024-02-02 00:30:00', UNKNOWN, since)).toBe(true);
    expect(isAfter('2024-01-31 11:00:00', UNKNOWN, since)).toBe(false);
  });

  it('shows an instant on the host clock', () => {
    expect(instantToIso(Date.parse('2024-03-01T01:14:07Z'), BERLIN)).toBe('2024-03-01T02:14:07+01:00');
    expect(instantToIso(Date.parse('2024-03-01T01:14:07Z'), UNKNOWN)).toBe('2024-03-01T01:14:07+00:00');
  });

  it('reads fixed offsets from POSIX TZ strings and refuses DST rules', () => {
    expect(fixedZoneFromPosix('UTC0')).toEqual({ kind: 'fixed', name: 'UTC0', offsetMinutes: 0 });
    expect(fixedZoneFromPosix('<+03>-3')).toEqual({ kind: 'fixed', name: '<+03>-3', offsetMinutes: 180 });
    expect(fixedZoneFromPosix('EST5')).toEqual({ kind: 'fixed', name: 'EST5', offsetMinutes: -300 });
    expect(fixedZoneFromPosix('CET-1CEST,M3.5.0,M10.5.0/3')).toBeNull();
  });
});

describe('readHostZone', () => {
  const root = (setup: (dir: string) => void) => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    setup(dir);
    return new HostRoot(dir);
  };

  it('names the zone /etc/localtime links to, even when the link dangles in a mounted image', async () => {
    expect(
      await readHostZone(root((d) => symlinkSync('/usr/share/zoneinfo/America/New_York', join(d, 'etc/localtime')))),
    ).toEqual({ kind: 'iana', name: 'America/New_York' });
    expect(
      await readHostZone(root((d) => symlinkSync('../usr/share/zoneinfo/posix/Asia/Tokyo', join(d, 'etc/localtime')))),
    ).toEqual({ kind: 'iana', name: 'Asia/Tokyo' });
  });

  it('falls back to /etc/timezone, and to UTC when there is no /etc/localtime (as glibc does)', async () => {
    expect(await readHostZone(root((d) => writeFileSync(join(d, 'etc/timezone'), 'Europe/Berlin\n')))).toEqual(BERLIN);
    expect(await readHostZone(root(() => undefined))).toEqual(UTC);
  });

  it('reads a copied TZif file with a fixed offset, and says unknown for anything else', async () => {
    const utcFile = ['/usr/share/zoneinfo/Etc/UTC', '/usr/share/zoneinfo/UTC'].find((f) => existsSync(f));
    if (utcFile)
      expect(
        await readHostZone(root((d) => writeFileSync(join(d, 'etc/localtime'), readFileSync(utcFile)))),
      ).toMatchObject({ kind: 'fixed', offsetMinutes: 0 });
    expect(await readHostZone(root((d) => writeFileSync(join(d, 'etc/localtime'), 'not a tzif file')))).toEqual(
      UNKNOWN,
    );
    expect(await readHostZone(root((d) => writeFileSync(join(d, 'etc/timezone'), 'Not/AZone\n')))).toEqual(UTC);
  });
});
