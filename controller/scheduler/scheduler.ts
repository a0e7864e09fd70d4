/**
 * @module The replacement scheduler: detection taints hosts, this loop acts on them. Each tick polls
 * (confirms replacements under way and completes them once the old host has gone quiet), plans (queue
 * new taints, check the breaker, decide within budgets, in one transaction serialized across
 * controllers), then acts (asks providers to replace scheduled hosts, under a lease per replacement).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { DwError, describeError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/schema/config.js';
import { next, type HostEvent } from '../states.js';
import { EVENT_KINDS, recordEvent, recordTransition, type HostContext } from '../events.js';
import type { HostRow, HostState, Store, StoreTx } from '../store/types.js';
import { ACTIVE_REPLACEMENT_STATES, IN_FLIGHT_STATES, type Decision, type GroupPause, type GroupStateRow, type ReplacementRow } from '../store/replacements.js';
import { ProviderError, type Provider, type ReplacementTarget, type SuccessorMatch } from '../providers/types.js';
import { budgetAllowance, combine, groupMatches, type Allowance } from './budgets.js';
import { breakerVerdict } from './breaker.js';
import type { Mode, SchedulerConfig } from './config.js';
import { SchedulerEvents, type SchedulerEvent } from './events.js';

export interface SchedulerDeps {
  store: Store;
  config: SchedulerConfig;
  log: Logger;
  clock: () => Date;
  /** The provider for a group, or null when none is configured. */
  providerFor: (group: string) => Provider | null;
  events?: SchedulerEvents;
  /** This controller's name in leases (unique per process). */
  owner?: string;
  /** The controller's silentAfter: a host not heard from this long counts as unavailable. */
  silentAfterMs: number;
}

export interface TickResult {
  queued: number;
  scheduled: number;
  wouldReplace: number;
  started: number;
  completed: number;
  failed: number;
  tripped: string[];
}

const ms = (d: string): number => parseDuration(d) ?? 0;
const PLAN_BATCH = 1000;
const SYSTEM = 'controller';

export class Scheduler {
  readonly events: SchedulerEvents;
  readonly owner: string;
  private readonly abort = new AbortController();
  private running: Promise<TickResult> | null = null;

  constructor(private readonly d: SchedulerDeps) {
    this.events = d.events ?? new SchedulerEvents(d.log);
    this.owner = d.owner ?? `controller-${process.pid}-${randomUUID().slice(0, 8)}`;
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
    const result: TickResult = { queued: 0, scheduled: 0, wouldReplace: 0, started: 0, completed: 0, failed: 0, tripped: [] };
    if (this.d.config.mode === 'off') return result;
    // Completions first, so the slots they free are used in the same tick.
    await this.poll(result);
    await this.plan(result);
    await this.act(result);
    return result;
  }

  // ---- plan ----

