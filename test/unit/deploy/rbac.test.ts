import { join } from 'node:path';

import { desiredRevisionObjects } from '../../../src/controllers/revision/desired.js';
import {
  gatewayControllerRules,
  ISTIOD_SHARED_CLUSTER_ROLES,
  istiodClusterRules,
  istiodRoleRules,
  sharedIstiodClusterRoles,
} from '../../../src/controllers/revision/istiod-rbac.js';
import { desiredTagObjects } from '../../../src/controllers/tag/desired.js';
import type { DesiredObject } from '../../../src/controllers/common/objects.js';
import { SUPPORTED_MINOR_VERSIONS } from '../../../src/controllers/common/versions.js';
import {
  parseControlPlaneRevision,
  type ControlPlaneRevision,
} from '../../../src/crds/controlplanerevision.js';
import { parseRevisionTag } from '../../../src/crds/revisiontag.js';
import { apiGroupOf, resourceInfo } from '../../../src/runtime/resources.js';
import { DEPLOY_DIR, findObject, type KubeObject, readObjects } from './manifests.js';
import { allows, breakDown, hasWildcard, type PolicyRule, uncoveredRules } from './rbac-rules.js';

const OPERATOR_NAMESPACE = 'meshrev-system';
const CONTROL_PLANE_NAMESPACE = 'istio-system';
const MANAGE = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const WRITE = ['create', 'update', 'patch', 'delete', 'deletecollection'];
const READ = ['get', 'list', 'watch'];

const meshrevRbacObjects = [
  'clusterrole.yaml',
  'clusterrolebinding.yaml',
  'role.yaml',
  'rolebinding.yaml',
].flatMap((file) => readObjects(join(DEPLOY_DIR, file)));
const istiodRoles = readObjects(join(DEPLOY_DIR, 'istiod-clusterroles.yaml'));
const rbacObjects = [...meshrevRbacObjects, ...istiodRoles];

function rulesOf(object: KubeObject): PolicyRule[] {
  return (object['rules'] as PolicyRule[] | undefined) ?? [];
}

interface Binding {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: Array<{ kind: string; name: string; namespace?: string }>;
}

function boundToMeshrev(binding: KubeObject): boolean {
  return (binding as unknown as Binding).subjects.some(
    (subject) =>
      subject.kind === 'ServiceAccount' &&
      subject.name === 'meshrev' &&
      subject.namespace === OPERATOR_NAMESPACE,
  );
}

function roleRules(kind: string, name: string, namespace?: string): PolicyRule[] {
  return rulesOf(findObject(rbacObjects, kind, name, namespace));
}

/** What meshrev's ServiceAccount may do cluster-wide (ClusterRoleBindings only). */
function clusterWideRules(): PolicyRule[] {
  return rbacObjects
    .filter((object) => object.kind === 'ClusterRoleBinding' && boundToMeshrev(object))
    .flatMap((binding) => roleRules('ClusterRole', (binding as unknown as Binding).roleRef.name));
}

/** What meshrev's ServiceAccount may do in `namespace`: cluster-wide rules plus RoleBindings there. */
function rulesInNamespace(namespace: string): PolicyRule[] {
  const local = rbacObjects
    .filter(
      (object) =>
        object.kind === 'RoleBinding' && object.metadata.namespace === namespace && boundToMeshrev(object),
    )
    .flatMap((binding) => {
      const { roleRef } = binding as unknown as Binding;
      return roleRef.kind === 'ClusterRole'
        ? roleRules('ClusterRole', roleRef.name)
        : roleRules('Role', roleRef.name, namespace);
    });
  return [...clusterWideRules(), ...local];
}

/** The API server's bind check: `bind` on the roleRef, by name (resourceNames apply), in that namespace. */
function mayBind(rules: readonly PolicyRule[], roleRef: Binding['roleRef']): boolean {
  const resource = roleRef.kind === 'ClusterRole' ? 'clusterroles' : 'roles';
  return rules.some(
    (rule) =>
      (rule.apiGroups ?? []).includes('rbac.authorization.k8s.io') &&
      (rule.resources ?? []).includes(resource) &&
      rule.verbs.includes('bind') &&
      ((rule.resourceNames ?? []).length === 0 || (rule.resourceNames ?? []).includes(roleRef.name)),
  );
}

