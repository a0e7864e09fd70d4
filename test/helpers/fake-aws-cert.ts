/**
 * A certificate and key standing in for AWS's regional identity-document certificate, made with the
 * openssl CLI (argument vectors, no shell), and the signature IMDS would serve for a document.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

export interface FakeAwsCert {
  certFile: string;
  keyFile: string;
  /** Base64 RSA-SHA256 over the document's exact bytes, as dynamic/instance-identity/signature. */
  sign(document: string): string;
}

export function makeFakeAwsCert(opts: { days?: number } = {}): FakeAwsCert {
  const dir = tempDir();
  const certFile = join(dir, 'aws-region.pem');
  const keyFile = join(dir, 'aws-region.key');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      String(opts.days ?? 2),
      '-subj',
      '/C=US/O=Fake Amazon Web Services LLC/CN=ec2.test',
    ],
    { stdio: 'ignore' },
  );
  readFileSync(certFile); // made, or the line above threw
  return {
    certFile,
    keyFile,
    sign: (document) =>
      execFileSync('openssl', ['dgst', '-sha256', '-sign', keyFile], { input: document }).toString('base64'),
  };
}
