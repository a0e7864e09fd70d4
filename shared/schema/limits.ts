/**
 * @module What one request may carry, beyond the body size: everything a host sends is bounded here,
 * so the work of one report is bounded by these numbers (and stays inside the per-request time budget),
 * and nothing that reaches the store, a log line or a provider's argument vector can break it.
 */
import { z } from 'zod';

export const LIMITS = {
  /** Objects and arrays inside objects and arrays: a report needs about 6; deeper is an attack on a recursive step. */
  maxDepth: 64,
  /** Deviations in one report (the body limit alone would let 80,000+ minimal ones through). */
  maxDeviations: 100_000,
  /** Any string anywhere in a request, in UTF-16 code units (a cron command, a file's error text...). */
  maxString: 64 * 1024,
  /**
   * An item key (a host path, a package name:arch, a dotted sysctl name, a cron entry), in UTF-8 bytes:
   * the store indexes it, and PostgreSQL's btree refuses an index row over 2,704 bytes.
   */
  maxKeyBytes: 2048,
  /** A short name: group, agent version, OS and kernel strings, an address. */
  maxName: 256,
  /** Host addresses in an inventory. */
  maxAddresses: 256,
  /** Warnings of one collector. */
  maxWarnings: 100,
  /** A collector's error or warning text. */
  maxMessage: 4096,
  /** Wall time one report may take to ingest before it is rolled back: the default of the controller's `requestTimeBudget`. */
  requestTimeBudgetMs: 10_000,
} as const;

/**
 * C0 and C1 control characters, DEL and the Unicode line/paragraph separators: in a name they would
 * split a log line, a CSV cell or a provider's argument, and a NUL is refused by PostgreSQL outright.
 */
// eslint-disable-next-line no-control-regex
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** A lone UTF-16 surrogate: not encodable as UTF-8, so PostgreSQL cannot hold it and pg would silently change it. */
export const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why a string cannot be stored as sent, or null when it can. */
export function unstorable(s: string): string | null {
  if (s.length > LIMITS.maxString) return `longer than ${LIMITS.maxString} characters`;
  if (s.includes('\u0000')) return 'contains a NUL character (U+0000), which the store cannot hold';
  if (LONE_SURROGATE.test(s)) return 'contains a lone UTF-16 surrogate (not valid Unicode)';
  return null;
}

/**
 * A host name as RFC 1123 allows it: at most 253 characters, dot-separated labels of 1 to 63 letters,
 * digits and hyphens, no label starting or ending with a hyphen. It reaches logs, the dashboard and
 * providers' commands, so nothing else is taken.
 */
export const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
export const HostnameSchema = z
  .string()
  .regex(HOSTNAME, 'expected an RFC 1123 host name (at most 253 characters; labels of letters, digits and hyphens)');

/** A name without control characters, 1 to `max` characters. */
export function nameSchema(max: number = LIMITS.maxName) {
  return z
    .string()
    .min(1)
    .max(max)
    .refine(
      (s) => !CONTROL_CHARS.test(s),
      'must not contain control characters (U+0000-U+001F, U+007F-U+009F, U+2028, U+2029)',
    );
}

/** What agents put in agentVersion: a version string, nothing a log or dashboard could trip on. */
export const AgentVersionSchema = z
  .string()
  .regex(/^[0-9A-Za-z.+~_-]{1,64}$/, 'expected a version (1-64 letters, digits and . + ~ _ -)');

/** Free text from a host (errors, warnings): bounded; control characters are allowed (newlines in an error). */
export const MessageSchema = z.string().max(LIMITS.maxMessage);