  private async plan(result: TickResult): Promise<void> {
    const cfg = this.d.config;
    const now = this.d.clock();
    const at = now.toISOString();
    const emitted: SchedulerEvent[] = [];
    const alerts: { group: string; reason: string }[] = [];
    await this.d.store.transaction(async (tx) => {
      const r = tx.replacements;
      await r.lockScheduler();

      for (const h of await r.taintedWithoutReplacement(PLAN_BATCH)) {
        const row = newRow({ hostId: h.id, group: h.group ?? cfg.defaultGroup, severity: h.severity, taintedAt: h.taintedAt ?? at, requestedBy: SYSTEM, reason: 'tainted', now: at });
        await r.insert(row);
        emitted.push({ type: 'replacement-queued', at, replacement: row });
        result.queued++;
      }

      const pending = await r.list({ states: ['queued', 'awaiting-approval'], limit: PLAN_BATCH });
      if (pending.length === 0) return;

      const staleBefore = new Date(now.getTime() - this.d.silentAfterMs).toISOString();
      const counts = new Map((await r.groupCounts(staleBefore, cfg.defaultGroup)).map((c) => [c.group, c]));
      const longestRate = Math.max(0, ...cfg.budgets.map((b) => (b.rate ? ms(b.rate.per) : 0)), cfg.overall?.rate ? ms(cfg.overall.rate.per) : 0);
      const starts = longestRate > 0 ? await r.startsSince(new Date(now.getTime() - longestRate).toISOString()) : [];
      const groups = new Map((await r.listGroups()).map((g) => [g.name, g]));

      // The breaker, for every group with something waiting.
      for (const name of new Set(pending.map((p) => p.group))) {
        const state = groups.get(name);
        if (state?.paused || this.modeFor(name) === 'off') continue;
        const windowStart = new Date(now.getTime() - ms(cfg.breaker.window)).toISOString();
        const since = state?.breakerSince && state.breakerSince > windowStart ? state.breakerSince : windowStart;
        const recent = await r.recentTaints(name, cfg.defaultGroup, since);
        const reason = breakerVerdict(cfg.breaker, { total: counts.get(name)?.total ?? 0, recent });
        if (!reason) continue;
        const row: GroupStateRow = { ...(state ?? emptyGroup(name)), paused: true, pausedReason: reason, pausedAt: at, pausedBy: 'breaker' };
        await r.putGroup(row);
        groups.set(name, row);
        await tx.appendAudit({ at, actor: SYSTEM, action: 'replacement.breaker-trip', target: name, detail: { reason, mode: this.modeFor(name) } });
        const total = counts.get(name)?.total ?? 0;
        await recordEvent(tx, {
          kind: EVENT_KINDS.breakerTripped,
          hostId: null,
          actor: SYSTEM,
          at,
          detail: { group: name, reason, mode: this.modeFor(name), pausedBy: 'breaker', tainted: recent.length, total, taintedShare: total > 0 ? Math.round((1000 * recent.length) / total) / 1000 : null, threshold: cfg.breaker.taintedShare, sameDeviation: cfg.breaker.sameDeviation, window: cfg.breaker.window },
        });
        emitted.push({ type: 'breaker-tripped', at, group: name, reason });
        alerts.push({ group: name, reason });
        result.tripped.push(name);
      }

      const fleet = [...counts.values()].reduce((a, c) => ({ total: a.total + c.total, unavailable: a.unavailable + c.unavailable, clean: a.clean + c.clean }), { total: 0, unavailable: 0, clean: 0 });
      let fleetLeft: Allowance = cfg.overall
        ? budgetAllowance('overall budget', cfg.overall, { now, ...fleet, starts: starts.map((s) => Date.parse(s.startedAt)) })
        : { allowed: Infinity, reason: '' };
      const groupLeft = new Map<string, Allowance>();
      const givenThisPass = new Map<string, number>();
      let givenFleetThisPass = 0;
      const allowanceOf = (group: string): Allowance => {
        let a = groupLeft.get(group);
        if (!a) {
          const c = counts.get(group) ?? { total: 0, unavailable: 0, clean: 0 };
          const input = { now, total: c.total, unavailable: c.unavailable, clean: c.clean, starts: starts.filter((s) => s.group === group).map((s) => Date.parse(s.startedAt)) };
          a = combine(...cfg.budgets.filter((b) => groupMatches(b.group, group)).map((b) => budgetAllowance(`budget "${b.group}"`, b, input)));
          groupLeft.set(group, a);
        }
        return a;
      };

      // IMPORTANT: `pending` is in queue order (most severe, then longest tainted, then id): budgets go
      // to the head of the queue, and a row that must wait never lets a later one of its group pass.
      for (const row of pending) {
        const mode = this.modeFor(row.group);
        const g = groups.get(row.group);
        const settings = this.settingsFor(row.group);
        let decision: Decision;
        let reason: string;
        if (mode === 'off') [decision, reason] = ['off', `mode is off for group ${row.group}`];
        else if (g?.paused) [decision, reason] = ['paused', `group ${row.group} is paused: ${g.pausedReason ?? 'by an operator'}`];
        else if (row.nextAttemptAt && row.nextAttemptAt > at) [decision, reason] = ['backoff', `retry ${row.attempts + 1} not before ${row.nextAttemptAt} (last error: ${row.lastError ?? 'unknown'})`];
        else if (settings?.requireApproval && !row.approvedAt) [decision, reason] = ['awaiting-approval', `group ${row.group} requires an operator's approval`];
        else {
          const ga = allowanceOf(row.group);
          const limit = ga.allowed <= fleetLeft.allowed ? ga : fleetLeft;
          const given = limit === ga ? (givenThisPass.get(row.group) ?? 0) : givenFleetThisPass;
          // The counts in a budget's reason are those the pass began with; say where the rest went.
          if (limit.allowed <= 0) [decision, reason] = ['waiting', given > 0 ? `${limit.reason}; ${given} going to hosts ahead in the queue` : limit.reason];
          else {
            const left = (n: number) => (n === Infinity ? 'no limit' : String(n - 1));
            reason = `within budgets (group ${row.group}: ${left(ga.allowed)} more allowed after this, fleet: ${left(fleetLeft.allowed)})`;
            groupLeft.set(row.group, { ...ga, allowed: ga.allowed - 1 });
            fleetLeft = { ...fleetLeft, allowed: fleetLeft.allowed - 1 };
            givenThisPass.set(row.group, (givenThisPass.get(row.group) ?? 0) + 1);
            givenFleetThisPass++;
            decision = mode === 'enforce' ? 'scheduled' : 'would-replace';
          }
        }

        if (decision === 'scheduled') {
          const scheduled = await this.schedule(tx, row, at, reason);
          if (scheduled) {
            emitted.push({ type: 'replacement-scheduled', at, replacement: scheduled });
            result.scheduled++;
          }
          continue;
        }
        const state = decision === 'awaiting-approval' ? 'awaiting-approval' : row.state === 'awaiting-approval' && settings?.requireApproval && !row.approvedAt ? 'awaiting-approval' : 'queued';
        if (decision === 'would-replace') result.wouldReplace++;
        if (row.decision === decision && row.decisionReason === reason && row.state === state) continue;
        await r.update(row.id, { state, decision, decisionReason: reason, decidedAt: at, updatedAt: at });
        if (decision !== row.decision) {
          if (decision === 'would-replace') {
            await tx.appendAudit({ at, actor: SYSTEM, action: 'replacement.would-replace', target: row.hostId, detail: { replacement: row.id, group: row.group, reason, mode } });
            emitted.push({ type: 'replacement-would-replace', at, replacement: { ...row, state, decision, decisionReason: reason, decidedAt: at } });
          } else if (decision === 'awaiting-approval') {
            await tx.appendAudit({ at, actor: SYSTEM, action: 'replacement.await-approval', target: row.hostId, detail: { replacement: row.id, group: row.group } });
          }
        }
      }
    });
    for (const e of emitted) this.events.emit(e);
    for (const a of alerts) this.d.log.warn({ group: a.group, reason: a.reason }, 'replacement breaker tripped: group paused until an operator resumes it');
  }

