/**
 * @module Drift reports people hand on: one host, one image or the whole fleet, as JSON, CSV (one row
 * per current deviation) or a printable HTML page. Built from the store a page at a time; findings
 * (identical deviations across hosts) are aggregated while paging.
 */
import { createHash } from 'node:crypto';
import { DwError } from '../shared/errors.js';
import { actualDigest } from './store/migration-0003.js';
import { HOST_STATES, type HostDeviationWithHost, type HostRow, type HostState, type StoreTx } from './store/types.js';

export const REPORT_SCHEMA = 'driftwarden/drift-report/v1';
export const REPORT_FORMATS = ['json', 'csv', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];
export type ReportScope = { kind: 'fleet' } | { kind: 'image'; id: string } | { kind: 'host'; id: string };

/** A report is a document, not an export of the database: past this many deviations it says it was cut. */
export const MAX_REPORT_DEVIATIONS = 200_000;
const PAGE = 5_000;

export interface DriftReport {
  schema: typeof REPORT_SCHEMA;
  generatedAt: string;
  scope: ReportScope;
  host?: Pick<HostRow, 'id' | 'hostname' | 'imageId' | 'group' | 'state' | 'stateSince' | 'lastSeenAt' | 'taintedAt'>;
  summary: { hosts: number; byState: Record<HostState, number>; deviations: number; bySeverity: Record<string, number>; byAction: Record<string, number>; truncated: boolean };
  findings: { collector: string; key: string; change: string; severity: string; hosts: number; firstSeenAt: string; actual: unknown; expected: unknown }[];
  deviations: { hostId: string; hostname: string | null; imageId: string; group: string | null; state: HostState; collector: string; key: string; change: string; severity: string; action: string; decidedBy: string; expected: unknown; actual: unknown; firstSeenAt: string; lastSeenAt: string }[];
}

const SEV_RANK: Record<string, number> = { low: 1, medium: 2, high: 3, critical: 4 };

export async function buildDriftReport(store: StoreTx, scope: ReportScope, now: Date): Promise<DriftReport> {
  let byState: Record<HostState, number>;
  let host: DriftReport['host'];
  if (scope.kind === 'host') {
    const h = await store.getHost(scope.id);
    if (!h) throw new DwError('DW_ERR_NOT_FOUND', `no host ${scope.id}`);
    host = { id: h.id, hostname: h.hostname, imageId: h.imageId, group: h.group, state: h.state, stateSince: h.stateSince, lastSeenAt: h.lastSeenAt, taintedAt: h.taintedAt };
    byState = Object.fromEntries(HOST_STATES.map((s) => [s, s === h.state ? 1 : 0])) as Record<HostState, number>;
  } else if (scope.kind === 'image') {
    byState = Object.fromEntries(await Promise.all(HOST_STATES.map(async (s) => [s, await store.countHosts({ imageId: scope.id, state: s })]))) as Record<HostState, number>;
    if (Object.values(byState).every((n) => n === 0) && !(await store.getManifest(scope.id))) throw new DwError('DW_ERR_NOT_FOUND', `no image ${scope.id} (no manifest and no hosts)`);
  } else byState = await store.countHostsByState();

  const deviations: DriftReport['deviations'] = [];
  const findings = new Map<string, DriftReport['findings'][number]>();
  const bySeverity: Record<string, number> = {};
  const byAction: Record<string, number> = {};
  let total = 0;
  let after: [string, string, string] | undefined;
  for (;;) {
    const page: HostDeviationWithHost[] = await store.listDeviations({ hostId: scope.kind === 'host' ? scope.id : undefined, imageId: scope.kind === 'image' ? scope.id : undefined, after, limit: PAGE });
    for (const d of page) {
      total++;
      bySeverity[d.severity] = (bySeverity[d.severity] ?? 0) + 1;
      byAction[d.action] = (byAction[d.action] ?? 0) + 1;
      const k = `${d.collector}\u0000${d.key}\u0000${d.change}\u0000${actualDigest(d.actual)}`;
      const f = findings.get(k);
      if (!f) findings.set(k, { collector: d.collector, key: d.key, change: d.change, severity: d.severity, hosts: 1, firstSeenAt: d.firstSeenAt, actual: d.actual, expected: d.expected });
      else {
        f.hosts++;
        if (d.firstSeenAt < f.firstSeenAt) f.firstSeenAt = d.firstSeenAt;
        if ((SEV_RANK[d.severity] ?? 0) > (SEV_RANK[f.severity] ?? 0)) f.severity = d.severity;
      }
      if (deviations.length < MAX_REPORT_DEVIATIONS) {
        deviations.push({ hostId: d.hostId, hostname: d.hostname, imageId: d.imageId, group: d.group, state: d.state, collector: d.collector, key: d.key, change: d.change, severity: d.severity, action: d.action, decidedBy: d.decidedBy, expected: d.expected, actual: d.actual, firstSeenAt: d.firstSeenAt, lastSeenAt: d.lastSeenAt });
      }
    }
    if (page.length < PAGE) break;
    const last = page[page.length - 1]!;
    after = [last.hostId, last.collector, last.key];
  }
  const sortedFindings = [...findings.values()].sort((a, b) => b.hosts - a.hosts || (SEV_RANK[b.severity] ?? 0) - (SEV_RANK[a.severity] ?? 0) || a.firstSeenAt.localeCompare(b.firstSeenAt) || a.key.localeCompare(b.key));
  return {
    schema: REPORT_SCHEMA,
    generatedAt: now.toISOString(),
    scope,
    ...(host ? { host } : {}),
    summary: { hosts: Object.values(byState).reduce((a, b) => a + b, 0), byState, deviations: total, bySeverity, byAction, truncated: total > deviations.length },
    findings: sortedFindings,
    deviations,
  };
}

