import { describe, expect, it } from 'vitest';
import { loadAwsCertificates, verifyAwsIdentity, type AwsEnrollmentPolicy } from '../../controller/aws-identity.js';
import { identityDocument } from '../helpers/fake-imds.js';
import { makeFakeAwsCert } from '../helpers/fake-aws-cert.js';

const aws = makeFakeAwsCert();
const other = makeFakeAwsCert();
// The fake certificate is valid from when it was made: the clock here is just after that, and the
// instance launched ten minutes before it.
const NOW = new Date(Date.now() + 60_000);
const PENDING = new Date(NOW.getTime() - 10 * 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
const doc = (over: Record<string, string> = {}) => identityDocument({ pendingTime: PENDING, ...over });
const policy = (over: Partial<AwsEnrollmentPolicy> = {}): AwsEnrollmentPolicy => ({
  certificates: loadAwsCertificates([aws.certFile]),
  accounts: ['123456789012'],
  regions: ['eu-west-1'],
  maxAgeMs: 60 * 60_000,
  ...over,
});

describe('AWS identity documents', () => {
  it('a document signed with the configured certificate proves its instance', () => {
    const document = doc();
    const proven = verifyAwsIdentity({ document, signature: aws.sign(document) }, policy(), NOW);
    expect(proven).toMatchObject({
      instanceId: 'i-0123456789abcdef0',
      accountId: '123456789012',
      region: 'eu-west-1',
      imageId: 'ami-0abcdef1234567890',
    });
  });

  it('takes any one of several certificates (AWS publishes one per region)', () => {
    const document = doc();
    const both = loadAwsCertificates([other.certFile, aws.certFile]);
    expect(
      verifyAwsIdentity({ document, signature: aws.sign(document) }, policy({ certificates: both }), NOW).instanceId,
    ).toBe('i-0123456789abcdef0');
  });

  it('refuses a signature made with another key', () => {
    const document = doc();
    expect(() => verifyAwsIdentity({ document, signature: other.sign(document) }, policy(), NOW)).toThrow(
      /signature does not verify against any of the 1 configured certificate/,
    );
  });

  it('refuses a signed document edited to name another instance (the signature covers its bytes)', () => {
    const document = doc();
    const signature = aws.sign(document);
    const replayed = document.replace('i-0123456789abcdef0', 'i-0fedcba9876543210');
    try {
      verifyAwsIdentity({ document: replayed, signature }, policy(), NOW);
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'DW_ERR_UNAUTHORIZED' });
    }
  });

  it('refuses an account or region outside the allow-lists, naming it', () => {
    const foreign = doc({ accountId: '999999999999' });
    expect(() => verifyAwsIdentity({ document: foreign, signature: aws.sign(foreign) }, policy(), NOW)).toThrow(
      'AWS account 999999999999 is not in enrollment.aws.accounts',
    );
    const east = doc({ region: 'us-east-1', availabilityZone: 'us-east-1a' });
    expect(() => verifyAwsIdentity({ document: east, signature: aws.sign(east) }, policy(), NOW)).toThrow(
      'AWS region us-east-1 is not in enrollment.aws.regions',
    );
    expect(verifyAwsIdentity({ document: east, signature: aws.sign(east) }, policy({ regions: [] }), NOW).region).toBe(
      'us-east-1',
    );
  });

  it('refuses a document of an instance that launched longer ago than maxAge (a copied document)', () => {
    const document = doc();
    const later = new Date(NOW.getTime() + 50 * 60_000 + 1000);
    expect(() => verifyAwsIdentity({ document, signature: aws.sign(document) }, policy(), later)).toThrow(
      `launched at ${PENDING}, longer ago than enrollment.aws.maxAge`,
    );
    const future = doc({ pendingTime: new Date(NOW.getTime() + 6 * 60_000).toISOString() });
    expect(() => verifyAwsIdentity({ document: future, signature: aws.sign(future) }, policy(), NOW)).toThrow(
      /is in the future/,
    );
  });

  it('refuses when no configured certificate is valid now', () => {
    const document = doc();
    expect(() =>
      verifyAwsIdentity(
        { document, signature: aws.sign(document) },
        policy(),
        new Date(NOW.getTime() + 3 * 86_400_000),
      ),
    ).toThrow(/no configured AWS certificate is valid now/);
  });

  it('a certificate file that is missing or not PEM is a configuration error naming the file', () => {
    expect(() => loadAwsCertificates(['/nonexistent/aws.pem'])).toThrow(/cannot read \/nonexistent\/aws.pem/);
    expect(() => loadAwsCertificates([aws.keyFile])).toThrow(/is not a PEM X.509 certificate/);
  });
});
