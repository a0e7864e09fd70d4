/** @module What the package-database parsers share: the item key and the one-stanza-per-package rule. */
import { DwParseError } from '../../shared/errors.js';
import type { PackageItem } from '../../shared/schema/items.js';

/**
 * `name:arch`, as `dpkg-query` and `rpm -q --qf '%{NAME}:%{ARCH}'` spell it, so multi-arch and
 * multilib copies of one package are separate items. A package without an architecture is keyed by
 * its name alone rather than with a dangling colon.
 */
export function packageKey(name: string, arch: string): string {
  return arch === '' ? name : `${name}:${arch}`;
}

export function byKey(a: { key: string }, b: { key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** True when the string is non-empty and holds no whitespace or control characters. */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) <= 0x20 || s.charCodeAt(i) === 0x7f) return false;
  return true;
}

/**
 * Collects the packages of one database file, where each name:arch may be described once.
 * A repeated stanza that says the same thing is harmless and collapses; one that disagrees is an
 * error, because the tools resolve it silently (dpkg keeps the last) and a drift tool that picked
 * either would hide which one the host really runs.
 */
export class PackageStanzas {
  private readonly seen = new Map<string, { item: PackageItem; line: number }>();

  constructor(private readonly file: string) {}

  add(item: PackageItem, line: number): void {
    const prev = this.seen.get(item.key);
    if (prev === undefined) {
      this.seen.set(item.key, { item, line });
      return;
    }
    if (prev.item.version === item.version && prev.item.state === item.state) return;
    throw new DwParseError(
      this.file,
      line,
      `second stanza for ${item.key} (${item.version}, ${item.state}) disagrees with the one at line ${prev.line} (${prev.item.version}, ${prev.item.state})`,
    );
  }

  items(): PackageItem[] {
    return [...this.seen.values()].map((e) => e.item).sort(byKey);
  }
}
