/**
 * @module buildApp(deps) returns the controller's HTTP application without listening, so tests drive it
 * with app.inject() and only server.ts opens a port. Every route declares who may call it
 * (`config.auth`); a route without that declaration fails at start-up, not in production.
 */
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyRequest,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import fastifySwagger from '@fastify/swagger';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { KeyObject } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { DwError, isDwError } from '../shared/errors.js';
import { bearer, hashSecret, roleAllows } from './auth.js';
import { decodeBody, type BodyLimits } from './body-decoding.js';
import { durationMs, type ControllerConfig } from './config.js';
import { ManifestCache } from './manifest-cache.js';
import { LastDigests } from './ingest.js';
import type { Metrics } from './metrics.js';
import type { Policy } from './policy.js';
import type { HostRow, Role, Store, TokenRow } from './store/types.js';
import { registerAuditRoutes } from './routes/audit.js';
import { registerEnrollRoutes } from './routes/enroll.js';
import { registerExemptionRoutes } from './routes/exemptions.js';
import { registerHostActionRoutes } from './routes/host-actions.js';
import { registerHostRoutes } from './routes/hosts.js';
import { registerManifestRoutes } from './routes/manifests.js';
import { registerMetaRoutes } from './routes/meta.js';
import { registerReportRoutes } from './routes/reports.js';
import { registerTokenRoutes } from './routes/tokens.js';
import { registerDashboardRoutes } from './routes/dashboard.js';
import { registerEventRoutes } from './routes/siem-feed.js';
import { registerFleetRoutes } from './routes/fleet.js';
import { registerDriftReportRoutes } from './routes/drift-report.js';
import { registerSessionRoutes } from './routes/session.js';
import { cookieValue, CSRF_HEADER, csrfMatches, loadSessionKey, readSession, SESSION_COOKIE } from './session.js';
import { registerReplacementRoutes } from './routes/replacements.js';
import { assertStorable, assertStorableBody } from './request-guard.js';
import { createScheduler, type Scheduler } from './scheduler/index.js';
import { SourceLimiter, sourceKey } from './rate-limit.js';
import { busy, isStoreUnavailable, LoadShedder } from './overload.js';
import { usedUp } from './routes/tokens.js';

/** Who may call a route: nobody needs to (`none`), a host credential, or a token of at least this role. */
/** `enroll-aws`: no bearer token; the route verifies the signed identity document the body carries. */
export type RouteAuth = 'none' | 'host' | 'enroll' | 'enroll-aws' | Exclude<Role, 'agent'>;

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
    /** A body limit as sent, below the route's bodyLimit (which then caps the body decompressed). */
    wireBodyLimit?: number;
  }
  interface FastifyRequest {
    /** Counted in flight by the load shedder, until answered or abandoned. */
    admitted: boolean;
    /** The token or host that authenticated this request; `actor` is what the audit log records. */
    principal:
      | { kind: 'token'; token: TokenRow; actor: string }
      | { kind: 'host'; host: HostRow; actor: string }
      | null;
  }
}

export interface AppDeps {
  store: Store;
  config: ControllerConfig;
  policy: Policy;
  trustedKeys: readonly KeyObject[];
  log: Logger;
  metrics: Metrics;
  clock?: () => Date;
  /** PEM certificate and key: the server speaks HTTPS only; with `ca`, clients are asked for a certificate (mTLS). */
  https?: { cert: Buffer; key: Buffer; ca?: Buffer; requestCert?: boolean; rejectUnauthorized?: boolean };
  /** Signs dashboard session cookies (default: config.dashboard.sessionKeyFile, else a per-process random key). */
  sessionKey?: Buffer;
  /** The replacement scheduler; built from `config.scheduler` when not given. */
  scheduler?: Scheduler;
}

