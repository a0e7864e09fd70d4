/** @module A throwaway P-256 certificate for localhost and 127.0.0.1, for tests that serve HTTPS. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Writes DIR/tls.key and DIR/tls.crt (valid one day) and returns their paths. */
export function selfSignedCert(dir: string): { certFile: string; keyFile: string } {
  const keyFile = join(dir, 'tls.key');
  const certFile = join(dir, 'tls.crt');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile };
}
