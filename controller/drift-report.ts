/**
 * @module Drift reports people hand on: one host, one image or the whole fleet, as JSON, CSV or JSON
 * lines (one row per current deviation), or a printable HTML page. Nothing holds the whole fleet: the
 * exports stream the deviations from the store a page at a time (keyset cursor) into the reply, and
 * the HTML report shows one page of them with a link to the next.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { DwError } from '../shared/errors.js';
import { severityRank } from '../shared/severity.js';
import { describeAttribution } from '../shared/attribution-text.js';
import type { Attribution } from '../shared/schema/deviation.js';
import { actualDigest } from './store/migration-0003.js';
import { HOST_STATES, type HostDeviationWithHost, type HostRow, type HostState, type StoreTx } from './store/types.js';

export const REPORT_SCHEMA = 'driftwarden/drift-report/v1';
export const REPORT_FORMATS = ['json', 'csv', 'html', 'jsonl'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];
export type ReportScope = { kind: 'fleet' } | { kind: 'image'; id: string } | { kind: 'host'; id: string };

/** Rows per store query while streaming: a page is one chunk of the reply (a few hundred kB). */
const PAGE = 1_000;
/** Deviations on one HTML page by default, and at most. */
export const HTML_PAGE = 1_000;
export const MAX_HTML_PAGE = 5_000;
/** The HTML report lists the most widespread findings; the exports have them all. */
const HTML_FINDINGS = 500;

export type DeviationCursor = [hostId: string, collector: string, key: string];

export interface DriftReport {
  schema: typeof REPORT_SCHEMA;
  generatedAt: string;
  scope: ReportScope;
  host?: Pick<HostRow, 'id' | 'hostname' | 'imageId' | 'group' | 'state' | 'stateSince' | 'lastSeenAt' | 'taintedAt'>;
  /** `truncated`: the report lists fewer deviations than the scope has (an HTML page; the exports never are). */
  summary: {
    hosts: number;
    byState: Record<HostState, number>;
    deviations: number;
    bySeverity: Record<string, number>;
    byAction: Record<string, number>;
    truncated: boolean;
  };
  findings: {
    collector: string;
    key: string;
    change: string;
    severity: string;
    hosts: number;
    firstSeenAt: string;
    actual: unknown;
    expected: unknown;
    /** One affected host's record of who or what made the change, where any host has one. */
    attribution: Attribution | null;
  }[];
  deviations: ReportDeviation[];
}
export type ReportDeviation = {
  hostId: string;
  hostname: string | null;
  imageId: string;
  group: string | null;
  state: HostState;
  collector: string;
  key: string;
  change: string;
  severity: string;
  action: string;
  decidedBy: string;
  expected: unknown;
  actual: unknown;
  firstSeenAt: string;
  lastSeenAt: string;
  /** Who or what made the change, from the host's package-manager or auth log; null when it keeps none. */
  attribution: Attribution | null;
};

function reportDeviation(d: HostDeviationWithHost): ReportDeviation {
  return {
    hostId: d.hostId,
    hostname: d.hostname,
    imageId: d.imageId,
    group: d.group,
    state: d.state,
    collector: d.collector,
    key: d.key,
    change: d.change,
    severity: d.severity,
    action: d.action,
    decidedBy: d.decidedBy,
    expected: d.expected,
    actual: d.actual,
    firstSeenAt: d.firstSeenAt,
    lastSeenAt: d.lastSeenAt,
    attribution: d.attribution ?? null,
  };
}

/** The scope's current deviations, a page at a time, in (host, collector, key) order, after `after`. */
export async function* deviationPages(
  store: StoreTx,
  scope: ReportScope,
  after?: DeviationCursor,
  pageSize = PAGE,
): AsyncGenerator<HostDeviationWithHost[]> {
  let cursor = after;
  for (;;) {
    const page = await store.listDeviations({
      hostId: scope.kind === 'host' ? scope.id : undefined,
      imageId: scope.kind === 'image' ? scope.id : undefined,
      after: cursor,
      limit: pageSize,
    });
    if (page.length > 0) yield page;
    if (page.length < pageSize) return;
    const last = page[page.length - 1]!;
    cursor = [last.hostId, last.collector, last.key];
  }
}

