/**
 * @module Group commit for SQLite: transactions that arrive together run one after another inside one
 * SQLite transaction, each in its own savepoint, and are committed together; each caller's promise
 * settles only after that commit, so an acknowledged report is in the WAL before its reply is sent.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { type ControlledTransaction, type Kysely, sql } from 'kysely';
import { type DB, KyselyStore, KyselyStoreTx } from './kysely-store.js';
import type { Checkpointer } from './sqlite-checkpointer.js';
import type { StoreTx } from './types.js';

export interface GroupCommitOptions {
  /** Transactions in one commit at most: bounds how long the first of them waits for its reply. */
  maxBatch: number;
  /** Once a batch has run this long, it commits after the transaction in progress. */
  maxBatchMs: number;
}

export const GROUP_COMMIT_DEFAULTS: GroupCommitOptions = { maxBatch: 256, maxBatchMs: 20 };

interface Job {
  fn: (tx: StoreTx) => Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** Counters for tests and the benchmark: how many commits carried how many transactions. */
export interface GroupCommitStats {
  commits: number;
  transactions: number;
  largestBatch: number;
}

/**
 * The single writer. A job's effects are separated from its neighbours' by a savepoint: a job that
 * throws is rolled back to it and rejected alone; the others still commit. Only a failing commit (or a
 * savepoint the database itself discarded) fails the whole batch, and then nothing of it was
 * acknowledged: every caller gets the error.
 *
 * IMPORTANT: between jobs of one batch the writer does not yield to the event loop (the jobs' own
 * awaits are on the in-process SQLite driver, microtasks), so requests that arrive while a batch runs
 * form the next one; after each commit it yields once so their I/O is read.
 */
export class GroupCommitter {
  readonly stats: GroupCommitStats = { commits: 0, transactions: 0, largestBatch: 0 };
  readonly #queue: Job[] = [];
  #running = false;

  constructor(
    private readonly db: Kysely<DB>,
    private readonly txOver: (trx: Kysely<DB>) => StoreTx,
    private readonly opts: GroupCommitOptions = GROUP_COMMIT_DEFAULTS,
  ) {}

  run<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#running) {
        this.#running = true;
        void this.#drain();
      }
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        await this.#batch();
        // Lets the sockets be read, so the requests that came in meanwhile join the next batch.
        if (this.#queue.length > 0) await yieldToLoop();
      }
    } finally {
      this.#running = false;
    }
  }

  async #batch(): Promise<void> {
    let trx: ControlledTransaction<DB>;
    try {
      trx = await this.db.startTransaction().execute();
    } catch (err) {
      // No transaction at all (e.g. another process held the write lock past busy_timeout): the jobs
      // waiting now fail; nothing was written for them.
      for (const job of this.#queue.splice(0)) job.reject(err);
      return;
    }
    const started = performance.now();
    const done: { job: Job; value: unknown }[] = [];
    try {
      while (
        this.#queue.length > 0 &&
        done.length < this.opts.maxBatch &&
        performance.now() - started < this.opts.maxBatchMs
      ) {
        const job = this.#queue.shift()!;
        await sql`savepoint dw_job`.execute(trx);
        let value: unknown;
        try {
          value = await job.fn(this.txOver(trx));
        } catch (err) {
          // If the database already dropped the savepoint (it rolled the whole transaction back), this
          // throws and the batch fails below: no job of it is acknowledged.
          await sql`rollback to dw_job`.execute(trx);
          await sql`release dw_job`.execute(trx);
          job.reject(err);
          continue;
        }
        await sql`release dw_job`.execute(trx);
        done.push({ job, value });
      }
      await trx.commit().execute();
    } catch (err) {
      await trx
        .rollback()
        .execute()
        .catch(() => {});
      for (const d of done) d.job.reject(err);
      return;
    }
    this.stats.commits++;
    this.stats.transactions += done.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, done.length);
    for (const d of done) d.job.resolve(d.value);
  }
}

/** The SQLite store whose transactions are group-committed; everything else is KyselyStore's. */
export class GroupCommitSqliteStore extends KyselyStore {
  readonly committer: GroupCommitter;
  constructor(
    db: Kysely<DB>,
    private readonly checkpointer: Checkpointer | null = null,
    opts: GroupCommitOptions = GROUP_COMMIT_DEFAULTS,
  ) {
    super(db, 'sqlite');
    this.committer = new GroupCommitter(db, (trx) => new KyselyStoreTx(trx, 'sqlite'), opts);
  }
  override transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    return this.committer.run(fn);
  }
  override async close(): Promise<void> {
    await super.close();
    // Last to close, the checkpointer's connection copies what is left of the WAL into the database.
    await this.checkpointer?.stop();
  }
}
