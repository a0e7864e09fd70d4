/**
 * @module Pinned identity: the hostname and group a host enrolled with are what providers act on, so
 * a report that claims others cannot move them (a host that names itself after another instance must
 * not get that instance replaced). A differing claim is refused, kept as what the host claims, raised
 * as an integrity deviation and audited once per new claim.
 */
import type { CloudIdentity } from '../shared/schema/identity.js';
import type { Report } from '../shared/schema/report.js';
import type { HostRow } from './store/types.js';

export interface IdentityClaim {
  field: 'hostname' | 'group' | 'cloud';
  pinned: string | null;
  claimed: string;
}

/**
 * The fields this report claims differently from the pinned identity. A report that states nothing
 * (no inventory hostname, no group) claims nothing: agents without a configured group send none.
 */
/** A claim is kept (host row, deviation, audit) at most this long: a DNS name has at most 253 characters. */
export const MAX_CLAIM = 256;

export function identityClaims(
  host: Pick<HostRow, 'hostname' | 'group' | 'cloudIdentity'>,
  report: Pick<Report, 'inventory' | 'group' | 'identity'>,
): IdentityClaim[] {
  const out: IdentityClaim[] = [];
  // Only against a pinned one: a host enrolled before identities (or without one) has nothing to hold
  // a claim against, and tainting every such host when its agent is upgraded would help nobody.
  const pinned = host.cloudIdentity ?? null;
  if (pinned !== null && report.identity !== undefined && identityLabel(report.identity) !== identityLabel(pinned)) {
    out.push({
      field: 'cloud',
      pinned: identityLabel(pinned),
      claimed: identityLabel(report.identity).slice(0, MAX_CLAIM),
    });
  }
  const hostname = report.inventory?.hostname ?? null;
  if (hostname !== null && hostname !== host.hostname)
    out.push({ field: 'hostname', pinned: host.hostname, claimed: hostname.slice(0, MAX_CLAIM) });
  if (report.group !== undefined && report.group !== host.group)
    out.push({ field: 'group', pinned: host.group, claimed: report.group.slice(0, MAX_CLAIM) });
  return out;
}

/** The deviation key of a refused claim: one per field, so a host that keeps claiming stays flagged. */
export function identityKey(field: IdentityClaim['field']): string {
  return `identity:${field}`;
}

/**
 * What makes a cloud identity this machine and no other: for AWS the account, region and instance (an
 * AZ or AMI change is not another instance, and the AMI is checked against the manifest instead).
 */
export function identityLabel(identity: CloudIdentity): string {
  switch (identity.kind) {
    case 'aws':
      return `aws:${identity.accountId}/${identity.region}/${identity.instanceId}`;
    case 'kubernetes':
      return `node:${identity.nodeName}`;
    case 'host':
      return `machine-id:${identity.machineId}`;
  }
}
