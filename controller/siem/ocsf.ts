/**
 * @module The event stream in the Open Cybersecurity Schema Framework (OCSF 1.3.0), for SIEMs:
 * a deviation takes the class its collector declares in shared/collectors.ts (files: File System
 * Activity 1001; the rest, and an integrity gap: Device Config State Change 5019), a host's state change a Compliance Finding (2003) on the host's conformance to its image.
 * Every event is checked against zod schemas of the base event's and its class's required fields
 * before it leaves: a mapping bug fails loudly here rather than as a rejected record in a SIEM.
 */
import { basename } from 'node:path';
import { z } from 'zod';
import { collectorDef } from '../../shared/collectors.js';
import type { EventRow } from '../store/types.js';
import { describeAttribution } from '../../shared/attribution-text.js';
import type { Attribution } from '../../shared/schema/deviation.js';

export const OCSF_VERSION = '1.3.0';
const PRODUCT = { name: 'driftwarden', vendor_name: 'driftwarden', version: '0.1.0' };

// ---- required fields (OCSF 1.3.0): the base event, the objects used, and each class ----

const MetadataSchema = z.looseObject({
  version: z.literal(OCSF_VERSION),
  product: z.looseObject({ name: z.string().min(1), vendor_name: z.string().min(1) }),
});

const BaseEventSchema = z.looseObject({
  activity_id: z.number().int(),
  category_uid: z.number().int(),
  class_uid: z.number().int(),
  metadata: MetadataSchema,
  severity_id: z.union([z.number().int().min(0).max(6), z.literal(99)]),
  time: z.number().int().positive(),
  type_uid: z.number().int(),
});

const DeviceSchema = z.looseObject({ type_id: z.number().int() });
const FileSchema = z.looseObject({ name: z.string().min(1), type_id: z.number().int() });
/** The actor object has no required field of its own, but must say something. */
const ActorSchema = z.looseObject({}).refine((a) => Object.keys(a).length > 0, 'actor is empty');

const typeUidHolds = (e: { class_uid: number; activity_id: number; type_uid: number }) =>
  e.type_uid === e.class_uid * 100 + e.activity_id;

export const FileSystemActivitySchema = BaseEventSchema.extend({
  class_uid: z.literal(1001),
  category_uid: z.literal(1),
  activity_id: z
    .number()
    .int()
    .refine((n) => (n >= 0 && n <= 14) || n === 99),
  actor: ActorSchema,
  device: DeviceSchema,
  file: FileSchema,
}).refine(typeUidHolds, 'type_uid must be class_uid * 100 + activity_id');

export const DeviceConfigStateChangeSchema = BaseEventSchema.extend({
  class_uid: z.literal(5019),
  category_uid: z.literal(5),
  activity_id: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(99)]),
  device: DeviceSchema,
}).refine(typeUidHolds, 'type_uid must be class_uid * 100 + activity_id');

export const ComplianceFindingSchema = BaseEventSchema.extend({
  class_uid: z.literal(2003),
  category_uid: z.literal(2),
  activity_id: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3), z.literal(99)]),
  finding_info: z.looseObject({ uid: z.string().min(1), title: z.string().min(1) }),
  compliance: z.looseObject({ standards: z.array(z.string().min(1)).min(1) }),
}).refine(typeUidHolds, 'type_uid must be class_uid * 100 + activity_id');

export const OCSF_CLASS_SCHEMAS = {
  1001: FileSystemActivitySchema,
  5019: DeviceConfigStateChangeSchema,
  2003: ComplianceFindingSchema,
} as const;

export type OcsfEvent = z.infer<typeof BaseEventSchema> & Record<string, unknown>;

// ---- mapping ----

const SEVERITY_ID: Record<string, number> = { low: 2, medium: 3, high: 4, critical: 5 };
/** A host's state, as a severity of the finding about it. */
const STATE_SEVERITY: Record<string, number> = {
  clean: 1,
  pending: 1,
  replaced: 1,
  drifted: 3,
  silent: 3,
  tainted: 4,
  'replacement-scheduled': 4,
  replacing: 4,
};
const FILE_TYPE_ID: Record<string, number> = { file: 1, dir: 2, symlink: 7, char: 3, block: 4, fifo: 6, socket: 5 };

