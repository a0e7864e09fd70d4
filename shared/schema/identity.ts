/**
 * @module Cloud identity: where a host runs, as the agent read it (AWS instance identity document,
 * Kubernetes node, or a plain host's machine-id), and the signed AWS document that can prove it.
 * Every field is bounded like the rest of a report (shared/schema/limits.ts).
 */
import { z } from 'zod';
import { nameSchema } from './limits.js';

/** AWS ids as AWS spells them; anything else is refused rather than stored and shown. */
export const AwsInstanceIdSchema = z
  .string()
  .regex(/^i-[0-9a-f]{8,17}$/, 'expected an EC2 instance id (i- and 8-17 hex digits)');
export const AwsAccountIdSchema = z.string().regex(/^[0-9]{12}$/, 'expected a 12-digit AWS account id');
export const AwsRegionSchema = z
  .string()
  .regex(/^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$/, 'expected an AWS region such as eu-west-1');
export const AwsAmiIdSchema = z.string().regex(/^ami-[0-9a-f]{8,17}$/, 'expected an AMI id (ami- and 8-17 hex digits)');

export const CloudIdentitySchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('aws'),
    instanceId: AwsInstanceIdSchema,
    accountId: AwsAccountIdSchema,
    region: AwsRegionSchema,
    availabilityZone: nameSchema(64),
    imageId: AwsAmiIdSchema,
  }),
  z.strictObject({
    kind: z.literal('kubernetes'),
    nodeName: nameSchema(253),
    /** The node's spec.providerID (e.g. aws:///eu-west-1a/i-0abc...), when the agent was given it. */
    providerId: nameSchema(512).optional(),
  }),
  z.strictObject({
    kind: z.literal('host'),
    machineId: nameSchema(128),
  }),
]);
export type CloudIdentity = z.infer<typeof CloudIdentitySchema>;

/**
 * The AWS instance identity document exactly as IMDS served it (the signature covers these bytes, so
 * it is carried as a string, never re-serialized) and its `signature` (base64 RSA-SHA256, IMDS path
 * dynamic/instance-identity/signature).
 */
export const AwsIdentityProofSchema = z.strictObject({
  document: z.string().min(2).max(4096),
  signature: z.string().regex(/^[A-Za-z0-9+/=\s]{16,2048}$/, 'expected the base64 signature IMDS serves'),
});
export type AwsIdentityProof = z.infer<typeof AwsIdentityProofSchema>;

/** The fields of the identity document the agent and controller use; the document carries more. */
export const AwsIdentityDocumentSchema = z.object({
  instanceId: AwsInstanceIdSchema,
  accountId: AwsAccountIdSchema,
  region: AwsRegionSchema,
  availabilityZone: nameSchema(64),
  imageId: AwsAmiIdSchema,
  pendingTime: z.string().datetime({ offset: true }),
});
export type AwsIdentityDocument = z.infer<typeof AwsIdentityDocumentSchema>;
