/**
 * @module Anchored verification (issue 21): someone with write access to the database rewrites an
 * audit row and recomputes every later hash, so the chain holds together and plain `audit verify`
 * passes; verification against an anchor taken earlier (and kept outside the database) fails, and a
 * forged or altered anchor fails its signature check. On SQLite and PostgreSQL, and through the CLI.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import {
  anchorSignatureProblem,
  createAnchor,
  readAnchors,
  startAnchoring,
  verifyAgainstAnchor,
  type Anchor,
} from '../../controller/audit-anchor.js';
import { auditContent, chainHash, GENESIS } from '../../controller/store/chain.js';
import { openStore } from '../../controller/store/index.js';
import type { AuditRow, Store } from '../../controller/store/types.js';
import { verifyChain } from '../../controller/verify-history.js';
import { generateKeyPair } from '../../shared/sign.js';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { PG_URL, requirePostgres, SKIP_PG } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';
import { ControllerConfigSchema } from '../../controller/config.js';
import { startController } from '../../controller/server.js';
import { Harness, HOUR, silentLog } from './harness.js';
import { BIN, ensureBuilt } from '../helpers/built-cli.js';

await requirePostgres();

/** Runs SQL as the database owner, past the append-only triggers. */
type Backdoor = { exec(sqlText: string): Promise<void>; close(): Promise<void> };

