/** @module The agent's logger: the shared set-up, to stderr, so stdout carries only results. */
import { pino } from 'pino';
import { createLogger as createSharedLogger, type Logger } from '../shared/logger.js';

export { silentLogger } from '../shared/logger.js';
export type { Logger };

export function createLogger(level?: string): Logger {
  return createSharedLogger({ level, fallbackLevel: 'warn', destination: pino.destination(2) });
}
