/**
 * @module Fit a report into the controller's body limits. Compression carries a drift of tens of
 * thousands of files whole; past the limits, the report keeps its most severe deviations and says how
 * many it left out (`truncated`), so the controller knows the host has more drift than it could send
 * rather than never hearing of it.
 */
import { SEVERITIES } from '../../shared/schema/severities.js';
import type { Report } from '../../shared/schema/report.js';
import { encodeBody, type EncodedBody } from './transport.js';

export interface ReportLimits {
  /** The body as JSON, before compression: the controller's `decodedBodyLimit`. */
  maxJsonBytes: number;
  /** The body as sent (gzip-compressed when large): the controller's `bodyLimit`. */
  maxWireBytes: number;
}

/**
 * What the agent applies before spooling a scan: a little under the controller's default
 * decodedBodyLimit (64 MiB), which also keeps one scan within the spool's default bound. The size on
 * the wire is left to the controller, whose bodyLimit the agent cannot know: it answers 413, and the
 * agent halves what it sends until a report fits (see AgentService.flushOnce).
 */
export const DEFAULT_REPORT_LIMITS: ReportLimits = {
  maxJsonBytes: 60 * 1024 * 1024,
  maxWireBytes: Number.POSITIVE_INFINITY,
};

const RANK = new Map<string, number>(SEVERITIES.map((s, i) => [s, i]));

export interface Fitted {
  report: Report;
  /** Present when fitting had to encode the body to measure it. */
  body?: EncodedBody;
}

/**
 * The report itself when it fits, else a copy with at most `maxDeviations` (and as many as fit) of its
 * deviations, the most severe first. A truncated report stays truncated against its original count.
 */
export function fitReport(report: Report, limits: ReportLimits, maxDeviations = report.deviations.length): Fitted {
  const total = report.truncated?.deviations ?? report.deviations.length;
  let n = Math.min(maxDeviations, report.deviations.length);
  let sorted: Report['deviations'] | null = null;
  for (;;) {
    let candidate = report;
    if (n < report.deviations.length) {
      sorted ??= [...report.deviations].sort((a, b) => (RANK.get(b.severity) ?? 0) - (RANK.get(a.severity) ?? 0));
      candidate = { ...report, deviations: sorted.slice(0, n), truncated: { deviations: total, sent: n } };
    }
    const json = JSON.stringify(candidate);
    const jsonBytes = Buffer.byteLength(json);
    let size = jsonBytes / limits.maxJsonBytes;
    let body: EncodedBody | undefined;
    // Compressed, a body is smaller than its JSON: only a JSON body over the wire limit needs measuring.
    if (size <= 1 && jsonBytes > limits.maxWireBytes) {
      body = encodeBody(json);
      size = body.bytes.length / limits.maxWireBytes;
    }
    if (size <= 1 || n === 0) return { report: candidate, ...(body ? { body } : {}) };
    // Deviations are most of a large report and similar in size: scale down, with a margin.
    const scaled = Math.floor((n / size) * 0.9);
    n = scaled < n ? scaled : Math.floor(n / 2);
  }
}
