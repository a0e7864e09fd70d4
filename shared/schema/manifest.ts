/** @module The manifest: what an image contained when it was baked, one section per collector. */
import { z } from 'zod';
import { DigestSchema, IsoTimeSchema } from './common.js';
import { COLLECTOR_NAMES, type CollectorName } from './common.js';
import { ITEM_SCHEMAS, type ItemTypes } from './items.js';
import { CollectionRulesSchema } from './rules.js';

export const MANIFEST_SCHEMA_ID = 'driftwarden/manifest/v1';

export const SignatureSchema = z.strictObject({
  alg: z.literal('ed25519'),
  keyId: z.string().regex(/^[0-9a-f]{16}$/),
  /** The overall digest this signature covers; it must equal the manifest's own. */
  digest: DigestSchema,
  value: z.string().min(1),
});
export type Signature = z.infer<typeof SignatureSchema>;

export const OsSchema = z.strictObject({
  id: z.string(),
  versionId: z.string(),
  prettyName: z.string(),
});
export type Os = z.infer<typeof OsSchema>;

const section = <T extends z.ZodTypeAny>(item: T) => z.strictObject({ items: z.array(item) });

/** One optional section per registered collector (shared/collectors.ts). */
export const SectionsSchema = z.strictObject(
  Object.fromEntries(COLLECTOR_NAMES.map((n) => [n, section(ITEM_SCHEMAS[n]).optional()])),
) as unknown as z.ZodType<{ [N in CollectorName]?: { items: ItemTypes[N][] } }>;
export type Sections = z.infer<typeof SectionsSchema>;

export const ManifestSchema = z.strictObject({
  schema: z.literal(MANIFEST_SCHEMA_ID),
  image: z.strictObject({
    id: z.string().min(1).max(256),
    name: z.string().max(256).optional(),
    version: z.string().max(256).optional(),
    /** Where the image came from: a build URL, a commit, a Packer template. */
    source: z.string().max(1024).optional(),
    /**
     * The cloud image this manifest was baked into (an AMI id), when `id` is not it: a host whose
     * identity says it booted another image is an integrity deviation (`identity:image`), and taints.
     */
    cloudImageId: z.string().min(1).max(256).optional(),
  }),
  os: OsSchema.nullable(),
  createdAt: IsoTimeSchema,
  builder: z.strictObject({ agentVersion: z.string(), hostname: z.string().nullable() }),
  rules: CollectionRulesSchema,
  sections: SectionsSchema,
  digests: z.strictObject({
    sections: z.record(z.string(), DigestSchema),
    overall: DigestSchema,
  }),
  signature: SignatureSchema.optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;