/** The scope's hosts by state (and the host, for a host report); unknown hosts and images are 404. */
export async function scopeHosts(
  store: StoreTx,
  scope: ReportScope,
): Promise<{ byState: Record<HostState, number>; host?: DriftReport['host'] }> {
  if (scope.kind === 'host') {
    const h = await store.getHost(scope.id);
    if (!h) throw new DwError('DW_ERR_NOT_FOUND', `no host ${scope.id}`);
    const host = {
      id: h.id,
      hostname: h.hostname,
      imageId: h.imageId,
      group: h.group,
      state: h.state,
      stateSince: h.stateSince,
      lastSeenAt: h.lastSeenAt,
      taintedAt: h.taintedAt,
    };
    return {
      host,
      byState: Object.fromEntries(HOST_STATES.map((s) => [s, s === h.state ? 1 : 0])) as Record<HostState, number>,
    };
  }
  if (scope.kind === 'image') {
    const byState = Object.fromEntries(
      await Promise.all(HOST_STATES.map(async (s) => [s, await store.countHosts({ imageId: scope.id, state: s })])),
    ) as Record<HostState, number>;
    if (Object.values(byState).every((n) => n === 0) && !(await store.getManifest(scope.id)))
      throw new DwError('DW_ERR_NOT_FOUND', `no image ${scope.id} (no manifest and no hosts)`);
    return { byState };
  }
  return { byState: await store.countHostsByState() };
}

/**
 * Everything but the deviations: the scope's hosts by state, and one pass over its deviations for
 * the counts and the findings (identical deviations across hosts), keeping only the findings. The
 * deviations are read again for the listing, so a report written while hosts report may list a few
 * more or fewer than its summary counts.
 */
export async function reportHead(store: StoreTx, scope: ReportScope, now: Date): Promise<DriftReport> {
  const { byState, host } = await scopeHosts(store, scope);
  const findings = new Map<string, DriftReport['findings'][number]>();
  const bySeverity: Record<string, number> = {};
  const byAction: Record<string, number> = {};
  let total = 0;
  for await (const page of deviationPages(store, scope)) {
    for (const d of page) {
      total++;
      bySeverity[d.severity] = (bySeverity[d.severity] ?? 0) + 1;
      byAction[d.action] = (byAction[d.action] ?? 0) + 1;
      const k = `${d.collector}\u0000${d.key}\u0000${d.change}\u0000${actualDigest(d.actual)}`;
      const f = findings.get(k);
      if (!f)
        findings.set(k, {
          collector: d.collector,
          key: d.key,
          change: d.change,
          severity: d.severity,
          hosts: 1,
          firstSeenAt: d.firstSeenAt,
          actual: d.actual,
          expected: d.expected,
          attribution: d.attribution ?? null,
        });
      else {
        f.hosts++;
        if (f.attribution === null && d.attribution) f.attribution = d.attribution;
        if (d.firstSeenAt < f.firstSeenAt) f.firstSeenAt = d.firstSeenAt;
        if (severityRank(d.severity) > severityRank(f.severity)) f.severity = d.severity;
      }
    }
  }
  const sortedFindings = [...findings.values()].sort(
    (a, b) =>
      b.hosts - a.hosts ||
      severityRank(b.severity) - severityRank(a.severity) ||
      a.firstSeenAt.localeCompare(b.firstSeenAt) ||
      a.key.localeCompare(b.key),
  );
  return {
    schema: REPORT_SCHEMA,
    generatedAt: now.toISOString(),
    scope,
    ...(host ? { host } : {}),
    summary: {
      hosts: Object.values(byState).reduce((a, b) => a + b, 0),
      byState,
      deviations: total,
      bySeverity,
      byAction,
      truncated: false,
    },
    findings: sortedFindings,
    deviations: [],
  };
}

/**
 * A report in memory with at most `limit` deviations after `after` (an HTML page, or a small scope),
 * and the cursor of the next page (null on the last).
 */
