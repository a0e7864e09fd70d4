/**
 * @module The store's half of retention (controller/retention.ts decides, this finds and deletes): report
 * candidates by age and by per-host count, what must be kept among them, resolved findings of replaced
 * hosts, and the checkpoints under which the oldest audit and event rows are removed (migration 0011).
 * Every method works on a small batch, so the caller commits and yields between batches.
 */
import { sql, type Kysely } from 'kysely';
import type { Dialect } from './migrations.js';

export type ChainName = 'audit' | 'events';

/**
 * Rows `firstId`..`throughId` of a chain were removed (or are about to be: deletion runs in batches after
 * the checkpoint commits). They chained from `fromHash` (the previous checkpoint's `throughHash`, GENESIS
 * for the first) to `throughHash`, the hash the first kept row's prev_hash must name. `totalRows`: rows
 * removed from the chain's start through `throughId`. Checkpoints chain too (`prevHash`, `hash`) and are
 * signed when the controller has a key.
 */
export interface ChainCheckpointRow {
  id: number;
  chain: ChainName;
  firstId: number;
  throughId: number;
  fromHash: string;
  throughHash: string;
  rows: number;
  totalRows: number;
  /** The retention cut-off the rows were older than. */
  cutoff: string;
  at: string;
  prevHash: string;
  hash: string;
  keyId: string | null;
  signature: string | null;
}

export interface ReportRef {
  reportId: string;
  hostId: string;
  seq: number;
  receivedAt: string;
}

export interface RetentionStoreTx {
  /**
   * Serializes checkpoint writers across controllers until the transaction ends: PostgreSQL
   * `pg_try_advisory_xact_lock` (false: another controller holds it, skip); SQLite transactions already
   * hold the write lock (always true).
   */
  tryLock(name: string): Promise<boolean>;
  latestCheckpoint(chain: ChainName): Promise<ChainCheckpointRow | null>;
  /** Oldest first. */
  listCheckpoints(chain: ChainName): Promise<ChainCheckpointRow[]>;
  insertCheckpoint(row: Omit<ChainCheckpointRow, 'id'>): Promise<ChainCheckpointRow>;
  /** Deletes up to `limit` of the chain's oldest rows with id ≤ `throughId`; the database refuses rows no checkpoint covers. */
  deleteChainRows(chain: ChainName, throughId: number, limit: number): Promise<number>;
  /** Reports received before `before`, in (receivedAt, reportId) order after the cursor `after`. */
  listReportsReceivedBefore(before: string, after: [string, string] | null, limit: number): Promise<ReportRef[]>;
  /**
   * For up to `hostLimit` hosts after `hostsAfter` (by id): their reports beyond the `max` newest (by seq).
   * `lastHost`: the cursor for the next call, null when no host is left.
   */
  listReportsBeyondCount(
    hostsAfter: string | null,
    hostLimit: number,
    max: number,
  ): Promise<{ reports: ReportRef[]; lastHost: string | null }>;
  /**
   * Of `candidates`, the report ids still needed: each host's newest report, and a report that tainted
   * a host that is not yet replaced (its evidence, while a replacement is pending or the host waits).
   */
  neededReports(candidates: readonly ReportRef[]): Promise<Set<string>>;
  deleteReports(ids: readonly string[]): Promise<number>;
  /**
   * Deletes the current deviations of up to `hostLimit` hosts replaced before `before` (their findings
   * were resolved by the replacement), walking (stateSince, id) after `after`; returns the cursor.
   */
  pruneResolvedDeviations(
    before: string,
    after: [string, string] | null,
    hostLimit: number,
  ): Promise<{ deleted: number; hosts: number; last: [string, string] | null }>;
  /** The lowest of these event cursors (a missing one counts as 0); null for no names. */
  minEventCursor(names: readonly string[]): Promise<number | null>;
}

const CHAIN_TABLES: Record<ChainName, 'audit' | 'events'> = { audit: 'audit', events: 'events' };

function checkpointFromRow(r: Record<string, unknown>): ChainCheckpointRow {
  return {
    id: Number(r.id),
    chain: r.chain as ChainName,
    firstId: Number(r.first_id),
    throughId: Number(r.through_id),
    fromHash: String(r.from_hash),
    throughHash: String(r.through_hash),
    rows: Number(r.rows),
    totalRows: Number(r.total_rows),
    cutoff: String(r.cutoff),
    at: String(r.at),
    prevHash: String(r.prev_hash),
    hash: String(r.hash),
    keyId: (r.key_id as string | null) ?? null,
    signature: (r.signature as string | null) ?? null,
  };
}

function refFromRow(r: { report_id: string; host_id: string; seq: unknown; received_at: string }): ReportRef {
  return { reportId: r.report_id, hostId: r.host_id, seq: Number(r.seq), receivedAt: r.received_at };
}

export class KyselyRetentionStore implements RetentionStoreTx {
  private readonly db: Kysely<any>;
  constructor(
    db: Kysely<any>,
    private readonly dialect: Dialect,
  ) {
    this.db = db;
  }

  async tryLock(name: string): Promise<boolean> {
    if (this.dialect !== 'postgres') return true;
    const r = await sql<{
      ok: boolean;
    }>`select pg_try_advisory_xact_lock(hashtext(current_schema() || ${`.retention.${name}`})) as ok`.execute(this.db);
    return r.rows[0]?.ok === true;
  }

