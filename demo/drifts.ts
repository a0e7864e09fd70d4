/**
 * @module The classic drifts, done to a host root the way people do them to running servers: a package
 * patched in place with `dpkg -i`, a kernel parameter tuned during an incident, a debugging tool installed
 * with a cron job left behind and a service enabled by hand. Each writes what the real tool leaves on the disk (dpkg rewrites its status
 * database through a temporary file and a rename, as here), so the agent sees the change as it would on a host.
 */
import { appendFileSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dpkgStanza, OPENSSL_BAKED } from './sample-root.js';

export type DriftName = 'openssl-patched' | 'sysctl-tuned' | 'debug-session';

export const OPENSSL_PATCHED = '3.0.13-1~deb12u1';

export interface Drift {
  name: DriftName;
  /** What happened, in a sentence for the terminal. */
  story: string;
  apply(root: string): void;
}

function writeDpkgStatus(root: string, edit: (text: string) => string): void {
  const status = join(root, 'var/lib/dpkg/status');
  const next = edit(readFileSync(status, 'utf8'));
  writeFileSync(`${status}-new`, next);
  renameSync(`${status}-new`, status);
}

function dpkgLog(root: string, lines: string[]): void {
  const at = new Date().toISOString().slice(0, 19).replace('T', ' ');
  appendFileSync(join(root, 'var/log/dpkg.log'), lines.map((l) => `${at} ${l}\n`).join(''));
}

export const DRIFTS: Record<DriftName, Drift> = {
  'openssl-patched': {
    name: 'openssl-patched',
    story: `openssl ${OPENSSL_BAKED} -> ${OPENSSL_PATCHED} patched in place with dpkg -i (not a new image)`,
    apply(root) {
      for (const [file, content, mode] of [
        [
          'usr/bin/openssl',
          `#!/bin/sh\n# sample image stand-in for openssl ${OPENSSL_PATCHED}\nexec /bin/false "$@"\n`,
          0o755,
        ],
        [
          'usr/lib/x86_64-linux-gnu/libssl.so.3',
          `sample image stand-in for libssl.so.3 from openssl ${OPENSSL_PATCHED}\n`,
          0o644,
        ],
      ] as const) {
        writeFileSync(join(root, file), content, { mode });
      }
      writeDpkgStatus(root, (text) => text.replaceAll(`Version: ${OPENSSL_BAKED}`, `Version: ${OPENSSL_PATCHED}`));
      dpkgLog(root, [
        `upgrade libssl3:amd64 ${OPENSSL_BAKED} ${OPENSSL_PATCHED}`,
        `upgrade openssl:amd64 ${OPENSSL_BAKED} ${OPENSSL_PATCHED}`,
      ]);
    },
  },
  'sysctl-tuned': {
    name: 'sysctl-tuned',
    story: 'net.core.somaxconn raised 4096 -> 65535 during a traffic spike (sysctl -w, and persisted in /etc/sysctl.d)',
    apply(root) {
      writeFileSync(join(root, 'proc/sys/net/core/somaxconn'), '65535\n');
      writeFileSync(
        join(root, 'etc/sysctl.d/99-tuning.conf'),
        '# INC-2231: connection backlog\nnet.core.somaxconn = 65535\n',
      );
    },
  },
  'debug-session': {
    name: 'debug-session',
    story:
      'strace installed to debug a hang, a cron job left behind that runs it, and the rsync daemon enabled by hand to copy the traces off',
    apply(root) {
      writeFileSync(
        join(root, 'usr/bin/strace'),
        '#!/bin/sh\n# sample image stand-in for strace 6.1\nexec /bin/false "$@"\n',
        { mode: 0o755 },
      );
      writeFileSync(join(root, 'var/lib/dpkg/info/strace.list'), '/usr/bin/strace\n');
      writeDpkgStatus(
        root,
        (text) =>
          text +
          '\n' +
          dpkgStanza({
            name: 'strace',
            version: '6.1-0.1',
            section: 'utils',
            priority: 'optional',
            description: 'System call tracer',
          }),
      );
      dpkgLog(root, ['install strace:amd64 <none> 6.1-0.1']);
      writeFileSync(
        join(root, 'etc/cron.d/debug-trace'),
        '# TODO remove after INC-2240\n*/5 * * * * root /usr/bin/strace -f -p 1 -o /tmp/trace.log\n',
      );
      // `sudo systemctl enable rsync`: the link systemctl makes, and the line sudo leaves in the auth log.
      mkdirSync(join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
      symlinkSync(
        '/usr/lib/systemd/system/rsync.service',
        join(root, 'etc/systemd/system/multi-user.target.wants/rsync.service'),
      );
      mkdirSync(join(root, 'var/log'), { recursive: true });
      appendFileSync(
        join(root, 'var/log/auth.log'),
        `${new Date().toISOString().replace('Z', '+00:00')} debian sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl enable rsync\n`,
      );
    },
  },
};
