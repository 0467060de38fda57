// The REST coordinates of the kinds meshrev talks to. A static table instead of API discovery keeps
// start-up free of discovery round trips; `registerResource` covers anything added later.

export interface ResourceType {
  apiVersion: string;
  kind: string;
}

export interface ResourceInfo extends ResourceType {
  plural: string;
  namespaced: boolean;
}

export interface ObjectRef extends ResourceType {
  name: string;
  namespace?: string;
}

const resourceTable = new Map<string, ResourceInfo>();

function tableKey(apiVersion: string, kind: string): string {
  return `${apiVersion}/${kind}`;
}

export function registerResource(info: ResourceInfo): void {
  resourceTable.set(tableKey(info.apiVersion, info.kind), { ...info });
}

const builtIn: ResourceInfo[] = [
  { apiVersion: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false },
  { apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true },
  { apiVersion: 'v1', kind: 'Service', plural: 'services', namespaced: true },
  { apiVersion: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true },
  { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
  { apiVersion: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true },
  { apiVersion: 'v1', kind: 'Event', plural: 'events', namespaced: true },
  { apiVersion: 'v1', kind: 'Node', plural: 'nodes', namespaced: false },
  { apiVersion: 'v1', kind: 'Endpoints', plural: 'endpoints', namespaced: true },
  { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments', namespaced: true },
  { apiVersion: 'apps/v1', kind: 'StatefulSet', plural: 'statefulsets', namespaced: true },
  { apiVersion: 'apps/v1', kind: 'DaemonSet', plural: 'daemonsets', namespaced: true },
  { apiVersion: 'apps/v1', kind: 'ReplicaSet', plural: 'replicasets', namespaced: true },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    plural: 'clusterroles',
    namespaced: false,
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    plural: 'clusterrolebindings',
    namespaced: false,
  },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', plural: 'roles', namespaced: true },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    plural: 'rolebindings',
    namespaced: true,
  },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', namespaced: true },
  {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    plural: 'horizontalpodautoscalers',
    namespaced: true,
  },
  {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    plural: 'mutatingwebhookconfigurations',
    namespaced: false,
  },
  {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    plural: 'validatingwebhookconfigurations',
    namespaced: false,
  },
  { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', plural: 'leases', namespaced: true },
  { apiVersion: 'events.k8s.io/v1', kind: 'Event', plural: 'events', namespaced: true },
  {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    plural: 'customresourcedefinitions',
    namespaced: false,
  },
  {
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'ControlPlaneRevision',
    plural: 'controlplanerevisions',
    namespaced: false,
  },
  { apiVersion: 'meshrev.dev/v1alpha1', kind: 'RevisionTag', plural: 'revisiontags', namespaced: false },
  // Istio's own kind, read by the injector where Istio's CRDs are installed (see optionalResource).
  {
    apiVersion: 'networking.istio.io/v1beta1',
    kind: 'ProxyConfig',
    plural: 'proxyconfigs',
    namespaced: true,
  },
];
for (const info of builtIn) registerResource(info);

export class UnknownResourceError extends Error {
  constructor(
    readonly apiVersion: string,
    readonly kind: string,
  ) {
    super(`unknown resource ${apiVersion} ${kind}: add it with registerResource()`);
    this.name = 'UnknownResourceError';
  }
}

export function resourceInfo(type: ResourceType): ResourceInfo {
  const info = resourceTable.get(tableKey(type.apiVersion, type.kind));
  if (!info) throw new UnknownResourceError(type.apiVersion, type.kind);
  return info;
}

export function isNamespacedKind(type: ResourceType): boolean | undefined {
  return resourceTable.get(tableKey(type.apiVersion, type.kind))?.namespaced;
}

export function apiGroupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

function groupVersionPrefix(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

/** Collection path; for a namespaced kind without a namespace this is the all-namespaces path. */
export function collectionPath(type: ResourceType, namespace?: string): string {
  const info = resourceInfo(type);
  const prefix = groupVersionPrefix(info.apiVersion);
  if (info.namespaced && namespace) {
    return `${prefix}/namespaces/${encodeURIComponent(namespace)}/${info.plural}`;
  }
  return `${prefix}/${info.plural}`;
}

export function objectPath(ref: ObjectRef, subresource?: string): string {
  const info = resourceInfo(ref);
  if (info.namespaced && !ref.namespace) {
    throw new Error(`${ref.kind} ${ref.name} is namespaced but no namespace was given`);
  }
  const base = `${collectionPath(ref, info.namespaced ? ref.namespace : undefined)}/${encodeURIComponent(ref.name)}`;
  return subresource ? `${base}/${subresource}` : base;
}
