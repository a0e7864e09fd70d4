/**
 * @module The replacement queue and the scheduler's per-group state in the store (migration
 * 0002_replacements), over the same Kysely handle as the rest of the store, so the scheduler's
 * decisions commit in one transaction with the host transitions they cause.
 */
import { sql, type Kysely, type Selectable, type Updateable } from 'kysely';
import type { Severity } from '../../shared/schema/deviation.js';
import { SEVERITY_RANK, severityRankSql } from '../../shared/severity.js';
import type { Dialect } from './migrations.js';

export const REPLACEMENT_STATES = [
  'queued',
  'awaiting-approval',
  'scheduled',
  'replacing',
  'replaced',
  'failed',
  'cancelled',
] as const;
export type ReplacementState = (typeof REPLACEMENT_STATES)[number];
/** At most one row per host is in one of these (a unique partial index holds it). `failed` stays until an operator acts. */
export const ACTIVE_REPLACEMENT_STATES = [
  'queued',
  'awaiting-approval',
  'scheduled',
  'replacing',
  'failed',
] as const satisfies readonly ReplacementState[];
/** Rows that hold a budget slot: the provider was (or is about to be) asked to act. */
export const IN_FLIGHT_STATES = ['scheduled', 'replacing'] as const satisfies readonly ReplacementState[];

/** What the scheduler last decided about a queued row, and why (dry-run shows its work here). */
export type Decision = 'would-replace' | 'waiting' | 'paused' | 'off' | 'awaiting-approval' | 'scheduled' | 'backoff';

export interface ReplacementRow {
  id: string;
  hostId: string;
  group: string;
  state: ReplacementState;
  /** The worst severity among the host's tainting deviations when it was queued. */
  severity: Severity | null;
  taintedAt: string;
  /** `controller` for tainted hosts, an actor for a request by hand. */
  requestedBy: string;
  reason: string;
  decision: Decision | null;
  decisionReason: string | null;
  decidedAt: string | null;
  approvedBy: string | null;
  approvedAt: string | null;
  attempts: number;
  nextAttemptAt: string | null;
  lastError: string | null;
  provider: string | null;
  /** What the provider calls its operation or resource (instance id, node name, webhook delivery). */
  providerRef: string | null;
  /** The host that took this one's place, once known. */
  replacedBy: string | null;
  createdAt: string;
  scheduledAt: string | null;
  startedAt: string | null;
  confirmedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
  /** The controller acting on the row and until when; a lapsed lease is anyone's. */
  leaseOwner: string | null;
  leaseUntil: string | null;
}

/** Whether a group is paused, by whom and why, and who resumed it last: stored, and shown in the group view. */
export interface GroupPause {
  paused: boolean;
  pausedReason: string | null;
  pausedAt: string | null;
  pausedBy: string | null;
  resumedAt: string | null;
  resumedBy: string | null;
}

export interface GroupStateRow extends GroupPause {
  name: string;
  /** The breaker only counts taints after this (set on resume: the operator accepted what was there). */
  breakerSince: string | null;
}

export interface GroupCounts {
  group: string;
  total: number;
  unavailable: number;
  clean: number;
}

export interface TaintedHost {
  id: string;
  group: string | null;
  taintedAt: string | null;
  severity: Severity | null;
}

export interface ReplacementFilter {
  states?: readonly ReplacementState[];
  group?: string;
  hostId?: string;
  /** Keyset: the rows after this one in queue order (see replacementCursor). */
  after?: ReplacementCursor;
  limit: number;
}

/** A position in queue order: the last row of a page. */
export interface ReplacementCursor {
  severityRank: number;
  taintedAt: string;
  hostId: string;
  id: string;
}

export function replacementCursor(
  r: Pick<ReplacementRow, 'severity' | 'taintedAt' | 'hostId' | 'id'>,
): ReplacementCursor {
  return {
    severityRank: r.severity ? SEVERITY_RANK[r.severity] : 0,
    taintedAt: r.taintedAt,
    hostId: r.hostId,
    id: r.id,
  };
}

