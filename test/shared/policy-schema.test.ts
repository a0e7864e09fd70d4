/** @module Policy file schema, key globs and exemption requests. */
import { describe, expect, it } from 'vitest';
import {
  catchAllCollector,
  compileKeyGlobs,
  DEFAULT_POLICY,
  exemptionRequestSchema,
  ExemptionRequestSchema,
  globProblem,
  keyStyleOf,
  MAX_EXEMPTION_MS,
  PolicyFileSchema,
  PolicyRuleSchema,
} from '../../shared/schema/policy.js';

const messages = (r: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }) =>
  (r.error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);

describe('policy rule schema', () => {
  it('accepts a minimal rule and leaves name, change and severity optional', () => {
    const r = PolicyRuleSchema.parse({ collector: 'files', key: '/usr/**', action: 'taint' });
    expect(r).toEqual({ collector: 'files', key: '/usr/**', action: 'taint' });
  });

  it('accepts a list of globs, a change filter and a severity', () => {
    const r = PolicyRuleSchema.parse({
      name: 'x',
      collector: '*',
      key: ['/a/**', 'b:*'],
      change: ['added', 'modified'],
      action: 'report',
      severity: 'low',
    });
    expect(r.key).toEqual(['/a/**', 'b:*']);
  });

  it('says what it expected for every field, in the words of the docs', () => {
    expect(
      messages(
        PolicyRuleSchema.safeParse({
          collector: 'file',
          key: '/x',
          action: 'replace',
          severity: 'urgent',
          change: ['changed'],
        }),
      ),
    ).toEqual([
      'collector: expected one of packages|sysctl|cron|files|kernel-modules|services|accounts|firewall|*',
      'change.0: expected one of added|removed|modified',
      'action: expected one of ignore|report|taint',
      'severity: expected one of low|medium|high|critical',
    ]);
    expect(messages(PolicyRuleSchema.safeParse({ collector: 'files' }))).toEqual(['key: required', 'action: required']);
    expect(messages(PolicyRuleSchema.safeParse({ collector: 'files', key: 7, action: 'ignore' }))).toEqual([
      'key: expected a glob or a list of globs',
    ]);
    expect(messages(PolicyRuleSchema.safeParse({ collector: 'files', key: [], action: 'ignore' }))).toEqual([
      'key: expected at least one glob',
    ]);
    expect(
      messages(PolicyRuleSchema.safeParse({ collector: 'files', key: '/x', action: 'ignore', change: [] })),
    ).toEqual(['change: expected at least one of added|removed|modified']);
  });

  it('refuses unknown keys', () => {
    const r = PolicyRuleSchema.safeParse({ collector: 'files', key: '/x', action: 'ignore', actoin: 'taint' });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.code).toBe('unrecognized_keys');
  });

  it('refuses a glob that cannot compile, naming the list position', () => {
    expect(
      messages(PolicyRuleSchema.safeParse({ collector: 'files', key: ['/ok/**', '/etc/[ssh'], action: 'ignore' })),
    ).toEqual([expect.stringMatching(/^key\.1: invalid glob "\/etc\/\[ssh": Missing closing: "\]"/)]);
    expect(messages(PolicyRuleSchema.safeParse({ collector: 'sysctl', key: 'net.[z-a]', action: 'ignore' }))).toEqual([
      expect.stringMatching(/^key: invalid glob "net.\[z-a\]": .*Range out of order/),
    ]);
  });

  it('refuses relative globs for paths and cron, which could never match a host path', () => {
    expect(messages(PolicyRuleSchema.safeParse({ collector: 'files', key: 'etc/passwd', action: 'ignore' }))).toEqual([
      'key: expected an absolute path glob (starting with "/" or "**"), got "etc/passwd"',
    ]);
    expect(PolicyRuleSchema.safeParse({ collector: 'cron', key: '*.sh', action: 'ignore' }).success).toBe(false);
    expect(PolicyRuleSchema.safeParse({ collector: 'files', key: '**/*.log', action: 'ignore' }).success).toBe(true);
    expect(PolicyRuleSchema.safeParse({ collector: 'files', key: '{/usr,/opt}/**', action: 'ignore' }).success).toBe(
      true,
    );
    // Names and any-collector rules have no such constraint.
    expect(PolicyRuleSchema.safeParse({ collector: 'packages', key: 'openssl:*', action: 'ignore' }).success).toBe(
      true,
    );
    expect(PolicyRuleSchema.safeParse({ collector: '*', key: 'openssl:*', action: 'ignore' }).success).toBe(true);
  });

  it('refuses negated globs, which in an any-of list would match nearly everything', () => {
    expect(
      messages(PolicyRuleSchema.safeParse({ collector: 'files', key: ['/etc/**', '!/etc/ssh/**'], action: 'ignore' })),
    ).toEqual([expect.stringMatching(/^key\.1: negated globs/)]);
  });
});

