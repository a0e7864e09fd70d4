/**
 * @module The web dashboard's files: plain HTML, CSS and JavaScript modules from controller/dashboard/,
 * served by the controller itself (no CDN, nothing from elsewhere: the Content-Security-Policy says so).
 * The files are public; every piece of data they show comes from the API, behind the session cookie.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { dashboardModule } from '../../shared/collectors.js';
import { DwError } from '../../shared/errors.js';
import type { App, AppContext } from '../app.js';

/** Nothing but this origin; no inline script; no framing. */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * From the sources (controller/routes/), the build (dist/controller/routes/) and the packaged bundle
 * (dist/bundle/controller/driftwarden.mjs, with dashboard/ beside it) alike.
 */
export function dashboardDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const c of [join(here, '../dashboard'), join(here, '../../../controller/dashboard'), join(here, 'dashboard')])
    if (existsSync(join(c, 'index.html'))) return c;
  throw new DwError(
    'DW_ERR_CONFIG',
    `the dashboard's files are missing (looked for controller/dashboard/index.html near ${here})`,
  );
}

export function registerDashboardRoutes(app: App, _ctx: AppContext): void {
  const dir = dashboardDir();
  // Read once: the set of servable names is fixed at start-up, so no request path reaches the file system.
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type) files.set(name, { body: readFileSync(join(dir, name)), type });
  }
  // The collector list the dashboard's filters and labels use, from the registry rather than restated in each page.
  files.set('collectors.js', { body: Buffer.from(dashboardModule()), type: TYPES['.js']! });
  const send = (name: string) => {
    const f = files.get(name);
    if (!f) throw new DwError('DW_ERR_NOT_FOUND', `no dashboard file ${name}`);
    return f;
  };
  const headers = {
    'content-security-policy': DASHBOARD_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache',
  };

  app.get('/', { config: { auth: 'none' }, schema: { hide: true } }, async (_req, reply) => {
    const f = send('index.html');
    return reply.headers({ ...headers, 'content-type': f.type }).send(f.body);
  });
  app.get(
    '/ui/:file',
    {
      config: { auth: 'none' },
      schema: { hide: true, params: z.object({ file: z.string().regex(/^[a-z0-9-]+\.[a-z]+$/) }) },
    },
    async (req, reply) => {
      const f = send(req.params.file);
      return reply.headers({ ...headers, 'content-type': f.type }).send(f.body);
    },
  );
}
