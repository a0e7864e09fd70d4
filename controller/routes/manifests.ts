/** @module The manifest registry: manifests keyed by image id, stored only after their signature checks out. */
import { z } from 'zod';
import { canonicalJson } from '../../shared/canonical.js';
import { DwError } from '../../shared/errors.js';
import { parseManifest, verifyManifest } from '../../shared/manifest.js';
import { SignatureSchema } from '../../shared/schema/manifest.js';
import type { App, AppContext } from '../app.js';

const PublishSchema = z.strictObject({
  manifest: z.record(z.string(), z.unknown()),
  /** A detached signature, for manifests that carry none of their own. */
  signature: SignatureSchema.optional(),
});

/** Manifests of whole images are large (a /usr of 120,000 files is about 25 MB of JSON). */
const MANIFEST_BODY_LIMIT = 256 * 1024 * 1024;

export function registerManifestRoutes(app: App, ctx: AppContext): void {
  app.post(
    '/api/v1/manifests',
    { config: { auth: 'operator' }, bodyLimit: MANIFEST_BODY_LIMIT, schema: { body: PublishSchema } },
    async (req, reply) => {
      const manifest = parseManifest(req.body.manifest, 'manifest');
      const signed = Boolean(manifest.signature ?? req.body.signature);
      const mustVerify = !ctx.config.allowUnsignedManifests || signed;
      if (mustVerify && ctx.trustedKeys.length === 0) {
        throw new DwError(
          'DW_ERR_MANIFEST_SIGNATURE',
          'no trusted keys are configured (trustedKeys), so no signature can be checked; configure them or set allowUnsignedManifests',
          {},
        );
      }
      const verified = verifyManifest(manifest, {
        trustedKeys: mustVerify ? ctx.trustedKeys : [],
        detached: req.body.signature,
        label: `manifest of ${manifest.image.id}`,
      });
      if (!manifest.signature && req.body.signature) manifest.signature = req.body.signature;
      const now = ctx.clock().toISOString();
      const outcome = await ctx.store.transaction(async (tx) => {
        const existing = await tx.getManifest(manifest.image.id);
        if (existing) {
          if (existing.digest === verified.digest) return 'unchanged' as const;
          throw new DwError(
            'DW_ERR_CONFLICT',
            `image ${manifest.image.id} already has a manifest with digest ${existing.digest}; an image id names one content, so build a new image id`,
            { imageId: manifest.image.id },
          );
        }
        await tx.putManifest({
          imageId: manifest.image.id,
          digest: verified.digest,
          signedBy: verified.signedBy,
          name: manifest.image.name ?? null,
          version: manifest.image.version ?? null,
          body: canonicalJson(manifest),
          publishedAt: now,
          publishedBy: req.principal!.actor,
        });
        await tx.appendAudit({
          at: now,
          actor: req.principal!.actor,
          action: 'manifest.publish',
          target: manifest.image.id,
          detail: { digest: verified.digest, signedBy: verified.signedBy },
        });
        return 'stored' as const;
      });
      if (outcome === 'stored') ctx.manifests.put(manifest.image.id, manifest);
      void reply.status(outcome === 'stored' ? 201 : 200);
      return { imageId: manifest.image.id, digest: verified.digest, signedBy: verified.signedBy, status: outcome };
    },
  );

  app.get('/api/v1/manifests', { config: { auth: 'viewer' } }, async () => ({
    manifests: await ctx.store.listManifests(),
  }));

  app.get(
    '/api/v1/manifests/:imageId',
    { config: { auth: 'viewer' }, schema: { params: z.object({ imageId: z.string() }) } },
    async (req, reply) => {
      const row = await ctx.store.getManifest(req.params.imageId);
      if (!row) throw new DwError('DW_ERR_NOT_FOUND', `no manifest for image ${req.params.imageId}`);
      void reply.header('content-type', 'application/json');
      return row.body;
    },
  );
}
