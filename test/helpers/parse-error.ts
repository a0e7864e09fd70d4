/** @module The DwParseError a parser throws, for tests that pin its file, line and reason. */
import { DwParseError } from '../../shared/errors.js';

export function parseError(fn: () => unknown): DwParseError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DwParseError) return err;
    throw err;
  }
  throw new Error('expected a DwParseError');
}
