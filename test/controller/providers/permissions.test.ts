/**
 * @module The permissions shipped in packaging/ cover every platform call the providers make: each AWS
 * SDK command in aws-asg.ts is an allowed IAM action, each Kubernetes API call in kubernetes.ts is an
 * allowed verb in the RBAC role. A new call without its permission fails here, not in production.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (p: string) => readFileSync(`${ROOT}${p}`, 'utf8');

describe('packaged permissions', () => {
  it('the IAM policy allows every Auto Scaling and EC2 action the aws-asg provider sends, and nothing it does not', () => {
    const src = read('controller/providers/aws-asg.ts');
    const asgImports = /import \{([^}]+)\} from '@aws-sdk\/client-auto-scaling'/.exec(src)![1]!;
    const used = [...new Set([...src.matchAll(/new (\w+)Command\(/g)].map((m) => m[1]!))].map((c) =>
      asgImports.includes(`${c}Command`) ? `autoscaling:${c}` : `ec2:${c}`,
    );
    const policy = JSON.parse(read('packaging/aws-iam-policy.json')) as { Statement: { Action: string | string[] }[] };
    const allowed = policy.Statement.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(used.sort()).toEqual([...new Set(allowed)].sort());
  });

  it('the RBAC role allows every Kubernetes call the kubernetes provider makes', () => {
    const src = read('controller/providers/kubernetes.ts');
    const NEEDS: Record<string, [resource: string, verb: string]> = {
      patchNode: ['nodes', 'patch'],
      readNode: ['nodes', 'get'],
      deleteNode: ['nodes', 'delete'],
      listPodForAllNamespaces: ['pods', 'list'],
      createNamespacedPodEviction: ['pods/eviction', 'create'],
    };
    const calls = [...new Set([...src.matchAll(/core\.(\w+)\(/g)].map((m) => m[1]!))];
    const role = parseAllDocuments(read('packaging/kubernetes-rbac.yaml'))
      .map((d) => d.toJS() as { kind: string; rules?: { resources: string[]; verbs: string[] }[] })
      .find((d) => d.kind === 'ClusterRole')!;
    for (const call of calls) {
      const need = NEEDS[call];
      expect(need, `${call}: add its resource and verb to NEEDS and to packaging/kubernetes-rbac.yaml`).toBeDefined();
      expect(
        role.rules!.some((r) => r.resources.includes(need![0]) && r.verbs.includes(need![1])),
        `${call} needs ${need![1]} on ${need![0]}`,
      ).toBe(true);
    }
    expect(calls.sort()).toEqual(Object.keys(NEEDS).sort());
  });
});
