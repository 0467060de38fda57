// The install artefacts on the real control plane: everything in deploy/ passes a server-side dry run, and
// the operator, run with exactly the RBAC in deploy/ (as its ServiceAccount, through impersonation),
// reconciles a revision and a tag (istiod's RBAC included, which passes the API server's escalation check)
// and serves injections through kube-apiserver, while what it must not do is refused.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { API_GROUP_VERSION } from '../../src/crds/constants.js';
import { ApiError, KubeClient, type Impersonation } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import { sumMetric } from '../support/process-operator.js';
import {
  clusterBinary,
  componentLogs,
  createTestNamespace,
  deleteNamespace,
  testKubeConfig,
  testKubeconfigPath,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import {
  installCrds,
  operatorLogTail,
  repoRoot,
  startTestOperator,
  testClient,
  type TestOperator,
} from '../support/operator.js';

type Obj = KubeObject & Record<string, unknown>;
interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
type WithConditions = Obj & { status?: { conditions?: Condition[] } };
interface PodShape {
  spec?: { containers?: { name: string }[]; initContainers?: { name: string }[] };
}

const SERVICE_ACCOUNT: Impersonation = {
  user: 'system:serviceaccount:meshrev-system:meshrev',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:meshrev-system', 'system:authenticated'],
};
const CPR = { apiVersion: API_GROUP_VERSION, kind: 'ControlPlaneRevision' };
const TAG = { apiVersion: API_GROUP_VERSION, kind: 'RevisionTag' };
const MWC = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' };
const RBAC = 'rbac.authorization.k8s.io/v1';
/** deploy/'s RBAC objects, applied for real (the rest of deploy/ is only dry-run: no image runs here). */
const RBAC_FILES = [
  'namespace.yaml',
  'serviceaccount.yaml',
  'clusterrole.yaml',
  'clusterrolebinding.yaml',
  'role.yaml',
  'rolebinding.yaml',
  'istiod-delegation-rolebinding.yaml',
];

let admin: KubeClient;
let asOperator: KubeClient;
let operator: TestOperator | undefined;
const rev = uniqueName('deploy');
const tag = uniqueName('deploy-tag');
const namespaces: string[] = [];

function kubectl(...args: string[]): string {
  try {
    return execFileSync(clusterBinary('kubectl'), ['--kubeconfig', testKubeconfigPath(), ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(' ')} failed: ${e.stderr || e.message}\n${e.stdout ?? ''}`);
  }
}

function withLogs<T>(fn: () => Promise<T>): () => Promise<T> {
  return async () => {
    try {
      return await fn();
    } catch (err) {
      const log = operator ? operatorLogTail(operator) : '(operator not started)';
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}\n--- operator log ---\n${log}\n${componentLogs(['kube-apiserver'])}`,
      );
    }
  };
}

