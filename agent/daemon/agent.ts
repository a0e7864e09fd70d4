/**
 * @module The agent service: enroll once, scan on a schedule (with jitter, never two at once), send
 * heartbeats between scans, turn watched changes into event reports at once, and deliver every
 * report through the durable spool. This long-lived process holds only that: the schedule, the
 * watcher, the spool, the transport, and the watched paths' part of the manifest (baseline.ts). The
 * heavy work (config validation, manifest verification, walk, hash, diff) runs in a short-lived task
 * process (task-child.ts) held to `limits` from outside; a task that is stopped or dies is reported as
 * an incomplete scan, never as a clean one. Nothing heavy is imported here, not even lazily.
 */
import { randomUUID } from 'node:crypto';
import cron, { type ScheduledTask } from 'node-cron';
import { DEFAULT_LIMITS } from '../../shared/agent-limits.js';
import { parseDuration } from '../../shared/duration.js';
import { DwError, type ErrorCode } from '../../shared/errors.js';
import type { AgentConfig } from '../../shared/schema/config.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import type { CollectorResult, Inventory, Report, UndeliveredScan } from '../../shared/schema/report.js';
import type { ReadIdentity } from '../cloud-identity.js';
import type { Logger } from '../log.js';
import { HostRoot } from '../root.js';
import { AGENT_VERSION } from '../version.js';
import { DEFAULT_WATCH_PATHS, readBaseline, touchedCollectors, watchedCollectors, type Baseline } from './baseline.js';
import { enroll, ensureEnrolled, hasEnrollmentToken } from './enroll.js';
import { baselineDeviations } from './fingerprint.js';
import { Spool } from './spool.js';
import { StateDir } from './state-dir.js';
import { DEFAULT_REPORT_LIMITS, fitReport } from './report-size.js';
import type { Collected, Prepared, ScanSummary } from './task-protocol.js';
import { TaskRunner } from './task-child.js';
import { backoffMs, encodeBody, retryAfterDelayMs, transportFor, type Transport } from './transport.js';
import { ChangeWatcher } from './watch.js';

export { DEFAULT_WATCH_PATHS };

const REPORT_SCHEMA = 'driftwarden/report/v1' as const;

export interface LastScan {
  at: string;
  clean: boolean;
  complete: boolean;
  deviations: number;
  durationMs: number;
  seq: number;
  error?: string;
  /** The scan process's peak resident memory, MB. */
  peakRssMb?: number;
}

export interface CredentialRefused {
  since: string;
  /** The controller's answer to the last report: `401: …`. */
  reason: string;
  /** What the last re-enrollment attempt got, or why there was none. */
  reenroll: string;
  at: string;
}

/** What heartbeats and events need of the last scan: its digests and the host's inventory. */
interface LastResult {
  scannedAt: string;
  digests: Record<string, string>;
  host: Inventory;
}

export class AgentService {
  private baseline!: Baseline;
  private prepared!: Prepared;
  private root!: HostRoot;
  private hostId!: string;
  /** Where this host runs (agent/cloud-identity.ts), read once at start; null for a mounted root. */
  private cloud: ReadIdentity | null = null;
  private transport: Transport | null = null;
  private spool!: Spool;
  private state!: StateDir;
  private credential: string | null = null;
  private lastResult: LastResult | null = null;
  private scanning: Promise<void> = Promise.resolve();
  private flushing: Promise<boolean> | null = null;
  private flushAgain = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryAttempt = 0;
  /** A controller's Retry-After (429/503) holds every send until then, not only the retry timer's. */
  private holdUntil = 0;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private tasks: ScheduledTask[] = [];
  private watcher: ChangeWatcher | null = null;
  /** File deviations seen when the watcher reported a path, until that path's batch is handled. */
  private observed = new Map<string, Deviation>();
  private stopped = false;
  /** While the controller refuses the stored credential (401); mirrored in STATE_DIR/credential-refused.json. */
  private refused: CredentialRefused | null = null;
  /** Re-enrollment attempts are paced like retries: one per refusal, never two within a backoff period. */
  private reenrollAttempt = 0;
  private reenrollNotBefore = 0;
  /** The scan at the head of the spool that keeps failing with retryable errors, and since when. */
  private headFailing: { file: string; since: number } | null = null;
  private config!: AgentConfig;
  /** Scans run in one task process, kept a little while between them; a watched change's collectors in another. */
  private readonly runner = new TaskRunner();
  private readonly eventRunner = new TaskRunner();
  /** Held from the moment a scan task takes its seq until its report is in the spool. */
  private spoolGate: Promise<void> | null = null;

