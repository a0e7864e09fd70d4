/**
 * @module The kubernetes provider against a local API server endpoint that checks each request (paths,
 * methods, fieldSelector, the policy/v1 Eviction body) and answers as the Kubernetes API reference
 * documents it: the cordon patch, the kubectl-drain classification of pods (DaemonSet, mirror and
 * finished pods stay; unmanaged and emptyDir pods stop the drain unless `force` / `deleteEmptyDirData`
 * allow them), a PodDisruptionBudget's 429 retried until the drain timeout, 404 as already gone, the
 * "more than one PodDisruptionBudget" refusal as a permanent error, and the node deletion.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ControllerConfigSchema } from '../../../controller/config.js';
import { kubernetesProvider } from '../../../controller/providers/kubernetes.js';
import { ProviderError } from '../../../controller/providers/types.js';
import { parseConfigText } from '../../../shared/config-load.js';
import { Recorder, context, target, type Answer, type Recorded } from './recorder.js';

const NODE = 'ip-10-0-1-7.eu-west-1.compute.internal';

interface Pod {
  name: string;
  namespace: string;
  /** The controlling owner's kind; absent for a bare pod. */
  owner?: string;
  /** An owner reference without `controller: true` (kubectl does not count it as a controller). */
  nonControllingOwner?: string;
  mirror?: boolean;
  phase?: string;
  emptyDir?: string[];
  otherVolumes?: boolean;
  terminating?: boolean;
}

const podJson = (p: Pod) => ({
  metadata: {
    name: p.name,
    namespace: p.namespace,
    uid: `uid-${p.name}`,
    ...(p.owner
      ? {
          ownerReferences: [
            {
              apiVersion: 'apps/v1',
              kind: p.owner,
              name: `${p.name}-owner`,
              uid: 'u1',
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        }
      : {}),
    ...(p.nonControllingOwner
      ? { ownerReferences: [{ apiVersion: 'v1', kind: p.nonControllingOwner, name: 'holder', uid: 'u2' }] }
      : {}),
    ...(p.mirror
      ? { annotations: { 'kubernetes.io/config.mirror': 'abc', 'kubernetes.io/config.source': 'file' } }
      : {}),
    ...(p.terminating ? { deletionTimestamp: '2026-03-02T10:00:00Z', deletionGracePeriodSeconds: 30 } : {}),
  },
  spec: {
    nodeName: NODE,
    containers: [{ name: 'c', image: 'nginx' }],
    volumes: [
      ...(p.emptyDir ?? []).map((name) => ({ name, emptyDir: {} })),
      ...(p.otherVolumes
        ? [
            { name: 'config', configMap: { name: 'web-config' } },
            { name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } },
            { name: 'kube-api-access-x7k2p', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } },
          ]
        : []),
    ],
  },
  status: { phase: p.phase ?? 'Running' },
});

/** A meta/v1 Status, the body of every API error. */
const status = (code: number, reason: string, message: string, extra: Record<string, unknown> = {}) => ({
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message,
  reason,
  code,
  ...extra,
});
/** What the eviction subresource answers when it evicted the pod (it returns a Success Status, code 201). */
const EVICTED = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 };
const PDB_429 = (pdb: string) =>
  status(429, 'TooManyRequests', "Cannot evict pod as it would violate the pod's disruption budget.", {
    details: {
      causes: [
        {
          reason: 'DisruptionBudget',
          message: `The disruption budget ${pdb} needs 2 healthy pods and has 2 currently`,
        },
      ],
    },
  });
/** registry/core/pod/storage/eviction.go: a Failure Status with code 500 and no reason, returned as the created object. */
const TWO_PDBS = {
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message: 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.',
  code: 500,
};

const EVICTION_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/eviction$/;

