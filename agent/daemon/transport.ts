/**
 * @module The agent's link to the controller: node:https (or http) with a configurable CA, keep-alive,
 * request timeouts, and a classification of every outcome: delivered, retry later (network, 5xx, 429,
 * 408), or refused for good (any other 4xx: retrying cannot fix it). Built on node's own client rather
 * than undici: the agent sends one small request at a time, and undici's module alone costs an idle
 * agent about 20 MB. Bodies over a few KiB go gzip-compressed: a drifted host's scan (tens of thousands
 * of deviations, mostly paths and hashes) shrinks four- to tenfold.
 */
import { readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { SENT_AT_HEADER } from '../../shared/clock-skew.js';
import { DwError } from '../../shared/errors.js';
import type { AgentConfig } from '../../shared/schema/config.js';

export type SendOutcome =
  | { ok: true; status: number; body: unknown }
  /**
   * `status` when the controller answered (5xx, 429, 408, 422); none when there was no answer at all.
   * `retryAfterMs`: what a 429 or 503 asked for in Retry-After (the controller is busy or limiting us).
   */
  | { ok: false; retry: true; reason: string; status?: number; retryAfterMs?: number }
  | { ok: false; retry: false; status: number; reason: string };

export interface TransportOptions {
  url: string;
  caFile?: string;
  /** A client certificate and key for a controller that requires mTLS. */
  certFile?: string;
  keyFile?: string;
  timeoutMs?: number;
}

/** A controller's answer is a small JSON document; anything longer is cut off rather than buffered. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

/** Bodies at least this long are sent gzip-compressed; below it compression saves less than its header costs. */
export const GZIP_THRESHOLD_BYTES = 8 * 1024;

/** A JSON body as it goes on the wire. */
export interface EncodedBody {
  bytes: Buffer;
  encoding: 'gzip' | null;
}

export function encodeBody(json: string): EncodedBody {
  const raw = Buffer.from(json);
  if (raw.length < GZIP_THRESHOLD_BYTES) return { bytes: raw, encoding: null };
  // Level 6 (the default) gets within a few percent of 9 on deviation lists, at half the CPU.
  return { bytes: gzipSync(raw), encoding: 'gzip' };
}

function readSecretFile(path: string, what: string): Buffer {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw new DwError(
      'DW_ERR_CONFIG',
      `cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      { path },
    );
  }
  // The key proves this host to the controller: readable by anyone else, it proves nothing.
  if ((mode & 0o077) !== 0) {
    throw new DwError(
      'DW_ERR_CONFIG',
      `controller.keyFile: ${path} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
      { path },
    );
  }
  return readPem(path, what);
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new DwError(
      'DW_ERR_CONFIG',
      `cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      { path },
    );
  }
}

export class Transport {
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly base: URL;
  private readonly timeout: number;
  readonly url: string;

  constructor(opts: TransportOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.base = new URL(this.url);
    const tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
    if (opts.caFile) tls.ca = readPem(opts.caFile, 'controller CA');
    if (opts.certFile && opts.keyFile) {
      tls.cert = readPem(opts.certFile, 'client certificate');
      tls.key = readSecretFile(opts.keyFile, 'client key');
    }
    this.timeout = opts.timeoutMs ?? 30_000;
    // One socket is all an agent needs; kept alive between a scan's reports and the heartbeats.
    const agentOpts = { keepAlive: true, maxSockets: 1, timeout: this.timeout };
    this.agent = this.base.protocol === 'https:' ? new HttpsAgent({ ...agentOpts, ...tls }) : new HttpAgent(agentOpts);
  }

  /** `bearer` null: a request whose body is its credential (enrollment by AWS identity). */
  async post(path: string, bearer: string | null, body: unknown): Promise<SendOutcome> {
    return this.call('POST', path, bearer ?? undefined, body);
  }

  /** A body already encoded (see encodeBody), so a caller can measure it before sending. */
  async postEncoded(path: string, bearer: string, body: EncodedBody): Promise<SendOutcome> {
    return this.call('POST', path, bearer, body);
  }

  async get(path: string, bearer?: string): Promise<SendOutcome> {
    return this.call('GET', path, bearer);
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  private async call(
    method: 'GET' | 'POST',
    path: string,
    bearer: string | undefined,
    body?: unknown,
  ): Promise<SendOutcome> {
    let res: { status: number; text: string; retryAfter?: string };
    try {
      res = await this.send(
        method,
        path,
        bearer,
        body === undefined ? undefined : isEncoded(body) ? body : encodeBody(JSON.stringify(body)),
      );
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { ok: false, retry: true, reason: `${e.code ?? e.name}: ${e.message}` };
    }
    const text = res.text;
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
    if (res.status < 300) return { ok: true, status: res.status, body: parsed };
    const message = (parsed as { message?: string } | null)?.message ?? String(text).slice(0, 300);
    const reason = `${res.status}: ${message}`;
    // 422 means the controller has no manifest for this image yet: publishing it fixes that, so wait.
    if (res.status === 429 || res.status === 503) {
      const retryAfterMs = parseRetryAfter(res.retryAfter, Date.now());
      return { ok: false, retry: true, reason, status: res.status, ...(retryAfterMs !== null ? { retryAfterMs } : {}) };
    }
    if (res.status >= 500 || res.status === 408 || res.status === 422)
      return { ok: false, retry: true, reason, status: res.status };
    return { ok: false, retry: false, status: res.status, reason };
  }

  /** One request; rejects on a network error or when the whole exchange takes longer than the timeout. */
  private send(
    method: string,
    path: string,
    bearer: string | undefined,
    body: EncodedBody | undefined,
  ): Promise<{ status: number; text: string; retryAfter?: string }> {
    const target = new URL(this.base.pathname.replace(/\/+$/, '') + path, this.base);
    const headers: Record<string, string | number> = {
      accept: 'application/json',
      // The host's clock at the moment of sending (not at scan time, which a spooled report keeps):
      // the controller compares it with its own clock to see a skewed host.
      [SENT_AT_HEADER]: new Date().toISOString(),
    };
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (body) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = body.bytes.length;
      if (body.encoding) headers['content-encoding'] = body.encoding;
    }
    const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(target, { method, headers, agent: this.agent }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_RESPONSE_BYTES) chunks.push(c);
        });
        res.on('end', () => {
          clearTimeout(timer);
          const retryAfter = res.headers['retry-after'];
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8'),
            ...(typeof retryAfter === 'string' ? { retryAfter } : {}),
          });
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        res.on('close', () => {
          if (res.complete) return;
          clearTimeout(timer);
          reject(
            Object.assign(new Error('the connection closed before the answer was complete'), { code: 'ECONNRESET' }),
          );
        });
      });
      const timer = setTimeout(
        () =>
          req.destroy(Object.assign(new Error(`no complete answer within ${this.timeout} ms`), { code: 'ETIMEDOUT' })),
        this.timeout,
      );
      // A controller that refuses a body early (413) answers before the body is written; that answer
      // settles the promise, and the EPIPE that may follow it changes nothing (test/agent/daemon/transport.test.ts).
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(body?.bytes);
    });
  }
}

/** The transport an agent config describes. */
export function transportFor(controller: NonNullable<AgentConfig['controller']>, timeoutMs?: number): Transport {
  return new Transport({
    url: controller.url,
    caFile: controller.caFile,
    certFile: controller.certFile,
    keyFile: controller.keyFile,
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}

function isEncoded(body: unknown): body is EncodedBody {
  return (
    typeof body === 'object' && body !== null && Buffer.isBuffer((body as EncodedBody).bytes) && 'encoding' in body
  );
}

/** Exponential backoff with full jitter: retries of a fleet spread out instead of arriving together. */
export function backoffMs(attempt: number, baseMs = 1000, maxMs = 300_000, random = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/** Retry-After as milliseconds from now: delay-seconds or an HTTP date (RFC 9110 10.2.3); null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number): number | null {
  if (value === undefined) return null;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) && /[A-Za-z]/.test(v) ? Math.max(0, at - now) : null;
}

/** The longest an agent waits on a Retry-After: a controller asking for more is not believed past it. */
export const RETRY_AFTER_CAP_MS = 15 * 60_000;

/**
 * How long to wait on a controller's Retry-After: what it asked, plus 0-50 % at random so the fleet it
 * turned away does not come back in the same second; capped (a misconfigured header cannot park an
 * agent for a day); never below backoffMs' first step of one second.
 */
export function retryAfterDelayMs(retryAfterMs: number, random = Math.random, capMs = RETRY_AFTER_CAP_MS): number {
  const base = Math.max(1000, retryAfterMs);
  return Math.round(Math.min(capMs, base * (1 + 0.5 * random())));
}
