/**
 * @module Dashboard sessions as HMAC-signed cookies backed by a row in the store: the cookie names the
 * token it was opened with (its id, never its secret), an expiry and a nonce, signed with the
 * controller's session key; the store keeps the nonce's hash, so logging out ends the session on the
 * controller (a copied cookie is refused afterwards, on every controller sharing the store). Every
 * request re-reads the token, so revoking or expiring the token ends its sessions at once. The CSRF token is a second HMAC of the same cookie value: the page reads it
 * from GET /api/v1/session and sends it as `x-csrf-token` on every mutating request.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DwError } from '../shared/errors.js';
import { hashSecret } from './auth.js';

export const SESSION_COOKIE = 'dw_session';
export const CSRF_HEADER = 'x-csrf-token';

export interface Session {
  /** The store's key for it: sha256 of the cookie's nonce. */
  id: string;
  tokenId: string;
  expiresAt: string;
  csrf: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set when the request was authenticated by the dashboard's session cookie rather than a bearer token. */
    session: Session | null;
  }
}

/**
 * With several controllers behind one name, give them one key file (`dashboard.sessionKeyFile`);
 * without it each process makes its own, and sessions end when it restarts.
 */
export function loadSessionKey(file: string | undefined): Buffer {
  if (!file) return randomBytes(32);
  let key: Buffer;
  try {
    key = readFileSync(file);
  } catch (err) {
    throw new DwError(
      'DW_ERR_CONFIG',
      `dashboard.sessionKeyFile: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      { key: 'dashboard.sessionKeyFile' },
    );
  }
  if (key.length < 32)
    throw new DwError(
      'DW_ERR_CONFIG',
      `dashboard.sessionKeyFile: ${file} holds ${key.length} bytes; use at least 32 random bytes`,
      { key: 'dashboard.sessionKeyFile' },
    );
  return key;
}

const mac = (key: Buffer, purpose: string, payload: string) =>
  createHmac('sha256', key).update(`${purpose}\n${payload}`).digest('base64url');

export function issueSession(
  key: Buffer,
  tokenId: string,
  now: Date,
  ttlMs: number,
): { cookie: string; session: Session } {
  const expires = new Date(now.getTime() + ttlMs);
  const nonce = randomBytes(16).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ t: tokenId, e: expires.getTime(), n: nonce })).toString('base64url');
  return {
    cookie: `${payload}.${mac(key, 'session', payload)}`,
    session: { id: hashSecret(nonce), tokenId, expiresAt: expires.toISOString(), csrf: mac(key, 'csrf', payload) },
  };
}

function sameMac(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The session a cookie value carries, or null if it is forged, malformed or expired. */
export function readSession(key: Buffer, value: string, now: Date): Session | null {
  const dot = value.indexOf('.');
  if (dot <= 0) return null;
  const payload = value.slice(0, dot);
  if (!sameMac(value.slice(dot + 1), mac(key, 'session', payload))) return null;
  let p: { t?: unknown; e?: unknown; n?: unknown };
  try {
    p = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof p;
  } catch {
    return null;
  }
  if (typeof p.t !== 'string' || typeof p.e !== 'number' || typeof p.n !== 'string' || p.e <= now.getTime())
    return null;
  return { id: hashSecret(p.n), tokenId: p.t, expiresAt: new Date(p.e).toISOString(), csrf: mac(key, 'csrf', payload) };
}

export function csrfMatches(session: Session, header: string | string[] | undefined): boolean {
  return typeof header === 'string' && sameMac(header, session.csrf);
}

export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** HttpOnly (scripts cannot read it), SameSite=Strict (no cross-site sends), Secure when served over TLS. */
export function setCookieHeader(value: string, o: { secure: boolean; maxAgeSeconds: number }): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${o.maxAgeSeconds}${o.secure ? '; Secure' : ''}`;
}
