/**
 * @module The scheduler as the controller runs it: built from controller.yaml with its providers,
 * metrics and the breaker's alert webhook subscribed to its events, and a loop on a timer.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { parseDuration } from '../../shared/schema/config.js';
import type { ControllerConfig } from '../config.js';
import { providerRegistry } from '../providers/index.js';
import type { Provider } from '../providers/types.js';
import { readSecret, signedPost } from '../providers/webhook.js';
import { ACTIVE_REPLACEMENT_STATES } from '../store/replacements.js';
import type { Store } from '../store/types.js';
import type { ProviderConfig } from './config.js';
import { SchedulerEvents } from './scheduler-events.js';
import { Scheduler } from './scheduler.js';

export { Scheduler } from './scheduler.js';
export { SchedulerEvents, type SchedulerEvent, type SchedulerListener } from './scheduler-events.js';

export interface CreateSchedulerOptions {
  store: Store;
  config: ControllerConfig;
  log: Logger;
  clock: () => Date;
  registry?: Registry;
  /** Tests: build providers differently (a fake). */
  makeProvider?: (c: ProviderConfig) => Provider;
  owner?: string;
}

export function createScheduler(o: CreateSchedulerOptions): Scheduler {
  const cfg = o.config.scheduler;
  const log = o.log.child({ component: 'scheduler' });
  const events = new SchedulerEvents(log);
  const scheduler = new Scheduler({
    store: o.store,
    config: cfg,
    log,
    clock: o.clock,
    events,
    providerFor: providerRegistry(cfg, { log, registry: o.registry, make: o.makeProvider }),
    silentAfterMs: parseDuration(o.config.silentAfter) ?? 600_000,
    ...(o.owner ? { owner: o.owner } : {}),
  });
  if (o.registry) subscribeMetrics(scheduler, o.store, o.registry);
  const alert = cfg.breaker.alertWebhook;
  if (alert) {
    const secret = readSecret(alert, 'scheduler.breaker.alertWebhook');
    const timeoutMs = parseDuration(alert.timeout) ?? 10_000;
    events.on(async (e) => {
      if (e.type !== 'breaker-tripped' && e.type !== 'breaker-resumed') return;
      try {
        await signedPost(
          'breaker-alert',
          { ...e, source: 'driftwarden' },
          { url: alert.url, secret, timeoutMs, retries: 3, clock: o.clock },
        );
      } catch (err) {
        log.error(
          { err: err instanceof Error ? err.message : String(err), group: e.group },
          'breaker alert webhook failed',
        );
      }
    });
  }
  return scheduler;
}

function subscribeMetrics(scheduler: Scheduler, store: Store, registry: Registry): void {
  const events = new Counter({
    name: 'driftwarden_replacement_events_total',
    help: 'Scheduler events by type',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const trips = new Counter({
    name: 'driftwarden_breaker_trips_total',
    help: 'Groups paused by the breaker (or an operator)',
    labelNames: ['group'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'driftwarden_replacements',
    help: 'Replacements in an active state (the durable queue), by state',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      // The active states only: finished rows accumulate forever and are history, not a queue.
      const counts = await store.replacements.countByGroup(ACTIVE_REPLACEMENT_STATES);
      for (const s of ACTIVE_REPLACEMENT_STATES)
        this.set(
          { state: s },
          counts.filter((c) => c.state === s).reduce((n, c) => n + c.n, 0),
        );
    },
  });
  new Gauge({
    name: 'driftwarden_group_paused',
    help: '1 while a group is paused (breaker or operator)',
    labelNames: ['group'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const g of await store.replacements.listGroups()) this.set({ group: g.name }, g.paused ? 1 : 0);
    },
  });
  scheduler.events.on((e) => {
    events.inc({ type: e.type });
    if (e.type === 'breaker-tripped') trips.inc({ group: e.group });
  });
}

/** Runs ticks every `scheduler.interval` until stop(); a failing tick is logged and the next one tries again. */
export function startSchedulerLoop(scheduler: Scheduler, log: Logger): () => Promise<void> {
  const every = parseDuration(scheduler.config.interval) ?? 30_000;
  const timer = setInterval(() => {
    scheduler.tick().catch((err: unknown) => log.error({ err }, 'scheduler tick failed'));
  }, every);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await scheduler.stop();
  };
}
