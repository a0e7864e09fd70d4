/**
 * @module The demo's sample image root, generated in code so the demo needs nothing beside the program:
 * a small Debian 12 web/API image with a dpkg database, kernel parameters under /proc/sys, cron jobs and a
 * systemd timer, ssh configuration and an application under /opt. Binaries are short stand-in scripts:
 * the collectors compare hashes, modes and owners, which a stand-in has as much as the real thing.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface SamplePackage {
  name: string;
  version: string;
  section: string;
  priority: 'required' | 'important' | 'standard' | 'optional';
  description: string;
  source?: string;
  essential?: boolean;
  /** Host path → content; executables are those under bin/, sbin/ or with a #! line. */
  files: Record<string, string>;
}

export const OPENSSL_BAKED = '3.0.11-1~deb12u2';

function binary(name: string, version: string): string {
  return `#!/bin/sh\n# sample image stand-in for ${name} ${version}\nexec /bin/false "$@"\n`;
}

/** What the image's dpkg database says is installed, and the files each package put on the disk. */
export function samplePackages(): SamplePackage[] {
  return [
    {
      name: 'base-files',
      version: '12.4+deb12u5',
      section: 'admin',
      priority: 'required',
      essential: true,
      description: 'Debian base system miscellaneous files',
      files: { '/etc/debian_version': '12.5\n', '/etc/issue': 'Debian GNU/Linux 12 \\n \\l\n\n' },
    },
    {
      name: 'bash',
      version: '5.2.15-2+b7',
      section: 'shells',
      priority: 'required',
      essential: true,
      description: 'GNU Bourne Again SHell',
      files: {
        '/usr/bin/bash': binary('bash', '5.2.15'),
        '/etc/bash.bashrc': '# System-wide .bashrc file for interactive bash(1) shells.\n[ -z "$PS1" ] && return\n',
      },
    },
    {
      name: 'coreutils',
      version: '9.1-1',
      section: 'utils',
      priority: 'required',
      essential: true,
      description: 'GNU core utilities',
      files: { '/usr/bin/ls': binary('ls', '9.1'), '/usr/bin/cat': binary('cat', '9.1') },
    },
    {
      name: 'cron',
      version: '3.0pl1-162',
      section: 'admin',
      priority: 'important',
      description: 'process scheduling daemon',
      files: { '/usr/sbin/cron': binary('cron', '3.0pl1') },
    },
    {
      name: 'curl',
      version: '7.88.1-10+deb12u5',
      section: 'web',
      priority: 'optional',
      description: 'command line tool for transferring data with URL syntax',
      files: { '/usr/bin/curl': binary('curl', '7.88.1') },
    },
    {
      name: 'libssl3',
      version: OPENSSL_BAKED,
      source: 'openssl',
      section: 'libs',
      priority: 'optional',
      description: 'Secure Sockets Layer toolkit - shared libraries',
      files: {
        '/usr/lib/x86_64-linux-gnu/libssl.so.3': `sample image stand-in for libssl.so.3 from openssl ${OPENSSL_BAKED}\n`,
      },
    },
    {
      name: 'nginx',
      version: '1.22.1-9',
      section: 'httpd',
      priority: 'optional',
      description: 'small, powerful, scalable web/proxy server',
      files: {
        '/usr/sbin/nginx': binary('nginx', '1.22.1'),
        '/etc/nginx/nginx.conf':
          'user www-data;\nworker_processes auto;\nevents { worker_connections 768; }\nhttp {\n  include /etc/nginx/conf.d/*.conf;\n}\n',
        '/etc/nginx/conf.d/app.conf': 'server {\n  listen 80;\n  location / { proxy_pass http://127.0.0.1:8080; }\n}\n',
      },
    },
    {
      name: 'openssh-server',
      version: '1:9.2p1-2+deb12u2',
      section: 'net',
      priority: 'optional',
      description: 'secure shell (SSH) server, for secure access from remote machines',
      files: {
        '/usr/sbin/sshd': binary('sshd', '9.2p1'),
        '/etc/ssh/sshd_config':
          'PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\n',
      },
    },
    {
      name: 'openssl',
      version: OPENSSL_BAKED,
      section: 'utils',
      priority: 'optional',
      description: 'Secure Sockets Layer toolkit - cryptographic utility',
      files: {
        '/usr/bin/openssl': binary('openssl', OPENSSL_BAKED),
        '/etc/ssl/openssl.cnf':
          'openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n[provider_sect]\ndefault = default_sect\n[default_sect]\nactivate = 1\n',
      },
    },
    {
      name: 'procps',
      version: '2:4.0.2-3',
      section: 'admin',
      priority: 'important',
      description: '/proc file system utilities',
      files: { '/usr/sbin/sysctl': binary('sysctl', '4.0.2'), '/usr/bin/ps': binary('ps', '4.0.2') },
    },
    {
      name: 'rsync',
      version: '3.2.7-1',
      section: 'net',
      priority: 'optional',
      description: 'fast, versatile, remote (and local) file-copying tool',
      // Shipped disabled: the daemon runs only where someone enables it.
      files: {
        '/usr/bin/rsync': binary('rsync', '3.2.7'),
        '/usr/lib/systemd/system/rsync.service':
          '[Unit]\nDescription=fast remote file copy program daemon\nConditionPathExists=/etc/rsyncd.conf\nAfter=network.target\n\n[Service]\nExecStart=/usr/bin/rsync --daemon --no-detach\n\n[Install]\nWantedBy=multi-user.target\n',
      },
    },
    {
      name: 'sudo',
      version: '1.9.13p3-1+deb12u1',
      section: 'admin',
      priority: 'optional',
      description: 'Provide limited super user privileges to specific users',
      files: {
        '/usr/bin/sudo': binary('sudo', '1.9.13p3'),
        '/etc/sudoers': 'Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n',
      },
    },
  ];
}