export interface ReplacementStoreTx {
  /**
   * Serializes scheduling decisions across controllers until the transaction ends: PostgreSQL locks one
   * row (`for update`); SQLite transactions already hold the write lock. Call first in a transaction.
   */
  lockScheduler(): Promise<void>;
  insert(row: ReplacementRow): Promise<void>;
  get(id: string): Promise<ReplacementRow | null>;
  /** `get` that holds the row until the transaction ends (PostgreSQL `for update`). */
  lock(id: string): Promise<ReplacementRow | null>;
  activeForHost(hostId: string): Promise<ReplacementRow | null>;
  /** Queue order: most severe first, then longest tainted, then id. */
  list(filter: ReplacementFilter): Promise<ReplacementRow[]>;
  /** How many replacements each group has in each of `states` (one aggregate, not the rows). */
  countByGroup(states: readonly ReplacementState[]): Promise<{ group: string; state: ReplacementState; n: number }[]>;
  /** Host names for ids, in one query (ids that are not hosts are absent). */
  hostnames(ids: readonly string[]): Promise<Map<string, string | null>>;
  update(id: string, patch: Partial<Omit<ReplacementRow, 'id' | 'hostId' | 'createdAt'>>): Promise<void>;
  /** Takes the lease when it is free, lapsed or ours; false when another controller holds it. */
  claim(id: string, owner: string, until: string, now: string): Promise<boolean>;
  /** Tainted hosts with no active (or cancelled) replacement, oldest taint first. */
  taintedWithoutReplacement(limit: number): Promise<TaintedHost[]>;
  /** Per group (null group as `defaultGroup`): hosts not replaced, unavailable ones, clean reporting ones. */
  groupCounts(staleBefore: string, defaultGroup: string): Promise<GroupCounts[]>;
  /** Appends a start (each scheduled attempt is one), kept apart from the row so retries count against rates too. */
  recordStart(replacementId: string, group: string, at: string): Promise<void>;
  /** When replacements started since `since`, per group, for rates. */
  startsSince(since: string): Promise<{ group: string; startedAt: string }[]>;
  /** Hosts of a group tainted at or after `since`, with their tainting deviations (collector, key, actual). */
  recentTaints(
    group: string,
    defaultGroup: string,
    since: string,
  ): Promise<{ hostId: string; taintedAt: string; signatures: string[] }[]>;
  getGroup(name: string): Promise<GroupStateRow | null>;
  putGroup(row: GroupStateRow): Promise<void>;
  listGroups(): Promise<GroupStateRow[]>;
  /**
   * The first host of `group` enrolled after `after` that reports clean and is not already someone's
   * successor; with `match`, only one whose pinned hostname (or its first label) or a pinned address is listed.
   */
  findSuccessor(
    group: string,
    defaultGroup: string,
    after: string,
    exclude: string,
    match?: { hostnames: string[]; addresses: string[] },
  ): Promise<string | null>;
}

// ---- tables ----

interface ReplacementsTable {
  id: string;
  host_id: string;
  host_group: string;
  state: string;
  severity: string | null;
  severity_rank: number | string;
  tainted_at: string;
  requested_by: string;
  reason: string;
  decision: string | null;
  decision_reason: string | null;
  decided_at: string | null;
  approved_by: string | null;
  approved_at: string | null;
  attempts: number | string;
  next_attempt_at: string | null;
  last_error: string | null;
  provider: string | null;
  provider_ref: string | null;
  replaced_by: string | null;
  created_at: string;
  scheduled_at: string | null;
  started_at: string | null;
  confirmed_at: string | null;
  finished_at: string | null;
  updated_at: string;
  lease_owner: string | null;
  lease_until: string | null;
}

interface GroupsTable {
  name: string;
  paused: number;
  paused_reason: string | null;
  paused_at: string | null;
  paused_by: string | null;
  resumed_at: string | null;
  resumed_by: string | null;
  breaker_since: string | null;
}

interface HostsView {
  id: string;
  hostname: string | null;
  host_group: string | null;
  state: string;
  tainted_at: string | null;
  last_seen_at: string | null;
  enrolled_at: string;
  enrolled_addresses: string | null;
  retired_at: string | null;
}