  constructor(
    /** The config file: validated by the prepare task, which hands back the config it read. */
    private readonly configFile: string,
    private readonly log: Logger,
  ) {}

  /** The config as validated at init. */
  get agentConfig(): AgentConfig {
    return this.config;
  }

  /**
   * Validate the config and verify the manifest (in a task process); throws a DwError that names the
   * problem. The baked manifest failing verification is reported to the controller first (task.ts).
   */
  async init(): Promise<void> {
    // In the scan runner: with the default memory limit (a task's heap limit is set when it starts), the
    // first scan runs in the same process, which has the scanning code loaded already.
    const out = await this.runner.run(
      { task: 'prepare', configFile: this.configFile },
      { limits: { memoryMb: DEFAULT_LIMITS.memoryMb, cpuShare: 64, maxDurationMs: 600_000 } },
    );
    if (!out.ok) {
      // A start that fails leaves no task process behind (its channel would keep this process alive).
      this.runner.close();
      if (out.failed === 'error')
        throw new DwError(out.code as ErrorCode, out.reason, out.phase ? { phase: out.phase } : {});
      throw new DwError('DW_ERR_INTERNAL', `agent start: ${out.reason}`);
    }
    const prepared = out.result as Prepared;
    this.prepared = prepared;
    this.config = prepared.config;
    this.state = new StateDir(this.config.stateDir);
    this.spool = new Spool(this.state.spoolDir, this.config.spool?.maxBytes);
    this.credential = this.state.readCredential();
    this.refused = this.state.readJson<CredentialRefused>(this.state.credentialRefusedFile);
    this.baseline = readBaseline(prepared.baselineFile, prepared.manifestDigest);
    this.root = await HostRoot.open(this.config.root);
    this.hostId = prepared.hostId;
    this.cloud = prepared.cloud;
    if (this.cloud?.fallback) this.log.debug({ reason: this.cloud.fallback }, 'no cloud identity');
    await this.transport?.close();
    this.transport = transportFor(this.config.controller!);
  }

  private get manifestDigest(): string {
    return this.baseline.manifestDigest;
  }

  /** One full scan, spooled; then delivery is attempted. */
  async scan(fullRehash = false): Promise<void> {
    await this.scanToSpool(fullRehash);
    await this.flush();
  }

  /**
   * A scheduled scan: done once it is spooled, with delivery going on behind it. A controller that
   * black-holes packets holds a send for the whole request timeout; the schedule (which skips a scan
   * while the previous one is still running) must not stall behind it, or a cut-off host stops
   * scanning exactly when its spool should be recording.
   */
  private scheduledScan(fullRehash: boolean): Promise<void> {
    const spooled = this.scanToSpool(fullRehash);
    void spooled.then(() => this.flush()).catch((err: unknown) => this.log.error({ err }, 'delivery failed'));
    return spooled;
  }

