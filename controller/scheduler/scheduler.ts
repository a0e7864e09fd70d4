/**
 * @module The replacement scheduler: detection taints hosts, this loop acts on them. A tick is a pass
 * of named steps (steps/: poll, then the plan — queue, breaker, budgets, windows, approvals, schedule
 * — in one transaction serialized across controllers, then act); this class runs passes and carries
 * the operators' actions on the queue.
 */
import { randomUUID } from 'node:crypto';
import { DwError } from '../../shared/errors.js';
import { next, type HostEvent } from '../states.js';
import { EVENT_KINDS, recordEvent } from '../event-stream.js';
import type { HostRow, HostState, StoreTx } from '../store/types.js';
import {
  ACTIVE_REPLACEMENT_STATES,
  IN_FLIGHT_STATES,
  type GroupPause,
  type GroupStateRow,
  type ReplacementRow,
} from '../store/replacements.js';
import { budgetAllowance, combine, groupMatches } from './budgets.js';
import type { Mode, SchedulerConfig } from './config.js';
import { SchedulerEvents } from './scheduler-events.js';
import {
  emptyGroup,
  hostContext,
  ms,
  newRow,
  runPass,
  transition,
  type SchedulerDeps,
  type SchedulerRuntime,
  type TickResult,
} from './steps/index.js';

export type { SchedulerDeps, TickResult } from './steps/index.js';

export class Scheduler implements SchedulerRuntime {
  readonly events: SchedulerEvents;
  readonly owner: string;
  private readonly abort = new AbortController();
  private running: Promise<TickResult> | null = null;

