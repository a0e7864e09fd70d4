/**
 * @module The store contract: one interface, implemented once with Kysely over SQLite (better-sqlite3,
 * WAL) and PostgreSQL (pg), with one set of migrations. Every method is usable inside a transaction.
 * Times are ISO-8601 strings in UTC; JSON columns are parsed objects on this side of the interface.
 */
import type { Attribution, Deviation, Severity } from '../../shared/schema/deviation.js';
import type { CloudIdentity } from '../../shared/schema/identity.js';
import type { Inventory } from '../../shared/schema/report.js';
import type { Finding, FindingSort } from '../../shared/schema/findings.js';
import type { ReplacementStoreTx } from './replacements.js';
import type { RetentionStoreTx } from './retention.js';

export const ROLES = ['agent', 'viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

import { HOST_STATES, type HostState } from '../../shared/schema/host-state.js';
export { HOST_STATES, type HostState };

/** API tokens for people and tools, and enrollment tokens (role `agent`). Only the hash is stored. */
export interface TokenRow {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  /** Enrollments made with it (agent tokens; 0 for the others). */
  uses: number;
  /** Enrollments it allows; null: unlimited (set explicitly, or a legacy token). */
  maxUses: number | null;
  /** Globs a new host's group must match; null: any group, or none. Agent tokens only. */
  groups: string[] | null;
  /** An enrollment token from before use counts (migration 0006): reusable until its grace expiry. */
  legacy: boolean;
}

/** A dashboard session (migration 0006): logging out ends it here, not only in the browser. */
export interface SessionRow {
  /** sha256 of the cookie's nonce. */
  id: string;
  tokenId: string;
  createdAt: string;
  expiresAt: string;
  endedAt: string | null;
}

export interface HostRow {
  id: string;
  /** Pinned at enrollment (migration 0005): what providers act on. A report never changes it. */
  hostname: string | null;
  imageId: string;
  /** Pinned at enrollment, like `hostname`. */
  group: string | null;
  state: HostState;
  stateSince: string;
  enrolledAt: string;
  /** Any authenticated contact: report, heartbeat or event. */
  lastSeenAt: string | null;
  lastReportAt: string | null;
  /** When the last full scan (not a heartbeat or watcher event) was received: what vouches for the whole host. */
  lastScanAt: string | null;
  /** Highest report seq accepted; a report must carry a higher one. */
  lastSeq: number;
  /** Current deviations that the policy does not ignore. */
  deviationCount: number;
  taintedAt: string | null;
  agentVersion: string | null;
  manifestDigest: string | null;
  /** The latest inventory the host reported (its addresses included): what the host says, not its identity. */
  inventory: Inventory | null;
  /** The addresses the host enrolled with (pinned); the aws-asg provider finds its instance by them. */
  enrolledAddresses?: string[];
  /** A hostname / group a report claimed that differs from the pinned one (refused, audited); null while they agree. */
  reportedHostname?: string | null;
  reportedGroup?: string | null;
  /** Reset by an operator (migration 0010): the credential is refused; the next enrollment of this id is accepted once. */
  resetAt?: string | null;
  /** Forgotten by an operator: out of the fleet views and counts, the credential refused for good; history kept. */
  retiredAt?: string | null;
  /** An operator asked for a scan now: the heartbeat answer says `scanRequested` until a scan arrives. */
  scanRequestedAt?: string | null;
  /** When a heartbeat answer last carried that request: it is asked once, and again only after SCAN_REQUEST_RESEND without a scan. */
  scanRequestSentAt?: string | null;
  /** Where the host runs, pinned at enrollment (migration 0009); null for hosts enrolled without one. */
  cloudIdentity?: CloudIdentity | null;
  /** The AWS instance id of `cloudIdentity`: unique among hosts, what the aws-asg provider acts on. */
  instanceId?: string | null;
  /** A different identity a report claimed (refused, audited); null while it agrees. */
  reportedCloudIdentity?: CloudIdentity | null;
}

export interface ManifestRow {
  imageId: string;
  digest: string;
  signedBy: string | null;
  name: string | null;
  version: string | null;
  /** The manifest exactly as published (canonical JSON text). */
  body: string;
  publishedAt: string;
  publishedBy: string;
}

export type ReportKind = 'scan' | 'heartbeat' | 'event';

export interface ReportRow {
  reportId: string;
  hostId: string;
  seq: number;
  kind: ReportKind;
  scannedAt: string;
  receivedAt: string;
  digests: Record<string, string>;
  deviationCount: number;
  /** Sections whose reported digest disagrees with the manifest plus the deviations. */
  digestMismatch: string[];
  /** Deviations as received, and any other report fields worth keeping. */
  body: { deviations: Deviation[]; collectors?: unknown[] };
}

export type PolicyAction = 'ignore' | 'report' | 'taint' | 'exempt';

/** The current deviations of a host (replaced wholesale by each full scan, added to by events). */
export interface HostDeviationRow {
  hostId: string;
  collector: string;
  key: string;
  change: Deviation['change'];
  expected: Record<string, unknown> | null;
  actual: Record<string, unknown> | null;
  severity: Severity;
  action: PolicyAction;
  /** The policy rule or exemption that decided the action. */
  decidedBy: string;
  firstSeenAt: string;
  lastSeenAt: string;
  /** Who or what made the change, where the host keeps a record of it (migration 0012); null when it does not. */
  attribution?: Attribution | null;
}

export interface TransitionRow {
  id: number;
  hostId: string;
  from: HostState | null;
  to: HostState;
  cause: string;
  actor: string;
  at: string;
  reportId: string | null;
}

/** Append-only: there is no update or delete for audit rows. */
export interface AuditRow {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown>;
  /** Hash chain (migration 0003): the previous row's hash, and sha256 over it and this row (store/chain.ts). */
  prevHash: string;
  hash: string;
}

/**
 * The event stream (drift seen, host state changes, and the scheduler's breaker trips and failed
 * replacements): append-only and hash-chained like the audit log; the SIEM feed maps it to OCSF.
 */
export interface EventRow {
  id: number;
  at: string;
  /** `deviation` (a new deviation on a host), `state` (a host state change), or a scheduler kind such as `breaker-tripped`, `replacement-failed`. */
  kind: string;
  hostId: string | null;
  actor: string;
  detail: Record<string, unknown>;
  prevHash: string;
  hash: string;
}
export type NewEvent = Omit<EventRow, 'id' | 'prevHash' | 'hash'>;

/** Identical deviations across hosts (same collector, key, change and actual content): one finding. */
export type FindingRow = Finding;

export interface FindingFilter {
  collector?: string;
  severity?: Severity;
  /** Only deviations the policy decided this way. */
  action?: PolicyAction;
  /** Only this host's deviations. */
  hostId?: string;
  /** Only deviations on hosts in this state. */
  hostState?: HostState;
  /** Case-insensitive substring of the key (path), the collector or the hostname. */
  search?: string;
  /** Default: most hosts first, then oldest first. */
  sort?: FindingSort;
  desc?: boolean;
  limit: number;
  offset?: number;
}

/** One deviation with the host it is on, for reports. */
export interface HostDeviationWithHost extends HostDeviationRow {
  hostname: string | null;
  imageId: string;
  group: string | null;
  state: HostState;
}

export interface ExemptionRow {
  id: string;
  /** Null matches any host (then usually scoped by imageId). */
  hostId: string | null;
  imageId: string | null;
  collector: string | null;
  /** Glob on the deviation key. */
  keyPattern: string;
  reason: string;
  actor: string;
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
  revokedBy: string | null;
}

export const HOST_SORTS = ['id', 'deviations', 'stateSince'] as const;
export type HostSort = (typeof HOST_SORTS)[number];

export interface HostFilter {
  state?: HostState;
  imageId?: string;
  group?: string;
  /** Hosts with a current (not ignored) deviation from this collector / of this severity. */
  collector?: string;
  severity?: Severity;
  /** Prefix of the host id or hostname. */
  search?: string;
  /** Default: id ascending. */
  sort?: HostSort;
  desc?: boolean;
  /**
   * Keyset pagination: the `nextAfter` of the previous page. Sorted by id ascending this is simply
   * the last host id; for other sorts it is an opaque cursor.
   */
  after?: string;
  limit: number;
}

export interface StoreTx {
  /** The replacement queue and per-group scheduler state (controller/store/replacements.ts). */
  readonly replacements: ReplacementStoreTx;
  /** Report, finding and chain retention, and the chains' checkpoints (controller/store/retention.ts). */
  readonly retention: RetentionStoreTx;

  // tokens
  insertToken(row: TokenRow & { hash: string }): Promise<void>;
  findTokenByHash(hash: string): Promise<TokenRow | null>;
  listTokens(): Promise<TokenRow[]>;
  revokeToken(id: string, at: string): Promise<boolean>;
  touchToken(id: string, at: string): Promise<void>;
  /**
   * Counts one enrollment against the token, atomically: only if it is still unrevoked, unexpired at
   * `at` and under its use limit. False when it is not (a concurrent enrollment took the last use, or
   * it was revoked or expired meanwhile). On PostgreSQL the row lock makes concurrent callers queue
   * and re-check, so a 1-use token is used exactly once.
   */
  useToken(id: string, at: string): Promise<boolean>;

  // dashboard sessions
  insertSession(row: SessionRow): Promise<void>;
  getSession(id: string): Promise<SessionRow | null>;
  /** Ends a session that has not ended yet; false when there is none. */
  endSession(id: string, at: string): Promise<boolean>;
  /** Deletes sessions that expired before `before`; returns how many. */
  pruneSessions(before: string): Promise<number>;

  // hosts
  insertHost(row: Omit<HostRow, 'lastScanAt'> & { lastScanAt?: string | null; credentialHash: string }): Promise<void>;
  getHost(id: string): Promise<HostRow | null>;
  /**
   * `getHost` that also holds the host until the transaction ends, for read-modify-write (lastSeq,
   * state): PostgreSQL takes a row lock (`for update`), so a second controller locking or updating
   * the same host waits; SQLite transactions are serialized as a whole (`begin immediate`).
   * Only meaningful inside `transaction()`.
   */
  lockHost(id: string): Promise<HostRow | null>;
  /** The host a per-host credential belongs to. */
  findHostByCredentialHash(hash: string): Promise<HostRow | null>;
  /** The host enrolled as this AWS instance, if any. */
  findHostByInstanceId(instanceId: string): Promise<HostRow | null>;
  setHostCredential(id: string, credentialHash: string): Promise<void>;
  /** Sets the given fields (undefined ones are left alone); throws if there is no such host. */
  updateHost(id: string, patch: Partial<Omit<HostRow, 'id' | 'enrolledAt'>>): Promise<void>;
  listHosts(filter: HostFilter): Promise<{ hosts: HostRow[]; nextAfter: string | null }>;
  countHostsByState(): Promise<Record<HostState, number>>;
  /**
   * Hosts in one of `states` not seen since `before` (for silent detection), longest silent first.
   * A host never seen counts from its enrollment.
   */
  listHostsSeenBefore(before: string, states: readonly HostState[], limit: number): Promise<HostRow[]>;
  /** Hosts in `states` whose last full scan (or, never scanned, enrollment) is older than `before`, oldest first. */
  listHostsScannedBefore(before: string, states: readonly HostState[], limit: number): Promise<HostRow[]>;

  // manifests
  putManifest(row: ManifestRow): Promise<void>;
  getManifest(imageId: string): Promise<ManifestRow | null>;
  listManifests(): Promise<Omit<ManifestRow, 'body'>[]>;

  // reports
  getReport(reportId: string): Promise<ReportRow | null>;
  insertReport(row: ReportRow): Promise<void>;
  listReports(hostId: string, opts: { limit: number; beforeSeq?: number }): Promise<ReportRow[]>;
  /** Delete reports received before `before`; returns how many. Host history and audit are kept. */
  pruneReports(before: string): Promise<number>;

  // current deviations
  /**
   * Makes `rows` the host's current deviations. A deviation that was already current (same collector
   * and key) keeps its earlier `firstSeenAt`.
   */
  replaceHostDeviations(hostId: string, rows: HostDeviationRow[]): Promise<void>;
  /** Adds or refreshes deviations (events); an existing one keeps its `firstSeenAt`. */
  upsertHostDeviations(rows: HostDeviationRow[]): Promise<void>;
  listHostDeviations(hostId: string): Promise<HostDeviationRow[]>;

  // state transitions
  insertTransition(row: Omit<TransitionRow, 'id'>): Promise<TransitionRow>;
  listTransitions(hostId: string): Promise<TransitionRow[]>;

  // audit (append-only)
  /** Chained to the last row (on PostgreSQL under an advisory lock, so concurrent appends queue). */
  appendAudit(row: Omit<AuditRow, 'id' | 'prevHash' | 'hash'>): Promise<AuditRow>;
  /** Ascending from `afterId`, or with `beforeId` the newest rows before it, newest first. */
  listAudit(opts: { afterId?: number; beforeId?: number; limit: number }): Promise<AuditRow[]>;

  // event stream (append-only, chained)
  appendEvent(row: NewEvent): Promise<EventRow>;
  /** Several events chained in order, with one read of the chain's head. */
  appendEvents(rows: NewEvent[]): Promise<EventRow[]>;
  /** Ascending from `afterId` (exclusive); with `newestFirst`, descending before `beforeId`. */
  listEvents(opts: {
    afterId?: number;
    beforeId?: number;
    hostId?: string;
    newestFirst?: boolean;
    limit: number;
  }): Promise<EventRow[]>;
  /** Per-day counts of events of each kind since `since` (UTC days, `YYYY-MM-DD`). */
  countEventsByDay(since: string): Promise<{ day: string; kind: string; n: number }[]>;
  /** Per-day counts of host state transitions by target state since `since`. */
  countTransitionsByDay(since: string): Promise<{ day: string; to: HostState; n: number }[]>;
  /** Where a forwarder (SIEM sink, notifier) got to in the event stream. */
  getEventCursor(name: string): Promise<number | null>;
  setEventCursor(name: string, lastId: number, at: string): Promise<void>;

  // dashboard and reports
  countHosts(filter: Omit<HostFilter, 'after' | 'limit' | 'sort' | 'desc'>): Promise<number>;
  countHostsBy(
    column: 'image' | 'group',
    limit: number,
  ): Promise<{ value: string | null; hosts: number; tainted: number; drifted: number }[]>;
  listFindings(filter: FindingFilter): Promise<FindingRow[]>;
  listFindingHosts(
    f: { collector: string; key: string; change: string; actualDigest: string },
    opts: { after?: string; limit: number },
  ): Promise<{ hostId: string; hostname: string | null; state: HostState; firstSeenAt: string }[]>;
  /** Current deviations (not ignored) with their host, keyset-paginated by (host, collector, key). */
  listDeviations(opts: {
    hostId?: string;
    imageId?: string;
    after?: [hostId: string, collector: string, key: string];
    limit: number;
  }): Promise<HostDeviationWithHost[]>;
  getToken(id: string): Promise<TokenRow | null>;

  // exemptions
  insertExemption(row: ExemptionRow): Promise<void>;
  /** With `activeAt`: created at or before it, expiring after it, and not revoked by then. */
  listExemptions(opts: { activeAt?: string }): Promise<ExemptionRow[]>;
  revokeExemption(id: string, at: string, by: string): Promise<boolean>;
}

/**
 * Thrown by the insert methods when a unique key is taken (token or credential hash, host, report or
 * exemption id), so callers can answer a replayed report or a duplicate id without parsing driver
 * errors. On PostgreSQL the surrounding transaction is aborted by then: let it roll back.
 */
export class StoreConflictError extends Error {
  /** The table whose unique key was violated. */
  readonly table: string;
  constructor(table: string, options?: { cause?: unknown }) {
    super(`${table}: a row with this unique key already exists`, options);
    this.name = 'StoreConflictError';
    this.table = table;
  }
}

export interface Store extends StoreTx {
  readonly kind: 'sqlite' | 'postgres';
  migrate(): Promise<void>;
  /**
   * Everything `fn` does through `tx` commits together or not at all; a thrown error rolls back and
   * is rethrown. Overlapping transactions never interleave on SQLite (one connection, taken with
   * `begin immediate`). IMPORTANT: inside `fn` use only `tx`: calling the store itself waits for
   * the connection `fn` holds (a deadlock on SQLite) or runs outside the transaction (PostgreSQL).
   * On PostgreSQL `fn` may run more than once: a run aborted by a deadlock or serialization conflict
   * is rolled back and run again (store/retry.ts), so `fn` must not change anything outside `tx`
   * that a second run would change twice (or must reset it first).
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /** Queries waiting for a free connection now (PostgreSQL's pool; 0 on SQLite): load shedding reads it. */
  waitingForConnection(): number;
  close(): Promise<void>;
}
