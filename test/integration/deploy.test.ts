// The install artefacts on the real control plane: everything in deploy/ passes a server-side dry run, and
// the operator, run with exactly the RBAC in deploy/ (as its ServiceAccount, through impersonation),
// reconciles a revision and a tag (binding istiod to the shared istiod ClusterRoles, which passes the API
// server's bind check without meshrev holding istiod's permissions), upgrades the per-revision roles an
// earlier release created, and serves injections through kube-apiserver, while what it must not do (read
// Secrets outside meshrev-system, bind any other role) is refused.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import type { DesiredObject } from '../../src/controllers/common/objects.js';
import { desiredRevisionObjects } from '../../src/controllers/revision/desired.js';
import {
  ISTIOD_SHARED_CLUSTER_ROLES,
  istiodClusterRules,
  istiodRoleRules,
} from '../../src/controllers/revision/istiod-rbac.js';
import { API_GROUP_VERSION } from '../../src/crds/constants.js';
import { parseControlPlaneRevision } from '../../src/crds/controlplanerevision.js';
import { ApiError, KubeClient, type Impersonation } from '../../src/runtime/kube.js';
import { registerResource } from '../../src/runtime/resources.js';
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
  'istiod-clusterroles.yaml',
  'clusterrolebinding.yaml',
  'role.yaml',
  'rolebinding.yaml',
];
const VERSION = '1.29.6';

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

registerResource({
  apiVersion: 'authorization.k8s.io/v1',
  kind: 'SubjectAccessReview',
  plural: 'subjectaccessreviews',
  namespaced: false,
});

interface Access {
  group?: string;
  resource: string;
  subresource?: string;
  verb: string;
  namespace?: string;
}

/** Whether the API server's authorizer allows `serviceAccount` (namespace/name) `access`: a SubjectAccessReview. */
async function allowed(serviceAccount: string, access: Access): Promise<boolean> {
  const [namespace] = serviceAccount.split('/');
  const review = await admin.create<Obj & { status?: { allowed?: boolean } }>({
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    metadata: {},
    spec: {
      user: `system:serviceaccount:${serviceAccount.replace('/', ':')}`,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
      resourceAttributes: { group: '', ...access },
    },
  } as Obj);
  return review.status?.allowed === true;
}

/**
 * The istiod RBAC an earlier meshrev release created for `cpr`: a ClusterRole and a Role of its own, bound
 * by the bindings of today's names, labelled and owned like every object the revision controls.
 */
