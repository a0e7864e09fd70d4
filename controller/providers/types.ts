/**
 * @module The provider contract: how the scheduler asks the platform that launched a host to replace it.
 * One file per provider; `index.ts` builds them from config and wraps each with metrics and logging.
 */
import type { Logger } from 'pino';
import { DwError } from '../../shared/errors.js';

/**
 * What a provider is told about the host to replace: only its identity as pinned at enrollment, never
 * what its later reports say (a host must not be able to get another machine replaced by renaming
 * itself; see controller/identity.ts).
 */
export interface ReplacementTarget {
  replacementId: string;
  /** 1 for the first attempt. */
  attempt: number;
  hostId: string;
  /** The hostname the host enrolled with. */
  hostname: string | null;
  imageId: string;
  /** The group the host enrolled with (or scheduler.defaultGroup). */
  group: string;
  /** The addresses the host enrolled with. */
  addresses: string[];
  /** When the host enrolled: a machine launched after it cannot be the host's own. */
  enrolledAt: string | null;
  /** The AWS instance id pinned at enrollment (from its identity document), or null: what aws-asg acts on. */
  instanceId?: string | null;
  reason: string;
  /** What `replace` returned on an earlier call for this replacement, for `status` (and for an idempotent retry). */
  ref: string | null;
  /** When `replace` was accepted (for `status`). */
  startedAt: string | null;
}

export interface ProviderContext {
  log: Logger;
  clock: () => Date;
  /** Aborted when the controller shuts down or the attempt times out. */
  signal: AbortSignal;
  /**
   * Launch before terminate: a host of the target's group that enrolled after `since` and reports
   * clean against its manifest, or null while there is none yet. With `match`, only a host whose
   * pinned hostname (full, or its first label) or one of whose pinned addresses is listed: the
   * provider names the machine it launched for this replacement.
   */
  findCleanSuccessor(since: string, match?: SuccessorMatch): Promise<string | null>;
}

export interface SuccessorMatch {
  hostnames: string[];
  addresses: string[];
}

export interface ReplaceAccepted {
  /** The provider's handle on the operation (instance id, node name, delivery id); kept with the replacement. */
  ref: string | null;
  detail: string;
}

export interface ReplaceStatus {
  /** `done`: the platform confirms the old host is gone (or held for forensics); `pending`: ask again later. */
  state: 'pending' | 'done';
  detail?: string;
  /** The host that replaced it, when the provider knows. */
  replacedBy?: string;
}

export interface Provider {
  readonly type: 'aws-asg' | 'kubernetes' | 'webhook' | 'exec' | string;
  /**
   * Asks the platform to replace the host and resolves once it accepted. Called again for a retried
   * attempt or by another controller after a lapsed lease, so it must tolerate work already done: a
   * host that is already gone is success, not failure. Throws ProviderError otherwise.
   */
  replace(target: ReplacementTarget, ctx: ProviderContext): Promise<ReplaceAccepted>;
  /** Where an accepted replacement stands. Throws ProviderError when it failed. */
  status(target: ReplacementTarget, ctx: ProviderContext): Promise<ReplaceStatus>;
}

/** A provider's failure: `retryable` false means retrying cannot help (permissions, a host the platform does not know). */
export class ProviderError extends DwError {
  readonly retryable: boolean;
  readonly provider: string;
  constructor(
    provider: string,
    message: string,
    o: { retryable?: boolean; cause?: unknown; context?: Record<string, unknown> } = {},
  ) {
    super('DW_ERR_PROVIDER', `${provider}: ${message}`, { provider, ...o.context }, { cause: o.cause });
    this.name = 'ProviderError';
    this.retryable = o.retryable ?? true;
    this.provider = provider;
  }
}