function revision(spec: Record<string, unknown>): ControlPlaneRevision {
  const parsed = parseControlPlaneRevision({
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'ControlPlaneRevision',
    metadata: { name: 'asm-1', uid: '4a1e6c1b-1111-4c3a-9d7e-2b1f00000001', generation: 1 },
    spec,
  });
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

interface RevisionCase {
  description: string;
  version: string;
  analysis: boolean;
  gatewayController: boolean;
  namespace: string;
  istiod: Record<string, unknown>;
}

/** One patch release per supported minor, as the channel table and the conformance data use them. */
const VERSIONS = ['1.28.10', '1.29.6', '1.30.3'];

const revisionCases: RevisionCase[] = VERSIONS.flatMap((version) => [
  {
    description: `Istio ${version} with default settings`,
    version,
    analysis: false,
    gatewayController: false,
    namespace: CONTROL_PLANE_NAMESPACE,
    istiod: {},
  },
  {
    description: `Istio ${version} in another namespace with analysis, the gateway deployment controller and autoscaling on`,
    version,
    analysis: true,
    gatewayController: true,
    namespace: 'mesh-canary',
    istiod: {
      env: { PILOT_ENABLE_ANALYSIS: 'true', PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER: 'true' },
      autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 4 },
    },
  },
]);

function renderedFor(testCase: RevisionCase): DesiredObject[] {
  return desiredRevisionObjects(
    revision({ version: testCase.version, namespace: testCase.namespace, istiod: testCase.istiod }),
    {
      resolvedVersion: testCase.version,
      injector: { serviceName: 'meshrev-injector', serviceNamespace: OPERATOR_NAMESPACE, port: 443 },
      caBundle: undefined,
      operatorName: 'meshrev',
    },
  );
}

function bindingsOf(objects: DesiredObject[], kind: 'ClusterRoleBinding' | 'RoleBinding'): Binding[] {
  return objects.filter((object) => object.kind === kind).map((object) => object as unknown as Binding);
}

/** What the revision's istiod may do through the bindings meshrev renders, by shipped ClusterRole. */
function grantedToIstiod(objects: DesiredObject[], kind: 'ClusterRoleBinding' | 'RoleBinding'): PolicyRule[] {
  return bindingsOf(objects, kind).flatMap((binding) => roleRules('ClusterRole', binding.roleRef.name));
}

/** Rules as a set of single (group, resource, verb) permissions, for comparing what two rule lists grant. */
function permissions(rules: readonly PolicyRule[]): string[] {
  const set = new Set(
    rules.flatMap(breakDown).map((rule) => `${rule.apiGroups![0]}/${rule.resources![0]}:${rule.verbs[0]}`),
  );
  return [...set].sort();
}

