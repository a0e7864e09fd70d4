/** @module One catalog of driftwarden errors: code, HTTP status and CLI exit code, mapped at the edge. */

export const ERRORS = {
  DW_ERR_CONFIG: { status: 400, exit: 2, summary: 'configuration is invalid' },
  DW_ERR_USAGE: { status: 400, exit: 2, summary: 'command-line usage is invalid' },
  DW_ERR_MANIFEST_MISSING: { status: 404, exit: 2, summary: 'manifest file not found' },
  DW_ERR_MANIFEST_INVALID: { status: 400, exit: 2, summary: 'manifest is malformed or fails its schema' },
  DW_ERR_MANIFEST_DIGEST: { status: 400, exit: 2, summary: 'manifest digests do not match its contents' },
  DW_ERR_MANIFEST_SIGNATURE: { status: 400, exit: 2, summary: 'manifest signature is missing or invalid' },
  DW_ERR_KEY: { status: 400, exit: 2, summary: 'key file is missing or not a usable ed25519 PEM key' },
  DW_ERR_ROOT: { status: 400, exit: 2, summary: 'root directory is missing or unreadable' },
  DW_ERR_PARSE: { status: 400, exit: 2, summary: 'a host file could not be parsed' },
  DW_ERR_COLLECTOR: { status: 500, exit: 2, summary: 'a collector failed' },
  DW_ERR_EXEC: { status: 500, exit: 2, summary: 'an external command failed' },
  DW_ERR_IO: { status: 500, exit: 2, summary: 'a file could not be read or written' },
  DW_ERR_VALIDATION: { status: 400, exit: 2, summary: 'a request failed validation' },
  DW_ERR_TOO_LARGE: { status: 413, exit: 2, summary: 'a request body is larger than allowed' },
  DW_ERR_UNSUPPORTED_ENCODING: { status: 415, exit: 2, summary: 'a request body is in an encoding the controller does not accept' },
  DW_ERR_UNAUTHORIZED: { status: 401, exit: 2, summary: 'no valid credential was presented' },
  DW_ERR_FORBIDDEN: { status: 403, exit: 2, summary: 'the credential may not do this' },
  DW_ERR_NOT_FOUND: { status: 404, exit: 2, summary: 'no such resource' },
  DW_ERR_RATE_LIMITED: { status: 429, exit: 2, summary: 'too many failed or enrollment attempts from this address; retry later' },
  DW_ERR_CONFLICT: { status: 409, exit: 2, summary: 'the request conflicts with stored state' },
  DW_ERR_REPLAY: { status: 409, exit: 2, summary: 'a report was replayed or arrived out of order' },
  DW_ERR_NO_MANIFEST: { status: 422, exit: 2, summary: 'no manifest is published for the image' },
  DW_ERR_INTERNAL: { status: 500, exit: 2, summary: 'an internal error' },
  DW_ERR_TIME_BUDGET: { status: 503, exit: 2, summary: 'a request took longer than its time budget and was rolled back' },
  DW_ERR_STATE: { status: 409, exit: 2, summary: 'the host is not in a state that allows this' },
  DW_ERR_PROVIDER: { status: 502, exit: 2, summary: 'a replacement provider failed or refused' },
} as const;

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
