import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../shared/config-load.js';
import { AgentConfigSchema, parseDuration } from '../../shared/schema/config.js';
import { rulesFromConfig } from '../../agent/rules.js';
import { DEFAULT_FILE_IGNORES } from '../../shared/schema/rules.js';

const parse = (text: string) => parseConfigText(AgentConfigSchema, text, 'agent.yaml');

describe('agent config', () => {
  it('accepts the documented example and fills defaults', () => {
    const c = parse(`
controller:
  url: https://drift.example.internal:8443
  enrollmentTokenFile: /etc/driftwarden/enrollment-token
  caFile: /etc/driftwarden/ca.pem
manifest: /etc/driftwarden/manifest.json
root: /
stateDir: /var/lib/driftwarden
group: web-asg
schedule: { scan: "*/30 * * * *", fullRehash: "0 3 * * 0", heartbeat: 60s }
collectors:
  files: { roots: [/etc, /usr, /opt, /boot], ignore: ["/etc/resolv.conf"] }
  sysctl: { exclude: ["kernel.random.*"] }
watch: { paths: [/etc, /root/.ssh, /usr/local/bin, /opt] }
`);
    expect(c.collectors.packages.enabled).toBe(true);
    expect(c.collectors.files.roots).toEqual(['/etc', '/usr', '/opt', '/boot']);
    expect(Object.isFrozen(c.collectors.files)).toBe(true);
  });

  it('names the offending key and why', () => {
    expect(() => parse('collectors:\n  files:\n    roots: [/etc, /usr, relative/path]\n')).toThrow(
      'agent.yaml: collectors.files.roots[2]: expected an absolute path',
    );
    expect(() => parse('collectors:\n  file: {}\n')).toThrow('agent.yaml: collectors.file: unknown key');
    expect(() => parse('schedule: { heartbeat: soon }\n')).toThrow(
      /agent.yaml: schedule.heartbeat: expected a duration/,
    );
    expect(() => parse('collectors:\n  cron: { enabled: "no" }\n')).toThrow(/agent.yaml: collectors.cron.enabled: /);
  });

  it('refuses plain http:// to a controller that is not on loopback unless controller.allowInsecure says so', () => {
    const at = (url: string, extra = '') => parse(`controller:\n  url: ${url}\n${extra}`);
    for (const url of [
      'http://127.0.0.1:8443',
      'http://127.8.9.10:80',
      'http://localhost:8443',
      'http://[::1]:8443',
      'https://10.0.0.5:8443',
      'https://drift.example.internal',
    ]) {
      expect(at(url).controller!.url).toBe(url);
    }
    for (const url of [
      'http://10.0.0.5:8443',
      'http://drift.example.internal:8443',
      'http://[fd00::1]:8443',
      'http://127.0.0.1.example.com/',
      'http://0.0.0.0:8443',
    ]) {
      expect(() => at(url)).toThrow(
        /agent\.yaml: controller\.url: plain http:\/\/ to .* use https:\/\/, or set controller\.allowInsecure: true/,
      );
    }
    expect(at('http://10.0.0.5:8443', '  allowInsecure: true\n').controller!.allowInsecure).toBe(true);
    expect(() => at('ftp://10.0.0.5/')).toThrow(/controller\.url: expected an http\(s\) URL/);
  });

  it('takes a client certificate only as a pair, and only over https', () => {
    const at = (url: string, extra: string) => parse(`controller:\n  url: ${url}\n${extra}`);
    expect(
      at('https://drift.example.internal', '  certFile: /etc/dw/host.crt\n  keyFile: /etc/dw/host.key\n').controller,
    ).toMatchObject({ certFile: '/etc/dw/host.crt', keyFile: '/etc/dw/host.key' });
    expect(() => at('https://drift.example.internal', '  certFile: /etc/dw/host.crt\n')).toThrow(
      /controller\.keyFile: a client certificate needs both/,
    );
    expect(() => at('http://127.0.0.1:8443', '  certFile: /etc/dw/host.crt\n  keyFile: /etc/dw/host.key\n')).toThrow(
      /controller\.certFile: a client certificate is only sent over https/,
    );
  });

  it('refuses broken YAML with the line', () => {
    expect(() => parse('root: /\nroot: /x\n')).toThrow(/agent.yaml:2: invalid YAML/);
  });

  it('turns into collection rules: roots replace, ignores and excludes extend, collectors switch off', () => {
    const rules = rulesFromConfig(
      parse(
        'collectors:\n  packages: { enabled: false }\n  files: { roots: [/srv], ignore: ["/srv/cache/**"] }\n  sysctl: { exclude: ["net.core.*"] }\n',
      ),
    );
    expect(rules.collectors).toEqual(['sysctl', 'cron', 'files', 'kernel-modules', 'services', 'accounts', 'firewall']);
    expect(rules.files.roots).toEqual(['/srv']);
    expect(rules.files.ignore).toEqual([...DEFAULT_FILE_IGNORES, '/srv/cache/**']);
    expect(rules.sysctl.exclude).toContain('net.core.*');
    expect(rules.sysctl.exclude).toContain('kernel.random.*');
  });

  it('parses durations', () => {
    expect(parseDuration('60s')).toBe(60_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1.5h')).toBeNull();
  });
});

describe('agent schedule', () => {
  it('refuses a cron expression node-cron would not run, naming the key', () => {
    expect(() => parse('schedule: { scan: "61 * * * *" }\n')).toThrow(
      /agent.yaml: schedule.scan: expected a cron expression/,
    );
    expect(parse('schedule: { scan: "*/5 * * * *", fullRehash: "0 4 * * 6" }\n').schedule.scan).toBe('*/5 * * * *');
  });
});
