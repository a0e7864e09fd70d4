/**
 * @module Firewall rulesets: the files nftables and iptables restore at boot, and, when checking the
 * live host (root `/`), the ruleset the kernel holds now (`nft list ruleset`, else `iptables-save` and
 * `ip6tables-save`). Counters, handles and expiry times are removed so an unchanged host stays clean.
 */
import { sha256Hex } from '../../shared/canonical.js';
import { DwError } from '../../shared/errors.js';
import type { FirewallItem } from '../../shared/schema/items.js';
import type { ExecFn } from '../exec.js';
import { parseIptablesSave, parseNftRuleset, savedRules, type RulesetBlock } from '../parsers/firewall.js';
import type { HostRoot } from '../root.js';
import type { CollectContext, CollectOutput, Collector } from './types.js';

/** Debian (nftables.service, iptables-persistent), RHEL (iptables-services, nftables.service), ufw. */
const SAVED_FILES = [
  '/etc/nftables.conf',
  '/etc/sysconfig/nftables.conf',
  '/etc/iptables/rules.v4',
  '/etc/iptables/rules.v6',
  '/etc/sysconfig/iptables',
  '/etc/sysconfig/ip6tables',
];
const SAVED_DIRS = ['/etc/nftables.d', '/etc/nftables', '/etc/ufw'];

/** Where Debian and RHEL install the tools; looked up on the host instead of spawned by name, so a host without them costs no process. */
const BIN_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

/** Runs the program from the first directory that has it; null when none does. A program that is there but fails is a failed collection. */
async function run(root: HostRoot, exec: ExecFn, name: string, args: readonly string[]): Promise<string | null> {
  for (const dir of BIN_DIRS) {
    const st = await root.statInside(`${dir}/${name}`);
    if (!st?.isFile()) continue;
    const program = `${dir}/${name}`;
    const r = await exec(program, args, { timeoutMs: 30_000 });
    if (r.code !== 0)
      throw new DwError(
        'DW_ERR_COLLECTOR',
        `${program} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`,
        { program, code: r.code },
      );
    return r.stdout;
  }
  return null;
}

const liveItems = (tool: string, blocks: RulesetBlock[]): FirewallItem[] =>
  blocks.map((b) => ({
    key: `live:${tool}:${b.name}`,
    source: 'live',
    rules: b.rules,
    ...(b.policy !== undefined ? { policy: b.policy } : {}),
  }));

async function savedItems(root: HostRoot): Promise<FirewallItem[]> {
  const files = [...SAVED_FILES];
  for (const dir of SAVED_DIRS)
    for (const e of await root.readdir(dir)) if (!e.isDirectory()) files.push(`${dir}/${e.name}`);
  const out: FirewallItem[] = [];
  for (const path of files) {
    const st = await root.statInside(path);
    if (st === null || !st.isFile()) continue;
    const bytes = await root.readFile(path);
    out.push({
      key: `saved:${path}`,
      source: 'saved',
      sha256: sha256Hex(bytes),
      rules: savedRules(bytes.toString('utf8')),
    });
  }
  return out;
}

/**
 * `live`: also read the kernel's ruleset through the programs found under the root. The collector
 * passes it only for `/`: under any other root the programs would show this machine's ruleset, not
 * the root's. Tests pass it with a fixture root that holds stand-in programs and recorded output.
 */
export async function collectFirewall(ctx: CollectContext, live: boolean): Promise<CollectOutput<FirewallItem>> {
  const items = await savedItems(ctx.root);
  if (live) {
    const nft = await run(ctx.root, ctx.exec, 'nft', ['list', 'ruleset']);
    if (nft !== null) items.push(...liveItems('nft', parseNftRuleset(nft)));
    else {
      const v4 = await run(ctx.root, ctx.exec, 'iptables-save', []);
      const v6 = await run(ctx.root, ctx.exec, 'ip6tables-save', []);
      if (v4 !== null) items.push(...liveItems('iptables', parseIptablesSave(v4)));
      if (v6 !== null) items.push(...liveItems('ip6tables', parseIptablesSave(v6)));
      // A host without the tools is a normal configuration, not a degraded scan: said at debug, every scan would repeat it.
      if (v4 === null && v6 === null)
        ctx.log.debug('neither nft nor iptables-save is installed: no live ruleset to collect');
    }
  }
  return { items: items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)), warnings: [] };
}

export const firewall: Collector<'firewall'> = {
  name: 'firewall',
  collect: (ctx) => collectFirewall(ctx, ctx.root.dir === '/'),
};
