/** @module The Store contract suite: the same tests for every store (hono's `runTest({ newRouter })` pattern). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  HOST_STATES,
  StoreConflictError,
  type ExemptionRow,
  type HostDeviationRow,
  type HostRow,
  type HostState,
  type ReportRow,
  type Store,
  type TokenRow,
} from '../../../controller/store/types.js';

const T0 = Date.parse('2026-03-01T00:00:00.000Z');
/** A fixed point in time `minutes` after T0, in the store's ISO format. */
export const at = (minutes: number): string => new Date(T0 + minutes * 60_000).toISOString();

export function hostRow(
  id: string,
  over: Partial<HostRow & { credentialHash: string }> = {},
): HostRow & { credentialHash: string } {
  return {
    id,
    credentialHash: `cred-${id}`,
    hostname: `${id}.example.internal`,
    imageId: 'ami-1',
    group: 'web',
    state: 'pending',
    stateSince: at(0),
    enrolledAt: at(0),
    lastSeenAt: null,
    lastReportAt: null,
    lastScanAt: null,
    lastSeq: 0,
    deviationCount: 0,
    taintedAt: null,
    agentVersion: null,
    manifestDigest: null,
    inventory: null,
    ...over,
  };
}

function tokenRow(id: string, over: Partial<TokenRow & { hash: string }> = {}): TokenRow & { hash: string } {
  return {
    id,
    hash: `hash-${id}`,
    name: `token ${id}`,
    role: 'viewer',
    createdAt: at(0),
    createdBy: 'admin',
    expiresAt: null,
    revokedAt: null,
    lastUsedAt: null,
    uses: 0,
    maxUses: null,
    groups: null,
    legacy: false,
    ...over,
  };
}

function reportRow(id: string, hostId: string, seq: number, over: Partial<ReportRow> = {}): ReportRow {
  return {
    reportId: id,
    hostId,
    seq,
    kind: 'scan',
    scannedAt: at(seq),
    receivedAt: at(seq),
    digests: { packages: `sha256:${'a'.repeat(64)}` },
    deviationCount: 0,
    digestMismatch: [],
    body: { deviations: [] },
    ...over,
  };
}

function deviation(
  hostId: string,
  collector: string,
  key: string,
  over: Partial<HostDeviationRow> = {},
): HostDeviationRow {
  return {
    hostId,
    collector,
    key,
    change: 'modified',
    expected: { version: '1.0' },
    actual: { version: '1.1' },
    severity: 'high',
    action: 'taint',
    decidedBy: 'default:packages',
    firstSeenAt: at(10),
    lastSeenAt: at(10),
    ...over,
  };
}

