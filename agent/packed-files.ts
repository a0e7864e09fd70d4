/**
 * @module The manifest's files section as the agent keeps it for its lifetime: packed into one string
 * of paths and a few typed arrays instead of 100k+ objects with a path and a hex hash string each
 * (for /usr's 126k items: 31 MB of heap as parsed, 17 MB packed), and turned back into items one at a time,
 * in key order, when a scan's diff or the watcher needs them. Packed only after the manifest is
 * verified, and only when every item comes back exactly as it was (same fields, same key order).
 */
import type { VerifyResult } from '../shared/manifest.js';
import { FILE_TYPES, type FileItem } from '../shared/schema/items.js';
import type { Manifest } from '../shared/schema/manifest.js';

/** Field names in the order a canonical manifest (sorted keys) and the files collector hold them. */
const FIELD_ORDER = ['error', 'gid', 'key', 'mode', 'sha256', 'size', 'target', 'type', 'uid'];
const FIELD_RANK = new Map(FIELD_ORDER.map((k, i) => [k, i]));
const TYPE_CODE = new Map<string, number>(FILE_TYPES.map((t, i) => [t, i]));
const HEX64 = /^[0-9a-f]{64}$/;
const NON_ASCII = /[^\x00-\x7f]/;
const SHA_BYTES = 32;
const HAS_SIZE = 1;
const HAS_SHA = 2;

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export class PackedFiles implements Iterable<FileItem> {
  private constructor(
    readonly length: number,
    /**
     * Every item's key in UTF-8, one after another; item i's ends at byte ends[i]. Bytes, not one joined
     * string: a single path with a character above U+00FF would make V8 hold all of them at two bytes a
     * character.
     */
    private readonly paths: Buffer,
    private readonly ends: Uint32Array,
    private readonly types: Uint8Array,
    private readonly flags: Uint8Array,
    /** uid, gid and size of item i at 3i, 3i+1, 3i+2. */
    private readonly numbers: Float64Array,
    /** Index into modeTable: a whole tree has a few dozen distinct modes. */
    private readonly modes: Uint16Array,
    private readonly modeTable: readonly string[],
    private readonly shas: Buffer,
    /** Symlink targets and errors: a small share of the items. */
    private readonly targets: ReadonlyMap<number, string>,
    private readonly errors: ReadonlyMap<number, string>,
  ) {}

  /**
   * The packed form of a files section, or null when it cannot be held exactly (keys not strictly in
   * order, a field or a key order that item() would not give back): the caller keeps the items then.
   */
  static pack(items: readonly FileItem[]): PackedFiles | null {
    const n = items.length;
    const ends = new Uint32Array(n);
    const types = new Uint8Array(n);
    const flags = new Uint8Array(n);
    const numbers = new Float64Array(3 * n);
    const modes = new Uint16Array(n);
    const modeIndex = new Map<string, number>();
    const modeTable: string[] = [];
    const shas = Buffer.alloc(SHA_BYTES * n);
    const targets = new Map<number, string>();
    const errors = new Map<number, string>();
    let length = 0;
    let previous: string | null = null;
    for (let i = 0; i < n; i++) {
      const item = items[i] as FileItem & Record<string, unknown>;
      if (!exactlyPackable(item) || (previous !== null && !(previous < item.key))) return null;
      previous = item.key;
      length += Buffer.byteLength(item.key, 'utf8');
      if (length > 0xffffffff) return null;
      ends[i] = length;
      types[i] = TYPE_CODE.get(item.type)!;
      let mode = modeIndex.get(item.mode);
      if (mode === undefined) {
        if (modeTable.length > 0xffff) return null;
        modeIndex.set(item.mode, (mode = modeTable.length));
        modeTable.push(item.mode);
      }
      modes[i] = mode;
      numbers[3 * i] = item.uid;
      numbers[3 * i + 1] = item.gid;
      if (item.size !== undefined) {
        numbers[3 * i + 2] = item.size;
        flags[i]! |= HAS_SIZE;
      }
      if (item.sha256 !== undefined) {
        shas.write(item.sha256, SHA_BYTES * i, SHA_BYTES, 'hex');
        flags[i]! |= HAS_SHA;
      }
      if (item.target !== undefined) targets.set(i, item.target);
      if (item.error !== undefined) errors.set(i, item.error);
    }
    const paths = Buffer.allocUnsafe(length);
    for (let i = 0, at = 0; i < n; i++) at += paths.write(items[i]!.key, at, 'utf8');
    return new PackedFiles(n, paths, ends, types, flags, numbers, modes, modeTable, shas, targets, errors);
  }

  keyAt(i: number): string {
    return this.paths.toString('utf8', i === 0 ? 0 : this.ends[i - 1]!, this.ends[i]!);
  }

  /** Item i as the manifest held it: the same fields in the same order. */
  item(i: number): FileItem {
    const o: Record<string, unknown> = {};
    const error = this.errors.get(i);
    if (error !== undefined) o.error = error;
    o.gid = this.numbers[3 * i + 1];
    o.key = this.keyAt(i);
    o.mode = this.modeTable[this.modes[i]!];
    const f = this.flags[i]!;
    if (f & HAS_SHA) o.sha256 = this.shas.toString('hex', SHA_BYTES * i, SHA_BYTES * (i + 1));
    if (f & HAS_SIZE) o.size = this.numbers[3 * i + 2];
    const target = this.targets.get(i);
    if (target !== undefined) o.target = target;
    o.type = FILE_TYPES[this.types[i]!];
    o.uid = this.numbers[3 * i];
    return o as FileItem;
  }

  /** The item with this key (keys are sorted: a binary search), or undefined. */
  get(key: string): FileItem | undefined {
    let lo = 0;
    let hi = this.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const k = this.keyAt(mid);
      if (k === key) return this.item(mid);
      if (k < key) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** True when `items` has exactly these keys in this order. */
  sameKeys(items: readonly { key: string }[]): boolean {
    if (items.length !== this.length) return false;
    for (let i = 0; i < items.length; i++) if (items[i]!.key !== this.keyAt(i)) return false;
    return true;
  }

  *[Symbol.iterator](): Iterator<FileItem> {
    for (let i = 0; i < this.length; i++) yield this.item(i);
  }
}

/** Every field one item() writes back, of a type it writes back unchanged, in item()'s order. */
function exactlyPackable(item: Record<string, unknown>): boolean {
  const keys = Object.keys(item);
  let last = -1;
  for (const k of keys) {
    const rank = FIELD_RANK.get(k);
    if (rank === undefined || rank <= last || item[k] === undefined) return false;
    last = rank;
  }
  // A key that UTF-8 cannot carry (a lone surrogate) would come back changed.
  if (
    typeof item.key !== 'string' ||
    (NON_ASCII.test(item.key) && Buffer.from(item.key, 'utf8').toString('utf8') !== item.key)
  )
    return false;
  if (!TYPE_CODE.has(item.type as string) || typeof item.mode !== 'string') return false;
  if (!count(item.uid) || !count(item.gid) || (item.size !== undefined && !count(item.size))) return false;
  if (item.sha256 !== undefined && (typeof item.sha256 !== 'string' || !HEX64.test(item.sha256))) return false;
  if (item.target !== undefined && typeof item.target !== 'string') return false;
  return item.error === undefined || typeof item.error === 'string';
}

/**
 * The verified manifest as a scan keeps it: the files section packed, and the manifest's own array of
 * its items let go (it is most of a manifest's memory). Packing happens after verification, from the
 * verified items; a section that cannot be packed exactly stays as it is.
 */
export function keepPacked(loaded: { manifest: Manifest; verified: VerifyResult }): {
  manifest: Manifest;
  verified: VerifyResult;
  files: PackedFiles | null;
} {
  const { manifest, verified } = loaded;
  const section = manifest.sections.files;
  const files = section ? PackedFiles.pack(section.items) : null;
  if (!section || !files) return { manifest, verified, files: null };
  return {
    manifest: { ...manifest, sections: { ...manifest.sections, files: { ...section, items: [] } } },
    verified,
    files,
  };
}
