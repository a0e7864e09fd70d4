/**
 * @module Drift reports over HTTP: GET /api/v1/drift-report?scope=fleet|image|host&id=&format=json|csv|jsonl|html.
 * The exports stream every deviation; the HTML report is paged (`after`, `limit`).
 */
import { z } from 'zod';
import { DwError } from '../../shared/errors.js';
import type { App, AppContext } from '../app.js';
import {
  buildDriftReport,
  decodeCursor,
  encodeCursor,
  HTML_PAGE,
  MAX_HTML_PAGE,
  REPORT_CONTENT_TYPES,
  REPORT_FORMATS,
  REPORT_STYLE_HASH,
  reportFileName,
  reportHead,
  reportHtml,
  scopeHosts,
  streamReport,
  type ReportScope,
} from '../drift-report.js';

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
          /** HTML only: the page of deviations after this cursor (the previous page's next link). */
          after: z.string().min(1).max(4096).optional(),
          /** HTML only: deviations per page. */
          limit: z.coerce.number().int().min(1).max(MAX_HTML_PAGE).optional(),
        }),
      },
    },
    async (req, reply) => {
      const q = req.query;
      if (q.scope !== 'fleet' && !q.id)
        throw new DwError('DW_ERR_VALIDATION', `querystring.id: a ${q.scope} report needs the ${q.scope}'s id`);
      if (q.format !== 'html' && (q.after !== undefined || q.limit !== undefined)) {
        throw new DwError(
          'DW_ERR_VALIDATION',
          `querystring: after and limit page the HTML report; the ${q.format} export streams every deviation`,
        );
      }
      const scope: ReportScope = q.scope === 'fleet' ? { kind: 'fleet' } : { kind: q.scope, id: q.id! };
      const now = ctx.clock();
      void reply.header('content-type', REPORT_CONTENT_TYPES[q.format]);
      void reply.header('cache-control', 'no-store');
      const download = (ext: string) => {
        if (q.download === 'true')
          void reply.header(
            'content-disposition',
            `attachment; filename="${reportFileName({ scope, generatedAt: now.toISOString() }, ext)}"`,
          );
      };
      if (q.format === 'html') {
        const after = q.after !== undefined ? decodeCursor(q.after) : undefined;
        const limit = q.limit ?? HTML_PAGE;
        const { report, next: cursor } = await buildDriftReport(ctx.store, scope, now, { after, limit });
        const next = cursor
          ? `?${new URLSearchParams({ scope: q.scope, ...(q.id ? { id: q.id } : {}), format: 'html', after: encodeCursor(cursor), limit: String(limit) })}`
          : null;
        // The HTML report carries one style block and nothing executable.
        void reply.header('content-security-policy', `default-src 'none'; style-src '${REPORT_STYLE_HASH}'`);
        download('html');
        return reportHtml(report, next);
      }
      // The head (and a 404 for an unknown host or image) before the first byte of the body.
      const body =
        q.format === 'json'
          ? streamReport(ctx.store, { format: 'json', head: await reportHead(ctx.store, scope, now) })
          : (await scopeHosts(ctx.store, scope), streamReport(ctx.store, { format: q.format, scope }));
      download(q.format);
      body.on('error', (err) => req.log.error({ err, scope: q.scope, format: q.format }, 'drift report stream failed'));
      return reply.send(body);
    },
  );
}
