/** @module Policy loading, rule order, shipped defaults, exemptions and whole-report evaluation. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import picomatch from 'picomatch';
import { describe, expect, it } from 'vitest';
import {
  defaultPolicy,
  evaluate,
  evaluateAll,
  loadPolicy,
  parsePolicy,
  Policy,
  type DeviationLike,
  type EvaluationContext,
} from '../../controller/policy.js';
import type { ExemptionRow } from '../../controller/store/types.js';
import { DwError } from '../../shared/errors.js';
import { COLLECTOR_NAMES } from '../../shared/schema/common.js';
import { SEVERITIES } from '../../shared/schema/deviation.js';
import { FIXTURES, tempDir } from '../helpers/tmp.js';

const FIXTURE = join(FIXTURES, 'policy/policy.yaml');
const NOW = Date.parse('2025-03-01T12:00:00Z');
const ctx = (exemptions: ExemptionRow[] = [], over: Partial<EvaluationContext> = {}): EvaluationContext => ({
  hostId: 'host-1',
  imageId: 'ami-1',
  now: NOW,
  exemptions,
  ...over,
});
const dev = (
  collector: string,
  key: string,
  change: DeviationLike['change'] = 'modified',
  severity: DeviationLike['severity'] = 'high',
): DeviationLike => ({
  collector,
  key,
  change,
  severity,
});
const exemption = (over: Partial<ExemptionRow> = {}): ExemptionRow => ({
  id: 'ex-1',
  hostId: null,
  imageId: null,
  collector: null,
  keyPattern: '/etc/nginx/**',
  reason: 'INC-42',
  actor: 'alice',
  createdAt: '2025-02-28T00:00:00Z',
  expiresAt: '2025-03-02T00:00:00Z',
  revokedAt: null,
  revokedBy: null,
  ...over,
});
const errorOf = (fn: () => unknown): DwError => {
  try {
    fn();
  } catch (err) {
    return err as DwError;
  }
  throw new Error('expected an error');
};

describe('loading a policy', () => {
  it('loads the fixture: user rules first, named or numbered, then the defaults', () => {
    const p = loadPolicy(FIXTURE);
    expect(p.label).toBe('policy.yaml');
    expect(p.rules.slice(0, 5).map((r) => r.name)).toEqual([
      'app config',
      'usr binaries',
      'rules[2]',
      'edr self-update',
      'certbot renewals',
    ]);
    expect(p.rules.slice(5).every((r) => r.origin === 'default' && r.name.startsWith('default/'))).toBe(true);
    expect(p.rules.map((r) => r.index)).toEqual(p.rules.map((_, i) => i));
    expect(Object.isFrozen(p) && Object.isFrozen(p.rules) && Object.isFrozen(p.rules[0])).toBe(true);
  });

  it('names the bad rule by position and name, and the key, in one line', () => {
    const err = errorOf(() => loadPolicy(join(FIXTURES, 'policy/bad-action.yaml')));
    expect(err).toBeInstanceOf(DwError);
    expect(err.code).toBe('DW_ERR_CONFIG');
    expect(err.message).toBe(
      'bad-action.yaml: rules[2] (name "usr binaries"): action: expected one of ignore|report|taint',
    );
  });

  it('names an unnamed rule by position only, and reports every problem', () => {
    const text =
      'rules:\n  - collector: files\n    key: etc/**\n    action: taint\n    actoin: x\n  - name: ok\n    collector: nope\n    key: "*"\n    action: ignore\n';
    expect(errorOf(() => parsePolicy(text)).message).toBe(
      [
        'policy.yaml: rules[0]: actoin: unknown key',
        'policy.yaml: rules[0]: key: expected an absolute path glob (starting with "/" or "**"), got "etc/**"',
        'policy.yaml: rules[1] (name "ok"): collector: expected one of packages|sysctl|cron|files|kernel-modules|services|accounts|firewall|*',
      ].join('\n'),
    );
    expect(
      errorOf(() => parsePolicy('rules:\n  - collector: files\n    key: [/a, "etc/**"]\n    action: taint\n')).message,
    ).toBe('policy.yaml: rules[0]: key[1]: expected an absolute path glob (starting with "/" or "**"), got "etc/**"');
  });

  it('catches an invalid glob at load time, not at evaluation', () => {
    expect(
      errorOf(() =>
        parsePolicy('rules:\n  - { name: bad, collector: sysctl, key: "net.{a,b", action: ignore }\n', 'p.yaml'),
      ).message,
    ).toMatch(/^p\.yaml: rules\[0\] \(name "bad"\): key: invalid glob "net\.\{a,b": Missing closing/);
  });

  it('refuses top-level mistakes and broken YAML with the line', () => {
    expect(errorOf(() => parsePolicy('rule: []\n')).message).toBe('policy.yaml: rule: unknown key');
    expect(errorOf(() => parsePolicy('defaults: no\n')).message).toBe('policy.yaml: defaults: expected true or false');
    expect(errorOf(() => parsePolicy('rules:\n  - 3\n')).message).toMatch(/^policy.yaml: rules\[0\]: /);
    expect(errorOf(() => parsePolicy('rules: []\nrules: []\n')).message).toMatch(/^policy.yaml:2: invalid YAML/);
  });

  it('treats an empty file as the defaults alone', () => {
    expect(parsePolicy('').rules.map((r) => r.name)).toEqual(defaultPolicy().rules.map((r) => r.name));
  });

  it('says which file it could not read', () => {
    const missing = join(tempDir(), 'nope.yaml');
    expect(errorOf(() => loadPolicy(missing)).message).toBe(`cannot read policy ${missing}: ENOENT`);
  });

  it('drops the shipped defaults with defaults: false', () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'p.yaml'),
      'defaults: false\nrules:\n  - { collector: files, key: /srv/**, action: taint }\n',
    );
    expect(loadPolicy(join(dir, 'p.yaml')).rules.map((r) => r.name)).toEqual(['rules[0]']);
  });
});

describe('shipped defaults', () => {
  const p = defaultPolicy();
  const decide = (d: DeviationLike) => evaluate(p, d, ctx());
  const cases: [string, DeviationLike, string, string][] = [
    ['logs', dev('files', '/var/log/syslog'), 'ignore', 'default/logs'],
    ['any *.log', dev('files', '/opt/app/logs/app.log'), 'ignore', 'default/logs'],
    ['caches', dev('files', '/var/cache/apt/pkgcache.bin'), 'ignore', 'default/caches'],
    ['python bytecode', dev('files', '/usr/lib/python3/__pycache__/x.cpython-311.pyc'), 'ignore', 'default/caches'],
    ['/tmp', dev('files', '/tmp/x', 'added'), 'ignore', 'default/temporary-files'],
    ['/run', dev('files', '/run/systemd/x', 'added'), 'ignore', 'default/runtime-files'],
    ['resolv.conf', dev('files', '/etc/resolv.conf'), 'ignore', 'default/host-identity'],
    ['hostname', dev('files', '/etc/hostname'), 'ignore', 'default/host-identity'],
    ['machine-id', dev('files', '/etc/machine-id'), 'ignore', 'default/host-identity'],
    ['ssh host keys', dev('files', '/etc/ssh/ssh_host_ed25519_key.pub'), 'ignore', 'default/ssh-host-keys'],
    ['packages', dev('packages', 'openssl:amd64'), 'taint', 'default/packages'],
    ['a removed package', dev('packages', 'rpm/bash:x86_64', 'removed'), 'taint', 'default/packages'],
    ['cron', dev('cron', '/etc/cron.d/evil * * * * * root curl x|sh', 'added'), 'taint', 'default/cron'],
    ['kernel parameters', dev('sysctl', 'net.ipv4.ip_forward'), 'taint', 'default/sysctl'],
    ['/usr', dev('files', '/usr/bin/ls'), 'taint', 'default/system-files'],
    ['/etc', dev('files', '/etc/sudoers.d/99-admin', 'added'), 'taint', 'default/system-files'],
    ['/opt', dev('files', '/opt/app/bin/app'), 'taint', 'default/system-files'],
    ['/boot', dev('files', '/boot/vmlinuz'), 'taint', 'default/system-files'],
    ['/etc itself', dev('files', '/etc'), 'taint', 'default/system-files'],
    ['an authorized key', dev('files', '/home/ubuntu/.ssh/authorized_keys'), 'taint', 'default/ssh-credentials'],
    ['known_hosts', dev('files', '/root/.ssh/known_hosts'), 'report', 'default/ssh-known-hosts'],
  ];
  it.each(cases)('%s', (_label, d, action, rule) => {
    expect(decide(d)).toEqual({ action, severity: d.severity, decidedBy: `rule:${rule}`, rule });
  });

  // There is no catch-all rule: what the defaults do not name falls to the taint fallback.
  const unnamed: [string, DeviationLike][] = [
    ['anything else', dev('files', '/srv/data/x', 'added', 'medium')],
    ['a collector added later', dev('systemd', 'evil.service', 'added')],
  ];
  it.each(unnamed)('%s taints, as no rule matched', (_label, d) => {
    expect(decide(d)).toEqual({ action: 'taint', severity: d.severity, decidedBy: 'no-rule', rule: null });
  });
});

describe('rule matching', () => {
  const p = loadPolicy(FIXTURE);
  const decide = (d: DeviationLike) => evaluate(p, d, ctx());

  it('lets user rules override the defaults, first match wins', () => {
    expect(decide(dev('sysctl', 'vm.min_free_kbytes')).action).toBe('ignore');
    expect(decide(dev('cron', '/etc/cron.d/certbot test -x /usr/bin/certbot && certbot -q renew')).decidedBy).toBe(
      'rule:certbot renewals',
    );
  });

  it('applies a rule only to the changes it lists', () => {
    expect(decide(dev('packages', 'falcon-sensor:amd64', 'modified'))).toMatchObject({
      action: 'report',
      rule: 'edr self-update',
    });
    expect(decide(dev('packages', 'falcon-sensor:amd64', 'added'))).toMatchObject({
      action: 'taint',
      rule: 'default/packages',
    });
    expect(decide(dev('files', '/opt/app/etc/app.yaml', 'added'))).toMatchObject({
      action: 'taint',
      rule: 'default/system-files',
    });
  });

  it("overrides the deviation's severity only when the rule sets one", () => {
    expect(decide(dev('files', '/opt/app/etc/app.yaml', 'modified', 'high')).severity).toBe('low');
    expect(decide(dev('files', '/usr/bin/ls', 'modified', 'medium')).severity).toBe('critical');
    expect(decide(dev('files', '/srv/x', 'added', 'medium')).severity).toBe('medium');
  });

  it('taints a deviation no rule covers, with its own severity: failing open would let a host pick a key no rule names', () => {
    const bare = parsePolicy('defaults: false\nrules:\n  - { collector: files, key: /srv/**, action: ignore }\n');
    expect(evaluate(bare, dev('packages', 'x:amd64', 'added', 'low'), ctx())).toEqual({
      action: 'taint',
      severity: 'low',
      decidedBy: 'no-rule',
      rule: null,
    });
    expect(evaluate(bare, dev('files', '/srv/a\nb', 'added', 'low'), ctx())).toMatchObject({
      action: 'ignore',
      decidedBy: 'rule:rules[0]',
    });
  });

  it('applies a collector "*" rule to every collector with that collector\'s key style', () => {
    const any = parsePolicy(
      'defaults: false\nrules:\n  - { collector: "*", key: ["/srv/*", "net.*", "a:*"], action: taint }\n',
    );
    expect(evaluate(any, dev('files', '/srv/a'), ctx()).action).toBe('taint');
    expect(evaluate(any, dev('files', '/srv/a/b'), ctx()).decidedBy).toBe('no-rule');
    expect(evaluate(any, dev('sysctl', 'net.ipv4.ip_forward'), ctx()).action).toBe('taint');
    expect(evaluate(any, dev('packages', 'a:arm64'), ctx()).action).toBe('taint');
  });
});

describe('exemptions', () => {
  const p = defaultPolicy();
  const nginx = dev('files', '/etc/nginx/nginx.conf');

  it('turn a taint into exempt, keeping the severity and naming the exemption', () => {
    expect(evaluate(p, nginx, ctx([exemption()]))).toEqual({
      action: 'exempt',
      severity: 'high',
      decidedBy: 'exemption:ex-1',
      rule: 'default/system-files',
    });
  });

  it('turn a report into exempt', () => {
    expect(
      evaluate(p, dev('files', '/root/.ssh/known_hosts'), ctx([exemption({ keyPattern: '/root/.ssh/*' })])),
    ).toMatchObject({ action: 'exempt', rule: 'default/ssh-known-hosts' });
  });

  it('turn the no-rule taint into exempt', () => {
    expect(evaluate(p, dev('files', '/srv/x'), ctx([exemption({ keyPattern: '/srv/**' })]))).toEqual({
      action: 'exempt',
      severity: 'high',
      decidedBy: 'exemption:ex-1',
      rule: null,
    });
  });

  it('leave an ignore as it is', () => {
    expect(evaluate(p, dev('files', '/var/log/x'), ctx([exemption({ keyPattern: '/var/**' })]))).toMatchObject({
      action: 'ignore',
      decidedBy: 'rule:default/logs',
    });
  });

  it('apply only while active and unrevoked', () => {
    expect(evaluate(p, nginx, ctx([exemption({ expiresAt: '2025-03-01T12:00:00Z' })])).action).toBe('taint');
    expect(evaluate(p, nginx, ctx([exemption({ revokedAt: '2025-03-01T00:00:00Z', revokedBy: 'bob' })])).action).toBe(
      'taint',
    );
    expect(evaluate(p, nginx, ctx([exemption({ expiresAt: 'garbage' })])).action).toBe('taint');
    expect(evaluate(p, nginx, ctx([exemption()], { now: new Date('2025-03-01T23:59:59Z') })).action).toBe('exempt');
    expect(evaluate(p, nginx, ctx([exemption()], { now: '2025-03-02T00:00:01Z' })).action).toBe('taint');
  });

  it('apply to the host, image and collector they name; null means any', () => {
    const apply = (over: Partial<ExemptionRow>, d = nginx) => evaluate(p, d, ctx([exemption(over)])).action;
    expect(apply({ hostId: 'host-1' })).toBe('exempt');
    expect(apply({ hostId: 'host-2' })).toBe('taint');
    expect(apply({ imageId: 'ami-1' })).toBe('exempt');
    expect(apply({ imageId: 'ami-2' })).toBe('taint');
    expect(apply({ collector: 'files' })).toBe('exempt');
    expect(apply({ collector: 'cron' })).toBe('taint');
    expect(apply({ keyPattern: 'openssl:*' }, dev('packages', 'openssl:amd64'))).toBe('exempt');
    expect(apply({ keyPattern: '/etc/nginx/*.conf' }, dev('files', '/etc/nginx/conf.d/x.conf'))).toBe('taint');
  });

  it('fail closed on a stored pattern that does not compile', () => {
    expect(evaluate(p, nginx, ctx([exemption({ keyPattern: '/etc/[nginx' })])).action).toBe('taint');
  });

  it('the first applicable exemption in the list decides', () => {
    expect(
      evaluate(p, nginx, ctx([exemption({ id: 'a', hostId: 'other' }), exemption({ id: 'b' }), exemption({ id: 'c' })]))
        .decidedBy,
    ).toBe('exemption:b');
  });
});

describe('evaluating a whole report', () => {
  const p = defaultPolicy();

  it('has nothing to say about an empty report', () => {
    expect(evaluateAll(p, [], ctx())).toEqual({
      decisions: [],
      worst: 'none',
      culprit: null,
      counts: { ignore: 0, report: 0, taint: 0, exempt: 0 },
    });
  });

  it('returns one decision per deviation, in order, and the worst action', () => {
    const devs = [
      dev('files', '/var/log/x'),
      dev('files', '/root/.ssh/known_hosts', 'added'),
      dev('files', '/etc/nginx/a'),
      dev('packages', 'openssl:amd64', 'modified', 'medium'),
    ];
    const r = evaluateAll(p, devs, ctx([exemption()]));
    expect(r.decisions.map((d) => d.action)).toEqual(['ignore', 'report', 'exempt', 'taint']);
    expect(r.worst).toBe('taint');
    expect(r.counts).toEqual({ ignore: 1, report: 1, taint: 1, exempt: 1 });
    expect(r.culprit).toEqual({
      collector: 'packages',
      key: 'openssl:amd64',
      change: 'modified',
      action: 'taint',
      severity: 'medium',
      decidedBy: 'rule:default/packages',
      rule: 'default/packages',
    });
  });

  it('ranks taint > report > exempt > ignore', () => {
    const worst = (...devs: DeviationLike[]) => evaluateAll(p, devs, ctx([exemption()])).worst;
    expect(worst(dev('files', '/var/log/x'))).toBe('ignore');
    expect(worst(dev('files', '/var/log/x'), dev('files', '/etc/nginx/a'))).toBe('exempt');
    expect(
      worst(dev('files', '/etc/nginx/a'), dev('files', '/root/.ssh/known_hosts'), dev('files', '/var/log/x')),
    ).toBe('report');
  });

  it('cites the most severe deviation of the worst kind, the first on a tie', () => {
    const devs = [
      dev('files', '/usr/bin/a', 'modified', 'high'),
      dev('files', '/usr/bin/b', 'modified', 'critical'),
      dev('files', '/usr/bin/c', 'modified', 'critical'),
    ];
    expect(evaluateAll(p, devs, ctx()).culprit?.key).toBe('/usr/bin/b');
  });

  it('agrees with evaluate for every deviation', () => {
    const devs = [
      dev('files', '/etc/nginx/a'),
      dev('cron', '/etc/crontab x'),
      dev('sysctl', 'kernel.sysrq'),
      dev('files', '/home/u/.cache/x'),
    ];
    const c = ctx([exemption(), exemption({ id: 'k', keyPattern: 'kernel.*', hostId: 'host-1' })]);
    expect(evaluateAll(p, devs, c).decisions).toEqual(devs.map((d) => evaluate(p, d, c)));
  });
});

describe('properties', () => {
  const change = fc.constantFrom('added', 'removed', 'modified' as const);
  const severity = fc.constantFrom(...SEVERITIES);
  const collector = fc.oneof(fc.constantFrom(...COLLECTOR_NAMES), fc.string());
  const key = fc.oneof(
    fc.string(),
    fc.string({ unit: fc.constantFrom('/', '.', '*', 'a', 'b', ' ', ':', '\\', '[', '{', '!', '\0') }),
    fc.constantFrom(
      '/usr/bin/ls',
      '/var/log/x',
      '/etc/resolv.conf',
      'openssl:amd64',
      'net.ipv4.ip_forward',
      '/etc/crontab x',
    ),
  );
  const deviation = fc.record({ collector, key, change, severity });
  const exemptionRow = fc.record({
    id: fc.string(),
    hostId: fc.option(fc.constantFrom('host-1', 'host-2')),
    imageId: fc.option(fc.constantFrom('ami-1', 'ami-2')),
    collector: fc.option(collector),
    keyPattern: fc.oneof(fc.string(), fc.constantFrom('/**', '**', '/etc/[x', '!x', '*')),
    reason: fc.constant('r'),
    actor: fc.constant('a'),
    createdAt: fc.constant('2025-01-01T00:00:00Z'),
    expiresAt: fc.oneof(fc.constant('2025-04-01T00:00:00Z'), fc.string()),
    revokedAt: fc.option(fc.constant('2025-01-02T00:00:00Z')),
    revokedBy: fc.constant(null),
  });

  it('evaluate never throws, and always decides with a known action and severity', () => {
    const policies = [defaultPolicy(), loadPolicy(FIXTURE)];
    fc.assert(
      fc.property(deviation, fc.array(exemptionRow, { maxLength: 4 }), fc.constantFrom(0, 1), (d, ex, which) => {
        const decision = evaluate(policies[which]!, d, ctx(ex));
        expect(['ignore', 'report', 'taint', 'exempt']).toContain(decision.action);
        expect(SEVERITIES).toContain(decision.severity);
      }),
      { numRuns: 2000 },
    );
  });

  it('the first matching rule wins', () => {
    // Rules drawn from a small alphabet so that several of them often match one deviation.
    const glob = fc.constantFrom('/a/**', '/a/*', '/**', '/a/b', '/b/**', '**/b', '/a/{b,c}');
    const rule = fc.record({
      collector: fc.constantFrom('files', '*'),
      key: fc.array(glob, { minLength: 1, maxLength: 3 }),
      change: fc.option(fc.subarray(['added', 'removed', 'modified'] as const, { minLength: 1 }), { nil: undefined }),
      action: fc.constantFrom('ignore', 'report', 'taint' as const),
    });
    const pathKey = fc
      .array(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 4 })
      .map((parts) => `/${parts.join('/')}`);
    fc.assert(
      fc.property(fc.array(rule, { minLength: 1, maxLength: 6 }), pathKey, change, (rules, k, ch) => {
        const policy = new Policy({ rules, defaults: false });
        const d = dev('files', k, ch);
        // The oracle is picomatch itself, rule by rule, without the compiled plan.
        const first = rules.findIndex(
          (r) => (!r.change || r.change.includes(ch)) && picomatch.isMatch(k, r.key, { dot: true }),
        );
        const decision = evaluate(policy, d, ctx());
        if (first < 0) expect(decision.decidedBy).toBe('no-rule');
        else expect(decision).toMatchObject({ action: rules[first]!.action, rule: `rules[${first}]` });
      }),
      { numRuns: 1000 },
    );
  });
});