function exemption(id: string, over: Partial<ExemptionRow> = {}): ExemptionRow {
  return {
    id,
    hostId: null,
    imageId: 'ami-1',
    collector: 'files',
    keyPattern: '/etc/motd',
    reason: 'maintenance banner',
    actor: 'alice',
    createdAt: at(0),
    expiresAt: at(60),
    revokedAt: null,
    revokedBy: null,
    ...over,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Registers the contract tests. `open` must return a new, empty, migrated store each time it is
 * called (tests close it).
 */
export function runStoreContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('migrations', () => {
      it('run again without effect', async () => {
        await store.insertHost(hostRow('h1'));
        await store.migrate();
        expect((await store.getHost('h1'))?.id).toBe('h1');
      });
    });

    describe('tokens', () => {
      it('finds by hash, lists, touches and revokes once', async () => {
        await store.insertToken(tokenRow('t2', { createdAt: at(2), role: 'admin', expiresAt: at(100) }));
        await store.insertToken(tokenRow('t1', { createdAt: at(1) }));
        const found = await store.findTokenByHash('hash-t2');
        expect(found).toEqual({
          id: 't2',
          name: 'token t2',
          role: 'admin',
          createdAt: at(2),
          createdBy: 'admin',
          expiresAt: at(100),
          revokedAt: null,
          lastUsedAt: null,
          uses: 0,
          maxUses: null,
          groups: null,
          legacy: false,
        });
        expect(found).not.toHaveProperty('hash');
        expect(await store.findTokenByHash('nope')).toBeNull();
        expect((await store.listTokens()).map((t) => t.id)).toEqual(['t1', 't2']);

        await store.touchToken('t1', at(5));
        expect((await store.findTokenByHash('hash-t1'))?.lastUsedAt).toBe(at(5));

        expect(await store.revokeToken('t1', at(6))).toBe(true);
        expect(await store.revokeToken('t1', at(7))).toBe(false);
        expect(await store.revokeToken('missing', at(7))).toBe(false);
        expect((await store.findTokenByHash('hash-t1'))?.revokedAt).toBe(at(6));
      });

      it('counts an enrollment token use only while it is unrevoked, unexpired and under its limit', async () => {
        await store.insertToken(
          tokenRow('e1', { role: 'agent', maxUses: 2, groups: ['web-*', 'db'], expiresAt: at(10) }),
        );
        expect(await store.useToken('e1', at(1))).toBe(true);
        expect(await store.useToken('e1', at(2))).toBe(true);
        expect(await store.useToken('e1', at(3))).toBe(false); // used up
        expect(await store.getToken('e1')).toMatchObject({
          uses: 2,
          maxUses: 2,
          groups: ['web-*', 'db'],
          lastUsedAt: at(2),
        });

        await store.insertToken(tokenRow('e2', { role: 'agent', maxUses: null, expiresAt: at(10) }));
        expect(await store.useToken('e2', at(9))).toBe(true);
        expect(await store.useToken('e2', at(10))).toBe(false); // expired at that instant
        await store.insertToken(tokenRow('e3', { role: 'agent', maxUses: null }));
        await store.revokeToken('e3', at(1));
        expect(await store.useToken('e3', at(2))).toBe(false);
        expect(await store.useToken('missing', at(2))).toBe(false);
      });

      it('lets exactly one of two concurrent transactions take the last use of a token', async () => {
        await store.insertToken(tokenRow('e1', { role: 'agent', maxUses: 1 }));
        const attempt = () => store.transaction(async (tx) => tx.useToken('e1', at(1)));
        const results = await Promise.all([attempt(), attempt(), attempt()]);
        expect(results.filter(Boolean)).toHaveLength(1);
        expect((await store.getToken('e1'))?.uses).toBe(1);
      });

      it('keeps dashboard sessions: ends one once, prunes the expired', async () => {
        await store.insertSession({ id: 's1', tokenId: 't1', createdAt: at(0), expiresAt: at(10), endedAt: null });
        await store.insertSession({ id: 's2', tokenId: 't1', createdAt: at(0), expiresAt: at(30), endedAt: null });
        await expect(
          store.insertSession({ id: 's1', tokenId: 't2', createdAt: at(0), expiresAt: at(10), endedAt: null }),
        ).rejects.toBeInstanceOf(StoreConflictError);
        expect(await store.endSession('s1', at(5))).toBe(true);
        expect(await store.endSession('s1', at(6))).toBe(false);
        expect(await store.endSession('missing', at(6))).toBe(false);
        expect(await store.getSession('s1')).toEqual({
          id: 's1',
          tokenId: 't1',
          createdAt: at(0),
          expiresAt: at(10),
          endedAt: at(5),
        });
        expect(await store.pruneSessions(at(20))).toBe(1);
        expect(await store.getSession('s1')).toBeNull();
        expect((await store.getSession('s2'))?.endedAt).toBeNull();
      });

      it('refuses a second token with the same hash or id', async () => {
        await store.insertToken(tokenRow('t1'));
        await expect(store.insertToken(tokenRow('t2', { hash: 'hash-t1' }))).rejects.toBeInstanceOf(StoreConflictError);
        await expect(store.insertToken(tokenRow('t1', { hash: 'other' }))).rejects.toBeInstanceOf(StoreConflictError);
        expect(await store.listTokens()).toHaveLength(1);
      });
    });

    describe('hosts', () => {
      it('inserts, gets and finds by credential', async () => {
        const row = hostRow('h1', {
          inventory: {
            hostId: 'h1',
            hostname: 'h1',
            os: 'Debian 12',
            kernel: '6.1.0',
            addresses: ['10.0.0.5', 'fe80::1'],
          },
        });
        await store.insertHost(row);
        const { credentialHash: _c, ...given } = row;
        // Without explicit ones, the pinned addresses are those of the inventory it enrolled with.
        const expected = {
          ...given,
          enrolledAddresses: ['10.0.0.5', 'fe80::1'],
          reportedHostname: null,
          reportedGroup: null,
          resetAt: null,
          retiredAt: null,
          scanRequestedAt: null,
          scanRequestSentAt: null,
          cloudIdentity: null,
          instanceId: null,
          reportedCloudIdentity: null,
        };
        expect(await store.getHost('h1')).toEqual(expected);
        expect(await store.findHostByCredentialHash('cred-h1')).toEqual(expected);
        expect(await store.getHost('h2')).toBeNull();
        expect(await store.findHostByCredentialHash('cred-h2')).toBeNull();
        expect(await store.lockHost('h1')).toEqual(expected);
        expect(await store.lockHost('h2')).toBeNull();
      });

      it('pins an AWS identity: the instance id is derived from it, found by it, and unique among hosts', async () => {
        const identity = {
          kind: 'aws' as const,
          instanceId: 'i-0123456789abcdef0',
          accountId: '123456789012',
          region: 'eu-west-1',
          availabilityZone: 'eu-west-1a',
          imageId: 'ami-0abcdef1234567890',
        };
        await store.insertHost({ ...hostRow('h1'), cloudIdentity: identity });
        expect(await store.getHost('h1')).toMatchObject({
          cloudIdentity: identity,
          instanceId: 'i-0123456789abcdef0',
          reportedCloudIdentity: null,
        });
        expect((await store.findHostByInstanceId('i-0123456789abcdef0'))?.id).toBe('h1');
        expect(await store.findHostByInstanceId('i-0fedcba9876543210')).toBeNull();
        await expect(store.insertHost({ ...hostRow('h2'), cloudIdentity: identity })).rejects.toBeInstanceOf(
          StoreConflictError,
        );
        // Hosts without an instance id never collide on it.
        await store.insertHost({ ...hostRow('h3'), cloudIdentity: { kind: 'host', machineId: 'h3' } });
        await store.insertHost(hostRow('h4'));
        expect((await store.getHost('h3'))?.instanceId).toBeNull();
      });

      it('keeps the pinned identity apart from what the host claims (migration 0005)', async () => {
        await store.insertHost(
          hostRow('h1', { hostname: 'ip-10-0-0-5.ec2.internal', group: 'web', enrolledAddresses: ['10.0.0.5'] }),
        );
        await store.updateHost('h1', {
          reportedHostname: 'ip-10-0-0-6.ec2.internal',
          reportedGroup: 'db',
          inventory: {
            hostId: 'h1',
            hostname: 'ip-10-0-0-6.ec2.internal',
            os: null,
            kernel: null,
            addresses: ['10.0.0.6'],
          },
        });
        expect(await store.getHost('h1')).toMatchObject({
          hostname: 'ip-10-0-0-5.ec2.internal',
          group: 'web',
          enrolledAddresses: ['10.0.0.5'],
          reportedHostname: 'ip-10-0-0-6.ec2.internal',
          reportedGroup: 'db',
        });
        await store.updateHost('h1', { reportedHostname: null });
        expect((await store.getHost('h1'))?.reportedHostname).toBeNull();
      });

      it("keeps an operator's reset, retirement and scan request, and leaves a retired host out of lists and counts (migration 0010)", async () => {
        await store.insertHost(hostRow('h1'));
        await store.insertHost(hostRow('h2'));
        await store.updateHost('h1', {
          resetAt: '2026-03-02T08:00:00.000Z',
          scanRequestedAt: '2026-03-02T08:01:00.000Z',
          enrolledAddresses: ['10.0.0.9'],
        });
        expect(await store.getHost('h1')).toMatchObject({
          resetAt: '2026-03-02T08:00:00.000Z',
          retiredAt: null,
          scanRequestedAt: '2026-03-02T08:01:00.000Z',
          enrolledAddresses: ['10.0.0.9'],
        });
        await store.updateHost('h2', { retiredAt: '2026-03-02T08:02:00.000Z' });
        expect((await store.listHosts({ limit: 10 })).hosts.map((h) => h.id)).toEqual(['h1']);
        expect(await store.countHosts({})).toBe(1);
        expect(Object.values(await store.countHostsByState()).reduce((a, b) => a + b, 0)).toBe(1);
        expect((await store.getHost('h2'))?.retiredAt).toBe('2026-03-02T08:02:00.000Z');
        await store.updateHost('h1', { resetAt: null, scanRequestedAt: null });
        expect(await store.getHost('h1')).toMatchObject({ resetAt: null, scanRequestedAt: null });
      });

      it('keeps credentials unique, on insert and on rotation', async () => {
        await store.insertHost(hostRow('h1'));
        await store.insertHost(hostRow('h2'));
        await expect(store.insertHost(hostRow('h3', { credentialHash: 'cred-h1' }))).rejects.toBeInstanceOf(
          StoreConflictError,
        );
        await expect(store.insertHost(hostRow('h1', { credentialHash: 'fresh' }))).rejects.toBeInstanceOf(
          StoreConflictError,
        );
        await expect(store.setHostCredential('h2', 'cred-h1')).rejects.toBeInstanceOf(StoreConflictError);

        await store.setHostCredential('h2', 'rotated');
        expect((await store.findHostByCredentialHash('rotated'))?.id).toBe('h2');
        expect(await store.findHostByCredentialHash('cred-h2')).toBeNull();
        await expect(store.setHostCredential('missing', 'x')).rejects.toThrow(/no host/);
      });

      it('updates only the fields given', async () => {
        await store.insertHost(hostRow('h1', { agentVersion: '0.1.0' }));
        await store.updateHost('h1', {
          state: 'clean',
          stateSince: at(3),
          lastSeq: 7,
          lastSeenAt: at(3),
          agentVersion: undefined,
          taintedAt: null,
        });
        const h = await store.getHost('h1');
        expect(h).toMatchObject({
          state: 'clean',
          stateSince: at(3),
          lastSeq: 7,
          lastSeenAt: at(3),
          agentVersion: '0.1.0',
          hostname: 'h1.example.internal',
          enrolledAt: at(0),
        });

        await store.updateHost('h1', {
          agentVersion: null,
          group: null,
          inventory: { hostId: 'h1', hostname: null, os: null, kernel: null, addresses: [] },
        });
        expect(await store.getHost('h1')).toMatchObject({
          agentVersion: null,
          group: null,
          inventory: { hostId: 'h1', hostname: null, os: null, kernel: null, addresses: [] },
        });

        await store.updateHost('h1', {}); // nothing to do
        await expect(store.updateHost('missing', { lastSeq: 1 })).rejects.toThrow(/no host/);
        await expect(store.updateHost('h1', { id: 'h9' } as never)).rejects.toThrow(/cannot be patched/);
        await expect(store.updateHost('h1', { credentialHash: 'x' } as never)).rejects.toThrow(/cannot be patched/);
      });

      it('stores large seq values exactly', async () => {
        await store.insertHost(hostRow('h1'));
        // Beyond 32 bits: an agent may use a time-based sequence.
        await store.updateHost('h1', { lastSeq: 2 ** 40 + 3 });
        expect((await store.getHost('h1'))?.lastSeq).toBe(2 ** 40 + 3);
      });

      it('normalises times to one ISO format, so they compare as strings', async () => {
        await store.insertHost(
          hostRow('h1', { enrolledAt: '2026-03-01T00:00:00Z', stateSince: '2026-03-01T01:00:00+01:00' }),
        );
        const h = await store.getHost('h1');
        expect(h?.enrolledAt).toBe('2026-03-01T00:00:00.000Z');
        expect(h?.stateSince).toBe('2026-03-01T00:00:00.000Z');
        await expect(store.updateHost('h1', { lastSeenAt: 'yesterday-ish' })).rejects.toBeInstanceOf(TypeError);
      });

      it('pages through 1,500 hosts by id, with and without filters', async () => {
        const states: HostState[] = ['clean', 'drifted', 'tainted'];
        const all: (HostRow & { credentialHash: string })[] = [];
        // Ids in shuffled insertion order, with mixed case and punctuation, to check bytewise ordering.
        for (let i = 0; i < 1500; i++) {
          const n = (i * 7919) % 1500;
          all.push(
            hostRow(`${n % 2 ? 'H' : 'h'}-${String(n).padStart(5, '0')}`, {
              state: states[n % 3]!,
              imageId: `ami-${n % 4}`,
              group: n % 5 === 0 ? null : `g${n % 5}`,
            }),
          );
        }
        await store.transaction(async (tx) => {
          for (const h of all) await tx.insertHost(h);
        });
        const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

        async function pageAll(
          filter: { state?: HostState; imageId?: string; group?: string },
          limit: number,
        ): Promise<string[]> {
          const ids: string[] = [];
          let after: string | undefined;
          for (let pages = 0; pages < 2000; pages++) {
            const { hosts, nextAfter } = await store.listHosts({
              ...filter,
              limit,
              ...(after !== undefined ? { after } : {}),
            });
            expect(hosts.length).toBeLessThanOrEqual(limit);
            ids.push(...hosts.map((h) => h.id));
            if (nextAfter === null) return ids;
            expect(hosts).toHaveLength(limit);
            expect(nextAfter).toBe(hosts[hosts.length - 1]!.id);
            after = nextAfter;
          }
          throw new Error('pagination did not end');
        }

        expect(await pageAll({}, 100)).toEqual([...all].sort(byId).map((h) => h.id));
        expect(await pageAll({ state: 'drifted' }, 77)).toEqual(
          all
            .filter((h) => h.state === 'drifted')
            .sort(byId)
            .map((h) => h.id),
        );
        expect(await pageAll({ imageId: 'ami-2', group: 'g3' }, 9)).toEqual(
          all
            .filter((h) => h.imageId === 'ami-2' && h.group === 'g3')
            .sort(byId)
            .map((h) => h.id),
        );
        expect(await pageAll({ state: 'clean', imageId: 'ami-1', group: 'g1' }, 1000)).toEqual(
          all
            .filter((h) => h.state === 'clean' && h.imageId === 'ami-1' && h.group === 'g1')
            .sort(byId)
            .map((h) => h.id),
        );
        // An exact multiple of the page size ends with nextAfter null, not an empty extra page.
        const page = await store.listHosts({ limit: 1500 });
        expect(page.hosts).toHaveLength(1500);
        expect(page.nextAfter).toBeNull();
        expect(await store.listHosts({ state: 'replaced', limit: 10 })).toEqual({ hosts: [], nextAfter: null });
        expect((await store.listHosts({ limit: 0 })).hosts).toEqual([]);

        const counts = await store.countHostsByState();
        expect(Object.keys(counts).sort()).toEqual([...HOST_STATES].sort());
        expect(counts).toMatchObject({ clean: 500, drifted: 500, tainted: 500, pending: 0, silent: 0, replaced: 0 });
      });

      it('lists hosts not seen since a time, longest silent first', async () => {
        await store.insertHost(hostRow('a', { state: 'clean', lastSeenAt: at(5) }));
        await store.insertHost(hostRow('b', { state: 'drifted', lastSeenAt: at(2) }));
        await store.insertHost(hostRow('c', { state: 'clean', lastSeenAt: at(20) })); // seen recently
        await store.insertHost(hostRow('d', { state: 'tainted', lastSeenAt: at(1) })); // other state
        await store.insertHost(hostRow('e', { state: 'pending', lastSeenAt: null, enrolledAt: at(3) })); // never seen: counts from enrolment
        await store.insertHost(hostRow('f', { state: 'pending', lastSeenAt: null, enrolledAt: at(15) }));
        const ids = async (states: HostState[], limit = 10) =>
          (await store.listHostsSeenBefore(at(10), states, limit)).map((h) => h.id);
        expect(await ids(['clean', 'drifted', 'pending'])).toEqual(['b', 'e', 'a']);
        expect(await ids(['clean', 'drifted', 'pending'], 2)).toEqual(['b', 'e']);
        expect(await ids(['tainted'])).toEqual(['d']);
        expect(await ids([])).toEqual([]);
      });

      it('lists hosts whose last full scan is older than a time (never scanned: from enrolment), oldest first, and keeps lastScanAt', async () => {
        await store.insertHost(hostRow('a', { state: 'clean', lastSeenAt: at(30), lastScanAt: at(5) })); // heartbeats, old scan
        await store.insertHost(hostRow('b', { state: 'drifted', lastSeenAt: at(30), lastScanAt: at(2) }));
        await store.insertHost(hostRow('c', { state: 'clean', lastSeenAt: at(30), lastScanAt: at(20) })); // scanned recently
        await store.insertHost(hostRow('d', { state: 'tainted', lastScanAt: at(1) })); // other state
        await store.insertHost(hostRow('e', { state: 'pending', lastScanAt: null, enrolledAt: at(3) }));
        await store.insertHost(hostRow('f', { state: 'pending', lastScanAt: null, enrolledAt: at(15) }));
        const ids = async (states: HostState[], limit = 10) =>
          (await store.listHostsScannedBefore(at(10), states, limit)).map((h) => h.id);
        expect(await ids(['clean', 'drifted', 'pending'])).toEqual(['b', 'e', 'a']);
        expect(await ids(['clean', 'drifted', 'pending'], 1)).toEqual(['b']);
        expect(await ids(['tainted'])).toEqual(['d']);
        await store.updateHost('a', { lastScanAt: at(40) });
        expect(await store.getHost('a')).toMatchObject({ lastScanAt: at(40) });
        expect(await ids(['clean', 'drifted', 'pending'])).toEqual(['b', 'e']);
      });
    });

    describe('manifests', () => {
      it('puts, gets, lists without bodies and replaces on republish', async () => {
        const body = '{"image":{"id":"ami-1"},"name":"web – ünïcode"}';
        await store.putManifest({
          imageId: 'ami-2',
          digest: 'sha256:2',
          signedBy: null,
          name: null,
          version: null,
          body: '{}',
          publishedAt: at(2),
          publishedBy: 'ci',
        });
        await store.putManifest({
          imageId: 'ami-1',
          digest: 'sha256:1',
          signedBy: 'bake',
          name: 'web',
          version: '1',
          body,
          publishedAt: at(1),
          publishedBy: 'ci',
        });
        expect(await store.getManifest('ami-1')).toEqual({
          imageId: 'ami-1',
          digest: 'sha256:1',
          signedBy: 'bake',
          name: 'web',
          version: '1',
          body,
          publishedAt: at(1),
          publishedBy: 'ci',
        });
        expect(await store.getManifest('ami-3')).toBeNull();
        const list = await store.listManifests();
        expect(list.map((m) => m.imageId)).toEqual(['ami-1', 'ami-2']);
        expect(list[0]).not.toHaveProperty('body');

        await store.putManifest({
          imageId: 'ami-1',
          digest: 'sha256:1b',
          signedBy: 'bake2',
          name: 'web',
          version: '2',
          body: '{"v":2}',
          publishedAt: at(3),
          publishedBy: 'bob',
        });
        expect(await store.getManifest('ami-1')).toMatchObject({
          digest: 'sha256:1b',
          version: '2',
          body: '{"v":2}',
          publishedBy: 'bob',
        });
        expect(await store.listManifests()).toHaveLength(2);
      });
    });

    describe('reports', () => {
      it('round-trips JSON columns exactly', async () => {
        await store.insertHost(hostRow('h1'));
        const r = reportRow('r1', 'h1', 1, {
          kind: 'event',
          digests: { packages: 'sha256:aa', files: 'sha256:bb' },
          digestMismatch: ['files'],
          deviationCount: 1,
          body: {
            deviations: [
              {
                collector: 'files',
                key: '/etc/ssh/sshd_config',
                change: 'modified',
                expected: { sha256: 'x', mode: 420, nested: { a: [1, null, true] } },
                actual: { sha256: 'y', note: 'ünïcode ✓ "quoted" \\ back' },
                severity: 'critical',
              },
            ],
            collectors: [{ collector: 'files', ok: true, durationMs: 1.5, items: 10 }],
          },
        });
        await store.insertReport(r);
        expect(await store.getReport('r1')).toEqual(r);
        expect(await store.getReport('r2')).toBeNull();
      });

      it('refuses a second report with the same id, and reports of unknown hosts', async () => {
        await store.insertHost(hostRow('h1'));
        await store.insertReport(reportRow('r1', 'h1', 1));
        await expect(store.insertReport(reportRow('r1', 'h1', 2))).rejects.toBeInstanceOf(StoreConflictError);
        await expect(store.insertReport(reportRow('r9', 'ghost', 1))).rejects.toThrow();
        expect(await store.getReport('r9')).toBeNull();
      });

      it('lists a host’s reports newest seq first, paged by seq', async () => {
        await store.insertHost(hostRow('h1'));
        await store.insertHost(hostRow('h2'));
        for (const seq of [3, 1, 5, 2, 4]) await store.insertReport(reportRow(`r${seq}`, 'h1', seq));
        await store.insertReport(reportRow('other', 'h2', 9));
        expect((await store.listReports('h1', { limit: 10 })).map((r) => r.seq)).toEqual([5, 4, 3, 2, 1]);
        expect((await store.listReports('h1', { limit: 2 })).map((r) => r.seq)).toEqual([5, 4]);
        expect((await store.listReports('h1', { limit: 2, beforeSeq: 4 })).map((r) => r.seq)).toEqual([3, 2]);
        expect(await store.listReports('h3', { limit: 2 })).toEqual([]);
      });

      it('prunes only reports received before the cut-off, keeping transitions and audit', async () => {
        await store.insertHost(hostRow('h1'));
        await store.transaction(async (tx) => {
          // More than one prune batch (5,000) of old reports.
          for (let i = 0; i < 5_200; i++)
            await tx.insertReport(reportRow(`old-${i}`, 'h1', i + 1, { receivedAt: at(i % 50) }));
          for (let i = 0; i < 5; i++)
            await tx.insertReport(reportRow(`new-${i}`, 'h1', 10_000 + i, { receivedAt: at(100 + i) }));
        });
        await store.insertReport(reportRow('edge', 'h1', 20_000, { receivedAt: at(100) })); // exactly at the cut-off: kept
        await store.insertTransition({
          hostId: 'h1',
          from: 'pending',
          to: 'clean',
          cause: 'first report',
          actor: 'system',
          at: at(1),
          reportId: 'old-0',
        });
        await store.appendAudit({
          at: at(1),
          actor: 'system',
          action: 'report.accepted',
          target: 'h1',
          detail: { reportId: 'old-0' },
        });

        expect(await store.pruneReports(at(100))).toBe(5_200);
        expect(await store.getReport('old-0')).toBeNull();
        expect((await store.listReports('h1', { limit: 100 })).map((r) => r.reportId).sort()).toEqual([
          'edge',
          'new-0',
          'new-1',
          'new-2',
          'new-3',
          'new-4',
        ]);
        expect(await store.listTransitions('h1')).toHaveLength(1);
        expect((await store.listTransitions('h1'))[0]?.reportId).toBe('old-0');
        expect(await store.listAudit({ limit: 10 })).toHaveLength(1);
        expect(await store.pruneReports(at(100))).toBe(0);
      });
    });

    describe('current deviations', () => {
      it('replaces a host’s set wholesale, keeping firstSeenAt of deviations still present', async () => {
        await store.insertHost(hostRow('h1'));
        await store.insertHost(hostRow('h2'));
        await store.replaceHostDeviations('h1', [
          deviation('h1', 'packages', 'openssl:amd64'),
          deviation('h1', 'files', '/etc/passwd', { expected: null, change: 'added', actual: { mode: 420 } }),
        ]);
        await store.replaceHostDeviations('h2', [
          deviation('h2', 'sysctl', 'net.ipv4.ip_forward', { expected: { value: '0' }, actual: { value: '1' } }),
        ]);

        await store.replaceHostDeviations('h1', [
          deviation('h1', 'packages', 'openssl:amd64', {
            firstSeenAt: at(30),
            lastSeenAt: at(30),
            actual: { version: '1.2' },
          }),
          deviation('h1', 'cron', '/etc/crontab#3', {
            firstSeenAt: at(30),
            lastSeenAt: at(30),
            expected: null,
            actual: null,
            action: 'report',
            severity: 'low',
          }),
        ]);
        const h1 = await store.listHostDeviations('h1');
        expect(h1.map((d) => `${d.collector} ${d.key}`)).toEqual(['cron /etc/crontab#3', 'packages openssl:amd64']);
        expect(h1[1]).toEqual(
          deviation('h1', 'packages', 'openssl:amd64', {
            firstSeenAt: at(10),
            lastSeenAt: at(30),
            actual: { version: '1.2' },
          }),
        );
        expect(h1[0]).toMatchObject({
          expected: null,
          actual: null,
          action: 'report',
          severity: 'low',
          firstSeenAt: at(30),
        });
        expect(await store.listHostDeviations('h2')).toHaveLength(1);

        await store.replaceHostDeviations('h1', []);
        expect(await store.listHostDeviations('h1')).toEqual([]);
        expect(await store.listHostDeviations('h2')).toHaveLength(1);
        await expect(store.replaceHostDeviations('h1', [deviation('h2', 'files', '/x')])).rejects.toBeInstanceOf(
          TypeError,
        );
      });

      it('a rescan that finds mostly the same: unchanged rows only move lastSeenAt, the rest are dropped, changed or added', async () => {
        await store.insertHost(hostRow('h1'));
        const same = deviation('h1', 'packages', 'openssl:amd64');
        await store.replaceHostDeviations('h1', [
          same,
          deviation('h1', 'files', '/etc/gone'),
          deviation('h1', 'files', '/etc/changed'),
        ]);
        const later = { firstSeenAt: at(50), lastSeenAt: at(50) };
        await store.replaceHostDeviations('h1', [
          deviation('h1', 'packages', 'openssl:amd64', later),
          deviation('h1', 'files', '/etc/changed', { ...later, actual: { sha256: 'other' }, severity: 'critical' }),
          deviation('h1', 'files', '/etc/new', later),
        ]);
        expect(await store.listHostDeviations('h1')).toEqual([
          deviation('h1', 'files', '/etc/changed', {
            firstSeenAt: at(10),
            lastSeenAt: at(50),
            actual: { sha256: 'other' },
            severity: 'critical',
          }),
          deviation('h1', 'files', '/etc/new', later),
          { ...same, lastSeenAt: at(50) },
        ]);
      });

      it('replaces more rows than one insert statement takes', async () => {
        await store.insertHost(hostRow('h1'));
        const rows = Array.from({ length: 1_234 }, (_, i) =>
          deviation('h1', 'files', `/usr/lib/f${String(i).padStart(5, '0')}`),
        );
        await store.replaceHostDeviations('h1', rows);
        expect(await store.listHostDeviations('h1')).toEqual(rows);
      });

      it('keeps who made the change with the deviation, through a replace and an upsert (migration 0012)', async () => {
        await store.insertHost(hostRow('h1'));
        const who = {
          source: 'dpkg-log' as const,
          at: '2024-03-01T00:47:16',
          action: 'upgrade',
          package: 'openssl',
          toVersion: '1.1',
        };
        await store.replaceHostDeviations('h1', [
          deviation('h1', 'packages', 'openssl:amd64', { attribution: who }),
          deviation('h1', 'packages', 'curl:amd64'),
        ]);
        const [curl, openssl] = await store.listHostDeviations('h1');
        expect(openssl!.attribution).toEqual(who);
        expect(curl!.attribution).toBeUndefined();
        await store.upsertHostDeviations([
          deviation('h1', 'packages', 'curl:amd64', { attribution: { ...who, package: 'curl' } }),
          deviation('h1', 'packages', 'openssl:amd64', { attribution: null }),
        ]);
        const after = await store.listHostDeviations('h1');
        expect(after.map((d) => d.attribution?.package ?? null)).toEqual(['curl', null]);
        const [f] = await store.listFindings({ collector: 'packages', search: 'curl', limit: 10 });
        expect(f).toMatchObject({ key: 'curl:amd64', attributedHosts: 1, attribution: { package: 'curl' } });
      });

      it('upserts events: adds new ones, refreshes existing ones, keeps firstSeenAt', async () => {
        await store.insertHost(hostRow('h1'));
        await store.replaceHostDeviations('h1', [deviation('h1', 'files', '/etc/hosts')]);
        await store.upsertHostDeviations([
          deviation('h1', 'files', '/etc/hosts', {
            firstSeenAt: at(40),
            lastSeenAt: at(40),
            actual: { sha256: 'new' },
            action: 'exempt',
            decidedBy: 'exemption:x1',
          }),
          deviation('h1', 'files', '/etc/shadow', { firstSeenAt: at(40), lastSeenAt: at(40) }),
          // The same key twice in one call: the later row wins, the earlier firstSeenAt stays.
          deviation('h1', 'files', '/etc/group', { firstSeenAt: at(41), lastSeenAt: at(41), actual: { v: 1 } }),
          deviation('h1', 'files', '/etc/group', { firstSeenAt: at(42), lastSeenAt: at(42), actual: { v: 2 } }),
        ]);
        const d = await store.listHostDeviations('h1');
        expect(d.map((x) => x.key)).toEqual(['/etc/group', '/etc/hosts', '/etc/shadow']);
        expect(d[0]).toMatchObject({ firstSeenAt: at(41), lastSeenAt: at(42), actual: { v: 2 } });
        expect(d[1]).toMatchObject({
          firstSeenAt: at(10),
          lastSeenAt: at(40),
          actual: { sha256: 'new' },
          action: 'exempt',
          decidedBy: 'exemption:x1',
        });
        expect(d[2]).toMatchObject({ firstSeenAt: at(40) });
        await store.upsertHostDeviations([]);
      });
    });

    describe('transitions', () => {
      it('returns the row with its id and lists a host’s history in order', async () => {
        await store.insertHost(hostRow('h1'));
        await store.insertHost(hostRow('h2'));
        const t1 = await store.insertTransition({
          hostId: 'h1',
          from: null,
          to: 'pending',
          cause: 'enrolled',
          actor: 'agent:h1',
          at: at(0),
          reportId: null,
        });
        const t2 = await store.insertTransition({
          hostId: 'h2',
          from: null,
          to: 'pending',
          cause: 'enrolled',
          actor: 'agent:h2',
          at: at(0),
          reportId: null,
        });
        const t3 = await store.insertTransition({
          hostId: 'h1',
          from: 'pending',
          to: 'tainted',
          cause: 'package openssl changed',
          actor: 'policy',
          at: at(5),
          reportId: 'r1',
        });
        expect(t1).toEqual({
          id: t1.id,
          hostId: 'h1',
          from: null,
          to: 'pending',
          cause: 'enrolled',
          actor: 'agent:h1',
          at: at(0),
          reportId: null,
        });
        expect(typeof t1.id).toBe('number');
        expect(t2.id).toBeGreaterThan(t1.id);
        expect(t3.id).toBeGreaterThan(t2.id);
        expect(await store.listTransitions('h1')).toEqual([t1, t3]);
        expect(await store.listTransitions('h9')).toEqual([]);
      });
    });

    describe('audit', () => {
      it('appends with increasing ids and lists after an id', async () => {
        const rows = [];
        for (let i = 0; i < 25; i++) {
          rows.push(
            await store.appendAudit({
              at: at(i),
              actor: i % 2 ? 'alice' : 'bob',
              action: 'token.create',
              target: i % 3 ? `t${i}` : null,
              detail: { i, role: 'viewer', nested: { list: [i] } },
            }),
          );
        }
        for (let i = 1; i < rows.length; i++) expect(rows[i]!.id).toBeGreaterThan(rows[i - 1]!.id);
        expect(rows[3]).toEqual({
          id: rows[3]!.id,
          at: at(3),
          actor: 'alice',
          action: 'token.create',
          target: null,
          detail: { i: 3, role: 'viewer', nested: { list: [3] } },
          prevHash: rows[2]!.hash,
          hash: expect.stringMatching(/^[0-9a-f]{64}$/),
        });
        expect(await store.listAudit({ limit: 100 })).toEqual(rows);
        expect(await store.listAudit({ limit: 5 })).toEqual(rows.slice(0, 5));
        expect(await store.listAudit({ afterId: rows[19]!.id, limit: 100 })).toEqual(rows.slice(20));
        expect(await store.listAudit({ afterId: rows[24]!.id, limit: 100 })).toEqual([]);
      });

      it('offers no way to change or delete audit rows', () => {
        const methods = new Set<string>();
        for (let o: object | null = store; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
          for (const k of Object.getOwnPropertyNames(o))
            if (typeof (store as unknown as Record<string, unknown>)[k] === 'function') methods.add(k);
        }
        expect([...methods].filter((m) => /audit/i.test(m)).sort()).toEqual(['appendAudit', 'listAudit']);
      });
    });

    describe('exemptions', () => {
      it('lists all, or those active at a time', async () => {
        await store.insertExemption(exemption('active', { createdAt: at(0), expiresAt: at(60) }));
        await store.insertExemption(exemption('expired', { createdAt: at(0), expiresAt: at(10) }));
        await store.insertExemption(exemption('future', { createdAt: at(40), expiresAt: at(90) }));
        await store.insertExemption(
          exemption('revoked-before', { createdAt: at(0), expiresAt: at(60), revokedAt: at(20), revokedBy: 'bob' }),
        );
        await store.insertExemption(
          exemption('revoked-after', { createdAt: at(1), expiresAt: at(60), revokedAt: at(45), revokedBy: 'bob' }),
        );
        await store.insertExemption(
          exemption('host', {
            hostId: 'h1',
            imageId: null,
            collector: null,
            keyPattern: '**',
            createdAt: at(2),
            expiresAt: '2026-03-01T01:00:00Z',
          }),
        );

        expect((await store.listExemptions({})).map((e) => e.id)).toEqual([
          'active',
          'expired',
          'revoked-before',
          'revoked-after',
          'host',
          'future',
        ]);
        expect((await store.listExemptions({ activeAt: at(30) })).map((e) => e.id)).toEqual([
          'active',
          'revoked-after',
          'host',
        ]);
        expect((await store.listExemptions({ activeAt: at(10) })).map((e) => e.id)).toEqual([
          'active',
          'revoked-before',
          'revoked-after',
          'host',
        ]);
        expect((await store.listExemptions({ activeAt: at(60) })).map((e) => e.id)).toEqual(['future']);
        expect((await store.listExemptions({ activeAt: at(0) })).map((e) => e.id)).toEqual([
          'active',
          'expired',
          'revoked-before',
        ]);
        const host = (await store.listExemptions({})).find((e) => e.id === 'host');
        expect(host).toEqual(
          exemption('host', {
            hostId: 'h1',
            imageId: null,
            collector: null,
            keyPattern: '**',
            createdAt: at(2),
            expiresAt: at(60),
          }),
        );
      });

      it('revokes once and refuses duplicate ids', async () => {
        await store.insertExemption(exemption('x1'));
        await expect(store.insertExemption(exemption('x1'))).rejects.toBeInstanceOf(StoreConflictError);
        expect(await store.revokeExemption('x1', at(5), 'carol')).toBe(true);
        expect(await store.revokeExemption('x1', at(6), 'dave')).toBe(false);
        expect(await store.revokeExemption('nope', at(6), 'dave')).toBe(false);
        expect((await store.listExemptions({}))[0]).toMatchObject({ revokedAt: at(5), revokedBy: 'carol' });
        expect(await store.listExemptions({ activeAt: at(10) })).toEqual([]);
      });
    });

    describe('transactions', () => {
      it('commit everything and return fn’s value', async () => {
        const v = await store.transaction(async (tx) => {
          await tx.insertHost(hostRow('h1'));
          await tx.insertReport(reportRow('r1', 'h1', 1));
          await tx.updateHost('h1', { lastSeq: 1, state: 'clean' });
          // Reads inside the transaction see its own writes.
          expect((await tx.getHost('h1'))?.lastSeq).toBe(1);
          return 42;
        });
        expect(v).toBe(42);
        expect(await store.getReport('r1')).not.toBeNull();
        expect((await store.getHost('h1'))?.state).toBe('clean');
      });

      it('roll back everything when fn throws, and rethrow', async () => {
        await store.insertHost(hostRow('h1'));
        const boom = new Error('boom');
        await expect(
          store.transaction(async (tx) => {
            await tx.insertHost(hostRow('h2'));
            await tx.updateHost('h1', { state: 'tainted', lastSeq: 9 });
            await tx.insertReport(reportRow('r1', 'h1', 9));
            await tx.insertTransition({
              hostId: 'h1',
              from: 'pending',
              to: 'tainted',
              cause: 'x',
              actor: 'policy',
              at: at(1),
              reportId: 'r1',
            });
            await tx.appendAudit({ at: at(1), actor: 'policy', action: 'host.taint', target: 'h1', detail: {} });
            await tx.replaceHostDeviations('h1', [deviation('h1', 'files', '/etc/x')]);
            await tx.insertToken(tokenRow('t1'));
            await tx.insertExemption(exemption('x1'));
            await tx.putManifest({
              imageId: 'ami-9',
              digest: 'd',
              signedBy: null,
              name: null,
              version: null,
              body: '{}',
              publishedAt: at(1),
              publishedBy: 'ci',
            });
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await store.getHost('h2')).toBeNull();
        expect(await store.getHost('h1')).toMatchObject({ state: 'pending', lastSeq: 0 });
        expect(await store.getReport('r1')).toBeNull();
        expect(await store.listTransitions('h1')).toEqual([]);
        expect(await store.listAudit({ limit: 10 })).toEqual([]);
        expect(await store.listHostDeviations('h1')).toEqual([]);
        expect(await store.listTokens()).toEqual([]);
        expect(await store.listExemptions({})).toEqual([]);
        expect(await store.getManifest('ami-9')).toBeNull();
        // The store is usable afterwards.
        await store.insertHost(hostRow('h3'));
      });

      it('roll back when a statement fails, e.g. a replayed report id', async () => {
        await store.insertHost(hostRow('h1'));
        await store.insertReport(reportRow('r1', 'h1', 1));
        await expect(
          store.transaction(async (tx) => {
            await tx.updateHost('h1', { lastSeq: 2 });
            await tx.insertReport(reportRow('r1', 'h1', 2));
          }),
        ).rejects.toBeInstanceOf(StoreConflictError);
        expect((await store.getHost('h1'))?.lastSeq).toBe(0);
      });

      it('lose no update when concurrent transactions read-modify-write the same host', async () => {
        await store.insertHost(hostRow('h1'));
        const n = 8;
        await Promise.all(
          Array.from({ length: n }, (_, i) =>
            store.transaction(async (tx) => {
              const h = await tx.lockHost('h1');
              // Yield between read and write, where an unlocked read-modify-write would interleave.
              await sleep(5);
              await tx.updateHost('h1', { lastSeq: h!.lastSeq + 1 });
              await tx.insertReport(reportRow(`r${i}`, 'h1', h!.lastSeq + 1));
            }),
          ),
        );
        expect((await store.getHost('h1'))?.lastSeq).toBe(n);
        expect((await store.listReports('h1', { limit: 100 })).map((r) => r.seq)).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
      });

      it('keep overlapping transactions apart: one rolls back, the other commits', async () => {
        await store.insertHost(hostRow('h1'));
        const first = store.transaction(async (tx) => {
          await tx.updateHost('h1', { hostname: 'from-first' });
          await tx.appendAudit({ at: at(1), actor: 'first', action: 'x', target: null, detail: {} });
          await sleep(30);
          throw new Error('first fails');
        });
        await sleep(5);
        const second = store.transaction(async (tx) => {
          await tx.appendAudit({ at: at(2), actor: 'second', action: 'y', target: null, detail: {} });
          await tx.updateHost('h1', { agentVersion: 'from-second' });
        });
        await expect(first).rejects.toThrow('first fails');
        await second;
        const h = await store.getHost('h1');
        expect(h).toMatchObject({ hostname: 'h1.example.internal', agentVersion: 'from-second' });
        expect((await store.listAudit({ limit: 10 })).map((a) => a.actor)).toEqual(['second']);
      });
    });
  });
}