/** One dpkg status stanza, in the field order dpkg writes. */
export function dpkgStanza(
  p: Pick<SamplePackage, 'name' | 'version' | 'section' | 'priority' | 'description' | 'source' | 'essential'>,
): string {
  return [
    `Package: ${p.name}`,
    ...(p.essential ? ['Essential: yes'] : []),
    'Status: install ok installed',
    `Priority: ${p.priority}`,
    `Section: ${p.section}`,
    'Maintainer: Debian Maintainers <debian-devel@lists.debian.org>',
    'Architecture: amd64',
    ...(p.source ? [`Source: ${p.source}`] : []),
    `Version: ${p.version}`,
    `Description: ${p.description}`,
    '',
  ].join('\n');
}

/** Runtime kernel parameters as /proc/sys shows them on a booted image (one value per file). */
const PROC_SYS: Record<string, string> = {
  'kernel/osrelease': '6.1.0-18-amd64',
  'kernel/kptr_restrict': '1',
  'kernel/dmesg_restrict': '1',
  'kernel/randomize_va_space': '2',
  'kernel/random/boot_id': '4b1f6a0e-3c9d-4e55-9a8e-0d2f5b7c1a93',
  'net/core/somaxconn': '4096',
  'net/ipv4/ip_forward': '0',
  'net/ipv4/tcp_syncookies': '1',
  'net/ipv4/conf/all/rp_filter': '1',
  'net/ipv4/ip_local_port_range': '32768\t60999',
  'vm/swappiness': '10',
  'fs/file-nr': '1184\t0\t9223372036854775807',
  'fs/protected_symlinks': '1',
};

