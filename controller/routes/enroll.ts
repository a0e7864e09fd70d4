/**
 * @module Enrollment: an agent trades an enrollment token, or a signed AWS instance identity document,
 * for its own per-host credential, once. A token's use is counted in the same transaction as the new
 * host, so a token enrolls at most its `maxUses` hosts however many enrollments race, and only into
 * the groups it allows. An AWS instance enrolls at most once: its instance id is unique among hosts.
 * A host id enrolls once too, unless an operator reset it: then once more, re-pinning its identity.
 */
import { z } from 'zod';
import { DwError, isDwError } from '../../shared/errors.js';
import { AwsIdentityProofSchema, CloudIdentitySchema, type CloudIdentity } from '../../shared/schema/identity.js';
import { AgentVersionSchema, HostnameSchema, nameSchema } from '../../shared/schema/limits.js';
import { HostIdSchema, InventorySchema } from '../../shared/schema/report.js';
import type { App, AppContext } from '../app.js';
import { hashSecret, newSecret } from '../auth.js';
import { loadAwsCertificates, verifyAwsIdentity, type AwsEnrollmentPolicy } from '../aws-identity.js';
import { durationMs } from '../config.js';
import { recordTransition } from '../event-stream.js';
import { sourceKey } from '../rate-limit.js';
import { groupMatches } from '../scheduler/budgets.js';
import { StoreConflictError, type StoreTx, type TokenRow } from '../store/types.js';
import { reEnroll } from './host-actions.js';
import { groupRefusal, usedUp } from './tokens.js';

export const EnrollRequestSchema = z.strictObject({
  hostId: HostIdSchema,
  hostname: HostnameSchema.nullable().optional(),
  imageId: nameSchema(),
  group: nameSchema().optional(),
  agentVersion: AgentVersionSchema.optional(),
  inventory: InventorySchema.optional(),
  /** Where the host says it runs; with a token this is the host's word, pinned as given. */
  identity: CloudIdentitySchema.optional(),
});
type EnrollRequest = z.infer<typeof EnrollRequestSchema>;

/** Enrollment by AWS identity: the signed document is the credential, and the identity comes from it. */
export const AwsEnrollRequestSchema = EnrollRequestSchema.omit({ identity: true }).extend({
  awsIdentity: AwsIdentityProofSchema,
});

export function registerEnrollRoutes(app: App, ctx: AppContext): void {
  app.post(
    '/api/v1/enroll',
    { config: { auth: 'enroll' }, schema: { body: EnrollRequestSchema } },
    async (req, reply) => {
      const body = req.body;
      const principal = req.principal;
      if (principal?.kind !== 'token') throw new DwError('DW_ERR_UNAUTHORIZED', 'enrollment needs an enrollment token');
      const token = principal.token;
      const refusedGroup = groupRefusal(token, body.group);
      if (refusedGroup)
        throw new DwError('DW_ERR_FORBIDDEN', refusedGroup, { tokenId: token.id, group: body.group ?? null });
      const credential = await enroll(ctx, body, principal.actor, async (tx, now, reEnrollment) => {
        if (!(await tx.useToken(token.id, now))) throw await whyUnusable(tx, token, now);
        const used = await tx.getToken(token.id);
        await tx.appendAudit({
          at: now,
          actor: principal.actor,
          action: 'token.use',
          target: token.id,
          detail: {
            hostId: body.hostId,
            uses: used?.uses ?? null,
            maxUses: used?.maxUses ?? null,
            ...(reEnrollment ? { reEnrollment: true } : {}),
          },
        });
      });
      void reply.status(201);
      return { hostId: body.hostId, credential };
    },
  );

  // Read once, at start-up: a certificate file that is missing fails the controller's start, not an enrollment.
  const awsConfig = ctx.config.enrollment.aws;
  const aws: (AwsEnrollmentPolicy & { groups: string[] | null }) | null = awsConfig
    ? {
        certificates: loadAwsCertificates(awsConfig.certificates),
        accounts: awsConfig.accounts,
        regions: awsConfig.regions,
        maxAgeMs: durationMs(awsConfig.maxAge),
        groups: awsConfig.groups ?? null,
      }
    : null;
  app.post(
    '/api/v1/enroll/aws',
    { config: { auth: 'enroll-aws' }, schema: { body: AwsEnrollRequestSchema } },
    async (req, reply) => {
      if (!aws)
        throw new DwError(
          'DW_ERR_FORBIDDEN',
          'enrollment by AWS identity is not configured on this controller (enrollment.aws); enroll with a token',
        );
      const { awsIdentity, ...body } = req.body;
      let doc;
      try {
        doc = verifyAwsIdentity(awsIdentity, aws, ctx.clock());
      } catch (err) {
        // A document that proves nothing is a failed authentication, and counts against the source like one.
        if (isDwError(err) && err.code === 'DW_ERR_UNAUTHORIZED')
          ctx.limits.failedAuth.take(sourceKey(req.ip), ctx.clock().getTime());
        throw err;
      }
      if (aws.groups !== null) {
        const allowed = aws.groups.join(', ');
        if (body.group === undefined)
          throw new DwError(
            'DW_ERR_FORBIDDEN',
            `enrollment by AWS identity only enrolls hosts into groups matching ${allowed}; this enrollment names no group`,
          );
        if (!aws.groups.some((g) => groupMatches(g, body.group!)))
          throw new DwError(
            'DW_ERR_FORBIDDEN',
            `enrollment by AWS identity only enrolls hosts into groups matching ${allowed}, not ${JSON.stringify(body.group)}`,
          );
      }
      const identity: CloudIdentity = {
        kind: 'aws',
        instanceId: doc.instanceId,
        accountId: doc.accountId,
        region: doc.region,
        availabilityZone: doc.availabilityZone,
        imageId: doc.imageId,
      };
      const actor = `aws:${doc.accountId}:${doc.instanceId}`;
      const credential = await enroll(ctx, { ...body, identity }, actor, async () => {});
      void reply.status(201);
      return { hostId: body.hostId, credential, identity };
    },
  );
}

