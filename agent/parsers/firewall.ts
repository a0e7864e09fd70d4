/** @module Firewall rulesets (nft list ruleset, iptables-save and the files they are saved to) with their volatile parts removed. */
import { lines } from './lines.js';

/** Counters, handles, set element expiry and quota use change on a host nobody touched. */
export function normalizeRule(rule: string): string {
  return rule
    .replace(/\bcounter packets \d+ bytes \d+/g, 'counter')
    .replace(/\s*# handle \d+/g, '')
    .replace(/\bexpires \S+/g, '')
    .replace(/\bused \d+ bytes\b/g, '')
    .replace(/^\[\d+:\d+\]\s*/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** A saved file's lines as rules: comments and blank lines dropped, the rest normalised. */
export function savedRules(text: string): string[] {
  const out: string[] = [];
  for (const [raw] of lines(text)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    out.push(normalizeRule(line.replace(/^(:\S+ \S+) \[\d+:\d+\]$/, '$1')));
  }
  return out;
}

export interface RulesetBlock {
  /** `inet filter chain input`, `ip nat set blocked`, `filter INPUT` (iptables). */
  name: string;
  policy?: string;
  rules: string[];
}

/**
 * `nft list ruleset`: tables hold chains, sets, maps, flowtables...; one block per object inside a
 * table, its lines (hook/policy line and rules) in order. The base chain's `policy` is kept apart.
 */
export function parseNftRuleset(text: string): RulesetBlock[] {
  const out: RulesetBlock[] = [];
  let table: string | null = null;
  let block: RulesetBlock | null = null;
  let depth = 0;
  for (const [raw] of lines(text)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const opens = (line.match(/\{/g) ?? []).length;
    const closes = (line.match(/\}/g) ?? []).length;
    if (depth === 0) {
      const m = /^table (\S+) (\S+) \{$/.exec(line);
      if (m) table = `${m[1]} ${m[2]}`;
    } else if (depth === 1 && table !== null && block === null && line.endsWith('{')) {
      const m = /^(\S+) (\S+) \{$/.exec(line);
      if (m) {
        block = { name: `${table} ${m[1]} ${m[2]}`, rules: [] };
        out.push(block);
      }
    } else if (block !== null && !(depth === 2 && line === '}')) {
      const policy = /\bpolicy (\w+);/.exec(line);
      if (policy && /\bhook \w+/.test(line)) block.policy = policy[1]!;
      block.rules.push(normalizeRule(line));
    }
    depth += opens - closes;
    if (depth <= 1) block = null;
    if (depth <= 0) {
      table = null;
      depth = 0;
    }
  }
  return out;
}

/** iptables-save: `*table`, `:CHAIN POLICY [p:b]`, `-A CHAIN ...`, `COMMIT`; one block per table and chain. */
export function parseIptablesSave(text: string): RulesetBlock[] {
  const out = new Map<string, RulesetBlock>();
  let table: string | null = null;
  for (const [raw] of lines(text)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) table = line.slice(1);
    else if (line === 'COMMIT') table = null;
    else if (table !== null && line.startsWith(':')) {
      const [chain, policy] = line.slice(1).split(/\s+/);
      out.set(`${table} ${chain}`, { name: `${table} ${chain}`, policy: policy ?? '-', rules: [] });
    } else if (table !== null) {
      const rule = normalizeRule(line);
      const chain = /^-A (\S+)/.exec(rule)?.[1];
      if (!chain) continue;
      const key = `${table} ${chain}`;
      if (!out.has(key)) out.set(key, { name: key, policy: '-', rules: [] });
      out.get(key)!.rules.push(rule);
    }
  }
  return [...out.values()];
}
