/** @module Small schema pieces shared by manifests, reports and configs. */
import { z } from 'zod';
import { REGISTERED_COLLECTORS } from '../collectors.js';

/** Derived from the registry (shared/collectors.ts), in its order. */
export const COLLECTOR_NAMES = REGISTERED_COLLECTORS;
export const CollectorNameSchema = z.enum(COLLECTOR_NAMES);
export type CollectorName = z.infer<typeof CollectorNameSchema>;

export const DigestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex digits>');
export const HexSha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits');

/** Host paths are absolute and normalised: the root prefix is never part of them. */
export const HostPathSchema = z
  .string()
  .refine((p) => p.startsWith('/'), 'expected an absolute path')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."');

export const IsoTimeSchema = z.string().datetime({ offset: true });
