/**
 * @module Expected against actual as people read it, for the CLI's `report HOST` and `findings`: the
 * fields that differ as `field: expected -> actual`, an added or removed item as its fields. Hashes are
 * cut to 16 digits (--json carries them whole); strings from a host never drive the reader's terminal.
 */
type Item = Record<string, unknown> | null;

const clean = (t: string) =>
  t.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

export function showValue(v: unknown, field?: string): string {
  if (v === undefined) return '(none)';
  if (v === null) return 'null';
  if (field === 'sha256' && typeof v === 'string' && v.length > 16) return `${v.slice(0, 16)}…`;
  return clean(typeof v === 'string' ? v : JSON.stringify(v));
}

/** The fields of a modified item whose values differ (key order aside). */
export function changedFields(expected: Item, actual: Item): string[] {
  const keys = [...new Set([...Object.keys(expected ?? {}), ...Object.keys(actual ?? {})])].filter((k) => k !== 'key');
  return keys.filter((k) => JSON.stringify(expected?.[k]) !== JSON.stringify(actual?.[k])).sort();
}

const itemText = (item: Item) =>
  Object.entries(item ?? {})
    .filter(([k]) => k !== 'key')
    .map(([k, v]) => `${k}=${showValue(v, k)}`)
    .join(' ');

/** One line per changed field (modified), or one line with the item (added: actual; removed: expected). */
export function changeLines(d: { change: string; expected: Item; actual: Item }): string[] {
  if (d.change === 'added') return [`actual: ${itemText(d.actual)}`];
  if (d.change === 'removed') return [`expected: ${itemText(d.expected)}`];
  const fields = changedFields(d.expected, d.actual);
  if (fields.length === 0) return ['(no field differs)'];
  return fields.map((f) => `${f}: ${showValue(d.expected?.[f], f)} -> ${showValue(d.actual?.[f], f)}`);
}

/** The same on one line, for a table cell. */
export function changeSummary(d: { change: string; expected: Item; actual: Item }): string {
  return changeLines(d).join('; ');
}