const cases: { name: string; open: () => Promise<{ store: Store; backdoor: Backdoor }> }[] = [
  {
    name: 'sqlite',
    async open() {
      const file = join(tempDir('dw-anchor-'), 'controller.db');
      return {
        store: await openStore(`sqlite:${file}`),
        backdoor: {
          async exec(sqlText) {
            const raw = new Database(file);
            raw.exec('drop trigger if exists audit_no_update; drop trigger if exists audit_no_delete;');
            raw.exec(sqlText);
            raw.close();
          },
          async close() {},
        },
      };
    },
  },
  ...(SKIP_PG
    ? []
    : [
        {
          name: 'postgres',
          async open() {
            const schema = `dw_anchor_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
            const store = await openStore(PG_URL, { schema, maxConnections: 2 });
            const admin = new pg.Client({ connectionString: PG_URL });
            await admin.connect();
            return {
              store,
              backdoor: {
                async exec(sqlText: string) {
                  await admin.query(
                    `begin; set local session_replication_role = replica; set local search_path = ${schema}; ${sqlText}; commit;`,
                  );
                },
                async close() {
                  await admin.query(`drop schema if exists ${schema} cascade`);
                  await admin.end();
                },
              },
            };
          },
        },
      ]),
];

const q = (s: string) => `'${s.replaceAll("'", "''")}'`;

/**
 * The attack: change one audit row's detail and recompute the hash of it and of every row after it,
 * exactly as the store would have, so that each link holds again.
 */
function rewriteAndRehash(rows: AuditRow[], index: number, detail: Record<string, unknown>): string {
  const changed = rows.map((r, i) => (i === index ? { ...r, detail } : r));
  let prev = GENESIS;
  const sql: string[] = [];
  for (const [i, r] of changed.entries()) {
    const hash = chainHash(prev, auditContent(r));
    if (i >= index)
      sql.push(
        `update audit set detail = ${q(JSON.stringify(r.detail))}, prev_hash = ${q(prev)}, hash = ${q(hash)} where id = ${r.id}`,
      );
    prev = hash;
  }
  return sql.join(';\n');
}

describe.each(cases)('anchored audit verification: $name', ({ open }) => {
  let h: Harness;
  let backdoor: Backdoor;
  afterEach(async () => {
    await h?.close();
    await backdoor?.close();
  });

  async function withHistory() {
    const o = await open();
    backdoor = o.backdoor;
    h = await Harness.start(o.store);
    const web1 = await h.enroll('web-1');
    await web1.upgrade('openssl', '3.0.13-1').scan();
    await h.req('POST', '/api/v1/tokens', { token: h.tokens.admin, body: { name: 'ci', role: 'viewer' } });
  }

  it('attack: a rewritten, rehashed audit row passes plain verification and fails against the anchor', async () => {
    await withHistory();
    const key = generateKeyPair();
    const { anchor } = await createAnchor(h.store, h.clock.now(), createPrivateKey(key.privateKeyPem));
    expect(anchorSignatureProblem(anchor, createPublicKey(key.publicKeyPem))).toBeNull();
    // Honest history after the anchor is fine.
    h.clock.advance(HOUR);
    await h.req('POST', '/api/v1/tokens', { token: h.tokens.admin, body: { name: 'later', role: 'viewer' } });
    expect((await verifyAgainstAnchor(h.store, anchor)).every((r) => r.ok)).toBe(true);

    // Hide who the ci token was made by: the token.create row of "ci" gets another name, rehashed.
    const rows = await h.store.listAudit({ limit: 1000 });
    const i = rows.findIndex((r) => r.action === 'token.create' && r.detail.name === 'ci');
    await backdoor.exec(rewriteAndRehash(rows, i, { ...rows[i]!.detail, name: 'harmless' }));

    const plain = await verifyChain(h.store, 'audit');
    expect(plain.ok).toBe(true); // the chain alone cannot tell
    const [audit, events] = await verifyAgainstAnchor(h.store, anchor);
    expect(events!.ok).toBe(true);
    expect(audit).toMatchObject({
      ok: false,
      anchorMismatch: {
        throughId: anchor.chains.audit.throughId,
        expectedHead: anchor.chains.audit.head,
        expectedRows: anchor.chains.audit.rows,
      },
    });
    expect(audit!.anchorMismatch!.foundHead).not.toBe(anchor.chains.audit.head);
  });

  it('attack: rows removed before the anchor and the rest rehashed: fails', async () => {
    await withHistory();
    const { anchor } = await createAnchor(h.store, h.clock.now());
    const rows = await h.store.listAudit({ limit: 1000 });
    const victim = rows[2]!;
    // Remove a row and rebuild the chain over the remaining ones.
    const rest = rows.filter((r) => r.id !== victim.id);
    let prev = GENESIS;
    const sql = [`delete from audit where id = ${victim.id}`];
    for (const r of rest) {
      const hash = chainHash(prev, auditContent(r));
      sql.push(`update audit set prev_hash = ${q(prev)}, hash = ${q(hash)} where id = ${r.id}`);
      prev = hash;
    }
    await backdoor.exec(sql.join(';\n'));
    expect((await verifyChain(h.store, 'audit')).ok).toBe(true);
    const [audit] = await verifyAgainstAnchor(h.store, anchor);
    expect(audit).toMatchObject({
      ok: false,
      anchorMismatch: { expectedRows: rows.length, foundRows: rows.length - 1 },
    });
  });

  it('a forged or altered anchor fails its signature check; one signed by another key too', async () => {
    await withHistory();
    const key = generateKeyPair();
    const pub = createPublicKey(key.publicKeyPem);
    const { anchor } = await createAnchor(h.store, h.clock.now(), createPrivateKey(key.privateKeyPem));
    const altered: Anchor = {
      ...anchor,
      chains: { ...anchor.chains, audit: { ...anchor.chains.audit, head: 'f'.repeat(64) } },
    };
    expect(anchorSignatureProblem(altered, pub)).toMatch(/does not verify/);
    const { anchor: unsigned } = await createAnchor(h.store, h.clock.now());
    expect(anchorSignatureProblem(unsigned, pub)).toMatch(/not signed/);
    const other = generateKeyPair();
    const { anchor: byOther } = await createAnchor(h.store, h.clock.now(), createPrivateKey(other.privateKeyPem));
    expect(anchorSignatureProblem(byOther, pub)).toMatch(
      new RegExp(`signed by key ${other.keyId}, not by the given key ${key.keyId}`),
    );
  });

  it('the controller anchors periodically into a directory; verifying against all of them catches a rewrite between two', async () => {
    await withHistory();
    const dir = tempDir('dw-anchors-');
    const key = generateKeyPair();
    const logged: string[] = [];
    const log = {
      info: (_o: object, m: string) => void logged.push(m),
      error: (_o: object, m: string) => void logged.push(`error: ${m}`),
    };
    const anchoring = startAnchoring({
      store: h.store,
      dir,
      privateKey: createPrivateKey(key.privateKeyPem),
      everyMs: HOUR,
      clock: h.clock.now,
      log,
    });
    try {
      const first = await anchoring.tick(); // the one at start is already written, and nothing moved since
      expect(first).toBeNull();
      h.clock.advance(HOUR);
      await h.req('POST', '/api/v1/tokens', { token: h.tokens.admin, body: { name: 'between', role: 'viewer' } });
      h.clock.advance(HOUR);
      expect(await anchoring.tick()).toMatch(/anchor-.*\.json$/);
    } finally {
      await anchoring.stop();
    }
    const anchors = readAnchors(dir);
    expect(anchors).toHaveLength(2);
    expect(logged).toEqual(['audit anchor written', 'audit anchor written']);
    for (const a of anchors) expect(anchorSignatureProblem(a.anchor, createPublicKey(key.publicKeyPem))).toBeNull();
    expect(
      (
        await verifyAgainstAnchor(
          h.store,
          anchors.map((a) => a.anchor),
        )
      ).every((r) => r.ok),
    ).toBe(true);

    // Rewrite the row written between the two anchors: the first anchor cannot see it, the second does.
    const rows = await h.store.listAudit({ limit: 1000 });
    const i = rows.findIndex((r) => r.action === 'token.create' && r.detail.name === 'between');
    await backdoor.exec(rewriteAndRehash(rows, i, { ...rows[i]!.detail, role: 'viewer', name: 'nothing-to-see' }));
    expect((await verifyAgainstAnchor(h.store, anchors[0]!.anchor))[0]!.ok).toBe(true);
    const [audit] = await verifyAgainstAnchor(
      h.store,
      anchors.map((a) => a.anchor),
    );
    expect(audit).toMatchObject({
      ok: false,
      anchorMismatch: { throughId: anchors[1]!.anchor.chains.audit.throughId },
    });
  });

  it('refuses to anchor a chain that is already broken', async () => {
    await withHistory();
    const rows = await h.store.listAudit({ limit: 1000 });
    await backdoor.exec(`update audit set detail = ${q(JSON.stringify({ forged: true }))} where id = ${rows[1]!.id}`);
    await expect(createAnchor(h.store, h.clock.now())).rejects.toThrow(/not anchoring a broken chain: audit/);
  });
});

describe('audit.anchors in the controller config', () => {
  it('writes a signed anchor at start, and refuses a directory that does not exist before listening', async () => {
    const dir = tempDir('dw-anchor-srv-');
    const keys = generateKeyPair();
    writeFileSync(join(dir, 'audit.key'), keys.privateKeyPem, { mode: 0o600 });
    const anchors = join(dir, 'anchors');
    mkdirSync(anchors);
    const config = (d: string) =>
      ControllerConfigSchema.parse({
        listen: '127.0.0.1:0',
        store: `sqlite:${join(dir, 'c.db')}`,
        audit: { anchors: { dir: d, keyFile: join(dir, 'audit.key'), every: '1h' } },
      });
    await expect(startController(config(join(dir, 'missing')), { log: silentLog })).rejects.toThrow(
      /audit\.anchors\.dir: .* is not a directory/,
    );
    const ctl = await startController(config(anchors), { log: silentLog });
    try {
      for (let i = 0; i < 100 && readdirSync(anchors).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    } finally {
      await ctl.close();
    }
    const [only] = readAnchors(anchors);
    expect(anchorSignatureProblem(only!.anchor, createPublicKey(keys.publicKeyPem))).toBeNull();
  });
});

// ---- the CLI, on the built bin (npm run build when dist/ is older than the sources) ----

const dw = (...args: string[]) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { encoding: 'utf8', env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'error' } },
      (err, stdout, stderr) =>
        resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

describe('driftwarden token and audit anchor commands', () => {
  it('create limited tokens, list them without secrets, revoke; anchor, then catch a rehashed rewrite', async () => {
    expect(ensureBuilt()).toEqual([]);
    const dir = tempDir('dw-anchor-cli-');
    const db = join(dir, 'controller.db');
    const config = join(dir, 'controller.yaml');
    writeFileSync(config, stringify({ store: `sqlite:${db}` }));

    const made = await dw(
      'token',
      'create',
      '--config',
      config,
      '--role',
      'agent',
      '--name',
      'web-image',
      '--expires',
      '30d',
      '--uses',
      '500',
      '--group',
      'web-*',
      '--group',
      'canary',
    );
    expect(made.status, made.stderr).toBe(0);
    expect(made.stdout).toMatch(/^dwt_\S+\n$/);
    expect(made.stderr).toMatch(/\(agent, "web-image", expires \S+, 500 uses, groups web-\*, canary\) created/);
    const bad = await dw('token', 'create', '--config', config, '--role', 'viewer', '--uses', '3');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--uses: only enrollment tokens/);
    const dflt = await dw('token', 'create', '--config', config, '--role', 'agent');
    expect(dflt.stderr).toMatch(/expires \S+, 1 use, any group/);

    const list = await dw('token', 'list', '--config', config);
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^ID +NAME +ROLE +STATUS +EXPIRES +USES +GROUPS +CREATED BY\n/);
    expect(list.stdout).toMatch(/web-image +agent +active +\S+ +0\/500 +web-\*,canary/);
    expect(list.stdout).not.toContain(made.stdout.trim());
    const id = /^(\S+) +web-image/m.exec(list.stdout)![1]!;
    const revoked = await dw('token', 'revoke', '--config', config, id);
    expect(revoked.status, revoked.stderr).toBe(0);
    expect((await dw('token', 'list', '--config', config, '--json')).stdout).toContain('"revokedAt"');

    const keys = join(dir, 'keys');
    expect((await dw('keygen', '--out', keys, '--name', 'audit')).status).toBe(0);
    const anchorFile = join(dir, 'anchor.json');
    const anchored = await dw(
      'audit',
      'anchor',
      '--config',
      config,
      '--key',
      join(keys, 'audit.key'),
      '--out',
      anchorFile,
    );
    expect(anchored.status, anchored.stderr).toBe(0);
    expect(JSON.parse(readFileSync(anchorFile, 'utf8'))).toMatchObject({
      schema: 'driftwarden/audit-anchor/v1',
      signature: { keyId: expect.any(String) },
    });
    expect((await dw('audit', 'anchor', '--config', config, '--out', anchorFile)).status).toBe(2); // never overwritten

    const verify = (...extra: string[]) =>
      dw('audit', 'verify', '--config', config, '--anchor', anchorFile, '--key', join(keys, 'audit.pub'), ...extra);
    const good = await verify();
    expect(good.status, good.stdout + good.stderr).toBe(0);
    expect(good.stdout).toMatch(/signature valid\naudit: ok, 3 rows/);

    // The attack, through the database file: rename the revoked token's creation and rehash.
    const store = await openStore(`sqlite:${db}`);
    const rows = await store.listAudit({ limit: 100 });
    await store.close();
    const i = rows.findIndex((r) => r.action === 'token.create' && r.detail.name === 'web-image');
    const raw = new Database(db);
    raw.exec('drop trigger audit_no_update;');
    raw.exec(rewriteAndRehash(rows, i, { ...rows[i]!.detail, maxUses: 1 }));
    raw.close();
    const plain = await dw('audit', 'verify', '--config', config);
    expect(plain.status, plain.stdout).toBe(0);
    const caught = await verify();
    expect(caught.status).toBe(1);
    expect(caught.stdout).toMatch(/audit: BROKEN: the chain does not pass through the anchor/);
    const json = await verify('--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, anchor: { signature: 'valid' } });
    expect((await dw('audit', 'verify', '--config', config, '--key', join(keys, 'audit.pub'))).status).toBe(2);
  }, 240_000);
});
