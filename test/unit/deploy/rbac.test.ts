import { join } from 'node:path';

import { desiredRevisionObjects } from '../../../src/controllers/revision/desired.js';
import { desiredTagObjects } from '../../../src/controllers/tag/desired.js';
import type { DesiredObject } from '../../../src/controllers/common/objects.js';
import {
  parseControlPlaneRevision,
  type ControlPlaneRevision,
} from '../../../src/crds/controlplanerevision.js';
import { parseRevisionTag } from '../../../src/crds/revisiontag.js';
import { apiGroupOf, resourceInfo } from '../../../src/runtime/resources.js';
import { DEPLOY_DIR, findObject, type KubeObject, readObjects } from './manifests.js';
import { allows, hasWildcard, type PolicyRule, uncoveredRules } from './rbac-rules.js';

const OPERATOR_NAMESPACE = 'meshrev-system';
const CONTROL_PLANE_NAMESPACE = 'istio-system';
const MANAGE = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const WRITE = ['create', 'update', 'patch', 'delete', 'deletecollection'];

const rbacObjects = [
  'clusterrole.yaml',
  'clusterrolebinding.yaml',
  'role.yaml',
  'rolebinding.yaml',
  'istiod-delegation-rolebinding.yaml',
].flatMap((file) => readObjects(join(DEPLOY_DIR, file)));

function rulesOf(object: KubeObject): PolicyRule[] {
  return (object['rules'] as PolicyRule[] | undefined) ?? [];
}

interface Binding {
  roleRef: { kind: string; name: string };
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
  istiod: Record<string, unknown>;
}

const revisionCases: RevisionCase[] = ['1.28.10', '1.29.6', '1.30.3'].flatMap((version) => [
  { description: `Istio ${version} with default settings`, version, istiod: {} },
  {
    description: `Istio ${version} with analysis, the gateway deployment controller and autoscaling on`,
    version,
    istiod: {
      env: { PILOT_ENABLE_ANALYSIS: 'true', PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER: 'true' },
      autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 4 },
    },
  },
]);

function renderedFor(testCase: RevisionCase): DesiredObject[] {
  return desiredRevisionObjects(
    revision({
      version: testCase.version,
      namespace: CONTROL_PLANE_NAMESPACE,
      istiod: testCase.istiod,
    }),
    {
      resolvedVersion: testCase.version,
      injector: { serviceName: 'meshrev-injector', serviceNamespace: OPERATOR_NAMESPACE, port: 443 },
      caBundle: undefined,
      operatorName: 'meshrev',
    },
  );
}

const allRendered = revisionCases.flatMap(renderedFor);
const istiodClusterRules = allRendered
  .filter((object) => object.kind === 'ClusterRole')
  .flatMap((role) => role['rules'] as PolicyRule[]);
const istiodNamespacedRules = allRendered
  .filter((object) => object.kind === 'Role')
  .flatMap((role) => role['rules'] as PolicyRule[]);

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
    ['', 'namespaces', ['get', 'list', 'watch']],
    ['', 'pods', ['get', 'list', 'watch']],
    ['', 'nodes', ['get', 'list', 'watch']],
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
    ['rbac.authorization.k8s.io', 'clusterroles', MANAGE],
    ['rbac.authorization.k8s.io', 'clusterrolebindings', MANAGE],
    ['rbac.authorization.k8s.io', 'roles', MANAGE],
    ['rbac.authorization.k8s.io', 'rolebindings', MANAGE],
  ])('lets the operator use %s %s with %j', (group, resource, verbs) => {
    expect(verbs.filter((verb) => !allows(own, group, resource, verb))).toEqual([]);
  });

  it('does not let the operator create its own CRD objects or change pods, nodes or namespaces', () => {
    const forbidden: Array<[string, string, string]> = [
      ['meshrev.dev', 'controlplanerevisions', 'create'],
      ['meshrev.dev', 'revisiontags', 'delete'],
      ['', 'pods', 'patch'],
      ['', 'nodes', 'update'],
      ['', 'namespaces', 'patch'],
      ['apps', 'statefulsets', 'patch'],
      ['apps', 'daemonsets', 'patch'],
    ];
    expect(forbidden.filter(([group, resource, verb]) => allows(own, group, resource, verb))).toEqual([]);
  });
});

describe('meshrev RBAC as a whole', () => {
  it('never grants escalate, bind or impersonate', () => {
    const verbs = rbacObjects.flatMap(rulesOf).flatMap((rule) => rule.verbs);
    expect(verbs.filter((verb) => ['escalate', 'bind', 'impersonate'].includes(verb))).toEqual([]);
  });

  it('never uses a wildcard API group', () => {
    expect(rbacObjects.flatMap(rulesOf).filter((rule) => (rule.apiGroups ?? []).includes('*'))).toEqual([]);
  });

  it('never lets meshrev write Secrets cluster-wide', () => {
    const rules = clusterWideRules();
    expect(WRITE.filter((verb) => allows(rules, '', 'secrets', verb))).toEqual([]);
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

  it('binds every ClusterRole and Role it defines to the meshrev ServiceAccount and nothing else', () => {
    const bindings = rbacObjects.filter((object) => object.kind.endsWith('Binding'));
    const roles = rbacObjects.filter((object) => object.kind === 'ClusterRole' || object.kind === 'Role');
    expect(bindings.every(boundToMeshrev)).toBe(true);
    expect(bindings.every((binding) => (binding as unknown as Binding).subjects.length === 1)).toBe(true);
    const referenced = new Set(bindings.map((binding) => (binding as unknown as Binding).roleRef.name));
    expect(roles.map((role) => role.metadata.name).filter((name) => !referenced.has(name))).toEqual([]);
  });
});

describe('delegating istiod permissions without escalate', () => {
  it.each(revisionCases)('lets meshrev create every ClusterRole it renders for $description', (testCase) => {
    const clusterRoles = renderedFor(testCase).filter((object) => object.kind === 'ClusterRole');
    expect(clusterRoles.length).toBeGreaterThan(0);
    for (const role of clusterRoles) {
      expect({
        role: role.metadata.name,
        uncovered: uncoveredRules(clusterWideRules(), role['rules'] as PolicyRule[]),
      }).toEqual({ role: role.metadata.name, uncovered: [] });
    }
  });

  it.each(revisionCases)(
    'lets meshrev create the istiod Role in istio-system for $description',
    (testCase) => {
      const roles = renderedFor(testCase).filter((object) => object.kind === 'Role');
      expect(roles.length).toBeGreaterThan(0);
      for (const role of roles) {
        expect(
          uncoveredRules(rulesInNamespace(role.metadata.namespace!), role['rules'] as PolicyRule[]),
        ).toEqual([]);
      }
    },
  );

  it('would not let meshrev create the istiod Role in a namespace without the delegation RoleBinding', () => {
    expect(uncoveredRules(rulesInNamespace('team-a'), istiodNamespacedRules)).not.toEqual([]);
  });

  it('holds nothing in the cluster-wide delegation ClusterRole that istiod is not granted', () => {
    expect(uncoveredRules(istiodClusterRules, roleRules('ClusterRole', 'meshrev-istiod-delegation'))).toEqual(
      [],
    );
  });

  it('holds nothing in the namespaced delegation ClusterRole that istiod is not granted', () => {
    expect(
      uncoveredRules(istiodNamespacedRules, roleRules('ClusterRole', 'meshrev-istiod-namespace-delegation')),
    ).toEqual([]);
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
  for (const object of [...allRendered, ...tagObjects])
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
