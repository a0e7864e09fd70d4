/**
 * @module Retention on a real store (run on SQLite and PostgreSQL): reports by age and per-host count
 * without losing a host's newest report or a tainted host's evidence, resolved findings of replaced
 * hosts, and the audit and event chains pruned under checkpoints so that verification still proves
 * the kept rows, fails on an altered kept row (naming it) and on an altered or forged checkpoint.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { pruneOnce, type RetentionOptions, type RetentionPolicy } from '../../controller/retention.js';
import { sealCheckpoint } from '../../controller/chain-checkpoint.js';
import type { Kysely } from 'kysely';
import { auditContent, chainHash, GENESIS } from '../../controller/store/chain.js';
import { createMigrator, type Dialect } from '../../controller/store/migrations.js';
import type { Store } from '../../controller/store/types.js';
import { verifyChain } from '../../controller/verify-history.js';
import { generateKeyPair } from '../../shared/sign.js';
import { DAY, Harness, silentLog } from './harness.js';

/** Runs SQL as the database owner, past the append-only triggers. */
export type Backdoor = { exec(sqlText: string): Promise<void>; close(): Promise<void> };
export type OpenRetentionStore = () => Promise<{ store: Store; backdoor: Backdoor; another(): Promise<Store> }>;

const q = (s: string) => `'${s.replaceAll("'", "''")}'`;

const KEEP_ALL: RetentionPolicy = {
  reports: { maxAgeMs: null, maxPerHost: null },
  events: { maxAgeMs: null },
  audit: { maxAgeMs: null },
  resolvedFindings: { maxAgeMs: null },
};

