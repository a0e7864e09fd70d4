/** @module The pure parsers behind kernel-modules, accounts and firewall, fed the ugly real text. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  fingerprint,
  parseAuthorizedKeys,
  parseGroup,
  parsePasswd,
  parseShadow,
  passwordState,
  sudoersRules,
} from '../../../agent/parsers/accounts.js';
import { normalizeRule, parseIptablesSave, parseNftRuleset, savedRules } from '../../../agent/parsers/firewall.js';
import {
  moduleName,
  parseModprobeConf,
  parseModulesList,
  parseProcModules,
  sizeClass,
} from '../../../agent/parsers/kernel-modules.js';
import { FIXTURES } from '../../helpers/tmp.js';

describe('kernel module parsers', () => {
  it('reads proc/modules: name, size and taint letters, nothing that changes on its own', () => {
    const text =
      'nf_tables 290816 3 nft_chain_nat, Live 0x0000000000000000\nvboxdrv 696320 2 vboxnetadp,vboxnetflt, Live 0xffffffffc0a00000 (OE)\n\n';
    expect(parseProcModules(text)).toEqual([
      { name: 'nf_tables', size: 290816, taint: '' },
      { name: 'vboxdrv', size: 696320, taint: 'OE' },
    ]);
  });
  it('classes sizes by the next power of two', () => {
    expect([sizeClass(16384), sizeClass(16385), sizeClass(290816)]).toEqual([16384, 32768, 524288]);
  });
  it('reads module lists with comments and etc/modules arguments, dashes as the kernel spells them', () => {
    expect(parseModulesList('# comment\n; also\nloop max_loop=64\n\nnf-tables\n')).toEqual(['loop', 'nf_tables']);
    expect(moduleName('snd-hda-intel')).toBe('snd_hda_intel');
  });
  it('reads blacklist and install lines of modprobe.d, continuation included', () => {
    const conf = parseModprobeConf(
      '# x\nblacklist floppy\ninstall usb-storage \\\n  /bin/false\noptions snd slots=1\n',
    );
    expect(conf.blacklist).toEqual(['floppy']);
    expect([...conf.install]).toEqual([['usb_storage', '/bin/false']]);
  });
});

describe('account parsers', () => {
  it('reads passwd and group, skipping NIS and broken lines', () => {
    expect(parsePasswd('root:x:0:0:root:/root:/bin/bash\n+@netgroup::::::\nbad:x:z:0::/:/bin/sh\n')).toEqual([
      { name: 'root', uid: 0, gid: 0, gecos: 'root', home: '/root', shell: '/bin/bash' },
    ]);
    expect(parseGroup('sudo:x:27:bob,alice\nnogroup:x:65534:\n')).toEqual([
      { name: 'sudo', gid: 27, members: ['alice', 'bob'] },
      { name: 'nogroup', gid: 65534, members: [] },
    ]);
  });
  it('keeps only the state of a password, never the hash', () => {
    expect(['', '*', '!', '!*', '!!', '!$6$salt$hash', '$y$j9T$salt$hash'].map(passwordState)).toEqual([
      'none',
      'disabled',
      'disabled',
      'disabled',
      'disabled',
      'locked',
      'set',
    ]);
    const shadow = parseShadow('alice:$y$j9T$salt$secrethash:19810:0:99999:7:::\n');
    expect(shadow.get('alice')).toEqual({ password: 'set', changed: '19810' });
    expect(JSON.stringify([...shadow])).not.toContain('secrethash');
  });
  it('turns sudoers into rules: comments dropped, #include kept, continuations joined', () => {
    expect(
      sudoersRules(
        '# comment\nDefaults\tenv_reset\nalice ALL=(ALL) \\\n   NOPASSWD: ALL\n#includedir /etc/sudoers.d\n@includedir /etc/sudoers.d\n',
      ),
    ).toEqual([
      'Defaults env_reset',
      'alice ALL=(ALL) NOPASSWD: ALL',
      '#includedir /etc/sudoers.d',
      '@includedir /etc/sudoers.d',
    ]);
  });
  it('fingerprints authorized keys as ssh-keygen -lf does, with options that contain quoted blanks', () => {
    const file = join(FIXTURES, 'hosts/web/home/alice/.ssh/authorized_keys');
    const { keys, bad } = parseAuthorizedKeys(readFileSync(file, 'utf8') + 'not a key line\n');
    expect(bad).toBe(1);
    const sshKeygen = execFileSync('ssh-keygen', ['-lf', file], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[1]);
    expect(keys.map((k) => k.fingerprint)).toEqual(sshKeygen);
    expect(keys[1]!.options).toBe('from="10.0.0.0/8",no-agent-forwarding');
    const quoted = parseAuthorizedKeys(
      'command="echo hi there",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIONacK29CruBnkYcCWvk0oWWTmyXzxMDPkdEJB1SDlt3 c\n',
    );
    expect(quoted.keys[0]).toEqual({
      type: 'ssh-ed25519',
      options: 'command="echo hi there",no-pty',
      fingerprint: fingerprint('AAAAC3NzaC1lZDI1NTE5AAAAIONacK29CruBnkYcCWvk0oWWTmyXzxMDPkdEJB1SDlt3'),
    });
  });
});

const NFT = `table inet filter {
	set blocked {
		type ipv4_addr
		flags timeout
		elements = { 192.0.2.7 timeout 1h expires 59m58s }
	}

	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related counter packets 18211 bytes 2339120 accept # handle 4
		tcp dport 22 counter packets 3 bytes 180 accept # handle 5
	}
}
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" masquerade
	}
}
`;

describe('firewall parsers', () => {
  it('splits nft list ruleset into chains and sets, counters, handles and expiry removed', () => {
    const blocks = parseNftRuleset(NFT);
    expect(blocks.map((b) => b.name)).toEqual([
      'inet filter set blocked',
      'inet filter chain input',
      'ip nat chain postrouting',
    ]);
    expect(blocks[1]).toEqual({
      name: 'inet filter chain input',
      policy: 'drop',
      rules: [
        'type filter hook input priority filter; policy drop;',
        'ct state established,related counter accept',
        'tcp dport 22 counter accept',
      ],
    });
    expect(blocks[0]!.rules).toContain('elements = { 192.0.2.7 timeout 1h }');
    // The same ruleset a minute later, counters moved on: the same blocks.
    expect(
      parseNftRuleset(
        NFT.replace('packets 18211 bytes 2339120', 'packets 18999 bytes 2400000').replace('59m58s', '58m1s'),
      ),
    ).toEqual(blocks);
  });
  it('reads iptables-save per table and chain, counters removed', () => {
    const text =
      '# Generated by iptables-save v1.8.9 on Fri Dec  4 02:00:00 2026\n*filter\n:INPUT DROP [120:9000]\n:FORWARD DROP [0:0]\n:f2b-sshd - [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd\n[5:300] -A INPUT -i lo -j ACCEPT\n-A f2b-sshd -j RETURN\nCOMMIT\n';
    expect(parseIptablesSave(text)).toEqual([
      {
        name: 'filter INPUT',
        policy: 'DROP',
        rules: ['-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd', '-A INPUT -i lo -j ACCEPT'],
      },
      { name: 'filter FORWARD', policy: 'DROP', rules: [] },
      { name: 'filter f2b-sshd', policy: '-', rules: ['-A f2b-sshd -j RETURN'] },
    ]);
    expect(savedRules(text)).toContain(':INPUT DROP');
    expect(normalizeRule('ip saddr @blocked counter packets 1 bytes 60 drop # handle 9')).toBe(
      'ip saddr @blocked counter drop',
    );
  });
});
