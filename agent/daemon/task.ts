/**
 * @module `driftwarden agent task`: the agent's heavy work, in a process of its own that the daemon
 * starts and watches (task-child.ts). Prepare (validate the config, verify the manifest, read who the
 * host is, write the baseline), scan (walk, hash, diff, spool the report) and collect (the collectors
 * a watched change feeds). It reads its request from the IPC channel and answers there; its log goes
 * to stderr like the daemon's. The daemon decides when it stops: SIGTERM (which systemd sends the
 * whole unit) does not cut a scan short; a daemon that goes away does.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { diffSection } from '../../shared/diff.js';
import { loadConfigFile } from '../../shared/config-load.js';
import { describeError, DwError } from '../../shared/errors.js';
import { loadManifest, type VerifyResult } from '../../shared/manifest.js';
import { AgentConfigSchema, parseDuration, type AgentConfig } from '../../shared/schema/config.js';
import type { AnyItem, FileItem } from '../../shared/schema/items.js';
import type { Manifest } from '../../shared/schema/manifest.js';
import { REPORT_SCHEMA_ID, type Report } from '../../shared/schema/report.js';
import { readCloudIdentity, type ReadIdentity } from '../cloud-identity.js';
import { COLLECTORS } from '../collectors/index.js';
import { check } from '../commands/check.js';
import { loadVerifiedManifest } from '../commands/manifest.js';
import { execProgram } from '../exec.js';
import { readHostId, readInventory } from '../identity.js';
import { writeFileAtomic } from '../atomic-write.js';
import { createLogger, type Logger } from '../log.js';
import { keepPacked } from '../packed-files.js';

import { reportFromCheck } from '../report.js';
import { HostRoot } from '../root.js';
import { AGENT_VERSION } from '../version.js';
import {
  BASELINE_SCHEMA,
  DEFAULT_WATCH_PATHS,
  baselineFile,
  readBaseline,
  under,
  watchedCollectors,
  type Baseline,
} from './baseline.js';
import { ensureEnrolled } from './enroll.js';
import { releaseMemory } from './release-memory.js';
import { DEFAULT_REPORT_LIMITS, fitReport } from './report-size.js';
import { Spool } from './spool.js';
import { StateDir } from './state-dir.js';
import { lockStateDir } from './state-lock.js';
import type { ChildMessage, Collected, ParentMessage, Prepared, ScanSummary, TaskRequest } from './task-protocol.js';
import { encodeBody, transportFor } from './transport.js';
import { ScanWatchdog } from './watchdog.js';

/** Walk batches (4,096 entries each) a scan's walk may be ahead of the collector: enough to keep it busy. */
const WALK_AHEAD_BATCHES = 2;

/** How often a scan runs a full garbage collection (see collectDuring in scan()). */
const SCAN_COLLECT_MS = 2000;

function send(m: ChildMessage): Promise<void> {
  return new Promise((resolve, reject) =>
    process.send!(m, undefined, undefined, (err) => (err ? reject(err) : resolve())),
  );
}

function nextMessage<T extends ParentMessage['type']>(type: T): Promise<Extract<ParentMessage, { type: T }>> {
  return new Promise((resolve) => {
    const on = (m: ParentMessage) => {
      if (m.type !== type) return;
      process.off('message', on);
      resolve(m as Extract<ParentMessage, { type: T }>);
    };
    process.on('message', on);
  });
}

/** The entry point of `driftwarden agent task`. */
export async function runTaskProcess(): Promise<void> {
  if (!process.send) throw new DwError('DW_ERR_USAGE', 'agent task is started by the agent itself, not by hand');
  // The daemon stops the task (it waits for a scan to finish when it is stopped); an orphan stops itself.
  process.on('SIGTERM', () => undefined);
  process.on('SIGINT', () => undefined);
  process.on('disconnect', () => process.exit(3));
  const log = createLogger(process.env.DRIFTWARDEN_LOG_LEVEL ?? 'info').child({ task: process.pid });
  // One request at a time, until the daemon lets this process go (it closes the channel).
  for (;;) {
    const { request } = await nextMessage('request');
    try {
      const result =
        request.task === 'prepare'
          ? await prepare(request, log)
          : request.task === 'scan'
            ? await scan(request, log)
            : await collect(request, log);
      await send({ type: 'done', result });
    } catch (err) {
      await send({
        type: 'error',
        code: err instanceof DwError ? err.code : 'DW_ERR_INTERNAL',
        message: err instanceof DwError ? err.message : describeError(err),
        ...(err instanceof DwError && err.context.phase === 'config' ? { phase: 'config' as const } : {}),
      });
    }
    // What the task allocated is garbage now; the process may wait a while for the next one.
    releaseMemory();
  }
}