export function runRetentionSuite(label: string, open: OpenRetentionStore): void {
  describe(`retention (${label})`, () => {
    let h: Harness;
    let backdoor: Backdoor;
    const extra: Store[] = [];
    afterEach(async () => {
      for (const s of extra.splice(0)) await s.close();
      await h?.close();
      await backdoor?.close();
    });

    async function start(): Promise<{ another(): Promise<Store> }> {
      const o = await open();
      backdoor = o.backdoor;
      h = await Harness.start(o.store);
      return {
        async another() {
          const s = await o.another();
          extra.push(s);
          return s;
        },
      };
    }

    const options = (policy: Partial<RetentionPolicy>, over: Partial<RetentionOptions> = {}): RetentionOptions => ({
      store: h.store,
      log: silentLog,
      clock: h.clock.now,
      policy: { ...KEEP_ALL, ...policy },
      eventCursors: [],
      batch: 3,
      ...over,
    });
    const reportIds = async (host: string) =>
      (await h.store.listReports(host, { limit: 1000 })).map((r) => r.reportId).sort();

    it('prunes reports by age and per host, never a host’s newest report nor the report that tainted a host not yet replaced', async () => {
      await start();
      const web1 = await h.enroll('web-1');
      const web2 = await h.enroll('web-2');
      const web3 = await h.enroll('web-3');
      const old1 = [];
      for (let i = 0; i < 4; i++) {
        const r = web1.report();
        await web1.send(r);
        old1.push(r.reportId);
      }
      await web2.scan();
      const taint = web2.upgrade('openssl', '3.0.13-1').report();
      await web2.send(taint);
      await web2.scan();
      const only3 = web3.report();
      await web3.send(only3);
      expect((await web2.row()).state).toBe('tainted');
      h.clock.advance(40 * DAY);
      const fresh = [];
      for (let i = 0; i < 5; i++) {
        const r = web1.report();
        await web1.send(r);
        fresh.push(r.reportId);
      }
      const fresh2 = web2.report();
      await web2.send(fresh2);

      const pruned: number[] = [];
      const r = await pruneOnce(
        options(
          { reports: { maxAgeMs: 30 * DAY, maxPerHost: 3 } },
          { onPruned: (kind, n) => kind === 'reports' && pruned.push(n) },
        ),
      );
      // web-1: the 4 old by age, then 2 of the 5 fresh by count; web-2: its clean scan and the one after
      // the taint; web-3: nothing (its only report is its newest).
      expect(r.reports).toBe(4 + 2 + 2);
      expect(pruned.reduce((a, b) => a + b, 0)).toBe(8);
      expect(await reportIds('web-1')).toEqual(fresh.slice(2).sort());
      expect(await reportIds('web-2')).toEqual([taint.reportId, fresh2.reportId].sort());
      expect(await reportIds('web-3')).toEqual([only3.reportId]);
      expect(await pruneOnce(options({ reports: { maxAgeMs: 30 * DAY, maxPerHost: 3 } }))).toMatchObject({
        reports: 0,
      });

      // Once the host is replaced its evidence has done its job.
      await h.store.updateHost('web-2', { state: 'replaced', stateSince: h.clock.iso() });
      expect((await pruneOnce(options({ reports: { maxAgeMs: 30 * DAY, maxPerHost: 3 } }))).reports).toBe(1);
      expect(await reportIds('web-2')).toEqual([fresh2.reportId]);
    });

    it('prunes the deviations of hosts replaced long enough ago, keeping those of hosts still tainted', async () => {
      await start();
      const web1 = await h.enroll('web-1');
      const web2 = await h.enroll('web-2');
      await web1.upgrade('openssl', '3.0.13-1').scan();
      await web2.upgrade('openssl', '3.0.13-1').scan();
      await h.store.updateHost('web-1', { state: 'replaced', stateSince: h.clock.iso() });
      h.clock.advance(10 * DAY);
      expect((await pruneOnce(options({ resolvedFindings: { maxAgeMs: 90 * DAY } }))).findings).toBe(0);
      h.clock.advance(81 * DAY);
      expect((await pruneOnce(options({ resolvedFindings: { maxAgeMs: 90 * DAY } }))).findings).toBe(1);
      expect(await h.store.listHostDeviations('web-1')).toEqual([]);
      expect(await h.store.listHostDeviations('web-2')).toHaveLength(1);
      expect((await h.store.listFindings({ limit: 10 }))[0]?.hosts).toBe(1);
    });

    /** A history with rows on both chains, half of them older than the cut-off. */
    async function history() {
      const web1 = await h.enroll('web-1');
      await web1.upgrade('openssl', '3.0.13-1').scan();
      await web1.upgrade('curl', '7.88.1-10+deb12u6').scan();
      h.clock.advance(100 * DAY);
      const web2 = await h.enroll('web-2');
      await web2.upgrade('openssl', '3.0.13-1').scan();
      await h.req('POST', '/api/v1/tokens', { token: h.tokens.admin, body: { name: 'ci', role: 'viewer' } });
    }
    const policy90 = { audit: { maxAgeMs: 90 * DAY }, events: { maxAgeMs: 90 * DAY } };

    it('prunes the oldest audit and event rows under a checkpoint; verification proves the kept rows and reports what was pruned', async () => {
      await start();
      await history();
      const key = generateKeyPair();
      const before = await h.store.listAudit({ limit: 1000 });
      const old = before.filter((a) => a.at < new Date(h.clock.now().getTime() - 90 * DAY).toISOString());
      expect(old.length).toBeGreaterThan(3);
      const r = await pruneOnce(options(policy90, { signingKey: createPrivateKey(key.privateKeyPem) }));
      expect(r.audit).toBe(old.length);
      expect(r.events).toBeGreaterThan(0);
      expect(r.checkpoints.map((c) => c.chain).sort()).toEqual(['audit', 'events']);

      const kept = await h.store.listAudit({ limit: 1000 });
      expect(kept[0]!.id).toBe(old[old.length - 1]!.id + 1);
      expect(kept.map((a) => a.action)).toContain('retention.prune');
      const pub = createPublicKey(key.publicKeyPem);
      for (const chain of ['audit', 'events'] as const) {
        const v = await verifyChain(h.store, chain, undefined, [], { checkpointKey: pub });
        expect(v, chain).toMatchObject({ ok: true, pruned: { firstId: 1, signature: 'valid' } });
        expect(v.rows).toBe(v.kept! + v.pruned!.rows);
      }
      const audit = await verifyChain(h.store, 'audit');
      expect(audit.pruned).toMatchObject({ rows: old.length, throughId: old[old.length - 1]!.id, checkpoints: 1 });
      expect(audit.rows).toBe(before.length + 2); // a retention.prune row per chain was appended after

      // A second pass has nothing older left to prune (the newest row of a chain always stays).
      expect(await pruneOnce(options(policy90))).toMatchObject({ audit: 0, events: 0, checkpoints: [] });
    });

    it('refuses, in the database, to delete chain rows that no checkpoint covers', async () => {
      await start();
      await history();
      await expect(h.store.retention.deleteChainRows('audit', 3, 10)).rejects.toThrow(/retention checkpoint/);
      await expect(h.store.retention.deleteChainRows('events', 3, 10)).rejects.toThrow(/retention checkpoint/);
      expect((await h.store.listAudit({ limit: 1 }))[0]!.id).toBe(1);
    });

    it('fails verification naming the row when a kept row is altered after pruning', async () => {
      await start();
      await history();
      await pruneOnce(options(policy90));
      const kept = await h.store.listAudit({ limit: 1000 });
      const victim = kept[1]!;
      await backdoor.exec(`update audit set actor = 'mallory' where id = ${victim.id}`);
      const v = await verifyChain(h.store, 'audit');
      expect(v).toMatchObject({ ok: false, broken: { id: victim.id, problem: 'hash' } });
    });

    it('fails verification when the first kept row is removed after the checkpoint', async () => {
      await start();
      await history();
      await pruneOnce(options(policy90));
      const first = (await h.store.listAudit({ limit: 1 }))[0]!;
      await backdoor.exec(`delete from audit where id = ${first.id}`);
      expect(await verifyChain(h.store, 'audit')).toMatchObject({
        ok: false,
        broken: { id: first.id + 1, problem: 'prev-hash' },
      });
    });

    it('fails verification when a checkpoint is altered, and with the checkpoint key when one is forged', async () => {
      await start();
      await history();
      const key = generateKeyPair();
      const pub = createPublicKey(key.publicKeyPem);
      await pruneOnce(options(policy90, { signingKey: createPrivateKey(key.privateKeyPem) }));
      const [cp] = await h.store.retention.listCheckpoints('audit');
      // Claims fewer rows were removed than were.
      await backdoor.exec(
        `update chain_checkpoints set rows = rows - 1, total_rows = total_rows - 1 where id = ${cp!.id}`,
      );
      const altered = await verifyChain(h.store, 'audit');
      expect(altered).toMatchObject({ ok: false, checkpointProblem: { checkpointId: cp!.id } });
      expect(altered.checkpointProblem!.problem).toMatch(/does not match its hash/);

      // Forged: rows cut from the kept part and a new checkpoint written, consistent but not signed by the key.
      await backdoor.exec(
        `update chain_checkpoints set rows = rows + 1, total_rows = total_rows + 1 where id = ${cp!.id}`,
      );
      expect((await verifyChain(h.store, 'audit', undefined, [], { checkpointKey: pub })).ok).toBe(true);
      const kept = await h.store.listAudit({ limit: 3 });
      const forged = sealCheckpoint(
        {
          chain: 'audit',
          firstId: kept[0]!.id,
          throughId: kept[1]!.id,
          fromHash: cp!.throughHash,
          throughHash: kept[1]!.hash,
          rows: 2,
          totalRows: cp!.totalRows + 2,
          cutoff: h.clock.iso(),
          at: h.clock.iso(),
          prevHash: cp!.hash,
        },
        createPrivateKey(generateKeyPair().privateKeyPem),
      );
      await backdoor.exec(
        `insert into chain_checkpoints (chain, first_id, through_id, from_hash, through_hash, rows, total_rows, cutoff, at, prev_hash, hash, key_id, signature)
         values ('audit', ${forged.firstId}, ${forged.throughId}, ${q(forged.fromHash)}, ${q(forged.throughHash)}, ${forged.rows}, ${forged.totalRows}, ${q(forged.cutoff)}, ${q(forged.at)}, ${q(forged.prevHash)}, ${q(forged.hash)}, ${q(forged.keyId!)}, ${q(forged.signature!)});
         delete from audit where id <= ${forged.throughId}`,
      );
      // Without the key the forgery is self-consistent; with it, it is not the controller's.
      expect((await verifyChain(h.store, 'audit')).ok).toBe(true);
      const checked = await verifyChain(h.store, 'audit', undefined, [], { checkpointKey: pub });
      expect(checked).toMatchObject({
        ok: false,
        checkpointProblem: { problem: expect.stringMatching(/signed by key/) },
      });
      expect(checked.checkpointProblem!.checkpointId).toBeGreaterThan(cp!.id);
    });

    it('keeps events a sink has not forwarded yet', async () => {
      await start();
      await history();
      const events = await h.store.listEvents({ limit: 1000 });
      await h.store.setEventCursor('siem-webhook', events[1]!.id, h.clock.iso());
      const r = await pruneOnce(options(policy90, { eventCursors: ['siem-webhook', 'syslog'] }));
      // syslog has no cursor yet: it has sent nothing, so nothing is pruned.
      expect(r.events).toBe(0);
      await h.store.setEventCursor('syslog', events[5]!.id, h.clock.iso());
      expect((await pruneOnce(options(policy90, { eventCursors: ['siem-webhook', 'syslog'] }))).events).toBe(2);
      expect((await h.store.listEvents({ limit: 1 }))[0]!.id).toBe(events[2]!.id);
      expect((await verifyChain(h.store, 'events')).ok).toBe(true);
    });

    it('two controllers pruning at once remove each row once, under checkpoints that do not overlap', async () => {
      const o = await start();
      await history();
      for (let i = 0; i < 30; i++)
        await h.store.appendAudit({ at: h.clock.iso(), actor: 'test', action: 'x', target: null, detail: { i } });
      h.clock.advance(100 * DAY);
      await h.store.appendAudit({ at: h.clock.iso(), actor: 'test', action: 'head', target: null, detail: {} });
      const total = (await h.store.listAudit({ limit: 1000 })).length;
      const second = await o.another();
      const [a, b] = await Promise.all([
        pruneOnce(options(policy90, { maxPerCheckpoint: 7 })),
        pruneOnce(options(policy90, { store: second, maxPerCheckpoint: 7 })),
      ]);
      const cps = await h.store.retention.listCheckpoints('audit');
      const eventCps = await h.store.retention.listCheckpoints('events');
      expect(a.checkpoints.length + b.checkpoints.length).toBe(cps.length + eventCps.length);
      expect(cps.length).toBeGreaterThan(1);
      const v = await verifyChain(h.store, 'audit');
      expect(v.ok).toBe(true);
      // Every row before the head was pruned exactly once; each checkpoint's retention.prune row came after.
      expect(v.pruned!.rows).toBe(total - 1);
      expect(v.rows).toBe(total + cps.length + eventCps.length);
      expect((await verifyChain(h.store, 'events')).ok).toBe(true);
      expect(GENESIS).toBe(cps[0]!.fromHash);
    });
  });
}

