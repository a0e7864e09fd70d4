/** @module Human output of a check: deviations grouped by collector, expected against actual. */
import type { CheckResult } from '../shared/schema/check.js';
import { SEVERITIES, type Deviation } from '../shared/schema/deviation.js';
import { describeAttribution } from '../shared/attribution-text.js';

/** Hashes are cut to 16 digits for reading; --json carries them whole. */
function show(v: unknown, field?: string): string {
  if (field === 'sha256' && typeof v === 'string') return v.slice(0, 16) + '…';
  if (v === undefined) return '(none)';
  if (v === null) return 'null';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function describeItem(item: Record<string, unknown> | null): string {
  if (!item) return '';
  return Object.entries(item)
    .filter(([k]) => k !== 'key')
    .map(([k, v]) => `${k}=${show(v, k)}`)
    .join(' ');
}

export { describeAttribution };

function deviationLines(d: Deviation, color: boolean): string[] {
  const lines = deviationBody(d, color);
  if (d.attribution) lines.push(`      ${describeAttribution(d.attribution)}`);
  return lines;
}

function deviationBody(d: Deviation, color: boolean): string[] {
  const paint = (code: string, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const sev = { critical: '31;1', high: '31', medium: '33', low: '36' }[d.severity];
  const head = `  ${d.change.padEnd(8)} ${d.key}  ${paint(sev, `[${d.severity}]`)}`;
  if (d.change === 'modified') {
    const fields = d.fields ?? [];
    return [head, ...fields.map((f) => `      ${f}: ${show(d.expected?.[f], f)} -> ${show(d.actual?.[f], f)}`)];
  }
  return [
    head,
    `      ${d.change === 'added' ? 'actual' : 'expected'}: ${describeItem(d.change === 'added' ? d.actual : d.expected)}`,
  ];
}

export function formatCheck(r: CheckResult, color = false): string {
  const lines: string[] = [];
  const image = [r.image.id, r.image.name, r.image.version].filter(Boolean).join(' ');
  lines.push(`host ${r.host.hostname ?? '(unnamed)'} (${r.host.hostId}) at ${r.root}`);
  lines.push(
    `image ${image}, manifest ${r.manifestDigest.slice(0, 19)}…, ${r.signedBy ? `signed by ${r.signedBy}` : 'signature not checked (no --pubkey)'}`,
  );
  lines.push('');
  const groups = new Map<string, Deviation[]>();
  for (const d of r.deviations) groups.set(d.collector, [...(groups.get(d.collector) ?? []), d]);
  for (const c of r.collectors) {
    const devs = groups.get(c.collector) ?? [];
    const status = !c.ok
      ? `FAILED: ${c.error}`
      : devs.length === 0
        ? 'no drift'
        : `${devs.length} deviation${devs.length === 1 ? '' : 's'}`;
    lines.push(`${c.collector}: ${status} (${c.items} items, ${c.durationMs} ms)`);
    for (const w of c.warnings ?? []) lines.push(`  note: ${w}`);
    for (const d of devs) lines.push(...deviationLines(d, color));
  }
  lines.push('');
  const sev = [...SEVERITIES]
    .reverse()
    .map((s) => [s, r.summary.bySeverity[s] ?? 0] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  if (!r.clean)
    lines.push(
      `DRIFT: ${r.summary.total} deviation${r.summary.total === 1 ? '' : 's'} (${sev}) in ${(r.durationMs / 1000).toFixed(1)} s`,
    );
  else if (!r.complete) lines.push(`INCOMPLETE: no drift found, but a collector failed (see above)`);
  else lines.push(`CLEAN: the host matches its manifest (${(r.durationMs / 1000).toFixed(1)} s)`);
  return lines.join('\n') + '\n';
}
