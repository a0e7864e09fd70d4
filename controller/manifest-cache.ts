/**
 * @module Parsed manifests by image id. A manifest can hold 100,000+ items; parsing it for every
 * report would dominate ingestion, and a published manifest never changes (an image id names one
 * content), so parsed copies are kept, keyed by id and digest.
 */
import { parseManifest } from '../shared/manifest.js';
import type { Manifest } from '../shared/schema/manifest.js';
import type { StoreTx } from './store/types.js';

export class ManifestCache {
  private readonly entries = new Map<string, { digest: string; manifest: Manifest }>();
  constructor(private readonly limit = 64) {}

  async get(tx: StoreTx, imageId: string): Promise<Manifest | null> {
    const hit = this.entries.get(imageId);
    if (hit) {
      // Refresh recency: Map iteration order is insertion order.
      this.entries.delete(imageId);
      this.entries.set(imageId, hit);
      return hit.manifest;
    }
    const row = await tx.getManifest(imageId);
    if (!row) return null;
    const manifest = parseManifest(JSON.parse(row.body), `manifest of ${imageId}`);
    this.put(imageId, manifest);
    return manifest;
  }

  put(imageId: string, manifest: Manifest): void {
    this.entries.delete(imageId);
    if (this.entries.size >= this.limit) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(imageId, { digest: manifest.digests.overall, manifest });
  }
}
