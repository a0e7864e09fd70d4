/**
 * @module The `kubernetes` provider: cordon the node, drain it the way `kubectl drain --ignore-daemonsets`
 * does (through the Eviction API, policy/v1, so PodDisruptionBudgets hold: a 429 is a budget saying
 * "not now", retried until the drain timeout, never overridden), then delete the node so the cluster
 * autoscaler or Karpenter brings up a replacement. Pods kubectl refuses to drain without `--force` or
 * `--delete-emptydir-data` stop the drain here too unless `force` / `deleteEmptyDirData` allow them.
 */
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  Observable,
  PatchStrategy,
  setHeaderOptions,
  type ObservableMiddleware,
  type V1Pod,
} from '@kubernetes/client-node';
import { parseDuration } from '../../shared/schema/config.js';
import type { KubernetesProviderSchema } from '../scheduler/config.js';
import type { z } from 'zod';
import { ProviderError, type Provider, type ProviderContext, type ReplacementTarget } from './types.js';

export type KubernetesConfig = Omit<z.output<typeof KubernetesProviderSchema>, 'type'>;

/** A Kubernetes `Status` object (meta/v1), as the API server answers errors and some successes. */
interface K8sStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { causes?: { reason?: string; message?: string }[] };
}

function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException
    ? err.code
    : (err as { code?: unknown })?.code === undefined
      ? undefined
      : Number((err as { code: unknown }).code);
}

function statusBody(err: unknown): K8sStatus | null {
  if (!(err instanceof ApiException)) return null;
  try {
    const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
    return body !== null && typeof body === 'object' ? (body as K8sStatus) : null;
  } catch {
    return null;
  }
}

function k8sError(err: unknown, what: string): ProviderError {
  const status = statusOf(err);
  let reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
  const body = statusBody(err);
  if (body?.message) reason = `${status} ${body.reason ?? ''}: ${body.message}`;
  const retryable = status === undefined || status === 429 || status >= 500;
  return new ProviderError('kubernetes', `${what}: ${reason}`, { retryable, cause: err, context: { status } });
}

export interface DrainSettings {
  force: boolean;
  deleteEmptyDirData: boolean;
}

/**
 * What a drain does with one pod, after kubectl's filters (k8s.io/kubectl/pkg/drain/filters.go, in
 * their order): `skip` leaves it on the node, `evict` asks the Eviction API, `wait` lets a deletion
 * someone else started finish, `block` stops the drain with the reasons an operator must act on.
 */
export type PodPlan =
  | { action: 'skip'; reason: string }
  | { action: 'evict'; allowedBy: ('force' | 'deleteEmptyDirData')[] }
  | { action: 'wait' }
  | { action: 'block'; reasons: string[] };

export function planPod(pod: V1Pod, s: DrainSettings): PodPlan {
  // kubectl reads only the controlling owner reference (metav1.GetControllerOf), not any owner.
  const controller = pod.metadata?.ownerReferences?.find((o) => o.controller === true);
  // daemonSetFilter with --ignore-daemonsets: the DaemonSet controller ignores cordons and would put the pod straight back.
  if (controller?.kind === 'DaemonSet') return { action: 'skip', reason: 'daemonset pod' };
  // mirrorPodFilter: a static pod belongs to the kubelet; the API server cannot delete it.
  if (pod.metadata?.annotations?.['kubernetes.io/config.mirror'] !== undefined)
    return { action: 'skip', reason: 'mirror pod' };
  // localStorageFilter and unreplicatedFilter let finished pods through; they hold nothing worth moving, and the pod GC removes them with the node.
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return { action: 'skip', reason: `pod ${phase.toLowerCase()}` };
  // Already being deleted by someone else: its data goes either way, and evicting it again changes nothing. (kubectl would still
  // refuse such a pod without --force; waiting for it is what the drain needs.)
  if (pod.metadata?.deletionTimestamp) return { action: 'wait' };
  const reasons: string[] = [];
  const allowedBy: ('force' | 'deleteEmptyDirData')[] = [];
  const emptyDirs = (pod.spec?.volumes ?? [])
    .filter((v) => v.emptyDir !== undefined && v.emptyDir !== null)
    .map((v) => v.name);
  // localStorageFilter: "cannot delete Pods with local storage (use --delete-emptydir-data to override)"; eviction deletes the emptyDir for good.
  if (emptyDirs.length > 0) {
    if (s.deleteEmptyDirData) allowedBy.push('deleteEmptyDirData');
    else
      reasons.push(
        `its emptyDir data (${emptyDirs.map((n) => JSON.stringify(n)).join(', ')}) would be lost; deleteEmptyDirData: true allows it`,
      );
  }
  // unreplicatedFilter: "cannot delete Pods that declare no controller (use --force to override)"; nothing would bring it back.
  if (controller === undefined) {
    if (s.force) allowedBy.push('force');
    else reasons.push('no controller manages it, so nothing recreates it; force: true allows it');
  }
  return reasons.length > 0 ? { action: 'block', reasons } : { action: 'evict', allowedBy };
}