export async function buildDriftReport(
  store: StoreTx,
  scope: ReportScope,
  now: Date,
  opts: { after?: DeviationCursor; limit?: number } = {},
): Promise<{ report: DriftReport; next: DeviationCursor | null }> {
  const report = await reportHead(store, scope, now);
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  let next: DeviationCursor | null = null;
  for await (const page of deviationPages(
    store,
    scope,
    opts.after,
    Number.isFinite(limit) ? Math.min(PAGE, limit + 1) : PAGE,
  )) {
    for (const d of page) {
      if (report.deviations.length === limit) {
        const last = report.deviations[limit - 1]!;
        next = [last.hostId, last.collector, last.key];
        break;
      }
      report.deviations.push(reportDeviation(d));
    }
    if (next) break;
  }
  report.summary.truncated = next !== null || opts.after !== undefined;
  return { report, next };
}

/** A page cursor in a URL: base64url of the JSON triple. */
export function encodeCursor(c: DeviationCursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

export function decodeCursor(text: string): DeviationCursor {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    v = null;
  }
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'string')) {
    throw new DwError(
      'DW_ERR_VALIDATION',
      "querystring.after: not a drift-report page cursor (take it from the previous page's next link)",
    );
  }
  return v as DeviationCursor;
}

// ---- renderings ----

export const CSV_COLUMNS = [
  'host_id',
  'hostname',
  'image_id',
  'group',
  'state',
  'collector',
  'key',
  'change',
  'severity',
  'action',
  'decided_by',
  'expected',
  'actual',
  'first_seen_at',
  'last_seen_at',
  'attribution',
] as const;

/**
 * What starts a formula in a spreadsheet (OWASP's CSV injection list: = + - @, tab, CR), and the
 * full-width forms some locales turn into them.
 */
