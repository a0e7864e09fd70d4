/** @module The controller's policy file (rules that turn deviations into ignore/report/taint), its shipped defaults, key globs, and exemption requests. */
import picomatch from 'picomatch';
import { z } from 'zod';
import { COLLECTOR_DEFS, collectorDef } from '../collectors.js';
import { globMatcher, globRegex, type GlobStyle } from '../glob.js';
import { COLLECTOR_NAMES, CollectorNameSchema, IsoTimeSchema, type CollectorName } from './common.js';
import { DurationSchema, parseDuration } from './config.js';
import { ChangeSchema, SEVERITIES } from './deviation.js';

// ---------------------------------------------------------------------------------------------
// Key globs
// ---------------------------------------------------------------------------------------------

/**
 * How a collector's keys are matched:
 *   path   files: host paths, `*` stays inside one segment, `**` crosses them;
 *   entry  cron: keys are `<file> <entry>` or a host path, matched like paths, and a glob that
 *          matches the file part alone matches every entry of that file (`/etc/cron.d/*` covers
 *          the jobs of every file in cron.d, although their commands contain slashes);
 *   name   packages (`name:arch`), sysctl (dotted names) and any collector added later: the whole
 *          key is one segment, so `*` crosses dots and the rare slash (`net.ipv4.conf.eth0/100.*`,
 *          `rpm/bash:x86_64`), as operators expect from `net.*` or `openssl:*`.
 */
export type KeyStyle = 'path' | 'entry' | 'name';

export function keyStyleOf(collector: string): KeyStyle {
  return collectorDef(collector)?.keyStyle ?? 'name';
}

