/**
 * @module How a receiver checks a driftwarden webhook (SIEM feed, notifications, the `webhook`
 * replacement provider: all three sign the same way). Plain Node, no driftwarden code: copy it.
 *
 *   x-driftwarden-timestamp: Unix seconds when the request was sent
 *   x-driftwarden-signature: v1=HEX, HEX = lowercase hex HMAC-SHA256(secret, TIMESTAMP + "." + BODY)
 *
 * BODY is the raw request body as received (bytes, before any JSON parsing). Refuse a timestamp more
 * than five minutes from now: that is what stops a captured request from being replayed later.
 * test/controller/webhook-receiver.test.ts runs this file against what the controller sends.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * @param {string | Buffer} secret the shared secret (the controller's secretFile, trimmed)
 * @param {Record<string, string | string[] | undefined>} headers request headers, lower-case names
 * @param {string | Buffer} body the raw body
 * @param {number} [nowMs] the receiver's clock
 * @returns {boolean} whether to trust the request
 */
export function verifyDriftwardenWebhook(secret, headers, body, nowMs = Date.now()) {
  const timestamp = headers['x-driftwarden-timestamp'];
  const signature = headers['x-driftwarden-signature'];
  if (typeof timestamp !== 'string' || typeof signature !== 'string' || !/^\d+$/.test(timestamp)) return false;
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > 300) return false;
  const mac = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
  const want = Buffer.from(`v1=${mac}`);
  const got = Buffer.from(signature);
  return want.length === got.length && timingSafeEqual(want, got);
}
