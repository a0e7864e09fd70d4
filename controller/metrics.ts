/** @module Prometheus metrics of one controller: hosts by state, reports ingested, ingest latency, rejections by reason. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { digestMemoStats } from './digest-check.js';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'driftwarden_controller_' });
  return {
    registry,
    reports: new Counter({
      name: 'driftwarden_reports_ingested_total',
      help: 'Reports accepted, by kind and outcome',
      labelNames: ['kind', 'status'] as const,
      registers: [registry],
    }),
    rejections: new Counter({
      name: 'driftwarden_requests_rejected_total',
      help: 'Requests refused, by error code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    ingestSeconds: new Histogram({
      name: 'driftwarden_report_ingest_seconds',
      help: 'Time to validate, evaluate and store one report',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    digestMemo: new Counter({
      name: 'driftwarden_digest_memo_lookups_total',
      help: 'Digest checks of a section with deviations, by result (a miss recomputes the section digest)',
      labelNames: ['result'] as const,
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ result: 'hit' }, digestMemoStats.hits);
        this.inc({ result: 'miss' }, digestMemoStats.misses);
      },
    }),
    retentionPruned: new Counter({
      name: 'driftwarden_retention_pruned_rows_total',
      help: 'Rows removed by retention, by kind (reports, findings, audit, events)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    retentionCheckpoints: new Counter({
      name: 'driftwarden_retention_checkpoints_total',
      help: 'Retention checkpoints written, by chain (audit, events)',
      labelNames: ['chain'] as const,
      registers: [registry],
    }),
    retentionPassSeconds: new Histogram({
      name: 'driftwarden_retention_pass_seconds',
      help: 'Time one retention pass took',
      buckets: [0.01, 0.1, 1, 10, 60, 600],
      registers: [registry],
    }),
    hostsByState: new Gauge({
      name: 'driftwarden_hosts',
      help: 'Hosts by state',
      labelNames: ['state'] as const,
      registers: [registry],
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
