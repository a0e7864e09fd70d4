/** @module The firewall collector: saved rulesets under any root; the live ruleset only on `/`, through recorded program output. */
import { describe, expect, it } from 'vitest';
import { collectFirewall, firewall } from '../../../agent/collectors/firewall.js';
import type { ExecFn } from '../../../agent/exec.js';
import { HostRoot } from '../../../agent/root.js';
import { silentLogger } from '../../../agent/log.js';
import { diffSection } from '../../../shared/diff.js';
import { defaultRules } from '../../../shared/schema/rules.js';
import { ctx, put, WEB, webCopy } from './new-collectors.helpers.js';

const NFT_OUTPUT = (packets: number) => `table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related counter packets ${packets} bytes ${packets * 60} accept
		tcp dport 22 accept
	}
}
`;

/** Recorded programs: each answers as given (by base name); the fixture root holds a stand-in file for each, so the collector finds it. */
function recorded(
  answers: Record<string, { stdout: string; code?: number; stderr?: string }>,
  calls: string[] = [],
): ExecFn {
  return async (file, args) => {
    calls.push([file, ...args].join(' '));
    const a = answers[file.split('/').pop()!];
    if (!a) throw new Error(`${file} was not recorded`);
    return { stdout: a.stdout, stderr: a.stderr ?? '', code: a.code ?? 0 };
  };
}

/** The web fixture with the given programs installed in usr/sbin, and a live collection from it. */
function live(exec: ExecFn, programs: string[]) {
  const dir = webCopy();
  for (const p of programs) put(dir, `usr/sbin/${p}`, '#!/bin/sh\n# stand-in: the test records its output\n');
  return collectFirewall({ root: new HostRoot(dir), rules: defaultRules(), exec, log: silentLogger }, true);
}

describe('firewall collector', () => {
  it('records saved rulesets under a root by content and rules, and runs no program there, even one the root holds', async () => {
    const calls: string[] = [];
    const dir = webCopy();
    put(dir, 'usr/sbin/nft', '#!/bin/sh\n');
    const { items } = await firewall.collect(ctx(dir, recorded({}, calls)));
    expect(calls).toEqual([]);
    expect(items.map((i) => i.key)).toEqual(['saved:/etc/nftables.conf']);
    expect(items[0]!.rules).toContain('tcp dport { 22, 443 } accept');
  });

  it('sees a rule added to the saved ruleset', async () => {
    const before = (await firewall.collect(ctx(WEB))).items;
    const root = webCopy();
    put(
      root,
      'etc/iptables/rules.v4',
      '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 8080 -j ACCEPT\nCOMMIT\n',
    );
    const devs = diffSection('firewall', before, (await firewall.collect(ctx(root))).items);
    expect(devs.map((d) => `${d.change} ${d.key}`)).toEqual(['added saved:/etc/iptables/rules.v4']);
  });

  it('on / reads the live ruleset with nft, the same on a later scan whose counters moved', async () => {
    const calls: string[] = [];
    const first = await live(recorded({ nft: { stdout: NFT_OUTPUT(100) } }, calls), ['nft']);
    const second = await live(recorded({ nft: { stdout: NFT_OUTPUT(90_000) } }), ['nft']);
    expect(calls).toEqual(['/usr/sbin/nft list ruleset']);
    const liveItems = first.items.filter((i) => i.source === 'live');
    expect(liveItems).toEqual([
      {
        key: 'live:nft:inet filter chain input',
        source: 'live',
        policy: 'drop',
        rules: [
          'type filter hook input priority filter; policy drop;',
          'ct state established,related counter accept',
          'tcp dport 22 accept',
        ],
      },
    ]);
    expect(diffSection('firewall', first.items, second.items)).toEqual([]);
  });

  it('falls back to iptables-save without nft, and collects no live ruleset when neither is installed', async () => {
    const v4 = '*filter\n:INPUT DROP [1:2]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n';
    const { items } = await live(recorded({ 'iptables-save': { stdout: v4 }, 'ip6tables-save': { stdout: '' } }), [
      'iptables-save',
      'ip6tables-save',
    ]);
    expect(items.filter((i) => i.source === 'live').map((i) => `${i.key} ${i.policy}`)).toEqual([
      'live:iptables:filter INPUT DROP',
    ]);
    const calls: string[] = [];
    const none = await live(recorded({}, calls), []);
    expect(none.items.filter((i) => i.source === 'live')).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('fails when the program is there but cannot list the ruleset (no CAP_NET_ADMIN), never reporting it empty', async () => {
    const exec = recorded({ nft: { stdout: '', code: 1, stderr: 'Error: Operation not permitted' } });
    await expect(live(exec, ['nft'])).rejects.toThrow(
      '/usr/sbin/nft list ruleset exited 1: Error: Operation not permitted',
    );
  });
});
