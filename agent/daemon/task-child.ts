/**
 * @module Run one piece of heavy work (prepare, scan, collect) in a short-lived process of the agent's own
 * program: `driftwarden agent task`, started as the daemon was (node with the CLI's script, or the single
 * executable re-run), with a V8 heap limit of its own and held to `limits` by a ChildWatchdog. Whatever
 * the work allocated goes back to the system when the process ends, so the daemon's memory is the same
 * after a 100k-file scan as after none.
 */
import { type ChildProcess, spawn } from 'node:child_process';
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

/**
 * Runs tasks in one task process at a time, and keeps that process for `warmMs` after a task: a host
 * scanned every few seconds (tests, a tight schedule) would otherwise pay a process start and the
 * scanning code's load on every scan. Past `warmMs` idle the process is let go (it exits when its IPC
 * channel closes), and with it everything its scans allocated.
 */
export class TaskRunner {
  private child: ChildProcess | null = null;
  private heapFor: number | undefined;
  private idle: NodeJS.Timeout | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  /** Every task process this runner started that has not exited: close() lets each of them go. */
  private readonly live = new Set<ChildProcess>();

  constructor(private readonly warmMs = 15_000) {}

  /** Runs the task once those asked for before it are done (one process, one task at a time). */
  run(request: TaskRequest, opts: TaskOptions & { fresh?: boolean } = {}): Promise<TaskOutcome> {
    const next = this.queue.then(() => this.runNow(request, opts));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async runNow(request: TaskRequest, opts: TaskOptions & { fresh?: boolean }): Promise<TaskOutcome> {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    const memoryMb = opts.limits?.memoryMb ?? ('config' in request ? request.config.limits.memoryMb : undefined);
    let child = this.child;
    if (opts.fresh || !child || !child.connected || this.heapFor !== memoryMb) {
      this.close();
      child = await spawnTask(memoryMb, opts.env);
      const started = child;
      this.live.add(started);
      started.once('exit', () => this.live.delete(started));
      this.heapFor = memoryMb;
    }
    const outcome = await runOn(child, request, opts, memoryMb);
    const alive = child.connected && child.exitCode === null && child.signalCode === null;
    if (alive && !opts.fresh && this.warmMs > 0) {
      this.child = child;
      this.idle = setTimeout(() => this.close(), this.warmMs);
      this.idle.unref();
    } else if (alive) {
      child.disconnect();
      this.child = null;
    } else this.child = null;
    return outcome;
  }

  /** Let the task process go (it exits once its channel closes). */
  close(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.child = null;
    for (const c of this.live) if (c.connected) c.disconnect();
  }
}

async function spawnTask(memoryMb: number | undefined, env: NodeJS.ProcessEnv | undefined): Promise<ChildProcess> {
  const { file, args } = await selfCommand();
  return spawn(file, [...args, 'agent', 'task'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env, NODE_OPTIONS: taskNodeOptions(process.env.NODE_OPTIONS, memoryMb) },
    serialization: 'advanced',
  });
}

/** One task in a one-off process. */
export function runTask(request: TaskRequest, opts: TaskOptions = {}): Promise<TaskOutcome> {
  return new TaskRunner(0).run(request, { ...opts, fresh: true });
}

function runOn(
  child: ChildProcess,
  request: TaskRequest,
  opts: TaskOptions,
  memoryMb: number | undefined,
): Promise<TaskOutcome> {
  return new Promise<TaskOutcome>((resolve) => {
    let watchdog: ChildWatchdog | null = null;
    const watch = (limits: ChildLimits) => {
      watchdog?.stop();
      watchdog = new ChildWatchdog(child.pid!, limits, () => child.kill('SIGKILL')).start();
    };
    const finish = (outcome: TaskOutcome) => {
      const w = watchdog as ChildWatchdog | null;
      w?.stop();
      child.off('message', onMessage);
      child.off('exit', onExit);
      child.off('error', onError);
      resolve(outcome.ok ? { ...outcome, peakRssMb: Math.round(w?.peakRssMb ?? 0) } : outcome);
    };
    const send = (m: ParentMessage) => {
      if (child.connected) child.send(m);
    };
    const onMessage = (m: ChildMessage) => {
      if (m.type === 'seq') send({ type: 'seq', seq: opts.nextSeq ? opts.nextSeq() : 0 });
      else if (m.type === 'limits')
        watch({
          memoryMb: m.limits.memoryMb,
          cpuShare: m.limits.cpuShare,
          maxDurationMs: parseDuration(m.limits.maxScanDuration) ?? 3_600_000,
        });
      else if (m.type === 'done') finish({ ok: true, result: m.result, peakRssMb: 0 });
      else if (m.type === 'error')
        finish({ ok: false, failed: 'error', code: m.code, reason: m.message, ...(m.phase ? { phase: m.phase } : {}) });
    };
    const onError = (err: Error) =>
      finish({ ok: false, failed: 'crashed', reason: `the task process could not start: ${err.message}` });
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      const w = watchdog as ChildWatchdog | null;
      if (w?.reason) return finish({ ok: false, failed: 'killed', reason: w.reason });
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const why =
        signal === 'SIGKILL'
          ? ' (the kernel OOM killer under the unit MemoryMax, or an operator)'
          : code === 134 || signal === 'SIGABRT'
            ? ` (out of memory: its heap limit is ${memoryMb ? heapLimitMb(memoryMb) : 'the default'} MB, from limits.memoryMb)`
            : '';
      finish({ ok: false, failed: 'crashed', reason: `the scan process ${how} before it finished${why}` });
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.on('error', onError);
    if (opts.limits) watch(opts.limits);
    send({ type: 'request', request });
  });
}