const MAX_GLOB_LENGTH = 1024;
/** What a path or cron glob may start with: it is matched against an absolute host path. */
const ABSOLUTE_START = /^(?:\/|\*\*|\{)/;

const globStyleOf = (style: KeyStyle): GlobStyle => (style === 'name' ? 'name' : 'path');

/**
 * Why `glob` cannot be used for keys of this style, or null. Called when a policy or an exemption
 * is loaded, with the same compilation the matcher uses, so a bad glob is refused there and never
 * surfaces during evaluation. `style` null: the glob may meet any collector (a `*` rule).
 */
export function globProblem(glob: string, style: KeyStyle | null): string | null {
  if (glob.length === 0) return 'expected a non-empty glob';
  if (glob.length > MAX_GLOB_LENGTH) return `glob is longer than ${MAX_GLOB_LENGTH} characters`;
  // A negated glob in a list that matches when any glob matches would match nearly everything.
  if (picomatch.scan(glob).negated) return 'negated globs ("!...") are not supported: put a more specific rule first';
  if ((style === 'path' || style === 'entry') && !ABSOLUTE_START.test(glob)) {
    return `expected an absolute path glob (starting with "/" or "**"), got "${glob}"`;
  }
  try {
    for (const s of style ? [globStyleOf(style)] : (['path', 'name'] as const)) globRegex(glob, s, { strict: true });
  } catch (err) {
    return `invalid glob "${glob}": ${err instanceof Error ? err.message : String(err)}`;
  }
  return null;
}

/**
 * One test for a list of globs, through the shared compiler (shared/glob.ts: every character of a
 * key, newline included, is an ordinary one). The globs must have passed globProblem.
 */
export function compileKeyGlobs(globs: readonly string[], style: KeyStyle): (key: string) => boolean {
  const test = globMatcher(globs, globStyleOf(style), { strict: true });
  if (style !== 'entry') return test;
  return (key) => {
    if (test(key)) return true;
    const space = key.indexOf(' ');
    return space > 0 && test(key.slice(0, space));
  };
}

// ---------------------------------------------------------------------------------------------
// Policy file
// ---------------------------------------------------------------------------------------------

export const RULE_ACTIONS = ['ignore', 'report', 'taint'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];

/** Rule names the shipped defaults use; a user rule may not take one, so `decidedBy` stays unambiguous. */
export const DEFAULT_RULE_PREFIX = 'default/';

/** zod's own enum message quotes every value; ours reads like the docs and says when the key is missing. */
function oneOf(values: readonly string[]) {
  return (issue: { input?: unknown }) =>
    issue.input === undefined ? 'required' : `expected one of ${values.join('|')}`;
}

const GlobSchema = z.string({ error: 'expected a glob' }).min(1, 'expected a non-empty glob');
const RuleCollectorSchema = z.enum([...COLLECTOR_NAMES, '*'], { error: oneOf([...COLLECTOR_NAMES, '*']) });
const RuleSeveritySchema = z.enum(SEVERITIES, { error: oneOf(SEVERITIES) });
const RuleChangeSchema = z.enum(ChangeSchema.options, { error: oneOf(ChangeSchema.options) });

export const PolicyRuleSchema = z
  .strictObject({
    /** Shown in causes and `decidedBy`; default `rules[<index>]`. */
    name: z.string().trim().min(1, 'expected a non-empty name').max(200).optional(),
    collector: RuleCollectorSchema,
    /** One glob or a list; the rule matches when any matches (see KeyStyle for what `*` crosses). */
    key: z.union([GlobSchema, z.array(GlobSchema).min(1, 'expected at least one glob')], {
      error: (issue) => (issue.input === undefined ? 'required' : 'expected a glob or a list of globs'),
    }),
    /** Absent: any change. */
    change: z.array(RuleChangeSchema).min(1, 'expected at least one of added|removed|modified').optional(),
    action: z.enum(RULE_ACTIONS, { error: oneOf(RULE_ACTIONS) }),
    /** Replaces the deviation's own severity. */
    severity: RuleSeveritySchema.optional(),
  })
  .superRefine((rule, ctx) => {
    const style = rule.collector === '*' ? null : keyStyleOf(rule.collector);
    const globs = typeof rule.key === 'string' ? [rule.key] : rule.key;
    globs.forEach((g, i) => {
      const problem = globProblem(g, style);
      if (problem)
        ctx.addIssue({ code: 'custom', path: typeof rule.key === 'string' ? ['key'] : ['key', i], message: problem });
    });
  });
export type PolicyRule = z.infer<typeof PolicyRuleSchema>;

export function ruleName(rule: PolicyRule, index: number): string {
  return rule.name ?? `rules[${index}]`;
}

export const PolicyFileSchema = z
  .strictObject({
    /** Evaluated in order; the first rule that matches decides. */
    rules: z.array(PolicyRuleSchema).default([]),
    /** Append DEFAULT_POLICY after `rules`; false drops the shipped defaults entirely. */
    defaults: z.boolean({ error: 'expected true or false' }).default(true),
  })
  .superRefine((file, ctx) => {
    const seen = new Map<string, number>();
    file.rules.forEach((rule, i) => {
      const name = ruleName(rule, i);
      if (rule.name?.startsWith(DEFAULT_RULE_PREFIX)) {
        ctx.addIssue({
          code: 'custom',
          path: ['rules', i, 'name'],
          message: `names starting with "${DEFAULT_RULE_PREFIX}" are reserved for the shipped defaults`,
        });
      }
      const first = seen.get(name);
      if (first !== undefined)
        ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `duplicate of rules[${first}]` });
      else seen.set(name, i);
    });
  });
export type PolicyFile = z.infer<typeof PolicyFileSchema>;

/**
 * The shipped defaults, appended after the user's rules (so any user rule overrides them). Order
 * matters: the ignores come first because ssh host keys and resolv.conf sit under /etc, which
 * taints. There is no catch-all: what no rule names taints (controller/policy.ts, NO_RULE_ACTION).
 * The ignored paths mirror the agent's DEFAULT_FILE_IGNORES, for agents configured to collect them anyway.
 */