  constructor(readonly d: SchedulerDeps) {
    this.events = d.events ?? new SchedulerEvents(d.log);
    this.owner = d.owner ?? `controller-${process.pid}-${randomUUID().slice(0, 8)}`;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get config(): SchedulerConfig {
    return this.d.config;
  }

  /** The effective mode of a group: scheduler.mode `off` stops everything, else a group's own mode wins. */
  modeFor(group: string): Mode {
    if (this.d.config.mode === 'off') return 'off';
    return this.settingsFor(group)?.mode ?? this.d.config.mode;
  }

  settingsFor(group: string): SchedulerConfig['groups'][string] | undefined {
    const g = this.d.config.groups;
    if (g[group]) return g[group];
    const key = Object.keys(g).find((k) => groupMatches(k, group));
    return key === undefined ? undefined : g[key];
  }

  /** One tick; overlapping calls share the running one. */
  tick(): Promise<TickResult> {
    this.running ??= this.runTick().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Stops in-flight provider calls (they see an aborted signal) and waits for the tick to end. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running?.catch(() => {});
  }

  private async runTick(): Promise<TickResult> {
    const result: TickResult = {
      queued: 0,
      scheduled: 0,
      wouldReplace: 0,
      started: 0,
      completed: 0,
      failed: 0,
      tripped: [],
    };
    if (this.d.config.mode === 'off') return result;
    await runPass(this, result);
    return result;
  }

  /** Moves the host along the state table: its row, its timeline and the event stream, in `tx`. */
  private transition(
    tx: StoreTx,
    host: HostRow,
    from: HostState,
    event: HostEvent,
    at: string,
    actor: string,
  ): Promise<void> {
    return transition(tx, host, from, event, at, actor);
  }

  // ---- operators ----

  /** Queues a host by hand (without tainting it: a request is not drift), or re-queues a failed replacement. */
  async request(hostId: string, actor: string, reason: string): Promise<ReplacementRow> {
    const at = this.d.clock().toISOString();
    const row = await this.d.store.transaction(async (tx) => {
      await tx.replacements.lockScheduler();
      const host = await tx.lockHost(hostId);
      if (!host) throw new DwError('DW_ERR_NOT_FOUND', `no host ${hostId}`);
      if (host.state === 'replaced') throw new DwError('DW_ERR_STATE', `host ${hostId} is already replaced`);
      const active = await tx.replacements.activeForHost(hostId);
      if (active && active.state !== 'failed')
        throw new DwError('DW_ERR_CONFLICT', `host ${hostId} already has replacement ${active.id} (${active.state})`, {
          replacement: active.id,
        });
      // IMPORTANT: an operator's request is not drift. A host that is not tainted stays as it is (no
      // taint, no taintedAt, so the breaker does not count it) until the scheduler schedules it; a
      // cancel before then changes nothing about the host, and one after puts it back (steps/runtime.ts).
      let out: ReplacementRow;
      if (active) {
        const patch = {
          state: 'queued' as const,
          attempts: 0,
          nextAttemptAt: null,
          lastError: null,
          decision: null,
          decisionReason: `re-queued by ${actor}`,
          requestedBy: actor,
          reason,
          updatedAt: at,
        };
        await tx.replacements.update(active.id, patch);
        out = { ...active, ...patch };
      } else {
        out = newRow({
          hostId,
          group: host.group ?? this.d.config.defaultGroup,
          severity: null,
          taintedAt: host.taintedAt ?? at,
          requestedBy: actor,
          reason,
          now: at,
        });
        await tx.replacements.insert(out);
      }
      await tx.appendAudit({
        at,
        actor,
        action: 'replacement.request',
        target: hostId,
        detail: { replacement: out.id, reason, hostState: host.state },
      });
      return out;
    });
    this.events.emit({ type: 'replacement-queued', at, replacement: row });
    return row;
  }

  async approve(id: string, actor: string): Promise<ReplacementRow> {
    const at = this.d.clock().toISOString();
    const row = await this.d.store.transaction(async (tx) => {
      const r = await tx.replacements.lock(id);
      if (!r) throw new DwError('DW_ERR_NOT_FOUND', `no replacement ${id}`);
      if (r.state !== 'awaiting-approval' && r.state !== 'queued')
        throw new DwError('DW_ERR_STATE', `replacement ${id} is ${r.state}; only a queued one can be approved`);
      if (r.approvedAt)
        throw new DwError('DW_ERR_CONFLICT', `replacement ${id} was already approved by ${r.approvedBy}`);
      const patch = {
        state: 'queued' as const,
        approvedBy: actor,
        approvedAt: at,
        decision: null,
        decisionReason: `approved by ${actor}`,
        updatedAt: at,
      };
      await tx.replacements.update(id, patch);
      await tx.appendAudit({ at, actor, action: 'replacement.approve', target: r.hostId, detail: { replacement: id } });
      return { ...r, ...patch };
    });
    this.events.emit({ type: 'replacement-approved', at, replacement: row, actor });
    return row;
  }

  /**
   * Cancels a replacement the provider has not been asked to carry out (or that failed); a tainted host
   * stays tainted, one an operator asked for without drift goes back to what its deviations say.
   */
  async cancel(id: string, actor: string, reason: string): Promise<ReplacementRow> {
    const at = this.d.clock().toISOString();
    const row = await this.d.store.transaction(async (tx) => {
      const r = await tx.replacements.lock(id);
      if (!r) throw new DwError('DW_ERR_NOT_FOUND', `no replacement ${id}`);
      if (r.state === 'replacing')
        throw new DwError(
          'DW_ERR_STATE',
          `replacement ${id} is already with the provider (${r.provider ?? 'provider'}); wait for it, or mark it done`,
        );
      if (r.state === 'replaced' || r.state === 'cancelled')
        throw new DwError('DW_ERR_STATE', `replacement ${id} is already ${r.state}`);
      const host = await tx.lockHost(r.hostId);
      if (host && host.state === 'replacement-scheduled')
        await this.transition(tx, host, host.state, { type: 'replacement-cancelled', actor, reason }, at, actor);
      const patch = {
        state: 'cancelled' as const,
        decision: null,
        decisionReason: `cancelled by ${actor}: ${reason}`,
        finishedAt: at,
        leaseOwner: null,
        leaseUntil: null,
        updatedAt: at,
      };
      await tx.replacements.update(id, patch);
      await tx.appendAudit({
        at,
        actor,
        action: 'replacement.cancel',
        target: r.hostId,
        detail: { replacement: id, reason, was: r.state },
      });
      return { ...r, ...patch };
    });
    this.events.emit({ type: 'replacement-cancelled', at, replacement: row, actor });
    return row;
  }

  /** An operator says the host is gone (replaced out of band, or the provider's confirmation was lost). */
  async markDone(id: string, actor: string, replacedBy?: string): Promise<ReplacementRow> {
    const at = this.d.clock().toISOString();
    const row = await this.d.store.transaction(async (tx) => {
      const r = await tx.replacements.lock(id);
      if (!r) throw new DwError('DW_ERR_NOT_FOUND', `no replacement ${id}`);
      if (r.state === 'replaced' || r.state === 'cancelled')
        throw new DwError('DW_ERR_STATE', `replacement ${id} is already ${r.state}`);
      const host = await tx.lockHost(r.hostId);
      if (host) {
        // Walk the host state table rather than jump: every step is in the timeline with who did it.
        let state = host.state;
        const steps: HostEvent[] = [];
        const waiting = state !== 'replacement-scheduled' && state !== 'replacing' && state !== 'replaced';
        if (waiting) steps.push({ type: 'replacement-scheduled', detail: `marked done by ${actor}` });
        if (waiting || state === 'replacement-scheduled')
          steps.push({ type: 'replacement-started', detail: `marked done by ${actor}` });
        steps.push({ type: 'replacement-completed', detail: `marked done by ${actor}` });
        for (const e of steps) {
          await this.transition(tx, host, state, e, at, actor);
          state = next(state, e).state;
        }
      }
      const patch = {
        state: 'replaced' as const,
        finishedAt: at,
        confirmedAt: r.confirmedAt ?? at,
        replacedBy: replacedBy ?? r.replacedBy,
        decision: null,
        decisionReason: `marked done by ${actor}`,
        leaseOwner: null,
        leaseUntil: null,
        updatedAt: at,
      };
      await tx.replacements.update(id, patch);
      await tx.appendAudit({
        at,
        actor,
        action: 'replacement.done',
        target: r.hostId,
        detail: { replacement: id, was: r.state, replacedBy: patch.replacedBy },
      });
      return { ...r, ...patch };
    });
    this.events.emit({ type: 'replacement-completed', at, replacement: row });
    return row;
  }

  /** Lifts a breaker's (or an operator's) pause; only taints after now count toward the breaker again. */
  async resume(group: string, actor: string): Promise<GroupStateRow> {
    const at = this.d.clock().toISOString();
    const row = await this.d.store.transaction(async (tx) => {
      await tx.replacements.lockScheduler();
      const g = await tx.replacements.getGroup(group);
      if (!g?.paused) throw new DwError('DW_ERR_STATE', `group ${group} is not paused`);
      const out: GroupStateRow = { ...g, paused: false, resumedAt: at, resumedBy: actor, breakerSince: at };
      await tx.replacements.putGroup(out);
      await tx.appendAudit({
        at,
        actor,
        action: 'replacement.resume',
        target: group,
        detail: { pausedReason: g.pausedReason, pausedBy: g.pausedBy, pausedAt: g.pausedAt },
      });
      return out;
    });
    this.events.emit({ type: 'breaker-resumed', at, group, actor });
    return row;
  }

  /** An operator pauses a group by hand (same effect as the breaker). */
  async pause(group: string, actor: string, reason: string): Promise<GroupStateRow> {
    const at = this.d.clock().toISOString();
    const row = await this.d.store.transaction(async (tx) => {
      await tx.replacements.lockScheduler();
      const g = (await tx.replacements.getGroup(group)) ?? emptyGroup(group);
      if (g.paused) throw new DwError('DW_ERR_STATE', `group ${group} is already paused: ${g.pausedReason}`);
      const out: GroupStateRow = {
        ...g,
        paused: true,
        pausedReason: `${reason} (paused by ${actor})`,
        pausedAt: at,
        pausedBy: actor,
      };
      await tx.replacements.putGroup(out);
      await tx.appendAudit({ at, actor, action: 'replacement.pause', target: group, detail: { reason } });
      // The same kind as the breaker's: either way replacements in the group stop until someone resumes it.
      await recordEvent(tx, {
        kind: EVENT_KINDS.breakerTripped,
        hostId: null,
        actor,
        at,
        detail: { group, reason: out.pausedReason, mode: this.modeFor(group), pausedBy: actor },
      });
      return out;
    });
    this.events.emit({ type: 'breaker-tripped', at, group, reason: row.pausedReason! });
    return row;
  }

  /** Every group the scheduler knows (from hosts and its own state) with its mode, breaker and the budgets in force now. */
  async groups(): Promise<GroupView[]> {
    const cfg = this.d.config;
    const now = this.d.clock();
    const r = this.d.store.replacements;
    const staleBefore = new Date(now.getTime() - this.d.silentAfterMs).toISOString();
    const counts = new Map((await r.groupCounts(staleBefore, cfg.defaultGroup)).map((c) => [c.group, c]));
    const states = new Map((await r.listGroups()).map((g) => [g.name, g]));
    const longest = Math.max(0, ...cfg.budgets.map((b) => (b.rate ? ms(b.rate.per) : 0)));
    const starts = longest > 0 ? await r.startsSince(new Date(now.getTime() - longest).toISOString()) : [];
    // Counts, not rows: a queue of tens of thousands must not be loaded to be counted.
    const active = await r.countByGroup(ACTIVE_REPLACEMENT_STATES);
    const names = [...new Set([...counts.keys(), ...states.keys()])].sort();
    return names.map((name) => {
      const c = counts.get(name) ?? { group: name, total: 0, unavailable: 0, clean: 0 };
      const { name: _name, breakerSince: _since, ...pause } = states.get(name) ?? emptyGroup(name);
      const budgets = cfg.budgets.filter((b) => groupMatches(b.group, name));
      const input = {
        now,
        total: c.total,
        unavailable: c.unavailable,
        clean: c.clean,
        starts: starts.filter((s) => s.group === name).map((s) => Date.parse(s.startedAt)),
      };
      const allowance = combine(...budgets.map((b) => budgetAllowance(`budget "${b.group}"`, b, input)));
      const mine = active.filter((a) => a.group === name);
      const queue = Object.fromEntries(
        ACTIVE_REPLACEMENT_STATES.map((s) => [s, mine.find((a) => a.state === s)?.n ?? 0]),
      );
      const settings = this.settingsFor(name);
      return {
        name,
        mode: this.modeFor(name),
        requireApproval: settings?.requireApproval ?? false,
        provider: this.d.providerFor(name)?.type ?? null,
        ...pause,
        hosts: { total: c.total, unavailable: c.unavailable, clean: c.clean },
        inFlight: mine
          .filter((a) => (IN_FLIGHT_STATES as readonly string[]).includes(a.state))
          .reduce((n, a) => n + a.n, 0),
        queue,
        budgets,
        allowedNow: allowance.allowed === Infinity ? null : allowance.allowed,
        limitedBy: allowance.reason || null,
      };
    });
  }
}

export interface GroupView extends GroupPause {
  name: string;
  mode: Mode;
  requireApproval: boolean;
  provider: string | null;
  hosts: { total: number; unavailable: number; clean: number };
  inFlight: number;
  queue: Record<string, number>;
  budgets: SchedulerConfig['budgets'];
  /** More replacements the group's budgets allow now (null: unlimited). */
  allowedNow: number | null;
  limitedBy: string | null;
}