  /** Moves a queued row to scheduled and its host to replacement-scheduled; null when the host cannot be. */
  private async schedule(tx: StoreTx, row: ReplacementRow, at: string, reason: string): Promise<ReplacementRow | null> {
    const host = await tx.lockHost(row.hostId);
    if (!host || host.state === 'replaced') {
      await tx.replacements.update(row.id, { state: 'cancelled', decision: null, decisionReason: host ? 'host already replaced' : 'host no longer exists', finishedAt: at, updatedAt: at });
      return null;
    }
    await this.transition(tx, host, host.state, { type: 'replacement-scheduled', detail: reason }, at, SYSTEM);
    const patch = { state: 'scheduled' as const, decision: 'scheduled' as const, decisionReason: reason, decidedAt: at, scheduledAt: at, startedAt: null, confirmedAt: null, attempts: row.attempts + 1, provider: this.d.providerFor(row.group)?.type ?? null, updatedAt: at };
    await tx.replacements.update(row.id, patch);
    await tx.replacements.recordStart(row.id, row.group, at);
    await tx.appendAudit({ at, actor: SYSTEM, action: 'replacement.schedule', target: row.hostId, detail: { replacement: row.id, group: row.group, attempt: row.attempts + 1, reason } });
    return { ...row, ...patch };
  }

  /** Moves the host along the state table: its row, its timeline and the event stream, in `tx`. */
  private async transition(tx: StoreTx, host: HostRow, from: HostState, event: HostEvent, at: string, actor: string): Promise<void> {
    const t = next(from, event);
    if (!t.changed) return;
    await tx.updateHost(host.id, { state: t.state, stateSince: at });
    await recordTransition(tx, hostContext(host), { from, to: t.state, cause: t.cause, actor, at, reportId: null });
  }

