/** @module sysctl.conf / sysctl.d parsing: systemd-sysctl's syntax, key normalisation, errors with file and line. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  normalizeSysctlKey,
  normalizeSysctlValue,
  parseSysctlConf,
  sysctlNameFromPath,
} from '../../../agent/parsers/sysctl-conf.js';
import { DwParseError } from '../../../shared/errors.js';
import { parseError as parseErrorOf } from '../../helpers/parse-error.js';

const FILE = '/etc/sysctl.d/10-test.conf';

function sets(text: string): Array<[string, string]> {
  return parseSysctlConf(text, FILE).flatMap((e) => (e.kind === 'set' ? [[e.key, e.value] as [string, string]] : []));
}

function parseError(text: string): DwParseError {
  return parseErrorOf(() => parseSysctlConf(text, FILE));
}

describe('parseSysctlConf', () => {
  it('reads assignments with and without spaces around "=", in file order with their line numbers', () => {
    const entries = parseSysctlConf('net.ipv4.ip_forward = 1\nvm.swappiness=10\n', FILE);
    expect(entries).toEqual([
      { kind: 'set', key: 'net.ipv4.ip_forward', value: '1', line: 1 },
      { kind: 'set', key: 'vm.swappiness', value: '10', line: 2 },
    ]);
  });

  it('skips blank lines and whole-line comments starting with # or ;, even indented', () => {
    const text = [
      '# comment',
      '; also a comment',
      '',
      '   ',
      '\t# indented',
      '  ; indented',
      'kernel.pid_max = 4194304',
    ].join('\n');
    expect(parseSysctlConf(text, FILE)).toEqual([{ kind: 'set', key: 'kernel.pid_max', value: '4194304', line: 7 }]);
  });

  it('keeps a # after the "=" as part of the value, as systemd-sysctl does', () => {
    expect(sets('kernel.domainname = example # not a comment')).toEqual([
      ['kernel.domainname', 'example # not a comment'],
    ]);
  });

  it('splits at the first "=" only', () => {
    expect(sets('kernel.core_pattern = |/usr/bin/handler --opt=a %p')).toEqual([
      ['kernel.core_pattern', '|/usr/bin/handler --opt=a %p'],
    ]);
  });

  it('normalises whitespace in values: trimmed, every run of spaces and tabs is one space', () => {
    expect(sets('net.ipv4.ip_local_port_range =\t1024 \t  65000  ')).toEqual([
      ['net.ipv4.ip_local_port_range', '1024 65000'],
    ]);
  });

  it('accepts an empty value', () => {
    expect(sets('kernel.domainname =')).toEqual([['kernel.domainname', '']]);
  });

  it('accepts CRLF line endings', () => {
    expect(sets('vm.swappiness = 10\r\nvm.dirty_ratio=5\r\n')).toEqual([
      ['vm.swappiness', '10'],
      ['vm.dirty_ratio', '5'],
    ]);
  });

  it('strips the leading "-" (ignore failures) from keys that are assigned', () => {
    expect(sets('-net.ipv6.conf.all.disable_ipv6 = 1\n- kernel.pid_max = 2')).toEqual([
      ['net.ipv6.conf.all.disable_ipv6', '1'],
      ['kernel.pid_max', '2'],
    ]);
  });

  it('reads "-key" without "=" as an exclusion from globs, which sets nothing', () => {
    expect(parseSysctlConf('net.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\n', FILE)).toEqual([
      { kind: 'set', key: 'net.ipv4.conf.*.rp_filter', value: '2', line: 1 },
      { kind: 'exclude', key: 'net.ipv4.conf.all.rp_filter', line: 2 },
    ]);
  });

  it('records glob keys literally', () => {
    expect(sets('net.ipv4.conf.*.rp_filter = 2\nnet/ipv6/conf/*/accept_ra = 0')).toEqual([
      ['net.ipv4.conf.*.rp_filter', '2'],
      ['net.ipv6.conf.*.accept_ra', '0'],
    ]);
  });

  it('turns slash-separated keys into dotted names, a literal dot in a component becoming "/"', () => {
    expect(sets('net/ipv4/ip_forward = 1\nnet/ipv4/conf/eth0.100/rp_filter = 1\n/kernel/pid_max = 5')).toEqual([
      ['net.ipv4.ip_forward', '1'],
      ['net.ipv4.conf.eth0/100.rp_filter', '1'],
      ['kernel.pid_max', '5'],
    ]);
  });

  it('keeps "/" in a dotted key: it already stands for a dot inside a component', () => {
    expect(sets('net.ipv4.conf.eth0/100.rp_filter = 1')).toEqual([['net.ipv4.conf.eth0/100.rp_filter', '1']]);
  });

  it('reports a line without "=" with its file and line number', () => {
    const err = parseError('vm.swappiness = 10\n\nthis line has no equals sign\n');
    expect(err.file).toBe(FILE);
    expect(err.line).toBe(3);
    expect(err.message).toContain(`${FILE}:3`);
  });

  it('rejects an empty key and a key with whitespace inside', () => {
    expect(parseError('vm.swappiness = 1\n = 1').line).toBe(2);
    expect(parseError('-').line).toBe(1);
    expect(parseError('net ipv4 ip_forward = 1').line).toBe(1);
  });

  it('returns nothing for an empty file', () => {
    expect(parseSysctlConf('', FILE)).toEqual([]);
  });

  it('returns items or throws DwParseError naming the file and a real line, for any input', () => {
    const texts = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b).toString('utf8')),
      fc
        .array(
          fc.oneof(
            fc.constantFrom('net.ipv4.ip_forward = 1', '# c', '-a.b', 'a/b.c=\t2', ' = ', '-', 'x', '=', ';'),
            fc.string(),
          ),
          { maxLength: 20 },
        )
        .map((ls) => ls.join('\n'))
        .chain((t) => fc.nat({ max: t.length }).map((n) => t.slice(0, n))),
    );
    fc.assert(
      fc.property(texts, (text) => {
        try {
          const entries = parseSysctlConf(text, FILE);
          for (const e of entries) expect(e.key.length).toBeGreaterThan(0);
        } catch (err) {
          expect(err).toBeInstanceOf(DwParseError);
          const pe = err as DwParseError;
          expect(pe.file).toBe(FILE);
          expect(pe.line).toBeGreaterThanOrEqual(1);
          expect(pe.line).toBeLessThanOrEqual(text.split('\n').length);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('gives back what was written, for generated well-formed files', () => {
    const component = fc.stringMatching(/^[a-z0-9_][a-z0-9_-]{0,7}$/);
    const key = fc.array(component, { minLength: 1, maxLength: 5 }).map((cs) => cs.join('.'));
    const value = fc.array(fc.stringMatching(/^[!-~]{1,6}$/), { maxLength: 3 }).map((ws) => ws.join(' '));
    fc.assert(
      fc.property(fc.array(fc.tuple(key, value), { maxLength: 10 }), (pairs) => {
        const text = pairs.map(([k, v]) => `${k} =\t${v}  `).join('\n');
        expect(sets(text)).toEqual(pairs);
      }),
    );
  });
});

describe('key and value helpers', () => {
  it('names a proc/sys path the way sysctl prints it', () => {
    expect(sysctlNameFromPath(['net', 'ipv4', 'ip_forward'])).toBe('net.ipv4.ip_forward');
    expect(sysctlNameFromPath(['net', 'ipv4', 'conf', 'eth0.100', 'rp_filter'])).toBe(
      'net.ipv4.conf.eth0/100.rp_filter',
    );
  });

  it('makes the slash form and the dotted form of one parameter the same name', () => {
    expect(normalizeSysctlKey('net/ipv4/conf/enp3s0.200/forwarding')).toBe(
      normalizeSysctlKey('net.ipv4.conf.enp3s0/200.forwarding'),
    );
    expect(normalizeSysctlKey('kernel//pid_max')).toBe('kernel.pid_max');
    expect(normalizeSysctlKey('kernel..pid_max')).toBe('kernel.pid_max');
    expect(normalizeSysctlKey('./')).toBeNull();
    expect(normalizeSysctlKey('net/../kernel/pid_max')).toBeNull();
  });

  it('normalises values as sysctl prints them with tabs and newlines', () => {
    expect(normalizeSysctlValue('32768\t60999\n')).toBe('32768 60999');
    expect(normalizeSysctlValue('file\npipe\nsocket\n')).toBe('file pipe socket');
    expect(normalizeSysctlValue('\n')).toBe('');
  });
});
