/** @module Human output of a check: deviations grouped by collector, expected against actual. */
import type { CheckResult } from '../shared/schema/check.js';
import { SEVERITIES, type Attribution, type Deviation } from '../shared/schema/deviation.js';

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

const DONE: Record<string, string> = {
  install: 'installed',
  reinstall: 'reinstalled',
  upgrade: 'upgraded',
  downgrade: 'downgraded',
  remove: 'removed',
  purge: 'purged',
  configure: 'configured',
};
const SOURCES: Record<Attribution['source'], string> = {
  'dpkg-log': 'dpkg.log',
  'apt-history': 'apt history',
  'dnf-history': 'dnf history',
  rpm: 'rpm database',
  'auth-log': 'auth log',
};

/**
 * One line a reviewer reads as a sentence: `upgraded by "apt-get upgrade", run by alice (1000) at
 * 2024-03-01 02:14:07 +00:00 (apt history)`. A file's line names its package and versions first,
 * since the deviation above it shows only the file.
 */
export function describeAttribution(a: Attribution): string {
  // A command line and a user come from a log on the host: never let them drive the reader's terminal.
  const clean = (t: string) =>
    t.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  let s = DONE[a.action] ?? a.action;
  if (a.ownedBy !== undefined) {
    const versions =
      a.fromVersion !== undefined && a.toVersion !== undefined
        ? ` ${a.fromVersion} -> ${a.toVersion}`
        : a.toVersion !== undefined
          ? ` ${a.toVersion}`
          : '';
    s = `owned by ${a.ownedBy}, ${s}${versions}`;
  }
  if (a.commandLine !== undefined) s += ` by "${clean(a.commandLine)}"`;
  if (a.user !== undefined) s += `, run by ${clean(a.user)}`;
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(Z|[+-]\d\d:\d\d)?$/.exec(a.at);
  const when = m ? `${m[1]} ${m[2]}${m[3] === undefined ? '' : ` ${m[3] === 'Z' ? 'UTC' : m[3]}`}` : a.at;
  return `${s} at ${when} (${SOURCES[a.source]})`;
}

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
