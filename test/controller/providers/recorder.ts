/** @module A local HTTP endpoint that records every request (method, path, headers, body) and answers from a handler. */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { ProviderContext, ReplacementTarget } from '../../../controller/providers/types.js';

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Answer {
  status?: number;
  body?: string | object;
  headers?: Record<string, string>;
}

export class Recorder {
  readonly requests: Recorded[] = [];
  private server!: Server;
  url = '';
  constructor(public handler: (r: Recorded) => Answer | Promise<Answer>) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const u = new URL(req.url ?? '/', 'http://x');
        const rec: Recorded = {
          method: req.method ?? '',
          path: u.pathname,
          query: u.searchParams,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        this.requests.push(rec);
        Promise.resolve(this.handler(rec)).then(
          (a) => {
            const body = a.body === undefined ? '' : typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
            const type = typeof a.body === 'string' && a.body.startsWith('<') ? 'text/xml' : 'application/json';
            res.writeHead(a.status ?? 200, { 'content-type': type, ...a.headers });
            res.end(body);
          },
          (err: unknown) => {
            res.writeHead(500);
            res.end(String(err));
          },
        );
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

export function target(over: Partial<ReplacementTarget> = {}): ReplacementTarget {
  return {
    replacementId: 'r-1',
    attempt: 1,
    hostId: '4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e',
    hostname: 'i-0abc123def4567890.eu-west-1.compute.internal',
    imageId: 'ami-web-1',
    group: 'web-asg',
    addresses: ['10.0.1.7'],
    enrolledAt: '2026-03-01T00:00:00.000Z',
    reason: 'tainted',
    ref: null,
    startedAt: null,
    ...over,
  };
}

export function context(
  o: { now?: () => Date; successor?: () => string | null; signal?: AbortSignal } = {},
): ProviderContext {
  return {
    log: pino({ level: 'silent' }),
    clock: o.now ?? (() => new Date()),
    signal: o.signal ?? new AbortController().signal,
    findCleanSuccessor: async () => o.successor?.() ?? null,
  };
}