async function prepare(request: Extract<TaskRequest, { task: 'prepare' }>, log: Logger): Promise<Prepared> {
  let config: AgentConfig;
  try {
    config = loadConfigFile(AgentConfigSchema, request.configFile);
  } catch (err) {
    if (err instanceof DwError) throw new DwError(err.code, err.message, { ...err.context, phase: 'config' });
    throw err;
  }
  await send({ type: 'limits', limits: config.limits });
  // For the daemon, before anything is written there: one agent per state directory.
  new StateDir(config.stateDir);
  lockStateDir(config.stateDir, process.ppid);
  if (!config.manifest)
    throw new DwError('DW_ERR_CONFIG', 'agent config: manifest: required (the manifest baked into the image)');
  if (!config.controller)
    throw new DwError(
      'DW_ERR_CONFIG',
      'agent config: controller: required (url, and an enrollment token for the first start)',
    );
  let loaded: { manifest: Manifest; verified: VerifyResult };
  try {
    loaded = loadVerifiedManifest(config.manifest, { pubkeys: config.trustedKeys });
  } catch (err) {
    if (err instanceof DwError && (err.code === 'DW_ERR_MANIFEST_SIGNATURE' || err.code === 'DW_ERR_MANIFEST_DIGEST'))
      await reportRefusedManifest(config, err, log);
    throw err;
  }
  const root = await HostRoot.open(config.root);
  const hostId = (await readHostId(root, config.stateDir))!;
  const cloud = root.dir === '/' ? await readCloud(config, hostId, log) : null;
  const inventory = await readInventory(root, hostId);
  const file = baselineFile(config.stateDir);
  writeFileAtomic(file, JSON.stringify(baselineOf(loaded, config)), 0o600);
  return { config, manifestDigest: loaded.verified.digest, hostId, inventory, cloud, baselineFile: file };
}

export function baselineOf(loaded: { manifest: Manifest; verified: VerifyResult }, config: AgentConfig): Baseline {
  const { manifest, verified } = loaded;
  const watchPaths = config.watch?.paths ?? DEFAULT_WATCH_PATHS;
  const files: FileItem[] = (manifest.sections.files?.items ?? []).filter((i) => under(i.key, watchPaths));
  const sections: Baseline['sections'] = {};
  for (const c of watchedCollectors(manifest.rules, watchPaths))
    sections[c] = (manifest.sections[c]?.items ?? []) as AnyItem[];
  return {
    schema: BASELINE_SCHEMA,
    manifestDigest: verified.digest,
    signedBy: verified.signedBy,
    image: { id: manifest.image.id, name: manifest.image.name, version: manifest.image.version },
    createdAt: manifest.createdAt,
    rules: manifest.rules,
    watchPaths: [...watchPaths],
    files,
    sections,
  };
}

async function readCloud(config: AgentConfig, hostId: string, log: Logger): Promise<ReadIdentity> {
  const c = config.identity;
  const read = await readCloudIdentity({
    mode: c.mode,
    imdsEndpoint: c.imdsEndpoint,
    imdsTimeoutMs: parseDuration(c.imdsTimeout) ?? 1000,
    machineId: hostId,
    stateDir: config.stateDir,
  });
  if (read.fallback)
    log.info({ reason: read.fallback }, 'no cloud identity (IMDS did not answer): reporting as a plain host');
  return read;
}

/**
 * The baked manifest does not verify: the agent will not run on it, but first tells the controller
 * (one heartbeat carrying `manifestRefused`, which taints), so an altered baseline is a finding and
 * not just a host gone quiet. Best effort: a manifest that does not even parse, or a controller out of
 * reach, leaves only the refusal at start (and silence, which taints later).
 */
async function reportRefusedManifest(config: AgentConfig, refusal: DwError, log: Logger): Promise<void> {
  const controller = config.controller;
  if (!controller || !config.manifest) return;
  try {
    // Unverified, and used only to name the image and the digest the host holds.
    const manifest = loadManifest(config.manifest);
    const root = await HostRoot.open(config.root);
    const hostId = (await readHostId(root, config.stateDir))!;
    const state = new StateDir(config.stateDir);
    const transport = transportFor(controller);
    try {
      const inventory = await readInventory(root, hostId);
      const enrolled = await ensureEnrolled(state, transport, config, {
        hostId,
        imageId: manifest.image.id,
        inventory,
        agentVersion: AGENT_VERSION,
      });
      if (!enrolled.ok) {
        log.error({ reason: enrolled.reason }, 'could not enroll to report the refused manifest');
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
        // Before the daemon runs anything: nothing else writes the counter now.
        seq: state.nextSeq(),
        scannedAt: new Date().toISOString(),
        digests: {},
        collectors: [],
        deviations: [],
        manifestRefused: {
          code: refusal.code as 'DW_ERR_MANIFEST_SIGNATURE' | 'DW_ERR_MANIFEST_DIGEST',
          reason: refusal.message.slice(0, 1000),
        },
      };
      const r = await transport.postEncoded('/api/v1/reports', enrolled.credential, encodeBody(JSON.stringify(report)));
      if (r.ok) log.error({ code: refusal.code }, 'manifest refused; the controller was told');
      else log.error({ reason: r.reason }, 'manifest refused; telling the controller failed');
    } finally {
      await transport.close();
    }
  } catch (err) {
    log.error({ err }, 'manifest refused; could not tell the controller');
  }
}

