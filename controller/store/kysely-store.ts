/** @module The one Store implementation: Kysely queries shared by SQLite and PostgreSQL, dialect differences kept to a few marked places. */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { sql, type Generated, type Insertable, type Kysely, type Selectable, type Updateable } from 'kysely';
import { DwError } from '../../shared/errors.js';
import type { CloudIdentity } from '../../shared/schema/identity.js';
import type { Attribution } from '../../shared/schema/deviation.js';
import type { FindingSort } from '../../shared/schema/findings.js';
import { severityRankSql } from '../../shared/severity.js';
import { auditContent, chainHash, eventContent, GENESIS } from './chain.js';
import { actualDigest } from './migration-0003.js';
import { migrateToLatest, type Dialect } from './migrations.js';
import { KyselyReplacementStore, type ReplacementStoreTx } from './replacements.js';
import { retryTransient, type RetryOptions } from './retry.js';
import { KyselyRetentionStore, type RetentionStoreTx } from './retention.js';
import {
  HOST_STATES,
  type EventRow,
  type FindingFilter,
  type FindingRow,
  type HostDeviationWithHost,
  type NewEvent,
  StoreConflictError,
  type AuditRow,
  type ExemptionRow,
  type HostDeviationRow,
  type HostFilter,
  type HostRow,
  type HostState,
  type ManifestRow,
  type ReportRow,
  type SessionRow,
  type Store,
  type StoreTx,
  type TokenRow,
  type TransitionRow,
} from './types.js';

// ---- the database as the migrations made it (snake_case, JSON as text) ----

interface TokensTable {
  id: string;
  hash: string;
  name: string;
  role: string;
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  uses: Generated<number | string>;
  max_uses: number | string | null;
  groups: string | null; // JSON
  legacy: Generated<number | string>;
}

interface SessionsTable {
  id: string;
  token_id: string;
  created_at: string;
  expires_at: string;
  ended_at: string | null;
}

/** Integer columns: numbers from better-sqlite3, strings (int8) or numbers from pg; writes take numbers. */
type Int = Generated<number | string>;

interface HostsTable {
  id: string;
  credential_hash: string;
  hostname: string | null;
  image_id: string;
  host_group: string | null;
  state: string;
  state_since: string;
  enrolled_at: string;
  last_seen_at: string | null;
  last_report_at: string | null;
  last_scan_at: string | null;
  last_seq: Int;
  deviation_count: Int;
  tainted_at: string | null;
  agent_version: string | null;
  manifest_digest: string | null;
  inventory: string | null;
  enrolled_addresses: string | null;
  reported_hostname: string | null;
  reported_group: string | null;
  reset_at: string | null;
  retired_at: string | null;
  scan_requested_at: string | null;
  scan_request_sent_at: string | null;
  cloud_identity: string | null;
  instance_id: string | null;
  reported_cloud_identity: string | null;
}

interface ManifestsTable {
  image_id: string;
  digest: string;
  signed_by: string | null;
  name: string | null;
  version: string | null;
  body: string;
  published_at: string;
  published_by: string;
}

interface ReportsTable {
  report_id: string;
  host_id: string;
  seq: number | string;
  kind: string;
  scanned_at: string;
  received_at: string;
  digests: string;
  deviation_count: number | string;
  digest_mismatch: string;
  body: string;
}

interface HostDeviationsTable {
  host_id: string;
  collector: string;
  item_key: string;
  change: string;
  expected: string | null;
  actual: string | null;
  severity: string;
  action: string;
  decided_by: string;
  first_seen_at: string;
  last_seen_at: string;
  actual_digest: Generated<string>;
  attribution: string | null; // JSON (migration 0012)
}

interface TransitionsTable {
  id: Int;
  host_id: string;
  from_state: string | null;
  to_state: string;
  cause: string;
  actor: string;
  at: string;
  report_id: string | null;
}

interface AuditTable {
  id: Int;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  detail: string;
  prev_hash: string | null;
  hash: string | null;
}

interface EventsTable {
  id: Int;
  at: string;
  kind: string;
  host_id: string | null;
  actor: string;
  detail: string;
  prev_hash: string;
  hash: string;
}

interface EventCursorsTable {
  name: string;
  last_id: number | string;
  updated_at: string;
}

interface ExemptionsTable {
  id: string;
  host_id: string | null;
  image_id: string | null;
  collector: string | null;
  key_pattern: string;
  reason: string;
  actor: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
  revoked_by: string | null;
}

export interface DB {
  tokens: TokensTable;
  sessions: SessionsTable;
  hosts: HostsTable;
  manifests: ManifestsTable;
  reports: ReportsTable;
  host_deviations: HostDeviationsTable;
  transitions: TransitionsTable;
  audit: AuditTable;
  exemptions: ExemptionsTable;
  events: EventsTable;
  event_cursors: EventCursorsTable;
}

// ---- conversions at the boundary ----

/**
 * Every stored time goes through here: lexical order equals time order only if all times share one
 * format, so '2026-01-01T00:00:00Z' and '+00:00' offsets are rewritten to toISOString()'s form.
 */
function iso(value: string, field: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new TypeError(`store: ${field} is not a valid time: ${JSON.stringify(value)}`);
  return new Date(ms).toISOString();
}

function isoOrNull(value: string | null, field: string): string | null {
  return value === null ? null : iso(value, field);
}

function json(value: unknown): string {
  return JSON.stringify(value);
}

function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

function parseJsonOrNull<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

function tokenFromRow(r: Selectable<TokensTable>): TokenRow {
  return {
    id: r.id,
    name: r.name,
    role: r.role as TokenRow['role'],
    createdAt: r.created_at,
    createdBy: r.created_by,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
    uses: Number(r.uses),
    maxUses: r.max_uses === null ? null : Number(r.max_uses),
    groups: parseJsonOrNull<string[]>(r.groups),
    legacy: Number(r.legacy) === 1,
  };
}

function hostFromRow(r: Selectable<HostsTable>): HostRow {
  return {
    id: r.id,
    hostname: r.hostname,
    imageId: r.image_id,
    group: r.host_group,
    state: r.state as HostState,
    stateSince: r.state_since,
    enrolledAt: r.enrolled_at,
    lastSeenAt: r.last_seen_at,
    lastReportAt: r.last_report_at,
    lastScanAt: r.last_scan_at,
    lastSeq: Number(r.last_seq),
    deviationCount: Number(r.deviation_count),
    taintedAt: r.tainted_at,
    agentVersion: r.agent_version,
    manifestDigest: r.manifest_digest,
    inventory: parseJsonOrNull(r.inventory),
    enrolledAddresses: parseJsonOrNull<string[]>(r.enrolled_addresses) ?? [],
    reportedHostname: r.reported_hostname,
    reportedGroup: r.reported_group,
    resetAt: r.reset_at,
    retiredAt: r.retired_at,
    scanRequestedAt: r.scan_requested_at,
    scanRequestSentAt: r.scan_request_sent_at,
    cloudIdentity: parseJsonOrNull<CloudIdentity>(r.cloud_identity),
    instanceId: r.instance_id,
    reportedCloudIdentity: parseJsonOrNull<CloudIdentity>(r.reported_cloud_identity),
  };
}

