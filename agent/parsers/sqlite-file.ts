/**
 * @module A minimal read-only reader of the SQLite file format (https://sqlite.org/fileformat2.html):
 * the rows of a table, found through sqlite_schema, from a file's bytes. The agent carries no native
 * addon (its single executable cannot), and Node 20 has no node:sqlite, so dnf's history database is
 * read this way. Pure: bytes in, rows out; every malformed structure is a DwParseError, never a hang
 * (page visits are bounded and cycles refused) or a read out of bounds.
 */
import { DwParseError } from '../../shared/errors.js';
import { hostText } from '../host-text.js';

export type SqlValue = null | number | bigint | string | Uint8Array;

const HEADER = 'SQLite format 3\0';
const LEAF_TABLE = 0x0d;
const INTERIOR_TABLE = 0x05;

export class SqliteFile {
  readonly pageSize: number;
  /** Page size minus the bytes reserved at the end of each page (for extensions such as checksums). */
  private readonly usable: number;
  private readonly pageCount: number;

  constructor(
    private readonly buf: Uint8Array,
    private readonly label: string,
  ) {
    if (buf.length < 100 || Buffer.from(buf.subarray(0, 16)).toString('latin1') !== HEADER)
      this.fail('not a SQLite 3 database (bad header)');
    const raw = (buf[16]! << 8) | buf[17]!;
    this.pageSize = raw === 1 ? 65536 : raw;
    if (this.pageSize < 512 || this.pageSize > 65536 || (this.pageSize & (this.pageSize - 1)) !== 0)
      this.fail(`bad page size ${raw}`);
    this.usable = this.pageSize - buf[20]!;
    if (this.usable < 480) this.fail('bad reserved space');
    const encoding = readU32(buf, 56);
    // 0 is an empty database that never had a table; 1 is UTF-8. UTF-16 databases are not read.
    if (encoding !== 0 && encoding !== 1) this.fail(`text encoding ${encoding} (only UTF-8 is read)`);
    this.pageCount = Math.floor(buf.length / this.pageSize);
  }

  private fail(reason: string): never {
    throw new DwParseError(this.label, 0, reason);
  }

  private page(n: number): { at: number; header: number } {
    if (!Number.isInteger(n) || n < 1 || n > this.pageCount)
      this.fail(`page ${n} is out of range (1..${this.pageCount})`);
    const at = (n - 1) * this.pageSize;
    // Page 1 starts with the 100-byte file header.
    return { at, header: n === 1 ? at + 100 : at };
  }

  /** The schema's tables: name, root page and CREATE statement. */
  tables(): Map<string, { rootPage: number; sql: string }> {
    const out = new Map<string, { rootPage: number; sql: string }>();
    for (const { values } of this.rows(1)) {
      const [type, name, , rootPage, sql] = values;
      if (type === 'table' && typeof name === 'string' && typeof rootPage === 'number' && typeof sql === 'string')
        out.set(name, { rootPage, sql });
    }
    return out;
  }

  /**
   * A table's rows by name, as objects keyed by column name. The INTEGER PRIMARY KEY column (stored as
   * NULL, its value is the rowid) gets the rowid; columns added later by ALTER TABLE and absent from
   * older rows get null. Null when there is no such table.
   */
  table(name: string): Record<string, SqlValue>[] | null {
    const t = this.tables().get(name);
    if (!t) return null;
    const { columns, rowidAlias } = columnsOf(t.sql, this.label);
    const out: Record<string, SqlValue>[] = [];
    for (const { rowid, values } of this.rows(t.rootPage)) {
      const row: Record<string, SqlValue> = {};
      columns.forEach((c, i) => (row[c] = c === rowidAlias ? rowid : (values[i] ?? null)));
      out.push(row);
    }
    return out;
  }

