/** @module Drift reports over HTTP: GET /api/v1/drift-report?scope=fleet|image|host&id=&format=json|csv|html. */
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import type { App, AppContext } from '../app.js';
import { buildDriftReport, renderReport, REPORT_FORMATS, REPORT_STYLE_HASH, reportFileName, type ReportScope } from '../drift-report.js';

export function registerDriftReportRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/v1/drift-report',
    {
      config: { auth: 'viewer' },
      schema: {
        querystring: z.strictObject({
          scope: z.enum(['fleet', 'image', 'host']).default('fleet'),
          id: z.string().min(1).optional(),
          format: z.enum(REPORT_FORMATS).default('json'),
          /** Answer as a file download (Content-Disposition: attachment). */
          download: z.enum(['true', 'false']).default('false'),
        }),
      },
    },
    async (req, reply) => {
      const q = req.query;
      if (q.scope !== 'fleet' && !q.id) throw new DwError('DW_ERR_VALIDATION', `querystring.id: a ${q.scope} report needs the ${q.scope}'s id`);
      const scope: ReportScope = q.scope === 'fleet' ? { kind: 'fleet' } : { kind: q.scope, id: q.id! };
      const report = await buildDriftReport(ctx.store, scope, ctx.clock());
      const out = renderReport(report, q.format);
      void reply.header('content-type', out.contentType);
      void reply.header('cache-control', 'no-store');
      // The HTML report carries one style block and nothing executable.
      if (q.format === 'html') void reply.header('content-security-policy', `default-src 'none'; style-src '${REPORT_STYLE_HASH}'`);
      if (q.download === 'true') void reply.header('content-disposition', `attachment; filename="${reportFileName(report, out.extension)}"`);
      return out.body;
    },
  );
}
