/**
 * @module Per-source token buckets for the attempts an attacker makes and an honest client rarely
 * does: failed authentications and enrollments. Only those cost a source anything, so honest traffic
 * with a valid credential is never counted, and one address's failures never slow another address.
 * Memory is bounded: a bucket that has refilled is forgotten, and past `maxSources` the least recently
 * seen source is dropped (which can only let that source start afresh, never block anyone).
 */
import { isIP } from 'node:net';
import { DwError } from '../shared/errors.js';

export interface Rate {
  /** The burst: attempts a fresh source may make at once. */
  max: number;
  /** ... and the bucket refills `max` attempts over this many milliseconds, continuously. */
  perMs: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class SourceLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #perMsRate: number;

  constructor(
    readonly name: string,
    private readonly rate: Rate,
    private readonly maxSources: number,
  ) {
    this.#perMsRate = rate.max / rate.perMs;
  }

  /** Tokens the source has now (the bucket brought up to date, not stored). */
  #level(source: string, now: number): number {
    const b = this.#buckets.get(source);
    if (!b) return this.rate.max;
    return Math.min(this.rate.max, b.tokens + Math.max(0, now - b.at) * this.#perMsRate);
  }

  /** Milliseconds until the source may make one more attempt; 0 when it may now. */
  waitMs(source: string, now: number): number {
    const level = this.#level(source, now);
    return level >= 1 ? 0 : Math.ceil((1 - level) / this.#perMsRate);
  }

  /** Counts one attempt against the source. */
  take(source: string, now: number): void {
    const level = this.#level(source, now) - 1;
    this.#buckets.delete(source); // re-inserted last: the map's order is least recently seen first
    this.#buckets.set(source, { tokens: level, at: now });
    while (this.#buckets.size > this.maxSources) this.#buckets.delete(this.#buckets.keys().next().value as string);
  }

  /** Refuses with 429 when the source has no attempt left; `what` says which attempts, for the message. */
  assertAllowed(source: string, now: number, what: string): void {
    const wait = this.waitMs(source, now);
    if (wait === 0) {
      // A full bucket is the same as none: forget it, so idle sources cost no memory.
      if (this.#buckets.has(source) && this.#level(source, now) >= this.rate.max) this.#buckets.delete(source);
      return;
    }
    const retryAfterSeconds = Math.max(1, Math.ceil(wait / 1000));
    throw new DwError('DW_ERR_RATE_LIMITED', `too many ${what} from ${source}; retry in ${retryAfterSeconds}s`, {
      source,
      limiter: this.name,
      retryAfterSeconds,
    });
  }

  /** Sources currently tracked (for tests and metrics). */
  get size(): number {
    return this.#buckets.size;
  }
}

/**
 * The key a request's address is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64,
 * the smallest block one site is usually given; counting single IPv6 addresses would let one host
 * rotate through 2^64 of them.
 */
export function sourceKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (isIP(ip) !== 6) return ip;
  return `${expandIpv6(ip).slice(0, 4).join(':')}::/64`;
}

function expandIpv6(ip: string): string[] {
  const [head, tail] = ip.split('%')[0]!.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => (parseInt(g, 16) || 0).toString(16));
}