/** How each patchable HostRow field is written; a field missing here cannot be patched. */
const HOST_PATCH: { [K in keyof HostRow]?: [column: keyof HostsTable, write: (v: never) => unknown] } = {
  hostname: ['hostname', (v: string | null) => v],
  imageId: ['image_id', (v: string) => v],
  group: ['host_group', (v: string | null) => v],
  state: ['state', (v: HostState) => v],
  stateSince: ['state_since', (v: string) => iso(v, 'stateSince')],
  lastSeenAt: ['last_seen_at', (v: string | null) => isoOrNull(v, 'lastSeenAt')],
  lastReportAt: ['last_report_at', (v: string | null) => isoOrNull(v, 'lastReportAt')],
  lastScanAt: ['last_scan_at', (v: string | null) => isoOrNull(v, 'lastScanAt')],
  lastSeq: ['last_seq', (v: number) => v],
  deviationCount: ['deviation_count', (v: number) => v],
  taintedAt: ['tainted_at', (v: string | null) => isoOrNull(v, 'taintedAt')],
  agentVersion: ['agent_version', (v: string | null) => v],
  manifestDigest: ['manifest_digest', (v: string | null) => v],
  inventory: ['inventory', (v: HostRow['inventory']) => (v === null ? null : json(v))],
  // The pinned hostname, group and addresses are patchable only by an operator's reset (not from
  // ingestion); the claims are what ingestion records when a report disagrees with them.
  reportedHostname: ['reported_hostname', (v: string | null) => v],
  reportedGroup: ['reported_group', (v: string | null) => v],
  // Re-pinned only by a re-enrollment an operator's reset allowed (routes/enroll.ts).
  enrolledAddresses: ['enrolled_addresses', (v: string[]) => json(v)],
  resetAt: ['reset_at', (v: string | null) => isoOrNull(v, 'resetAt')],
  retiredAt: ['retired_at', (v: string | null) => isoOrNull(v, 'retiredAt')],
  scanRequestedAt: ['scan_requested_at', (v: string | null) => isoOrNull(v, 'scanRequestedAt')],
  scanRequestSentAt: ['scan_request_sent_at', (v: string | null) => isoOrNull(v, 'scanRequestSentAt')],
  reportedCloudIdentity: ['reported_cloud_identity', (v: CloudIdentity | null) => (v === null ? null : json(v))],
  // Re-pinned only by a re-enrollment an operator's reset allowed, like the addresses.
  cloudIdentity: ['cloud_identity', (v: CloudIdentity | null) => (v === null ? null : json(v))],
  instanceId: ['instance_id', (v: string | null) => v],
};

function manifestFromRow(
  r: Omit<Selectable<ManifestsTable>, 'body'> & { body?: string },
): ManifestRow | Omit<ManifestRow, 'body'> {
  const row: Omit<ManifestRow, 'body'> = {
    imageId: r.image_id,
    digest: r.digest,
    signedBy: r.signed_by,
    name: r.name,
    version: r.version,
    publishedAt: r.published_at,
    publishedBy: r.published_by,
  };
  return r.body === undefined ? row : { ...row, body: r.body };
}

function reportFromRow(r: Selectable<ReportsTable>): ReportRow {
  return {
    reportId: r.report_id,
    hostId: r.host_id,
    seq: Number(r.seq),
    kind: r.kind as ReportRow['kind'],
    scannedAt: r.scanned_at,
    receivedAt: r.received_at,
    digests: parseJson(r.digests),
    deviationCount: Number(r.deviation_count),
    digestMismatch: parseJson(r.digest_mismatch),
    body: parseJson(r.body),
  };
}

function deviationToRow(d: HostDeviationRow): Insertable<HostDeviationsTable> {
  return {
    host_id: d.hostId,
    collector: d.collector,
    item_key: d.key,
    change: d.change,
    expected: d.expected === null ? null : json(d.expected),
    actual: d.actual === null ? null : json(d.actual),
    severity: d.severity,
    action: d.action,
    decided_by: d.decidedBy,
    first_seen_at: iso(d.firstSeenAt, 'firstSeenAt'),
    last_seen_at: iso(d.lastSeenAt, 'lastSeenAt'),
    actual_digest: actualDigest(d.actual),
    attribution: d.attribution ? json(d.attribution) : null,
  };
}

function deviationFromRow(r: Selectable<HostDeviationsTable>): HostDeviationRow {
  return {
    hostId: r.host_id,
    collector: r.collector,
    key: r.item_key,
    change: r.change as HostDeviationRow['change'],
    expected: parseJsonOrNull(r.expected),
    actual: parseJsonOrNull(r.actual),
    severity: r.severity as HostDeviationRow['severity'],
    action: r.action as HostDeviationRow['action'],
    decidedBy: r.decided_by,
    firstSeenAt: r.first_seen_at,
    lastSeenAt: r.last_seen_at,
    // Only where the host kept a record, so rows without one read as before migration 0012.
    ...(r.attribution !== null ? { attribution: parseJson<HostDeviationRow['attribution']>(r.attribution) } : {}),
  };
}

function transitionFromRow(r: Selectable<TransitionsTable>): TransitionRow {
  return {
    id: Number(r.id),
    hostId: r.host_id,
    from: r.from_state as HostState | null,
    to: r.to_state as HostState,
    cause: r.cause,
    actor: r.actor,
    at: r.at,
    reportId: r.report_id,
  };
}

function auditFromRow(r: Selectable<AuditTable>): AuditRow {
  return {
    id: Number(r.id),
    at: r.at,
    actor: r.actor,
    action: r.action,
    target: r.target,
    detail: parseJson(r.detail),
    prevHash: r.prev_hash ?? '',
    hash: r.hash ?? '',
  };
}