  /** Every row of the table b-tree rooted at `root`, in rowid order. */
  *rows(root: number): Generator<{ rowid: number | bigint; values: SqlValue[] }> {
    const seen = new Set<number>();
    const stack = [root];
    // Depth first, left to right: children are pushed in reverse.
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (seen.has(n)) this.fail(`page ${n} is reached twice (a corrupt or cyclic b-tree)`);
      seen.add(n);
      const { at, header } = this.page(n);
      const type = this.byte(header);
      const cells = this.u16(header + 3);
      if (type === INTERIOR_TABLE) {
        const children: number[] = [];
        for (let i = 0; i < cells; i++) children.push(this.u32(at + this.u16(header + 12 + 2 * i)));
        children.push(this.u32(header + 8));
        for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
      } else if (type === LEAF_TABLE) {
        // Cell pointers are offsets from the start of the page, on page 1 too.
        for (let i = 0; i < cells; i++) yield this.leafCell(at + this.u16(header + 8 + 2 * i));
      } else {
        this.fail(`page ${n} is not a table b-tree page (type ${type})`);
      }
    }
  }

  private leafCell(at: number): { rowid: number | bigint; values: SqlValue[] } {
    const [size, a] = this.varint(at);
    const [rowid, b] = this.varint(a);
    const payload = this.payload(b, Number(size));
    return { rowid: small(rowid), values: this.record(payload) };
  }

  /** A cell's payload, following overflow pages when it does not fit on its page. */
  private payload(at: number, size: number): Uint8Array {
    if (size > this.buf.length) this.fail(`a cell claims ${size} bytes, more than the file holds`);
    const u = this.usable;
    const maxLocal = u - 35;
    if (size <= maxLocal) return this.slice(at, size);
    const minLocal = Math.floor(((u - 12) * 32) / 255) - 23;
    const k = minLocal + ((size - minLocal) % (u - 4));
    const local = k <= maxLocal ? k : minLocal;
    const out = new Uint8Array(size);
    out.set(this.slice(at, local), 0);
    let filled = local;
    let next = this.u32(at + local);
    const seen = new Set<number>();
    while (filled < size) {
      if (next === 0 || seen.has(next)) this.fail('an overflow chain ends early or loops');
      seen.add(next);
      const { at: p } = this.page(next);
      const take = Math.min(u - 4, size - filled);
      out.set(this.slice(p + 4, take), filled);
      filled += take;
      next = this.u32(p);
    }
    return out;
  }

  /** A record: a header of serial types, then the values. */
  private record(p: Uint8Array): SqlValue[] {
    const [headerSize, first] = varintIn(p, 0, this.label);
    const end = Number(headerSize);
    if (end > p.length) this.fail('a record header runs past its payload');
    const types: number[] = [];
    for (let i = first; i < end; ) {
      const [t, n] = varintIn(p, i, this.label);
      types.push(Number(t));
      i = n;
    }
    const values: SqlValue[] = [];
    let at = end;
    for (const t of types) {
      const len = serialLength(t);
      if (at + len > p.length) this.fail('a record value runs past its payload');
      values.push(serialValue(t, p, at, len));
      at += len;
    }
    return values;
  }

  private slice(at: number, len: number): Uint8Array {
    if (at < 0 || at + len > this.buf.length) this.fail(`a read at byte ${at} runs past the end of the file`);
    return this.buf.subarray(at, at + len);
  }
  private byte(at: number): number {
    return this.slice(at, 1)[0]!;
  }
  private u16(at: number): number {
    const b = this.slice(at, 2);
    return (b[0]! << 8) | b[1]!;
  }
  private u32(at: number): number {
    return readU32(this.slice(at, 4), 0);
  }
  private varint(at: number): [bigint, number] {
    return varintIn(this.buf, at, this.label);
  }
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
}