const podName = (pod: V1Pod): string => `${pod.metadata?.namespace ?? 'default'}/${pod.metadata?.name ?? '?'}`;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new ProviderError('kubernetes', 'aborted'));
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new ProviderError('kubernetes', 'aborted'));
    });
  });

/**
 * The client's calls take no AbortSignal: race each against the signal, so a shutdown or a timed-out
 * attempt does not wait on an API server that stopped answering.
 */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new ProviderError('kubernetes', 'aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new ProviderError('kubernetes', 'aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/**
 * Keeps the raw body of one response. The generated client decodes an eviction's 2xx body as an
 * Eviction and drops a Status object's fields, but the API server answers a pod under two
 * PodDisruptionBudgets with a `Failure` Status (code 500) that it may send with HTTP 201
 * (registry/core/pod/storage/eviction.go returns it as the created object); client-go treats any
 * Failure Status as an error, and so must this provider.
 */
function keepBody(): { middleware: ObservableMiddleware; text: () => string } {
  let text = '';
  return {
    text: () => text,
    middleware: {
      pre: (ctx) => new Observable(Promise.resolve(ctx)),
      post: (ctx) =>
        new Observable(
          (async () => {
            text = await ctx.body.text();
            ctx.body = { text: async () => text, binary: async () => Buffer.from(text) };
            return ctx;
          })(),
        ),
    },
  };
}

function parseStatus(text: string): K8sStatus | null {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && (v as K8sStatus).kind === 'Status' ? (v as K8sStatus) : null;
  } catch {
    return null;
  }
}

/** The API server's words on a refusal: the Status message and, for a 429, the budget's own cause ("needs 2 healthy pods and has 2"). */
function refusalText(err: unknown): string {
  const body = statusBody(err);
  const cause = body?.details?.causes?.find((c) => c.reason === 'DisruptionBudget')?.message;
  return cause ?? body?.message ?? 'refused';
}

const MULTIPLE_PDBS = /more than one PodDisruptionBudget/;

