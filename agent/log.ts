/** @module The agent's logger: pino to stderr, so stdout carries only results. */
import { pino, type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'token',
  '*.token',
  'enrollmentToken',
  '*.enrollmentToken',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'credential',
  '*.credential',
  'secret',
  '*.secret',
];

export function createLogger(level = process.env.DRIFTWARDEN_LOG_LEVEL ?? 'warn'): Logger {
  return pino({ level, base: undefined, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, pino.destination(2));
}

/** A logger that drops everything, for tests and library callers that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
