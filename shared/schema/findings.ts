/**
 * @module The findings API (`GET /api/v1/findings`) and a host's current deviations as the host API
 * returns them: the query the route validates, and the shape of what it answers, for the CLI and tests.
 */
import { z } from 'zod';
import { AttributionSchema, ChangeSchema, SEVERITIES, SeveritySchema } from './deviation.js';
import { HOST_STATES } from './host-state.js';

export const POLICY_ACTIONS = ['ignore', 'report', 'taint', 'exempt'] as const;

/** What findings can be ordered by; `-` before one is descending (`sort=-severity`). */
export const FINDING_SORTS = ['hosts', 'severity', 'firstSeen', 'lastSeen', 'key', 'collector'] as const;
export type FindingSort = (typeof FINDING_SORTS)[number];
const SORT_VALUES = [...FINDING_SORTS, ...FINDING_SORTS.map((s) => `-${s}` as const)] as const;

export const FindingsQuerySchema = z.strictObject({
  collector: z.string().min(1).optional(),
  severity: z.enum(SEVERITIES).optional(),
  /** The policy's decision: taint, report or exempt (ignored deviations are never findings). */
  action: z.enum(['report', 'taint', 'exempt']).optional(),
  /** A host id: only that host's deviations. */
  host: z.string().min(1).max(200).optional(),
  /** Only deviations on hosts in this state. */
  state: z.enum(HOST_STATES).optional(),
  /** Case-insensitive substring of the path (key), the collector or the hostname. */
  q: z.string().min(1).max(200).optional(),
  /** Default: most hosts first, then oldest first. */
  sort: z.enum(SORT_VALUES).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  offset: z.coerce.number().int().min(0).max(100_000).default(0),
});
export type FindingsQuery = z.infer<typeof FindingsQuerySchema>;

/** `-severity` → severity, descending. */
export function parseFindingSort(sort: string | undefined): { sort?: FindingSort; desc?: boolean } {
  if (sort === undefined) return {};
  const desc = sort.startsWith('-');
  return { sort: (desc ? sort.slice(1) : sort) as FindingSort, desc };
}

const Item = z.record(z.string(), z.unknown()).nullable();

/** Identical deviations across hosts (same collector, key, change and actual content): one finding. */
export const FindingSchema = z.object({
  collector: z.string(),
  key: z.string(),
  change: ChangeSchema,
  actualDigest: z.string(),
  severity: SeveritySchema,
  /** The strongest policy action among the hosts (taint > report > exempt). */
  action: z.enum(POLICY_ACTIONS),
  hosts: z.number().int(),
  firstSeenAt: z.string(),
  lastSeenAt: z.string(),
  expected: Item,
  actual: Item,
  /** One affected host's record of who or what made the change (null: none of them has one). */
  attribution: AttributionSchema.nullable(),
  /** How many of the hosts have such a record (each host's is in /api/v1/findings/hosts). */
  attributedHosts: z.number().int(),
});
export type Finding = z.infer<typeof FindingSchema>;

/** One current deviation of a host, as GET /api/v1/hosts/:id returns it. */
export const HostDeviationSchema = z.object({
  hostId: z.string(),
  collector: z.string(),
  key: z.string(),
  change: ChangeSchema,
  expected: Item,
  actual: Item,
  severity: SeveritySchema,
  action: z.enum(POLICY_ACTIONS),
  decidedBy: z.string(),
  firstSeenAt: z.string(),
  lastSeenAt: z.string(),
  attribution: AttributionSchema.nullable().optional(),
});
export type HostDeviation = z.infer<typeof HostDeviationSchema>;
