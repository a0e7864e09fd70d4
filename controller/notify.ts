/**
 * @module Chat notifications: a host tainted, a group's breaker tripped, a replacement failed. Each is a
 * message fit for a chat channel: one line of text plus structured fields (Slack-style attachment
 * fields, which Mattermost and Rocket.Chat read too). Driven by the event stream (see siem/forwarder),
 * so a notification is sent for every such event that committed, once the webhook accepts it.
 */
import { EVENT_KINDS } from './event-stream.js';
import type { EventRow } from './store/types.js';

export interface ChatMessage {
  text: string;
  kind: 'host.tainted' | 'breaker.tripped' | 'replacement.failed';
  severity: 'warning' | 'critical';
  at: string;
  fields: { title: string; value: string; short: boolean }[];
  /** The same fields as Slack-compatible attachments. */
  attachments: { color: string; fields: { title: string; value: string; short: boolean }[]; ts: number }[];
  eventId: number;
}

const field = (title: string, value: unknown, short = true) => ({
  title,
  value: value === null || value === undefined || value === '' ? '-' : String(value),
  short,
});

function message(
  e: EventRow,
  kind: ChatMessage['kind'],
  severity: ChatMessage['severity'],
  text: string,
  fields: ChatMessage['fields'],
): ChatMessage {
  return {
    text,
    kind,
    severity,
    at: e.at,
    fields,
    attachments: [
      { color: severity === 'critical' ? '#d33' : '#e90', fields, ts: Math.floor(Date.parse(e.at) / 1000) },
    ],
    eventId: e.id,
  };
}

/** The chat message for an event, or null if the event is not one people are paged for. */
export function notificationFor(e: EventRow): ChatMessage | null {
  const d = e.detail as Record<string, unknown>;
  // A failed or cancelled replacement also returns its host to tainted; that is not a new taint (the
  // final failure pages as replacement.failed, a retry is the scheduler's to handle).
  if (
    e.kind === EVENT_KINDS.state &&
    d.to === 'tainted' &&
    d.from !== 'replacement-scheduled' &&
    d.from !== 'replacing'
  ) {
    const name = (d.hostname as string | null) ?? e.hostId;
    return message(e, 'host.tainted', 'critical', `:warning: host ${name} is tainted: ${String(d.cause)}`, [
      field('host', e.hostId),
      field('hostname', d.hostname),
      field('image', d.imageId),
      field('group', d.group),
      field('was', d.from),
      field('cause', d.cause, false),
      field('at', e.at),
    ]);
  }
  if (e.kind === EVENT_KINDS.breakerTripped) {
    return message(
      e,
      'breaker.tripped',
      'critical',
      `:rotating_light: replacements paused in group ${String(d.group ?? '?')}: ${String(d.reason ?? 'breaker tripped')}`,
      [
        field('group', d.group),
        field('tainted share', d.taintedShare ?? d.share),
        field('threshold', d.threshold),
        field('paused by', d.pausedBy),
        field('reason', d.reason, false),
        field('at', e.at),
      ],
    );
  }
  if (e.kind === EVENT_KINDS.replacementFailed) {
    return message(
      e,
      'replacement.failed',
      'warning',
      `:x: replacement of host ${e.hostId ?? '?'} failed: ${String(d.error ?? 'unknown error')}`,
      [
        field('host', e.hostId),
        field('group', d.group),
        field('provider', d.provider),
        field('attempt', d.attempt),
        field('error', d.error, false),
        field('at', e.at),
      ],
    );
  }
  return null;
}