describe('kubernetes provider', () => {
  let server: Recorder;
  let pods: Pod[] = [];
  /** How many more times each pod's eviction is refused by its PodDisruptionBudget. */
  let refusals: Record<string, number> = {};
  /** A fixed answer for one pod's eviction. */
  let evictionAnswer: Record<string, Answer> = {};
  /** Called after each eviction round's answer, to change the node's pods mid-drain. */
  let afterEviction: (key: string) => void = () => {};
  let nodeExists = true;
  let forbidDelete = false;
  /** The requests that did not match the API's shape: any entry fails the test. */
  let malformed: string[] = [];

  const handler = (r: Recorded): Answer => {
    const nodePath = `/api/v1/nodes/${NODE}`;
    const notFound = {
      status: 404,
      body: status(404, 'NotFound', `nodes "${NODE}" not found`, { details: { name: NODE, kind: 'nodes' } }),
    };
    if (r.headers.authorization !== 'Bearer sa-token') malformed.push(`${r.method} ${r.path}: no bearer token`);
    if (r.path === nodePath && r.method === 'PATCH') {
      if (r.headers['content-type'] !== 'application/strategic-merge-patch+json')
        malformed.push(`cordon sent as ${r.headers['content-type']}`);
      return nodeExists
        ? { body: { kind: 'Node', apiVersion: 'v1', metadata: { name: NODE }, spec: { unschedulable: true } } }
        : notFound;
    }
    if (r.path === nodePath && r.method === 'GET')
      return nodeExists ? { body: { kind: 'Node', apiVersion: 'v1', metadata: { name: NODE } } } : notFound;
    if (r.path === nodePath && r.method === 'DELETE') {
      if (forbidDelete)
        return {
          status: 403,
          body: status(
            403,
            'Forbidden',
            `nodes "${NODE}" is forbidden: User "system:serviceaccount:driftwarden:controller" cannot delete resource "nodes" in API group "" at the cluster scope`,
          ),
        };
      nodeExists = false;
      return {
        body: {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: { name: NODE, kind: 'nodes', uid: 'n1' },
        },
      };
    }
    if (r.path === '/api/v1/pods' && r.method === 'GET') {
      if (r.query.get('fieldSelector') !== `spec.nodeName=${NODE}`)
        malformed.push(`pods listed with fieldSelector=${r.query.get('fieldSelector')}`);
      return {
        body: { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '1234' }, items: pods.map(podJson) },
      };
    }
    const m = EVICTION_PATH.exec(r.path);
    if (m && r.method === 'POST') {
      const key = `${m[1]}/${m[2]}`;
      const body = JSON.parse(r.body);
      if (
        body.apiVersion !== 'policy/v1' ||
        body.kind !== 'Eviction' ||
        body.metadata?.name !== m[2] ||
        body.metadata?.namespace !== m[1]
      )
        malformed.push(`eviction of ${key} sent ${r.body}`);
      try {
        if (evictionAnswer[key]) return evictionAnswer[key]!;
        if (!pods.some((p) => `${p.namespace}/${p.name}` === key))
          return {
            status: 404,
            body: status(404, 'NotFound', `pods "${m[2]}" not found`, { details: { name: m[2], kind: 'pods' } }),
          };
        if ((refusals[key] ?? 0) > 0) {
          refusals[key]!--;
          return { status: 429, body: PDB_429(`${m[1]}/${m[2]!.split('-')[0]}-pdb`) };
        }
        pods = pods.filter((p) => `${p.namespace}/${p.name}` !== key);
        return { status: 201, body: EVICTED };
      } finally {
        afterEviction(key);
      }
    }
    malformed.push(`unexpected ${r.method} ${r.path}`);
    return { status: 404, body: status(404, 'NotFound', 'the server could not find the requested resource') };
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
    evictionAnswer = {};
    afterEviction = () => {};
    malformed = [];
    pods = [
      { name: 'web-7d9f-abcde', namespace: 'shop', owner: 'ReplicaSet', otherVolumes: true },
      { name: 'db-0', namespace: 'shop', owner: 'StatefulSet', otherVolumes: true },
      { name: 'fluent-bit-x2k', namespace: 'logging', owner: 'DaemonSet', emptyDir: ['buffer'] },
      { name: `kube-proxy-${NODE}`, namespace: 'kube-system', mirror: true },
      { name: 'job-done', namespace: 'batch', owner: 'Job', phase: 'Succeeded' },
      { name: 'one-off-report', namespace: 'batch', phase: 'Failed', emptyDir: ['scratch'] },
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
    return kubernetesProvider(
      {
        drainTimeout: '10m',
        evictionRetry: '20ms',
        nodeName: 'hostname',
        force: false,
        deleteEmptyDirData: false,
        ...over,
      },
      { kubeConfig: kc },
    );
  };
  const t = target({ hostname: NODE });
  const evictions = () =>
    server.requests
      .filter((q) => q.method === 'POST' && EVICTION_PATH.test(q.path))
      .map((q) => EVICTION_PATH.exec(q.path)!.slice(1).join('/'));
  const failure = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  };

  it('cordons with a strategic merge patch, evicts each movable pod through policy/v1, then deletes the node', async () => {
    const r = await provider().replace(t, context());
    expect(malformed).toEqual([]);
    expect(r).toMatchObject({ ref: NODE });
    expect(r.detail).toBe(
      `cordoned ${NODE}, evicted 2 pods (4 left to the node: daemonset, mirror or finished), deleted the node`,
    );
    const reqs = server.requests;
    expect(reqs[0]).toMatchObject({ method: 'PATCH', path: `/api/v1/nodes/${NODE}` });
    expect(JSON.parse(reqs[0]!.body)).toEqual({ spec: { unschedulable: true } });
    expect(reqs[1]).toMatchObject({ method: 'GET', path: '/api/v1/pods' });
    expect(reqs[1]!.query.get('fieldSelector')).toBe(`spec.nodeName=${NODE}`);
    expect(reqs.filter((q) => q.path.endsWith('/eviction')).map((e) => [e.path, JSON.parse(e.body)])).toEqual([
      [
        '/api/v1/namespaces/shop/pods/web-7d9f-abcde/eviction',
        { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'web-7d9f-abcde', namespace: 'shop' } },
      ],
      [
        '/api/v1/namespaces/shop/pods/db-0/eviction',
        { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'db-0', namespace: 'shop' } },
      ],
    ]);
    expect(reqs.at(-1)).toMatchObject({ method: 'DELETE', path: `/api/v1/nodes/${NODE}` });
    expect(await provider().status({ ...t, ref: NODE }, context())).toMatchObject({ state: 'done' });
  });

  describe('pods kubectl drain refuses without --force or --delete-emptydir-data', () => {
    it('a pod no controller manages stops the drain before any eviction, named with the setting that allows it; the node stays cordoned', async () => {
      pods.push({ name: 'debug-shell', namespace: 'shop' });
      const err = await failure(provider().replace(t, context()));
      expect(err.retryable).toBe(false);
      expect(err.message).toBe(
        `kubernetes: drain of ${NODE} blocked by 1 pod: shop/debug-shell (no controller manages it, so nothing recreates it; force: true allows it); nothing was evicted, and the node stays cordoned`,
      );
      expect(err.context).toMatchObject({
        node: NODE,
        blocking: [
          {
            pod: 'shop/debug-shell',
            reasons: ['no controller manages it, so nothing recreates it; force: true allows it'],
          },
        ],
      });
      expect(server.requests.map((q) => q.method)).toEqual(['PATCH', 'GET']);
      expect(malformed).toEqual([]);
    });

    it('an owner reference that is not a controller does not make a pod managed (metav1.GetControllerOf)', async () => {
      pods.push({ name: 'held', namespace: 'shop', nonControllingOwner: 'ConfigMap' });
      const err = await failure(provider().replace(t, context()));
      expect(err.message).toMatch(/blocked by 1 pod: shop\/held \(no controller manages it/);
    });

    it('a pod with emptyDir volumes stops the drain, naming the volumes; other volume types do not', async () => {
      pods.push({
        name: 'cache-5c8d-q2w',
        namespace: 'shop',
        owner: 'ReplicaSet',
        emptyDir: ['scratch', 'tmp'],
        otherVolumes: true,
      });
      const err = await failure(provider().replace(t, context()));
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(
        'blocked by 1 pod: shop/cache-5c8d-q2w (its emptyDir data ("scratch", "tmp") would be lost; deleteEmptyDirData: true allows it)',
      );
      expect(evictions()).toEqual([]);
      expect(server.requests.some((q) => q.method === 'DELETE')).toBe(false);
    });

    it('names every blocking pod with every reason', async () => {
      pods.push(
        { name: 'debug-shell', namespace: 'shop' },
        { name: 'scratchpad', namespace: 'lab', emptyDir: ['work'] },
      );
      const err = await failure(provider().replace(t, context()));
      expect(err.message).toContain('blocked by 2 pods: shop/debug-shell (no controller manages it');
      expect(err.context!.blocking).toEqual([
        {
          pod: 'shop/debug-shell',
          reasons: ['no controller manages it, so nothing recreates it; force: true allows it'],
        },
        {
          pod: 'lab/scratchpad',
          reasons: [
            'its emptyDir data ("work") would be lost; deleteEmptyDirData: true allows it',
            'no controller manages it, so nothing recreates it; force: true allows it',
          ],
        },
      ]);
    });

    it('force: true evicts unmanaged pods (still through the Eviction API), and says so', async () => {
      pods.push({ name: 'debug-shell', namespace: 'shop' });
      const r = await provider({ force: true }).replace(t, context());
      expect(evictions()).toEqual(['shop/web-7d9f-abcde', 'shop/db-0', 'shop/debug-shell']);
      expect(r.detail).toBe(
        `cordoned ${NODE}, evicted 3 pods (1 with no controller (force)) (4 left to the node: daemonset, mirror or finished), deleted the node`,
      );
      expect(malformed).toEqual([]);
    });

    it('deleteEmptyDirData: true evicts pods with emptyDir data, and force alone does not', async () => {
      pods.push({ name: 'scratchpad', namespace: 'lab', emptyDir: ['work'] });
      const onlyForce = await failure(provider({ force: true }).replace(t, context()));
      expect(onlyForce.context!.blocking).toEqual([
        {
          pod: 'lab/scratchpad',
          reasons: ['its emptyDir data ("work") would be lost; deleteEmptyDirData: true allows it'],
        },
      ]);
      server.requests.length = 0;
      const r = await provider({ force: true, deleteEmptyDirData: true }).replace(t, context());
      expect(evictions()).toEqual(['shop/web-7d9f-abcde', 'shop/db-0', 'lab/scratchpad']);
      expect(r.detail).toContain(
        'evicted 3 pods (1 with no controller (force), 1 with emptyDir data (deleteEmptyDirData))',
      );
    });

    it('leaves DaemonSet, mirror and finished pods alone whatever their volumes or owners', async () => {
      pods = pods.filter((p) => !p.owner || p.owner === 'DaemonSet' || p.phase);
      pods = pods.filter((p) => p.owner !== 'ReplicaSet' && p.owner !== 'StatefulSet');
      const r = await provider().replace(t, context());
      expect(evictions()).toEqual([]);
      expect(r.detail).toContain('evicted 0 pods (4 left to the node');
    });

    it('a blocking pod that appears mid-drain (created with spec.nodeName, past the cordon) stops the drain', async () => {
      refusals['shop/db-0'] = 1;
      afterEviction = (key) => {
        if (key === 'shop/db-0' && !pods.some((p) => p.name === 'intruder'))
          pods.push({ name: 'intruder', namespace: 'default' });
      };
      const err = await failure(provider().replace(t, context()));
      expect(err.retryable).toBe(false);
      expect(err.message).toContain('blocked by 1 pod: default/intruder (no controller manages it');
      expect(err.message).toContain('1 pods were evicted before it appeared, and the node stays cordoned');
      expect(server.requests.some((q) => q.method === 'DELETE')).toBe(false);
    });
  });

  describe('eviction answers', () => {
    it('retries an eviction a PodDisruptionBudget refuses (429) until it is allowed', async () => {
      refusals['shop/db-0'] = 2;
      await provider().replace(t, context());
      expect(evictions().filter((k) => k === 'shop/db-0')).toHaveLength(3);
      expect(server.requests.at(-1)!.method).toBe('DELETE');
    });

    it("gives up at the drain timeout with the budget's own words, without deleting the node (it stays cordoned)", async () => {
      refusals['shop/db-0'] = 1_000;
      const err = await failure(provider({ drainTimeout: '200ms' }).replace(t, context()));
      expect(err.message).toMatch(
        /drain of .* did not finish within 200ms: PodDisruptionBudgets still refuse shop\/db-0: The disruption budget shop\/db-pdb needs 2 healthy pods and has 2 currently/,
      );
      expect(err.retryable).toBe(true);
      expect(server.requests.some((q) => q.method === 'DELETE')).toBe(false);
    });

    it('a 404 on an eviction is a pod already gone, and the drain goes on', async () => {
      evictionAnswer['shop/web-7d9f-abcde'] = {
        status: 404,
        body: status(404, 'NotFound', 'pods "web-7d9f-abcde" not found'),
      };
      pods = pods.filter((p) => p.name !== 'web-7d9f-abcde');
      pods.push({ name: 'web-7d9f-abcde', namespace: 'shop', owner: 'ReplicaSet' });
      let listed = 0;
      const before = server.handler;
      server.handler = (r) => {
        // The pod vanishes between the list and the eviction, as one that finished terminating does.
        if (r.path === '/api/v1/pods' && ++listed > 1) pods = pods.filter((p) => p.name !== 'web-7d9f-abcde');
        return before(r);
      };
      try {
        const r = await provider().replace(t, context());
        expect(r.detail).toContain('evicted 1 pods');
        expect(server.requests.at(-1)!.method).toBe('DELETE');
      } finally {
        server.handler = before;
      }
    });

    it('a pod under two PodDisruptionBudgets (HTTP 500) is a permanent error that says what to fix', async () => {
      evictionAnswer['shop/db-0'] = {
        status: 500,
        body: { ...TWO_PDBS, reason: 'InternalError', message: `Internal error occurred: ${TWO_PDBS.message}` },
      };
      const err = await failure(provider().replace(t, context()));
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(
        `evicting shop/db-0 from ${NODE}: Internal error occurred: This pod has more than one PodDisruptionBudget`,
      );
      expect(err.message).toContain('an operator has to fix the budgets; the node stays cordoned');
      expect(server.requests.some((q) => q.method === 'DELETE')).toBe(false);
    });

    it('the same refusal sent as the created object (HTTP 201, a Failure Status with code 500) is not taken for success', async () => {
      evictionAnswer['shop/db-0'] = { status: 201, body: TWO_PDBS };
      const err = await failure(provider().replace(t, context()));
      expect(err.retryable).toBe(false);
      expect(err.message).toContain('evicting shop/db-0 from');
      expect(err.message).toContain(
        'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.',
      );
      expect(server.requests.some((q) => q.method === 'DELETE')).toBe(false);
    });

    it('another 500 is an error worth retrying', async () => {
      evictionAnswer['shop/db-0'] = {
        status: 500,
        body: status(500, 'InternalError', 'Internal error occurred: etcdserver: request timed out'),
      };
      const err = await failure(provider().replace(t, context()));
      expect(err.retryable).toBe(true);
      expect(err.message).toBe(
        'kubernetes: evicting shop/db-0: 500 InternalError: Internal error occurred: etcdserver: request timed out',
      );
    });

    it('waits for a pod someone else is already deleting instead of evicting it', async () => {
      pods.push({ name: 'going-away', namespace: 'shop', terminating: true });
      let rounds = 0;
      const before = server.handler;
      server.handler = (r) => {
        if (r.path === '/api/v1/pods' && ++rounds === 3) pods = pods.filter((p) => p.name !== 'going-away');
        return before(r);
      };
      try {
        await provider().replace(t, context());
        expect(evictions()).not.toContain('shop/going-away');
        expect(rounds).toBeGreaterThanOrEqual(3);
        expect(server.requests.at(-1)!.method).toBe('DELETE');
      } finally {
        server.handler = before;
      }
    });
  });

  it('a node that is already gone is success', async () => {
    nodeExists = false;
    const r = await provider().replace(t, context());
    expect(r.detail).toBe(`node ${NODE} is already gone`);
    expect(server.requests).toHaveLength(1);
  });

  it('a forbidden deletion is a permanent error that names what RBAC refused', async () => {
    forbidDelete = true;
    const err = await failure(provider().replace(t, context()));
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/deleting node .*: 403 Forbidden: .*cannot delete resource "nodes"/);
  });

  it('status is pending while the node exists', async () => {
    expect(await provider().status({ ...t, ref: NODE }, context())).toMatchObject({ state: 'pending' });
  });
});

describe('kubernetes provider config', () => {
  const parse = (provider: string) =>
    parseConfigText(ControllerConfigSchema, `scheduler:\n  provider: ${provider}\n`, 'controller.yaml').scheduler
      .provider;

  it('force and deleteEmptyDirData are off unless asked for', () => {
    expect(parse('{ type: kubernetes }')).toMatchObject({
      type: 'kubernetes',
      force: false,
      deleteEmptyDirData: false,
      drainTimeout: '10m',
    });
    expect(parse('{ type: kubernetes, force: true, deleteEmptyDirData: true }')).toMatchObject({
      force: true,
      deleteEmptyDirData: true,
    });
  });

  it('refuses a wrong value or a kubectl flag name, naming the key', () => {
    expect(() => parse('{ type: kubernetes, force: "yes" }')).toThrow(/controller.yaml: scheduler.provider.force: /);
    expect(() => parse('{ type: kubernetes, delete-emptydir-data: true }')).toThrow(/scheduler.provider/);
  });
});
