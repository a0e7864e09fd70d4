/**
 * @module The `kubernetes` provider: cordon the node, evict its pods through the Eviction API (policy/v1)
 * so PodDisruptionBudgets hold (a 429 is a budget saying "not now": retried until the drain timeout,
 * never overridden), skipping DaemonSet and mirror pods, then delete the node so the cluster
 * autoscaler or Karpenter brings up a replacement.
 */
import { ApiException, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { parseDuration } from '../../shared/schema/config.js';
import { ProviderError, type Provider, type ProviderContext, type ReplacementTarget } from './types.js';

export interface KubernetesConfig {
  kubeconfig?: string;
  context?: string;
  drainTimeout: string;
  evictionRetry: string;
  nodeName: 'hostname' | 'id';
}

function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : (err as { code?: unknown })?.code === undefined ? undefined : Number((err as { code: unknown }).code);
}

function k8sError(err: unknown, what: string): ProviderError {
  const status = statusOf(err);
  let reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
  if (err instanceof ApiException) {
    try {
      const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      if (body?.message) reason = `${status} ${body.reason ?? ''}: ${body.message}`;
    } catch {
      // keep the first line of the exception's message
    }
  }
  const retryable = status === undefined || status === 429 || status >= 500;
  return new ProviderError('kubernetes', `${what}: ${reason}`, { retryable, cause: err, context: { status } });
}

/** Pods a drain leaves alone: a DaemonSet would put them back at once, a mirror pod belongs to the kubelet, a finished pod holds nothing. */
export function skipReason(pod: V1Pod): string | null {
  if (pod.metadata?.annotations?.['kubernetes.io/config.mirror']) return 'mirror pod';
  if (pod.metadata?.ownerReferences?.some((o) => o.kind === 'DaemonSet')) return 'daemonset pod';
  if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return `pod ${pod.status.phase.toLowerCase()}`;
  return null;
}

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

  const nodeOf = (t: ReplacementTarget): string => {
    const name = cfg.nodeName === 'id' ? t.hostId : t.hostname;
    if (!name) throw new ProviderError('kubernetes', `host ${t.hostId} has no host name to find its node by (set nodeName: id)`, { retryable: false });
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

  async function drain(node: string, ctx: ProviderContext): Promise<{ evicted: number; skipped: number }> {
    const deadline = ctx.clock().getTime() + drainMs;
    const evicted = new Set<string>();
    let skipped = 0;
    for (;;) {
      const pods = await podsOn(node, ctx.signal);
      const movable = pods.filter((p) => skipReason(p) === null);
      skipped = pods.length - movable.length;
      if (movable.length === 0) return { evicted: evicted.size, skipped };
      const refused: string[] = [];
      for (const pod of movable) {
        const name = pod.metadata!.name!;
        const namespace = pod.metadata!.namespace ?? 'default';
        try {
          await abortable(core.createNamespacedPodEviction({ name, namespace, body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } } }), ctx.signal);
          evicted.add(`${namespace}/${name}`);
        } catch (err) {
          if (err instanceof ProviderError) throw err;
          const status = statusOf(err);
          if (status === 404) continue; // gone already
          if (status === 429) {
            refused.push(`${namespace}/${name}`); // a PodDisruptionBudget says not now
            continue;
          }
          throw k8sError(err, `evicting ${namespace}/${name}`);
        }
      }
      if (ctx.clock().getTime() + retryMs > deadline) {
        const left = refused.length > 0 ? `PodDisruptionBudgets still refuse ${refused.slice(0, 5).join(', ')}` : `${movable.length} pods still terminating`;
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
      try {
        await abortable(core.patchNode({ name: node, body: { spec: { unschedulable: true } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)), ctx.signal);
      } catch (err) {
        if (err instanceof ProviderError) throw err;
        if (statusOf(err) === 404) return { ref: node, detail: `node ${node} is already gone` };
        throw k8sError(err, `cordoning node ${node}`);
      }
      const { evicted, skipped } = await drain(node, ctx);
      try {
        await abortable(core.deleteNode({ name: node }), ctx.signal);
      } catch (err) {
        if (err instanceof ProviderError) throw err;
        if (statusOf(err) !== 404) throw k8sError(err, `deleting node ${node}`);
      }
      return { ref: node, detail: `cordoned ${node}, evicted ${evicted} pods (${skipped} left to the node: daemonset, mirror or finished), deleted the node` };
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
