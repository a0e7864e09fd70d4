/**
 * @module The agent service: enroll once, scan on a schedule (with jitter, never two at once), send
 * heartbeats between scans, turn watched changes into event reports at once, and deliver every
 * report through the durable spool. Scans run at low CPU and IO priority.
 */
import { execFile } from 'node:child_process';
import { setPriority } from 'node:os';
import cron, { type ScheduledTask } from 'node-cron';
import { COLLECTOR_DEFS } from '../../shared/collectors.js';
import { diffSection } from '../../shared/diff.js';
import { randomUUID } from 'node:crypto';
import { describeError, DwError } from '../../shared/errors.js';
import type { AgentConfig } from '../../shared/schema/config.js';
import { parseDuration } from '../../shared/schema/config.js';
import type { CheckResult } from '../../shared/schema/check.js';
import type { CollectorName } from '../../shared/schema/common.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import type { AnyItem } from '../../shared/schema/items.js';
import type { Manifest } from '../../shared/schema/manifest.js';
import type { VerifyResult } from '../../shared/manifest.js';
import { REPORT_SCHEMA_ID, type Report, type UndeliveredScan } from '../../shared/schema/report.js';
import { loadManifest } from '../../shared/manifest.js';
import { COLLECTORS } from '../collectors/index.js';
import { check } from '../commands/check.js';
import { loadVerifiedManifest } from '../commands/manifest.js';
import { execProgram } from '../exec.js';
import { readCloudIdentity, type ReadIdentity } from '../cloud-identity.js';
import { readHostId, readInventory } from '../identity.js';
import type { Logger } from '../log.js';
import { reportFromCheck } from '../report.js';
import { HostRoot } from '../root.js';
import { AGENT_VERSION } from '../version.js';
import { enroll, ensureEnrolled, hasEnrollmentToken } from './enroll.js';
import { fileDeviations } from './fingerprint.js';
import { PackedFiles } from '../packed-files.js';
import { Spool } from './spool.js';
import { StateDir } from './state-dir.js';
import { DEFAULT_REPORT_LIMITS, fitReport } from './report-size.js';
import { backoffMs, encodeBody, retryAfterDelayMs, transportFor, type Transport } from './transport.js';
import { ChangeWatcher } from './watch.js';
import { ScanWatchdog } from './watchdog.js';
import { releaseMemory, settleMemory } from './release-memory.js';

/** Paths watched when the config names none: config, cron, ssh keys, local binaries, /opt. */
export const DEFAULT_WATCH_PATHS = [
  '/etc',
  '/var/spool/cron',
  '/root/.ssh',
  '/usr/local/bin',
  '/usr/local/sbin',
  '/opt',
];

/** Which collectors a changed path feeds, besides the files collector: the registry's watch triggers. */
const SOURCES: { collector: CollectorName; prefixes: readonly string[] }[] = COLLECTOR_DEFS.filter(
  (d) => d.watch.length > 0,
).map((d) => ({ collector: d.name, prefixes: d.watch }));

/** Walk batches (4,096 entries each) a scan's walk may be ahead of the collector: enough to keep it busy. */
const WALK_AHEAD_BATCHES = 2;

/** How often a scan runs a full garbage collection (see collectDuring in scanToSpool). */
const SCAN_COLLECT_MS = 2000;

export interface LastScan {
  at: string;
  clean: boolean;
  complete: boolean;
  deviations: number;
  durationMs: number;
  seq: number;
  error?: string;
}

export interface CredentialRefused {
  since: string;
  /** The controller's answer to the last report: `401: …`. */
  reason: string;
  /** What the last re-enrollment attempt got, or why there was none. */
  reenroll: string;
  at: string;
}

/**
 * The verified manifest as the agent keeps it for its lifetime: the files section packed, and the
 * manifest's own array of its items let go (it is most of a manifest's memory). Packing happens after
 * verification, from the verified items; a section that cannot be packed exactly stays as it is.
 */
export function keepPacked(loaded: { manifest: Manifest; verified: VerifyResult }): {
  manifest: Manifest;
  verified: VerifyResult;
  files: PackedFiles | null;
} {
  const { manifest, verified } = loaded;
  const section = manifest.sections.files;
  const files = section ? PackedFiles.pack(section.items) : null;
  if (!section || !files) return { manifest, verified, files: null };
  return {
    manifest: { ...manifest, sections: { ...manifest.sections, files: { ...section, items: [] } } },
    verified,
    files,
  };
}