describe('meshrev ClusterRole (its own permissions)', () => {
  const own = roleRules('ClusterRole', 'meshrev');

  it('uses no wildcard in groups, resources or verbs', () => {
    expect(own.filter(hasWildcard)).toEqual([]);
  });

  it('grants no access to Secrets at all', () => {
    expect(
      own.filter((rule) => (rule.resources ?? []).some((resource) => resource.startsWith('secrets'))),
    ).toEqual([]);
  });

  it.each([
    ['meshrev.dev', 'controlplanerevisions', ['get', 'list', 'watch', 'update', 'patch']],
    // create: the automatic `default` tag (test/integration/deploy.test.ts runs as the ServiceAccount).
    ['meshrev.dev', 'revisiontags', ['get', 'list', 'watch', 'create', 'update', 'patch']],
    ['meshrev.dev', 'controlplanerevisions/status', ['get', 'update', 'patch']],
    ['meshrev.dev', 'revisiontags/status', ['get', 'update', 'patch']],
    ['meshrev.dev', 'controlplanerevisions/finalizers', ['update']],
    ['meshrev.dev', 'revisiontags/finalizers', ['update']],
    ['', 'namespaces', READ],
    ['', 'pods', READ],
    ['', 'nodes', READ],
    // The injector layers Istio's ProxyConfig resources into each pod's proxy config, as istiod does.
    ['networking.istio.io', 'proxyconfigs', READ],
    ['', 'events', ['create', 'patch']],
    ['events.k8s.io', 'events', ['create', 'patch']],
    ['', 'services', MANAGE],
    ['', 'serviceaccounts', MANAGE],
    ['', 'configmaps', MANAGE],
    ['apps', 'deployments', MANAGE],
    ['policy', 'poddisruptionbudgets', MANAGE],
    ['autoscaling', 'horizontalpodautoscalers', MANAGE],
    ['admissionregistration.k8s.io', 'mutatingwebhookconfigurations', MANAGE],
    ['admissionregistration.k8s.io', 'validatingwebhookconfigurations', MANAGE],
    ['rbac.authorization.k8s.io', 'clusterrolebindings', MANAGE],
    ['rbac.authorization.k8s.io', 'rolebindings', MANAGE],
    // Only to prune the per-revision roles earlier releases created (informer caches + delete).
    ['rbac.authorization.k8s.io', 'clusterroles', [...READ, 'delete']],
    ['rbac.authorization.k8s.io', 'roles', [...READ, 'delete']],
  ])('lets the operator use %s %s with %j', (group, resource, verbs) => {
    expect(verbs.filter((verb) => !allows(own, group, resource, verb))).toEqual([]);
  });

  it('does not let the operator create its own CRD objects, write roles, or change pods, nodes or namespaces', () => {
    const forbidden: Array<[string, string, string]> = [
      ['meshrev.dev', 'controlplanerevisions', 'create'],
      ['meshrev.dev', 'revisiontags', 'delete'],
      ['rbac.authorization.k8s.io', 'clusterroles', 'create'],
      ['rbac.authorization.k8s.io', 'clusterroles', 'update'],
      ['rbac.authorization.k8s.io', 'clusterroles', 'patch'],
      ['rbac.authorization.k8s.io', 'clusterroles', 'escalate'],
      ['rbac.authorization.k8s.io', 'roles', 'create'],
      ['rbac.authorization.k8s.io', 'roles', 'update'],
      ['rbac.authorization.k8s.io', 'roles', 'bind'],
      ['rbac.authorization.k8s.io', 'clusterroles', 'bind'],
      ['', 'pods', 'patch'],
      ['', 'nodes', 'update'],
      ['', 'namespaces', 'patch'],
      ['apps', 'statefulsets', 'patch'],
      ['apps', 'daemonsets', 'patch'],
    ];
    expect(forbidden.filter(([group, resource, verb]) => allows(own, group, resource, verb))).toEqual([]);
  });

  it('may bind exactly the shared istiod ClusterRoles, by name, and no other role', () => {
    const bindRules = own.filter((rule) => rule.verbs.includes('bind'));
    expect(bindRules).toEqual([
      {
        apiGroups: ['rbac.authorization.k8s.io'],
        resources: ['clusterroles'],
        resourceNames: [...ISTIOD_SHARED_CLUSTER_ROLES],
        verbs: ['bind'],
      },
    ]);
    const roleRef = (name: string): Binding['roleRef'] => ({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name,
    });
    expect(ISTIOD_SHARED_CLUSTER_ROLES.filter((name) => !mayBind(own, roleRef(name)))).toEqual([]);
    expect(
      ['cluster-admin', 'admin', 'edit', 'meshrev', 'system:node'].filter((name) =>
        mayBind(own, roleRef(name)),
      ),
    ).toEqual([]);
    expect(mayBind(own, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'meshrev' })).toBe(
      false,
    );
  });
});

