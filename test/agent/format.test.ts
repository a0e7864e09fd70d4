/** @module The attribution line of the human output: one sentence a reviewer reads under a deviation. */
import { describe, expect, it } from 'vitest';
import { describeAttribution } from '../../agent/format.js';

describe('describeAttribution', () => {
  it('says what ran, who ran it and when, and where that was read', () => {
    expect(
      describeAttribution({
        source: 'apt-history',
        at: '2024-03-01T02:14:07',
        action: 'install',
        package: 'strace:amd64',
        toVersion: '6.1-0.1',
        commandLine: 'apt-get install strace',
        user: 'alice (1000)',
      }),
    ).toBe('installed by "apt-get install strace", run by alice (1000) at 2024-03-01 02:14:07 (apt history)');
  });

  it('names the owning package and its versions for a file', () => {
    expect(
      describeAttribution({
        source: 'apt-history',
        at: '2024-03-02T09:00:01+01:00',
        action: 'upgrade',
        package: 'openssl:amd64',
        fromVersion: '3.0.11',
        toVersion: '3.0.13',
        commandLine: 'apt-get upgrade',
        ownedBy: 'openssl',
      }),
    ).toBe(
      'owned by openssl, upgraded 3.0.11 -> 3.0.13 by "apt-get upgrade" at 2024-03-02 09:00:01 +01:00 (apt history)',
    );
  });

  it('says only what the source knows', () => {
    expect(
      describeAttribution({
        source: 'dpkg-log',
        at: '2024-03-04T12:00:00+00:00',
        action: 'upgrade',
        package: 'curl:amd64',
      }),
    ).toBe('upgraded at 2024-03-04 12:00:00 +00:00 (dpkg.log)');
    expect(
      describeAttribution({ source: 'rpm', at: '2024-03-01T01:14:07Z', action: 'install', package: 'strace:x86_64' }),
    ).toBe('installed at 2024-03-01 01:14:07 UTC (rpm database)');
    expect(
      describeAttribution({
        source: 'dpkg-log',
        at: '2024-03-01T00:00:00',
        action: 'purge',
        package: 'x',
        user: 'bob (1001)',
      }),
    ).toBe('purged, run by bob (1001) at 2024-03-01 00:00:00 (dpkg.log)');
  });

  it('never lets a logged command line drive the terminal', () => {
    const line = describeAttribution({
      source: 'apt-history',
      at: '2024-03-01T00:00:00',
      action: 'install',
      package: 'x',
      commandLine: 'apt-get install x\u001b[2J\u0007',
      user: 'eve\r(0)',
    });
    expect(line).toBe(
      'installed by "apt-get install x\\x1b[2J\\x07", run by eve\\x0d(0) at 2024-03-01 00:00:00 (apt history)',
    );
  });
});