export class AgentService {
  private manifest!: Manifest;
  /** `files`: the files section packed; `manifest` then holds that section with no items. */
  private loaded!: { manifest: Manifest; verified: VerifyResult; files: PackedFiles | null };
  private root!: HostRoot;
  private hostId!: string;
  /** Where this host runs (agent/cloud-identity.ts), read once at start; null for a mounted root. */
  private cloud: ReadIdentity | null = null;
  private transport: Transport | null = null;
  private spool: Spool;
  private state: StateDir;
  private credential: string | null;
  private lastResult: CheckResult | null = null;
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

  constructor(
    private config: AgentConfig,
    private readonly log: Logger,
  ) {
    this.state = new StateDir(config.stateDir);
    this.spool = new Spool(this.state.spoolDir, config.spool?.maxBytes);
    this.credential = this.state.readCredential();
    this.refused = this.state.readJson<CredentialRefused>(this.state.credentialRefusedFile);
  }

  /** Load what the config points at; throws a DwError that names the problem. */
  async init(): Promise<void> {
    if (!this.config.manifest)
      throw new DwError('DW_ERR_CONFIG', 'agent config: manifest: required (the manifest baked into the image)');
    if (!this.config.controller)
      throw new DwError(
        'DW_ERR_CONFIG',
        'agent config: controller: required (url, and an enrollment token for the first start)',
      );
    try {
      this.loaded = keepPacked(loadVerifiedManifest(this.config.manifest, { pubkeys: this.config.trustedKeys }));
    } catch (err) {
      if (err instanceof DwError && (err.code === 'DW_ERR_MANIFEST_SIGNATURE' || err.code === 'DW_ERR_MANIFEST_DIGEST'))
        await this.reportRefusedManifest(err);
      throw err;
    }
    this.manifest = this.loaded.manifest;
    // The manifest's text and parsed items (tens of MB for 100k+ files) are garbage once packed: gone
    // now, before the watcher's crawl and the first scan allocate on top of them.
    releaseMemory();
    this.root = await HostRoot.open(this.config.root);
    const id = await readHostId(this.root, this.config.stateDir);
    this.hostId = id!;
    this.cloud = await this.readCloud();
    if (this.config.controller) {
      await this.transport?.close();
      this.transport = transportFor(this.config.controller);
    }
  }

  /**
   * The baked manifest does not verify: the agent will not run on it, but first tells the controller
   * (one heartbeat carrying `manifestRefused`, which taints), so an altered baseline is a finding and
   * not just a host gone quiet. Best effort: a manifest that does not even parse, or a controller out of
   * reach, leaves only the refusal at start (and silence, which taints later).
   */
  private async reportRefusedManifest(refusal: DwError): Promise<void> {
    const controller = this.config.controller;
    if (!controller || !this.config.manifest) return;
    try {
      // Unverified, and used only to name the image and the digest the host holds.
      const manifest = loadManifest(this.config.manifest);
      const root = await HostRoot.open(this.config.root);
      const hostId = (await readHostId(root, this.config.stateDir))!;
      const transport = transportFor(controller);
      try {
        const inventory = await readInventory(root, hostId);
        const enrolled = await ensureEnrolled(this.state, transport, this.config, {
          hostId,
          imageId: manifest.image.id,
          inventory,
          agentVersion: AGENT_VERSION,
        });
        if (!enrolled.ok) {
          this.log.error({ reason: enrolled.reason }, 'could not enroll to report the refused manifest');
          return;
        }
        const report: Report = {
          schema: REPORT_SCHEMA_ID,
          kind: 'heartbeat',
          reportId: randomUUID(),
          hostId,
          imageId: manifest.image.id,
          manifestDigest: manifest.digests.overall,
          agentVersion: AGENT_VERSION,
          seq: this.state.nextSeq(),
          scannedAt: new Date().toISOString(),
          digests: {},
          collectors: [],
          deviations: [],
          manifestRefused: {
            code: refusal.code as 'DW_ERR_MANIFEST_SIGNATURE' | 'DW_ERR_MANIFEST_DIGEST',
            reason: refusal.message.slice(0, 1000),
          },
        };
        const r = await transport.postEncoded(
          '/api/v1/reports',
          enrolled.credential,
          encodeBody(JSON.stringify(report)),
        );
        if (r.ok) this.log.error({ code: refusal.code }, 'manifest refused; the controller was told');
        else this.log.error({ reason: r.reason }, 'manifest refused; telling the controller failed');
      } finally {
        await transport.close();
      }
    } catch (err) {
      this.log.error({ err }, 'manifest refused; could not tell the controller');
    }
  }