/** SQLite's big-endian varint: up to 8 bytes of 7 bits, a 9th of 8. */
function varintIn(b: Uint8Array, at: number, label: string): [bigint, number] {
  let v = 0n;
  for (let i = 0; i < 9; i++) {
    if (at + i >= b.length) throw new DwParseError(label, 0, 'a varint runs past the end of its data');
    const c = b[at + i]!;
    if (i === 8) return [(v << 8n) | BigInt(c), at + 9];
    v = (v << 7n) | BigInt(c & 0x7f);
    if ((c & 0x80) === 0) return [v, at + i + 1];
  }
  throw new DwParseError(label, 0, 'unreachable varint');
}

function small(v: bigint): number | bigint {
  // Rowids and integers as stored are two's-complement 64-bit.
  const s = BigInt.asIntN(64, v);
  return s >= BigInt(Number.MIN_SAFE_INTEGER) && s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s;
}

function serialLength(t: number): number {
  if (t <= 4) return t;
  if (t === 5) return 6;
  if (t === 6 || t === 7) return 8;
  if (t === 8 || t === 9) return 0;
  if (t === 10 || t === 11) return 0; // reserved for internal use; never in a database file
  return t % 2 === 0 ? (t - 12) / 2 : (t - 13) / 2;
}

function serialValue(t: number, p: Uint8Array, at: number, len: number): SqlValue {
  if (t === 0 || t === 10 || t === 11) return null;
  if (t === 8) return 0;
  if (t === 9) return 1;
  if (t === 7) return Buffer.from(p.subarray(at, at + 8)).readDoubleBE(0);
  if (t <= 6) {
    let v = 0n;
    for (let i = 0; i < len; i++) v = (v << 8n) | BigInt(p[at + i]!);
    return small(BigInt.asIntN(len * 8, v));
  }
  const bytes = p.subarray(at, at + len);
  return t % 2 === 0 ? bytes.slice() : hostText(Buffer.from(bytes));
}

const CONSTRAINT = /^(constraint|primary|unique|check|foreign)\b/i;

/**
 * Column names, in order, from a CREATE TABLE statement, and the INTEGER PRIMARY KEY column if any
 * (SQLite stores it as the rowid). Table constraints are skipped; names may be quoted.
 */
export function columnsOf(sql: string, label: string): { columns: string[]; rowidAlias: string | null } {
  const open = sql.indexOf('(');
  const close = sql.lastIndexOf(')');
  if (open < 0 || close < open)
    throw new DwParseError(label, 0, `cannot read the columns of ${JSON.stringify(sql.slice(0, 80))}`);
  const parts: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let cur = '';
  const body = sql.slice(open + 1, close);
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    // Comments (libdnf's schema has them, with commas inside) are skipped, outside quotes.
    if (!quote && c === '/' && body[i + 1] === '*') {
      const e = body.indexOf('*/', i + 2);
      i = e < 0 ? body.length : e + 1;
      cur += ' ';
      continue;
    }
    if (!quote && c === '-' && body[i + 1] === '-') {
      const e = body.indexOf('\n', i);
      i = e < 0 ? body.length : e;
      cur += ' ';
      continue;
    }
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'" || c === '`' || c === '[') quote = c === '[' ? ']' : c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  parts.push(cur);
  const columns: string[] = [];
  let rowidAlias: string | null = null;
  for (const raw of parts) {
    const def = raw.trim();
    if (def === '' || CONSTRAINT.test(def)) continue;
    const m = /^(?:"((?:[^"]|"")+)"|`([^`]+)`|\[([^\]]+)\]|([A-Za-z_][A-Za-z0-9_$]*))\s*(.*)$/s.exec(def);
    if (!m) throw new DwParseError(label, 0, `cannot read the column definition ${JSON.stringify(def.slice(0, 80))}`);
    const name = (m[1]?.replace(/""/g, '"') ?? m[2] ?? m[3] ?? m[4])!;
    columns.push(name);
    if (/^integer\s+primary\s+key\b/i.test(m[5]!.trim())) rowidAlias = name;
  }
  return { columns, rowidAlias };
}
