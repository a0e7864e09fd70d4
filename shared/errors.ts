/**
 * @module One catalog of driftwarden errors, and a contract: each code has its HTTP status, its CLI exit
 * code, a one-line summary and the template its message follows (`{placeholder}` for what the thrower
 * fills in, `{a / b}` for alternatives). README.md lists the same table (test/shared/error-catalog.test.ts
 * keeps the two equal, checks every code the source names is here, and every code here is exercised).
 * Errors are mapped to responses and exit codes at the edge, from this table only.
 */

export interface ErrorSpec {
  readonly status: number;
  readonly exit: number;
  readonly summary: string;
  readonly message: string;
}

export const ERRORS = {
  DW_ERR_CONFIG: { status: 400, exit: 2, summary: 'configuration is invalid', message: '{file}: {key}: {problem}' },
  DW_ERR_USAGE: {
    status: 400,
    exit: 2,
    summary: 'command-line usage is invalid',
    message: '{what was given}: {what is expected}',
  },
  DW_ERR_MANIFEST_MISSING: {
    status: 404,
    exit: 2,
    summary: 'manifest file not found',
    message: 'manifest {path} does not exist',
  },
  DW_ERR_MANIFEST_INVALID: {
    status: 400,
    exit: 2,
    summary: 'manifest is malformed or fails its schema',
    message: '{path}: {field}: {problem}',
  },
  DW_ERR_MANIFEST_DIGEST: {
    status: 400,
    exit: 2,
    summary: 'manifest digests do not match its contents',
    message: '{path}: digest mismatch: {detail}',
  },
  DW_ERR_MANIFEST_SIGNATURE: {
    status: 400,
    exit: 2,
    summary: 'manifest signature is missing or invalid',
    message: '{path}: signature {missing / does not verify against any trusted key}',
  },
  DW_ERR_KEY: {
    status: 400,
    exit: 2,
    summary: 'key file is missing or not a usable ed25519 PEM key',
    message: 'cannot read key file {path}: {reason}',
  },
  DW_ERR_ROOT: {
    status: 400,
    exit: 2,
    summary: 'root directory is missing or unreadable',
    message: 'root {dir} {cannot be read / is not a directory}: {reason}',
  },
  DW_ERR_PARSE: {
    status: 400,
    exit: 2,
    summary: 'a host file could not be parsed',
    message: '{file}:{line}: {reason}',
  },
  DW_ERR_COLLECTOR: { status: 500, exit: 2, summary: 'a collector failed', message: '{collector}: {reason}' },
  DW_ERR_EXEC: {
    status: 500,
    exit: 2,
    summary: 'an external command failed',
    message: '{command} {failed / timed out}: {reason}',
  },
  DW_ERR_IO: {
    status: 500,
    exit: 2,
    summary: 'a file could not be read or written',
    message: '{path}: cannot {read / write}: {reason}',
  },
  DW_ERR_VALIDATION: {
    status: 400,
    exit: 2,
    summary: 'a request failed validation',
    message: '{body / query / params}.{field}: {problem}',
  },
  DW_ERR_TOO_LARGE: {
    status: 413,
    exit: 2,
    summary: 'a request body is larger than allowed',
    message: 'request body is larger than the limit ({limit})',
  },
  DW_ERR_UNSUPPORTED_ENCODING: {
    status: 415,
    exit: 2,
    summary: 'a request body is in an encoding the controller does not accept',
    message: 'content-encoding "{encoding}" is not accepted: send gzip or no encoding',
  },
  DW_ERR_UNAUTHORIZED: {
    status: 401,
    exit: 2,
    summary: 'no valid credential was presented',
    message: '{which credential}: {missing / unknown / expired / revoked}',
  },
  DW_ERR_FORBIDDEN: {
    status: 403,
    exit: 2,
    summary: 'the credential may not do this',
    message: '{role} may not {action}',
  },
  DW_ERR_NOT_FOUND: { status: 404, exit: 2, summary: 'no such resource', message: '{resource} {id} not found' },
  DW_ERR_AMBIGUOUS: {
    status: 400,
    exit: 2,
    summary: 'an id prefix or hostname names more than one resource',
    message: '{resource} {given} is ambiguous: it names {candidates}',
  },
  DW_ERR_RATE_LIMITED: {
    status: 429,
    exit: 2,
    summary: 'too many failed or enrollment attempts from this address; retry later',
    message: 'too many {failed authentications / enrollments} from {source}; retry in {seconds}s',
  },
  DW_ERR_CONFLICT: {
    status: 409,
    exit: 2,
    summary: 'the request conflicts with stored state',
    message: '{resource} {id}: {conflict}',
  },
  DW_ERR_REPLAY: {
    status: 409,
    exit: 2,
    summary: 'a report was replayed or arrived out of order',
    message:
      'report {reportId / seq}: {already received / not greater than the last accepted seq (replayed or out of order)}',
  },
  DW_ERR_NO_MANIFEST: {
    status: 422,
    exit: 2,
    summary: 'no manifest is published for the image',
    message: 'no manifest is published for image {imageId}; publish it with driftwarden manifest publish',
  },
  DW_ERR_INTERNAL: { status: 500, exit: 2, summary: 'an internal error', message: 'internal error' },
  DW_ERR_TIME_BUDGET: {
    status: 503,
    exit: 2,
    summary: 'a request took longer than its time budget and was rolled back',
    message: 'the report took longer than its time budget of {ms} ms (at {step}); nothing was stored, retry later',
  },
  DW_ERR_UNAVAILABLE: {
    status: 503,
    exit: 2,
    summary: 'the controller is overloaded or its store is unreachable; retry later',
    message: '{the controller is busy / the store is unavailable}: {why}; nothing was stored, retry in {seconds}s',
  },
  DW_ERR_STATE: {
    status: 409,
    exit: 2,
    summary: 'the host is not in a state that allows this',
    message: '{host / replacement / group} {id} is {state}: {what it does not allow}',
  },
  DW_ERR_PROVIDER: {
    status: 502,
    exit: 2,
    summary: 'a replacement provider failed or refused',
    message: '{provider}: {reason}',
  },
} as const satisfies Record<`DW_ERR_${string}`, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Every error driftwarden raises on purpose; `code` selects status and exit code, `context` says where. */
export class DwError extends Error {
  readonly code: ErrorCode;
  readonly context: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DwError';
    this.code = code;
    this.context = context;
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
  get exitCode(): number {
    return ERRORS[this.code].exit;
  }
}

/** A parser's complaint about one line of one file: parsers never throw anything else. */
export class DwParseError extends DwError {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, reason: string) {
    super('DW_ERR_PARSE', `${file}:${line}: ${reason}`, { file, line, reason });
    this.name = 'DwParseError';
    this.file = file;
    this.line = line;
  }
}

export function isDwError(err: unknown): err is DwError {
  return err instanceof DwError;
}

/** Short text for an unknown thrown value, for logs and collector results. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