export const DEFAULT_POLICY: readonly PolicyRule[] = Object.freeze(
  (
    [
      { name: 'default/logs', collector: 'files', key: ['/var/log/**', '**/*.log'], action: 'ignore' },
      {
        name: 'default/caches',
        collector: 'files',
        key: [
          '/var/cache/**',
          '/root/.cache/**',
          '/home/*/.cache/**',
          '/etc/ld.so.cache',
          '**/__pycache__/**',
          '**/*.pyc',
        ],
        action: 'ignore',
      },
      { name: 'default/temporary-files', collector: 'files', key: ['/tmp/**', '/var/tmp/**'], action: 'ignore' },
      { name: 'default/runtime-files', collector: 'files', key: ['/run/**', '/var/run/**'], action: 'ignore' },
      {
        // Rewritten by a healthy host (DHCP, cloud-init, systemd-firstboot, hwclock, passwd locking).
        name: 'default/host-identity',
        collector: 'files',
        key: ['/etc/resolv.conf', '/etc/hostname', '/etc/machine-id', '/etc/mtab', '/etc/adjtime', '/etc/.pwd.lock'],
        action: 'ignore',
      },
      // Generated on first boot, so every host's differ from the image's.
      { name: 'default/ssh-host-keys', collector: 'files', key: ['/etc/ssh/ssh_host_*'], action: 'ignore' },
      // Every collector the registry says to taint on, whatever the key (default/packages, default/cron, ...).
      // Path-keyed collectors (files) get rules by path instead, below.
      ...COLLECTOR_DEFS.filter((d) => d.defaultAction === 'taint' && d.keyStyle !== 'path').map((d) => ({
        name: `default/${d.name}`,
        collector: d.name,
        key: d.keyStyle === 'name' ? '*' : '**',
        action: 'taint' as const,
      })),
      {
        name: 'default/system-files',
        collector: 'files',
        key: ['/usr/**', '/etc/**', '/opt/**', '/boot/**'],
        action: 'taint',
      },
      // known_hosts grows whenever root ssh-es somewhere: worth seeing, not worth a replacement.
      {
        name: 'default/ssh-known-hosts',
        collector: 'files',
        key: ['/root/.ssh/known_hosts*', '/home/*/.ssh/known_hosts*'],
        action: 'report',
      },
      // An added authorized key (or rc, environment) is a way back in: as serious as a changed binary.
      {
        name: 'default/ssh-credentials',
        collector: 'files',
        key: ['/root/.ssh/**', '/home/*/.ssh/**'],
        action: 'taint',
      },
      // People's files (for agents configured to collect them): worth seeing, not a replacement.
      { name: 'default/home-directories', collector: 'files', key: ['/home/**', '/root/**'], action: 'report' },
    ] satisfies PolicyRule[]
  ).map(
    (rule) =>
      Object.freeze({
        ...rule,
        key: typeof rule.key === 'string' ? rule.key : Object.freeze([...rule.key]),
      }) as PolicyRule,
  ),
);

// ---------------------------------------------------------------------------------------------
// Exemption requests (API body and `driftwarden exempt`)
// ---------------------------------------------------------------------------------------------

/** Exemptions are time-bound: a longer one is a policy change and belongs in the policy file. */
export const MAX_EXEMPTION_MS = 90 * 86_400_000;

/**
 * Keys of every collector at several depths and of several shapes, for the catch-all guard: a
 * pattern that matches all of one collector's probes matches (nearly) everything that collector
 * reports. Path probes lie three or more levels deep under different top-level directories, so
 * `/*\/**` and `/*\/*\/**` (everything below the first or second level) count as catch-alls.
 */
const CATCH_ALL_PROBES: Record<CollectorName, readonly string[]> = {
  files: [
    '/usr/bin/x',
    '/etc/ssh/sshd_config',
    '/a/b/c/d',
    '/root/.ssh/authorized_keys',
    '/opt/app/lib/x.so',
    '/boot/grub/grub.cfg',
    '/var/lib/x/y/z/w',
    '/srv/.hidden/x',
    '/Z9/-/ \n',
  ],
  cron: [
    '/etc/crontab 17 * * * * root cd / && run-parts /etc/cron.hourly',
    '/etc/cron.d/backup',
    '/var/spool/cron/crontabs/root 0 * * * * /x',
    '/etc/cron.daily/logrotate',
    '/etc/systemd/system/x.timer',
  ],
  packages: ['openssl:amd64', 'libc6:i386', 'bash:x86_64', 'python3.11:all', 'rpm/zlib:aarch64'],
  sysctl: [
    'net.ipv4.ip_forward',
    'kernel.modules_disabled',
    'vm.swappiness',
    'fs.protected_symlinks',
    'net.ipv4.conf.eth0/100.rp_filter',
  ],
  'kernel-modules': ['nf_tables', 'wireguard', 'usb_storage', 'dm-crypt', 'x'],
  services: [
    'ssh.service',
    'rsync.service',
    'getty@tty1.service',
    'preset:/usr/lib/systemd/system-preset/90-systemd.preset',
    'x.socket',
  ],
  accounts: ['user:root', 'group:sudo', 'sudoers:/etc/sudoers.d/90-cloud', 'key:alice:SHA256:abc/def+ghi', 'user:x'],
  firewall: [
    'saved:/etc/nftables.conf',
    'live:nft:inet filter chain input',
    'live:iptables:filter INPUT',
    'live:ip6tables:nat POSTROUTING',
    'saved:/etc/iptables/rules.v4',
  ],
};

