/**
 * @module Load shedding: past a bound on requests in flight, or on requests queued for a store
 * connection, a request is answered 503 with Retry-After at once, before its credential is looked at
 * or its body read, instead of joining a queue that would time every request out. The answer is the
 * same to every caller (429 stays for one source's own excess, rate-limit.ts); agents keep the report
 * spooled and come back after Retry-After plus jitter (agent/daemon/transport.ts).
 */
import { DwError } from '../shared/errors.js';

export interface OverloadLimits {
  /** Requests being handled at once (every route with a credential; /healthz is never shed). */
  maxInFlight: number;
  /** Queries waiting for a free store connection (PostgreSQL's pool; SQLite reports none). */
  maxStoreWaiting: number;
  /** What Retry-After says, in seconds. */
  retryAfterSeconds: number;
}

export class LoadShedder {
  #inFlight = 0;
  #shed = 0;

  constructor(
    private readonly limits: OverloadLimits,
    private readonly storeWaiting: () => number = () => 0,
  ) {}

  /** Counts the request in, or throws DW_ERR_UNAVAILABLE (503) when the controller is past a bound. */
  admit(): void {
    const waiting = this.storeWaiting();
    if (this.#inFlight >= this.limits.maxInFlight || waiting > this.limits.maxStoreWaiting) {
      this.#shed++;
      const why =
        this.#inFlight >= this.limits.maxInFlight
          ? `${this.#inFlight} requests in flight (overload.maxInFlight ${this.limits.maxInFlight})`
          : `${waiting} queries waiting for a store connection (overload.maxStoreWaiting ${this.limits.maxStoreWaiting})`;
      throw busy(`the controller is busy: ${why}`, this.limits.retryAfterSeconds);
    }
    this.#inFlight++;
  }

  /** The request admitted by admit() is done (answered or abandoned). */
  release(): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Requests refused since start. */
  get shed(): number {
    return this.#shed;
  }
}

export function busy(reason: string, retryAfterSeconds: number): DwError {
  return new DwError('DW_ERR_UNAVAILABLE', `${reason}; nothing was stored, retry in ${retryAfterSeconds}s`, {
    retryAfterSeconds,
  });
}

/**
 * A store error that says the database is gone for now (a restart, a terminated backend, a refused
 * connection), not that the request is wrong: the transaction did not commit, and the same request
 * later is the fix. SQLSTATE class 08 (connection exception), 57P01-57P03 (shutdown, cannot connect
 * now), and the driver's own errors for a connection that ended or could not be made.
 */
export function isStoreUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (/^08[0-9A-Z]{3}$/.test(code) || code === '57P01' || code === '57P02' || code === '57P03') return true;
      if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT') return true;
    }
    const msg = (e as { message?: unknown }).message;
    if (
      typeof msg === 'string' &&
      /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/.test(
        msg,
      )
    )
      return true;
  }
  return false;
}
