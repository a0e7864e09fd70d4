/**
 * @module Scheduler test fixtures: hosts written straight into a real store, a fake provider that
 * records every call and fails on demand, and a scheduler on a fake clock.
 */
import { pino } from 'pino';
import { ControllerConfigSchema } from '../../../controller/config.js';
import { Scheduler } from '../../../controller/scheduler/scheduler.js';
import type { SchedulerConfig } from '../../../controller/scheduler/config.js';
import {
  ProviderError,
  type Provider,
  type ProviderContext,
  type ReplacementTarget,
} from '../../../controller/providers/types.js';
import type { HostRow, HostState, Store } from '../../../controller/store/types.js';
import { FakeClock } from '../harness.js';

export const silent = pino({ level: 'silent' });

export function schedulerConfig(over: Record<string, unknown> = {}): SchedulerConfig {
  return ControllerConfigSchema.parse({ scheduler: over }).scheduler;
}

export async function addHost(
  store: Store,
  clock: FakeClock,
  id: string,
  o: {
    group?: string | null;
    state?: HostState;
    taintedAgoMs?: number;
    severity?: 'low' | 'medium' | 'high' | 'critical';
    deviation?: string;
    hostname?: string;
  } = {},
): Promise<void> {
  const now = clock.iso();
  const state = o.state ?? 'clean';
  const row: HostRow & { credentialHash: string } = {
    id,
    credentialHash: `cred-${id}`,
    hostname: o.hostname ?? `${id}.example.internal`,
    imageId: 'ami-web-1',
    group: o.group === undefined ? 'web' : o.group,
    state,
    stateSince: now,
    enrolledAt: new Date(clock.now().getTime() - 86_400_000).toISOString(),
    lastSeenAt: now,
    lastReportAt: now,
    lastScanAt: null,
    lastSeq: 1,
    deviationCount: state === 'tainted' ? 1 : 0,
    taintedAt: state === 'tainted' ? new Date(clock.now().getTime() - (o.taintedAgoMs ?? 0)).toISOString() : null,
    agentVersion: '0.1.0',
    manifestDigest: null,
    inventory: null,
  };
  await store.insertHost(row);
  if (state === 'tainted') {
    await store.replaceHostDeviations(id, [
      {
        hostId: id,
        collector: 'files',
        key: o.deviation ?? `/etc/${id}.conf`,
        change: 'modified',
        expected: { sha256: 'a' },
        actual: { sha256: o.deviation ? 'same' : id },
        severity: o.severity ?? 'high',
        action: 'taint',
        decidedBy: 'default/files',
        firstSeenAt: now,
        lastSeenAt: now,
      },
    ]);
  }
}

/** Taints an existing host the way ingestion does (state, taintedAt, a tainting deviation). */
export async function taint(
  store: Store,
  clock: FakeClock,
  id: string,
  o: { severity?: 'low' | 'medium' | 'high' | 'critical'; deviation?: string } = {},
): Promise<void> {
  const now = clock.iso();
  const host = await store.getHost(id);
  if (!host) throw new Error(`no host ${id}`);
  await store.updateHost(id, { state: 'tainted', stateSince: now, taintedAt: now });
  await store.insertTransition({
    hostId: id,
    from: host.state,
    to: 'tainted',
    cause: 'test taint',
    actor: 'policy',
    at: now,
    reportId: null,
  });
  await store.replaceHostDeviations(id, [
    {
      hostId: id,
      collector: 'files',
      key: o.deviation ?? `/etc/${id}.conf`,
      change: 'modified',
      expected: { sha256: 'a' },
      actual: { sha256: o.deviation ? 'same' : id },
      severity: o.severity ?? 'high',
      action: 'taint',
      decidedBy: 'default/files',
      firstSeenAt: now,
      lastSeenAt: now,
    },
  ]);
}

type Outcome = 'accept' | 'fail' | 'fail-permanent' | 'hang';

/** A provider that does what the test says and writes down every call. */
export class FakeProvider implements Provider {
  readonly type = 'fake';
  readonly calls: { method: 'replace' | 'status'; hostId: string; attempt: number; owner?: string }[] = [];
  /** Outcomes of replace() per host, consumed in order; default accept. */
  readonly replaceOutcomes = new Map<string, Outcome[]>();
  /** Hosts whose status() says done. */
  readonly done = new Set<string>();
  /** Hosts whose status() throws. */
  readonly statusFails = new Set<string>();
  /** Every host replace() accepted. */
  readonly accepted: string[] = [];
  /** Optional hook, e.g. to remember which controller called. */
  onReplace?: (t: ReplacementTarget) => Promise<void> | void;

  async replace(t: ReplacementTarget, ctx: ProviderContext): Promise<{ ref: string; detail: string }> {
    this.calls.push({ method: 'replace', hostId: t.hostId, attempt: t.attempt });
    await this.onReplace?.(t);
    const outcome = this.replaceOutcomes.get(t.hostId)?.shift() ?? 'accept';
    if (outcome === 'fail') throw new ProviderError('fake', `platform refused ${t.hostId}`);
    if (outcome === 'fail-permanent')
      throw new ProviderError('fake', `${t.hostId} is unknown to the platform`, { retryable: false });
    if (outcome === 'hang')
      return new Promise((_, reject) =>
        ctx.signal.addEventListener('abort', () => reject(new ProviderError('fake', 'aborted'))),
      );
    this.accepted.push(t.hostId);
    return { ref: `op-${t.hostId}-${t.attempt}`, detail: `terminating ${t.hostId}` };
  }

  async status(t: ReplacementTarget): Promise<{ state: 'pending' | 'done'; detail?: string }> {
    this.calls.push({ method: 'status', hostId: t.hostId, attempt: t.attempt });
    if (this.statusFails.has(t.hostId))
      throw new ProviderError('fake', `${t.hostId}: the platform reports the operation failed`);
    return this.done.has(t.hostId) ? { state: 'done', detail: 'gone' } : { state: 'pending' };
  }
}

export function makeScheduler(
  store: Store,
  clock: FakeClock,
  config: Record<string, unknown>,
  provider: Provider | null = new FakeProvider(),
  owner?: string,
): Scheduler {
  return new Scheduler({
    store,
    config: schedulerConfig(config),
    log: silent,
    clock: clock.now,
    providerFor: () => provider,
    silentAfterMs: 10 * 60_000,
    ...(owner ? { owner } : {}),
  });
}