describe('meshrev RBAC as a whole', () => {
  it('never grants escalate or impersonate, and bind only with resource names', () => {
    const rules = meshrevRbacObjects.flatMap(rulesOf);
    expect(
      rules.flatMap((rule) => rule.verbs).filter((verb) => ['escalate', 'impersonate', '*'].includes(verb)),
    ).toEqual([]);
    expect(
      rules.filter((rule) => rule.verbs.includes('bind') && (rule.resourceNames ?? []).length === 0),
    ).toEqual([]);
  });

  it('never uses a wildcard API group', () => {
    expect(rbacObjects.flatMap(rulesOf).filter((rule) => (rule.apiGroups ?? []).includes('*'))).toEqual([]);
  });

  it.each([
    ['cluster-wide', clusterWideRules()],
    [CONTROL_PLANE_NAMESPACE, rulesInNamespace(CONTROL_PLANE_NAMESPACE)],
    ['kube-system', rulesInNamespace('kube-system')],
    ['an application namespace', rulesInNamespace('team-a')],
  ])('gives meshrev no access to Secrets %s', (_where, rules) => {
    expect([...READ, ...WRITE].filter((verb) => allows(rules, '', 'secrets', verb))).toEqual([]);
  });

  it('lets meshrev manage Secrets and Leases in its own namespace through the Role', () => {
    const rules = rulesInNamespace(OPERATOR_NAMESPACE);
    expect(
      ['get', 'list', 'watch', 'create', 'update', 'patch'].filter(
        (verb) => !allows(rules, '', 'secrets', verb),
      ),
    ).toEqual([]);
    expect(
      ['get', 'create', 'update'].filter((verb) => !allows(rules, 'coordination.k8s.io', 'leases', verb)),
    ).toEqual([]);
  });

  it('binds its own roles to the meshrev ServiceAccount only, and none of istiod`s roles', () => {
    const bindings = meshrevRbacObjects.filter((object) => object.kind.endsWith('Binding'));
    expect(bindings.every(boundToMeshrev)).toBe(true);
    expect(bindings.every((binding) => (binding as unknown as Binding).subjects.length === 1)).toBe(true);
    expect(
      bindings.map((binding) => {
        const { roleRef } = binding as unknown as Binding;
        return `${roleRef.kind}/${binding.metadata.namespace ?? ''}/${roleRef.name}`;
      }),
    ).toEqual(['ClusterRole//meshrev', `Role/${OPERATOR_NAMESPACE}/meshrev`]);
  });

  it('does not hold istiod`s permissions itself (it could not create istiod`s roles)', () => {
    const uncovered = permissions(uncoveredRules(clusterWideRules(), sharedIstiodClusterRoles()[0]!.rules));
    expect(uncovered).toEqual(expect.arrayContaining(['/secrets:get', '/secrets:list', '/secrets:watch']));
  });
});

describe('the shipped istiod ClusterRoles (deploy/istiod-clusterroles.yaml)', () => {
  it('are exactly what the rule builders in istiod-rbac.ts produce', () => {
    const shipped = istiodRoles.map((role) => ({
      kind: role.kind,
      name: role.metadata.name,
      rules: role['rules'],
    }));
    const expected = sharedIstiodClusterRoles().map(({ name, rules }) => ({
      kind: 'ClusterRole',
      name,
      rules,
    }));
    expect(shipped).toEqual(expected);
  });

  it('are labelled like meshrev`s other objects and named as meshrev`s ClusterRole may bind them', () => {
    for (const role of istiodRoles) {
      expect(role.metadata.labels).toEqual({
        'app.kubernetes.io/name': 'meshrev',
        'app.kubernetes.io/part-of': 'meshrev',
      });
    }
    expect(istiodRoles.map((role) => role.metadata.name)).toEqual([...ISTIOD_SHARED_CLUSTER_ROLES]);
  });

  it('cover the supported Istio versions the rule tests run', () => {
    expect(VERSIONS.map((version) => version.split('.').slice(0, 2).join('.'))).toEqual([
      ...SUPPORTED_MINOR_VERSIONS,
    ]);
  });
});