  private async readCloud(): Promise<ReadIdentity | null> {
    if (this.root.dir !== '/') return null;
    const c = this.config.identity;
    const read = await readCloudIdentity({
      mode: c.mode,
      imdsEndpoint: c.imdsEndpoint,
      imdsTimeoutMs: parseDuration(c.imdsTimeout) ?? 1000,
      machineId: this.hostId,
      stateDir: this.config.stateDir,
    });
    if (read.fallback)
      this.log.info({ reason: read.fallback }, 'no cloud identity (IMDS did not answer): reporting as a plain host');
    return read;
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
      lowerPriority(this.log, true);
      // Start from a collected heap: an idle agent rarely runs a full GC, and what it left (the manifest's
      // text from init, a previous report) would otherwise sit under the scan's peak.
      releaseMemory();
      try {
        const limits = this.config.limits;
        // A full collection every few seconds of a scan: V8 would otherwise let the old generation grow to
        // a multiple of what is live (the walk's batches, replaced items and hash replies are garbage
        // within moments) before collecting it. The main thread only feeds the walk and the hash
        // workers, so the pauses cost the scan little.
        let lastCollect = Date.now();
        const collectDuring = (): void => {
          if (Date.now() - lastCollect < SCAN_COLLECT_MS) return;
          releaseMemory();
          lastCollect = Date.now();
        };
        const watchdog = new ScanWatchdog({
          cpuShare: limits.cpuShare,
          memoryMb: limits.memoryMb,
          maxDurationMs: parseDuration(limits.maxScanDuration) ?? 3_600_000,
        }).start();
        const result = await check({
          manifest: this.config.manifest!,
          loaded: this.loaded,
          root: this.config.root,
          stateDir: this.config.stateDir,
          fullRehash,
          log: this.log,
          signal: watchdog.signal,
          pace: () => {
            collectDuring();
            return watchdog.pace();
          },
          // More hashing threads than the CPU share allows would only be paced back, and each is an
          // isolate of its own (10-15 MB): a share of up to one core hashes on this thread, in slices
          // between which the event loop runs (heartbeats, the watcher, signals).
          hashWorkers: limits.cpuShare <= 1 ? 0 : Math.ceil(limits.cpuShare),
          // A first scan walks far faster than it hashes: the walk waits rather than queue in memory.
          walkAhead: WALK_AHEAD_BATCHES,
          // The walk's last seconds of garbage, gone before the diff and the stat cache's save add theirs.
          onCollected: releaseMemory,
        }).finally(() => watchdog.stop());
        if (watchdog.signal.aborted)
          this.log.error(
            { reason: String((watchdog.signal.reason as Error).message) },
            'scan stopped by the watchdog; the report says so',
          );
        else if (watchdog.throttledMs > 0)
          this.log.info({ throttledMs: Math.round(watchdog.throttledMs) }, 'scan paced to its CPU share');
        // Heartbeats and events need the digests and the inventory, never the deviations: a drifted host's
        // can be 100k+ items with both bodies, which would otherwise sit in memory until the next scan.
        this.lastResult = { ...result, deviations: [] };
        const dropped = this.spool.dropped();
        const whole = reportFromCheck(result, {
          seq: this.state.nextSeq(),
          hostId: this.hostId,
          group: this.config.group,
          identity: this.cloud?.identity,
        });
        if (dropped > 0) whole.spoolDropped = dropped;
        // Cut to 60 MiB of JSON before it is spooled: a report of 200k+ deviations would otherwise pass the
        // controller's default decompressed limit and fill the spool's default bound by itself.
        const { report } = fitReport(whole, DEFAULT_REPORT_LIMITS);
        if (report.truncated)
          this.log.warn(
            { seq: report.seq, deviations: report.truncated.deviations, sent: report.truncated.sent },
            'scan too large for the controller: only the most severe deviations are sent, and the report says so',
          );
        const spooled = this.spool.add(report);
        this.saveLastScan({
          at: result.scannedAt,
          clean: result.clean,
          complete: result.complete,
          deviations: result.deviations.length,
          durationMs: Date.now() - started,
          seq: report.seq,
        });
        this.log.info(
          {
            seq: report.seq,
            deviations: result.deviations.length,
            bytes: spooled.bytes,
            fullRehash,
            ms: Date.now() - started,
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
          error: describeError(err),
        });
      } finally {
        lowerPriority(this.log, false);
        settleMemory();
      }
    };
    // Scans never overlap: each waits for the one before it.
    this.scanning = this.scanning.then(run, run);
    return this.scanning;
  }

  /** A heartbeat: the last scan's digests, no deviations. Skipped until there is a scan to vouch for. */
  async heartbeat(): Promise<void> {
    if (!this.lastResult || this.stopped) return;
    try {
      this.spool.add(
        reportFromCheck(this.lastResult, {
          seq: this.state.nextSeq(),
          hostId: this.hostId,
          group: this.config.group,
          kind: 'heartbeat',
          identity: this.cloud?.identity,
        }),
      );
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
      const deviations: Deviation[] = fileDeviations(this.root, this.manifest, paths, this.loaded.files);
      // A change reverted before its batch closed still happened: keep what was seen as it happened.
      const current = new Set(deviations.map((d) => d.key));
      for (const p of paths) {
        const seen = this.observed.get(p);
        this.observed.delete(p);
        if (seen && !current.has(p)) deviations.push(seen);
      }
      for (const { collector, prefixes } of SOURCES) {
        if (!this.manifest.rules.collectors.includes(collector)) continue;
        if (!paths.some((p) => prefixes.some((pre) => p === pre || p.startsWith(pre)))) continue;
        const c = COLLECTORS[collector];
        if (!c) continue;
        const out = await c.collect({ root: this.root, rules: this.manifest.rules, exec: execProgram, log: this.log });
        deviations.push(
          ...diffSection(
            collector,
            (this.manifest.sections[collector]?.items ?? []) as AnyItem[],
            out.items as AnyItem[],
          ),
        );
      }
      if (deviations.length === 0) return;
      const inventory = this.lastResult?.host ?? (await readInventory(this.root, this.hostId));
      const report: Report = {
        schema: 'driftwarden/report/v1',
        kind: 'event',
        reportId: randomUUID(),
        hostId: this.hostId,
        imageId: this.manifest.image.id,
        manifestDigest: this.manifest.digests.overall,
        agentVersion: AGENT_VERSION,
        seq: this.state.nextSeq(),
        scannedAt: new Date().toISOString(),
        digests: this.lastResult?.digests ?? {},
        collectors: [],
        deviations,
        inventory,
        ...(this.cloud ? { identity: this.cloud.identity } : {}),
        ...(this.config.group ? { group: this.config.group } : {}),
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
      const [d] = fileDeviations(this.root, this.manifest, [path], this.loaded.files);
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
    if (!this.transport) return this.spool.list().length === 0;
    // Told to come back later: new reports wait in the spool with the rest (a heartbeat or a scan
    // finishing must not send through the controller's Retry-After); the retry timer flushes them.
    if (Date.now() < this.holdUntil) {
      this.scheduleRetry();
      return false;
    }
    if (!this.credential) {
      const inventory = this.lastResult?.host ?? (await readInventory(this.root, this.hostId));
      const r = await ensureEnrolled(this.state, this.transport, this.config, {
        hostId: this.hostId,
        imageId: this.manifest.image.id,
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
      const inventory = this.lastResult?.host ?? (await readInventory(this.root, this.hostId));
      const r = await enroll(this.state, this.transport!, this.config, {
        hostId: this.hostId,
        imageId: this.manifest.image.id,
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
    await this.flushing;
    await this.transport?.close();
  }

  /** SIGHUP: a new config (and manifest) take over; the spool and credential stay. */
  async reload(config: AgentConfig): Promise<void> {
    // Load what the new config points at before stopping anything: one that cannot run keeps the running one.
    const probe = new AgentService(config, this.log);
    await probe.init();
    await probe.transport?.close();
    await this.stop();
    this.config = config;
    this.state = new StateDir(config.stateDir);
    this.spool = new Spool(this.state.spoolDir, config.spool?.maxBytes);
    this.credential = this.state.readCredential();
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

/** Scans yield the CPU and disk to the host's real work: nice 10 and the idle IO class while they run. */
function lowerPriority(log: Logger, during: boolean): void {
  try {
    setPriority(during ? 10 : 0);
  } catch (err) {
    log.debug({ err }, 'cannot change CPU priority');
  }
  execFile(
    'ionice',
    during ? ['-c', '3', '-p', String(process.pid)] : ['-c', '2', '-n', '4', '-p', String(process.pid)],
    (err) => {
      if (err) log.debug({ err }, 'ionice unavailable');
    },
  );
}