/** A scan yields the CPU and disk to the host's real work: nice 10 and the idle IO class. */
function lowerPriority(log: Logger): void {
  try {
    setPriority(10);
  } catch (err) {
    log.debug({ err }, 'cannot change CPU priority');
  }
  execFile('ionice', ['-c', '3', '-p', String(process.pid)], (err) => {
    if (err) log.debug({ err }, 'ionice unavailable');
  });
}

/** The process's peak resident memory so far (VmHWM), MB. */
function peakRssMb(): number {
  try {
    const kb = Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
    return Math.round(kb / 1024);
  } catch {
    return 0;
  }
}

async function scan(request: Extract<TaskRequest, { task: 'scan' }>, log: Logger): Promise<ScanSummary> {
  const config = AgentConfigSchema.parse(request.config);
  lowerPriority(log);
  const loaded = keepPacked(loadVerifiedManifest(config.manifest!, { pubkeys: config.trustedKeys }));
  if (loaded.verified.digest !== request.manifestDigest)
    throw new DwError(
      'DW_ERR_MANIFEST_DIGEST',
      `${config.manifest} changed since the agent started (now ${loaded.verified.digest}, started with ${request.manifestDigest}): reload the agent (SIGHUP) to take the new manifest`,
    );
  // The manifest's text and parsed items are garbage once packed: gone before the walk allocates.
  releaseMemory();
  const limits = config.limits;
  let lastCollect = Date.now();
  // A full collection every few seconds: V8 would otherwise let the old generation grow to a multiple of
  // what is live (the walk's batches, replaced items and hash replies are garbage within moments).
  const collectDuring = (): void => {
    if (Date.now() - lastCollect < SCAN_COLLECT_MS) return;
    releaseMemory();
    lastCollect = Date.now();
  };
  // CPU pacing only: memory and duration are held from outside, by the daemon's ChildWatchdog.
  const pacer = new ScanWatchdog({
    cpuShare: limits.cpuShare,
    memoryMb: Number.POSITIVE_INFINITY,
    maxDurationMs: Number.POSITIVE_INFINITY,
  }).start();
  const result = await check({
    manifest: config.manifest!,
    loaded,
    root: config.root,
    stateDir: config.stateDir,
    fullRehash: request.fullRehash,
    log,
    signal: pacer.signal,
    pace: () => {
      collectDuring();
      return pacer.pace();
    },
    // More hashing threads than the CPU share allows would only be paced back, and each is an isolate of
    // its own (10-15 MB): a share of up to one core hashes on this thread.
    hashWorkers: limits.cpuShare <= 1 ? 0 : Math.ceil(limits.cpuShare),
    // A first scan walks far faster than it hashes: the walk waits rather than queue in memory.
    walkAhead: WALK_AHEAD_BATCHES,
    onCollected: releaseMemory,
  }).finally(() => pacer.stop());
  if (pacer.throttledMs > 0) log.info({ throttledMs: Math.round(pacer.throttledMs) }, 'scan paced to its CPU share');
  const state = new StateDir(config.stateDir);
  const spool = new Spool(state.spoolDir, config.spool?.maxBytes);
  // The sequence number is taken now, from the daemon (which sends heartbeats meanwhile): a report's seq
  // must be above every one sent before it.
  send({ type: 'seq' });
  const { seq } = await nextMessage('seq');
  const whole = reportFromCheck(result, {
    seq,
    hostId: request.hostId,
    group: config.group,
    identity: request.identity,
  });
  const dropped = spool.dropped();
  if (dropped > 0) whole.spoolDropped = dropped;
  // Cut to 60 MiB of JSON before it is spooled: a report of 200k+ deviations would otherwise pass the
  // controller's default decompressed limit and fill the spool's default bound by itself.
  const { report } = fitReport(whole, DEFAULT_REPORT_LIMITS);
  if (report.truncated)
    log.warn(
      { seq: report.seq, deviations: report.truncated.deviations, sent: report.truncated.sent },
      'scan too large for the controller: only the most severe deviations are sent, and the report says so',
    );
  const spooled = spool.add(report);
  return {
    seq,
    scannedAt: result.scannedAt,
    clean: result.clean,
    complete: result.complete,
    deviations: result.deviations.length,
    bytes: spooled.bytes,
    ...(report.truncated ? { truncated: report.truncated } : {}),
    digests: result.digests,
    host: result.host,
    imageId: result.image.id,
    manifestDigest: result.manifestDigest,
    throttledMs: Math.round(pacer.throttledMs),
    peakRssMb: peakRssMb(),
  };
}

async function collect(request: Extract<TaskRequest, { task: 'collect' }>, log: Logger): Promise<Collected> {
  const config = AgentConfigSchema.parse(request.config);
  const raw = readBaseline(request.baselineFile, request.manifestDigest);
  const root = await HostRoot.open(config.root);
  const deviations: Collected['deviations'] = [];
  for (const name of request.collectors) {
    const c = COLLECTORS[name];
    if (!c) continue;
    const out = await c.collect({ root, rules: raw.rules, exec: execProgram, log: log.child({ collector: name }) });
    for (const d of diffSection(name, raw.sections[name] ?? [], out.items as AnyItem[])) deviations.push(d);
  }
  return { deviations };
}