/**
 * The collector for which `pattern` is a catch-all (it matches every probe key of that collector),
 * or null. Semantic, not a list of strings: `**`, `/**`, `/*\/**`, `/**\/*`, `*`, `**\/*`, `/?*\/**`
 * and `{/**,x}` are all caught. The pattern must have passed globProblem for these collectors.
 */
export function catchAllCollector(pattern: string, collector: CollectorName | null): CollectorName | null {
  for (const c of collector ? [collector] : (['files', 'cron', 'packages', 'sysctl'] as const)) {
    const style = keyStyleOf(c);
    if (globProblem(pattern, style) !== null) continue;
    const test = compileKeyGlobs([pattern], style);
    if (CATCH_ALL_PROBES[c].every((k) => test(k))) return c;
  }
  return null;
}

/**
 * The schema checks times against `now`, so it is built per clock: the API passes its injected
 * clock, tests a fixed one. The output is ready to store: null scopes mean "any", and `for` has
 * become `expiresAt`.
 */
export function exemptionRequestSchema(now: () => number = Date.now) {
  return z
    .strictObject({
      hostId: z.string().min(1).max(128).optional(),
      imageId: z.string().min(1).max(256).optional(),
      collector: CollectorNameSchema.optional(),
      keyPattern: GlobSchema,
      reason: z
        .string({ error: (issue) => (issue.input === undefined ? 'required: say why' : 'expected text') })
        .trim()
        .min(1, 'required: say why')
        .max(2000),
      expiresAt: IsoTimeSchema.optional(),
      /** A duration from now, such as 72h or 14d. */
      for: DurationSchema.optional(),
    })
    .superRefine((req, ctx) => {
      const problem = globProblem(req.keyPattern, req.collector ? keyStyleOf(req.collector) : null);
      if (problem) ctx.addIssue({ code: 'custom', path: ['keyPattern'], message: problem });
      const all =
        problem || req.hostId || req.imageId ? null : catchAllCollector(req.keyPattern, req.collector ?? null);
      if (all) {
        ctx.addIssue({
          code: 'custom',
          path: ['keyPattern'],
          message: `"${req.keyPattern}" is a catch-all (it matches every ${all} key): give a hostId or an imageId, or it would exempt every host`,
        });
      }
      const t = now();
      if (req.expiresAt !== undefined && req.for !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['for'], message: 'give expiresAt or for, not both' });
      } else if (req.expiresAt === undefined && req.for === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['expiresAt'],
          message: 'required: an expiry (expiresAt) or a duration (for)',
        });
      } else if (req.for !== undefined) {
        const ms = parseDuration(req.for)!;
        if (ms <= 0) ctx.addIssue({ code: 'custom', path: ['for'], message: 'must be longer than 0' });
        else if (ms > MAX_EXEMPTION_MS)
          ctx.addIssue({ code: 'custom', path: ['for'], message: 'must be at most 90 days' });
      } else {
        const at = Date.parse(req.expiresAt!);
        if (at <= t) ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'must be in the future' });
        else if (at - t > MAX_EXEMPTION_MS)
          ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'must be at most 90 days ahead' });
      }
    })
    .transform((req) => ({
      hostId: req.hostId ?? null,
      imageId: req.imageId ?? null,
      collector: req.collector ?? null,
      keyPattern: req.keyPattern,
      reason: req.reason,
      expiresAt: new Date(
        req.for !== undefined ? now() + parseDuration(req.for)! : Date.parse(req.expiresAt!),
      ).toISOString(),
    }));
}

export const ExemptionRequestSchema = exemptionRequestSchema();
export type ExemptionRequestInput = z.input<typeof ExemptionRequestSchema>;
export type ExemptionRequest = z.output<typeof ExemptionRequestSchema>;
