/**
 * @module Forwarders tail the event stream and push it out: OCSF JSON lines to a SIEM webhook and to
 * syslog, chat messages to the notification webhook. Each keeps a cursor in the store and moves it
 * only after its sink accepted a batch, so nothing is lost across failures and restarts; a batch that
 * failed is sent again (at-least-once: OCSF metadata.uid identifies duplicates).
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { ControllerConfig } from '../config.js';
import { durationMs } from '../config.js';
import { notificationFor } from '../notify.js';
import type { EventRow, Store } from '../store/types.js';
import { toOcsf } from './ocsf.js';
import { formatSyslog, SyslogSender } from './syslog.js';
import { postSigned, readSecretFile } from './webhook.js';

export interface Sink {
  /** Also the cursor's name in the store. */
  name: string;
  /** Where a sink with no cursor yet starts: the whole history, or only what happens from now on. */
  startAt: 'beginning' | 'end';
  send(events: EventRow[]): Promise<void>;
  close?(): void;
}

const BATCH = 500;

/** Sends every event after the sink's cursor, a batch at a time; returns how many were sent. */
export async function forwardOnce(store: Store, sink: Sink, clock: () => Date = () => new Date()): Promise<number> {
  let cursor = await store.getEventCursor(sink.name);
  if (cursor === null) {
    const newest = sink.startAt === 'end' ? ((await store.listEvents({ newestFirst: true, limit: 1 }))[0]?.id ?? 0) : 0;
    cursor = newest;
    await store.setEventCursor(sink.name, cursor, clock().toISOString());
  }
  let sent = 0;
  for (;;) {
    const events = await store.listEvents({ afterId: cursor, limit: BATCH });
    if (events.length === 0) return sent;
    await sink.send(events);
    cursor = events[events.length - 1]!.id;
    await store.setEventCursor(sink.name, cursor, clock().toISOString());
    sent += events.length;
  }
}

/** OCSF severity_id to syslog severity: critical → 2, high → 3, medium → 4, low → 5, else informational (6). */
export function syslogSeverity(severityId: number): number {
  return ({ 6: 1, 5: 2, 4: 3, 3: 4, 2: 5 } as Record<number, number>)[severityId] ?? 6;
}

export function siemWebhookSink(url: string, secret: Buffer | null, now?: () => Date): Sink {
  return {
    name: 'siem-webhook',
    startAt: 'beginning',
    async send(events) {
      const body = events.map((e) => JSON.stringify(toOcsf(e))).join('\n') + '\n';
      await postSigned(url, body, { secret, contentType: 'application/x-ndjson', now });
    },
  };
}

export function syslogSink(o: NonNullable<ControllerConfig['siem']['syslog']>): Sink {
  const sender = new SyslogSender({ host: o.host, port: o.port, protocol: o.protocol });
  const host = hostname();
  return {
    name: 'siem-syslog',
    startAt: 'beginning',
    async send(events) {
      await sender.send(
        events.map((e) => {
          const ocsf = toOcsf(e);
          return formatSyslog(
            {
              facility: o.facility,
              severity: syslogSeverity(ocsf.severity_id),
              timestamp: new Date(e.at),
              hostname: host,
              appName: o.appName,
              msgId: `ocsf-${ocsf.class_uid}`,
            },
            JSON.stringify(ocsf),
          );
        }),
      );
    },
    close: () => sender.close(),
  };
}

export function chatSink(url: string, secret: Buffer | null, now?: () => Date): Sink {
  return {
    name: 'notifications',
    // People are told about what happens from now on, not paged for last year's history.
    startAt: 'end',
    async send(events) {
      for (const e of events) {
        const msg = notificationFor(e);
        if (msg) await postSigned(url, JSON.stringify(msg), { secret, contentType: 'application/json', now });
      }
    },
  };
}

/** The names (event cursors) of the sinks the config sets up, without reading their secrets. */
export function sinkNames(config: ControllerConfig): string[] {
  return [
    ...(config.siem.webhook ? ['siem-webhook'] : []),
    ...(config.siem.syslog ? ['siem-syslog'] : []),
    ...(config.notifications?.webhook ? ['notifications'] : []),
  ];
}

export function sinksFromConfig(config: ControllerConfig): Sink[] {
  const sinks: Sink[] = [];
  const s = config.siem;
  if (s.webhook)
    sinks.push(siemWebhookSink(s.webhook.url, readSecretFile(s.webhook.secretFile, 'siem.webhook.secretFile')));
  if (s.syslog) sinks.push(syslogSink(s.syslog));
  const n = config.notifications?.webhook;
  if (n) sinks.push(chatSink(n.url, readSecretFile(n.secretFile, 'notifications.webhook.secretFile')));
  return sinks;
}

/** Runs every sink on a timer; one sink failing (logged, retried next tick) does not hold up the others. */
export function startForwarders(o: {
  store: Store;
  sinks: Sink[];
  log: Logger;
  clock: () => Date;
  intervalMs: number;
}): () => void {
  if (o.sinks.length === 0) return () => {};
  const busy = new Set<string>();
  const tick = () => {
    for (const sink of o.sinks) {
      if (busy.has(sink.name)) continue;
      busy.add(sink.name);
      forwardOnce(o.store, sink, o.clock)
        .catch((err: unknown) => o.log.warn({ err, sink: sink.name }, 'event forwarding failed; will retry'))
        .finally(() => busy.delete(sink.name));
    }
  };
  const timer = setInterval(tick, o.intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    for (const s of o.sinks) s.close?.();
  };
}

export function forwarderIntervalMs(config: ControllerConfig): number {
  return durationMs(config.siem.interval);
}