const FORMULA_START = /^[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/;
/**
 * The same after anything a spreadsheet may split a line at. A `;` locale reads our `,` file as one
 * field per `;` and ignores quotes that do not open a field, so `a;=HYPERLINK(...)` becomes a formula
 * cell there; a line break in a quoted cell starts a new row for it, and a tab a new field in a
 * tab-separated import. Leading spaces and quotes are skipped, as some applications do.
 */
const FORMULA_AFTER_SEPARATOR = /([,;\t\r\n][ "]*)([=+\-@\uFF1D\uFF0B\uFF0D\uFF20])/g;

/**
 * RFC 4180 quoting, and an apostrophe before anything a spreadsheet would run as a formula (a file
 * path or cron command can start with =, +, - or @: CSV injection), at the start of the cell and at
 * the start of every piece a spreadsheet might split it into.
 */
export function csvCell(v: unknown): string {
  let s = v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  if (FORMULA_START.test(s)) s = `'${s}`;
  s = s.replace(FORMULA_AFTER_SEPARATOR, "$1'$2");
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function csvRow(d: ReportDeviation): string {
  return [
    d.hostId,
    d.hostname,
    d.imageId,
    d.group,
    d.state,
    d.collector,
    d.key,
    d.change,
    d.severity,
    d.action,
    d.decidedBy,
    d.expected,
    d.actual,
    d.firstSeenAt,
    d.lastSeenAt,
    d.attribution ? describeAttribution(d.attribution) : '',
  ]
    .map(csvCell)
    .join(',');
}

export function reportCsv(r: DriftReport): string {
  const lines = [CSV_COLUMNS.join(','), ...r.deviations.map(csvRow)];
  return lines.join('\r\n') + '\r\n';
}

/** One element of the JSON report's deviations array, as JSON.stringify(report, null, 2) writes it. */
const jsonElement = (d: ReportDeviation): string => `    ${JSON.stringify(d, null, 2).replaceAll('\n', '\n    ')}`;

/**
 * The report's text as a stream: the head (for JSON: summary and findings) first, then each page of
 * deviations as the store yields it. Readable.from pulls the next page only when the reply has taken
 * the last one, so a slow client holds one page in memory, not the fleet. JSON and CSV are byte for
 * byte what renderReport makes of the whole report in memory.
 */
export type ReportStream = { format: 'csv' | 'jsonl'; scope: ReportScope } | { format: 'json'; head: DriftReport };

export function streamReport(store: StoreTx, what: ReportStream): Readable {
  return Readable.from(
    what.format === 'json' ? jsonChunks(store, what.head) : rowChunks(store, what.scope, what.format),
    { objectMode: false },
  );
}

async function* rowChunks(store: StoreTx, scope: ReportScope, format: 'csv' | 'jsonl'): AsyncGenerator<string> {
  if (format === 'csv') yield CSV_COLUMNS.join(',') + '\r\n';
  const line =
    format === 'csv' ? (d: ReportDeviation) => csvRow(d) + '\r\n' : (d: ReportDeviation) => JSON.stringify(d) + '\n';
  for await (const page of deviationPages(store, scope)) yield page.map((d) => line(reportDeviation(d))).join('');
}

/** One element of the JSON report's findings array, as JSON.stringify(report, null, 2) writes it. */
const findingElement = (f: DriftReport['findings'][number]): string =>
  `    ${JSON.stringify(f, null, 2).replaceAll('\n', '\n    ')}`;

async function* jsonChunks(store: StoreTx, head: DriftReport): AsyncGenerator<string> {
  // The head is written with empty `findings` and `deviations` (its last two keys); both arrays are
  // opened there and filled, the findings a slice at a time, then dropped before the deviations.
  const text = JSON.stringify({ ...head, findings: [], deviations: [] }, null, 2);
  const tail = '[],\n  "deviations": []\n}';
  let out = text.slice(0, -tail.length);
  const findings = head.findings;
  if (findings.length === 0) out += '[],\n  "deviations": ';
  else {
    for (let i = 0; i < findings.length; i += PAGE) {
      yield `${out}${i === 0 ? '[\n' : ',\n'}${findings
        .slice(i, i + PAGE)
        .map(findingElement)
        .join(',\n')}`;
      out = '';
    }
    out = '\n  ],\n  "deviations": ';
  }
  head.findings = [];
  let first = true;
  for await (const page of deviationPages(store, head.scope)) {
    const body = page.map((d) => jsonElement(reportDeviation(d))).join(',\n');
    yield first ? `${out}[\n${body}` : `,\n${body}`;
    first = false;
  }
  yield first ? `${out}[]\n}\n` : '\n  ]\n}\n';
}

const esc = (v: unknown): string =>
  (v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v)).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

export const REPORT_STYLE = `body{font:13px/1.4 system-ui,sans-serif;margin:2em;color:#111}h1{font-size:20px}h2{font-size:16px;margin-top:1.6em}table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}th{background:#eee}td.v{font-family:ui-monospace,monospace;font-size:11px;word-break:break-all}.critical{color:#b00;font-weight:bold}.high{color:#c50}.meta{color:#555}@media print{body{margin:0}h2{break-after:avoid}tr{break-inside:avoid}}`;

/** The CSP hash of the report's one style block, so the page can be served with no inline code allowed otherwise. */
export const REPORT_STYLE_HASH = `sha256-${createHash('sha256').update(REPORT_STYLE).digest('base64')}`;

/** Who or what made a change, or a muted "no record" so a reader knows it was looked for. */
function attributionCell(a: Attribution | null): string {
  return a
    ? `<span class="who">${esc(describeAttribution(a))}</span>`
    : '<span class="meta">no record on the host</span>';
}

function scopeTitle(s: ReportScope): string {
  return s.kind === 'fleet' ? 'the fleet' : `${s.kind} ${s.id}`;
}

/** `nextHref`: the URL of the next page of deviations, when there is one. */
export function reportHtml(r: DriftReport, nextHref: string | null = null): string {
  const rows = <T>(items: T[], cells: (x: T) => unknown[]) =>
    items
      .map(
        (x) =>
          `<tr>${cells(x)
            .map((c) => `<td>${c}</td>`)
            .join('')}</tr>`,
      )
      .join('\n');
  const sev = (s: string) => `<span class="${esc(s)}">${esc(s)}</span>`;
  const states = Object.entries(r.summary.byState).filter(([, n]) => n > 0);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report: ${esc(scopeTitle(r.scope))}</title>
<style>${REPORT_STYLE}</style></head><body>
<h1>Drift report: ${esc(scopeTitle(r.scope))}</h1>
<p class="meta">Generated ${esc(r.generatedAt)} by driftwarden (${esc(REPORT_SCHEMA)}).${r.summary.truncated ? ` This page lists ${r.deviations.length} of the ${r.summary.deviations} deviations; the JSON, CSV and JSON-lines exports have all of them.` : ''}</p>
${r.host ? `<p>Host <b>${esc(r.host.id)}</b> (${esc(r.host.hostname ?? 'unnamed')}), image ${esc(r.host.imageId)}, group ${esc(r.host.group ?? '-')}: <b>${esc(r.host.state)}</b> since ${esc(r.host.stateSince)}.</p>` : ''}
<h2>Summary</h2>
<table><tr><th>hosts</th><td>${r.summary.hosts}</td></tr>
<tr><th>by state</th><td>${states.map(([s, n]) => `${esc(s)}: ${n}`).join(', ') || '-'}</td></tr>
<tr><th>current deviations</th><td>${r.summary.deviations}</td></tr>
<tr><th>by severity</th><td>${
    Object.entries(r.summary.bySeverity)
      .map(([s, n]) => `${esc(s)}: ${n}`)
      .join(', ') || '-'
  }</td></tr>
<tr><th>by policy action</th><td>${
    Object.entries(r.summary.byAction)
      .map(([s, n]) => `${esc(s)}: ${n}`)
      .join(', ') || '-'
  }</td></tr></table>
<h2>Findings (${r.findings.length})</h2>
<p class="meta">Identical deviations across hosts are one finding.${r.findings.length > HTML_FINDINGS ? ` The ${HTML_FINDINGS} most widespread are listed.` : ''}</p>
<table><tr><th>hosts</th><th>severity</th><th>collector</th><th>change</th><th>key</th><th>first seen</th><th>expected</th><th>actual</th><th>made by</th></tr>
${rows(r.findings.slice(0, HTML_FINDINGS), (f) => [f.hosts, sev(f.severity), esc(f.collector), esc(f.change), esc(f.key), esc(f.firstSeenAt), `<span class="v">${esc(f.expected)}</span>`, `<span class="v">${esc(f.actual)}</span>`, attributionCell(f.attribution)])}
</table>
<h2>Deviations (${r.deviations.length})</h2>
<table><tr><th>host</th><th>state</th><th>collector</th><th>change</th><th>key</th><th>severity</th><th>action</th><th>expected</th><th>actual</th><th>first seen</th><th>made by</th></tr>
${rows(r.deviations, (d) => [esc(d.hostname ?? d.hostId), esc(d.state), esc(d.collector), esc(d.change), esc(d.key), sev(d.severity), esc(d.action), `<span class="v">${esc(d.expected)}</span>`, `<span class="v">${esc(d.actual)}</span>`, esc(d.firstSeenAt), attributionCell(d.attribution)])}
</table>${nextHref ? `\n<p><a href="${esc(nextHref)}">Next page of deviations</a></p>` : ''}
</body></html>
`;
}

export const REPORT_CONTENT_TYPES: Record<ReportFormat, string> = {
  json: 'application/json; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  jsonl: 'application/x-ndjson; charset=utf-8',
  html: 'text/html; charset=utf-8',
};

/** A whole report rendered in memory (a host's, a page, tests); the route streams the exports instead. */
export function renderReport(
  r: DriftReport,
  format: ReportFormat,
): { body: string; contentType: string; extension: string } {
  const contentType = REPORT_CONTENT_TYPES[format];
  if (format === 'csv') return { body: reportCsv(r), contentType, extension: 'csv' };
  if (format === 'html') return { body: reportHtml(r), contentType, extension: 'html' };
  if (format === 'jsonl')
    return { body: r.deviations.map((d) => JSON.stringify(d) + '\n').join(''), contentType, extension: 'jsonl' };
  return { body: JSON.stringify(r, null, 2) + '\n', contentType, extension: 'json' };
}

export function reportFileName(r: Pick<DriftReport, 'scope' | 'generatedAt'>, ext: string): string {
  const what = r.scope.kind === 'fleet' ? 'fleet' : `${r.scope.kind}-${r.scope.id}`;
  return `drift-${what.replace(/[^A-Za-z0-9._-]/g, '_')}-${r.generatedAt.slice(0, 10)}.${ext}`;
}
