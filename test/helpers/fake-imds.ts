/**
 * A fake IMDSv2 on 127.0.0.1 (never the real 169.254.169.254): it insists on the session token like
 * IMDSv2 does, serves a given identity document and signature, and records what it was asked.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeImds {
  endpoint: string;
  requests: { method: string; url: string; headers: Record<string, string | string[] | undefined> }[];
  close(): Promise<void>;
}

export interface FakeImdsOptions {
  document: string;
  signature: string;
  /** Accept connections but never answer: an address nobody serves. */
  silent?: boolean;
}

const TOKEN = 'AQAEAFake-imds-session-token==';

export async function startFakeImds(opts: FakeImdsOptions): Promise<FakeImds> {
  const requests: FakeImds['requests'] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (opts.silent) return; // held open until close()
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return void res.writeHead(400).end();
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end(TOKEN);
    }
    // IMDSv2 answers 401 to a request without a valid session token.
    if (req.headers['x-aws-ec2-metadata-token'] !== TOKEN) return void res.writeHead(401).end();
    if (req.method === 'GET' && req.url === '/latest/dynamic/instance-identity/document')
      return void res.writeHead(200).end(opts.document);
    if (req.method === 'GET' && req.url === '/latest/dynamic/instance-identity/signature')
      return void res.writeHead(200).end(opts.signature);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An identity document as IMDS serves it (pretty-printed JSON; the signature covers these exact bytes). */
export function identityDocument(over: Partial<Record<string, string>> = {}): string {
  const doc = {
    accountId: '123456789012',
    architecture: 'x86_64',
    availabilityZone: 'eu-west-1a',
    imageId: 'ami-0abcdef1234567890',
    instanceId: 'i-0123456789abcdef0',
    instanceType: 't3.micro',
    pendingTime: '2026-12-04T02:00:00Z',
    privateIp: '10.0.0.12',
    region: 'eu-west-1',
    version: '2017-09-30',
    ...over,
  };
  return JSON.stringify(doc, null, 2);
}