describe('istiod`s permissions through the bindings meshrev renders', () => {
  it.each(revisionCases)('are only bindings meshrev may create, for $description', (testCase) => {
    const objects = renderedFor(testCase);
    expect(objects.filter((object) => object.kind === 'ClusterRole' || object.kind === 'Role')).toEqual([]);
    const bindings = [...bindingsOf(objects, 'ClusterRoleBinding'), ...bindingsOf(objects, 'RoleBinding')];
    expect(bindings.length).toBeGreaterThan(0);
    for (const binding of bindings) {
      expect(binding.roleRef.kind).toBe('ClusterRole');
      expect(mayBind(clusterWideRules(), binding.roleRef)).toBe(true);
      expect(istiodRoles.map((role) => role.metadata.name)).toContain(binding.roleRef.name);
      expect(binding.subjects).toEqual([
        { kind: 'ServiceAccount', name: 'istiod-asm-1', namespace: testCase.namespace },
      ]);
    }
  });

  it.each(revisionCases)(
    'include everything Istio`s chart grants istiod cluster-wide, for $description',
    (testCase) => {
      const chart = [
        ...istiodClusterRules({ version: testCase.version, analysis: testCase.analysis }),
        ...(testCase.gatewayController ? gatewayControllerRules() : []),
      ];
      expect(uncoveredRules(grantedToIstiod(renderedFor(testCase), 'ClusterRoleBinding'), chart)).toEqual([]);
    },
  );

  it.each(revisionCases)(
    'grant nothing cluster-wide that the chart of some supported version does not grant, for $description',
    (testCase) => {
      const anyVersion = VERSIONS.flatMap((version) =>
        istiodClusterRules({ version, analysis: testCase.analysis }),
      );
      const gateway = testCase.gatewayController ? gatewayControllerRules() : [];
      const granted = permissions(grantedToIstiod(renderedFor(testCase), 'ClusterRoleBinding'));
      const allowed = new Set(permissions([...anyVersion, ...gateway]));
      expect(granted.filter((permission) => !allowed.has(permission))).toEqual([]);
    },
  );

  it.each(revisionCases)(
    'grant exactly the chart`s namespaced Role, in the revision`s namespace only, for $description',
    (testCase) => {
      const objects = renderedFor(testCase);
      const roleBindings = objects.filter((object) => object.kind === 'RoleBinding');
      expect(roleBindings.map((binding) => binding.metadata.namespace)).toEqual([testCase.namespace]);
      expect(permissions(grantedToIstiod(objects, 'RoleBinding'))).toEqual(permissions(istiodRoleRules()));
    },
  );

  it('bind the analysis and gateway-controller roles only when those features are on', () => {
    const roleNames = (testCase: RevisionCase) =>
      bindingsOf(renderedFor(testCase), 'ClusterRoleBinding').map((binding) => binding.roleRef.name);
    expect(roleNames(revisionCases[0]!)).toEqual(['meshrev-istiod']);
    expect(roleNames(revisionCases[1]!)).toEqual([
      'meshrev-istiod',
      'meshrev-istiod-analysis',
      'meshrev-istiod-gateway-controller',
    ]);
  });
});

describe('applying what meshrev renders', () => {
  const tag = parseRevisionTag({
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'RevisionTag',
    metadata: { name: 'default', uid: '4a1e6c1b-1111-4c3a-9d7e-2b1f00000002' },
    spec: { revision: 'asm-1' },
  });
  if (!tag.ok) throw new Error(tag.error);
  const tagObjects = desiredTagObjects(tag.value, {
    injector: { serviceName: 'meshrev-injector', serviceNamespace: OPERATOR_NAMESPACE, port: 443 },
    caBundle: undefined,
    operatorName: 'meshrev',
  });
  const kinds = new Map<string, DesiredObject>();
  for (const object of [...revisionCases.flatMap(renderedFor), ...tagObjects])
    kinds.set(`${object.apiVersion}/${object.kind}`, object);

  it.each([...kinds.entries()])('lets meshrev read and write every %s it renders', (_kind, object) => {
    const info = resourceInfo(object);
    const rules =
      object.metadata.namespace === undefined
        ? clusterWideRules()
        : rulesInNamespace(object.metadata.namespace);
    expect(MANAGE.filter((verb) => !allows(rules, apiGroupOf(object.apiVersion), info.plural, verb))).toEqual(
      [],
    );
  });
});
