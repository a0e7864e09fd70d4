/**
 * @module Request bodies as sent and as decoded: gzip is accepted (agents compress large reports),
 * any other content encoding is refused with 415, and both sizes are capped while streaming, so a
 * small compressed body cannot expand into gigabytes (a zip bomb) before anything is parsed.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyRequest } from 'fastify';
import { DwError } from '../shared/errors.js';

/** Passes bytes through until `limit` of them have gone by, then fails with a 413 that names the limit. */
class ByteCap extends Transform {
  private seen = 0;
  /**
   * fastify's body reader compares this, when set, with Content-Length (the compressed size) instead of
   * the length it read; kept up to date on the decompressed end from the compressed one.
   */
  receivedEncodedLength?: number;
  constructor(
    private readonly limit: number,
    /** For the error: see tooLarge. */
    private readonly what: string,
  ) {
    super();
  }
  get bytes(): number {
    return this.seen;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) return done(tooLarge(this.what));
    done(null, chunk);
  }
}

/** `what` names the limit (its config key, where it has one) and the side of decompression it caps. */
function tooLarge(what: string): DwError {
  return new DwError('DW_ERR_TOO_LARGE', `request body is larger than the limit (${what})`, {});
}

export interface BodyLimits {
  /** Bytes as sent. */
  wire: number;
  /** Bytes once decompressed. */
  decoded: number;
  /** Each limit as a 413 names it, e.g. "bodyLimit: 8388608 bytes as sent". */
  wireLabel: string;
  decodedLabel: string;
}

/**
 * fastify's preParsing hook: returns the stream the body parser reads. An identity body is capped by
 * fastify's own limit; a gzip body is read through two caps, before and after decompression.
 */
export function decodeBody(
  req: FastifyRequest,
  payload: NodeJS.ReadableStream,
  limits: BodyLimits,
): NodeJS.ReadableStream {
  const encoding = String(req.headers['content-encoding'] ?? 'identity')
    .trim()
    .toLowerCase();
  const declared = Number(req.headers['content-length']);
  const asSent = limits.wireLabel;
  if (declared > limits.wire) throw tooLarge(asSent);
  if (encoding === 'identity' || encoding === '') {
    // With a length declared, node's parser holds the body to it; without one (chunked), count.
    return Number.isFinite(declared) ? payload : payload.pipe(new ByteCap(limits.wire, asSent));
  }
  if (encoding !== 'gzip' && encoding !== 'x-gzip') {
    throw new DwError(
      'DW_ERR_UNSUPPORTED_ENCODING',
      `content-encoding ${JSON.stringify(encoding.slice(0, 40))} is not accepted: send gzip or no encoding`,
      { encoding: encoding.slice(0, 40) },
    );
  }
  const wire = new ByteCap(limits.wire, asSent);
  const gunzip = createGunzip();
  const decoded = new ByteCap(limits.decoded, limits.decodedLabel);
  decoded.receivedEncodedLength = 0;
  // Before the decompressed end passes on what these bytes became, so fastify's check sees them all.
  wire.on('data', () => (decoded.receivedEncodedLength = wire.bytes));
  // A broken gzip stream is the client's mistake (400), not ours.
  gunzip.on('error', (err) =>
    decoded.destroy(new DwError('DW_ERR_VALIDATION', `request body is not valid gzip: ${err.message}`)),
  );
  wire.on('error', (err) => decoded.destroy(err));
  payload.on('error', (err) => decoded.destroy(err as Error));
  payload.pipe(wire).pipe(gunzip).pipe(decoded);
  // Once the body is refused nothing reads on: stop decompressing what is left of it.
  decoded.on('close', () => {
    payload.unpipe(wire);
    gunzip.destroy();
  });
  return decoded;
}