describe('policy file schema', () => {
  it('defaults to no user rules with the shipped defaults on', () => {
    expect(PolicyFileSchema.parse({})).toEqual({ rules: [], defaults: true });
  });

  it('refuses two rules with one name, counting derived names', () => {
    const r = PolicyFileSchema.safeParse({
      rules: [
        { name: 'a', collector: 'files', key: '/a', action: 'ignore' },
        { collector: 'files', key: '/b', action: 'ignore' },
        { name: 'a', collector: 'files', key: '/c', action: 'ignore' },
        { name: 'rules[1]', collector: 'files', key: '/d', action: 'ignore' },
      ],
    });
    expect(messages(r)).toEqual(['rules.2.name: duplicate of rules[0]', 'rules.3.name: duplicate of rules[1]']);
  });

  it('reserves the default/ prefix for the shipped rules', () => {
    const r = PolicyFileSchema.safeParse({
      rules: [{ name: 'default/packages', collector: 'packages', key: '*', action: 'ignore' }],
    });
    expect(messages(r)).toEqual([
      expect.stringMatching(/^rules\.0\.name: names starting with "default\/" are reserved/),
    ]);
  });

  it('ships defaults that pass their own schema, in the order the design needs', () => {
    expect(PolicyFileSchema.safeParse({ rules: [...DEFAULT_POLICY], defaults: false }).success).toBe(false); // reserved names
    for (const rule of DEFAULT_POLICY) expect(PolicyRuleSchema.safeParse(rule).success, rule.name).toBe(true);
    const names = DEFAULT_POLICY.map((r) => r.name!);
    expect(names.indexOf('default/ssh-host-keys')).toBeLessThan(names.indexOf('default/system-files'));
    expect(names.indexOf('default/host-identity')).toBeLessThan(names.indexOf('default/system-files'));
    expect(names.at(-1)).toBe('default/home-directories');
    expect(Object.isFrozen(DEFAULT_POLICY)).toBe(true);
    expect(Object.isFrozen(DEFAULT_POLICY[0])).toBe(true);
  });
});

