/**
 * @module The agent's link to the controller: undici over HTTPS with a configurable CA, request
 * timeouts, and a classification of every outcome: delivered, retry later (network, 5xx, 429, 408),
 * or refused for good (any other 4xx: retrying cannot fix it).
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
import { SENT_AT_HEADER } from '../../shared/clock-skew.js';
import { DwError } from '../../shared/errors.js';

export type SendOutcome =
  | { ok: true; status: number; body: unknown }
  | { ok: false; retry: true; reason: string }
  | { ok: false; retry: false; status: number; reason: string };

export interface TransportOptions {
  url: string;
  caFile?: string;
  timeoutMs?: number;
}

export class Transport {
  private readonly dispatcher: Dispatcher;
  readonly url: string;

  constructor(opts: TransportOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    let ca: Buffer | undefined;
    if (opts.caFile) {
      try {
        ca = readFileSync(opts.caFile);
      } catch (err) {
        throw new DwError('DW_ERR_CONFIG', `cannot read the controller CA ${opts.caFile}: ${(err as NodeJS.ErrnoException).code ?? err}`, { path: opts.caFile });
      }
    }
    const timeout = opts.timeoutMs ?? 30_000;
    this.dispatcher = new Agent({ connect: { ...(ca ? { ca } : {}), timeout }, headersTimeout: timeout, bodyTimeout: timeout, keepAliveTimeout: 30_000 });
  }

  async post(path: string, bearer: string, body: unknown): Promise<SendOutcome> {
    return this.call('POST', path, bearer, body);
  }

  async get(path: string, bearer?: string): Promise<SendOutcome> {
    return this.call('GET', path, bearer);
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private async call(method: 'GET' | 'POST', path: string, bearer: string | undefined, body?: unknown): Promise<SendOutcome> {
    let res;
    try {
      res = await request(this.url + path, {
        method,
        dispatcher: this.dispatcher,
        headers: {
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          // The host's clock at the moment of sending (not at scan time, which a spooled report keeps):
          // the controller compares it with its own clock to see a skewed host.
          [SENT_AT_HEADER]: new Date().toISOString(),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { ok: false, retry: true, reason: `${e.code ?? e.name}: ${e.message}` };
    }
    const text = await res.body.text().catch(() => '');
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
    if (res.statusCode < 300) return { ok: true, status: res.statusCode, body: parsed };
    const message = (parsed as { message?: string } | null)?.message ?? String(text).slice(0, 300);
    const reason = `${res.statusCode}: ${message}`;
    // 422 means the controller has no manifest for this image yet: publishing it fixes that, so wait.
    if (res.statusCode >= 500 || res.statusCode === 429 || res.statusCode === 408 || res.statusCode === 422) return { ok: false, retry: true, reason };
    return { ok: false, retry: false, status: res.statusCode, reason };
  }
}

/** Exponential backoff with full jitter: retries of a fleet spread out instead of arriving together. */
export function backoffMs(attempt: number, baseMs = 1000, maxMs = 300_000, random = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(cap / 2 + random() * (cap / 2));
}
