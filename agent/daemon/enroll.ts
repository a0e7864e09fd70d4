/**
 * @module Enrollment: trade the enrollment token for this host's own credential and keep it 0600. Once
 * on the first start, and again only when the controller no longer accepts the stored credential.
 */
import { readFileSync } from 'node:fs';
import { DwError } from '../../shared/errors.js';
import type { AgentConfig } from '../../shared/schema/config.js';
import type { Inventory } from '../../shared/schema/report.js';
import type { ReadIdentity } from '../cloud-identity.js';
import type { StateDir } from './state-dir.js';
import type { Transport } from './transport.js';

export function enrollmentToken(config: AgentConfig): string {
  const c = config.controller;
  if (c?.enrollmentToken) return c.enrollmentToken;
  if (c?.enrollmentTokenFile) {
    try {
      const t = readFileSync(c.enrollmentTokenFile, 'utf8').trim();
      if (t) return t;
    } catch (err) {
      throw new DwError(
        'DW_ERR_CONFIG',
        `cannot read the enrollment token ${c.enrollmentTokenFile}: ${(err as NodeJS.ErrnoException).code ?? err}`,
        { path: c.enrollmentTokenFile },
      );
    }
  }
  throw new DwError(
    'DW_ERR_CONFIG',
    'the host is not enrolled and no enrollment token is configured (controller.enrollmentToken or controller.enrollmentTokenFile)',
  );
}

/** Whether an enrollment token is configured and readable (re-enrollment is possible). */
export function hasEnrollmentToken(config: AgentConfig): boolean {
  try {
    enrollmentToken(config);
    return true;
  } catch {
    return false;
  }
}

export type EnrollOutcome = { ok: true; credential: string } | { ok: false; retry: boolean; reason: string };

/** The stored credential, or a new one from the controller. */
export async function ensureEnrolled(
  state: StateDir,
  transport: Transport,
  config: AgentConfig,
  host: { hostId: string; imageId: string; inventory: Inventory; agentVersion: string; cloud?: ReadIdentity | null },
): Promise<EnrollOutcome> {
  const existing = state.readCredential();
  if (existing) return { ok: true, credential: existing };
  return enroll(state, transport, config, host);
}

/**
 * Ask the controller for a new credential with the enrollment token, and store it in place of any old
 * one. The controller refuses (409) a host id it still knows: a host cannot take over its own
 * identity again with just an enrollment token, only after an operator has removed or reset it.
 */
export async function enroll(
  state: StateDir,
  transport: Transport,
  config: AgentConfig,
  host: { hostId: string; imageId: string; inventory: Inventory; agentVersion: string; cloud?: ReadIdentity | null },
): Promise<EnrollOutcome> {
  const body = {
    hostId: host.hostId,
    hostname: host.inventory.hostname,
    imageId: host.imageId,
    ...(config.group ? { group: config.group } : {}),
    agentVersion: host.agentVersion,
    inventory: host.inventory,
  };
  let r;
  if (config.identity.enroll === 'aws') {
    // The signed document is the credential: no token is read, and none need be configured.
    const proof = host.cloud?.awsProof;
    if (!proof)
      return {
        ok: false,
        retry: false,
        reason: `identity.enroll is aws but this host has no AWS identity document (identity.mode ${config.identity.mode}: ${host.cloud?.fallback ?? 'not on AWS'})`,
      };
    r = await transport.post('/api/v1/enroll/aws', null, { ...body, awsIdentity: proof });
  } else {
    r = await transport.post('/api/v1/enroll', enrollmentToken(config), {
      ...body,
      ...(host.cloud ? { identity: host.cloud.identity } : {}),
    });
  }
  if (!r.ok) return { ok: false, retry: r.retry, reason: r.reason };
  const credential = (r.body as { credential?: string } | null)?.credential;
  if (!credential) return { ok: false, retry: true, reason: 'the controller answered enrollment without a credential' };
  state.writeCredential(credential);
  return { ok: true, credential };
}