describe('key globs', () => {
  it('match paths segment by segment for files, dot files included', () => {
    const m = compileKeyGlobs(['/etc/**', '/home/*/.ssh/**', '/srv/a.conf'], 'path');
    expect(m('/etc')).toBe(true);
    expect(m('/etc/ssh/sshd_config')).toBe(true);
    expect(m('/home/ubuntu/.ssh/authorized_keys')).toBe(true);
    expect(m('/home/a/b/.ssh/authorized_keys')).toBe(false);
    expect(m('/srv/a.conf')).toBe(true);
    expect(m('/srv/b.conf')).toBe(false);
  });

  it('let * cross dots and slashes in names (sysctl, packages)', () => {
    const m = compileKeyGlobs(['net.*', 'openssl:*', '*.rp_filter'], 'name');
    expect(m('net.ipv4.conf.all.forwarding')).toBe(true);
    expect(m('net.ipv4.conf.eth0/100.forwarding')).toBe(true);
    expect(m('kernel.ipv4.conf.eth0/100.rp_filter')).toBe(true);
    expect(m('openssl:amd64')).toBe(true);
    expect(m('libssl3:amd64')).toBe(false);
    expect(compileKeyGlobs(['rpm/bash:*'], 'name')('rpm/bash:x86_64')).toBe(true);
  });

  it('match a cron entry by its whole key or by the file it lives in', () => {
    const m = compileKeyGlobs(['/etc/cron.d/*'], 'entry');
    expect(m('/etc/cron.d/certbot test -x /usr/bin/certbot && certbot -q renew')).toBe(true);
    expect(m('/etc/cron.d/certbot')).toBe(true);
    expect(m('/etc/crontab /usr/bin/backup')).toBe(false);
    expect(compileKeyGlobs(['/etc/crontab'], 'entry')('/etc/crontab env PATH')).toBe(true);
  });

  it('style follows the collector, and unknown collectors are names', () => {
    expect(['files', 'cron', 'packages', 'sysctl', 'systemd'].map(keyStyleOf)).toEqual([
      'path',
      'entry',
      'name',
      'name',
      'name',
    ]);
  });

  it('problems are reported, never thrown', () => {
    expect(globProblem('/ok/**', 'path')).toBeNull();
    expect(globProblem('', 'name')).toBe('expected a non-empty glob');
    expect(globProblem('x'.repeat(2000), 'name')).toMatch(/longer than 1024/);
    expect(globProblem('a\\', null)).toMatch(/^invalid glob/);
    expect(globProblem('+(a', 'name')).toMatch(/^invalid glob/);
  });
});