  // ---- act ----

  private leaseUntil(now: Date): string {
    return new Date(now.getTime() + ms(this.d.config.lease)).toISOString();
  }

  /** Pinned identity only (hostname, group, addresses from enrollment): never the host's latest claims or inventory. */
  private target(row: ReplacementRow, host: HostRow): ReplacementTarget {
    return { replacementId: row.id, attempt: row.attempts, hostId: row.hostId, hostname: host.hostname, imageId: host.imageId, group: row.group, addresses: host.enrolledAddresses ?? [], enrolledAt: host.enrolledAt, reason: row.reason, ref: row.providerRef, startedAt: row.startedAt };
  }

  private ctx(row: ReplacementRow, signal: AbortSignal) {
    const cfg = this.d.config;
    return {
      log: this.d.log.child({ replacement: row.id, host: row.hostId, group: row.group }),
      clock: this.d.clock,
      signal,
      findCleanSuccessor: (since: string, match?: SuccessorMatch) => this.d.store.replacements.findSuccessor(row.group, cfg.defaultGroup, since, row.hostId, match),
    };
  }

  /** Claims the lease on a row in `state` (a lapsed lease of a dead controller included); the row as claimed, or null. */
  private async claim(id: string, state: ReplacementRow['state']): Promise<ReplacementRow | null> {
    const now = this.d.clock();
    return this.d.store.transaction(async (tx) => {
      const row = await tx.replacements.lock(id);
      if (!row || row.state !== state) return null;
      if (!(await tx.replacements.claim(id, this.owner, this.leaseUntil(now), now.toISOString()))) return null;
      return { ...row, leaseOwner: this.owner };
    });
  }

  private async release(id: string): Promise<void> {
    await this.d.store.transaction(async (tx) => {
      const row = await tx.replacements.lock(id);
      if (row?.leaseOwner === this.owner) await tx.replacements.update(id, { leaseOwner: null, leaseUntil: null });
    });
  }