/** The new host, its first transition and audit, in one transaction with `spend` (the token's use). */
async function enroll(
  ctx: AppContext,
  body: EnrollRequest,
  actor: string,
  spend: (tx: StoreTx, now: string, reEnrollment: boolean) => Promise<void>,
): Promise<string> {
  const credential = newSecret('host');
  const now = ctx.clock().toISOString();
  const hostname = body.hostname ?? body.inventory?.hostname ?? null;
  const instanceId = body.identity?.kind === 'aws' ? body.identity.instanceId : null;
  // A second enrollment of a known host id would hand its identity to whoever holds an enrollment token.
  const enrolled = () =>
    new DwError(
      'DW_ERR_CONFLICT',
      `host ${body.hostId} is already enrolled; a host enrolls once (an operator can reset it)`,
      { hostId: body.hostId },
    );
  // Likewise an instance: two hosts claiming one instance would let one get the other replaced.
  const instanceTaken = (hostId: string | null) =>
    new DwError(
      'DW_ERR_CONFLICT',
      `AWS instance ${instanceId} is already enrolled${hostId ? ` as host ${hostId}` : ''}; an instance enrolls once (an operator can reset it)`,
      { instanceId, hostId },
    );
  await ctx.store
    .transaction(async (tx) => {
      const existing = await tx.lockHost(body.hostId);
      // An operator's reset lets this id enroll once more (re-pinning its identity); otherwise it is taken.
      if (existing?.retiredAt)
        throw new DwError(
          'DW_ERR_CONFLICT',
          `host ${body.hostId} was forgotten (retired) at ${existing.retiredAt}; a forgotten host id cannot enroll again`,
          { hostId: body.hostId },
        );
      if (existing && !existing.resetAt) throw enrolled();
      if (instanceId !== null) {
        const holder = await tx.findHostByInstanceId(instanceId);
        if (holder && holder.id !== body.hostId) throw instanceTaken(holder.id);
      }
      await spend(tx, now, existing !== null);
      if (existing) {
        await reEnroll(tx, existing, {
          credentialHash: hashSecret(credential),
          hostname,
          imageId: body.imageId,
          group: body.group ?? null,
          addresses: body.inventory?.addresses ?? [],
          identity: body.identity ?? null,
          agentVersion: body.agentVersion ?? null,
          inventory: body.inventory ?? null,
          actor,
          now,
        });
        return;
      }
      await tx.insertHost({
        id: body.hostId,
        hostname,
        imageId: body.imageId,
        group: body.group ?? null,
        state: 'pending',
        stateSince: now,
        enrolledAt: now,
        lastSeenAt: now,
        lastReportAt: null,
        lastSeq: 0,
        deviationCount: 0,
        taintedAt: null,
        agentVersion: body.agentVersion ?? null,
        manifestDigest: null,
        inventory: body.inventory ?? null,
        // The identity providers act on is pinned here, once; later reports cannot move it (controller/identity.ts).
        enrolledAddresses: body.inventory?.addresses ?? [],
        cloudIdentity: body.identity ?? null,
        credentialHash: hashSecret(credential),
      });
      await recordTransition(
        tx,
        { hostId: body.hostId, hostname, imageId: body.imageId, group: body.group ?? null },
        { from: null, to: 'pending', cause: 'enrolled', actor, at: now, reportId: null },
      );
      await tx.appendAudit({
        at: now,
        actor,
        action: 'host.enroll',
        target: body.hostId,
        detail: {
          imageId: body.imageId,
          group: body.group ?? null,
          hostname,
          addresses: body.inventory?.addresses ?? [],
          identity: body.identity ?? null,
        },
      });
    })
    .catch(async (err: unknown) => {
      // Two enrollments of one id (or instance) at once both pass the checks above on PostgreSQL; the unique keys stop the second.
      if (!(err instanceof StoreConflictError && err.table === 'hosts')) throw err;
      if (instanceId !== null && !(await ctx.store.getHost(body.hostId)))
        throw instanceTaken((await ctx.store.findHostByInstanceId(instanceId))?.id ?? null);
      throw enrolled();
    });
  return credential;
}

/** The token changed since the request was authenticated (another enrollment took its last use, or it was revoked or expired). */
async function whyUnusable(tx: StoreTx, token: TokenRow, now: string): Promise<DwError> {
  const current = await tx.getToken(token.id);
  if (!current || current.revokedAt)
    return new DwError('DW_ERR_UNAUTHORIZED', `enrollment token ${token.id} was revoked`);
  if (current.expiresAt && current.expiresAt <= now)
    return new DwError('DW_ERR_UNAUTHORIZED', `enrollment token ${token.id} expired at ${current.expiresAt}`);
  return new DwError(
    'DW_ERR_UNAUTHORIZED',
    usedUp(current) ?? `enrollment token ${token.id} cannot enroll another host`,
  );
}