function conditionOf(obj: WithConditions | undefined, type: string): Condition | undefined {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

async function forbidden(what: string, action: () => Promise<unknown>): Promise<ApiError> {
  try {
    await action();
  } catch (err) {
    if (err instanceof ApiError && err.code === 403) return err;
    throw new Error(
      `${what}: expected 403 Forbidden, got ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  throw new Error(`${what}: expected 403 Forbidden, but it was allowed`);
}

beforeAll(async () => {
  admin = testClient();
  asOperator = KubeClient.fromKubeConfig(testKubeConfig(), {
    userAgent: 'meshrev-tests',
    impersonate: SERVICE_ACCOUNT,
  });
  await installCrds(admin);
  for (const name of ['meshrev-system', 'istio-system']) {
    if (!(await admin.getOptional({ apiVersion: 'v1', kind: 'Namespace', name }))) {
      await admin.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    }
  }
});

afterAll(async () => {
  await admin.delete({ ...TAG, name: tag }).catch(() => undefined);
  await admin.delete({ ...CPR, name: rev }).catch(() => undefined);
  // The default tag the operator may have pointed at this suite's revision.
  const defaultTag = await admin.getOptional<Obj & { spec?: { revision?: string } }>({
    ...TAG,
    name: 'default',
  });
  if (defaultTag?.spec?.revision === rev)
    await admin.delete({ ...TAG, name: 'default' }).catch(() => undefined);
  await operator?.stop();
  for (const ns of namespaces) await deleteNamespace(testKubeConfig(), ns);
  // deploy/'s cluster-wide RBAC objects go; the shared namespaces stay for the other suites.
  for (const name of ['meshrev', 'meshrev-istiod-delegation']) {
    await admin.delete({ apiVersion: RBAC, kind: 'ClusterRoleBinding', name }).catch(() => undefined);
  }
  for (const name of ['meshrev', 'meshrev-istiod-delegation', 'meshrev-istiod-namespace-delegation']) {
    await admin.delete({ apiVersion: RBAC, kind: 'ClusterRole', name }).catch(() => undefined);
  }
  admin?.close();
  asOperator?.close();
});

describe('the install artefacts in deploy/', () => {
  test('are all accepted by a server-side dry-run apply of the kustomization', () => {
    // --force-conflicts: on this shared cluster the injector Service may be the ExternalName that dev
    // webhook routing owns; a real install takes the Service over the same way.
    const out = kubectl(
      'apply',
      '--server-side',
      '--force-conflicts',
      '--dry-run=server',
      '-k',
      join(repoRoot, 'deploy'),
    );
    const lines = out.trim().split('\n');
    for (const kind of [
      'customresourcedefinition.apiextensions.k8s.io/controlplanerevisions.meshrev.dev',
      'customresourcedefinition.apiextensions.k8s.io/revisiontags.meshrev.dev',
      'namespace/meshrev-system',
      'serviceaccount/meshrev',
      'clusterrole.rbac.authorization.k8s.io/meshrev',
      'clusterrole.rbac.authorization.k8s.io/meshrev-istiod-delegation',
      'clusterrole.rbac.authorization.k8s.io/meshrev-istiod-namespace-delegation',
      'clusterrolebinding.rbac.authorization.k8s.io/meshrev',
      'role.rbac.authorization.k8s.io/meshrev',
      'rolebinding.rbac.authorization.k8s.io/meshrev',
      'rolebinding.rbac.authorization.k8s.io/meshrev-istiod-delegation',
      'configmap/meshrev-channels',
      'service/meshrev-injector',
      'service/meshrev-metrics',
      'deployment.apps/meshrev',
      'poddisruptionbudget.policy/meshrev',
      'resourcequota/meshrev-critical-pods',
    ]) {
      expect(lines).toContain(`${kind} serverside-applied (server dry run)`);
    }
    expect(lines).toHaveLength(18);
  });

  test(
    'give the operator, running as its ServiceAccount, everything a revision, a tag and an injection need',
    withLogs(async () => {
      kubectl(
        'apply',
        '--server-side',
        '--force-conflicts',
        '--field-manager=meshrev-tests',
        ...RBAC_FILES.flatMap((f) => ['-f', join(repoRoot, 'deploy', f)]),
      );
      // The API server's RBAC cache follows the new bindings within moments.
      await waitFor('the ServiceAccount to be allowed to list revisions', async () => {
        await asOperator.list(CPR);
        return true;
      });

      operator = await startTestOperator(
        'deploy-rbac',
        ['--leader-elect=true', `--lease-name=${uniqueName('deploy-lease')}`],
        {
          impersonate: SERVICE_ACCOUNT,
        },
      );
      await waitFor('the impersonated operator to lead', () => operator?.isLeader());

      await admin.apply({ ...CPR, metadata: { name: rev }, spec: { version: '1.29.6' } } as KubeObject, {
        fieldManager: 'meshrev-tests',
        force: true,
      });
      await admin.apply({ ...TAG, metadata: { name: tag }, spec: { revision: rev } } as KubeObject, {
        fieldManager: 'meshrev-tests',
        force: true,
      });
      await waitFor(
        `${rev} Reconciled=True`,
        async () =>
          conditionOf(await admin.get<WithConditions>({ ...CPR, name: rev }), 'Reconciled')?.status ===
          'True',
        { timeoutMs: 45_000 },
      );
      await waitFor(
        `${tag} Reconciled=True`,
        async () =>
          conditionOf(await admin.get<WithConditions>({ ...TAG, name: tag }), 'Reconciled')?.status ===
          'True',
        { timeoutMs: 45_000 },
      );

      // istiod's RBAC: only creatable because the delegation ClusterRoles hold every rule in it.
      for (const [kind, namespace, name] of [
        ['ClusterRole', undefined, `istiod-clusterrole-${rev}-istio-system`],
        ['ClusterRoleBinding', undefined, `istiod-clusterrole-${rev}-istio-system`],
        ['Role', 'istio-system', `istiod-${rev}`],
        ['RoleBinding', 'istio-system', `istiod-${rev}`],
      ] as const) {
        const obj = await admin.getOptional<Obj>({
          apiVersion: RBAC,
          kind,
          name,
          ...(namespace ? { namespace } : {}),
        });
        expect({ kind, name, exists: obj !== undefined }).toEqual({ kind, name, exists: true });
      }
      expect(await admin.getOptional({ ...MWC, name: `istio-sidecar-injector-${rev}` })).toBeDefined();
      expect(await admin.getOptional({ ...MWC, name: `istio-revision-tag-${tag}` })).toBeDefined();

      // An injection through kube-apiserver, via the tag's webhook configuration.
      const ns = await createTestNamespace(testKubeConfig(), 'deploy-inject', { 'istio.io/rev': tag });
      namespaces.push(ns);
      const pod = (await admin.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: ns },
        spec: { containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
      } as KubeObject)) as PodShape;
      const names = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => c.name);
      expect(names).toContain('istio-proxy');

      // Nothing the operator asked for was refused along the way.
      const refused = sumMetric(await operator.metrics.expose(), 'meshrev_kube_api_requests_total', {
        code: '403',
      });
      expect(refused).toBe(0);
    }),
    110_000,
  );

  test(
    'refuse the operator what it must not do',
    withLogs(async () => {
      const ns = await createTestNamespace(testKubeConfig(), 'deploy-refused');
      namespaces.push(ns);
      const secret = {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'stolen', namespace: ns },
        data: {},
      };
      await forbidden('create a Secret outside meshrev-system and the control-plane namespaces', () =>
        asOperator.create(secret),
      );
      await forbidden('delete the injector Secret`s neighbours in kube-system', () =>
        asOperator.delete({ apiVersion: 'v1', kind: 'Secret', namespace: 'kube-system', name: 'anything' }),
      );
      await forbidden('take a Lease in another namespace', () =>
        asOperator.create({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: 'meshrev-leader', namespace: ns },
          spec: {},
        }),
      );
      const escalation = await forbidden('create a ClusterRole granting what it does not hold', () =>
        asOperator.create({
          apiVersion: RBAC,
          kind: 'ClusterRole',
          metadata: { name: uniqueName('meshrev-escalation') },
          rules: [{ apiGroups: [''], resources: ['pods/exec'], verbs: ['create'] }],
        } as KubeObject),
      );
      expect(escalation.message).toMatch(/attempting to grant RBAC permissions not currently held/);
      await forbidden('bind itself to cluster-admin', () =>
        asOperator.create({
          apiVersion: RBAC,
          kind: 'ClusterRoleBinding',
          metadata: { name: uniqueName('meshrev-escalation') },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
          subjects: [{ kind: 'ServiceAccount', name: 'meshrev', namespace: 'meshrev-system' }],
        } as KubeObject),
      );
      await forbidden('create pods', () =>
        asOperator.create({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'shell', namespace: ns },
          spec: { containers: [{ name: 'c', image: 'example.invalid/shell:1' }] },
        } as KubeObject),
      );
      await forbidden('delete a namespace', () =>
        asOperator.delete({ apiVersion: 'v1', kind: 'Namespace', name: ns }),
      );
      await forbidden('create ControlPlaneRevisions (users do)', () =>
        asOperator.create({
          ...CPR,
          metadata: { name: uniqueName('rogue') },
          spec: { version: '1.29.6' },
        } as KubeObject),
      );
    }),
  );
});