describe('exemption request schema', () => {
  const NOW = Date.parse('2025-03-01T12:00:00.000Z');
  const schema = exemptionRequestSchema(() => NOW);
  const base = {
    keyPattern: '/etc/nginx/**',
    collector: 'files',
    hostId: 'h1',
    reason: 'INC-42: hotfix until the next bake',
  } as const;

  it('turns a duration into an expiry and null scopes into "any"', () => {
    expect(schema.parse({ ...base, for: '72h' })).toEqual({
      hostId: 'h1',
      imageId: null,
      collector: 'files',
      keyPattern: '/etc/nginx/**',
      reason: 'INC-42: hotfix until the next bake',
      expiresAt: '2025-03-04T12:00:00.000Z',
    });
  });

  it('keeps an explicit expiry, normalised to UTC', () => {
    expect(schema.parse({ ...base, expiresAt: '2025-03-10T09:00:00+02:00' }).expiresAt).toBe(
      '2025-03-10T07:00:00.000Z',
    );
  });

  it('requires a reason, and whitespace is not one', () => {
    expect(messages(schema.safeParse({ ...base, reason: undefined, for: '1h' }))).toEqual([
      'reason: required: say why',
    ]);
    expect(messages(schema.safeParse({ ...base, reason: '   ', for: '1h' }))).toEqual(['reason: required: say why']);
  });

  it('requires exactly one of expiresAt and for', () => {
    expect(messages(schema.safeParse(base))).toEqual([
      'expiresAt: required: an expiry (expiresAt) or a duration (for)',
    ]);
    expect(messages(schema.safeParse({ ...base, for: '1h', expiresAt: '2025-03-02T00:00:00Z' }))).toEqual([
      'for: give expiresAt or for, not both',
    ]);
  });

  it('refuses past expiries, zero durations and anything beyond 90 days', () => {
    expect(messages(schema.safeParse({ ...base, expiresAt: '2025-03-01T11:59:59Z' }))).toEqual([
      'expiresAt: must be in the future',
    ]);
    expect(messages(schema.safeParse({ ...base, for: '0s' }))).toEqual(['for: must be longer than 0']);
    expect(messages(schema.safeParse({ ...base, for: '91d' }))).toEqual(['for: must be at most 90 days']);
    expect(schema.safeParse({ ...base, for: '90d' }).success).toBe(true);
    expect(schema.safeParse({ ...base, for: '2160h' }).success).toBe(true);
    const tooLate = new Date(NOW + MAX_EXEMPTION_MS + 1000).toISOString();
    expect(messages(schema.safeParse({ ...base, expiresAt: tooLate }))).toEqual([
      'expiresAt: must be at most 90 days ahead',
    ]);
    expect(messages(schema.safeParse({ ...base, for: 'a while' }))[0]).toMatch(/^for: expected a duration/);
  });

  it('checks the key pattern against the collector it names', () => {
    expect(messages(schema.safeParse({ ...base, keyPattern: 'nginx.conf', for: '1h' }))[0]).toMatch(
      /^keyPattern: expected an absolute path glob/,
    );
    expect(messages(schema.safeParse({ ...base, keyPattern: '/etc/[x', for: '1h' }))[0]).toMatch(
      /^keyPattern: invalid glob/,
    );
    expect(schema.safeParse({ ...base, collector: 'packages', keyPattern: 'nginx:*', for: '1h' }).success).toBe(true);
  });

  it('refuses a catch-all pattern with no host or image: it would exempt the fleet', () => {
    expect(messages(schema.safeParse({ keyPattern: '**', reason: 'r', for: '1h' }))).toEqual([
      'keyPattern: "**" is a catch-all (it matches every files key): give a hostId or an imageId, or it would exempt every host',
    ]);
    expect(schema.safeParse({ keyPattern: '**', imageId: 'ami-1', reason: 'r', for: '1h' }).success).toBe(true);
    expect(
      schema.safeParse({ keyPattern: '/*/**', hostId: 'h1', collector: 'files', reason: 'r', for: '1h' }).success,
    ).toBe(true);
  });

  it('judges a catch-all by what it matches, not by how it is spelled', () => {
    const refused = (keyPattern: string, collector?: string) =>
      !schema.safeParse({ keyPattern, ...(collector ? { collector } : {}), reason: 'r', for: '1h' }).success;
    for (const p of ['**', '/**', '/*/**', '/**/*', '**/*', '/?*/**', '/{**,x}', '/**/**', '/*/*/**']) {
      expect(refused(p, 'files'), p).toBe(true);
      expect(refused(p), p).toBe(true);
    }
    for (const [p, c] of [
      ['*', 'packages'],
      ['*:*', 'packages'],
      ['*', 'sysctl'],
      ['*.*', 'sysctl'],
      ['/**', 'cron'],
      ['*', undefined],
      ['*:*', undefined],
    ] as const) {
      expect(refused(p, c), `${p} ${c}`).toBe(true);
    }
    // Wide, but not everything: each leaves most of the fleet's keys to the policy.
    for (const [p, c] of [
      ['/etc/**', 'files'],
      ['/usr/bin/*', 'files'],
      ['/*', 'files'],
      ['openssl:*', 'packages'],
      ['net.*', 'sysctl'],
      ['/etc/cron.d/*', 'cron'],
      ['/etc/**', 'cron'],
      ['/etc/nginx/**', undefined],
    ] as const) {
      expect(refused(p, c), `${p} ${c}`).toBe(false);
    }
  });

  it('names the collector whose every key a pattern matches', () => {
    expect(catchAllCollector('/*/**', 'files')).toBe('files');
    expect(catchAllCollector('/*/**', null)).toBe('files');
    expect(catchAllCollector('/*/**', 'cron')).toBe('cron');
    expect(catchAllCollector('*', null)).toBe('packages');
    expect(catchAllCollector('/etc/**', 'files')).toBeNull();
  });

  it('refuses unknown keys (actor comes from the credential, not the body)', () => {
    expect(schema.safeParse({ ...base, for: '1h', actor: 'mallory' }).success).toBe(false);
  });

  it('is also exported bound to the real clock', () => {
    expect(ExemptionRequestSchema.safeParse({ ...base, for: '1h' }).success).toBe(true);
    expect(ExemptionRequestSchema.safeParse({ ...base, expiresAt: '2001-01-01T00:00:00Z' }).success).toBe(false);
  });
});
