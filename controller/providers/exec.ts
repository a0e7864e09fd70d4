/**
 * @module The `exec` provider: runs a command from an argument vector (never a shell string) with the
 * host's details as JSON on stdin and in DRIFTWARDEN_* environment variables, under a timeout.
 * Exit 0 is accepted (its first line of output, if any, is kept as the reference); anything else fails.
 * An optional status command answers 0 done, 3 still running.
 */
import { spawn } from 'node:child_process';
import { parseDuration } from '../../shared/schema/config.js';
import { ProviderError, type Provider, type ReplacementTarget } from './types.js';
import type { z } from 'zod';
import type { ExecProviderSchema } from '../scheduler/config.js';

/** The `exec` provider block as its schema parses it (defaults filled in). */
export type ExecConfig = Omit<z.output<typeof ExecProviderSchema>, 'type'>;

export const EXIT_PENDING = 3;

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const OUTPUT_LIMIT = 64 * 1024;

function run(
  argv: string[],
  input: string,
  env: Record<string, string>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout ends everything the command started: a grandchild holding
    // the output pipes would otherwise keep the call open after the command itself was killed.
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      shell: false,
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (b: Buffer) => {
      if (stdout.length < OUTPUT_LIMIT) stdout += b.toString('utf8');
    });
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < OUTPUT_LIMIT) stderr += b.toString('utf8');
    });
    const signalGroup = (sig: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        child.kill(sig); // the group is gone already, or was never made
      }
    };
    const kill = () => {
      signalGroup('SIGTERM');
      // A command that ignores SIGTERM is killed for good.
      setTimeout(() => signalGroup('SIGKILL'), 5_000).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    const onAbort = () => kill();
    signal.addEventListener('abort', onAbort);
    child.on('error', (err) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve({ code, signal: sig, stdout, stderr, timedOut });
    });
    child.stdin.on('error', () => {}); // a command that does not read stdin closes it early
    child.stdin.end(input);
  });
}

function envOf(action: 'replace' | 'status', t: ReplacementTarget): Record<string, string> {
  return {
    DRIFTWARDEN_ACTION: action,
    DRIFTWARDEN_REPLACEMENT_ID: t.replacementId,
    DRIFTWARDEN_ATTEMPT: String(t.attempt),
    DRIFTWARDEN_HOST_ID: t.hostId,
    DRIFTWARDEN_HOSTNAME: t.hostname ?? '',
    DRIFTWARDEN_IMAGE_ID: t.imageId,
    DRIFTWARDEN_GROUP: t.group,
    DRIFTWARDEN_REF: t.ref ?? '',
  };
}

function describe(argv: string[], r: RunResult, timeoutMs: number): string {
  const why = r.timedOut ? `timed out after ${timeoutMs} ms` : r.signal ? `killed by ${r.signal}` : `exited ${r.code}`;
  const tail = r.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 300);
  return `${argv[0]} ${why}${tail ? `: ${tail}` : ''}`;
}

export function execProvider(cfg: ExecConfig): Provider {
  const timeoutMs = parseDuration(cfg.timeout) ?? 300_000;
  const invoke = async (
    argv: string[],
    action: 'replace' | 'status',
    t: ReplacementTarget,
    signal: AbortSignal,
  ): Promise<RunResult> => {
    const input = JSON.stringify({
      action,
      replacementId: t.replacementId,
      attempt: t.attempt,
      ref: t.ref,
      group: t.group,
      reason: t.reason,
      host: { id: t.hostId, hostname: t.hostname, imageId: t.imageId, addresses: t.addresses },
    });
    try {
      return await run(argv, input, envOf(action, t), timeoutMs, signal);
    } catch (err) {
      // ENOENT, EACCES: the command cannot run at all; retrying will not help.
      throw new ProviderError(
        'exec',
        `cannot run ${argv[0]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        { retryable: false, cause: err },
      );
    }
  };
  return {
    type: 'exec',
    async replace(t, ctx) {
      const r = await invoke(cfg.command, 'replace', t, ctx.signal);
      if (r.code !== 0) throw new ProviderError('exec', describe(cfg.command, r, timeoutMs));
      const first = r.stdout.trim().split('\n')[0]?.trim() ?? '';
      return {
        ref: first ? first.slice(0, 200) : null,
        detail: `${cfg.command[0]} accepted${first ? ` (${first.slice(0, 80)})` : ''}`,
      };
    },
    async status(t, ctx) {
      if (!cfg.statusCommand) return { state: 'done', detail: `${cfg.command[0]} exited 0` };
      const r = await invoke(cfg.statusCommand, 'status', t, ctx.signal);
      if (r.code === 0)
        return { state: 'done', detail: r.stdout.trim().split('\n')[0] || `${cfg.statusCommand[0]} exited 0` };
      if (r.code === EXIT_PENDING) return { state: 'pending' };
      throw new ProviderError('exec', describe(cfg.statusCommand, r, timeoutMs));
    },
  };
}