// ---- renderings ----

export const CSV_COLUMNS = ['host_id', 'hostname', 'image_id', 'group', 'state', 'collector', 'key', 'change', 'severity', 'action', 'decided_by', 'expected', 'actual', 'first_seen_at', 'last_seen_at'] as const;

/**
 * RFC 4180 quoting, and a leading apostrophe on cells a spreadsheet would run as a formula (a file
 * path or cron command can start with =, +, - or @: CSV injection).
 */
export function csvCell(v: unknown): string {
  let s = v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function reportCsv(r: DriftReport): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const d of r.deviations) {
    lines.push([d.hostId, d.hostname, d.imageId, d.group, d.state, d.collector, d.key, d.change, d.severity, d.action, d.decidedBy, d.expected, d.actual, d.firstSeenAt, d.lastSeenAt].map(csvCell).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

const esc = (v: unknown): string =>
  (v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v)).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export const REPORT_STYLE = `body{font:13px/1.4 system-ui,sans-serif;margin:2em;color:#111}h1{font-size:20px}h2{font-size:16px;margin-top:1.6em}table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}th{background:#eee}td.v{font-family:ui-monospace,monospace;font-size:11px;word-break:break-all}.critical{color:#b00;font-weight:bold}.high{color:#c50}.meta{color:#555}@media print{body{margin:0}h2{break-after:avoid}tr{break-inside:avoid}}`;

/** The CSP hash of the report's one style block, so the page can be served with no inline code allowed otherwise. */
export const REPORT_STYLE_HASH = `sha256-${createHash('sha256').update(REPORT_STYLE).digest('base64')}`;

function scopeTitle(s: ReportScope): string {
  return s.kind === 'fleet' ? 'the fleet' : `${s.kind} ${s.id}`;
}

export function reportHtml(r: DriftReport): string {
  const rows = <T,>(items: T[], cells: (x: T) => unknown[]) => items.map((x) => `<tr>${cells(x).map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  const sev = (s: string) => `<span class="${esc(s)}">${esc(s)}</span>`;
  const states = Object.entries(r.summary.byState).filter(([, n]) => n > 0);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report: ${esc(scopeTitle(r.scope))}</title>
<style>${REPORT_STYLE}</style></head><body>
<h1>Drift report: ${esc(scopeTitle(r.scope))}</h1>
<p class="meta">Generated ${esc(r.generatedAt)} by driftwarden (${esc(REPORT_SCHEMA)}).${r.summary.truncated ? ` Only the first ${r.deviations.length} of ${r.summary.deviations} deviations are listed.` : ''}</p>
${r.host ? `<p>Host <b>${esc(r.host.id)}</b> (${esc(r.host.hostname ?? 'unnamed')}), image ${esc(r.host.imageId)}, group ${esc(r.host.group ?? '-')}: <b>${esc(r.host.state)}</b> since ${esc(r.host.stateSince)}.</p>` : ''}
<h2>Summary</h2>
<table><tr><th>hosts</th><td>${r.summary.hosts}</td></tr>
<tr><th>by state</th><td>${states.map(([s, n]) => `${esc(s)}: ${n}`).join(', ') || '-'}</td></tr>
<tr><th>current deviations</th><td>${r.summary.deviations}</td></tr>
<tr><th>by severity</th><td>${Object.entries(r.summary.bySeverity).map(([s, n]) => `${esc(s)}: ${n}`).join(', ') || '-'}</td></tr>
<tr><th>by policy action</th><td>${Object.entries(r.summary.byAction).map(([s, n]) => `${esc(s)}: ${n}`).join(', ') || '-'}</td></tr></table>
<h2>Findings (${r.findings.length})</h2>
<p class="meta">Identical deviations across hosts are one finding.</p>
<table><tr><th>hosts</th><th>severity</th><th>collector</th><th>change</th><th>key</th><th>first seen</th><th>expected</th><th>actual</th></tr>
${rows(r.findings, (f) => [f.hosts, sev(f.severity), esc(f.collector), esc(f.change), esc(f.key), esc(f.firstSeenAt), `<span class="v">${esc(f.expected)}</span>`, `<span class="v">${esc(f.actual)}</span>`])}
</table>
<h2>Deviations (${r.deviations.length})</h2>
<table><tr><th>host</th><th>state</th><th>collector</th><th>change</th><th>key</th><th>severity</th><th>action</th><th>expected</th><th>actual</th><th>first seen</th></tr>
${rows(r.deviations, (d) => [esc(d.hostname ?? d.hostId), esc(d.state), esc(d.collector), esc(d.change), esc(d.key), sev(d.severity), esc(d.action), `<span class="v">${esc(d.expected)}</span>`, `<span class="v">${esc(d.actual)}</span>`, esc(d.firstSeenAt)])}
</table>
</body></html>
`;
}

export function renderReport(r: DriftReport, format: ReportFormat): { body: string; contentType: string; extension: string } {
  if (format === 'csv') return { body: reportCsv(r), contentType: 'text/csv; charset=utf-8', extension: 'csv' };
  if (format === 'html') return { body: reportHtml(r), contentType: 'text/html; charset=utf-8', extension: 'html' };
  return { body: JSON.stringify(r, null, 2) + '\n', contentType: 'application/json; charset=utf-8', extension: 'json' };
}

export function reportFileName(r: DriftReport, ext: string): string {
  const what = r.scope.kind === 'fleet' ? 'fleet' : `${r.scope.kind}-${r.scope.id}`;
  return `drift-${what.replace(/[^A-Za-z0-9._-]/g, '_')}-${r.generatedAt.slice(0, 10)}.${ext}`;
}