function legacyIstiodRbac(cpr: KubeObject): DesiredObject[] {
  const parsed = parseControlPlaneRevision(cpr);
  if (!parsed.ok) throw new Error(parsed.error);
  const current = desiredRevisionObjects(parsed.value, {
    resolvedVersion: VERSION,
    injector: { serviceName: 'meshrev-injector', serviceNamespace: 'meshrev-system', port: 443 },
    caBundle: undefined,
    operatorName: 'meshrev',
  });
  const clusterBinding = current.find(
    (o) => o.kind === 'ClusterRoleBinding' && o.metadata.name.startsWith('istiod-clusterrole-'),
  )!;
  const roleBinding = current.find((o) => o.kind === 'RoleBinding')!;
  const rbac = 'rbac.authorization.k8s.io';
  return [
    {
      ...clusterBinding,
      kind: 'ClusterRole',
      roleRef: undefined,
      subjects: undefined,
      rules: istiodClusterRules({ version: VERSION, analysis: false }),
    },
    {
      ...clusterBinding,
      roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: clusterBinding.metadata.name },
    },
    { ...roleBinding, kind: 'Role', roleRef: undefined, subjects: undefined, rules: istiodRoleRules() },
    { ...roleBinding, roleRef: { apiGroup: rbac, kind: 'Role', name: roleBinding.metadata.name } },
  ].map((object) => JSON.parse(JSON.stringify(object)) as DesiredObject);
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
  await admin
    .delete({ apiVersion: RBAC, kind: 'ClusterRoleBinding', name: 'meshrev' })
    .catch(() => undefined);
  for (const name of ['meshrev', ...ISTIOD_SHARED_CLUSTER_ROLES]) {
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
      ...ISTIOD_SHARED_CLUSTER_ROLES.map((name) => `clusterrole.rbac.authorization.k8s.io/${name}`),
      'clusterrolebinding.rbac.authorization.k8s.io/meshrev',
      'role.rbac.authorization.k8s.io/meshrev',
      'rolebinding.rbac.authorization.k8s.io/meshrev',
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
    'give the operator, running as its ServiceAccount, everything a revision, a tag and an injection need, upgrading the per-revision istiod roles of earlier releases',
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

      // What an earlier release left behind: a ClusterRole and a Role per revision, bound by bindings
      // whose (immutable) roleRef names them.
      const cpr = await admin.apply({ ...CPR, metadata: { name: rev }, spec: { version: VERSION } } as Obj, {
        fieldManager: 'meshrev-tests',
        force: true,
      });
      for (const legacy of legacyIstiodRbac(cpr)) await admin.create(legacy as KubeObject);

      operator = await startTestOperator(
        'deploy-rbac',
        ['--leader-elect=true', `--lease-name=${uniqueName('deploy-lease')}`],
        {
          impersonate: SERVICE_ACCOUNT,
        },
      );
      await waitFor('the impersonated operator to lead', () => operator?.isLeader());

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

      // istiod's bindings now name the shared roles; the per-revision roles are pruned.
      const roleRefs: Record<string, string | undefined> = {};
      for (const [kind, namespace, name] of [
        ['ClusterRoleBinding', undefined, `istiod-clusterrole-${rev}-istio-system`],
        ['RoleBinding', 'istio-system', `istiod-${rev}`],
      ] as const) {
        const binding = await admin.getOptional<Obj & { roleRef?: { kind: string; name: string } }>({
          apiVersion: RBAC,
          kind,
          name,
          ...(namespace ? { namespace } : {}),
        });
        roleRefs[kind] = binding?.roleRef ? `${binding.roleRef.kind}/${binding.roleRef.name}` : undefined;
      }
      expect(roleRefs).toEqual({
        ClusterRoleBinding: 'ClusterRole/meshrev-istiod',
        RoleBinding: 'ClusterRole/meshrev-istiod-namespace',
      });
      await waitFor('the per-revision ClusterRole and Role of the earlier release to be pruned', async () => {
        const role = await admin.getOptional({
          apiVersion: RBAC,
          kind: 'Role',
          namespace: 'istio-system',
          name: `istiod-${rev}`,
        });
        const clusterRole = await admin.getOptional({
          apiVersion: RBAC,
          kind: 'ClusterRole',
          name: `istiod-clusterrole-${rev}-istio-system`,
        });
        return role === undefined && clusterRole === undefined;
      });
      expect(await admin.getOptional({ ...MWC, name: `istio-sidecar-injector-${rev}` })).toBeDefined();
      expect(await admin.getOptional({ ...MWC, name: `istio-revision-tag-${tag}` })).toBeDefined();

      // istiod really gets its permissions through the bindings, Secrets included, where Istio's chart
      // gives them: reads cluster-wide, writes in its own namespace only.
      const istiod = `istio-system/istiod-${rev}`;
      await waitFor('istiod`s ServiceAccount to be allowed to list Secrets cluster-wide', () =>
        allowed(istiod, { resource: 'secrets', verb: 'list' }),
      );
      const istioGroup = 'networking.istio.io';
      expect({
        watchIstioConfig: await allowed(istiod, {
          group: istioGroup,
          resource: 'virtualservices',
          verb: 'watch',
        }),
        patchWebhooks: await allowed(istiod, {
          group: 'admissionregistration.k8s.io',
          resource: 'mutatingwebhookconfigurations',
          verb: 'patch',
        }),
        createSecretInOwnNamespace: await allowed(istiod, {
          resource: 'secrets',
          verb: 'create',
          namespace: 'istio-system',
        }),
        createSecretElsewhere: await allowed(istiod, {
          resource: 'secrets',
          verb: 'create',
          namespace: 'kube-system',
        }),
        // Only with PILOT_ENABLE_ANALYSIS=true (meshrev-istiod-analysis is not bound here).
        analysisStatusWrites: await allowed(istiod, {
          group: istioGroup,
          resource: 'virtualservices',
          subresource: 'status',
          verb: 'update',
        }),
        // And meshrev itself, for contrast, may not even read them.
        meshrevListsSecrets: await allowed('meshrev-system/meshrev', { resource: 'secrets', verb: 'list' }),
      }).toEqual({
        watchIstioConfig: true,
        patchWebhooks: true,
        createSecretInOwnNamespace: true,
        createSecretElsewhere: false,
        analysisStatusWrites: false,
        meshrevListsSecrets: false,
      });

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
      await forbidden('read a Secret in an unrelated namespace', () =>
        asOperator.get({ apiVersion: 'v1', kind: 'Secret', namespace: ns, name: 'anything' }),
      );
      await forbidden('read a Secret in the control-plane namespace', () =>
        asOperator.get({
          apiVersion: 'v1',
          kind: 'Secret',
          namespace: 'istio-system',
          name: 'istio-ca-secret',
        }),
      );
      await forbidden('list Secrets cluster-wide', () =>
        asOperator.list({ apiVersion: 'v1', kind: 'Secret' }),
      );
      await forbidden('create a ClusterRole, even one granting nothing it lacks', () =>
        asOperator.create({
          apiVersion: RBAC,
          kind: 'ClusterRole',
          metadata: { name: uniqueName('meshrev-escalation') },
          rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }],
        } as KubeObject),
      );
      await forbidden('change a shared istiod ClusterRole', () =>
        asOperator.apply(
          {
            apiVersion: RBAC,
            kind: 'ClusterRole',
            metadata: { name: 'meshrev-istiod' },
            rules: [{ apiGroups: [''], resources: ['pods/exec'], verbs: ['create'] }],
          } as KubeObject,
          { fieldManager: 'meshrev-tests', force: true },
        ),
      );
      const meshrevSubject = [{ kind: 'ServiceAccount', name: 'meshrev', namespace: 'meshrev-system' }];
      // (Binding its own ClusterRole `meshrev` passes: RBAC lets anyone grant what it already holds.)
      for (const roleName of ['cluster-admin', 'admin', 'system:controller:namespace-controller']) {
        const refusal = await forbidden(`bind ClusterRole ${roleName}`, () =>
          asOperator.create({
            apiVersion: RBAC,
            kind: 'ClusterRoleBinding',
            metadata: { name: uniqueName('meshrev-escalation') },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
            subjects: meshrevSubject,
          } as KubeObject),
        );
        expect(refusal.message).toMatch(/attempting to grant RBAC permissions not currently held/);
      }
      await forbidden('bind ClusterRole edit in a namespace', () =>
        asOperator.create({
          apiVersion: RBAC,
          kind: 'RoleBinding',
          metadata: { name: uniqueName('meshrev-escalation'), namespace: ns },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' },
          subjects: meshrevSubject,
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
