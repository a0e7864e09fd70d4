/** @module Canonical JSON (sorted keys, no insignificant whitespace) and the sha256 digests built on it. */
import { createHash, type Hash } from 'node:crypto';

/**
 * Serialise with object keys sorted at every level so that equal values give equal bytes: digests
 * and signatures are computed over this form, never over whatever a file happens to contain.
 * `undefined` members are dropped, as JSON.stringify does; non-finite numbers are refused.
 */
export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  writeCanonical(value, (s) => parts.push(s));
  return parts.join('');
}

/**
 * The canonical form of a value in pieces, in order, without ever holding all of it: a manifest of
 * 100k+ files is tens of megabytes of JSON, and a digest or a file write needs it only piece by piece.
 */
export function writeCanonical(value: unknown, out: (piece: string) => void): void {
  write(value, out);
}

const OBJECT_PROTO = Object.prototype;
/** Subtrees up to this many values go to JSON.stringify whole; larger ones are written part by part. */
const SMALL = 256;

/**
 * How many values a subtree holds when JSON.stringify(value) is already its canonical form, else -1:
 * plain objects whose keys are in sorted order at every level (as a parsed canonical file, or an item
 * built in key order, has them), arrays without holes or undefined, finite numbers, strings, booleans
 * and null. Gives up (-1) past `budget` values, so a large array is not checked twice.
 */
function canonicalSize(value: unknown, budget: number): number {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return 1;
    case 'number':
      return Number.isFinite(value) ? 1 : -1;
    case 'object': {
      if (value === null) return 1;
      let size = 1;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) return -1;
          const n = canonicalSize(item, budget - size);
          if (n < 0 || (size += n) > budget) return -1;
        }
        return size;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== OBJECT_PROTO && proto !== null) return -1;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        if (i > 0 && !(keys[i - 1]! < k)) return -1;
        const v = obj[k];
        if (v === undefined) continue;
        const n = canonicalSize(v, budget - size);
        if (n < 0 || (size += n) > budget) return -1;
      }
      return size;
    }
    default:
      return -1;
  }
}

function write(value: unknown, out: (piece: string) => void): void {
  if (value === null) {
    out('null');
    return;
  }
  switch (typeof value) {
    case 'string':
      out(JSON.stringify(value));
      return;
    case 'boolean':
      out(value ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON cannot hold ${value}`);
      out(JSON.stringify(value));
      return;
    case 'object': {
      // Native JSON.stringify is an order of magnitude faster than the loop below, and gives the
      // same bytes when the keys are in order already.
      if (canonicalSize(value, SMALL) > 0) {
        out(JSON.stringify(value));
        return;
      }
      if (Array.isArray(value)) {
        out('[');
        for (let i = 0; i < value.length; i++) {
          if (!(i in value)) continue; // a hole is skipped, comma and all (the writer used forEach)
          if (i > 0) out(',');
          const item: unknown = value[i];
          write(item === undefined ? null : item, out);
        }
        out(']');
        return;
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      out('{');
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        if (i > 0) out(',');
        out(JSON.stringify(k));
        out(':');
        write(obj[k], out);
      }
      out('}');
      return;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Pieces of text into a hash, a chunk at a time (each update converts its string to UTF-8). */
export function hashWriter(hash: Hash, chunkChars = 1 << 16): { write: (piece: string) => void; end: () => Hash } {
  let parts: string[] = [];
  let chars = 0;
  const flush = () => {
    if (parts.length === 0) return;
    hash.update(parts.length === 1 ? parts[0]! : parts.join(''));
    parts = [];
    chars = 0;
  };
  return {
    write(piece) {
      parts.push(piece);
      if ((chars += piece.length) >= chunkChars) flush();
    },
    end() {
      flush();
      return hash;
    },
  };
}

/** Digest of a value's canonical form, prefixed with its algorithm so it can change later. */
export function digestOf(value: unknown): string {
  const w = hashWriter(createHash('sha256'));
  writeCanonical(value, w.write);
  return `sha256:${w.end().digest('hex')}`;
}