export interface AppContext extends Required<Omit<AppDeps, 'log' | 'https' | 'scheduler'>> {
  scheduler: Scheduler;
  log: Logger;
  /** Session cookies get the Secure attribute when the controller itself speaks TLS. */
  secureCookies: boolean;
  manifests: ManifestCache;
  lastDigests: LastDigests;
  scanMaxAgeMs: number;
  /** Per-source limits on failed authentications and on enrollments (rate-limit.ts). */
  limits: { failedAuth: SourceLimiter; enroll: SourceLimiter };
  /** 503 past the in-flight or store-queue bounds (overload.ts). */
  shedder: LoadShedder;
}

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  Logger,
  ZodTypeProvider
>;

export async function buildApp(deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? (() => new Date());
  const scheduler =
    deps.scheduler ??
    createScheduler({ store: deps.store, config: deps.config, log: deps.log, clock, registry: deps.metrics.registry });
  const ctx: AppContext = {
    ...deps,
    clock,
    scheduler,
    manifests: new ManifestCache(),
    lastDigests: new LastDigests(),
    scanMaxAgeMs: durationMs(deps.config.scanMaxAge),
    sessionKey: deps.sessionKey ?? loadSessionKey(deps.config.dashboard.sessionKeyFile),
    secureCookies: deps.https !== undefined,
    limits: {
      failedAuth: new SourceLimiter(
        'failedAuth',
        { max: deps.config.rateLimit.failedAuth.max, perMs: durationMs(deps.config.rateLimit.failedAuth.per) },
        deps.config.rateLimit.maxSources,
      ),
      enroll: new SourceLimiter(
        'enroll',
        { max: deps.config.rateLimit.enroll.max, perMs: durationMs(deps.config.rateLimit.enroll.per) },
        deps.config.rateLimit.maxSources,
      ),
    },
    shedder: new LoadShedder(
      {
        maxInFlight: deps.config.overload.maxInFlight,
        maxStoreWaiting: deps.config.overload.maxStoreWaiting,
        retryAfterSeconds: retryAfterSeconds(deps.config),
      },
      () => deps.store.waitingForConnection(),
    ),
  };
  const app = Fastify({
    ...(deps.https ? { https: deps.https } : {}),
    loggerInstance: deps.log,
    bodyLimit: deps.config.bodyLimit,
    // req.ip, which the rate limits count by, is the socket's peer unless proxies are configured.
    trustProxy: trustProxyOption(deps.config.trustProxy),
    // Per-request logs would cost more than ingesting a heartbeat; refusals and failures are logged below.
    logController: new LogController({ disableRequestLogging: true }),
    // Lets in-flight requests finish on close(); new connections are refused.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();
  // close() waits for every connection to end: a response sent while closing ends its connection,
  // or a keep-alive client (every agent) would hold the shutdown open for keepAliveTimeout (72 s).
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });
  // Runs after authentication (onRequest): an unauthenticated client never gets a body decompressed.
  app.addHook('preParsing', async (req, _reply, payload) =>
    decodeBody(
      req,
      payload,
      bodyLimits(
        deps.config,
        req.routeOptions.bodyLimit ?? deps.config.bodyLimit,
        req.routeOptions.config.wireBodyLimit,
      ),
    ),
  );
  // Before any schema or handler: nothing a request carries may be nested past the limit or hold what
  // the store refuses (controller/request-guard.ts).
  app.addHook('preValidation', async (req) => {
    assertStorable(req.params, 'params');
    assertStorable(req.query, 'querystring');
    if (req.body !== undefined) await assertStorableBody(req.body);
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('principal', null);
  app.decorateRequest('admitted', false);
  app.decorateRequest('session', null);

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'driftwarden controller API',
        version: 'v1',
        description:
          'Every route needs a bearer token: a host credential, an enrollment token, or an API token with a role.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/documentation')) return;
    if (!route.config?.auth) throw new Error(`route ${route.method} ${route.url} does not declare config.auth`);
  });

  app.addHook('onRequest', async (req) => {
    // With client certificates optional (tls.requireClientCert: false) the handshake lets a bad one
    // through; a certificate that is presented must still be valid.
    if (deps.https?.requestCert && deps.https.rejectUnauthorized === false) {
      const socket = req.raw.socket as TLSSocket;
      const peer = socket.getPeerCertificate?.();
      if (peer && Object.keys(peer).length > 0 && !socket.authorized) {
        throw new DwError('DW_ERR_UNAUTHORIZED', `client certificate refused: ${String(socket.authorizationError)}`);
      }
    }
    const need = req.routeOptions.config.auth;
    if (need === undefined) {
      if (req.routeOptions.url === undefined) return; // 404s are answered by the not-found handler
      throw new DwError('DW_ERR_INTERNAL', 'route without an auth declaration');
    }
    if (need === 'none') return;
    // First: shedding must cost less than the work it saves (no credential lookup, no body read).
    ctx.shedder.admit();
    req.admitted = true;
    const source = sourceKey(req.ip);
    const now = ctx.clock().getTime();
    // Before any credential is looked at: a source out of attempts learns nothing more by guessing.
    ctx.limits.failedAuth.assertAllowed(source, now, 'failed authentications');
    if (need === 'enroll' || need === 'enroll-aws') {
      ctx.limits.enroll.assertAllowed(source, now, 'enrollment attempts');
      ctx.limits.enroll.take(source, now);
    }
    try {
      await authenticate(ctx, req, need);
    } catch (err) {
      if (isDwError(err) && err.code === 'DW_ERR_UNAUTHORIZED') ctx.limits.failedAuth.take(source, now);
      throw err;
    }
  });

  const done = (req: FastifyRequest) => {
    if (!req.admitted) return;
    req.admitted = false;
    ctx.shedder.release();
  };
  app.addHook('onResponse', async (req) => done(req));
  app.addHook('onRequestAbort', async (req) => done(req));

  app.setErrorHandler((err, req, reply) => {
    const e = isStoreUnavailable(err)
      ? busy('the store is unavailable (a database restart or a lost connection)', retryAfterSeconds(deps.config))
      : toDwError(err);
    ctx.metrics.rejections.inc({ code: e.code });
    if (e.status >= 500) req.log.error({ err, url: req.url }, 'request failed');
    else req.log.info({ code: e.code, url: req.url, msg: e.message }, 'request refused');
    if (e.code === 'DW_ERR_RATE_LIMITED' || e.code === 'DW_ERR_UNAVAILABLE')
      void reply.header('retry-after', String(e.context.retryAfterSeconds ?? 60));
    // A report that ran out of time waited behind others (a busy store): the agent backs off like on a shed one.
    if (e.code === 'DW_ERR_TIME_BUDGET') void reply.header('retry-after', String(retryAfterSeconds(deps.config)));
    void reply.status(e.status).send({ error: e.code, message: e.message });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .status(404)
      .send({ error: 'DW_ERR_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });

  registerMetaRoutes(app, ctx);
  registerEnrollRoutes(app, ctx);
  registerManifestRoutes(app, ctx);
  registerReportRoutes(app, ctx);
  registerHostRoutes(app, ctx);
  registerHostActionRoutes(app, ctx);
  registerExemptionRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  registerTokenRoutes(app, ctx);
  registerSessionRoutes(app, ctx);
  registerDashboardRoutes(app, ctx);
  registerFleetRoutes(app, ctx);
  registerEventRoutes(app, ctx);
  registerDriftReportRoutes(app, ctx);
  registerReplacementRoutes(app, ctx);
  return app;
}

function retryAfterSeconds(config: ControllerConfig): number {
  return Math.max(1, Math.round(durationMs(config.overload.retryAfter) / 1000));
}

/** A hop count trusts that many proxies nearest the controller (proxy-addr's rule for a number). */
function trustProxyOption(
  t: ControllerConfig['trustProxy'],
): false | string[] | ((addr: string, hop: number) => boolean) {
  if (t === false || Array.isArray(t)) return t;
  return (_addr, hop) => hop < t;
}

/** The reports route caps both sides by config keys; other routes cap both by their one limit. */
function bodyLimits(config: ControllerConfig, routeLimit: number, wireLimit: number | undefined): BodyLimits {
  if (wireLimit !== undefined) {
    return {
      wire: wireLimit,
      decoded: routeLimit,
      wireLabel: `bodyLimit: ${wireLimit} bytes as sent`,
      decodedLabel: `decodedBodyLimit: ${routeLimit} bytes once decompressed`,
    };
  }
  const label = routeLimit === config.bodyLimit ? `bodyLimit: ${routeLimit} bytes` : `${routeLimit} bytes`;
  return {
    wire: routeLimit,
    decoded: routeLimit,
    wireLabel: `${label} as sent`,
    decodedLabel: `${label} once decompressed`,
  };
}

async function authenticate(ctx: AppContext, req: FastifyRequest, need: Exclude<RouteAuth, 'none'>): Promise<void> {
  if (need === 'enroll-aws') return; // the body is the credential: routes/enroll.ts verifies it
  const secret = bearer(req.headers.authorization);
  if (!secret) {
    const cookie = need === 'host' || need === 'enroll' ? null : cookieValue(req.headers.cookie, SESSION_COOKIE);
    if (cookie !== null)
      return authenticateSession(
        ctx,
        req,
        need as Exclude<RouteAuth, 'none' | 'host' | 'enroll' | 'enroll-aws'>,
        cookie,
      );
    throw new DwError('DW_ERR_UNAUTHORIZED', 'missing bearer token (Authorization: Bearer ...)');
  }
  const hash = hashSecret(secret);
  const now = ctx.clock().toISOString();
  if (need === 'host') {
    const host = await ctx.store.findHostByCredentialHash(hash);
    if (!host) throw new DwError('DW_ERR_UNAUTHORIZED', 'unknown host credential');
    // Refused by name, so the agent's log says what an operator did rather than "unknown credential".
    if (host.retiredAt)
      throw new DwError(
        'DW_ERR_UNAUTHORIZED',
        `host ${host.id} was forgotten (retired) by an operator at ${host.retiredAt}; it cannot report`,
        { hostId: host.id },
      );
    if (host.resetAt)
      throw new DwError(
        'DW_ERR_UNAUTHORIZED',
        `host ${host.id} was reset by an operator at ${host.resetAt}; its credential no longer works: enroll again with an enrollment token`,
        { hostId: host.id },
      );
    req.principal = { kind: 'host', host, actor: `host:${host.id}` };
    return;
  }
  const token = await ctx.store.findTokenByHash(hash);
  if (!token) throw new DwError('DW_ERR_UNAUTHORIZED', 'unknown token');
  if (token.revokedAt) throw new DwError('DW_ERR_UNAUTHORIZED', `token ${token.id} was revoked`);
  if (token.expiresAt && token.expiresAt <= now)
    throw new DwError('DW_ERR_UNAUTHORIZED', `token ${token.id} expired at ${token.expiresAt}`);
  if (need === 'enroll') {
    if (token.role !== 'agent')
      throw new DwError('DW_ERR_FORBIDDEN', `enrollment needs an agent token; ${token.id} has role ${token.role}`);
    // Counted again, atomically, in the enrollment's transaction; this is the early answer.
    const spent = usedUp(token);
    if (spent) throw new DwError('DW_ERR_UNAUTHORIZED', spent);
  } else if (!roleAllows(token.role, need)) {
    throw new DwError('DW_ERR_FORBIDDEN', `this needs role ${need}; token ${token.id} has role ${token.role}`);
  }
  req.principal = { kind: 'token', token, actor: `token:${token.id}(${token.name})` };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function originHost(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null; // "null" (opaque origins) and garbage never match
  }
}

/**
 * The dashboard's session cookie stands in for the bearer token it was opened with: the same token
 * checks and role order apply, plus CSRF defences on anything that changes state (SameSite=Strict on
 * the cookie, the session's CSRF token in a header a cross-site form cannot set, and a same-origin
 * Origin header when the browser sends one).
 */
async function authenticateSession(
  ctx: AppContext,
  req: FastifyRequest,
  need: Exclude<RouteAuth, 'none' | 'host' | 'enroll' | 'enroll-aws'>,
  cookie: string,
): Promise<void> {
  const now = ctx.clock();
  const session = readSession(ctx.sessionKey, cookie, now);
  if (!session) throw new DwError('DW_ERR_UNAUTHORIZED', 'the session has expired or is not valid; log in again');
  // The cookie alone is not enough: logging out ends the session here, so a copied cookie dies with it.
  const row = await ctx.store.getSession(session.id);
  if (!row || row.tokenId !== session.tokenId)
    throw new DwError(
      'DW_ERR_UNAUTHORIZED',
      'the session is not known to the controller (ended, or opened before an upgrade); log in again',
    );
  if (row.endedAt) throw new DwError('DW_ERR_UNAUTHORIZED', 'the session was ended (logged out); log in again');
  if (!SAFE_METHODS.has(req.method)) {
    if (!csrfMatches(session, req.headers[CSRF_HEADER]))
      throw new DwError(
        'DW_ERR_FORBIDDEN',
        `a session request that changes state needs the session's CSRF token in ${CSRF_HEADER}`,
      );
    const origin = req.headers.origin;
    if (origin !== undefined && originHost(origin) !== req.headers.host)
      throw new DwError('DW_ERR_FORBIDDEN', `cross-origin request from ${origin} refused`);
  }
  const token = await ctx.store.getToken(session.tokenId);
  if (!token || token.role === 'agent')
    throw new DwError('DW_ERR_UNAUTHORIZED', 'the token this session was opened with no longer exists');
  if (token.revokedAt)
    throw new DwError('DW_ERR_UNAUTHORIZED', `token ${token.id} was revoked; its sessions ended with it`);
  if (token.expiresAt && token.expiresAt <= now.toISOString())
    throw new DwError('DW_ERR_UNAUTHORIZED', `token ${token.id} expired at ${token.expiresAt}`);
  if (!roleAllows(token.role, need))
    throw new DwError('DW_ERR_FORBIDDEN', `this needs role ${need}; token ${token.id} has role ${token.role}`);
  req.principal = { kind: 'token', token, actor: `token:${token.id}(${token.name})` };
  req.session = session;
}

interface FastifyishError {
  code?: string;
  statusCode?: number;
  validation?: { instancePath?: string; message?: string }[];
  validationContext?: string;
  message: string;
}

function toDwError(err: unknown): DwError {
  if (isDwError(err)) return err;
  const e = err as FastifyishError;
  if (e.validation) {
    const where = e.validationContext ?? 'body';
    const detail = e.validation
      .slice(0, 5)
      .map((v) => `${where}${v.instancePath ? v.instancePath.replaceAll('/', '.') : ''}: ${v.message}`)
      .join('; ');
    return new DwError('DW_ERR_VALIDATION', detail || e.message);
  }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new DwError('DW_ERR_TOO_LARGE', `request body is larger than the limit (${e.message})`);
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new DwError('DW_ERR_VALIDATION', `unsupported content type: send application/json`);
  if (
    e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
    e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
    (e.statusCode === 400 && /JSON/.test(e.message))
  ) {
    return new DwError('DW_ERR_VALIDATION', `request body is not valid JSON: ${e.message}`);
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new DwError('DW_ERR_VALIDATION', e.message);
  // A PostgreSQL data exception (class 22: a value of the wrong type or encoding) can only come from a
  // value in the request that slipped past validation: the request is at fault, not the controller.
  if (
    typeof e.code === 'string' &&
    /^22[0-9A-Z]{3}$/.test(e.code) &&
    (err as { severity?: unknown }).severity !== undefined
  ) {
    return new DwError(
      'DW_ERR_VALIDATION',
      `a value in the request cannot be stored: ${e.message}`,
      {},
      { cause: err },
    );
  }
  return new DwError('DW_ERR_INTERNAL', 'internal error', {}, { cause: err });
}
