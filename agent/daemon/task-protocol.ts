/**
 * @module What the long-lived agent and its short-lived task process say to each other over the IPC
 * channel. Types only, so the daemon's side loads nothing to speak it.
 */
import type { CollectorName } from '../../shared/schema/common.js';
import type { AgentConfig } from '../../shared/schema/config.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import type { Inventory } from '../../shared/schema/report.js';
import type { ReadIdentity } from '../cloud-identity.js';

export type TaskRequest =
  /** Validate the config, verify the manifest, read who the host is, and write the baseline. */
  | { task: 'prepare'; configFile: string }
  /** One scan of the host against the manifest, spooled as a report. */
  | {
      task: 'scan';
      config: AgentConfig;
      /** The manifest the agent started with: a scan refuses a manifest file changed since. */
      manifestDigest: string;
      fullRehash: boolean;
      hostId: string;
      identity?: ReadIdentity['identity'];
    }
  /** Run these collectors and diff them against the baseline's sections (a watched source changed). */
  | { task: 'collect'; config: AgentConfig; baselineFile: string; manifestDigest: string; collectors: CollectorName[] };

export interface Prepared {
  /** The config as validated, defaults filled in (the daemon loads no schema library to do that). */
  config: AgentConfig;
  /** The verified manifest's digest: every later task is held to it. */
  manifestDigest: string;
  hostId: string;
  inventory: Inventory;
  cloud: ReadIdentity | null;
  baselineFile: string;
}

/** What the daemon keeps of a scan: enough for heartbeats and `agent status`, never the deviations. */
export interface ScanSummary {
  seq: number;
  scannedAt: string;
  clean: boolean;
  complete: boolean;
  deviations: number;
  bytes: number;
  truncated?: { deviations: number; sent: number };
  digests: Record<string, string>;
  host: Inventory;
  imageId: string;
  manifestDigest: string;
  /** Why the scan's own pacing stopped it, when it did (the report says so too). */
  stopped?: string;
  throttledMs: number;
  /** The scan process's peak resident memory (VmHWM), MB. */
  peakRssMb: number;
}

export interface Collected {
  deviations: Deviation[];
}

export type TaskResult = Prepared | ScanSummary | Collected;

export type ChildMessage =
  /** The child asks for the report's sequence number: only the daemon writes the counter. */
  | { type: 'seq' }
  /** The limits to hold the child to, sent by `prepare` once it has read them from the config. */
  | { type: 'limits'; limits: AgentConfig['limits'] }
  | { type: 'done'; result: TaskResult }
  /** `phase: 'config'`: the config file itself is invalid (what SIGHUP reports as such). */
  | { type: 'error'; code: string; message: string; phase?: 'config' };

export type ParentMessage = { type: 'request'; request: TaskRequest } | { type: 'seq'; seq: number };
