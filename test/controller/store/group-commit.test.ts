/**
 * @module Group commit on SQLite: transactions that arrive together share one commit, each keeps its
 * own outcome (one that throws is rolled back alone), and a caller hears of success only once the
 * commit is visible to another connection; reports ingested together through the API are answered
 * one by one, a bad one refused without failing its neighbours.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { GroupCommitSqliteStore } from '../../../controller/store/group-commit.js';
import { openStore } from '../../../controller/store/index.js';
import { tempDir } from '../../helpers/tmp.js';
import { Harness } from '../harness.js';

const NOW = '2026-03-02T08:00:00.000Z';

function token(id: string) {
  return {
    id,
    hash: `hash-${id}`,
    name: id,
    role: 'viewer' as const,
    createdAt: NOW,
    createdBy: 'test',
    expiresAt: null,
    revokedAt: null,
    lastUsedAt: null,
    uses: 0,
    maxUses: null,
    groups: null,
    legacy: false,
  };
}

describe('SQLite group commit', () => {
  it('commits concurrent transactions together, rolls back only the one that throws, and answers after the commit', async () => {
    const file = join(tempDir('dw-gc-'), 'c.db');
    const store = await openStore(`sqlite:${file}`);
    expect(store).toBeInstanceOf(GroupCommitSqliteStore);
    const committer = (store as GroupCommitSqliteStore).committer;
    const other = new Database(file, { readonly: true });
    try {
      const before = { ...committer.stats };
      const visibleOnAnswer: boolean[] = [];
      const seen = (id: string) =>
        other.prepare('select count(*) as n from tokens where id = ?').get(id) as { n: number };
      const ok = (id: string) =>
        store
          .transaction(async (tx) => {
            await tx.insertToken(token(id));
            return id;
          })
          .then((v) => {
            visibleOnAnswer.push(seen(id).n === 1);
            return v;
          });
      const bad = store.transaction(async (tx) => {
        await tx.insertToken(token('bad'));
        throw new Error('this report does not add up');
      });
      const results = await Promise.allSettled([ok('t1'), ok('t2'), bad, ok('t3')]);

      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      expect((results[2] as PromiseRejectedResult).reason.message).toBe('this report does not add up');
      // Every success was already committed (seen from another connection) when its caller heard of it.
      expect(visibleOnAnswer).toEqual([true, true, true]);
      expect(seen('bad').n).toBe(0);
      expect((await store.listTokens()).map((t) => t.id).sort()).toEqual(['t1', 't2', 't3']);
      // The four arrived together: one commit carried the three that succeeded.
      expect(committer.stats.commits - before.commits).toBe(1);
      expect(committer.stats.transactions - before.transactions).toBe(3);
    } finally {
      other.close();
      await store.close();
    }
  });

  it('a unique-key conflict caught inside a transaction stays inside it, as on a transaction of its own', async () => {
    const store = await openStore(`sqlite:${join(tempDir('dw-gc-'), 'c.db')}`);
    try {
      await store.transaction((tx) => tx.insertToken(token('dup')));
      const [a, b] = await Promise.all([
        store.transaction(async (tx) => {
          await tx.insertToken(token('dup')).catch(() => {}); // refused, handled, and the transaction goes on
          await tx.insertToken(token('after-dup'));
          return 'a';
        }),
        store.transaction(async (tx) => {
          await tx.insertToken(token('neighbour'));
          return 'b';
        }),
      ]);
      expect([a, b]).toEqual(['a', 'b']);
      expect((await store.listTokens()).map((t) => t.id).sort()).toEqual(['after-dup', 'dup', 'neighbour']);
    } finally {
      await store.close();
    }
  });

  it('reports ingested in one batch are answered one by one: a replayed and a forged report are refused, the others stored', async () => {
    const store = await openStore(`sqlite:${join(tempDir('dw-gc-'), 'c.db')}`);
    const h = await Harness.start(store);
    try {
      const hosts = await Promise.all(['gc-1', 'gc-2', 'gc-3', 'gc-4'].map((id) => h.enroll(id)));
      for (const host of hosts) expect((await host.scan()).status).toBe(200);
      const committer = (store as GroupCommitSqliteStore).committer;
      const before = { ...committer.stats };
      hosts[1]!.upgrade('openssl', '3.0.99');
      const replayed = hosts[0]!.report({ seq: 1 }); // seq 1 was taken by the first scan
      const forged = hosts[3]!.report({ hostId: 'gc-1' }); // gc-4's credential speaking for gc-1
      const [r0, r1, r2, r3] = await Promise.all([
        hosts[0]!.send(replayed),
        hosts[1]!.scan(),
        hosts[2]!.send({ kind: 'heartbeat' }),
        hosts[3]!.send(forged),
      ]);
      expect([r0.status, r0.body.error]).toEqual([409, 'DW_ERR_REPLAY']);
      expect([r1.status, r1.body.status, r1.body.state]).toEqual([200, 'accepted', 'tainted']);
      expect([r2.status, r2.body.status]).toEqual([200, 'accepted']);
      expect([r3.status, r3.body.error]).toEqual([403, 'DW_ERR_FORBIDDEN']);
      expect(committer.stats.transactions - before.transactions).toBe(2);
      expect((await h.host('gc-2')).state).toBe('tainted');
      expect((await h.host('gc-3')).lastSeq).toBe(2);
      expect((await h.host('gc-1')).lastSeq).toBe(1);
      expect(await store.listReports('gc-1', { limit: 10 })).toHaveLength(1);
    } finally {
      await h.close();
    }
  });
});
