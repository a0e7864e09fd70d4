/**
 * @module Start a controller from its config: open the store, load policy and trusted keys, listen (TLS
 * when configured), run the background work, and on SIGTERM/SIGINT finish in-flight requests before exit.
 */
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { DwError } from '../shared/errors.js';
import { createLogger, type Logger } from '../shared/logger.js';
import { loadPrivateKey, loadPublicKey } from '../shared/sign.js';
import { buildApp, type App } from './app.js';
import { startBackground } from './background.js';
import { checkAnchorDir, startAnchoring } from './audit-anchor.js';
import { forwarderIntervalMs, sinksFromConfig, startForwarders } from './siem/forwarder.js';
import { durationMs, retentionPolicy, retentionAgeMs, type ControllerConfig } from './config.js';
import { createMetrics } from './metrics.js';
import { defaultPolicy, loadPolicy } from './policy.js';
import { openStore } from './store/index.js';
import { createScheduler, startSchedulerLoop } from './scheduler/index.js';
import type { Store } from './store/types.js';

export function controllerLogger(level?: string): Logger {
  return createLogger({ level, service: 'driftwarden-controller' });
}

export interface RunningController {
  app: App;
  store: Store;
  url: string;
  close(): Promise<void>;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new DwError(
      'DW_ERR_CONFIG',
      `cannot read the TLS ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      { path },
    );
  }
}

export async function startController(
  config: ControllerConfig,
  opts: { log?: Logger; clock?: () => Date } = {},
): Promise<RunningController> {
  const log = opts.log ?? controllerLogger();
  const clock = opts.clock ?? (() => new Date());
  // Everything that can be wrong with the config fails here, before the port opens.
  const policy = config.policy ? loadPolicy(config.policy) : defaultPolicy();
  const trustedKeys: KeyObject[] = config.trustedKeys.map(loadPublicKey);
  const https = config.tls
    ? {
        cert: readPem(config.tls.certFile, 'certificate'),
        key: readPem(config.tls.keyFile, 'key'),
        // mTLS: a client certificate is checked at the handshake, before any HTTP is read. It is an extra
        // gate in front of the host credential, which every report still needs.
        ...(config.tls.clientCaFile
          ? {
              ca: readPem(config.tls.clientCaFile, 'client CA'),
              requestCert: true,
              rejectUnauthorized: config.tls.requireClientCert,
            }
          : {}),
      }
    : undefined;
  const sinks = sinksFromConfig(config);
  const anchors = config.audit.anchors;
  const anchorKey = anchors?.keyFile ? loadPrivateKey(anchors.keyFile) : undefined;
  if (anchors) checkAnchorDir(anchors.dir);
  const store = await openStore(config.store, { log, backgroundCheckpoints: true });
  await warnLegacyTokens(store, log, clock());
  const metrics = createMetrics();
  let scheduler;
  try {
    // Builds the providers: a bad secret file or kubeconfig fails here, before the port opens.
    scheduler = createScheduler({ store, config, log, clock, registry: metrics.registry });
  } catch (err) {
    await store.close();
    throw err;
  }
  const app = await buildApp({ store, config, policy, trustedKeys, log, metrics, clock, https, scheduler });
  const sep = config.listen.lastIndexOf(':');
  const host = config.listen.slice(0, sep).replace(/^\[|\]$/g, '');
  const port = Number(config.listen.slice(sep + 1));
  try {
    await app.listen({ host, port });
  } catch (err) {
    await store.close();
    throw new DwError(
      'DW_ERR_CONFIG',
      `cannot listen on ${config.listen}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      { listen: config.listen },
    );
  }
  const address = app.server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  const url = `${https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  const stopBackground = startBackground(
    {
      store,
      log,
      clock,
      silentAfterMs: durationMs(config.silentAfter),
      taintSilentAfterMs: durationMs(config.taintSilentAfter),
      scanMaxAgeMs: durationMs(config.scanMaxAge),
      reportRetentionMs: retentionAgeMs(config.retention.reports.maxAge) ?? 100 * 365 * 86_400_000,
      retention: {
        policy: retentionPolicy(config),
        signingKey: anchorKey,
        eventCursors: sinks.map((s) => s.name),
        countCursor: { hostsAfter: null },
        onPruned: (kind, n) => metrics.retentionPruned.inc({ kind }, n),
        onCheckpoint: (c) => metrics.retentionCheckpoints.inc({ chain: c.chain }),
        onPass: (seconds) => metrics.retentionPassSeconds.observe(seconds),
      },
      startedAt: clock(),
    },
    { silenceMs: 30_000, pruneMs: durationMs(config.retention.every) },
  );
  const stopForwarders = startForwarders({ store, sinks, log, clock, intervalMs: forwarderIntervalMs(config) });
  const stopScheduler = startSchedulerLoop(scheduler, log);
  const anchoring = anchors
    ? startAnchoring({ store, dir: anchors.dir, privateKey: anchorKey, everyMs: durationMs(anchors.every), clock, log })
    : null;
  log.info(
    {
      mode: config.scheduler.mode,
      interval: config.scheduler.interval,
      provider: config.scheduler.provider?.type ?? null,
    },
    'replacement scheduler running',
  );
  log.info(
    {
      url,
      store: config.store.replace(/:\/\/[^@]*@/, '://***@'),
      policy: policy.label,
      trustedKeys: trustedKeys.length,
    },
    'controller listening',
  );
  let closing: Promise<void> | null = null;
  return {
    app,
    store,
    url,
    close() {
      closing ??= (async () => {
        stopBackground();
        stopForwarders();
        await stopScheduler();
        await anchoring?.stop();
        await app.close();
        await store.close();
      })();
      return closing;
    },
  };
}

/**
 * Enrollment tokens from before use counts (migration 0006) are reusable until their grace expiry:
 * said at every start, so the operator replaces them before images that carry them stop enrolling.
 */
async function warnLegacyTokens(store: Store, log: Logger, now: Date): Promise<void> {
  const at = now.toISOString();
  for (const t of await store.listTokens()) {
    if (!t.legacy || t.revokedAt || (t.expiresAt !== null && t.expiresAt <= at)) continue;
    log.warn(
      { tokenId: t.id, name: t.name, expiresAt: t.expiresAt },
      'a legacy enrollment token (reusable, any group) is active until it expires: create a limited one (token create --role agent --uses N --group GLOB) and revoke this',
    );
  }
}
