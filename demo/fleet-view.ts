/**
 * @module What the demo shows of the fleet, read from the controller's API as any client would: it polls
 * `GET /api/v1/hosts`, and for a host whose state moved, prints the transitions it has not shown yet from
 * the host's timeline (`GET /api/v1/hosts/:id`), with the deviations that tainted it.
 */
import { api, type ApiTarget } from '../shared/api-client.js';
import type { HostDeviationRow, HostState, TransitionRow } from '../controller/store/types.js';
import type { Terminal } from './terminal.js';

export interface HostSummary {
  id: string;
  hostname: string | null;
  group: string | null;
  state: HostState;
  stateSince: string;
  deviationCount: number;
}

interface HostDetail {
  deviations: HostDeviationRow[];
  timeline: { transitions: TransitionRow[] };
}

const SEVERITY_RANK: Record<string, number> = { critical: 0, high: 1, medium: 2, low: 3 };

function show(field: string, v: unknown): string {
  if (v === undefined || v === null) return '(none)';
  if (field === 'sha256' && typeof v === 'string') return v.slice(0, 12) + '…';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** "packages openssl:amd64: version 3.0.11-1~deb12u2 -> 3.0.13-1~deb12u1" */
export function describeDeviation(
  d: Pick<HostDeviationRow, 'collector' | 'key' | 'change' | 'expected' | 'actual'>,
): string {
  if (d.change !== 'modified') return `${d.collector} ${d.key}: ${d.change}`;
  const fields = [...new Set([...Object.keys(d.expected ?? {}), ...Object.keys(d.actual ?? {})])].filter(
    (f) => JSON.stringify(d.expected?.[f]) !== JSON.stringify(d.actual?.[f]),
  );
  return `${d.collector} ${d.key}: ${fields.map((f) => `${f} ${show(f, d.expected?.[f])} -> ${show(f, d.actual?.[f])}`).join(', ')}`;
}

export class FleetView {
  private readonly hosts = new Map<string, HostSummary>();
  private readonly shown = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<void> = Promise.resolve();
  private stopped = false;
  /** The last error a background poll met, shown once instead of on every tick. */
  private lastError: string | null = null;

  constructor(
    private readonly target: ApiTarget,
    /** Host id → the name the story gives it (the hostname the host reports is the same, once enrolled). */
    private readonly names: ReadonlyMap<string, string>,
    private readonly term: Terminal,
  ) {}

  get all(): HostSummary[] {
    return [...this.hosts.values()];
  }

  state(id: string): HostState | undefined {
    return this.hosts.get(id)?.state;
  }

  /** Poll in the background until stop(). */
  start(everyMs = 200): void {
    this.stopped = false;
    const tick = () => {
      this.poll()
        .then(
          () => {
            this.lastError = null;
          },
          (err: unknown) => {
            const msg = err instanceof Error ? err.message : String(err);
            if (msg !== this.lastError && !this.stopped)
              this.term.say(this.term.red(`  (cannot read the fleet: ${msg})`));
            this.lastError = msg;
          },
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, everyMs);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.current;
  }

  /**
   * One pass: every host whose state moved since the last pass gets its new transitions printed. Passes
   * run one after another (a caller's and the background's), so no transition is printed twice.
   */
  poll(): Promise<void> {
    const pass = this.current.then(() => this.pollOnce());
    this.current = pass.catch(() => undefined);
    return pass;
  }

  private async pollOnce(): Promise<void> {
    let after: string | undefined;
    do {
      const page = await api<{ hosts: HostSummary[]; next?: string | null }>(
        this.target,
        'GET',
        `/api/v1/hosts?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`,
      );
      for (const h of page.hosts) {
        const before = this.hosts.get(h.id);
        // The new state counts only once its transitions are on the screen: the story's next line must come after them.
        if (!before || before.state !== h.state || before.stateSince !== h.stateSince) await this.showTransitions(h);
        this.hosts.set(h.id, h);
      }
      after = page.next ?? undefined;
    } while (after);
  }

  /** Resolves true once `done` holds for the fleet, false after `timeoutMs` (or when aborted). */
  async waitFor(done: (view: FleetView) => boolean, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this)) {
      if (Date.now() > deadline) return false;
      signal.throwIfAborted();
      await new Promise((r) => setTimeout(r, 100));
    }
    return true;
  }

  private async showTransitions(h: HostSummary): Promise<void> {
    const detail = await api<HostDetail>(this.target, 'GET', `/api/v1/hosts/${encodeURIComponent(h.id)}`);
    const last = this.shown.get(h.id) ?? 0;
    const name = (this.names.get(h.id) ?? h.hostname ?? h.id).padEnd(6);
    const group = `(${h.group ?? '-'})`.padEnd(6);
    for (const t of detail.timeline.transitions.filter((t) => t.id > last)) {
      this.term.say(
        `  ${this.term.bold(name)} ${group} ${(t.from ?? 'new').padEnd(8)} -> ${this.term.state(t.to, 8)}  ${this.term.dim(t.cause)}`,
      );
      this.shown.set(h.id, t.id);
      if (t.to !== 'tainted') continue;
      const tainting = detail.deviations
        .filter((d) => d.action === 'taint')
        .sort(
          (a, b) =>
            (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9) ||
            a.collector.localeCompare(b.collector) ||
            a.key.localeCompare(b.key),
        );
      for (const d of tainting.slice(0, 4))
        this.term.say(`  ${' '.repeat(24)}${this.term.red(`[${d.severity}]`.padEnd(11))}${describeDeviation(d)}`);
      if (tainting.length > 4) this.term.say(`  ${' '.repeat(24)}… and ${tainting.length - 4} more`);
    }
  }
}
