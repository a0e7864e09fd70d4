/**
 * @module Signed webhook POSTs (SIEM feed, chat notifications, and the `webhook` replacement provider:
 * one format for all of them, docs/examples/webhook-receiver.mjs checks it). The signature is HMAC-SHA256 over
 * `TIMESTAMP.BODY` with a shared secret: headers `x-driftwarden-timestamp` (Unix seconds) and
 * `x-driftwarden-signature: v1=<hex>`. Receivers recompute it and refuse old timestamps (replays).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { DwError } from '../../shared/errors.js';

export const SIGNATURE_HEADER = 'x-driftwarden-signature';
export const TIMESTAMP_HEADER = 'x-driftwarden-timestamp';

export function signWebhook(secret: string | Buffer, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** For receivers (and tests): the signature matches and the timestamp is within `toleranceSeconds` of now. */
export function verifyWebhook(
  secret: string | Buffer,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  now = Date.now(),
  toleranceSeconds = 300,
): boolean {
  const ts = Number(headers[TIMESTAMP_HEADER]);
  const sig = headers[SIGNATURE_HEADER];
  if (!Number.isInteger(ts) || typeof sig !== 'string') return false;
  if (Math.abs(now / 1000 - ts) > toleranceSeconds) return false;
  const want = Buffer.from(signWebhook(secret, ts, body));
  const got = Buffer.from(sig);
  return want.length === got.length && timingSafeEqual(want, got);
}

export function readSecretFile(file: string | undefined, key: string): Buffer | null {
  if (!file) return null;
  try {
    return Buffer.from(readFileSync(file, 'utf8').trim());
  } catch (err) {
    throw new DwError('DW_ERR_CONFIG', `${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      key,
    });
  }
}

export async function postSigned(
  url: string,
  body: string,
  o: { secret: Buffer | null; contentType: string; now?: () => Date },
): Promise<void> {
  const ts = Math.floor((o.now?.() ?? new Date()).getTime() / 1000);
  const headers: Record<string, string> = { 'content-type': o.contentType, 'user-agent': 'driftwarden-controller' };
  if (o.secret) {
    headers[TIMESTAMP_HEADER] = String(ts);
    headers[SIGNATURE_HEADER] = signWebhook(o.secret, ts, body);
  }
  let res;
  try {
    res = await request(url, { method: 'POST', headers, body, headersTimeout: 10_000, bodyTimeout: 10_000 });
  } catch (err) {
    throw new DwError('DW_ERR_IO', `webhook ${new URL(url).origin}: ${(err as Error).message}`, {
      url: new URL(url).origin,
    });
  }
  await res.body.dump();
  if (res.statusCode < 200 || res.statusCode >= 300)
    throw new DwError('DW_ERR_IO', `webhook ${new URL(url).origin} answered ${res.statusCode}`, {
      status: res.statusCode,
    });
}
