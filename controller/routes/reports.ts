/** @module Report ingestion over HTTP: hosts post scans, heartbeats and events with their own credential. */
import { clockSkewMs, SENT_AT_HEADER } from '../../shared/clock-skew.js';
import { DwError, isDwError } from '../../shared/errors.js';
import { ReportSchema } from '../../shared/schema/report.js';
import type { App, AppContext } from '../app.js';
import { durationMs } from '../config.js';
import { ingestReport } from '../ingest.js';
import { TimeBudget } from '../time-budget.js';

/**
 * A scan this large that runs out of time is answered 413, not 503: retrying the same body would run
 * out again, while the agent answers 413 by resending fewer deviations, flagged truncated (which
 * taints: a host with this much drift is replaced either way). Below it, an overrun means an
 * overloaded controller, and the agent retries later.
 */
const LARGE_SCAN_DEVIATIONS = 10_000;

export function registerReportRoutes(app: App, ctx: AppContext): void {
  const budgetMs = durationMs(ctx.config.requestTimeBudget);
  // A drifted host's scan is large: its body may decompress to decodedBodyLimit (it is at most bodyLimit as sent).
  app.post(
    '/api/v1/reports',
    {
      config: { auth: 'host', wireBodyLimit: ctx.config.bodyLimit },
      bodyLimit: ctx.config.decodedBodyLimit,
      schema: { body: ReportSchema },
    },
    async (req) => {
      const principal = req.principal!;
      const hostId = principal.kind === 'host' ? principal.host.id : '';
      const started = performance.now();
      // The budget counts from here: parsing and validation before it are linear in the body limit.
      const budget = new TimeBudget(budgetMs);
      const result = await ingestReport(ctx, hostId, req.body, {
        clockSkewMs: clockSkewMs(req.headers[SENT_AT_HEADER], ctx.clock()),
        budget,
      }).catch((err: unknown) => {
        const n = req.body.deviations.length;
        if (
          isDwError(err) &&
          err.code === 'DW_ERR_TIME_BUDGET' &&
          req.body.kind === 'scan' &&
          n > LARGE_SCAN_DEVIATIONS
        ) {
          throw new DwError(
            'DW_ERR_TOO_LARGE',
            `requestTimeBudget: a scan of ${n} deviations could not be ingested within ${budgetMs} ms; nothing was stored: send fewer`,
            { deviations: n, budgetMs },
            { cause: err },
          );
        }
        throw err;
      });
      ctx.metrics.ingestSeconds.observe((performance.now() - started) / 1000);
      ctx.metrics.reports.inc({ kind: req.body.kind, status: result.status });
      return result;
    },
  );
}