function device(e: EventRow) {
  const d = e.detail as { hostname?: string | null; imageId?: string; group?: string | null };
  return {
    type_id: 1, // Server
    uid: e.hostId ?? undefined,
    hostname: d.hostname ?? undefined,
    image: d.imageId ? { uid: d.imageId, name: d.imageId } : undefined,
    groups: d.group ? [{ name: d.group }] : undefined,
  };
}

function metadata(e: EventRow, correlation?: unknown) {
  return {
    version: OCSF_VERSION,
    product: PRODUCT,
    uid: `dw-event-${e.id}`,
    sequence: e.id,
    logged_time: Date.parse(e.at),
    ...(typeof correlation === 'string' ? { correlation_uid: correlation } : {}),
    // The hash chain link, so a SIEM can check the feed against `driftwarden audit verify`.
    labels: [`chain:${e.hash}`],
  };
}

function base(e: EventRow, classUid: number, categoryUid: number, activityId: number, severityId: number) {
  return {
    class_uid: classUid,
    category_uid: categoryUid,
    activity_id: activityId,
    type_uid: classUid * 100 + activityId,
    severity_id: severityId,
    time: Date.parse(e.at),
  };
}

interface DeviationDetail {
  reportId?: string;
  collector: string;
  key: string;
  change: 'added' | 'removed' | 'modified';
  severity: string;
  action: string;
  decidedBy?: string;
  expected: Record<string, unknown> | null;
  actual: Record<string, unknown> | null;
  truncated?: unknown;
  attribution?: Attribution;
}

/**
 * The actor of a change the host's own records explain (dpkg/apt/dnf history, the auth log): the user
 * and command that ran it. Without a record, the actor is the agent that observed the change.
 */
function changeActor(e: EventRow, a: Attribution | undefined) {
  if (!a || (a.user === undefined && a.commandLine === undefined))
    return { app_name: 'driftwarden-agent', app_uid: e.actor };
  const m = a.user === undefined ? null : /^(.*?)\s*\((\d+)\)$/.exec(a.user);
  return {
    ...(a.user !== undefined ? { user: m ? { name: m[1], uid: m[2] } : { name: a.user } } : {}),
    ...(a.commandLine !== undefined ? { process: { cmd_line: a.commandLine } } : {}),
    app_name: 'driftwarden-agent',
    app_uid: e.actor,
  };
}

function fileObject(key: string, item: Record<string, unknown> | null) {
  const sha = typeof item?.sha256 === 'string' ? item.sha256 : null;
  return {
    name: basename(key) || key,
    path: key,
    type_id: FILE_TYPE_ID[String(item?.type ?? 'file')] ?? 99,
    ...(typeof item?.size === 'number' ? { size: item.size } : {}),
    ...(sha ? { hashes: [{ algorithm_id: 3, algorithm: 'SHA-256', value: sha }] } : {}),
  };
}