function eventFromRow(r: Selectable<EventsTable>): EventRow {
  return {
    id: Number(r.id),
    at: r.at,
    kind: r.kind,
    hostId: r.host_id,
    actor: r.actor,
    detail: parseJson(r.detail),
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

const SEVERITY_RANK = sql<number>`max(${sql.raw(severityRankSql('severity', 1))})`;
const ACTION_RANK = sql<number>`max(case action when 'taint' then 3 when 'report' then 2 else 1 end)`;

/** What each findings sort orders by (the group's aggregates), and its natural direction. */
const FINDING_SORT_EXPR: Record<FindingSort, ReturnType<typeof sql>> = {
  hosts: sql`count(*)`,
  severity: SEVERITY_RANK,
  firstSeen: sql`min(first_seen_at)`,
  lastSeen: sql`max(last_seen_at)`,
  key: sql.ref('d.item_key'),
  collector: sql.ref('d.collector'),
};
const SEVERITY_BY_RANK = ['low', 'low', 'medium', 'high', 'critical'] as const;
const ACTION_BY_RANK = ['exempt', 'exempt', 'report', 'taint'] as const;

/** Sort columns of listHosts (all NOT NULL, each indexed together with id). */
const HOST_SORT_COLUMN = { id: 'id', deviations: 'deviation_count', stateSince: 'state_since' } as const;

function encodeCursor(value: unknown, id: string): string {
  return Buffer.from(JSON.stringify([value, id])).toString('base64url');
}

function decodeCursor(cursor: string): [string | number, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (
      Array.isArray(v) &&
      v.length === 2 &&
      (typeof v[0] === 'string' || typeof v[0] === 'number') &&
      typeof v[1] === 'string'
    )
      return [v[0], v[1]];
  } catch {
    // fall through
  }
  throw new DwError('DW_ERR_VALIDATION', "after: not a cursor from this listing (pass the previous page's next)", {
    after: cursor,
  });
}

function exemptionFromRow(r: Selectable<ExemptionsTable>): ExemptionRow {
  return {
    id: r.id,
    hostId: r.host_id,
    imageId: r.image_id,
    collector: r.collector,
    keyPattern: r.key_pattern,
    reason: r.reason,
    actor: r.actor,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    revokedBy: r.revoked_by,
  };
}

/** A unique or primary key violation, as better-sqlite3 and pg report it. */
function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

async function insertOrConflict(table: string, run: Promise<unknown>): Promise<void> {
  try {
    await run;
  } catch (err) {
    if (isUniqueViolation(err)) throw new StoreConflictError(table, { cause: err });
    throw err;
  }
}

/**
 * Rows per multi-row insert: 11 columns × 500 stays far below SQLite's 32,766 and PostgreSQL's 65,535
 * bound parameters per statement.
 */
const INSERT_CHUNK = 500;
/** Reports deleted per statement, so a large prune does not hold SQLite's write lock for long. */
const PRUNE_BATCH = 5_000;

/**
 * Between the statements of a large write on SQLite: better-sqlite3 is synchronous, so without this a
 * 100,000-row report would hold the event loop (and /healthz) for its whole write.
 */
async function breathe(dialect: Dialect, i: number): Promise<void> {
  if (dialect === 'sqlite' && i > 0) await yieldToLoop();
}

/** Last one wins, except that the earliest firstSeenAt is kept (one statement cannot touch a key twice). */
function dedupeDeviations(rows: HostDeviationRow[]): HostDeviationRow[] {
  const byKey = new Map<string, HostDeviationRow>();
  for (const r of rows) {
    const k = `${r.hostId}\u0000${r.collector}\u0000${r.key}`;
    const prev = byKey.get(k);
    byKey.set(k, prev && prev.firstSeenAt < r.firstSeenAt ? { ...r, firstSeenAt: prev.firstSeenAt } : r);
  }
  return [...byKey.values()];
}

// ---- the store ----

/** Every StoreTx method over one Kysely handle: the root (auto-commit) or a transaction. */
export class KyselyStoreTx implements StoreTx {
  readonly replacements: ReplacementStoreTx;
  readonly retention: RetentionStoreTx;

  constructor(
    protected readonly db: Kysely<DB>,
    protected readonly dialect: Dialect,
    /** The handle is one transaction's (KyselyStore.transaction), not the auto-commit root. */
    protected readonly isTransaction = false,
  ) {
    this.replacements = new KyselyReplacementStore(db, dialect);
    this.retention = new KyselyRetentionStore(db, dialect);
  }

  // tokens

  async insertToken(row: TokenRow & { hash: string }): Promise<void> {
    await insertOrConflict(
      'tokens',
      this.db
        .insertInto('tokens')
        .values({
          id: row.id,
          hash: row.hash,
          name: row.name,
          role: row.role,
          created_at: iso(row.createdAt, 'createdAt'),
          created_by: row.createdBy,
          expires_at: isoOrNull(row.expiresAt, 'expiresAt'),
          revoked_at: isoOrNull(row.revokedAt, 'revokedAt'),
          last_used_at: isoOrNull(row.lastUsedAt, 'lastUsedAt'),
          uses: row.uses,
          max_uses: row.maxUses,
          groups: row.groups === null ? null : json(row.groups),
          legacy: row.legacy ? 1 : 0,
        })
        .execute(),
    );
  }

  async findTokenByHash(hash: string): Promise<TokenRow | null> {
    const r = await this.db.selectFrom('tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
    return r ? tokenFromRow(r) : null;
  }

  async listTokens(): Promise<TokenRow[]> {
    const rows = await this.db.selectFrom('tokens').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(tokenFromRow);
  }

  async revokeToken(id: string, at: string): Promise<boolean> {
    const r = await this.db
      .updateTable('tokens')
      .set({ revoked_at: iso(at, 'at') })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async touchToken(id: string, at: string): Promise<void> {
    await this.db
      .updateTable('tokens')
      .set({ last_used_at: iso(at, 'at') })
      .where('id', '=', id)
      .execute();
  }

  async useToken(id: string, at: string): Promise<boolean> {
    const now = iso(at, 'at');
    // One conditional UPDATE is the check and the count: PostgreSQL re-evaluates the WHERE on a row a
    // concurrent transaction changed (after waiting for its commit), so two callers cannot both take a last use.
    const r = await this.db
      .updateTable('tokens')
      .set((eb) => ({ uses: eb('uses', '+', 1), last_used_at: now }))
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  // dashboard sessions

  async insertSession(row: SessionRow): Promise<void> {
    await insertOrConflict(
      'sessions',
      this.db
        .insertInto('sessions')
        .values({
          id: row.id,
          token_id: row.tokenId,
          created_at: iso(row.createdAt, 'createdAt'),
          expires_at: iso(row.expiresAt, 'expiresAt'),
          ended_at: isoOrNull(row.endedAt, 'endedAt'),
        })
        .execute(),
    );
  }

  async getSession(id: string): Promise<SessionRow | null> {
    const r = await this.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
    return r
      ? { id: r.id, tokenId: r.token_id, createdAt: r.created_at, expiresAt: r.expires_at, endedAt: r.ended_at }
      : null;
  }

  async endSession(id: string, at: string): Promise<boolean> {
    const r = await this.db
      .updateTable('sessions')
      .set({ ended_at: iso(at, 'at') })
      .where('id', '=', id)
      .where('ended_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async pruneSessions(before: string): Promise<number> {
    const r = await this.db.deleteFrom('sessions').where('expires_at', '<', iso(before, 'before')).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  // hosts

  async insertHost(
    row: Omit<HostRow, 'lastScanAt'> & { lastScanAt?: string | null; credentialHash: string },
  ): Promise<void> {
    await insertOrConflict(
      'hosts',
      this.db
        .insertInto('hosts')
        .values({
          id: row.id,
          credential_hash: row.credentialHash,
          hostname: row.hostname,
          image_id: row.imageId,
          host_group: row.group,
          state: row.state,
          state_since: iso(row.stateSince, 'stateSince'),
          enrolled_at: iso(row.enrolledAt, 'enrolledAt'),
          last_seen_at: isoOrNull(row.lastSeenAt, 'lastSeenAt'),
          last_report_at: isoOrNull(row.lastReportAt, 'lastReportAt'),
          last_scan_at: isoOrNull(row.lastScanAt ?? null, 'lastScanAt'),
          last_seq: row.lastSeq,
          deviation_count: row.deviationCount,
          tainted_at: isoOrNull(row.taintedAt, 'taintedAt'),
          agent_version: row.agentVersion,
          manifest_digest: row.manifestDigest,
          inventory: row.inventory === null ? null : json(row.inventory),
          enrolled_addresses: json(row.enrolledAddresses ?? row.inventory?.addresses ?? []),
          reported_hostname: row.reportedHostname ?? null,
          reported_group: row.reportedGroup ?? null,
          cloud_identity: row.cloudIdentity ? json(row.cloudIdentity) : null,
          // Derived here, not taken separately: the unique column can only ever say what the identity says.
          instance_id: row.cloudIdentity?.kind === 'aws' ? row.cloudIdentity.instanceId : null,
          reported_cloud_identity: row.reportedCloudIdentity ? json(row.reportedCloudIdentity) : null,
        })
        .execute(),
    );
  }

  async getHost(id: string): Promise<HostRow | null> {
    const r = await this.db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? hostFromRow(r) : null;
  }

  async findHostByInstanceId(instanceId: string): Promise<HostRow | null> {
    const r = await this.db.selectFrom('hosts').selectAll().where('instance_id', '=', instanceId).executeTakeFirst();
    return r ? hostFromRow(r) : null;
  }

  async lockHost(id: string): Promise<HostRow | null> {
    let q = this.db.selectFrom('hosts').selectAll().where('id', '=', id);
    // DIALECT: SQLite has no row locks (and no `for update` syntax); its transactions already hold
    // the database's write lock from `begin immediate` on, which is stronger.
    if (this.dialect === 'postgres') q = q.forUpdate();
    const r = await q.executeTakeFirst();
    return r ? hostFromRow(r) : null;
  }

  async findHostByCredentialHash(hash: string): Promise<HostRow | null> {
    const r = await this.db.selectFrom('hosts').selectAll().where('credential_hash', '=', hash).executeTakeFirst();
    return r ? hostFromRow(r) : null;
  }

  async setHostCredential(id: string, credentialHash: string): Promise<void> {
    let r;
    try {
      r = await this.db
        .updateTable('hosts')
        .set({ credential_hash: credentialHash })
        .where('id', '=', id)
        .executeTakeFirst();
    } catch (err) {
      if (isUniqueViolation(err)) throw new StoreConflictError('hosts', { cause: err });
      throw err;
    }
    if (r.numUpdatedRows === 0n) throw new Error(`store: setHostCredential: no host ${JSON.stringify(id)}`);
  }

  async updateHost(id: string, patch: Partial<Omit<HostRow, 'id' | 'enrolledAt'>>): Promise<void> {
    const set: Updateable<HostsTable> = {};
    let fields = 0;
    for (const [field, value] of Object.entries(patch)) {
      if (value === undefined) continue;
      const how = HOST_PATCH[field as keyof HostRow];
      // A typo or a non-patchable field (id, enrolledAt, credentialHash) is a bug: say so rather than drop it.
      if (!how) throw new TypeError(`store: updateHost: ${field} cannot be patched`);
      (set as Record<string, unknown>)[how[0]] = how[1](value as never);
      fields++;
    }
    if (fields === 0) return;
    const r = await this.db.updateTable('hosts').set(set).where('id', '=', id).executeTakeFirst();
    if (r.numUpdatedRows === 0n) throw new Error(`store: updateHost: no host ${JSON.stringify(id)}`);
  }

  async listHosts(filter: HostFilter): Promise<{ hosts: HostRow[]; nextAfter: string | null }> {
    const limit = Math.max(0, Math.floor(filter.limit));
    if (limit === 0) return { hosts: [], nextAfter: null };
    const sort = filter.sort ?? 'id';
    const col = HOST_SORT_COLUMN[sort];
    const dir = filter.desc ? 'desc' : 'asc';
    let q = this.filteredHosts(filter).selectAll();
    if (filter.after !== undefined) {
      const cmp = filter.desc ? sql.raw('<') : sql.raw('>');
      if (sort === 'id') q = q.where('id', filter.desc ? '<' : '>', filter.after);
      else {
        const [v, id] = decodeCursor(filter.after);
        // A cursor of the wrong type would reach PostgreSQL as a cast error; it is the client's mistake.
        if (sort === 'deviations' ? !Number.isSafeInteger(v) : typeof v !== 'string' || Number.isNaN(Date.parse(v))) {
          throw new DwError(
            'DW_ERR_VALIDATION',
            `after: not a cursor of a listing sorted by ${sort} (pass the previous page's next)`,
            { after: filter.after },
          );
        }
        // A row-value comparison is one index range scan of (col, id) on both dialects.
        q = q.where(sql<boolean>`(${sql.ref(col)}, id) ${cmp} (${v}, ${id})`);
      }
    }
    if (sort !== 'id') q = q.orderBy(col, dir);
    // One row more than asked says whether another page exists, without a count query.
    const rows = await q
      .orderBy('id', dir)
      .limit(limit + 1)
      .execute();
    const more = rows.length > limit;
    const hosts = (more ? rows.slice(0, limit) : rows).map(hostFromRow);
    const last = hosts[hosts.length - 1];
    if (!more || !last) return { hosts, nextAfter: null };
    return {
      hosts,
      nextAfter:
        sort === 'id' ? last.id : encodeCursor(sort === 'deviations' ? last.deviationCount : last.stateSince, last.id),
    };
  }

  private filteredHosts(filter: Omit<HostFilter, 'after' | 'limit' | 'sort' | 'desc'>) {
    // A forgotten host has left the fleet: its detail and history stay reachable by id (getHost).
    let q = this.db.selectFrom('hosts').where('retired_at', 'is', null);
    if (filter.state !== undefined) q = q.where('state', '=', filter.state);
    if (filter.imageId !== undefined) q = q.where('image_id', '=', filter.imageId);
    if (filter.group !== undefined) q = q.where('host_group', '=', filter.group);
    if (filter.collector !== undefined) {
      const c = filter.collector;
      q = q.where('id', 'in', (eb) =>
        eb.selectFrom('host_deviations').select('host_id').where('collector', '=', c).where('action', '!=', 'ignore'),
      );
    }
    if (filter.severity !== undefined) {
      const sev = filter.severity;
      q = q.where('id', 'in', (eb) =>
        eb.selectFrom('host_deviations').select('host_id').where('severity', '=', sev).where('action', '!=', 'ignore'),
      );
    }
    if (filter.search !== undefined && filter.search !== '') {
      // A prefix as a range (prefix <= x < prefix + U+FFFF): an index range scan on both dialects, where
      // LIKE would read every host. Case-sensitive, like the ids and hostnames themselves.
      const lo = filter.search;
      const hi = `${filter.search}\uffff`;
      q = q.where((eb) =>
        eb.or([
          eb.and([eb('id', '>=', lo), eb('id', '<', hi)]),
          eb.and([eb('hostname', '>=', lo), eb('hostname', '<', hi)]),
        ]),
      );
    }
    return q;
  }

  async countHosts(filter: Omit<HostFilter, 'after' | 'limit' | 'sort' | 'desc'>): Promise<number> {
    const r = await this.filteredHosts(filter)
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async countHostsBy(
    column: 'image' | 'group',
    limit: number,
  ): Promise<{ value: string | null; hosts: number; tainted: number; drifted: number }[]> {
    const col = column === 'image' ? 'image_id' : 'host_group';
    const rows = await this.db
      .selectFrom('hosts')
      .where('retired_at', 'is', null)
      .select([
        sql.ref<string | null>(col).as('value'),
        sql<number>`count(*)`.as('hosts'),
        sql<number>`sum(case when state in ('tainted', 'replacement-scheduled', 'replacing') then 1 else 0 end)`.as(
          'tainted',
        ),
        sql<number>`sum(case when state = 'drifted' then 1 else 0 end)`.as('drifted'),
      ])
      .groupBy(col)
      .orderBy(sql`count(*)`, 'desc')
      .orderBy(col)
      .limit(Math.floor(limit))
      .execute();
    return rows.map((r) => ({
      value: r.value,
      hosts: Number(r.hosts),
      tainted: Number(r.tainted),
      drifted: Number(r.drifted),
    }));
  }

  async listFindings(filter: FindingFilter): Promise<FindingRow[]> {
    let q = this.db.selectFrom('host_deviations as d').where('d.action', '!=', 'ignore');
    if (filter.collector !== undefined) q = q.where('d.collector', '=', filter.collector);
    if (filter.severity !== undefined) q = q.where('d.severity', '=', filter.severity);
    if (filter.action !== undefined) q = q.where('d.action', '=', filter.action);
    if (filter.hostId !== undefined) q = q.where('d.host_id', '=', filter.hostId);
    if (filter.hostState !== undefined || filter.search !== undefined) {
      const hosts = this.db.selectFrom('hosts as h').select('h.id').where('h.retired_at', 'is', null);
      if (filter.hostState !== undefined) q = q.where('d.host_id', 'in', hosts.where('h.state', '=', filter.hostState));
      if (filter.search !== undefined) {
        // Case-insensitive substring on both dialects (SQLite's LIKE folds ASCII case, PostgreSQL's does not).
        const pattern = `%${filter.search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        const like = (col: string) => sql<boolean>`lower(${sql.ref(col)}) like ${pattern} escape '\\'`;
        q = q.where((eb) =>
          eb.or([
            like('d.item_key'),
            like('d.collector'),
            eb('d.host_id', 'in', hosts.where(sql<boolean>`lower(h.hostname) like ${pattern} escape '\\'`)),
          ]),
        );
      }
    }
    let grouped = q
      .select([
        'd.collector',
        'd.item_key',
        'd.change',
        'd.actual_digest',
        SEVERITY_RANK.as('sev'),
        ACTION_RANK.as('act'),
        sql<number>`count(*)`.as('hosts'),
        sql<string>`min(first_seen_at)`.as('first_seen'),
        sql<string>`max(last_seen_at)`.as('last_seen'),
        sql<string | null>`max(expected)`.as('expected'),
        sql<string | null>`max(actual)`.as('actual'),
        // One host's record of who made the change (the hosts of a finding may each have their own).
        sql<string | null>`max(attribution)`.as('attribution'),
        sql<number>`count(attribution)`.as('attributed'),
      ])
      .groupBy(['d.collector', 'd.item_key', 'd.change', 'd.actual_digest']);
    // Default: most hosts first, then oldest; a chosen sort goes first, then the same tie-breakers and
    // the group's identity, so pages never overlap.
    if (filter.sort !== undefined)
      grouped = grouped.orderBy(FINDING_SORT_EXPR[filter.sort], filter.desc ? 'desc' : 'asc');
    grouped = grouped.orderBy(sql`count(*)`, 'desc').orderBy(sql`min(first_seen_at)`);
    const rows = await grouped
      .orderBy('d.collector')
      .orderBy('d.item_key')
      .orderBy('d.change')
      .orderBy('d.actual_digest')
      .limit(Math.floor(filter.limit))
      .offset(Math.floor(filter.offset ?? 0))
      .execute();
    return rows.map((r) => ({
      collector: r.collector,
      key: r.item_key,
      change: r.change as FindingRow['change'],
      actualDigest: r.actual_digest,
      severity: SEVERITY_BY_RANK[Number(r.sev)] ?? 'low',
      action: ACTION_BY_RANK[Number(r.act)] ?? 'exempt',
      hosts: Number(r.hosts),
      firstSeenAt: r.first_seen,
      lastSeenAt: r.last_seen,
      expected: parseJsonOrNull(r.expected),
      actual: parseJsonOrNull(r.actual),
      attribution: parseJsonOrNull(r.attribution),
      attributedHosts: Number(r.attributed),
    }));
  }

  async listFindingHosts(
    f: { collector: string; key: string; change: string; actualDigest: string },
    opts: { after?: string; limit: number },
  ): Promise<
    {
      hostId: string;
      hostname: string | null;
      state: HostState;
      firstSeenAt: string;
      attribution: Attribution | null;
    }[]
  > {
    let q = this.db
      .selectFrom('host_deviations as d')
      .innerJoin('hosts as h', 'h.id', 'd.host_id')
      .select(['d.host_id', 'h.hostname', 'h.state', 'd.first_seen_at', 'd.attribution'])
      .where('d.collector', '=', f.collector)
      .where('d.item_key', '=', f.key)
      .where('d.change', '=', f.change)
      .where('d.actual_digest', '=', f.actualDigest)
      .where('d.action', '!=', 'ignore');
    if (opts.after !== undefined) q = q.where('d.host_id', '>', opts.after);
    const rows = await q.orderBy('d.host_id').limit(Math.floor(opts.limit)).execute();
    return rows.map((r) => ({
      hostId: r.host_id,
      hostname: r.hostname,
      state: r.state as HostState,
      firstSeenAt: r.first_seen_at,
      attribution: parseJsonOrNull<Attribution>(r.attribution),
    }));
  }

  async listDeviations(opts: {
    hostId?: string;
    imageId?: string;
    after?: [string, string, string];
    limit: number;
  }): Promise<HostDeviationWithHost[]> {
    let q = this.db
      .selectFrom('host_deviations as d')
      .innerJoin('hosts as h', 'h.id', 'd.host_id')
      .selectAll('d')
      .select(['h.hostname', 'h.image_id', 'h.host_group', 'h.state'])
      .where('d.action', '!=', 'ignore');
    if (opts.hostId !== undefined) q = q.where('d.host_id', '=', opts.hostId);
    if (opts.imageId !== undefined) q = q.where('h.image_id', '=', opts.imageId);
    if (opts.after) {
      const [hid, c, k] = opts.after;
      q = q.where(sql<boolean>`(d.host_id, d.collector, d.item_key) > (${hid}, ${c}, ${k})`);
    }
    const rows = await q
      .orderBy('d.host_id')
      .orderBy('d.collector')
      .orderBy('d.item_key')
      .limit(Math.floor(opts.limit))
      .execute();
    return rows.map((r) => ({
      ...deviationFromRow(r),
      hostname: r.hostname,
      imageId: r.image_id,
      group: r.host_group,
      state: r.state as HostState,
    }));
  }

  async getToken(id: string): Promise<TokenRow | null> {
    const r = await this.db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? tokenFromRow(r) : null;
  }

  async countHostsByState(): Promise<Record<HostState, number>> {
    const rows = await this.db
      .selectFrom('hosts')
      .where('retired_at', 'is', null)
      .select((eb) => ['state', eb.fn.countAll().as('n')])
      .groupBy('state')
      .execute();
    const counts = Object.fromEntries(HOST_STATES.map((s) => [s, 0])) as Record<HostState, number>;
    for (const r of rows) if (r.state in counts) counts[r.state as HostState] = Number(r.n);
    return counts;
  }

  async listHostsSeenBefore(before: string, states: readonly HostState[], limit: number): Promise<HostRow[]> {
    return this.listHostsStaleBy('last_seen_at', before, states, limit);
  }

  async listHostsScannedBefore(before: string, states: readonly HostState[], limit: number): Promise<HostRow[]> {
    return this.listHostsStaleBy('last_scan_at', before, states, limit);
  }

  /** Hosts in `states` whose `column` (or, when null, enrollment) is older than `before`, oldest first. */
  private async listHostsStaleBy(
    column: 'last_seen_at' | 'last_scan_at',
    before: string,
    states: readonly HostState[],
    limit: number,
  ): Promise<HostRow[]> {
    if (states.length === 0 || limit <= 0) return [];
    const t = iso(before, 'before');
    const rows = await this.db
      .selectFrom('hosts')
      .selectAll()
      // Written as two complete alternatives (state repeated in each) so that each is a range scan of
      // the (state, column) index (hosts_state_seen, hosts_state_scan): SQLite's OR-by-union and
      // PostgreSQL's BitmapOr; with `state in` factored out, SQLite reads every host in those states.
      .where((eb) =>
        eb.or([
          eb.and([eb('state', 'in', states), eb(column, '<', t)]),
          eb.and([eb('state', 'in', states), eb(column, 'is', null), eb('enrolled_at', '<', t)]),
        ]),
      )
      // A forgotten host never goes silent (and so is never tainted and replaced for its silence).
      .where('retired_at', 'is', null)
      .orderBy((eb) => eb.fn.coalesce(column, 'enrolled_at'))
      .orderBy('id')
      .limit(Math.floor(limit))
      .execute();
    return rows.map(hostFromRow);
  }

  // manifests

  async putManifest(row: ManifestRow): Promise<void> {
    const values = {
      image_id: row.imageId,
      digest: row.digest,
      signed_by: row.signedBy,
      name: row.name,
      version: row.version,
      body: row.body,
      published_at: iso(row.publishedAt, 'publishedAt'),
      published_by: row.publishedBy,
    };
    // Republishing an image id replaces its manifest (the route decides whether that is allowed).
    const { image_id: _key, ...update } = values;
    await this.db
      .insertInto('manifests')
      .values(values)
      .onConflict((oc) => oc.column('image_id').doUpdateSet(update))
      .execute();
  }

  async getManifest(imageId: string): Promise<ManifestRow | null> {
    const r = await this.db.selectFrom('manifests').selectAll().where('image_id', '=', imageId).executeTakeFirst();
    return r ? (manifestFromRow(r) as ManifestRow) : null;
  }

  async listManifests(): Promise<Omit<ManifestRow, 'body'>[]> {
    const rows = await this.db
      .selectFrom('manifests')
      .select(['image_id', 'digest', 'signed_by', 'name', 'version', 'published_at', 'published_by'])
      .orderBy('image_id')
      .execute();
    return rows.map((r) => manifestFromRow(r));
  }

  // reports

  async getReport(reportId: string): Promise<ReportRow | null> {
    const r = await this.db.selectFrom('reports').selectAll().where('report_id', '=', reportId).executeTakeFirst();
    return r ? reportFromRow(r) : null;
  }

  async insertReport(row: ReportRow): Promise<void> {
    await insertOrConflict(
      'reports',
      this.db
        .insertInto('reports')
        .values({
          report_id: row.reportId,
          host_id: row.hostId,
          seq: row.seq,
          kind: row.kind,
          scanned_at: iso(row.scannedAt, 'scannedAt'),
          received_at: iso(row.receivedAt, 'receivedAt'),
          digests: json(row.digests),
          deviation_count: row.deviationCount,
          digest_mismatch: json(row.digestMismatch),
          body: json(row.body),
        })
        .execute(),
    );
  }

  async listReports(hostId: string, opts: { limit: number; beforeSeq?: number }): Promise<ReportRow[]> {
    if (opts.limit <= 0) return [];
    let q = this.db.selectFrom('reports').selectAll().where('host_id', '=', hostId);
    if (opts.beforeSeq !== undefined) q = q.where('seq', '<', opts.beforeSeq);
    const rows = await q.orderBy('seq', 'desc').orderBy('received_at', 'desc').limit(Math.floor(opts.limit)).execute();
    return rows.map(reportFromRow);
  }

  async pruneReports(before: string): Promise<number> {
    const t = iso(before, 'before');
    let total = 0;
    for (;;) {
      const r = await this.db
        .deleteFrom('reports')
        .where('report_id', 'in', (eb) =>
          eb.selectFrom('reports').select('report_id').where('received_at', '<', t).limit(PRUNE_BATCH),
        )
        .executeTakeFirst();
      const n = Number(r.numDeletedRows);
      total += n;
      if (n < PRUNE_BATCH) return total;
    }
  }

  // current deviations

  async replaceHostDeviations(hostId: string, rows: HostDeviationRow[]): Promise<void> {
    for (const r of rows) {
      if (r.hostId !== hostId)
        throw new TypeError(
          `store: replaceHostDeviations(${JSON.stringify(hostId)}) got a row of host ${JSON.stringify(r.hostId)}`,
        );
    }
    const unique = dedupeDeviations(rows);
    const existing = new Map<string, Selectable<HostDeviationsTable>>();
    if (unique.length > INSERT_CHUNK) return this.rewriteHostDeviations(hostId, unique);
    if (unique.length > 0) {
      const found = await this.db.selectFrom('host_deviations').selectAll().where('host_id', '=', hostId).execute();
      for (const e of found) existing.set(`${e.collector}\u0000${e.item_key}`, e);
    }
    const fresh = unique.map((d) => {
      const v = deviationToRow(d);
      const prev = existing.get(`${d.collector}\u0000${d.key}`);
      if (prev !== undefined && prev.first_seen_at < v.first_seen_at) v.first_seen_at = prev.first_seen_at;
      return v;
    });
    // A rescan mostly finds what the last one did: rows that read the same only get their last sighting
    // moved (no index covers it), instead of every index entry deleted and inserted again.
    const same = (a: Selectable<HostDeviationsTable>, b: (typeof fresh)[number]) =>
      a.change === b.change &&
      a.expected === b.expected &&
      a.actual === b.actual &&
      a.severity === b.severity &&
      a.action === b.action &&
      a.decided_by === b.decided_by &&
      // Who made the change can appear or go (a log rotated away) while the item reads the same.
      (a.attribution ?? null) === (b.attribution ?? null) &&
      a.first_seen_at === b.first_seen_at;
    const kept = new Set<string>();
    for (const v of fresh) {
      const k = `${v.collector}\u0000${v.item_key}`;
      const prev = existing.get(k);
      if (prev && same(prev, v)) kept.add(k);
    }
    const lastSeen = new Set(fresh.map((v) => v.last_seen_at));
    // A few rows to drop are deleted by key; otherwise (or with mixed sighting times) all go, as before.
    const drop = existing.size - kept.size;
    if (kept.size === 0 || lastSeen.size !== 1 || drop > 64) {
      kept.clear();
      await this.db.deleteFrom('host_deviations').where('host_id', '=', hostId).execute();
    } else {
      for (const [k, e] of existing) {
        if (kept.has(k)) continue;
        await this.db
          .deleteFrom('host_deviations')
          .where('host_id', '=', hostId)
          .where('collector', '=', e.collector)
          .where('item_key', '=', e.item_key)
          .execute();
      }
      await this.db
        .updateTable('host_deviations')
        .set({ last_seen_at: [...lastSeen][0]! })
        .where('host_id', '=', hostId)
        .execute();
    }
    const insert = kept.size === 0 ? fresh : fresh.filter((v) => !kept.has(`${v.collector}\u0000${v.item_key}`));
    if (insert.length > 0) await this.db.insertInto('host_deviations').values(insert).execute();
  }

  /** Every row of the host deleted and the new ones inserted, converted a chunk at a time between yields. */
  private async rewriteHostDeviations(hostId: string, unique: HostDeviationRow[]): Promise<void> {
    const firstSeen = new Map<string, string>();
    const existing = await this.db
      .selectFrom('host_deviations')
      .select(['collector', 'item_key', 'first_seen_at'])
      .where('host_id', '=', hostId)
      .execute();
    for (const e of existing) firstSeen.set(`${e.collector}\u0000${e.item_key}`, e.first_seen_at);
    await this.db.deleteFrom('host_deviations').where('host_id', '=', hostId).execute();
    const toRow = (d: HostDeviationRow) => {
      const v = deviationToRow(d);
      const prev = firstSeen.get(`${d.collector}\u0000${d.key}`);
      if (prev !== undefined && prev < v.first_seen_at) v.first_seen_at = prev;
      return v;
    };
    for (let i = 0; i < unique.length; i += INSERT_CHUNK) {
      await breathe(this.dialect, i);
      await this.db
        .insertInto('host_deviations')
        .values(unique.slice(i, i + INSERT_CHUNK).map(toRow))
        .execute();
    }
  }

  async upsertHostDeviations(rows: HostDeviationRow[]): Promise<void> {
    const unique = dedupeDeviations(rows);
    for (let i = 0; i < unique.length; i += INSERT_CHUNK) {
      await breathe(this.dialect, i);
      await this.db
        .insertInto('host_deviations')
        .values(unique.slice(i, i + INSERT_CHUNK).map(deviationToRow))
        .onConflict((oc) =>
          oc.columns(['host_id', 'collector', 'item_key']).doUpdateSet((eb) => ({
            change: eb.ref('excluded.change'),
            expected: eb.ref('excluded.expected'),
            actual: eb.ref('excluded.actual'),
            actual_digest: eb.ref('excluded.actual_digest'),
            severity: eb.ref('excluded.severity'),
            action: eb.ref('excluded.action'),
            decided_by: eb.ref('excluded.decided_by'),
            last_seen_at: eb.ref('excluded.last_seen_at'),
            attribution: eb.ref('excluded.attribution'),
            // first_seen_at is left as it was: the deviation has been current since then.
          })),
        )
        .execute();
    }
  }

  async listHostDeviations(hostId: string): Promise<HostDeviationRow[]> {
    const rows = await this.db
      .selectFrom('host_deviations')
      .selectAll()
      .where('host_id', '=', hostId)
      .orderBy('collector')
      .orderBy('item_key')
      .execute();
    return rows.map(deviationFromRow);
  }

  // state transitions

  async insertTransition(row: Omit<TransitionRow, 'id'>): Promise<TransitionRow> {
    // `returning` works on both dialects (SQLite ≥ 3.35), so the id comes back without a second query.
    const r = await this.db
      .insertInto('transitions')
      .values({
        host_id: row.hostId,
        from_state: row.from,
        to_state: row.to,
        cause: row.cause,
        actor: row.actor,
        at: iso(row.at, 'at'),
        report_id: row.reportId,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return transitionFromRow(r);
  }

  async listTransitions(hostId: string): Promise<TransitionRow[]> {
    const rows = await this.db
      .selectFrom('transitions')
      .selectAll()
      .where('host_id', '=', hostId)
      .orderBy('id')
      .execute();
    return rows.map(transitionFromRow);
  }

  // audit

  /**
   * IMPORTANT: the caller holds a transaction (KyselyStore wraps root calls in one): reading the chain's
   * head and appending after it must not interleave with another append. SQLite transactions are
   * already serialized; PostgreSQL takes a transaction-scoped advisory lock per chain.
   */
  protected async chainHead(table: 'audit' | 'events'): Promise<string> {
    // Appended to already in this transaction: the lock is held until commit, so our last hash is the head
    // (a report that changes state appends to the events chain twice; saves two round trips under the lock).
    const known = this.heads.get(table);
    if (known !== undefined) return known;
    if (this.dialect === 'postgres') {
      // One lock order for both chains, events before audit: ingestion appends events then audits a
      // taint, the scheduler audits then records a transition; taken in either order, two such
      // transactions deadlocked (the 500s under concurrent drift scans).
      if (table === 'audit' && !this.heads.has('events'))
        await sql`select pg_advisory_xact_lock(hashtext(current_schema() || '.events'))`.execute(this.db);
      await sql`select pg_advisory_xact_lock(hashtext(current_schema() || ${'.' + table}))`.execute(this.db);
    }
    const r = await this.db.selectFrom(table).select('hash').orderBy('id', 'desc').limit(1).executeTakeFirst();
    return r?.hash ?? GENESIS;
  }

  /** The chains' heads after this transaction's own appends (a KyselyStoreTx lives for one transaction). */
  private readonly heads = new Map<'audit' | 'events', string>();

  async appendAudit(row: Omit<AuditRow, 'id' | 'prevHash' | 'hash'>): Promise<AuditRow> {
    const at = iso(row.at, 'at');
    // The hash covers the detail as it reads back from the store (JSON round trip: undefined fields gone).
    const detail = parseJson<Record<string, unknown>>(json(row.detail));
    const prev = await this.chainHead('audit');
    const hash = chainHash(prev, auditContent({ ...row, at, detail }));
    const r = await this.db
      .insertInto('audit')
      .values({
        at,
        actor: row.actor,
        action: row.action,
        target: row.target,
        detail: json(detail),
        prev_hash: prev,
        hash,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    if (this.isTransaction) this.heads.set('audit', hash);
    return auditFromRow(r);
  }

  async listAudit(opts: { afterId?: number; beforeId?: number; limit: number }): Promise<AuditRow[]> {
    if (opts.limit <= 0) return [];
    let q = this.db.selectFrom('audit').selectAll();
    if (opts.beforeId !== undefined) {
      const rows = await q
        .where('id', '<', opts.beforeId)
        .orderBy('id', 'desc')
        .limit(Math.floor(opts.limit))
        .execute();
      return rows.map(auditFromRow);
    }
    if (opts.afterId !== undefined) q = q.where('id', '>', opts.afterId);
    const rows = await q.orderBy('id').limit(Math.floor(opts.limit)).execute();
    return rows.map(auditFromRow);
  }

  // event stream

  async appendEvent(row: NewEvent): Promise<EventRow> {
    return (await this.appendEvents([row]))[0]!;
  }

  async appendEvents(rows: NewEvent[]): Promise<EventRow[]> {
    if (rows.length === 0) return [];
    let prev = await this.chainHead('events');
    const values = rows.map((row) => {
      const at = iso(row.at, 'at');
      const detail = parseJson<Record<string, unknown>>(json(row.detail));
      const hash = chainHash(prev, eventContent({ ...row, at, detail }));
      const v = {
        at,
        kind: row.kind,
        host_id: row.hostId,
        actor: row.actor,
        detail: json(detail),
        prev_hash: prev,
        hash,
      };
      prev = hash;
      return v;
    });
    const out: EventRow[] = [];
    // Ids follow insertion order within a statement and across statements of one transaction.
    for (let i = 0; i < values.length; i += INSERT_CHUNK) {
      const r = await this.db
        .insertInto('events')
        .values(values.slice(i, i + INSERT_CHUNK))
        .returningAll()
        .execute();
      out.push(...r.map(eventFromRow).sort((a, b) => a.id - b.id));
    }
    if (this.isTransaction) this.heads.set('events', prev);
    return out;
  }

  async listEvents(opts: {
    afterId?: number;
    beforeId?: number;
    hostId?: string;
    newestFirst?: boolean;
    limit: number;
  }): Promise<EventRow[]> {
    if (opts.limit <= 0) return [];
    let q = this.db.selectFrom('events').selectAll();
    if (opts.hostId !== undefined) q = q.where('host_id', '=', opts.hostId);
    if (opts.afterId !== undefined) q = q.where('id', '>', opts.afterId);
    if (opts.beforeId !== undefined) q = q.where('id', '<', opts.beforeId);
    const rows = await q
      .orderBy('id', opts.newestFirst ? 'desc' : 'asc')
      .limit(Math.floor(opts.limit))
      .execute();
    return rows.map(eventFromRow);
  }

  async countEventsByDay(since: string): Promise<{ day: string; kind: string; n: number }[]> {
    const rows = await this.db
      .selectFrom('events')
      .select([sql<string>`substr(at, 1, 10)`.as('day'), 'kind', sql<number>`count(*)`.as('n')])
      .where('at', '>=', iso(since, 'since'))
      .groupBy([sql`substr(at, 1, 10)`, 'kind'])
      .orderBy(sql`substr(at, 1, 10)`)
      .execute();
    return rows.map((r) => ({ day: r.day, kind: r.kind, n: Number(r.n) }));
  }

  async countTransitionsByDay(since: string): Promise<{ day: string; to: HostState; n: number }[]> {
    const rows = await this.db
      .selectFrom('transitions')
      .select([sql<string>`substr(at, 1, 10)`.as('day'), 'to_state', sql<number>`count(*)`.as('n')])
      .where('at', '>=', iso(since, 'since'))
      .groupBy([sql`substr(at, 1, 10)`, 'to_state'])
      .orderBy(sql`substr(at, 1, 10)`)
      .execute();
    return rows.map((r) => ({ day: r.day, to: r.to_state as HostState, n: Number(r.n) }));
  }

  async getEventCursor(name: string): Promise<number | null> {
    const r = await this.db.selectFrom('event_cursors').select('last_id').where('name', '=', name).executeTakeFirst();
    return r ? Number(r.last_id) : null;
  }

  async setEventCursor(name: string, lastId: number, at: string): Promise<void> {
    const updated_at = iso(at, 'at');
    await this.db
      .insertInto('event_cursors')
      .values({ name, last_id: lastId, updated_at })
      .onConflict((oc) => oc.column('name').doUpdateSet({ last_id: lastId, updated_at }))
      .execute();
  }

  // exemptions

  async insertExemption(row: ExemptionRow): Promise<void> {
    await insertOrConflict(
      'exemptions',
      this.db
        .insertInto('exemptions')
        .values({
          id: row.id,
          host_id: row.hostId,
          image_id: row.imageId,
          collector: row.collector,
          key_pattern: row.keyPattern,
          reason: row.reason,
          actor: row.actor,
          created_at: iso(row.createdAt, 'createdAt'),
          expires_at: iso(row.expiresAt, 'expiresAt'),
          revoked_at: isoOrNull(row.revokedAt, 'revokedAt'),
          revoked_by: row.revokedBy,
        })
        .execute(),
    );
  }

  async listExemptions(opts: { activeAt?: string }): Promise<ExemptionRow[]> {
    let q = this.db.selectFrom('exemptions').selectAll();
    if (opts.activeAt !== undefined) {
      const t = iso(opts.activeAt, 'activeAt');
      q = q
        .where('created_at', '<=', t)
        .where('expires_at', '>', t)
        .where((eb) => eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', t)]));
    }
    const rows = await q.orderBy('created_at').orderBy('id').execute();
    return rows.map(exemptionFromRow);
  }

  async revokeExemption(id: string, at: string, by: string): Promise<boolean> {
    const r = await this.db
      .updateTable('exemptions')
      .set({ revoked_at: iso(at, 'at'), revoked_by: by })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }
}

/** The Store over a Kysely instance whose dialect is `dialect`; `openStore` builds one from a URL. */
export class KyselyStore extends KyselyStoreTx implements Store {
  readonly kind: Dialect;
  readonly #pgSchema: string | undefined;

  readonly #onRetry: RetryOptions['onRetry'];
  /** An own property, not a method: it reads no private state, so a Proxy around the store can call it. */
  readonly waitingForConnection: () => number;

  /** `pgSchema`: on PostgreSQL, the schema the connections' search_path puts first (see createMigrator). */
  constructor(
    db: Kysely<DB>,
    dialect: Dialect,
    opts: { pgSchema?: string; onRetry?: RetryOptions['onRetry']; waiting?: () => number } = {},
  ) {
    super(db, dialect);
    this.kind = dialect;
    this.#pgSchema = opts.pgSchema;
    this.#onRetry = opts.onRetry;
    this.waitingForConnection = opts.waiting ?? (() => 0);
  }

  async migrate(): Promise<void> {
    await migrateToLatest(this.db as Kysely<any>, this.dialect, this.#pgSchema);
  }

  /**
   * Kysely hands the transaction one connection: on PostgreSQL a pool client, on SQLite the only
   * connection, which Kysely's driver guards with a mutex until commit or rollback, so overlapping
   * transactions (and auto-commit calls) queue instead of interleaving. `openStore` makes SQLite's
   * `begin` immediate.
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    const once = () => this.db.transaction().execute((trx) => fn(new KyselyStoreTx(trx, this.dialect, true)));
    // SQLite serializes writers and never aborts a transaction for a conflict; PostgreSQL may (retry.ts).
    return this.dialect === 'postgres' ? retryTransient(once, { onRetry: this.#onRetry }) : once();
  }

  /** A chained append needs its head read and its insert in one transaction, even when called outside one. */
  override appendAudit(row: Omit<AuditRow, 'id' | 'prevHash' | 'hash'>): Promise<AuditRow> {
    return this.transaction((tx) => tx.appendAudit(row));
  }

  override appendEvent(row: NewEvent): Promise<EventRow> {
    return this.transaction((tx) => tx.appendEvent(row));
  }

  override appendEvents(rows: NewEvent[]): Promise<EventRow[]> {
    return this.transaction((tx) => tx.appendEvents(rows));
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
