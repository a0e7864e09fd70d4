/**
 * @module What people type for an id, resolved to the id the API takes: a whole id, any unique prefix of
 * one (the CLI prints 8-character ids), or for a host its hostname. Ambiguity is an error that lists the
 * candidates, never a guess; nothing matching is DW_ERR_NOT_FOUND naming what was given.
 */
import { api, type ApiTarget } from '../shared/api-client.js';
import { DwError } from '../shared/errors.js';

const enc = encodeURIComponent;
/** Candidates an ambiguity error lists before "and N more". */
const SHOWN = 8;

interface Candidate {
  id: string;
  label?: string | null;
}

function ambiguous(
  resource: string,
  given: string,
  found: Candidate[],
  more = false,
  hint = 'give more of the id',
): DwError {
  const names = found.slice(0, SHOWN).map((c) => (c.label ? `${c.id} (${c.label})` : c.id));
  const rest = found.length - names.length;
  const tail = rest > 0 ? ` and ${rest} more` : more ? ' and more' : '';
  return new DwError(
    'DW_ERR_AMBIGUOUS',
    `${resource} ${given} is ambiguous: it names ${names.join(', ')}${tail}; ${hint}`,
    { resource, given, candidates: found.map((c) => c.id) },
  );
}

function notFound(resource: string, given: string, what: string): DwError {
  return new DwError('DW_ERR_NOT_FOUND', `${resource} ${given} not found (no ${what} matches it)`, {
    resource,
    given,
  });
}

/** The status of a refused API call (0: not refused by the controller). */
function statusOf(err: unknown): number {
  return err instanceof DwError ? ((err.context as { status?: number }).status ?? 0) : 0;
}

/** GET `path`: true if it exists, false on 404; any other refusal is thrown as it is. */
async function exists(target: ApiTarget, path: string): Promise<boolean> {
  try {
    await api(target, 'GET', path);
    return true;
  } catch (err) {
    if (statusOf(err) === 404) return false;
    throw err;
  }
}

/**
 * A host id, from an id, a hostname or a unique id prefix, in that order: an id wins over a hostname
 * that happens to equal it, and a hostname over ids that start with it.
 */
export async function resolveHost(target: ApiTarget, given: string): Promise<string> {
  if (given === '') throw new DwError('DW_ERR_USAGE', 'host: give a host id, id prefix or hostname');
  if (await exists(target, `/api/v1/hosts/${enc(given)}`)) return given;
  // The hosts list's `q` is a prefix of the id or the hostname.
  const limit = 1000;
  const r = await api<{ hosts: { id: string; hostname: string | null }[]; next: string | null }>(
    target,
    'GET',
    `/api/v1/hosts?${new URLSearchParams({ q: given, limit: String(limit) })}`,
  );
  const named = r.hosts.filter((h) => h.hostname === given);
  if (named.length === 1) return named[0]!.id;
  if (named.length > 1)
    throw new DwError(
      'DW_ERR_AMBIGUOUS',
      `hostname ${given} names ${named.length} hosts (${named.map((h) => h.id).join(', ')}); give the host id`,
      { resource: 'hostname', given, candidates: named.map((h) => h.id) },
    );
  const prefixed = r.hosts.filter((h) => h.id.startsWith(given));
  if (prefixed.length === 1) return prefixed[0]!.id;
  if (prefixed.length > 1)
    throw ambiguous(
      'host',
      given,
      prefixed.map((h) => ({ id: h.id, label: h.hostname })),
      r.next !== null,
    );
  throw notFound('host', given, 'host id, hostname or id prefix');
}

/** A replacement id from a whole id or a unique prefix (walking the queue a page at a time). */
export async function resolveReplacement(target: ApiTarget, given: string): Promise<string> {
  if (given === '') throw new DwError('DW_ERR_USAGE', 'replacement: give a replacement id or id prefix');
  if (await exists(target, `/api/v1/replacements/${enc(given)}`)) return given;
  const found: Candidate[] = [];
  let after: string | null = null;
  do {
    const q = new URLSearchParams({ limit: '5000' });
    if (after) q.set('after', after);
    const page: {
      replacements: { id: string; hostId: string; hostname: string | null; state: string }[];
      next?: string | null;
    } = await api(target, 'GET', `/api/v1/replacements?${q}`);
    for (const r of page.replacements)
      if (r.id.startsWith(given)) found.push({ id: r.id, label: `host ${r.hostname ?? r.hostId}, ${r.state}` });
    after = page.next ?? null;
  } while (after !== null && found.length <= SHOWN);
  if (found.length === 1) return found[0]!.id;
  if (found.length > 1) throw ambiguous('replacement', given, found, after !== null);
  throw notFound('replacement', given, 'replacement id or id prefix');
}

/** An exemption id from a whole id or a unique prefix. */
export async function resolveExemption(target: ApiTarget, given: string): Promise<string> {
  if (given === '') throw new DwError('DW_ERR_USAGE', 'exemption: give an exemption id or id prefix');
  const r = await api<{ exemptions: { id: string; keyPattern: string }[] }>(target, 'GET', '/api/v1/exemptions');
  if (r.exemptions.some((e) => e.id === given)) return given;
  const found = r.exemptions.filter((e) => e.id.startsWith(given)).map((e) => ({ id: e.id, label: e.keyPattern }));
  if (found.length === 1) return found[0]!.id;
  if (found.length > 1) throw ambiguous('exemption', given, found);
  throw notFound('exemption', given, 'exemption id or id prefix');
}

/** An id from a whole id or a unique prefix among ids already listed (tokens). */
export function resolveAmong(resource: string, given: string, ids: readonly Candidate[]): string {
  if (ids.some((c) => c.id === given)) return given;
  const found = ids.filter((c) => c.id.startsWith(given));
  if (found.length === 1) return found[0]!.id;
  if (found.length > 1) throw ambiguous(resource, given, found);
  throw notFound(resource, given, `${resource} id or id prefix`);
}
