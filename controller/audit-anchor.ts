/**
 * @module Anchors for the audit log and the event stream: a checkpoint (last row id, row count, head
 * hash of each chain) written by `driftwarden audit anchor` and kept outside the database (another
 * host, write-once storage, a ticket). Someone who can write the database can rewrite a row and
 * recompute every later hash, and plain verification then passes; `audit verify --anchor` fails,
 * because the rewritten chain no longer passes through the recorded point. Signed with an ed25519
 * key, an anchor also cannot be forged by whoever holds the database and the anchor's copy, only
 * by whoever holds the key.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { canonicalJson } from '../shared/canonical.js';
import { DwError } from '../shared/errors.js';
import { keyIdOf, signBytes, verifyBytes } from '../shared/sign.js';
import type { StoreTx } from './store/types.js';
import { verifyChain, type ChainName, type ChainPoint, type ChainReport } from './verify-history.js';

export const ANCHOR_SCHEMA_ID = 'driftwarden/audit-anchor/v1';

const PointSchema = z.strictObject({
  throughId: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
  head: z.string().regex(/^[0-9a-f]{64}$/, 'expected a sha256 hex hash'),
});

export const AnchorSchema = z.strictObject({
  schema: z.literal(ANCHOR_SCHEMA_ID),
  createdAt: z.string(),
  chains: z.strictObject({ audit: PointSchema, events: PointSchema }),
  /** ed25519 over the canonical JSON of the anchor without this field. */
  signature: z.strictObject({ keyId: z.string(), value: z.string() }).optional(),
});
export type Anchor = z.infer<typeof AnchorSchema>;

const CHAINS: readonly ChainName[] = ['audit', 'events'];

function signedPart(a: Anchor): string {
  const { signature: _ignored, ...rest } = a;
  return canonicalJson(rest);
}

/**
 * The chains as they stand, verified first: anchoring a chain that is already broken would vouch for
 * the break. Rows appended while this runs are simply after the anchor.
 */
export async function createAnchor(
  store: StoreTx,
  now: Date,
  privateKey?: KeyObject,
): Promise<{ anchor: Anchor; reports: ChainReport[] }> {
  const points = {} as Record<ChainName, ChainPoint>;
  const reports: ChainReport[] = [];
  for (const chain of CHAINS) {
    const r = await verifyChain(store, chain);
    reports.push(r);
    points[chain] = { throughId: r.lastId, rows: r.rows, head: r.head };
  }
  const broken = reports.filter((r) => !r.ok);
  if (broken.length)
    throw new DwError(
      'DW_ERR_STATE',
      `not anchoring a broken chain: ${broken.map((r) => r.chain).join(', ')} fails verification (run audit verify)`,
      { chains: broken.map((r) => r.chain) },
    );
  const anchor: Anchor = { schema: ANCHOR_SCHEMA_ID, createdAt: now.toISOString(), chains: points };
  if (privateKey)
    anchor.signature = {
      keyId: keyIdOf(createPublicKey(privateKey)),
      value: signBytes(signedPart(anchor), privateKey),
    };
  return { anchor, reports };
}

export function readAnchor(file: string): Anchor {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DwError('DW_ERR_IO', `--anchor: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      path: file,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new DwError('DW_ERR_VALIDATION', `--anchor: ${file} is not JSON`, { path: file });
  }
  const parsed = AnchorSchema.safeParse(value);
  if (!parsed.success)
    throw new DwError(
      'DW_ERR_VALIDATION',
      `--anchor: ${file} is not a ${ANCHOR_SCHEMA_ID}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
      { path: file },
    );
  return parsed.data;
}

/**
 * Why the anchor itself cannot be trusted with this key, or null. With a key, an anchor must carry a
 * valid signature by it: an unsigned one could have been written by anyone who rewrote the chain.
 */
