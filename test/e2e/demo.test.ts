/** `npm run demo` is the first thing a new user runs: it must tell the whole story, succeed, and leave nothing behind. */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/driftwarden.js', import.meta.url));

/** Ten agents on a busy CI machine: generous, the demo itself says how long it took. */
const DEMO_TIMEOUT_MS = 150_000;

interface Run {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Runs the demo; `onOutput` sees the output as it grows and may signal the process. */
function runDemo(args: string[], onOutput?: (stdout: string, pid: number) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'demo', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      onOutput?.(stdout, child.pid!);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ stdout, stderr, code, signal }));
  });
}

function workDir(stdout: string): string {
  const m = /working in (\/\S+driftwarden-demo-\w+)/.exec(stdout);
  if (!m) throw new Error(`the demo did not say where it works:\n${stdout}`);
  return m[1]!;
}

/** Processes whose command line names the demo's directory: its agents (`agent --config DIR/hosts/…`). */
function processesUsing(dir: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

const TAINTED = ['web-1', 'web-2', 'api-1', 'api-2'];
const CLEAN = ['web-3', 'api-3', 'api-4', 'api-5', 'api-6', 'api-7'];

describe('driftwarden demo', () => {
  it(
    '--exit: ten agents report, the drifted hosts are tainted and the others clean, and it cleans up',
    async () => {
      let agentsSeen = 0;
      const r = await runDemo(['--exit'], (out) => {
        if (agentsSeen === 0 && out.includes('== 4.')) agentsSeen = processesUsing(workDir(out)).length;
      });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      // Real agents, one process per host, while the story ran.
      expect(agentsSeen).toBe(10);
      expect(r.stdout).toMatch(/manifest of img-base-2026\.11 published: signature by [0-9a-f]{16} checked/);
      expect(r.stdout).toMatch(/a copy that blesses a hand-patched openssl is refused: .*does not match its digest/);
      expect(r.stdout).toContain('all 10 hosts clean');
      // The taints as they happen, each with the deviations that decided it (how many depends on how the
      // watcher batched the writes, so only that there are some, and what kind).
      const taints = {
        'web-1':
          /packages (openssl|libssl3):amd64: version 3\.0\.11-1~deb12u2 -> 3\.0\.13-1~deb12u1|files \/usr\/bin\/openssl: sha256/,
        'web-2':
          /packages (openssl|libssl3):amd64: version 3\.0\.11-1~deb12u2 -> 3\.0\.13-1~deb12u1|files \/usr\/bin\/openssl: sha256/,
        'api-1': /sysctl net\.core\.somaxconn: .*runtime 4096 -> 65535|files \/etc\/sysctl\.d\/99-tuning\.conf: added/,
        'api-2': /packages strace:amd64: added|files \/usr\/bin\/strace: added|\/etc\/cron\.d\/debug-trace.*: added/,
      };
      for (const [host, deviation] of Object.entries(taints)) {
        const m = new RegExp(
          `\\n  ${host} +\\(\\w+\\) +clean +-> tainted +taint: [^\\n]+\\n((?: {26}[^\\n]*\\n)+)`,
        ).exec(r.stdout);
        expect(m, `${host} becoming tainted`).not.toBeNull();
        expect(m![1]).toMatch(deviation);
      }
      // Nothing else was tainted on the way.
      expect(r.stdout.match(/-> tainted/g)).toHaveLength(4);
      // The fleet table at the end.
      for (const h of TAINTED) expect(r.stdout).toMatch(new RegExp(`\\n  ${h} +\\w+ +tainted +[1-9]`));
      for (const h of CLEAN) expect(r.stdout).toMatch(new RegExp(`\\n  ${h} +\\w+ +clean +0`));
      expect(r.stdout).toContain(`As expected: ${TAINTED.join(', ')} are tainted`);
      // The scheduler, in dry-run, as its API reported it: web's breaker trips and nothing there goes
      // further; in api the budget (one at a time) goes to the most severe host, the other waits.
      const scheduler = r.stdout.slice(r.stdout.indexOf('== 6.'), r.stdout.indexOf('== 7.'));
      expect(scheduler).toMatch(
        /\n  web +2 of 3 tainted \(67%\), dry-run\n +breaker tripped: 2 of 3 hosts \(67%\) tainted within 15m, more than taintedShare 30%\n/,
      );
      expect(scheduler).toMatch(/\n +web-1 +paused +\[/);
      expect(scheduler).toMatch(/\n +web-2 +paused +\[/);
      expect(scheduler).toMatch(/\n  api +2 of 7 tainted \(29%\), dry-run\n +breaker closed/);
      expect(scheduler).toMatch(
        /\n +api-2 +would replace +\[critical\] +first in the queue.*within budgets \(group api: 0 more allowed after this/,
      );
      expect(scheduler).toMatch(
        /\n +api-1 +waits +\[high\] +for budget: the slot goes to api-2 first \(budget "\*": maxUnavailable 1/,
      );
      expect(scheduler.match(/would replace +\[/g)).toHaveLength(1);
      expect(scheduler.match(/\n +budgets in force: budget "\*": at most 1 replacement at a time/g)).toHaveLength(2);
      expect(scheduler).not.toMatch(/no replacement scheduler|next to be built/);
      expect(r.stdout).toContain(
        'As expected: the breaker paused web (nothing scheduled there); api-2 would be replaced (dry-run), api-1 waits for budget.',
      );
      // --exit does not serve.
      expect(r.stdout).not.toContain('Ctrl-C');
      const dir = workDir(r.stdout);
      expect(r.stdout).toContain(`removed ${dir}`);
      expect(existsSync(dir)).toBe(false);
      expect(processesUsing(dir)).toEqual([]);
    },
    DEMO_TIMEOUT_MS,
  );

  it(
    'serves until Ctrl-C, then stops its agents and the controller and removes its directory',
    async () => {
      let interrupted = false;
      let agents: number[] = [];
      let dashboard = '';
      let checked: Promise<{ page: number; pageType: string; signIn: number; cookie: boolean }> = Promise.reject(
        new Error('the demo never said it serves'),
      );
      checked.catch(() => {}); // awaited below
      const r = await runDemo([], (out, pid) => {
        if (interrupted || !out.includes('Ctrl-C stops')) return;
        interrupted = true;
        agents = processesUsing(workDir(out));
        dashboard = /dashboard: +(http:\/\/127\.0\.0\.1:\d+\/) +\(sign in with the admin token\)/.exec(out)?.[1] ?? '';
        const token = /admin token: +(dwt_\S+)/.exec(out)?.[1] ?? '';
        // While it serves: the dashboard is at the URL it printed, and the token it printed signs in.
        checked = (async () => {
          try {
            const page = await fetch(dashboard);
            const signIn = await fetch(`${dashboard}api/v1/session`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ token }),
            });
            return {
              page: page.status,
              pageType: page.headers.get('content-type') ?? '',
              signIn: signIn.status,
              cookie: (signIn.headers.get('set-cookie') ?? '') !== '',
            };
          } finally {
            process.kill(pid, 'SIGINT');
          }
        })();
      });
      const served = await checked;
      expect(served).toMatchObject({ page: 200, signIn: 200, cookie: true });
      expect(served.pageType).toMatch(/text\/html/);
      expect(r.stderr).toBe('');
      expect(interrupted).toBe(true);
      expect(dashboard).not.toBe('');
      expect(agents).toHaveLength(10);
      expect(r.code).toBe(0);
      const dir = workDir(r.stdout);
      expect(r.stdout).toContain(`removed ${dir}`);
      expect(existsSync(dir)).toBe(false);
      expect(agents.filter((pid) => existsSync(`/proc/${pid}`))).toEqual([]);
      // The controller is gone with it.
      await expect(fetch(`${dashboard}healthz`)).rejects.toThrow();
    },
    DEMO_TIMEOUT_MS,
  );
});