/** One OCSF event for one stream event, validated against its class. */
export function toOcsf(e: EventRow): OcsfEvent {
  const sev = SEVERITY_ID;
  let out: Record<string, unknown>;
  if (e.kind === 'deviation') {
    const d = e.detail as unknown as DeviationDetail;
    const unmapped = {
      collector: d.collector,
      key: d.key,
      change: d.change,
      policy_action: d.action,
      decided_by: d.decidedBy,
      expected: d.expected,
      actual: d.actual,
      truncated: d.truncated,
      attribution: d.attribution,
    };
    const message = `${d.collector} ${d.change}: ${d.key} (${d.action}, ${d.severity})${d.attribution ? `: ${describeAttribution(d.attribution)}` : ''}`;
    if (collectorDef(d.collector)?.ocsfClass === 1001) {
      const activity = d.change === 'added' ? 1 : d.change === 'removed' ? 4 : 3;
      out = {
        ...base(e, 1001, 1, activity, sev[d.severity] ?? 0),
        metadata: metadata(e, d.reportId),
        message,
        actor: changeActor(e, d.attribution),
        device: device(e),
        file: fileObject(d.key, d.change === 'removed' ? d.expected : d.actual),
        unmapped,
      };
    } else {
      out = {
        ...base(e, 5019, 5, 2, sev[d.severity] ?? 0),
        metadata: metadata(e, d.reportId),
        message,
        device: device(e),
        ...(d.attribution ? { actor: changeActor(e, d.attribution) } : {}),
        state_id: 99,
        state: `${d.change} ${d.collector}`,
        unmapped,
      };
    }
  } else if (e.kind === 'state') {
    const d = e.detail as {
      from: string | null;
      to: string;
      cause: string;
      reportId?: string | null;
      hostname?: string | null;
    };
    const closed = d.to === 'replaced' || d.to === 'clean';
    const activity = closed ? 3 : d.from === null || d.from === 'clean' || d.from === 'pending' ? 1 : 2;
    const status =
      d.to === 'clean' || d.to === 'pending'
        ? { id: 1, name: 'Pass' }
        : d.to === 'drifted' || d.to === 'silent'
          ? { id: 2, name: 'Warning' }
          : d.to === 'replaced'
            ? { id: 1, name: 'Pass' }
            : { id: 3, name: 'Fail' };
    out = {
      ...base(e, 2003, 2, activity, STATE_SEVERITY[d.to] ?? 0),
      metadata: metadata(e, d.reportId ?? undefined),
      message: `host ${e.hostId} ${d.from ?? '(new)'} -> ${d.to}: ${d.cause}`,
      finding_info: {
        uid: `driftwarden:${e.hostId}`,
        title: `Host ${d.hostname ?? e.hostId} is ${d.to}`,
        desc: d.cause,
        types: ['Configuration Drift'],
      },
      compliance: {
        standards: ['driftwarden image baseline'],
        control: 'host matches its signed image manifest',
        status_id: status.id,
        status: status.name,
      },
      status_id: closed ? 4 : 1,
      resources: [{ uid: e.hostId, type: 'host', name: d.hostname ?? e.hostId }],
      device: device(e),
      actor: { app_name: 'driftwarden-controller', app_uid: e.actor },
      unmapped: { from: d.from, to: d.to, cause: d.cause },
    };
  } else {
    // Scheduler kinds (breaker-tripped, replacement-failed): a change in the security state of the
    // fleet's devices: a group whose remediation stopped, a host whose remediation failed.
    const d = e.detail as {
      group?: string | null;
      reason?: string;
      error?: string;
      pausedBy?: string;
      replacement?: string;
    };
    const message =
      e.kind === 'breaker-tripped'
        ? `replacements paused in group ${d.group ?? '?'}${d.pausedBy && d.pausedBy !== 'breaker' ? ` by ${d.pausedBy}` : ' by the breaker'}: ${d.reason ?? ''}`
        : e.kind === 'replacement-failed'
          ? `replacement of host ${e.hostId ?? '?'} failed: ${d.error ?? 'unknown error'}`
          : `${e.kind}${e.hostId ? ` on host ${e.hostId}` : ''}`;
    out = {
      ...base(e, 5019, 5, 99, e.kind === 'breaker-tripped' || e.kind === 'replacement-failed' ? 4 : 1),
      metadata: metadata(e, d.replacement),
      activity_name: e.kind,
      message,
      device: e.hostId ? device(e) : { type_id: 0, name: 'fleet', groups: d.group ? [{ name: d.group }] : undefined },
      actor: { app_name: 'driftwarden-controller', app_uid: e.actor },
      state_id: 99,
      state: e.kind,
      unmapped: { kind: e.kind, detail: e.detail },
    };
  }
  return validateOcsf(JSON.parse(JSON.stringify(out)) as OcsfEvent);
}

export function validateOcsf(event: OcsfEvent): OcsfEvent {
  const schema = OCSF_CLASS_SCHEMAS[event.class_uid as keyof typeof OCSF_CLASS_SCHEMAS];
  if (!schema) throw new Error(`OCSF: class ${event.class_uid} is not one driftwarden emits`);
  const r = schema.safeParse(event);
  if (!r.success)
    throw new Error(
      `OCSF ${event.class_uid}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return event;
}
