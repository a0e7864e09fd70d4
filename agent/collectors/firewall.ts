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
import type { Collector } from './types.js';

/** Debian (nftables.service, iptables-persistent), RHEL (iptables-services, nftables.service), ufw. */
const SAVED_FILES = ['/etc/nftables.conf', '/etc/sysconfig/nftables.conf', '/etc/iptables/rules.v4', '/etc/iptables/rules.v6', '/etc/sysconfig/iptables', '/etc/sysconfig/ip6tables'];
const SAVED_DIRS = ['/etc/nftables.d', '/etc/nftables', '/etc/ufw'];

/** Runs the first of `names` that exists; null when none does. A program that exists but fails is a failed collection. */
async function run(exec: ExecFn, names: readonly string[], args: readonly string[]): Promise<string | null> {
  for (const name of names) {
    let r;
    try {
      r = await exec(name, args, { timeoutMs: 30_000 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (r.code !== 0) throw new DwError('DW_ERR_COLLECTOR', `${name} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`, { program: name, code: r.code });
    return r.stdout;
  }
  return null;
}

const live = (tool: string, blocks: RulesetBlock[]): FirewallItem[] =>
  blocks.map((b) => ({ key: `live:${tool}:${b.name}`, source: 'live', rules: b.rules, ...(b.policy !== undefined ? { policy: b.policy } : {}) }));

async function savedItems(root: HostRoot): Promise<FirewallItem[]> {
  const files = [...SAVED_FILES];
  for (const dir of SAVED_DIRS) for (const e of await root.readdir(dir)) if (!e.isDirectory()) files.push(`${dir}/${e.name}`);
  const out: FirewallItem[] = [];
  for (const path of files) {
    const st = await root.statInside(path);
    if (st === null || !st.isFile()) continue;
    const bytes = await root.readFile(path);
    out.push({ key: `saved:${path}`, source: 'saved', sha256: sha256Hex(bytes), rules: savedRules(bytes.toString('utf8')) });
  }
  return out;
}

export const firewall: Collector<'firewall'> = {
  name: 'firewall',
  async collect(ctx) {
    const items = await savedItems(ctx.root);
    // Under any other root the programs would show this machine's ruleset, not the root's.
    if (ctx.root.dir === '/') {
      const nft = await run(ctx.exec, ['nft', '/usr/sbin/nft', '/sbin/nft'], ['list', 'ruleset']);
      if (nft !== null) items.push(...live('nft', parseNftRuleset(nft)));
      else {
        const v4 = await run(ctx.exec, ['iptables-save', '/usr/sbin/iptables-save', '/sbin/iptables-save'], []);
        const v6 = await run(ctx.exec, ['ip6tables-save', '/usr/sbin/ip6tables-save', '/sbin/ip6tables-save'], []);
        if (v4 !== null) items.push(...live('iptables', parseIptablesSave(v4)));
        if (v6 !== null) items.push(...live('ip6tables', parseIptablesSave(v6)));
        // A host without the tools is a normal configuration, not a degraded scan: said at debug, every scan would repeat it.
        if (v4 === null && v6 === null) ctx.log.debug('neither nft nor iptables-save is installed: no live ruleset to collect');
      }
    }
    return { items: items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)), warnings: [] };
  },
};