/**
 * Migration 0011 on a database written at 0010: the audit rows already there are pruned under a
 * checkpoint and verify, and the old blanket delete guard is now the checkpoint guard.
 */
export function runRetentionMigrationCase(
  label: string,
  at0010: () => Promise<{ db: Kysely<any>; dialect: Dialect; pgSchema?: string; open(): Promise<Store> }>,
): void {
  it(`migration 0011 upgrades a 0010 database with history (${label})`, async () => {
    const { db, dialect, pgSchema, open } = await at0010();
    const r = await createMigrator(db, dialect, pgSchema).migrateTo('0010_host_lifecycle');
    expect(r.error).toBeUndefined();
    let prev = GENESIS;
    const t0 = Date.parse('2025-01-01T00:00:00.000Z');
    for (let i = 0; i < 12; i++) {
      const row = {
        at: new Date(t0 + i * DAY).toISOString(),
        actor: 'cli:root',
        action: 'x',
        target: null,
        detail: { i },
      };
      const hash = chainHash(prev, auditContent(row));
      await db
        .insertInto('audit')
        .values({ ...row, detail: JSON.stringify(row.detail), prev_hash: prev, hash })
        .execute();
      prev = hash;
    }
    await db.destroy();
    const store = await open();
    try {
      await expect(store.retention.deleteChainRows('audit', 1, 1)).rejects.toThrow(/retention checkpoint/);
      const res = await pruneOnce({
        store,
        log: silentLog,
        clock: () => new Date(t0 + 100 * DAY),
        policy: { ...KEEP_ALL, audit: { maxAgeMs: 95 * DAY } },
        eventCursors: [],
        batch: 5,
      });
      expect(res.audit).toBe(5); // days 0..4 are older than the cut-off, day 5 (100 − 95); days 5..11 stay
      const v = await verifyChain(store, 'audit');
      // 7 old rows kept and the retention.prune row the pass appended.
      expect(v).toMatchObject({ ok: true, kept: 8, rows: 13, pruned: { firstId: 1, throughId: 5, rows: 5 } });
    } finally {
      await store.close();
    }
  });
}
