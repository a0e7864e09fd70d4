/**
 * @module The `webhook` provider: a JSON POST signed with HMAC-SHA256 over the timestamp and the body,
 * retried on network errors, 429 and 5xx. The receiver answers `{"status": "done" | "pending", "ref"?,
 * "detail"?}`; it is asked again with `"event": "status"` until it says done.
 */
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { DwError } from '../../shared/errors.js';
import { redactUrl } from '../../shared/logger.js';
import { parseDuration } from '../../shared/schema/config.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, signWebhook, verifyWebhook } from '../siem/webhook.js';
import {
  ProviderError,
  type Provider,
  type ProviderContext,
  type ReplaceAccepted,
  type ReplaceStatus,
  type ReplacementTarget,
} from './types.js';
import type { z } from 'zod';
import type { WebhookProviderSchema } from '../scheduler/config.js';

// One signature format for every webhook the controller sends: it lives in ../siem/webhook.ts.
export { SIGNATURE_HEADER, TIMESTAMP_HEADER };

/** The `v1=<hex>` signature of `<timestamp>.<body>` (see ../siem/webhook.ts), for a timestamp given as text. */
export function signPayload(secret: string, timestamp: string, body: string): string {
  return signWebhook(secret, Number(timestamp), body);
}

/** What a receiver does: check the signature and that the timestamp is fresh (docs/examples/webhook-receiver.mjs). */
export function verifySignature(
  secret: string,
  timestamp: string,
  body: string,
  signature: string,
  nowMs: number,
  toleranceMs = 300_000,
): boolean {
  return verifyWebhook(
    secret,
    { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: signature },
    body,
    nowMs,
    toleranceMs / 1000,
  );
}

export function readSecret(o: { secret?: string; secretFile?: string }, key: string): string | null {
  if (o.secret) return o.secret;
  if (!o.secretFile) return null;
  try {
    return readFileSync(o.secretFile, 'utf8').trim();
  } catch (err) {
    throw new DwError(
      'DW_ERR_CONFIG',
      `${key}.secretFile: cannot read ${o.secretFile}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      { key },
    );
  }
}

export interface SignedPostOptions {
  url: string;
  secret: string | null;
  timeoutMs: number;
  retries: number;
  signal?: AbortSignal;
  clock?: () => Date;
  /** Wait before retry n (0-based). */
  backoffMs?: (n: number) => number;
  /** Extra headers (an idempotency key). */
  headers?: Record<string, string>;
}

/** POSTs `payload` signed; returns the parsed JSON answer of a 2xx. Throws ProviderError (retryable for 429/5xx/network). */
export async function signedPost(provider: string, payload: unknown, o: SignedPostOptions): Promise<unknown> {
  const body = JSON.stringify(payload);
  let last: ProviderError | null = null;
  for (let attempt = 0; attempt <= o.retries; attempt++) {
    if (attempt > 0) await sleep(o.backoffMs?.(attempt - 1) ?? 500 * 2 ** (attempt - 1), o.signal);
    // Signed per attempt: the timestamp is when it was sent.
    const ts = String(Math.floor((o.clock?.() ?? new Date()).getTime() / 1000));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'driftwarden-controller',
      [TIMESTAMP_HEADER]: ts,
      ...o.headers,
    };
    if (o.secret) headers[SIGNATURE_HEADER] = signPayload(o.secret, ts, body);
    try {
      const res = await request(o.url, {
        method: 'POST',
        headers,
        body,
        headersTimeout: o.timeoutMs,
        bodyTimeout: o.timeoutMs,
        signal: o.signal,
      });
      const text = await res.body.text();
      if (res.statusCode >= 200 && res.statusCode < 300) {
        try {
          return text ? JSON.parse(text) : {};
        } catch {
          throw new ProviderError(
            provider,
            `${redactUrl(o.url)} answered ${res.statusCode} with a body that is not JSON`,
            { retryable: false },
          );
        }
      }
      const retryable = res.statusCode === 429 || res.statusCode >= 500;
      last = new ProviderError(provider, `${redactUrl(o.url)} answered ${res.statusCode}: ${text.slice(0, 200)}`, {
        retryable,
        context: { status: res.statusCode },
      });
      if (!retryable) throw last;
    } catch (err) {
      if (err instanceof ProviderError && !err.retryable) throw err;
      if (err instanceof ProviderError) last = err;
      else if (o.signal?.aborted) throw new ProviderError(provider, `${redactUrl(o.url)}: aborted`, { cause: err });
      else last = new ProviderError(provider, `${redactUrl(o.url)}: ${(err as Error).message}`, { cause: err });
    }
  }
  throw last ?? new ProviderError(provider, `${redactUrl(o.url)}: no attempt made`);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('aborted'));
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new Error('aborted'));
    });
  });
}

/** The `webhook` provider block as its schema parses it (defaults filled in). */
export type WebhookConfig = Omit<z.output<typeof WebhookProviderSchema>, 'type'>;

function payloadOf(event: 'replace' | 'status', t: ReplacementTarget) {
  return {
    event,
    replacementId: t.replacementId,
    attempt: t.attempt,
    ref: t.ref,
    group: t.group,
    reason: t.reason,
    host: { id: t.hostId, hostname: t.hostname, imageId: t.imageId, addresses: t.addresses },
  };
}

interface WebhookAnswer {
  status?: unknown;
  ref?: unknown;
  detail?: unknown;
  replacedBy?: unknown;
}

export function webhookProvider(cfg: WebhookConfig, o: { backoffMs?: (n: number) => number } = {}): Provider {
  const secret = readSecret(cfg, 'scheduler.provider');
  const timeoutMs = parseDuration(cfg.timeout) ?? 10_000;
  const post = async (
    event: 'replace' | 'status',
    t: ReplacementTarget,
    ctx: ProviderContext,
  ): Promise<WebhookAnswer> => {
    const answer = await signedPost('webhook', payloadOf(event, t), {
      url: cfg.url,
      secret,
      timeoutMs,
      retries: cfg.retries,
      signal: ctx.signal,
      clock: ctx.clock,
      backoffMs: o.backoffMs,
      // Receivers deduplicate on this: a retried POST is the same request.
      headers: { 'x-driftwarden-delivery': `${t.replacementId}:${t.attempt}:${event}` },
    });
    if (!answer || typeof answer !== 'object')
      throw new ProviderError('webhook', 'the answer is not a JSON object', { retryable: false });
    return answer as WebhookAnswer;
  };
  return {
    type: 'webhook',
    async replace(t, ctx): Promise<ReplaceAccepted> {
      const a = await post('replace', t, ctx);
      if (a.status === 'failed')
        throw new ProviderError('webhook', `the receiver refused: ${String(a.detail ?? 'no detail')}`);
      return {
        ref: typeof a.ref === 'string' ? a.ref : null,
        detail: typeof a.detail === 'string' ? a.detail : `accepted by ${new URL(cfg.url).host}`,
      };
    },
    async status(t, ctx): Promise<ReplaceStatus> {
      const a = await post('status', t, ctx);
      if (a.status === 'failed')
        throw new ProviderError('webhook', `the receiver reports failure: ${String(a.detail ?? 'no detail')}`);
      return {
        state: a.status === 'done' ? 'done' : 'pending',
        ...(typeof a.detail === 'string' ? { detail: a.detail } : {}),
        ...(typeof a.replacedBy === 'string' ? { replacedBy: a.replacedBy } : {}),
      };
    },
  };
}
