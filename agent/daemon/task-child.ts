/**
 * @module Run one piece of heavy work (prepare, scan, collect) in a short-lived process of the agent's own
 * program: `driftwarden agent task`, started as the daemon was (node with the CLI's script, or the single
 * executable re-run), with a V8 heap limit of its own and held to `limits` by a ChildWatchdog. Whatever
 * the work allocated goes back to the system when the process ends, so the daemon's memory is the same
 * after a 100k-file scan as after none.
 */
import { spawn } from 'node:child_process';
import { parseDuration } from '../../shared/duration.js';
import { ChildWatchdog, type ChildLimits } from './child-watchdog.js';
import type { ChildMessage, ParentMessage, TaskRequest, TaskResult } from './task-protocol.js';

export type TaskOutcome =
  | { ok: true; result: TaskResult; peakRssMb: number }
  /** The task reported an error of its own (a bad config, a manifest that does not verify). */
  | { ok: false; failed: 'error'; code: string; reason: string; phase?: 'config' }
  /** The process was stopped by the watchdog, died, or ended without an answer. */
  | { ok: false; failed: 'killed' | 'crashed'; reason: string };

export interface TaskOptions {
  /** Limits known before start (prepare learns them from the config it reads, and says so). */
  limits?: ChildLimits;
  /** Answers the child's request for the report's sequence number. */
  nextSeq?: () => number;
  /** Extra environment (tests). */
  env?: NodeJS.ProcessEnv;
}

/** V8 flags a daemon may run with that a scan must not inherit: the JIT is off only for the idle daemon. */
const DAEMON_ONLY = /^--(jitless|max-old-space-size(=.*)?)$/;

/** The V8 heap limit of a task process: the rest of its memory limit goes to the runtime, buffers and threads. */
export function heapLimitMb(memoryMb: number): number {
  return Math.max(48, Math.floor(memoryMb * 0.6));
}

/** How to start this program again: the single executable runs itself; otherwise node runs the same script. */
async function selfCommand(): Promise<{ file: string; args: string[] }> {
  let sea = false;
  try {
    const m = (await import('node:sea')) as { isSea?: () => boolean };
    sea = m.isSea?.() ?? false;
  } catch {
    // Node before 20.12 has no node:sea; it cannot have built a single executable of this agent either
  }
  if (sea) return { file: process.execPath, args: [] };
  const script = process.argv[1];
  if (!script) throw new Error('cannot start the scan process: no script path in process.argv');
  return { file: process.execPath, args: [...process.execArgv.filter((a) => !DAEMON_ONLY.test(a)), script] };
}

/** NODE_OPTIONS for the task: the daemon's, without its idle-only flags, with the task's heap limit. */
export function taskNodeOptions(parent: string | undefined, memoryMb: number | undefined): string {
  const kept = (parent ?? '')
    .split(/\s+/)
    .filter((a) => a && !DAEMON_ONLY.test(a))
    .join(' ');
  const heap = memoryMb ? `--max-old-space-size=${heapLimitMb(memoryMb)}` : '';
  return [kept, heap].filter(Boolean).join(' ');
}

export async function runTask(request: TaskRequest, opts: TaskOptions = {}): Promise<TaskOutcome> {
  const { file, args } = await selfCommand();
  const memoryMb = opts.limits?.memoryMb ?? ('config' in request ? request.config.limits.memoryMb : undefined);
  const child = spawn(file, [...args, 'agent', 'task'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...opts.env, NODE_OPTIONS: taskNodeOptions(process.env.NODE_OPTIONS, memoryMb) },
    serialization: 'advanced',
  });
  return new Promise<TaskOutcome>((resolve) => {
    let answer: TaskOutcome | null = null;
    let watchdog: ChildWatchdog | null = null;
    const watch = (limits: ChildLimits) => {
      watchdog?.stop();
      watchdog = new ChildWatchdog(child.pid!, limits, () => child.kill('SIGKILL')).start();
    };
    if (opts.limits) watch(opts.limits);
    const send = (m: ParentMessage) => {
      if (child.connected) child.send(m);
    };
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'seq') send({ type: 'seq', seq: opts.nextSeq ? opts.nextSeq() : 0 });
      else if (m.type === 'limits')
        watch({
          memoryMb: m.limits.memoryMb,
          cpuShare: m.limits.cpuShare,
          maxDurationMs: parseDuration(m.limits.maxScanDuration) ?? 3_600_000,
        });
      else if (m.type === 'done') answer = { ok: true, result: m.result, peakRssMb: 0 };
      else if (m.type === 'error')
        answer = {
          ok: false,
          failed: 'error',
          code: m.code,
          reason: m.message,
          ...(m.phase ? { phase: m.phase } : {}),
        };
    });
    child.on('error', (err) => {
      watchdog?.stop();
      resolve({ ok: false, failed: 'crashed', reason: `the scan process could not start: ${err.message}` });
    });
    child.on('exit', (code, signal) => {
      const w = watchdog as ChildWatchdog | null;
      w?.stop();
      const peak = Math.round(w?.peakRssMb ?? 0);
      if (w?.reason) return resolve({ ok: false, failed: 'killed', reason: w.reason });
      // An answer counts only from a process that ended cleanly: one killed after answering is still fine.
      if (answer?.ok) return resolve({ ...answer, peakRssMb: peak });
      if (answer) return resolve(answer);
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const why =
        signal === 'SIGKILL'
          ? ' (the kernel OOM killer under the unit MemoryMax, or an operator)'
          : code === 134 || signal === 'SIGABRT'
            ? ` (out of memory: its heap limit is ${memoryMb ? heapLimitMb(memoryMb) : 'the default'} MB, from limits.memoryMb)`
            : '';
      resolve({ ok: false, failed: 'crashed', reason: `the scan process ${how} before it finished${why}` });
    });
    send({ type: 'request', request });
  });
}