export function anchorSignatureProblem(anchor: Anchor, publicKey: KeyObject): string | null {
  if (!anchor.signature) return 'the anchor is not signed, but --key was given: it could have been written by anyone';
  const keyId = keyIdOf(publicKey);
  if (anchor.signature.keyId !== keyId)
    return `the anchor is signed by key ${anchor.signature.keyId}, not by the given key ${keyId}`;
  if (!verifyBytes(signedPart(anchor), anchor.signature.value, publicKey))
    return 'the anchor signature does not verify: the anchor was changed after it was signed';
  return null;
}

/** Each chain verified once and required to pass through every anchor's point. */
export async function verifyAgainstAnchor(
  store: StoreTx,
  anchor: Anchor | readonly Anchor[],
  expectHeads: Partial<Record<ChainName, string>> = {},
  opts: { checkpointKey?: KeyObject } = {},
): Promise<ChainReport[]> {
  const all = Array.isArray(anchor) ? anchor : [anchor as Anchor];
  const out: ChainReport[] = [];
  for (const chain of CHAINS)
    out.push(
      await verifyChain(
        store,
        chain,
        expectHeads[chain],
        all.map((a) => a.chains[chain]),
        opts,
      ),
    );
  return out;
}

/** How anchor files are named: they sort by time, and `audit verify --anchor DIR` reads them all. */
export function anchorFileName(anchor: Anchor): string {
  return `anchor-${anchor.createdAt.replace(/[:.]/g, '-')}.json`;
}

/** Writes a new anchor file into `dir`, never over an existing one; returns its path. */
export function writeAnchorFile(dir: string, anchor: Anchor): string {
  const path = join(dir, anchorFileName(anchor));
  writeFileSync(path, JSON.stringify(anchor, null, 2) + '\n', { flag: 'wx', mode: 0o644 });
  return path;
}

/** An anchor file, or every `anchor-*.json` in a directory (oldest first). */
export function readAnchors(path: string): { file: string; anchor: Anchor }[] {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    throw new DwError('DW_ERR_IO', `--anchor: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      path,
    });
  }
  if (!isDir) return [{ file: path, anchor: readAnchor(path) }];
  const files = readdirSync(path)
    .filter((f) => /^anchor-.*\.json$/.test(f))
    .sort();
  if (files.length === 0) throw new DwError('DW_ERR_IO', `--anchor: ${path} holds no anchor-*.json files`, { path });
  return files.map((f) => ({ file: join(path, f), anchor: readAnchor(join(path, f)) }));
}

export interface AnchoringOptions {
  store: StoreTx;
  dir: string;
  privateKey?: KeyObject;
  everyMs: number;
  clock: () => Date;
  log: { info(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

/**
 * The controller's own anchors (config `audit.anchors`): one at start and one per interval, skipped
 * while neither chain has moved. A broken chain is logged, never anchored.
 */
export function startAnchoring(o: AnchoringOptions): { stop(): Promise<void>; tick(): Promise<string | null> } {
  let last = '';
  let running: Promise<unknown> = Promise.resolve();
  const tick = async (): Promise<string | null> => {
    try {
      const { anchor } = await createAnchor(o.store, o.clock(), o.privateKey);
      const at = canonicalJson(anchor.chains);
      if (at === last) return null;
      const file = writeAnchorFile(o.dir, anchor);
      last = at;
      o.log.info({ file, audit: anchor.chains.audit, events: anchor.chains.events }, 'audit anchor written');
      return file;
    } catch (err) {
      o.log.error({ err }, 'audit anchor not written');
      return null;
    }
  };
  // One at a time; stop() waits for the one in flight, so the store is not closed under it.
  const run = () => (running = running.then(tick));
  const timer = setInterval(run, o.everyMs);
  timer.unref();
  run();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
    tick: () => run() as Promise<string | null>,
  };
}

/** The anchors directory must exist and be a directory: checked at start, before the port opens. */
export function checkAnchorDir(dir: string): void {
  let ok = false;
  try {
    ok = statSync(dir).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok)
    throw new DwError('DW_ERR_CONFIG', `audit.anchors.dir: ${dir} is not a directory`, { key: 'audit.anchors.dir' });
}
