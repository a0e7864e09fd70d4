/**
 * @module How far a host's clock is from the controller's. A report's scan time cannot tell: a report
 * that waited in the spool is legitimately old. So the agent stamps each request with its clock when
 * it sends, and the controller compares that stamp with its own clock on receipt.
 */

/** Request header carrying the agent's clock (ISO 8601) at the moment it sent the request. */
export const SENT_AT_HEADER = 'x-driftwarden-sent-at';

/** Beyond this a skew is flagged: far more than network latency, far less than what breaks TLS and logs. */
export const CLOCK_SKEW_TOLERANCE_MS = 5 * 60_000;

/**
 * The host's clock minus the controller's (positive: the host is ahead), or null when the request
 * carries no usable stamp (an older agent, another client).
 */
export function clockSkewMs(sentAt: string | string[] | undefined, receivedAt: Date): number | null {
  if (typeof sentAt !== 'string') return null;
  const t = Date.parse(sentAt);
  return Number.isFinite(t) ? t - receivedAt.getTime() : null;
}