  private scanToSpool(fullRehash: boolean): Promise<void> {
    const run = async () => {
      if (this.stopped) return;
      const started = Date.now();
      const startedAt = new Date(started).toISOString();
      let releaseGate: (() => void) | undefined;
      try {
        const limits = this.config.limits;
        const out = await this.runner
          .run(
            {
              task: 'scan',
              config: this.config,
              manifestDigest: this.manifestDigest,
              fullRehash,
              hostId: this.hostId,
              ...(this.cloud ? { identity: this.cloud.identity } : {}),
            },
            {
              limits: {
                memoryMb: limits.memoryMb,
                cpuShare: limits.cpuShare,
                maxDurationMs: parseDuration(limits.maxScanDuration) ?? 3_600_000,
              },
              nextSeq: () => {
                // Nothing with a higher seq may reach the controller before this scan is spooled.
                this.spoolGate = new Promise<void>((resolve) => {
                  releaseGate = resolve;
                });
                return this.state.nextSeq();
              },
            },
          )
          .finally(() => {
            this.spoolGate = null;
            releaseGate?.();
          });
        if (!out.ok) {
          this.spoolIncomplete(startedAt, started, out.reason);
          return;
        }
        const s = out.result as ScanSummary;
        // Heartbeats and events need the digests and the inventory, never the deviations.
        this.lastResult = { scannedAt: s.scannedAt, digests: s.digests, host: s.host };
        this.saveLastScan({
          at: s.scannedAt,
          clean: s.clean,
          complete: s.complete,
          deviations: s.deviations,
          durationMs: Date.now() - started,
          seq: s.seq,
          peakRssMb: Math.max(out.peakRssMb, s.peakRssMb),
        });
        this.log.info(
          {
            seq: s.seq,
            deviations: s.deviations,
            bytes: s.bytes,
            fullRehash,
            ms: Date.now() - started,
            peakRssMb: Math.max(out.peakRssMb, s.peakRssMb),
          },
          'scan spooled',
        );
      } catch (err) {
        this.log.error({ err }, 'scan failed');
        this.saveLastScan({
          at: new Date().toISOString(),
          clean: false,
          complete: false,
          deviations: 0,
          durationMs: Date.now() - started,
          seq: 0,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    };
    // Scans never overlap: each waits for the one before it.
    this.scanning = this.scanning.then(run, run);
    return this.scanning;
  }

  /**
   * The scan process was stopped by its watchdog, died (out of memory, killed), or failed: the
   * controller hears of a scan in which no collector could vouch for anything, which it records as
   * failed collectors (`collector-failed:*`) and which never leaves the host clean.
   */
  private spoolIncomplete(startedAt: string, started: number, reason: string): void {
    this.log.error({ reason }, 'scan incomplete: reported as such');
    const collectors: CollectorResult[] = this.baseline.rules.collectors.map((c) => ({
      collector: c,
      ok: false,
      durationMs: Date.now() - started,
      items: 0,
      error: reason.slice(0, 1000),
    }));
    const inventory = this.lastResult?.host ?? this.prepared.inventory;
    const report: Report = {
      ...this.reportHead('scan', {}),
      scannedAt: startedAt,
      collectors,
      deviations: [],
      inventory,
    };
    const dropped = this.spool.dropped();
    if (dropped > 0) report.spoolDropped = dropped;
    this.spool.add(report);
    // Heartbeats carry what the last report said: no digests, so the controller does not ask for the
    // same scan again at every heartbeat.
    this.lastResult = { scannedAt: startedAt, digests: {}, host: inventory };
    this.saveLastScan({
      at: startedAt,
      clean: false,
      complete: false,
      deviations: 0,
      durationMs: Date.now() - started,
      seq: report.seq,
      error: reason,
    });
  }

  /** The fields every report of this host starts with, with a new seq. */
  private reportHead(kind: Report['kind'], digests: Record<string, string>): Report {
    return {
      schema: REPORT_SCHEMA,
      kind,
      reportId: randomUUID(),
      hostId: this.hostId,
      imageId: this.baseline.image.id,
      manifestDigest: this.manifestDigest,
      agentVersion: AGENT_VERSION,
      seq: this.state.nextSeq(),
      scannedAt: new Date().toISOString(),
      digests,
      collectors: [],
      deviations: [],
      ...(this.cloud ? { identity: this.cloud.identity } : {}),
      ...(this.config.group ? { group: this.config.group } : {}),
    };
  }

  /** A heartbeat: the last scan's digests, no deviations. Skipped until there is a scan to vouch for. */
  async heartbeat(): Promise<void> {
    if (!this.lastResult || this.stopped) return;
    try {
      this.spool.add({
        ...this.reportHead('heartbeat', this.lastResult.digests),
        scannedAt: this.lastResult.scannedAt,
      });
      await this.flush();
    } catch (err) {
      // Called from a timer: an error here (a full disk) must not end the process.
      this.log.error({ err }, 'heartbeat failed');
    }
  }

  /** Deviations among just the changed paths, sent as one event report at once. */
  async onChanges(paths: string[]): Promise<void> {
    if (this.stopped) return;
    try {
      const deviations: Deviation[] = baselineDeviations(this.root, this.baseline, paths);
      // A change reverted before its batch closed still happened: keep what was seen as it happened.
      const current = new Set(deviations.map((d) => d.key));
      for (const p of paths) {
        const seen = this.observed.get(p);
        this.observed.delete(p);
        if (seen && !current.has(p)) deviations.push(seen);
      }
      // A watched source of another collector changed (cron, sysctl, accounts...): that collector runs
      // again, in a task process, against the baseline's copy of its section.
      const collectors = touchedCollectors(watchedCollectors(this.baseline.rules, this.baseline.watchPaths), paths);
      if (collectors.length > 0) {
        const out = await this.eventRunner.run(
          {
            task: 'collect',
            config: this.config,
            baselineFile: this.prepared.baselineFile,
            manifestDigest: this.manifestDigest,
            collectors,
          },
          {
            limits: {
              memoryMb: this.config.limits.memoryMb,
              cpuShare: this.config.limits.cpuShare,
              maxDurationMs: 300_000,
            },
          },
        );
        if (out.ok) for (const d of (out.result as Collected).deviations) deviations.push(d);
        else
          this.log.error(
            { collectors, reason: out.reason },
            'collectors of a watched change failed; the next scan covers them',
          );
      }
      if (deviations.length === 0) return;
      const inventory = this.lastResult?.host ?? this.prepared.inventory;
      const report: Report = {
        ...this.reportHead('event', this.lastResult?.digests ?? {}),
        deviations,
        inventory,
      };
      this.spool.add(report);
      this.log.warn(
        { seq: report.seq, deviations: deviations.length, paths: paths.length },
        'change detected: event spooled',
      );
      await this.flush();
    } catch (err) {
      this.log.error({ err }, 'event fingerprint failed');
    }
  }

  /** A watched path changed: fingerprint it now, before a quick revert can hide the change from its batch. */
  private observe(path: string): void {
    if (this.stopped || this.observed.has(path)) return;
    try {
      const [d] = baselineDeviations(this.root, this.baseline, [path]);
      if (d) this.observed.set(path, d);
    } catch (err) {
      this.log.debug({ err, path }, 'cannot fingerprint a changed path');
    }
  }

  /** Send what the spool holds, oldest first. Returns true when the spool is empty. */
  flush(): Promise<boolean> {
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    this.flushing = (async () => {
      let empty = false;
      do {
        this.flushAgain = false;
        empty = await this.flushOnce();
      } while (this.flushAgain && !this.stopped);
      return empty;
    })().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async flushOnce(): Promise<boolean> {
    // A scan task holds a seq it has not spooled yet: a heartbeat with a higher one sent first would
    // make the controller refuse the scan as out of order.
    while (this.spoolGate) await this.spoolGate;
    if (!this.transport) return this.spool.list().length === 0;
    // Told to come back later: new reports wait in the spool with the rest (a heartbeat or a scan
    // finishing must not send through the controller's Retry-After); the retry timer flushes them.
    if (Date.now() < this.holdUntil) {
      this.scheduleRetry();
      return false;
    }
    if (!this.credential) {
      const inventory = this.lastResult?.host ?? this.prepared.inventory;
      const r = await ensureEnrolled(this.state, this.transport, this.config, {
        hostId: this.hostId,
        imageId: this.baseline.image.id,
        inventory,
        agentVersion: AGENT_VERSION,
        cloud: this.cloud,
      });
      if (!r.ok) {
        this.log.error({ reason: r.reason }, 'enrollment failed');
        this.scheduleRetry();
        return false;
      }
      this.credential = r.credential;
      this.log.info({ hostId: this.hostId }, 'enrolled');
    }
    for (let entry of this.spool.list()) {
      if (this.stopped) return false;
      let report = this.spool.read(entry);
      // Superseded or dropped while this pass was sending the ones before it.
      if (!report) continue;
      // Added as it is sent, not when spooled: a heartbeat spooled behind the stuck scan says so too.
      const undelivered = report.kind === 'scan' ? null : this.undeliveredScan();
      if (undelivered) report = { ...report, undeliveredScan: undelivered };
      let r = await this.transport.postEncoded('/api/v1/reports', this.credential, encodeBody(JSON.stringify(report)));
      // Too large for this controller's limits (which the agent cannot know): halve what is sent until it fits.
      while (
        !r.ok &&
        !r.retry &&
        r.status === 413 &&
        report.kind === 'scan' &&
        report.deviations.length > 0 &&
        !this.stopped
      ) {
        const fitted = fitReport(report, DEFAULT_REPORT_LIMITS, Math.floor(report.deviations.length / 2));
        report = fitted.report;
        entry = this.spool.replace(entry, report);
        this.log.warn(
          { seq: report.seq, deviations: report.truncated?.deviations, sent: report.truncated?.sent, reason: r.reason },
          'controller refused the report as too large: resending it with fewer deviations, flagged truncated',
        );
        r = await this.transport.postEncoded(
          '/api/v1/reports',
          this.credential,
          fitted.body ?? encodeBody(JSON.stringify(report)),
        );
      }
      if (r.ok) {
        if (this.refused || this.reenrollAttempt > 0) this.credentialAccepted();
        this.spool.ack(entry);
        this.holdUntil = 0;
        if (report.kind === 'scan') this.scanDelivered();
        this.log.debug({ seq: report.seq, kind: report.kind, reportId: report.reportId }, 'report delivered');
        if (report.spoolDropped) this.spool.clearDropped(report.spoolDropped);
        this.retryAttempt = 0;
        const body = r.body as { state?: string; scanRequested?: boolean } | null;
        if (body?.scanRequested) void this.scan();
        continue;
      }
      if (r.retry) {
        // Only a scan that gets no answer at all can be stuck: an answer (503, 422) is the controller's own trouble, which it gets over.
        if (report.kind === 'scan' && r.status === undefined && (await this.scanStuck(entry, r.reason))) {
          this.log.error(
            { seq: report.seq, reportId: report.reportId, reason: r.reason },
            'a scan the controller does not take while it answers: set aside as undelivered; heartbeats say so until a scan gets through',
          );
          this.spool.reject(entry, `undeliverable: ${r.reason}`);
          this.markUndelivered(report, r.reason);
          continue;
        }
        if (r.retryAfterMs !== undefined) {
          const wait = retryAfterDelayMs(r.retryAfterMs);
          this.holdUntil = Date.now() + wait;
          this.log.warn(
            { reason: r.reason, retryAfterMs: r.retryAfterMs, waitMs: wait, spooled: this.spool.list().length },
            'controller busy: reports stay spooled until its Retry-After (plus jitter)',
          );
          this.scheduleRetry(wait);
          return false;
        }
        this.log.warn(
          { reason: r.reason, spooled: this.spool.list().length },
          'controller unreachable; reports stay spooled',
        );
        this.scheduleRetry();
        return false;
      }
      if (r.status === 401) {
        // The controller does not know this credential (reset, revoked, or a controller that lost its
        // store): the report is fine, the identity is not. Keep everything spooled, never set aside.
        if (await this.credentialRefused(r.reason)) this.flushAgain = true;
        else this.scheduleRetry();
        return false;
      }
      // Retrying cannot fix any other 4xx: keep the report aside with the controller's reason, and go on.
      this.log.error(
        { seq: report.seq, reportId: report.reportId, reason: r.reason },
        'controller refused a report; moved to spool/rejected',
      );
      this.spool.reject(entry, r.reason);
      if (report.kind === 'scan') this.markUndelivered(report, r.reason);
    }
    return true;
  }

  /**
   * Whether the scan at the head of the spool has failed without an answer for longer than
   * `controller.undeliveredAfter` while the controller answers its health check (a body cut off on the
   * way, a proxy that drops it). During a plain outage the health check fails too, and the scan waits:
   * an outage must not cost a host its scan.
   */
  private async scanStuck(entry: { file: string }, reason: string): Promise<boolean> {
    const now = Date.now();
    if (this.headFailing?.file !== entry.file) this.headFailing = { file: entry.file, since: now };
    const bound = parseDuration(this.config.controller?.undeliveredAfter ?? '15m') ?? 900_000;
    if (now - this.headFailing.since < bound) return false;
    const health = await this.transport!.get('/healthz');
    if (!health.ok) return false;
    this.log.debug({ reason }, 'the controller answers, but not to this scan');
    this.headFailing = null;
    return true;
  }

  /** What heartbeats and events announce while a scan is undelivered. */
  private undeliveredScan(): UndeliveredScan | null {
    return this.state.readJson<UndeliveredScan>(this.state.undeliveredScanFile);
  }

  private markUndelivered(report: Report, reason: string): void {
    const since = this.undeliveredScan()?.since ?? new Date().toISOString();
    const undelivered: UndeliveredScan = {
      since,
      reason: reason.slice(0, 1000),
      deviations: report.truncated?.deviations ?? report.deviations.length,
    };
    this.state.writeJson(this.state.undeliveredScanFile, undelivered);
  }

  private scanDelivered(): void {
    this.headFailing = null;
    if (this.undeliveredScan()) {
      this.state.clearUndeliveredScan();
      this.log.info('a scan was delivered; the undelivered one is no longer announced');
    }
  }

  /**
   * The controller answered 401 to a report. With an enrollment token configured, try to enroll again
   * (at most once a backoff period); that works when the controller has forgotten the host (its host
   * record was removed, or it runs on a new store), and is refused (409) while it still knows the host
   * under another credential, which only an operator can resolve. Returns true with a new credential.
   */
  private async credentialRefused(reason: string): Promise<boolean> {
    const now = new Date().toISOString();
    let reenroll: string;
    let renewed = false;
    if (!hasEnrollmentToken(this.config)) {
      reenroll = 'not attempted: no enrollment token is configured (controller.enrollmentTokenFile)';
    } else if (Date.now() < this.reenrollNotBefore) {
      reenroll = this.refused?.reenroll ?? 'waiting to retry';
    } else {
      this.reenrollNotBefore = Date.now() + backoffMs(this.reenrollAttempt++);
      const inventory = this.lastResult?.host ?? this.prepared.inventory;
      const r = await enroll(this.state, this.transport!, this.config, {
        hostId: this.hostId,
        imageId: this.baseline.image.id,
        inventory,
        agentVersion: AGENT_VERSION,
        cloud: this.cloud,
      });
      if (r.ok) {
        this.credential = r.credential;
        renewed = true;
        reenroll = `re-enrolled at ${now}`;
      } else {
        reenroll = `refused at ${now}: ${r.reason}`;
      }
    }
    if (renewed) {
      this.log.warn(
        { hostId: this.hostId, reason },
        'the controller refused the host credential; re-enrolled with the enrollment token, resending the spool',
      );
      // The pacing stays until a report is accepted: a new credential refused at once must not loop.
      this.refused = null;
      this.state.clearCredentialRefused();
      return true;
    }
    if (!this.refused || this.refused.reenroll !== reenroll) {
      this.log.error(
        { hostId: this.hostId, reason, reenroll, spooled: this.spool.list().length },
        'the controller refuses this host credential; reports stay spooled and are retried. An operator must reset or remove the host on the controller (then the agent enrolls again), or restore its credential',
      );
    }
    this.refused = { since: this.refused?.since ?? now, reason, reenroll, at: now };
    this.state.writeJson(this.state.credentialRefusedFile, this.refused);
    return false;
  }

  private credentialAccepted(): void {
    this.refused = null;
    this.reenrollAttempt = 0;
    this.reenrollNotBefore = 0;
    this.state.clearCredentialRefused();
  }

  /** For --once: the controller's refusal of this host's credential, if it refuses it. */
  get credentialRefusal(): CredentialRefused | null {
    return this.refused;
  }

  /** `waitMs`: the controller said how long (Retry-After); otherwise exponential backoff with jitter. */
  private scheduleRetry(waitMs?: number): void {
    if (this.retryTimer || this.stopped) return;
    const wait = waitMs ?? Math.max(backoffMs(this.retryAttempt++), this.holdUntil - Date.now());
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.flush();
    }, wait);
  }

  /** Run as a service until stop(): schedules, heartbeats, the watcher, and a first scan now. */
  async start(): Promise<void> {
    this.stopped = false;
    this.tasks = [
      cron.schedule(this.config.schedule.scan, () => this.scheduledScan(false), {
        name: 'scan',
        noOverlap: true,
        maxRandomDelay: jitterMs(this.config.schedule.scan),
      }),
      cron.schedule(this.config.schedule.fullRehash, () => this.scheduledScan(true), {
        name: 'full-rehash',
        noOverlap: true,
        maxRandomDelay: jitterMs(this.config.schedule.fullRehash),
      }),
    ];
    const every = parseDuration(this.config.schedule.heartbeat) ?? 60_000;
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), every);
    const paths = this.config.watch?.paths ?? DEFAULT_WATCH_PATHS;
    if (paths.length > 0) {
      this.watcher = new ChangeWatcher(this.root, paths, (batch) => void this.onChanges(batch), this.log, {
        exclude: [this.config.stateDir],
        onPath: (p) => this.observe(p),
      });
      await this.watcher.start();
    }
    await this.scan(false);
  }

