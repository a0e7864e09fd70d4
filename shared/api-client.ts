/** @module A small client for the controller API (undici), used by the CLI: bearer token, JSON, errors that name the problem. */
import { request } from 'undici';
import { DwError, ERRORS, type ErrorCode } from './errors.js';

export interface ApiTarget {
  url: string;
  token: string;
}

/** --url/--token, else DRIFTWARDEN_URL/DRIFTWARDEN_TOKEN: tokens in flags end up in shell history. */
export function apiTarget(opts: { url?: string; token?: string }): ApiTarget {
  const url = opts.url ?? process.env.DRIFTWARDEN_URL ?? 'http://127.0.0.1:8443';
  const token = opts.token ?? process.env.DRIFTWARDEN_TOKEN;
  if (!token) throw new DwError('DW_ERR_USAGE', 'no API token: set DRIFTWARDEN_TOKEN (or pass --token)');
  return { url: url.replace(/\/+$/, ''), token };
}

/** The controller's own error code when it sent one from the catalog (so `no such host` is DW_ERR_NOT_FOUND here too). */
function refusalCode(code: string | undefined): ErrorCode {
  return code !== undefined && Object.hasOwn(ERRORS, code) ? (code as ErrorCode) : 'DW_ERR_IO';
}

export async function api<T>(
  target: ApiTarget,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<T> {
  let res;
  try {
    res = await request(`${target.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${target.token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      headersTimeout: 30_000,
      bodyTimeout: 120_000,
    });
  } catch (err) {
    throw new DwError('DW_ERR_IO', `cannot reach the controller at ${target.url}: ${(err as Error).message}`, {
      url: target.url,
    });
  }
  const text = await res.body.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below if the status is an error
  }
  if (res.statusCode >= 400) {
    const body = json as { error?: string; message?: string } | null;
    const msg = body?.message ?? text.slice(0, 200);
    throw new DwError(
      refusalCode(body?.error),
      `controller refused ${method} ${path} (${res.statusCode}${body?.error ? ` ${body.error}` : ''}): ${msg}`,
      { status: res.statusCode },
    );
  }
  return json as T;
}

/** A GET whose answer is not JSON (CSV, HTML, JSON lines): the body as text. */
export async function apiText(target: ApiTarget, path: string): Promise<string> {
  let res;
  try {
    res = await request(`${target.url}${path}`, {
      method: 'GET',
      headers: { authorization: `Bearer ${target.token}` },
      headersTimeout: 30_000,
      bodyTimeout: 300_000,
    });
  } catch (err) {
    throw new DwError('DW_ERR_IO', `cannot reach the controller at ${target.url}: ${(err as Error).message}`, {
      url: target.url,
    });
  }
  const text = await res.body.text();
  if (res.statusCode >= 400) {
    let msg = text.slice(0, 200);
    try {
      msg = (JSON.parse(text) as { message?: string }).message ?? msg;
    } catch {
      // not JSON
    }
    throw new DwError('DW_ERR_IO', `controller refused GET ${path} (${res.statusCode}): ${msg}`, {
      status: res.statusCode,
    });
  }
  return text;
}