export function kubernetesProvider(cfg: KubernetesConfig, o: { kubeConfig?: KubeConfig } = {}): Provider {
  const kc = o.kubeConfig ?? new KubeConfig();
  if (!o.kubeConfig) {
    if (cfg.kubeconfig) kc.loadFromFile(cfg.kubeconfig);
    else kc.loadFromDefault();
  }
  if (cfg.context) kc.setCurrentContext(cfg.context);
  const core = kc.makeApiClient(CoreV1Api);
  const drainMs = parseDuration(cfg.drainTimeout) ?? 600_000;
  const retryMs = parseDuration(cfg.evictionRetry) ?? 5_000;
  const settings: DrainSettings = { force: cfg.force ?? false, deleteEmptyDirData: cfg.deleteEmptyDirData ?? false };

  const nodeOf = (t: ReplacementTarget): string => {
    const name = cfg.nodeName === 'id' ? t.hostId : t.hostname;
    if (!name)
      throw new ProviderError(
        'kubernetes',
        `host ${t.hostId} has no host name to find its node by (set nodeName: id)`,
        { retryable: false },
      );
    return name;
  };

  async function podsOn(node: string, signal: AbortSignal): Promise<V1Pod[]> {
    try {
      const list = await abortable(core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` }), signal);
      return list.items;
    } catch (err) {
      if (err instanceof ProviderError) throw err;
      throw k8sError(err, `listing the pods on node ${node}`);
    }
  }

  /**
   * One eviction: `evicted`, `gone` (404: nothing to do), or `refused` with the budget's words (429).
   * Anything else throws. The answers are those of "API-initiated eviction" in the Kubernetes docs:
   * 200/201 allowed, 429 a PodDisruptionBudget says not now, 500 a misconfiguration such as several
   * budgets selecting the pod, which no retry fixes.
   */
  async function evict(
    pod: V1Pod,
    node: string,
    signal: AbortSignal,
  ): Promise<{ outcome: 'evicted' | 'gone' } | { outcome: 'refused'; why: string }> {
    const name = pod.metadata!.name!;
    const namespace = pod.metadata!.namespace ?? 'default';
    const raw = keepBody();
    const multiplePdbs = (message: string) =>
      new ProviderError(
        'kubernetes',
        `evicting ${namespace}/${name} from ${node}: ${message} (the pod is selected by more than one PodDisruptionBudget, so the Eviction API can never evict it: an operator has to fix the budgets; the node stays cordoned)`,
        {
          retryable: false,
          context: { status: 500, pod: `${namespace}/${name}` },
        },
      );
    try {
      await abortable(
        core.createNamespacedPodEviction(
          { name, namespace, body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } } },
          { middleware: [raw.middleware], middlewareMergeStrategy: 'append' },
        ),
        signal,
      );
    } catch (err) {
      if (err instanceof ProviderError) throw err;
      const status = statusOf(err);
      if (status === 404) return { outcome: 'gone' };
      if (status === 429) return { outcome: 'refused', why: refusalText(err) };
      const message = statusBody(err)?.message ?? '';
      if (status === 500 && MULTIPLE_PDBS.test(message)) throw multiplePdbs(message);
      throw k8sError(err, `evicting ${namespace}/${name}`);
    }
    const answer = parseStatus(raw.text());
    if (answer?.status === 'Failure') {
      if (MULTIPLE_PDBS.test(answer.message ?? '')) throw multiplePdbs(answer.message!);
      const code = answer.code ?? 500;
      throw new ProviderError(
        'kubernetes',
        `evicting ${namespace}/${name}: ${code} ${answer.reason ?? ''}: ${answer.message ?? 'Failure'}`,
        { retryable: code === 429 || code >= 500, context: { status: code } },
      );
    }
    return { outcome: 'evicted' };
  }

  async function drain(
    node: string,
    ctx: ProviderContext,
  ): Promise<{ evicted: number; skipped: number; allowed: Record<'force' | 'deleteEmptyDirData', number> }> {
    const deadline = ctx.clock().getTime() + drainMs;
    const evicted = new Set<string>();
    const allowed = { force: 0, deleteEmptyDirData: 0 };
    let skipped = 0;
    for (;;) {
      const pods = await podsOn(node, ctx.signal);
      const plans = pods.map((pod) => ({ pod, plan: planPod(pod, settings) }));
      // Checked on every round, not only the first: a pod created with spec.nodeName set bypasses the cordon.
      const blocking = plans.filter((p) => p.plan.action === 'block');
      if (blocking.length > 0) {
        const list = blocking.map(({ pod, plan }) => ({
          pod: podName(pod),
          reasons: (plan as { reasons: string[] }).reasons,
        }));
        const shown = list.slice(0, 20).map((b) => `${b.pod} (${b.reasons.join('; ')})`);
        const more = list.length > shown.length ? `, and ${list.length - shown.length} more` : '';
        // Retrying cannot help: the settings or the pods have to change, which is an operator's call.
        throw new ProviderError(
          'kubernetes',
          `drain of ${node} blocked by ${list.length} pod${list.length === 1 ? '' : 's'}: ${shown.join(', ')}${more}; ${evicted.size === 0 ? 'nothing was evicted' : `${evicted.size} pods were evicted before it appeared`}, and the node stays cordoned`,
          {
            retryable: false,
            context: { node, blocking: list },
          },
        );
      }
      skipped = plans.filter((p) => p.plan.action === 'skip').length;
      const movable = plans.filter((p) => p.plan.action === 'evict' || p.plan.action === 'wait');
      if (movable.length === 0) return { evicted: evicted.size, skipped, allowed };
      const refused: string[] = [];
      for (const { pod, plan } of movable) {
        if (plan.action !== 'evict') continue;
        const r = await evict(pod, node, ctx.signal);
        if (r.outcome === 'refused') {
          refused.push(`${podName(pod)}: ${r.why}`); // a PodDisruptionBudget says not now
          continue;
        }
        if (r.outcome === 'evicted' && !evicted.has(podName(pod))) {
          evicted.add(podName(pod));
          for (const s of plan.allowedBy) allowed[s]++;
        }
      }
      if (ctx.clock().getTime() + retryMs > deadline) {
        const left =
          refused.length > 0
            ? `PodDisruptionBudgets still refuse ${refused.slice(0, 5).join(', ')}`
            : `${movable.length} pods still terminating`;
        // The node stays cordoned: nothing new lands on a tainted host while an operator looks.
        throw new ProviderError('kubernetes', `drain of ${node} did not finish within ${cfg.drainTimeout}: ${left}`);
      }
      await sleep(retryMs, ctx.signal);
    }
  }

  return {
    type: 'kubernetes',
    async replace(t, ctx) {
      const node = nodeOf(t);
      // Cordon first, as kubectl drain does: the pod list checked below then cannot grow through the scheduler,
      // and a drain that stops (blocked, budgets, timeout) leaves a tainted node that takes no new work.
      try {
        await abortable(
          core.patchNode(
            { name: node, body: { spec: { unschedulable: true } } },
            setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
          ),
          ctx.signal,
        );
      } catch (err) {
        if (err instanceof ProviderError) throw err;
        if (statusOf(err) === 404) return { ref: node, detail: `node ${node} is already gone` };
        throw k8sError(err, `cordoning node ${node}`);
      }
      const { evicted, skipped, allowed } = await drain(node, ctx);
      try {
        await abortable(core.deleteNode({ name: node }), ctx.signal);
      } catch (err) {
        if (err instanceof ProviderError) throw err;
        if (statusOf(err) !== 404) throw k8sError(err, `deleting node ${node}`);
      }
      const by = [
        allowed.force > 0 ? `${allowed.force} with no controller (force)` : '',
        allowed.deleteEmptyDirData > 0 ? `${allowed.deleteEmptyDirData} with emptyDir data (deleteEmptyDirData)` : '',
      ].filter(Boolean);
      return {
        ref: node,
        detail: `cordoned ${node}, evicted ${evicted} pods${by.length > 0 ? ` (${by.join(', ')})` : ''} (${skipped} left to the node: daemonset, mirror or finished), deleted the node`,
      };
    },
    async status(t, ctx) {
      const node = t.ref ?? nodeOf(t);
      try {
        await abortable(core.readNode({ name: node }), ctx.signal);
      } catch (err) {
        if (err instanceof ProviderError) throw err;
        if (statusOf(err) === 404) return { state: 'done', detail: `node ${node} is gone` };
        throw k8sError(err, `reading node ${node}`);
      }
      return { state: 'pending', detail: `node ${node} is being deleted` };
    },
  };
}