/** Other files of the image that no package in the sample database owns. */
const FILES: Record<string, string> = {
  '/etc/os-release':
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
  '/etc/hostname': 'debian\n',
  // An image ships an empty machine-id: each host that boots from it gets its own.
  '/etc/machine-id': '',
  '/etc/resolv.conf': 'nameserver 10.0.0.2\n',
  '/etc/passwd':
    'root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\ndeploy:x:1000:1000:deploy:/home/deploy:/bin/bash\napp:x:998:998::/opt/app:/usr/sbin/nologin\n',
  '/etc/group': 'root:x:0:\nsudo:x:27:deploy\nwww-data:x:33:\ndeploy:x:1000:\napp:x:998:\n',
  '/etc/sysctl.conf': '#\n# /etc/sysctl.conf - Configuration file for setting system variables\n#\nvm.swappiness=10\n',
  '/etc/sysctl.d/90-hardening.conf':
    '# hardened defaults, baked into the image\nkernel.kptr_restrict = 1\nkernel.dmesg_restrict = 1\nnet.ipv4.ip_forward = 0\nnet.ipv4.tcp_syncookies = 1\n',
  '/etc/crontab':
    '# /etc/crontab: system-wide crontab\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }\n',
  '/etc/cron.d/app-logrotate':
    '# rotate the app\'s logs\nMAILTO=""\n*/15 * * * * root /usr/sbin/logrotate /etc/logrotate.d/app\n',
  '/etc/cron.daily/apt-compat': '#!/bin/sh\nexec /usr/lib/apt/apt.systemd.daily\n',
  '/etc/logrotate.d/app': '/var/log/app/*.log {\n  daily\n  rotate 7\n  compress\n}\n',
  '/usr/lib/systemd/system/apt-daily.timer':
    '[Unit]\nDescription=Daily apt download activities\n\n[Timer]\nOnCalendar=*-*-* 6,18:00\nRandomizedDelaySec=12h\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n',
  '/etc/ssh/ssh_host_ed25519_key': 'generated on first boot; ignored by the default rules\n',
  '/root/.ssh/authorized_keys':
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoBreakGlassKeyOnlyForTheSampleImage0000 break-glass@ops\n',
  '/home/deploy/.ssh/authorized_keys':
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoDeployKeyOnlyForTheSampleImage00000000 deploy@ci\n',
  '/opt/app/bin/start': '#!/bin/sh\nexec /opt/app/bin/server --config /opt/app/config.yaml\n',
  '/opt/app/bin/server': binary('app server', '2.7.0'),
  '/opt/app/config.yaml': 'listen: 127.0.0.1:8080\nupstream: https://api.internal.example\nlog: /var/log/app/app.log\n',
  '/opt/app/VERSION': '2.7.0\n',
  '/boot/config-6.1.0-18-amd64': 'CONFIG_SECURITY=y\nCONFIG_SECURITY_APPARMOR=y\nCONFIG_MODULE_SIG=y\n',
  '/var/log/app/app.log': 'ignored: logs change all the time\n',
};

function isExecutable(hostPath: string, content: string): boolean {
  return content.startsWith('#!') || /\/s?bin\//.test(hostPath);
}

function put(root: string, hostPath: string, content: string): void {
  const real = join(root, hostPath);
  mkdirSync(dirname(real), { recursive: true });
  writeFileSync(real, content, { mode: isExecutable(hostPath, content) ? 0o755 : 0o644 });
}

/** Write the sample image into `root` (an empty or missing directory); returns what it holds, for the story. */
export function writeSampleRoot(root: string): { packages: number; files: number; parameters: number } {
  const packages = samplePackages();
  let files = 0;
  for (const p of packages) {
    for (const [path, content] of Object.entries(p.files)) {
      put(root, path, content);
      files++;
    }
    // dpkg's record of what each package owns: what attributes a changed file to its package.
    put(root, `/var/lib/dpkg/info/${p.name}.list`, Object.keys(p.files).join('\n') + '\n');
  }
  put(root, '/var/lib/dpkg/status', packages.map(dpkgStanza).join('\n'));
  for (const [path, content] of Object.entries(FILES)) {
    put(root, path, content);
    files++;
  }
  for (const [path, value] of Object.entries(PROC_SYS)) put(root, `/proc/sys/${path}`, value + '\n');
  // `systemctl enable apt-daily.timer` is this link.
  mkdirSync(join(root, 'etc/systemd/system/timers.target.wants'), { recursive: true });
  symlinkSync(
    '/usr/lib/systemd/system/apt-daily.timer',
    join(root, 'etc/systemd/system/timers.target.wants/apt-daily.timer'),
  );
  for (const dir of ['/var/spool/cron/crontabs', '/usr/local/bin', '/usr/local/sbin', '/tmp', '/run'])
    mkdirSync(join(root, dir), { recursive: true });
  return { packages: packages.length, files, parameters: Object.keys(PROC_SYS).length };
}