  /**
   * Keeps extending our lease while a provider call runs (a drain can outlast the lease many times),
   * so no other controller takes the replacement over from a live one; a dead one stops renewing.
   */
  private async holdingLease<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const every = Math.max(1_000, Math.floor(ms(this.d.config.lease) / 3));
    const timer = setInterval(() => {
      const now = this.d.clock();
      this.d.store.replacements.claim(id, this.owner, this.leaseUntil(now), now.toISOString()).catch((err: unknown) => this.d.log.warn({ err, replacement: id }, 'could not renew a lease'));
    }, every);
    try {
      return await fn();
    } finally {
      clearInterval(timer);
    }
  }

  private timeoutSignal(): AbortSignal {
    return AbortSignal.any([this.abort.signal, AbortSignal.timeout(ms(this.d.config.replaceTimeout))]);
  }

  private async act(result: TickResult): Promise<void> {
    const rows = await this.d.store.replacements.list({ states: ['scheduled'], limit: PLAN_BATCH });
    for (const candidate of rows) {
      if (this.abort.signal.aborted) return;
      if (this.modeFor(candidate.group) !== 'enforce') continue;
      const row = await this.claim(candidate.id, 'scheduled');
      if (!row) continue;
      const provider = this.d.providerFor(row.group);
      const host = await this.d.store.getHost(row.hostId);
      if (!host) {
        await this.finishFailed(row, 'the host no longer exists', false, result);
        continue;
      }
      if (!provider) {
        await this.finishFailed(row, `no provider is configured for group ${row.group} (scheduler.provider or scheduler.groups.<group>.provider)`, false, result);
        continue;
      }
      let accepted;
      try {
        accepted = await this.holdingLease(row.id, () => provider.replace(this.target(row, host), this.ctx(row, this.timeoutSignal())));
      } catch (err) {
        await this.finishFailed(row, describeError(err), !(err instanceof ProviderError) || err.retryable, result);
        continue;
      }
      const at = this.d.clock().toISOString();
      let started: ReplacementRow | null = null;
      await this.d.store.transaction(async (tx) => {
        const current = await tx.replacements.lock(row.id);
        // An operator may have cancelled or marked it done while the provider call ran.
        if (!current || current.state !== 'scheduled') return;
        const h = await tx.lockHost(row.hostId);
        if (h) await this.transition(tx, h, h.state, { type: 'replacement-started', detail: `${provider.type}: ${accepted.detail}` }, at, SYSTEM);
        const patch = { state: 'replacing' as const, startedAt: at, providerRef: accepted.ref, provider: provider.type, lastError: null, leaseOwner: null, leaseUntil: null, updatedAt: at };
        await tx.replacements.update(row.id, patch);
        await tx.appendAudit({ at, actor: SYSTEM, action: 'replacement.start', target: row.hostId, detail: { replacement: row.id, provider: provider.type, ref: accepted.ref, detail: accepted.detail } });
        started = { ...current, ...patch };
      });
      if (started) {
        result.started++;
        this.events.emit({ type: 'replacement-started', at, replacement: started });
      }
    }
  }

  /** A failed attempt: back to the queue with backoff, or surfaced as failed after the last attempt (or a permanent error). */
  private async finishFailed(row: ReplacementRow, error: string, retryable: boolean, result: TickResult): Promise<void> {
    const cfg = this.d.config;
    const now = this.d.clock();
    const at = now.toISOString();
    const final = !retryable || row.attempts >= cfg.retry.maxAttempts;
    const backoff = Math.min(ms(cfg.retry.backoff) * 2 ** Math.max(0, row.attempts - 1), ms(cfg.retry.maxBackoff));
    let failed: ReplacementRow | null = null;
    await this.d.store.transaction(async (tx) => {
      const current = await tx.replacements.lock(row.id);
      // Only the holder of the lease, and only in the state it claimed: a controller whose lease lapsed
      // mid-call must not undo what the one that took over has done since.
      if (!current || current.state !== row.state || current.leaseOwner !== this.owner) return;
      const h = await tx.lockHost(row.hostId);
      if (h && (h.state === 'replacement-scheduled' || h.state === 'replacing')) {
        await this.transition(tx, h, h.state, { type: 'replacement-failed', error: `attempt ${current.attempts}: ${error}` }, at, SYSTEM);
      }
      const patch = final
        ? { state: 'failed' as const, lastError: error, decision: null, decisionReason: `failed after ${current.attempts} attempt(s); an operator must act (request again, mark done or cancel)`, nextAttemptAt: null, leaseOwner: null, leaseUntil: null, updatedAt: at }
        : { state: 'queued' as const, lastError: error, decision: 'backoff' as const, decisionReason: `attempt ${current.attempts} failed: ${error}`, nextAttemptAt: new Date(now.getTime() + backoff).toISOString(), leaseOwner: null, leaseUntil: null, updatedAt: at };
      await tx.replacements.update(row.id, patch);
      await tx.appendAudit({ at, actor: SYSTEM, action: final ? 'replacement.fail' : 'replacement.retry', target: row.hostId, detail: { replacement: row.id, attempt: current.attempts, error } });
      // Only the final failure pages people: a retried attempt is in the stream as the host's state change.
      if (final) {
        await recordEvent(tx, {
          kind: EVENT_KINDS.replacementFailed,
          hostId: row.hostId,
          actor: SYSTEM,
          at,
          detail: { replacement: row.id, hostname: h?.hostname ?? null, imageId: h?.imageId ?? null, group: current.group, provider: current.provider ?? this.d.providerFor(current.group)?.type ?? null, providerRef: current.providerRef, attempt: current.attempts, maxAttempts: cfg.retry.maxAttempts, retryable, error },
        });
      }
      failed = { ...current, ...patch };
    });
    if (!failed) return;
    result.failed++;
    this.d.log[final ? 'error' : 'warn']({ replacement: row.id, host: row.hostId, group: row.group, attempt: row.attempts, error }, final ? 'replacement failed; surfaced to operators' : 'replacement attempt failed; will retry');
    this.events.emit({ type: 'replacement-failed', at, replacement: failed, error, final });
  }

  // ---- poll ----

  private async poll(result: TickResult): Promise<void> {
    const cfg = this.d.config;
    const rows = await this.d.store.replacements.list({ states: ['replacing'], limit: PLAN_BATCH });
    for (const candidate of rows) {
      if (this.abort.signal.aborted) return;
      if (this.modeFor(candidate.group) !== 'enforce') continue;
      const row = await this.claim(candidate.id, 'replacing');
      if (!row) continue;
      const now = this.d.clock();
      try {
        if (!row.confirmedAt) {
          if (row.startedAt && now.getTime() - Date.parse(row.startedAt) > ms(cfg.replaceTimeout)) {
            await this.finishFailed(row, `not confirmed within replaceTimeout ${cfg.replaceTimeout}`, true, result);
            continue;
          }
          const provider = this.d.providerFor(row.group);
          const host = await this.d.store.getHost(row.hostId);
          if (!provider || !host) {
            await this.finishFailed(row, provider ? 'the host no longer exists' : `no provider is configured for group ${row.group}`, false, result);
            continue;
          }
          let status;
          try {
            status = await this.holdingLease(row.id, () => provider.status(this.target(row, host), this.ctx(row, this.timeoutSignal())));
          } catch (err) {
            await this.finishFailed(row, describeError(err), !(err instanceof ProviderError) || err.retryable, result);
            continue;
          }
          if (status.state !== 'done') continue;
          const at = this.d.clock().toISOString();
          await this.d.store.replacements.update(row.id, { confirmedAt: at, ...(status.replacedBy ? { replacedBy: status.replacedBy } : {}), lastError: null, decisionReason: `provider confirmed: ${status.detail ?? 'done'}`, updatedAt: at });
          row.confirmedAt = at;
          if (status.replacedBy) row.replacedBy = status.replacedBy;
        }
        const completed = await this.completeIfQuiet(row, result);
        // Confirmed gone, yet still reporting long after: the platform replaced something else, or the
        // host's credential lives on elsewhere. Retrying cannot explain it; an operator must look.
        if (!completed && row.confirmedAt && this.d.clock().getTime() - Date.parse(row.confirmedAt) > ms(cfg.replaceTimeout)) {
          await this.finishFailed(row, `the provider confirmed the replacement at ${row.confirmedAt}, but the host is still reporting`, false, result);
        }
      } finally {
        await this.release(row.id);
      }
    }
  }

  /** Replaced once the provider confirmed and the old host stopped reporting (quiet for `quietFor` since its last contact). */
  private async completeIfQuiet(row: ReplacementRow, result: TickResult): Promise<boolean> {
    const cfg = this.d.config;
    const now = this.d.clock();
    const at = now.toISOString();
    let done: ReplacementRow | null = null;
    await this.d.store.transaction(async (tx) => {
      const current = await tx.replacements.lock(row.id);
      if (!current || current.state !== 'replacing' || !current.confirmedAt) return;
      const host = await tx.lockHost(row.hostId);
      const last = host ? Date.parse(host.lastSeenAt ?? host.enrolledAt) : 0;
      if (host && now.getTime() - last < ms(cfg.quietFor)) return;
      const replacedBy = current.replacedBy ?? (current.startedAt ? await tx.replacements.findSuccessor(row.group, cfg.defaultGroup, current.scheduledAt ?? current.startedAt, row.hostId) : null);
      if (host) await this.transition(tx, host, host.state, { type: 'replacement-completed', detail: `${current.provider ?? 'provider'} confirmed${replacedBy ? `; replaced by ${replacedBy}` : ''}` }, at, SYSTEM);
      const patch = { state: 'replaced' as const, finishedAt: at, replacedBy, decision: null, leaseOwner: null, leaseUntil: null, updatedAt: at };
      await tx.replacements.update(row.id, patch);
      await tx.appendAudit({ at, actor: SYSTEM, action: 'replacement.complete', target: row.hostId, detail: { replacement: row.id, replacedBy, provider: current.provider } });
      done = { ...current, ...patch };
    });
    if (!done) return false;
    result.completed++;
    this.events.emit({ type: 'replacement-completed', at, replacement: done });
    return true;
  }

  // ---- operators ----

  /** Queues a host by hand (tainting it if it is not yet), or re-queues a failed replacement. */
  async request(hostId: string, actor: string, reason: string): Promise<ReplacementRow> {
    const at = this.d.clock().toISOString();
    const row = await this.d.store.transaction(async (tx) => {
      await tx.replacements.lockScheduler();
      const host = await tx.lockHost(hostId);
      if (!host) throw new DwError('DW_ERR_NOT_FOUND', `no host ${hostId}`);
      if (host.state === 'replaced') throw new DwError('DW_ERR_STATE', `host ${hostId} is already replaced`);
      const active = await tx.replacements.activeForHost(hostId);
      if (active && active.state !== 'failed') throw new DwError('DW_ERR_CONFLICT', `host ${hostId} already has replacement ${active.id} (${active.state})`, { replacement: active.id });
      if (host.state !== 'tainted' && host.state !== 'replacement-scheduled' && host.state !== 'replacing') {
        const t = next(host.state, { type: 'report', worst: 'taint', culprit: { collector: 'operator', key: 'replacement-request', change: 'modified', decidedBy: actor } });
        await tx.updateHost(host.id, { state: t.state, stateSince: at, taintedAt: at });
        await recordTransition(tx, hostContext(host), { from: host.state, to: t.state, cause: `taint: replacement requested by ${actor}: ${reason}`, actor, at, reportId: null });
      }
      let out: ReplacementRow;
      if (active) {
        const patch = { state: 'queued' as const, attempts: 0, nextAttemptAt: null, lastError: null, decision: null, decisionReason: `re-queued by ${actor}`, requestedBy: actor, reason, updatedAt: at };
        await tx.replacements.update(active.id, patch);
        out = { ...active, ...patch };
      } else {
        out = newRow({ hostId, group: host.group ?? this.d.config.defaultGroup, severity: null, taintedAt: host.taintedAt ?? at, requestedBy: actor, reason, now: at });
        await tx.replacements.insert(out);
      }
      await tx.appendAudit({ at, actor, action: 'replacement.request', target: hostId, detail: { replacement: out.id, reason } });
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
      if (r.state !== 'awaiting-approval' && r.state !== 'queued') throw new DwError('DW_ERR_STATE', `replacement ${id} is ${r.state}; only a queued one can be approved`);
      if (r.approvedAt) throw new DwError('DW_ERR_CONFLICT', `replacement ${id} was already approved by ${r.approvedBy}`);
      const patch = { state: 'queued' as const, approvedBy: actor, approvedAt: at, decision: null, decisionReason: `approved by ${actor}`, updatedAt: at };
      await tx.replacements.update(id, patch);
      await tx.appendAudit({ at, actor, action: 'replacement.approve', target: r.hostId, detail: { replacement: id } });
      return { ...r, ...patch };
    });
    this.events.emit({ type: 'replacement-approved', at, replacement: row, actor });
    return row;
  }

  /** Cancels a replacement the provider has not been asked to carry out (or that failed); the host stays tainted. */
  async cancel(id: string, actor: string, reason: string): Promise<ReplacementRow> {
    const at = this.d.clock().toISOString();
    const row = await this.d.store.transaction(async (tx) => {
      const r = await tx.replacements.lock(id);
      if (!r) throw new DwError('DW_ERR_NOT_FOUND', `no replacement ${id}`);
      if (r.state === 'replacing') throw new DwError('DW_ERR_STATE', `replacement ${id} is already with the provider (${r.provider ?? 'provider'}); wait for it, or mark it done`);
      if (r.state === 'replaced' || r.state === 'cancelled') throw new DwError('DW_ERR_STATE', `replacement ${id} is already ${r.state}`);
      const host = await tx.lockHost(r.hostId);
      if (host && host.state === 'replacement-scheduled') await this.transition(tx, host, host.state, { type: 'replacement-cancelled', actor, reason }, at, actor);
      const patch = { state: 'cancelled' as const, decision: null, decisionReason: `cancelled by ${actor}: ${reason}`, finishedAt: at, leaseOwner: null, leaseUntil: null, updatedAt: at };
      await tx.replacements.update(id, patch);
      await tx.appendAudit({ at, actor, action: 'replacement.cancel', target: r.hostId, detail: { replacement: id, reason, was: r.state } });
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
      if (r.state === 'replaced' || r.state === 'cancelled') throw new DwError('DW_ERR_STATE', `replacement ${id} is already ${r.state}`);
      const host = await tx.lockHost(r.hostId);
      if (host) {
        // Walk the host state table rather than jump: every step is in the timeline with who did it.
        let state = host.state;
        const steps: HostEvent[] = [];
        if (state === 'tainted') steps.push({ type: 'replacement-scheduled', detail: `marked done by ${actor}` });
        if (state === 'tainted' || state === 'replacement-scheduled') steps.push({ type: 'replacement-started', detail: `marked done by ${actor}` });
        steps.push({ type: 'replacement-completed', detail: `marked done by ${actor}` });
        for (const e of steps) {
          await this.transition(tx, host, state, e, at, actor);
          state = next(state, e).state;
        }
      }
      const patch = { state: 'replaced' as const, finishedAt: at, confirmedAt: r.confirmedAt ?? at, replacedBy: replacedBy ?? r.replacedBy, decision: null, decisionReason: `marked done by ${actor}`, leaseOwner: null, leaseUntil: null, updatedAt: at };
      await tx.replacements.update(id, patch);
      await tx.appendAudit({ at, actor, action: 'replacement.done', target: r.hostId, detail: { replacement: id, was: r.state, replacedBy: patch.replacedBy } });
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
      await tx.appendAudit({ at, actor, action: 'replacement.resume', target: group, detail: { pausedReason: g.pausedReason, pausedBy: g.pausedBy, pausedAt: g.pausedAt } });
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
      const out: GroupStateRow = { ...g, paused: true, pausedReason: `${reason} (paused by ${actor})`, pausedAt: at, pausedBy: actor };
      await tx.replacements.putGroup(out);
      await tx.appendAudit({ at, actor, action: 'replacement.pause', target: group, detail: { reason } });
      // The same kind as the breaker's: either way replacements in the group stop until someone resumes it.
      await recordEvent(tx, { kind: EVENT_KINDS.breakerTripped, hostId: null, actor, at, detail: { group, reason: out.pausedReason, mode: this.modeFor(group), pausedBy: actor } });
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
      const input = { now, total: c.total, unavailable: c.unavailable, clean: c.clean, starts: starts.filter((s) => s.group === name).map((s) => Date.parse(s.startedAt)) };
      const allowance = combine(...budgets.map((b) => budgetAllowance(`budget "${b.group}"`, b, input)));
      const mine = active.filter((a) => a.group === name);
      const queue = Object.fromEntries(ACTIVE_REPLACEMENT_STATES.map((s) => [s, mine.find((a) => a.state === s)?.n ?? 0]));
      const settings = this.settingsFor(name);
      return {
        name,
        mode: this.modeFor(name),
        requireApproval: settings?.requireApproval ?? false,
        provider: this.d.providerFor(name)?.type ?? null,
        ...pause,
        hosts: { total: c.total, unavailable: c.unavailable, clean: c.clean },
        inFlight: mine.filter((a) => (IN_FLIGHT_STATES as readonly string[]).includes(a.state)).reduce((n, a) => n + a.n, 0),
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

function hostContext(h: HostRow): HostContext {
  return { hostId: h.id, hostname: h.hostname, imageId: h.imageId, group: h.group };
}

function emptyGroup(name: string): GroupStateRow {
  return { name, paused: false, pausedReason: null, pausedAt: null, pausedBy: null, resumedAt: null, resumedBy: null, breakerSince: null };
}

function newRow(o: { hostId: string; group: string; severity: ReplacementRow['severity']; taintedAt: string; requestedBy: string; reason: string; now: string }): ReplacementRow {
  return {
    id: randomUUID(),
    hostId: o.hostId,
    group: o.group,
    state: 'queued',
    severity: o.severity,
    taintedAt: o.taintedAt,
    requestedBy: o.requestedBy,
    reason: o.reason,
    decision: null,
    decisionReason: null,
    decidedAt: null,
    approvedBy: null,
    approvedAt: null,
    attempts: 0,
    nextAttemptAt: null,
    lastError: null,
    provider: null,
    providerRef: null,
    replacedBy: null,
    createdAt: o.now,
    scheduledAt: null,
    startedAt: null,
    confirmedAt: null,
    finishedAt: null,
    updatedAt: o.now,
    leaseOwner: null,
    leaseUntil: null,
  };
}
