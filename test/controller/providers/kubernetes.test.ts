/**
 * @module The kubernetes provider against a local API server endpoint: the cordon patch, one policy/v1
 * Eviction per movable pod (DaemonSet and mirror pods left alone), a PodDisruptionBudget's 429 retried
 * until the drain timeout, and the node deletion, as @kubernetes/client-node sends them.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { kubernetesProvider } from '../../../controller/providers/kubernetes.js';
import { ProviderError } from '../../../controller/providers/types.js';
import { Recorder, context, target, type Answer, type Recorded } from './recorder.js';

const NODE = 'ip-10-0-1-7.eu-west-1.compute.internal';

interface Pod {
  name: string;
  namespace: string;
  owner?: string;
  mirror?: boolean;
  phase?: string;
}

const podJson = (p: Pod) => ({
  metadata: {
    name: p.name,
    namespace: p.namespace,
    ...(p.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: p.owner, name: `${p.name}-owner`, uid: 'u1', controller: true }] } : {}),
    ...(p.mirror ? { annotations: { 'kubernetes.io/config.mirror': 'abc' } } : {}),
  },
  spec: { nodeName: NODE, containers: [{ name: 'c', image: 'nginx' }] },
  status: { phase: p.phase ?? 'Running' },
});

const status = (code: number, reason: string, message: string) => ({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });

describe('kubernetes provider', () => {
  let server: Recorder;
  let pods: Pod[] = [];
  /** How many more times each pod's eviction is refused by its PodDisruptionBudget. */
  let refusals: Record<string, number> = {};
  let nodeExists = true;
  let forbidDelete = false;

  const handler = (r: Recorded): Answer => {
    const nodePath = `/api/v1/nodes/${NODE}`;
    if (r.path === nodePath && r.method === 'PATCH') return nodeExists ? { body: { kind: 'Node', apiVersion: 'v1', metadata: { name: NODE }, spec: { unschedulable: true } } } : { status: 404, body: status(404, 'NotFound', `nodes "${NODE}" not found`) };
    if (r.path === nodePath && r.method === 'GET') return nodeExists ? { body: { kind: 'Node', apiVersion: 'v1', metadata: { name: NODE } } } : { status: 404, body: status(404, 'NotFound', `nodes "${NODE}" not found`) };
    if (r.path === nodePath && r.method === 'DELETE') {
      if (forbidDelete) return { status: 403, body: status(403, 'Forbidden', `nodes "${NODE}" is forbidden: User "system:serviceaccount:driftwarden:controller" cannot delete resource "nodes"`) };
      nodeExists = false;
      return { body: { kind: 'Status', apiVersion: 'v1', status: 'Success', metadata: {} } };
    }
    if (r.path === '/api/v1/pods' && r.method === 'GET') return { body: { kind: 'PodList', apiVersion: 'v1', metadata: {}, items: pods.map(podJson) } };
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/eviction$/.exec(r.path);
    if (m && r.method === 'POST') {
      const key = `${m[1]}/${m[2]}`;
      if ((refusals[key] ?? 0) > 0) {
        refusals[key]!--;
        return { status: 429, body: status(429, 'TooManyRequests', 'Cannot evict pod as it would violate the pod\'s disruption budget.') };
      }
      pods = pods.filter((p) => `${p.namespace}/${p.name}` !== key);
      return { status: 201, body: JSON.parse(r.body) };
    }
    return { status: 404, body: status(404, 'NotFound', `no route ${r.method} ${r.path}`) };
  };

  beforeAll(async () => {
    server = await new Recorder(handler).start();
  });
  afterAll(() => server.stop());
  beforeEach(() => {
    server.requests.length = 0;
    nodeExists = true;
    forbidDelete = false;
    refusals = {};
    pods = [
      { name: 'web-7d9f-abcde', namespace: 'shop', owner: 'ReplicaSet' },
      { name: 'db-0', namespace: 'shop', owner: 'StatefulSet' },
      { name: 'fluent-bit-x2k', namespace: 'logging', owner: 'DaemonSet' },
      { name: `kube-proxy-${NODE}`, namespace: 'kube-system', mirror: true },
      { name: 'job-done', namespace: 'batch', owner: 'Job', phase: 'Succeeded' },
    ];
  });

  const provider = (over: Record<string, unknown> = {}) => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: server.url, skipTLSVerify: true }],
      users: [{ name: 'driftwarden', token: 'sa-token' }],
      contexts: [{ name: 'test', cluster: 'test', user: 'driftwarden' }],
      currentContext: 'test',
    });
    return kubernetesProvider({ drainTimeout: '10m', evictionRetry: '20ms', nodeName: 'hostname', ...over } as never, { kubeConfig: kc });
  };
  const t = target({ hostname: NODE });

  it('cordons with a strategic merge patch, evicts each movable pod through policy/v1, then deletes the node', async () => {
    const r = await provider().replace(t, context());
    expect(r).toMatchObject({ ref: NODE });
    expect(r.detail).toMatch(/evicted 2 pods \(3 left to the node/);
    const reqs = server.requests;
    expect(reqs[0]).toMatchObject({ method: 'PATCH', path: `/api/v1/nodes/${NODE}` });
    expect(reqs[0]!.headers['content-type']).toBe('application/strategic-merge-patch+json');
    expect(JSON.parse(reqs[0]!.body)).toEqual({ spec: { unschedulable: true } });
    expect(reqs[0]!.headers.authorization).toBe('Bearer sa-token');
    expect(reqs[1]).toMatchObject({ method: 'GET', path: '/api/v1/pods' });
    expect(reqs[1]!.query.get('fieldSelector')).toBe(`spec.nodeName=${NODE}`);
    const evictions = reqs.filter((q) => q.path.endsWith('/eviction'));
    expect(evictions.map((e) => [e.path, JSON.parse(e.body)])).toEqual([
      ['/api/v1/namespaces/shop/pods/web-7d9f-abcde/eviction', { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'web-7d9f-abcde', namespace: 'shop' } }],
      ['/api/v1/namespaces/shop/pods/db-0/eviction', { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'db-0', namespace: 'shop' } }],
    ]);
    expect(reqs.at(-1)).toMatchObject({ method: 'DELETE', path: `/api/v1/nodes/${NODE}` });
    expect(await provider().status({ ...t, ref: NODE }, context())).toMatchObject({ state: 'done' });
  });

  it('retries an eviction a PodDisruptionBudget refuses (429) until it is allowed', async () => {
    refusals['shop/db-0'] = 2;
    await provider().replace(t, context());
    const dbEvictions = server.requests.filter((q) => q.path === '/api/v1/namespaces/shop/pods/db-0/eviction');
    expect(dbEvictions).toHaveLength(3);
    expect(server.requests.at(-1)!.method).toBe('DELETE');
  });

  it('gives up at the drain timeout without deleting the node (it stays cordoned)', async () => {
    refusals['shop/db-0'] = 1_000;
    const err = await provider({ drainTimeout: '200ms' }).replace(t, context()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as Error).message).toMatch(/drain of .* did not finish within 200ms: PodDisruptionBudgets still refuse shop\/db-0/);
    expect((err as ProviderError).retryable).toBe(true);
    expect(server.requests.some((q) => q.method === 'DELETE')).toBe(false);
  });

  it('a node that is already gone is success', async () => {
    nodeExists = false;
    const r = await provider().replace(t, context());
    expect(r.detail).toBe(`node ${NODE} is already gone`);
    expect(server.requests).toHaveLength(1);
  });

  it('a forbidden deletion is a permanent error that names what RBAC refused', async () => {
    forbidDelete = true;
    const err = (await provider().replace(t, context()).catch((e: unknown) => e)) as ProviderError;
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/deleting node .*: 403 Forbidden: .*cannot delete resource "nodes"/);
  });

  it('status is pending while the node exists', async () => {
    expect(await provider().status({ ...t, ref: NODE }, context())).toMatchObject({ state: 'pending' });
  });
});
