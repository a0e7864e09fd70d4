/**
 * @module The one logger set-up and the one redaction list for every driftwarden process, so the agent, the controller
 * and the demo can never disagree on which fields are secret.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Field paths whose values never reach a log line. Covers a field at the top level and one level down (pino's `*.x`),
 * and the request header pino-http style loggers put under `req.headers`.
 */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  '*.authorization',
  'token',
  '*.token',
  'enrollmentToken',
  '*.enrollmentToken',
  'secret',
  '*.secret',
  'credential',
  '*.credential',
  'password',
  '*.password',
];

export const REDACT_CENSOR = '[redacted]';

export interface LoggerOptions {
  /** pino level; defaults to DRIFTWARDEN_LOG_LEVEL, then `fallbackLevel`. */
  level?: string;
  fallbackLevel?: string;
  /** Stamped on every line as `service`; omitted when absent (the agent's CLI output stays terse). */
  service?: string;
  /** Where lines go; stdout when absent. */
  destination?: DestinationStream;
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const level = o.level ?? process.env.DRIFTWARDEN_LOG_LEVEL ?? o.fallbackLevel ?? 'info';
  const options = {
    level,
    base: o.service ? { service: o.service } : undefined,
    redact: { paths: [...REDACT_PATHS], censor: REDACT_CENSOR },
  };
  return o.destination ? pino(options, o.destination) : pino(options);
}

/** A logger that drops everything, for tests and library callers that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * A URL fit for a log line or an error message: user name and password are masked (a lone user name is often a
 * token), and the query and fragment, where webhook and API URLs carry tokens, are dropped.
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username) u.username = '***';
    if (u.password) u.password = '***';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