  /** Stop taking new work, let the current scan and send finish, and release everything. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.tasks) await t.destroy();
    this.tasks = [];
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    // A cleared timer left here would make scheduleRetry() think a retry is pending, forever (after a reload).
    this.retryTimer = null;
    await this.watcher?.close();
    this.watcher = null;
    await this.scanning;
    this.runner.close();
    this.eventRunner.close();
    await this.flushing;
    await this.transport?.close();
  }

  /** SIGHUP: the config file (and its manifest) read again take over; the spool and credential stay. */
  async reload(): Promise<void> {
    // Load what the new config points at before stopping anything: one that cannot run keeps the running one.
    const probe = new AgentService(this.configFile, this.log);
    await probe.init();
    probe.runner.close();
    await probe.transport?.close();
    await this.stop();
    this.transport = null;
    await this.init();
    await this.start();
  }

  /** For --once: how many reports the controller has refused for good. */
  rejectedCount(): number {
    return this.spool.rejected();
  }

  /** For --once: how many reports wait in the spool. */
  spoolDepth() {
    return this.spool.depth();
  }

  get watchStatus() {
    return this.watcher?.status ?? { state: 'off' as const };
  }

  private saveLastScan(s: LastScan): void {
    this.state.writeJson(this.state.lastScanFile, { ...s, watch: this.watchStatus, spool: this.spool.depth() });
  }
}

/**
 * A fleet's scans are spread by a random delay of up to a tenth of the schedule's interval, at most 60 s:
 * a fixed 60 s would swallow a schedule shorter than that (with noOverlap, a pending delayed run
 * blocks the ticks behind it).
 */
function jitterMs(expression: string): number {
  const probe = cron.createTask(expression, () => undefined);
  const [a, b] = probe.getNextRuns(2);
  void probe.destroy();
  return a && b ? Math.min(60_000, Math.floor((b.getTime() - a.getTime()) / 10)) : 0;
}