describe('issue 21: a name with a line terminator no longer escapes the policy', () => {
  const TERMINATORS = [
    ['newline', '\n'],
    ['carriage return', '\r'],
    ['U+2028', '\u2028'],
    ['U+2029', '\u2029'],
    ['NUL', '\u0000'],
    ['an invalid UTF-8 byte (U+FFFD)', '\uFFFD'],
  ] as const;

  it.each(TERMINATORS)(
    'a setuid file named "sshd<%s>backdoor" in /usr/bin taints under the defaults and the operator policy',
    (_label, c) => {
      const d = dev('files', `/usr/bin/sshd${c}backdoor`, 'added', 'critical');
      expect(evaluate(defaultPolicy(), d, ctx())).toEqual({
        action: 'taint',
        severity: 'critical',
        decidedBy: 'rule:default/system-files',
        rule: 'default/system-files',
      });
      expect(evaluate(loadPolicy(FIXTURE), d, ctx())).toMatchObject({ action: 'taint', rule: 'usr binaries' });
    },
  );

  it.each(TERMINATORS)('ignores, exemptions and name-style rules see through %s as well', (_label, c) => {
    const p = defaultPolicy();
    expect(evaluate(p, dev('files', `/var/log/a${c}b`), ctx()).action).toBe('ignore');
    expect(evaluate(p, dev('files', `/etc/nginx/a${c}b`), ctx([exemption()])).action).toBe('exempt');
    expect(evaluate(p, dev('packages', `evil${c}:amd64`, 'added'), ctx()).decidedBy).toBe('rule:default/packages');
    expect(evaluate(p, dev('cron', `/etc/cron.d/x${c}y * * * * * root sh`, 'added'), ctx()).decidedBy).toBe(
      'rule:default/cron',
    );
  });

  it('any key no rule covers taints, whatever it holds', () => {
    const bare = parsePolicy('defaults: false\nrules:\n  - { collector: files, key: /home/**, action: report }\n');
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (k) => {
        const d = evaluate(bare, dev('files', `/srv/${k}`, 'added'), ctx());
        expect(d).toMatchObject({ action: 'taint', decidedBy: 'no-rule' });
      }),
      { numRuns: 1000 },
    );
  });
});
