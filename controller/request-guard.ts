/**
 * @module What every request is checked for before its route sees it, in one linear pass: values
 * nested deeper than LIMITS.maxDepth (V8's JSON.parse is iterative and survives any depth, but
 * JSON.stringify, canonical JSON and zod recurse, and would run out of stack), and strings the store
 * cannot hold or that no host needs to send (NUL, lone surrogates, longer than LIMITS.maxString),
 * anywhere in the body, the query string or the path parameters. Refusals name the field's path.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { DwError } from '../shared/errors.js';
import { LIMITS, unstorable } from '../shared/schema/limits.js';

function describe(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key.slice(0, 64))}]`;
}

/**
 * The first string in `value` (object keys included) that cannot be stored, with its path, e.g.
 * `body.deviations[3].actual.command`; null when there is none. The walk stops at LIMITS.maxDepth, so
 * its own recursion is bounded; it visits each value once.
 */
export function findUnstorable(value: unknown, path: string, depth = 0): { path: string; reason: string } | null {
  if (typeof value === 'string') {
    const reason = unstorable(value);
    return reason ? { path, reason } : null;
  }
  if (typeof value !== 'object' || value === null) return null;
  if (depth >= LIMITS.maxDepth)
    return { path, reason: `nested deeper than ${LIMITS.maxDepth} levels of objects and arrays` };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      // Scalars other than strings need no path: most array members of a report are objects or strings.
      if (v === null || (typeof v !== 'object' && typeof v !== 'string')) continue;
      const found = findUnstorable(v, describe(path, i), depth + 1);
      if (found) return found;
    }
    return null;
  }
  for (const k of Object.keys(value)) {
    const at = describe(path, k);
    const bad = unstorable(k);
    if (bad) return { path: at, reason: `its name ${bad}` };
    const found = findUnstorable((value as Record<string, unknown>)[k], at, depth + 1);
    if (found) return found;
  }
  return null;
}

/** Throws DW_ERR_VALIDATION naming the first unstorable string under `where` (body, querystring, params). */
export function assertStorable(value: unknown, where: string): void {
  const found = findUnstorable(value, where);
  if (found) throw new DwError('DW_ERR_VALIDATION', `${found.path}: ${found.reason}`, { path: found.path });
}

/** Members of a top-level array walked between two yields to the event loop. */
const SLICE = 2000;

/**
 * assertStorable for a request body, giving the event loop back between slices of its large arrays
 * (a report's deviations): the walk of an 8 MB body is a few hundred milliseconds of CPU.
 */
export async function assertStorableBody(body: unknown, where = 'body'): Promise<void> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return assertStorable(body, where);
  for (const k of Object.keys(body)) {
    const at = describe(where, k);
    const bad = unstorable(k);
    if (bad) throw new DwError('DW_ERR_VALIDATION', `${at}: its name ${bad}`, { path: at });
    const v = (body as Record<string, unknown>)[k];
    if (!Array.isArray(v) || v.length <= SLICE) {
      const found = findUnstorable(v, at, 1);
      if (found) throw new DwError('DW_ERR_VALIDATION', `${found.path}: ${found.reason}`, { path: found.path });
      continue;
    }
    for (let i = 0; i < v.length; i++) {
      if (i > 0 && i % SLICE === 0) await yieldToLoop();
      const found = findUnstorable(v[i], describe(at, i), 2);
      if (found) throw new DwError('DW_ERR_VALIDATION', `${found.path}: ${found.reason}`, { path: found.path });
    }
  }
}
