/**
 * @module Typed scheduler events, for whoever wants to hear them (notifications, a SIEM feed, the
 * breaker's alert webhook, metrics). Emitted after the change is committed; a failing listener is
 * logged and never stops the scheduler.
 */
import type { Logger } from 'pino';
import type { ReplacementRow } from '../store/replacements.js';

export type SchedulerEvent =
  | { type: 'breaker-tripped'; at: string; group: string; reason: string }
  | { type: 'breaker-resumed'; at: string; group: string; actor: string }
  | { type: 'replacement-queued'; at: string; replacement: ReplacementRow }
  /** Dry-run: what enforce would have scheduled now. Emitted when the decision is new, not on every tick. */
  | { type: 'replacement-would-replace'; at: string; replacement: ReplacementRow }
  | { type: 'replacement-scheduled'; at: string; replacement: ReplacementRow }
  | { type: 'replacement-started'; at: string; replacement: ReplacementRow }
  | { type: 'replacement-completed'; at: string; replacement: ReplacementRow }
  /** `final`: no more automatic attempts; the replacement waits for an operator. */
  | { type: 'replacement-failed'; at: string; replacement: ReplacementRow; error: string; final: boolean }
  | { type: 'replacement-cancelled'; at: string; replacement: ReplacementRow; actor: string }
  | { type: 'replacement-approved'; at: string; replacement: ReplacementRow; actor: string };

export type SchedulerEventType = SchedulerEvent['type'];
export type SchedulerListener = (event: SchedulerEvent) => void | Promise<void>;

export class SchedulerEvents {
  private readonly listeners = new Set<SchedulerListener>();
  constructor(private readonly log?: Logger) {}

  /** Returns the unsubscribe function. */
  on(listener: SchedulerListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: SchedulerEvent): void {
    for (const l of this.listeners) {
      try {
        const r = l(event);
        if (r && typeof (r as Promise<void>).catch === 'function')
          (r as Promise<void>).catch((err: unknown) =>
            this.log?.error({ err, event: event.type }, 'scheduler event listener failed'),
          );
      } catch (err) {
        this.log?.error({ err, event: event.type }, 'scheduler event listener failed');
      }
    }
  }
}
