/**
 * @module Enrollment by AWS identity: the instance identity document proves which instance is
 * speaking when its signature verifies against AWS's published regional certificate (configured as PEM
 * files: `enrollment.aws.certificates`), the document names an allowed account and region, and the
 * instance launched recently (`pendingTime` within `maxAge`: a document copied off an old instance is
 * refused). That the instance id is not already enrolled is the store's check (routes/enroll.ts).
 *
 * The signature verified is the base64 RSA-SHA256 one (IMDS dynamic/instance-identity/signature),
 * which node:crypto verifies with the certificate's public key: no subprocess, no PKCS7 parser.
 */
import { X509Certificate, createVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DwError } from '../shared/errors.js';
import {
  AwsIdentityDocumentSchema,
  type AwsIdentityDocument,
  type AwsIdentityProof,
} from '../shared/schema/identity.js';

export interface AwsEnrollmentPolicy {
  certificates: readonly { file: string; cert: X509Certificate }[];
  accounts: readonly string[];
  /** Empty: any region. */
  regions: readonly string[];
  maxAgeMs: number;
}

/** Clocks disagree: a pendingTime this far ahead of the controller is still taken. */
const FUTURE_SKEW_MS = 5 * 60_000;

export function loadAwsCertificates(files: readonly string[]): AwsEnrollmentPolicy['certificates'] {
  return files.map((file) => {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (err) {
      throw new DwError('DW_ERR_CONFIG', `enrollment.aws.certificates: cannot read ${file}: ${(err as Error).message}`);
    }
    try {
      return { file, cert: new X509Certificate(pem) };
    } catch (err) {
      throw new DwError(
        'DW_ERR_CONFIG',
        `enrollment.aws.certificates: ${file} is not a PEM X.509 certificate: ${(err as Error).message}`,
      );
    }
  });
}

/**
 * The document, once it is proven; otherwise a DwError naming what failed: 401 for a signature or
 * freshness that does not hold (not a proof), 403 for a proven instance this controller does not take.
 */
export function verifyAwsIdentity(
  proof: AwsIdentityProof,
  policy: AwsEnrollmentPolicy,
  now: Date,
): AwsIdentityDocument {
  const signature = Buffer.from(proof.signature.replace(/\s+/g, ''), 'base64');
  const at = now.getTime();
  const usable = policy.certificates.filter(
    ({ cert }) => Date.parse(cert.validFrom) <= at && at <= Date.parse(cert.validTo),
  );
  if (usable.length === 0)
    throw new DwError(
      'DW_ERR_UNAUTHORIZED',
      'no configured AWS certificate is valid now (enrollment.aws.certificates): identity documents cannot be verified',
    );
  const signer = usable.find(({ cert }) =>
    createVerify('RSA-SHA256').update(proof.document, 'utf8').verify(cert.publicKey, signature),
  );
  if (!signer)
    throw new DwError(
      'DW_ERR_UNAUTHORIZED',
      `the AWS identity document's signature does not verify against any of the ${usable.length} configured certificate(s)`,
    );
  let json: unknown;
  try {
    json = JSON.parse(proof.document);
  } catch {
    throw new DwError('DW_ERR_VALIDATION', 'the signed AWS identity document is not JSON');
  }
  const parsed = AwsIdentityDocumentSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DwError(
      'DW_ERR_VALIDATION',
      `the signed AWS identity document has no usable ${issue?.path.join('.')}: ${issue?.message}`,
    );
  }
  const doc = parsed.data;
  if (!policy.accounts.includes(doc.accountId))
    throw new DwError('DW_ERR_FORBIDDEN', `AWS account ${doc.accountId} is not in enrollment.aws.accounts`, {
      accountId: doc.accountId,
    });
  if (policy.regions.length > 0 && !policy.regions.includes(doc.region))
    throw new DwError('DW_ERR_FORBIDDEN', `AWS region ${doc.region} is not in enrollment.aws.regions`, {
      region: doc.region,
    });
  const pending = Date.parse(doc.pendingTime);
  if (pending > at + FUTURE_SKEW_MS)
    throw new DwError(
      'DW_ERR_UNAUTHORIZED',
      `the AWS identity document's pendingTime ${doc.pendingTime} is in the future`,
    );
  if (at - pending > policy.maxAgeMs) {
    throw new DwError(
      'DW_ERR_UNAUTHORIZED',
      `instance ${doc.instanceId} launched at ${doc.pendingTime}, longer ago than enrollment.aws.maxAge allows: enroll it with a token, or raise maxAge`,
      { instanceId: doc.instanceId },
    );
  }
  return doc;
}