interface DeviationsView {
  host_id: string;
  collector: string;
  item_key: string;
  change: string;
  actual: string | null;
  severity: string;
  action: string;
}

interface StartsTable {
  replacement_id: string;
  host_group: string;
  at: string;
}

export interface ReplacementTables {
  replacements: ReplacementsTable;
  replacement_starts: StartsTable;
  replacement_groups: GroupsTable;
  hosts: HostsView;
  host_deviations: DeviationsView;
}

/** Fleet-wide lock row's name in replacement_groups (not a group: `*` cannot be a group name in config globs either). */
const LOCK_ROW = '*';

export { SEVERITY_RANK };

/** Migration 0002's statements; kept beside the code that uses the tables. */
export async function createReplacementTables(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const key = pg ? sql`text collate "C"` : ('text' as const);
  await db.schema
    .createTable('replacements')
    .addColumn('id', key, (c) => c.primaryKey())
    .addColumn('host_id', key, (c) => c.notNull().references('hosts.id'))
    .addColumn('host_group', key, (c) => c.notNull())
    .addColumn('state', key, (c) => c.notNull())
    .addColumn('severity', 'text')
    .addColumn('severity_rank', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('tainted_at', key, (c) => c.notNull())
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('decision', 'text')
    .addColumn('decision_reason', 'text')
    .addColumn('decided_at', key)
    .addColumn('approved_by', 'text')
    .addColumn('approved_at', key)
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', key)
    .addColumn('last_error', 'text')
    .addColumn('provider', 'text')
    .addColumn('provider_ref', 'text')
    .addColumn('replaced_by', key)
    .addColumn('created_at', key, (c) => c.notNull())
    .addColumn('scheduled_at', key)
    .addColumn('started_at', key)
    .addColumn('confirmed_at', key)
    .addColumn('finished_at', key)
    .addColumn('updated_at', key, (c) => c.notNull())
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until', key)
    .execute();
  // One active replacement per host, enforced by the database: two controllers cannot both queue a host.
  await db.schema
    .createIndex('replacements_active_host')
    .on('replacements')
    .column('host_id')
    .unique()
    .where(sql.ref('state'), 'in', [...ACTIVE_REPLACEMENT_STATES])
    .execute();
  await db.schema
    .createIndex('replacements_state_order')
    .on('replacements')
    .columns(['state', 'severity_rank', 'tainted_at', 'id'])
    .execute();
  await db.schema.createIndex('hosts_state_tainted').on('hosts').columns(['state', 'tainted_at']).execute();
  await db.schema
    .createTable('replacement_starts')
    .addColumn('replacement_id', key, (c) => c.notNull().references('replacements.id'))
    .addColumn('host_group', key, (c) => c.notNull())
    .addColumn('at', key, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('replacement_starts_at').on('replacement_starts').column('at').execute();
  await db.schema
    .createTable('replacement_groups')
    .addColumn('name', key, (c) => c.primaryKey())
    .addColumn('paused', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('paused_reason', 'text')
    .addColumn('paused_at', key)
    .addColumn('paused_by', 'text')
    .addColumn('resumed_at', key)
    .addColumn('resumed_by', 'text')
    .addColumn('breaker_since', key)
    .execute();
  await db.insertInto('replacement_groups').values({ name: LOCK_ROW, paused: 0 }).execute();
}

function iso(v: string): string;
function iso(v: string | null): string | null;
function iso(v: string | null): string | null {
  if (v === null) return null;
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new TypeError(`store: not a valid time: ${JSON.stringify(v)}`);
  return new Date(ms).toISOString();
}

function fromRow(r: Selectable<ReplacementsTable>): ReplacementRow {
  return {
    id: r.id,
    hostId: r.host_id,
    group: r.host_group,
    state: r.state as ReplacementState,
    severity: r.severity as Severity | null,
    taintedAt: r.tainted_at,
    requestedBy: r.requested_by,
    reason: r.reason,
    decision: r.decision as Decision | null,
    decisionReason: r.decision_reason,
    decidedAt: r.decided_at,
    approvedBy: r.approved_by,
    approvedAt: r.approved_at,
    attempts: Number(r.attempts),
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    provider: r.provider,
    providerRef: r.provider_ref,
    replacedBy: r.replaced_by,
    createdAt: r.created_at,
    scheduledAt: r.scheduled_at,
    startedAt: r.started_at,
    confirmedAt: r.confirmed_at,
    finishedAt: r.finished_at,
    updatedAt: r.updated_at,
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until,
  };
}

const TIME_FIELDS = new Set([
  'taintedAt',
  'decidedAt',
  'approvedAt',
  'nextAttemptAt',
  'scheduledAt',
  'startedAt',
  'confirmedAt',
  'finishedAt',
  'updatedAt',
  'leaseUntil',
]);
const COLUMN: Record<string, keyof ReplacementsTable> = {
  group: 'host_group',
  state: 'state',
  severity: 'severity',
  taintedAt: 'tainted_at',
  requestedBy: 'requested_by',
  reason: 'reason',
  decision: 'decision',
  decisionReason: 'decision_reason',
  decidedAt: 'decided_at',
  approvedBy: 'approved_by',
  approvedAt: 'approved_at',
  attempts: 'attempts',
  nextAttemptAt: 'next_attempt_at',
  lastError: 'last_error',
  provider: 'provider',
  providerRef: 'provider_ref',
  replacedBy: 'replaced_by',
  scheduledAt: 'scheduled_at',
  startedAt: 'started_at',
  confirmedAt: 'confirmed_at',
  finishedAt: 'finished_at',
  updatedAt: 'updated_at',
  leaseOwner: 'lease_owner',
  leaseUntil: 'lease_until',
};

function groupFromRow(r: Selectable<GroupsTable>): GroupStateRow {
  return {
    name: r.name,
    paused: Number(r.paused) === 1,
    pausedReason: r.paused_reason,
    pausedAt: r.paused_at,
    pausedBy: r.paused_by,
    resumedAt: r.resumed_at,
    resumedBy: r.resumed_by,
    breakerSince: r.breaker_since,
  };
}

export class KyselyReplacementStore implements ReplacementStoreTx {
  private readonly db: Kysely<ReplacementTables>;
  constructor(
    db: Kysely<any>,
    private readonly dialect: Dialect,
  ) {
    this.db = db as Kysely<ReplacementTables>;
  }

  async lockScheduler(): Promise<void> {
    // DIALECT: SQLite's `begin immediate` already holds the database's write lock.
    if (this.dialect !== 'postgres') return;
    // The migration made the row; recreate it should it be gone, or the lock would lock nothing.
    await this.db
      .insertInto('replacement_groups')
      .values({ name: LOCK_ROW, paused: 0 })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    await this.db.selectFrom('replacement_groups').select('name').where('name', '=', LOCK_ROW).forUpdate().execute();
  }

  async insert(row: ReplacementRow): Promise<void> {
    await this.db
      .insertInto('replacements')
      .values({
        id: row.id,
        host_id: row.hostId,
        host_group: row.group,
        state: row.state,
        severity: row.severity,
        severity_rank: row.severity ? SEVERITY_RANK[row.severity] : 0,
        tainted_at: iso(row.taintedAt),
        requested_by: row.requestedBy,
        reason: row.reason,
        decision: row.decision,
        decision_reason: row.decisionReason,
        decided_at: iso(row.decidedAt),
        approved_by: row.approvedBy,
        approved_at: iso(row.approvedAt),
        attempts: row.attempts,
        next_attempt_at: iso(row.nextAttemptAt),
        last_error: row.lastError,
        provider: row.provider,
        provider_ref: row.providerRef,
        replaced_by: row.replacedBy,
        created_at: iso(row.createdAt),
        scheduled_at: iso(row.scheduledAt),
        started_at: iso(row.startedAt),
        confirmed_at: iso(row.confirmedAt),
        finished_at: iso(row.finishedAt),
        updated_at: iso(row.updatedAt),
        lease_owner: row.leaseOwner,
        lease_until: iso(row.leaseUntil),
      })
      .execute();
  }

  async get(id: string): Promise<ReplacementRow | null> {
    const r = await this.db.selectFrom('replacements').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? fromRow(r) : null;
  }

  async lock(id: string): Promise<ReplacementRow | null> {
    let q = this.db.selectFrom('replacements').selectAll().where('id', '=', id);
    if (this.dialect === 'postgres') q = q.forUpdate();
    const r = await q.executeTakeFirst();
    return r ? fromRow(r) : null;
  }

  async activeForHost(hostId: string): Promise<ReplacementRow | null> {
    const r = await this.db
      .selectFrom('replacements')
      .selectAll()
      .where('host_id', '=', hostId)
      .where('state', 'in', [...ACTIVE_REPLACEMENT_STATES])
      .executeTakeFirst();
    return r ? fromRow(r) : null;
  }

  async list(filter: ReplacementFilter): Promise<ReplacementRow[]> {
    let q = this.db.selectFrom('replacements').selectAll();
    if (filter.states) q = q.where('state', 'in', [...filter.states]);
    if (filter.group !== undefined) q = q.where('host_group', '=', filter.group);
    if (filter.hostId !== undefined) q = q.where('host_id', '=', filter.hostId);
    const a = filter.after;
    if (a) {
      // The order below as a tuple comparison, spelled out: severity descends, the rest ascend.
      q = q.where((eb) =>
        eb.or([
          eb('severity_rank', '<', a.severityRank),
          eb.and([
            eb('severity_rank', '=', a.severityRank),
            eb.or([
              eb('tainted_at', '>', iso(a.taintedAt)),
              eb.and([
                eb('tainted_at', '=', iso(a.taintedAt)),
                eb.or([eb('host_id', '>', a.hostId), eb.and([eb('host_id', '=', a.hostId), eb('id', '>', a.id)])]),
              ]),
            ]),
          ]),
        ]),
      );
    }
    // IMPORTANT: queue order. Most severe first, then the longest tainted, then id for a total order
    // that every controller agrees on.
    const rows = await q
      .orderBy('severity_rank', 'desc')
      .orderBy('tainted_at')
      .orderBy('host_id')
      .orderBy('id')
      .limit(Math.max(0, Math.floor(filter.limit)))
      .execute();
    return rows.map(fromRow);
  }

  async countByGroup(
    states: readonly ReplacementState[],
  ): Promise<{ group: string; state: ReplacementState; n: number }[]> {
    if (states.length === 0) return [];
    const rows = await this.db
      .selectFrom('replacements')
      .select(['host_group', 'state'])
      .select((eb) => eb.fn.countAll().as('n'))
      .where('state', 'in', [...states])
      .groupBy(['host_group', 'state'])
      .execute();
    return rows.map((r) => ({ group: r.host_group, state: r.state as ReplacementState, n: Number(r.n) }));
  }

  async hostnames(ids: readonly string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    const unique = [...new Set(ids)];
    // Chunks keep the bound parameters under SQLite's limit.
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await this.db
        .selectFrom('hosts')
        .select(['id', 'hostname'])
        .where('id', 'in', unique.slice(i, i + 500))
        .execute();
      for (const r of rows) out.set(r.id, r.hostname);
    }
    return out;
  }

  async update(id: string, patch: Partial<Omit<ReplacementRow, 'id' | 'hostId' | 'createdAt'>>): Promise<void> {
    const set: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) continue;
      const col = COLUMN[k];
      if (!col) throw new TypeError(`store: replacements.update: ${k} cannot be patched`);
      set[col] = TIME_FIELDS.has(k) ? iso(v as string | null) : v;
      if (k === 'severity') set.severity_rank = v ? SEVERITY_RANK[v as Severity] : 0;
    }
    if (Object.keys(set).length === 0) return;
    const r = await this.db
      .updateTable('replacements')
      .set(set as Updateable<ReplacementsTable>)
      .where('id', '=', id)
      .executeTakeFirst();
    if (r.numUpdatedRows === 0n) throw new Error(`store: replacements.update: no replacement ${JSON.stringify(id)}`);
  }

  async claim(id: string, owner: string, until: string, now: string): Promise<boolean> {
    // One statement: on PostgreSQL a concurrent claimer waits for the row lock, then re-checks the
    // condition against the committed row and updates nothing.
    const r = await this.db
      .updateTable('replacements')
      .set({ lease_owner: owner, lease_until: iso(until) })
      .where('id', '=', id)
      .where((eb) =>
        eb.or([eb('lease_owner', 'is', null), eb('lease_owner', '=', owner), eb('lease_until', '<', iso(now))]),
      )
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async taintedWithoutReplacement(limit: number): Promise<TaintedHost[]> {
    const rows = await this.db
      .selectFrom('hosts as h')
      .select(['h.id', 'h.host_group', 'h.tainted_at'])
      .select((eb) =>
        eb
          .selectFrom('host_deviations as d')
          .whereRef('d.host_id', '=', 'h.id')
          .where('d.action', '=', 'taint')
          .select((e) => e.fn.max(sql<string>`${sql.raw(severityRankSql('d.severity'))}`).as('m'))
          .as('rank'),
      )
      .where('h.state', '=', 'tainted')
      .where('h.retired_at', 'is', null)
      // A cancelled replacement keeps its host out of the automatic queue: the operator decided; a
      // request by hand queues it again.
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('replacements as r')
              .select('r.id')
              .whereRef('r.host_id', '=', 'h.id')
              .where('r.state', 'in', [...ACTIVE_REPLACEMENT_STATES, 'cancelled']),
          ),
        ),
      )
      .orderBy('h.tainted_at')
      .orderBy('h.id')
      .limit(Math.floor(limit))
      .execute();
    const bySeverity = ['low', 'medium', 'high', 'critical'] as const;
    return rows.map((r) => {
      const rank = Number((r as { rank: unknown }).rank ?? 0);
      return {
        id: r.id,
        group: r.host_group,
        taintedAt: r.tainted_at,
        severity: rank > 0 ? bySeverity[rank - 1]! : null,
      };
    });
  }

  async groupCounts(staleBefore: string, defaultGroup: string): Promise<GroupCounts[]> {
    const stale = iso(staleBefore);
    const r = await sql<{
      g: string | null;
      total: number | string;
      unavailable: number | string | null;
      clean: number | string | null;
    }>`
      select host_group as g, count(*) as total,
        sum(case when state in ('replacement-scheduled', 'replacing', 'silent') or coalesce(last_seen_at, enrolled_at) < ${stale} then 1 else 0 end) as unavailable,
        sum(case when state = 'clean' and coalesce(last_seen_at, enrolled_at) >= ${stale} then 1 else 0 end) as clean
      from hosts where state <> 'replaced' and retired_at is null group by host_group`.execute(this.db);
    const merged = new Map<string, GroupCounts>();
    for (const row of r.rows) {
      const group = row.g ?? defaultGroup;
      const prev = merged.get(group) ?? { group, total: 0, unavailable: 0, clean: 0 };
      prev.total += Number(row.total);
      prev.unavailable += Number(row.unavailable ?? 0);
      prev.clean += Number(row.clean ?? 0);
      merged.set(group, prev);
    }
    return [...merged.values()];
  }

  async recordStart(replacementId: string, group: string, at: string): Promise<void> {
    await this.db
      .insertInto('replacement_starts')
      .values({ replacement_id: replacementId, host_group: group, at: iso(at) })
      .execute();
  }

  async startsSince(since: string): Promise<{ group: string; startedAt: string }[]> {
    const rows = await this.db
      .selectFrom('replacement_starts')
      .select(['host_group', 'at'])
      .where('at', '>=', iso(since))
      .execute();
    return rows.map((r) => ({ group: r.host_group, startedAt: r.at }));
  }

  async recentTaints(
    group: string,
    defaultGroup: string,
    since: string,
  ): Promise<{ hostId: string; taintedAt: string; signatures: string[] }[]> {
    let q = this.db
      .selectFrom('hosts')
      .select(['id', 'tainted_at'])
      .where('tainted_at', '>=', iso(since))
      .where('state', 'in', ['tainted', 'replacement-scheduled', 'replacing']);
    q =
      group === defaultGroup
        ? q.where((eb) => eb.or([eb('host_group', '=', group), eb('host_group', 'is', null)]))
        : q.where('host_group', '=', group);
    const hosts = await q.execute();
    if (hosts.length === 0) return [];
    const sigs = new Map<string, string[]>();
    const ids = hosts.map((h) => h.id);
    for (let i = 0; i < ids.length; i += 500) {
      const devs = await this.db
        .selectFrom('host_deviations')
        .select(['host_id', 'collector', 'item_key', 'change', 'actual'])
        .where('host_id', 'in', ids.slice(i, i + 500))
        .where('action', '=', 'taint')
        .execute();
      for (const d of devs) {
        const list = sigs.get(d.host_id) ?? [];
        list.push(`${d.collector} ${d.item_key} ${d.change} ${d.actual ?? ''}`);
        sigs.set(d.host_id, list);
      }
    }
    return hosts.map((h) => ({ hostId: h.id, taintedAt: h.tainted_at!, signatures: sigs.get(h.id) ?? [] }));
  }

  async getGroup(name: string): Promise<GroupStateRow | null> {
    const r = await this.db.selectFrom('replacement_groups').selectAll().where('name', '=', name).executeTakeFirst();
    return r ? groupFromRow(r) : null;
  }

  async putGroup(row: GroupStateRow): Promise<void> {
    const values = {
      name: row.name,
      paused: row.paused ? 1 : 0,
      paused_reason: row.pausedReason,
      paused_at: iso(row.pausedAt),
      paused_by: row.pausedBy,
      resumed_at: iso(row.resumedAt),
      resumed_by: row.resumedBy,
      breaker_since: iso(row.breakerSince),
    };
    const { name: _n, ...update } = values;
    await this.db
      .insertInto('replacement_groups')
      .values(values)
      .onConflict((oc) => oc.column('name').doUpdateSet(update))
      .execute();
  }

  async listGroups(): Promise<GroupStateRow[]> {
    const rows = await this.db
      .selectFrom('replacement_groups')
      .selectAll()
      .where('name', '<>', LOCK_ROW)
      .orderBy('name')
      .execute();
    return rows.map(groupFromRow);
  }

  async findSuccessor(
    group: string,
    defaultGroup: string,
    after: string,
    exclude: string,
    match?: { hostnames: string[]; addresses: string[] },
  ): Promise<string | null> {
    let q = this.db
      .selectFrom('hosts as h')
      .select(['h.id', 'h.hostname', 'h.enrolled_addresses'])
      .where('h.enrolled_at', '>=', iso(after))
      .where('h.state', '=', 'clean')
      .where('h.id', '<>', exclude)
      .where((eb) =>
        eb.not(eb.exists(eb.selectFrom('replacements as r').select('r.id').whereRef('r.replaced_by', '=', 'h.id'))),
      );
    q =
      group === defaultGroup
        ? q.where((eb) => eb.or([eb('h.host_group', '=', group), eb('h.host_group', 'is', null)]))
        : q.where('h.host_group', '=', group);
    if (!match) {
      const r = await q.orderBy('h.enrolled_at').orderBy('h.id').limit(1).executeTakeFirst();
      return r?.id ?? null;
    }
    // Few hosts of one group enroll within one replacement's wait; the identity match is done here,
    // on the pinned columns, rather than in JSON operators that differ between the two dialects.
    const names = new Set(match.hostnames.flatMap((n) => [n, n.split('.')[0]!]));
    const addresses = new Set(match.addresses);
    for (const r of await q.orderBy('h.enrolled_at').orderBy('h.id').limit(1000).execute()) {
      const pinned: string[] = r.enrolled_addresses ? (JSON.parse(r.enrolled_addresses) as string[]) : [];
      if (
        (r.hostname && (names.has(r.hostname) || names.has(r.hostname.split('.')[0]!))) ||
        pinned.some((a) => addresses.has(a))
      )
        return r.id;
    }
    return null;
  }
}