  async latestCheckpoint(chain: ChainName): Promise<ChainCheckpointRow | null> {
    const r = await this.db
      .selectFrom('chain_checkpoints')
      .selectAll()
      .where('chain', '=', chain)
      .orderBy('through_id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return r ? checkpointFromRow(r) : null;
  }

  async listCheckpoints(chain: ChainName): Promise<ChainCheckpointRow[]> {
    const rows = await this.db
      .selectFrom('chain_checkpoints')
      .selectAll()
      .where('chain', '=', chain)
      .orderBy('through_id')
      .execute();
    return rows.map(checkpointFromRow);
  }

  async insertCheckpoint(row: Omit<ChainCheckpointRow, 'id'>): Promise<ChainCheckpointRow> {
    const r = await this.db
      .insertInto('chain_checkpoints')
      .values({
        chain: row.chain,
        first_id: row.firstId,
        through_id: row.throughId,
        from_hash: row.fromHash,
        through_hash: row.throughHash,
        rows: row.rows,
        total_rows: row.totalRows,
        cutoff: row.cutoff,
        at: row.at,
        prev_hash: row.prevHash,
        hash: row.hash,
        key_id: row.keyId,
        signature: row.signature,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return checkpointFromRow(r);
  }

  async deleteChainRows(chain: ChainName, throughId: number, limit: number): Promise<number> {
    const table = CHAIN_TABLES[chain];
    const r = await this.db
      .deleteFrom(table)
      .where('id', 'in', (eb: any) =>
        eb.selectFrom(table).select('id').where('id', '<=', throughId).orderBy('id').limit(Math.floor(limit)),
      )
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async listReportsReceivedBefore(before: string, after: [string, string] | null, limit: number): Promise<ReportRef[]> {
    let q = this.db
      .selectFrom('reports')
      .select(['report_id', 'host_id', 'seq', 'received_at'])
      .where('received_at', '<', before);
    if (after) q = q.where(sql<boolean>`(received_at, report_id) > (${after[0]}, ${after[1]})`);
    const rows = await q.orderBy('received_at').orderBy('report_id').limit(Math.floor(limit)).execute();
    return rows.map(refFromRow);
  }

  async listReportsBeyondCount(
    hostsAfter: string | null,
    hostLimit: number,
    max: number,
  ): Promise<{ reports: ReportRef[]; lastHost: string | null }> {
    let hq = this.db.selectFrom('hosts').select('id');
    if (hostsAfter !== null) hq = hq.where('id', '>', hostsAfter);
    const hosts = (await hq.orderBy('id').limit(Math.floor(hostLimit)).execute()).map((h) => h.id as string);
    if (hosts.length === 0) return { reports: [], lastHost: null };
    const rows = await sql<{ report_id: string; host_id: string; seq: unknown; received_at: string }>`
      select report_id, host_id, seq, received_at from (
        select report_id, host_id, seq, received_at,
          row_number() over (partition by host_id order by seq desc) as rn
        from reports where host_id in (${sql.join(hosts)})
      ) ranked where rn > ${Math.floor(max)}`.execute(this.db);
    return {
      reports: rows.rows.map(refFromRow),
      lastHost: hosts.length < hostLimit ? null : hosts[hosts.length - 1]!,
    };
  }

  async neededReports(candidates: readonly ReportRef[]): Promise<Set<string>> {
    const needed = new Set<string>();
    if (candidates.length === 0) return needed;
    const hosts = [...new Set(candidates.map((c) => c.hostId))];
    const newest = new Map<string, number>();
    for (const r of await this.db
      .selectFrom('reports')
      .select(['host_id', sql<number>`max(seq)`.as('seq')])
      .where('host_id', 'in', hosts)
      .groupBy('host_id')
      .execute())
      newest.set(r.host_id as string, Number(r.seq));
    for (const c of candidates) if (newest.get(c.hostId) === c.seq) needed.add(c.reportId);
    // By host first: transitions are indexed by (host_id, id), not by report.
    const evidence = await this.db
      .selectFrom('transitions as t')
      .innerJoin('hosts as h', 'h.id', 't.host_id')
      .select('t.report_id')
      .where('t.host_id', 'in', hosts)
      .where('t.to_state', '=', 'tainted')
      .where(
        't.report_id',
        'in',
        candidates.map((c) => c.reportId),
      )
      .where('h.state', '<>', 'replaced')
      .execute();
    for (const e of evidence) if (e.report_id) needed.add(e.report_id as string);
    return needed;
  }

  async deleteReports(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const r = await this.db
      .deleteFrom('reports')
      .where('report_id', 'in', [...ids])
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async pruneResolvedDeviations(
    before: string,
    after: [string, string] | null,
    hostLimit: number,
  ): Promise<{ deleted: number; hosts: number; last: [string, string] | null }> {
    let q = this.db
      .selectFrom('hosts')
      .select(['id', 'state_since'])
      .where('state', '=', 'replaced')
      .where('state_since', '<', before);
    if (after) q = q.where(sql<boolean>`(state_since, id) > (${after[0]}, ${after[1]})`);
    const hosts = await q.orderBy('state_since').orderBy('id').limit(Math.floor(hostLimit)).execute();
    if (hosts.length === 0) return { deleted: 0, hosts: 0, last: null };
    const r = await this.db
      .deleteFrom('host_deviations')
      .where(
        'host_id',
        'in',
        hosts.map((h) => h.id as string),
      )
      .executeTakeFirst();
    const tail = hosts[hosts.length - 1]!;
    return {
      deleted: Number(r.numDeletedRows),
      hosts: hosts.length,
      last: hosts.length < hostLimit ? null : [tail.state_since as string, tail.id as string],
    };
  }

  async minEventCursor(names: readonly string[]): Promise<number | null> {
    if (names.length === 0) return null;
    const rows = await this.db
      .selectFrom('event_cursors')
      .select(['name', 'last_id'])
      .where('name', 'in', [...names])
      .execute();
    if (rows.length < new Set(names).size) return 0;
    return Math.min(...rows.map((r) => Number(r.last_id)));
  }
}
