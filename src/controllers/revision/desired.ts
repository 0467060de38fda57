/**
 * The objects one ControlPlaneRevision becomes, as pure data.
 *
 * They reproduce what Istio's istio-discovery chart renders for a revisioned install (`revision: <rev>`,
 * default values) for Istio 1.28, 1.29 and 1.30 (checked against the 1.28.10, 1.29.6 and 1.30.3 charts),
 * with these deliberate differences:
 * - the sidecar-injector webhooks call meshrev's embedded injector (`/inject/<rev>`), so istiod's own
 *   injector is switched off (`INJECT_ENABLED=false`) and istiod must never patch webhook configurations
 *   (`INJECTION_WEBHOOK_CONFIG_NAME=""`, `VALIDATION_WEBHOOK_CONFIG_NAME=""`): meshrev owns the caBundle;
 * - without injection templates istiod cannot render gateway Deployments, so the Gateway API deployment
 *   controller is off by default (and its RBAC is only rendered when a user turns it back on);
 * - no validating webhook, injector ConfigMap, reader RBAC, remote-cluster or ambient objects;
 * - istiod's ClusterRole and Role are not rendered per revision: the revision's bindings (same names as
 *   the chart's) refer to the shared ClusterRoles installed with meshrev (istiod-rbac.ts explains why);
 * - labels name meshrev as the manager (`app.kubernetes.io/managed-by: meshrev`) where Helm would appear.
 */
import type {
  V1ClusterRoleBinding,
  V1ConfigMap,
  V1Deployment,
  V1EnvVar,
  V1MutatingWebhookConfiguration,
  V1PodDisruptionBudget,
  V1ResourceRequirements,
  V1Service,
  V1ServiceAccount,
  V1Toleration,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { stringify } from 'yaml';

import type {
  ControlPlaneRevision,
  MeshConfig,
  ResourceRequirements,
} from '../../crds/controlplanerevision.js';
import {
  type LabelContext,
  istiodObjectLabels,
  pilotComponentLabels,
  REVISION_LABEL,
} from '../common/labels.js';
import {
  gatewayControllerClusterRoleName,
  injectionPath,
  istiodAnalysisClusterRoleBindingName,
  istiodClusterRoleName,
  istiodName,
  meshConfigMapName,
  revisionWebhookConfigurationName,
} from '../common/names.js';
import type { DesiredObject } from '../common/objects.js';
import { controllerOwnerReference } from '../common/owner.js';
import { isAtLeastMinor } from '../common/versions.js';
import {
  injectionEnabled,
  injectionWebhooks,
  injectorClientConfig,
  type InjectorEndpoint,
  readInjectionWebhookSettings,
} from '../common/webhooks.js';
import {
  ISTIOD_ANALYSIS_CLUSTER_ROLE,
  ISTIOD_CLUSTER_ROLE,
  ISTIOD_GATEWAY_CONTROLLER_CLUSTER_ROLE,
  ISTIOD_NAMESPACE_CLUSTER_ROLE,
} from './istiod-rbac.js';

export interface RevisionBuildContext {
  /** The Istio version to run: spec.version, or the channel's current version. */
  resolvedVersion: string;
  /** The Service in front of meshrev's embedded injector. */
  injector: InjectorEndpoint;
  /** Base64 PEM of the injector's CA; the key is left out of the webhooks while it is unknown. */
  caBundle: string | undefined;
  /** Name of this meshrev instance, shown where Istio's charts show the Helm release. */
  operatorName: string;
}

export const ISTIOD_DEFAULT_RESOURCES: ResourceRequirements = { requests: { cpu: '500m', memory: '2048Mi' } };
const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
const TOKEN_AUDIENCE = 'istio-ca';

interface RevisionFacts {
  revision: string;
  namespace: string;
  version: string;
  labels: LabelContext;
  env: Map<string, V1EnvVar>;
}

function stringField(source: unknown, key: string): string | undefined {
  if (source === null || typeof source !== 'object') return undefined;
  const value = (source as Record<string, unknown>)[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function withMeta<T extends object>(
  apiVersion: string,
  kind: string,
  metadata: DesiredObject['metadata'],
  body: T,
): DesiredObject {
  return { apiVersion, kind, metadata, ...body };
}

/** Everything meshrev applies for `cpr`, in an order that creates dependencies first. */
export function desiredRevisionObjects(
  cpr: ControlPlaneRevision,
  context: RevisionBuildContext,
): DesiredObject[] {
  const revision = cpr.metadata.name;
  const namespace = cpr.spec.namespace;
  const facts: RevisionFacts = {
    revision,
    namespace,
    version: context.resolvedVersion,
    labels: {
      revision,
      version: context.resolvedVersion,
      operatorName: context.operatorName,
      ownerName: revision,
    },
    env: istiodEnv(cpr, context.resolvedVersion),
  };
  const owner = [controllerOwnerReference(cpr)];
  const meta = (
    name: string,
    labels: Record<string, string>,
    inNamespace: boolean,
  ): DesiredObject['metadata'] => ({
    name,
    ...(inNamespace ? { namespace } : {}),
    labels,
    ownerReferences: owner,
  });
  const istiodLabels = istiodObjectLabels(facts.labels);
  const name = istiodName(revision);
  const binding = (kind: 'ClusterRoleBinding' | 'RoleBinding', bindingName: string, roleName: string) =>
    withMeta('rbac.authorization.k8s.io/v1', kind, meta(bindingName, istiodLabels, kind === 'RoleBinding'), {
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
      subjects: subjects(facts),
    });
  // istiod's roles are the shared ClusterRoles installed with meshrev (see istiod-rbac.ts): a revision
  // only binds them, under the binding names Istio's chart uses.
  const objects: DesiredObject[] = [
    withMeta('v1', 'ServiceAccount', meta(name, istiodLabels, true), serviceAccount(cpr)),
    binding('ClusterRoleBinding', istiodClusterRoleName(revision, namespace), ISTIOD_CLUSTER_ROLE),
  ];
  if (envValue(facts.env, 'PILOT_ENABLE_ANALYSIS') === 'true') {
    objects.push(
      binding(
        'ClusterRoleBinding',
        istiodAnalysisClusterRoleBindingName(revision, namespace),
        ISTIOD_ANALYSIS_CLUSTER_ROLE,
      ),
    );
  }
  if (envValue(facts.env, 'PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER') !== 'false') {
    objects.push(
      binding(
        'ClusterRoleBinding',
        gatewayControllerClusterRoleName(revision, namespace),
        ISTIOD_GATEWAY_CONTROLLER_CLUSTER_ROLE,
      ),
    );
  }
  objects.push(
    binding('RoleBinding', name, ISTIOD_NAMESPACE_CLUSTER_ROLE),
    withMeta(
      'v1',
      'ConfigMap',
      meta(meshConfigMapName(revision), pilotComponentLabels(facts.labels), true),
      meshConfigMapData(cpr),
    ),
    withMeta(
      'v1',
      'Service',
      meta(name, { ...pilotComponentLabels(facts.labels), app: 'istiod', istio: 'pilot' }, true),
      istiodService(facts),
    ),
    withMeta(
      'apps/v1',
      'Deployment',
      meta(name, { ...pilotComponentLabels(facts.labels), app: 'istiod', istio: 'pilot' }, true),
      istiodDeployment(cpr, facts),
    ),
  );
  const budget = podDisruptionBudget(cpr, facts);
  if (budget !== undefined) {
    objects.push(
      withMeta(
        'policy/v1',
        'PodDisruptionBudget',
        meta(name, { ...pilotComponentLabels(facts.labels), app: 'istiod', istio: 'pilot' }, true),
        budget,
      ),
    );
  }
  const autoscaler = horizontalPodAutoscaler(cpr, facts);
  if (autoscaler !== undefined) {
    objects.push(
      withMeta(
        'autoscaling/v2',
        'HorizontalPodAutoscaler',
        meta(name, { ...pilotComponentLabels(facts.labels), app: 'istiod' }, true),
        autoscaler,
      ),
    );
  }
  if (injectionEnabled(cpr.spec.injection)) {
    objects.push(
      withMeta(
        'admissionregistration.k8s.io/v1',
        'MutatingWebhookConfiguration',
        meta(
          revisionWebhookConfigurationName(revision, namespace),
          { ...pilotComponentLabels(facts.labels), app: 'sidecar-injector' },
          false,
        ),
        revisionWebhookConfiguration(cpr, context),
      ),
    );
  }
  return objects;
}

function serviceAccount(
  cpr: ControlPlaneRevision,
): Omit<V1ServiceAccount, 'apiVersion' | 'kind' | 'metadata'> {
  const secrets = cpr.spec.imagePullSecrets ?? [];
  return secrets.length === 0 ? {} : { imagePullSecrets: secrets.map((secret) => ({ name: secret })) };
}

function subjects(facts: RevisionFacts): V1ClusterRoleBinding['subjects'] {
  return [{ kind: 'ServiceAccount', name: istiodName(facts.revision), namespace: facts.namespace }];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Helm's mergeOverwrite: maps merge recursively, anything else in `override` replaces, null keeps. */
export function mergeOverwrite(
  base: Record<string, unknown>,
  override: Record<string, unknown>,
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === null || value === undefined) continue;
    const current = merged[key];
    merged[key] = isPlainObject(current) && isPlainObject(value) ? mergeOverwrite(current, value) : value;
  }
  return merged;
}

/** The mesh config istiod reads: the chart's defaults for this revision with `spec.meshConfig` merged over. */
export function effectiveMeshConfig(cpr: ControlPlaneRevision): Record<string, unknown> {
  const userMesh: MeshConfig = cpr.spec.meshConfig ?? {};
  const namespace = cpr.spec.namespace;
  const defaults: Record<string, unknown> = {
    trustDomain: 'cluster.local',
    rootNamespace: namespace,
    // The chart only adds Prometheus as the default metrics provider when the user sets no providers.
    ...(userMesh.defaultProviders === undefined ? { defaultProviders: { metrics: ['prometheus'] } } : {}),
    defaultConfig: { discoveryAddress: `${istiodName(cpr.metadata.name)}.${namespace}.svc:15012` },
    enablePrometheusMerge: true,
  };
  return mergeOverwrite(defaults, userMesh);
}

/**
 * Like Helm's toYaml: keys sorted, no line folding. YAML 1.1 quoting because istiod reads the mesh config
 * with a YAML 1.1 parser, which would turn values like OFF or on into booleans.
 */
function toYaml(value: unknown): string {
  return stringify(value, { version: '1.1', sortMapEntries: true, lineWidth: 0 }).trimEnd();
}

function meshConfigMapData(cpr: ControlPlaneRevision): Omit<V1ConfigMap, 'apiVersion' | 'kind' | 'metadata'> {
  return {
    data: {
      mesh: toYaml(effectiveMeshConfig(cpr)),
      meshNetworks: toYaml({ networks: {} }),
    },
  };
}

function istiodService(facts: RevisionFacts): Omit<V1Service, 'apiVersion' | 'kind' | 'metadata'> {
  return {
    spec: {
      ports: [
        { port: 15010, name: 'grpc-xds', protocol: 'TCP' },
        { port: 15012, name: 'https-dns', protocol: 'TCP' },
        { port: 443, name: 'https-webhook', targetPort: 15017, protocol: 'TCP' },
        { port: 15014, name: 'http-monitoring', protocol: 'TCP' },
      ],
      selector: { app: 'istiod', [REVISION_LABEL]: facts.revision },
    },
  };
}

function envValue(env: Map<string, V1EnvVar>, name: string): string | undefined {
  return env.get(name)?.value;
}

const fieldRefEnv = (name: string, fieldPath: string): V1EnvVar => ({
  name,
  valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } },
});

const resourceRefEnv = (name: string, resource: string): V1EnvVar => ({
  name,
  valueFrom: { resourceFieldRef: { resource, divisor: '1' } },
});

/**
 * istiod's environment, keyed by name so server-side apply never sees a duplicate. Order follows the
 * chart; `spec.istiod.env` can change any chart default but not what keeps istiod off meshrev's webhooks.
 */
export function istiodEnv(cpr: ControlPlaneRevision, version: string): Map<string, V1EnvVar> {
  const env = new Map<string, V1EnvVar>();
  const set = (variable: V1EnvVar) => env.set(variable.name, variable);
  const literal = (name: string, value: string) => set({ name, value });
  literal('REVISION', cpr.metadata.name);
  literal('PILOT_CERT_PROVIDER', 'istiod');
  set(fieldRefEnv('POD_NAME', 'metadata.name'));
  set(fieldRefEnv('POD_NAMESPACE', 'metadata.namespace'));
  set(fieldRefEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'));
  literal('KUBECONFIG', '/var/run/secrets/remote/config');
  literal('CA_TRUSTED_NODE_ACCOUNTS', `${cpr.spec.namespace}/ztunnel`);
  literal('PILOT_ENABLE_ANALYSIS', 'false');
  literal('CLUSTER_ID', 'Kubernetes');
  literal('PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER', 'false');
  for (const [name, value] of Object.entries(cpr.spec.istiod.env ?? {})) literal(name, value);
  if (!isAtLeastMinor(version, 1, 29)) set(resourceRefEnv('GOMEMLIMIT', 'limits.memory'));
  set(resourceRefEnv('GOMAXPROCS', 'limits.cpu'));
  literal('REVISION', cpr.metadata.name);
  literal('INJECT_ENABLED', 'false');
  literal('INJECTION_WEBHOOK_CONFIG_NAME', '');
  literal('VALIDATION_WEBHOOK_CONFIG_NAME', '');
  return env;
}

/** The spellings Go's strconv.ParseBool reads as true, as istiod reads its boolean variables. */
const GO_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);

/**
 * Whether istiod publishes its root certificate as a ClusterTrustBundle (`ENABLE_CLUSTER_TRUST_BUNDLE_API` in
 * `spec.istiod.env`, Helm's `pilot.env`). The chart then mounts the bundle instead of the istio-ca-root-cert
 * ConfigMap, in istiod and in every proxy its injector injects.
 */
export function clusterTrustBundleEnabled(cpr: ControlPlaneRevision): boolean {
  return GO_TRUE.has(cpr.spec.istiod.env?.['ENABLE_CLUSTER_TRUST_BUNDLE_API'] ?? '');
}

/**
 * What istiod's process finds in its environment, as far as the spec decides it: the literal values above, and the
 * namespace and service account its fieldRefs resolve to. The pod's name and the values taken from its resources
 * differ per pod and are left out. istiod's injector reads its environment (COMPLIANCE_POLICY, and templates through
 * `env`), so meshrev's injector reads this.
 */
export function istiodEnvironmentValues(
  cpr: ControlPlaneRevision,
  version: string,
): ReadonlyMap<string, string> {
  const resolvedFields = new Map([
    ['metadata.namespace', cpr.spec.namespace],
    ['spec.serviceAccountName', istiodName(cpr.metadata.name)],
  ]);
  const values = new Map<string, string>();
  for (const variable of istiodEnv(cpr, version).values()) {
    const value = variable.value ?? resolvedFields.get(variable.valueFrom?.fieldRef?.fieldPath ?? '');
    if (value !== undefined) values.set(variable.name, value);
  }
  return values;
}

/** The chart's `istiod.resources` helper: empty quantity maps are left out. */
function containerResources(resources: ResourceRequirements | undefined): V1ResourceRequirements {
  const source = resources ?? ISTIOD_DEFAULT_RESOURCES;
  const result: V1ResourceRequirements = {};
  for (const key of ['limits', 'requests'] as const) {
    const quantities = Object.entries(source[key] ?? {})
      .filter(([, quantity]) => quantity !== '')
      .map(([name, quantity]) => [name, String(quantity)] as const);
    if (quantities.length > 0) result[key] = Object.fromEntries(quantities);
  }
  return result;
}

function autoscalingEnabled(cpr: ControlPlaneRevision): boolean {
  return cpr.spec.istiod.autoscaling?.enabled === true;
}

function istiodDeployment(
  cpr: ControlPlaneRevision,
  facts: RevisionFacts,
): Omit<V1Deployment, 'apiVersion' | 'kind' | 'metadata'> {
  const istiod = cpr.spec.istiod;
  const clusterDomain = stringField(cpr.spec.proxy, 'clusterDomain') ?? DEFAULT_CLUSTER_DOMAIN;
  const podLabels: Record<string, string> = {
    ...(istiod.podLabels ?? {}),
    ...pilotComponentLabels(facts.labels),
    app: 'istiod',
    [REVISION_LABEL]: facts.revision,
    'sidecar.istio.io/inject': 'false',
    istio: 'istiod',
    'istio.io/dataplane-mode': 'none',
  };
  const tolerations: V1Toleration[] = [
    { key: 'cni.istio.io/not-ready', operator: 'Exists' },
    ...(istiod.tolerations ?? []),
  ];
  const affinity = istiod.affinity;
  return {
    spec: {
      // With autoscaling the HPA owns the replica count; applying one here would fight it.
      ...(autoscalingEnabled(cpr) ? {} : { replicas: istiod.replicas ?? 1 }),
      strategy: { rollingUpdate: { maxSurge: '100%', maxUnavailable: '25%' } },
      selector: { matchLabels: { app: 'istiod', [REVISION_LABEL]: facts.revision } },
      template: {
        metadata: {
          labels: podLabels,
          annotations: {
            'prometheus.io/port': '15014',
            'prometheus.io/scrape': 'true',
            'sidecar.istio.io/inject': 'false',
            ...(istiod.podAnnotations ?? {}),
          },
        },
        spec: {
          ...(istiod.nodeSelector !== undefined && Object.keys(istiod.nodeSelector).length > 0
            ? { nodeSelector: istiod.nodeSelector }
            : {}),
          ...(affinity !== undefined && Object.keys(affinity).length > 0 ? { affinity } : {}),
          tolerations,
          serviceAccountName: istiodName(facts.revision),
          containers: [
            {
              name: 'discovery',
              image: `${cpr.spec.hub}/pilot:${facts.version}`,
              ...(cpr.spec.imagePullPolicy === undefined
                ? {}
                : { imagePullPolicy: cpr.spec.imagePullPolicy }),
              args: [
                'discovery',
                '--monitoringAddr=:15014',
                '--log_output_level=default:info',
                '--domain',
                clusterDomain,
                '--keepaliveMaxServerConnectionAge',
                '30m',
              ],
              ports: [
                { containerPort: 8080, protocol: 'TCP', name: 'http-debug' },
                { containerPort: 15010, protocol: 'TCP', name: 'grpc-xds' },
                { containerPort: 15012, protocol: 'TCP', name: 'tls-xds' },
                { containerPort: 15017, protocol: 'TCP', name: 'https-webhooks' },
                { containerPort: 15014, protocol: 'TCP', name: 'http-monitoring' },
              ],
              readinessProbe: {
                httpGet: { path: '/ready', port: 8080 },
                initialDelaySeconds: 1,
                periodSeconds: 3,
                timeoutSeconds: 5,
              },
              env: [...facts.env.values()],
              resources: containerResources(istiod.resources),
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                { name: 'istio-token', mountPath: '/var/run/secrets/tokens', readOnly: true },
                { name: 'local-certs', mountPath: '/var/run/secrets/istio-dns' },
                { name: 'cacerts', mountPath: '/etc/cacerts', readOnly: true },
                { name: 'istio-kubeconfig', mountPath: '/var/run/secrets/remote', readOnly: true },
                { name: 'istio-csr-dns-cert', mountPath: '/var/run/secrets/istiod/tls', readOnly: true },
                { name: 'istio-csr-ca-configmap', mountPath: '/var/run/secrets/istiod/ca', readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: 'local-certs', emptyDir: { medium: 'Memory' } },
            {
              name: 'istio-token',
              projected: {
                sources: [
                  {
                    serviceAccountToken: {
                      audience: TOKEN_AUDIENCE,
                      expirationSeconds: 43200,
                      path: 'istio-token',
                    },
                  },
                ],
              },
            },
            { name: 'cacerts', secret: { secretName: 'cacerts', optional: true } },
            { name: 'istio-kubeconfig', secret: { secretName: 'istio-kubeconfig', optional: true } },
            { name: 'istio-csr-dns-cert', secret: { secretName: 'istiod-tls', optional: true } },
            clusterTrustBundleEnabled(cpr)
              ? {
                  name: 'istio-csr-ca-configmap',
                  projected: {
                    sources: [
                      {
                        clusterTrustBundle: {
                          name: 'istio.io:istiod-ca:root-cert',
                          path: 'root-cert.pem',
                          optional: true,
                        },
                      },
                    ],
                  },
                }
              : {
                  name: 'istio-csr-ca-configmap',
                  configMap: { name: 'istio-ca-root-cert', defaultMode: 420, optional: true },
                },
          ],
        },
      },
    },
  };
}

/**
 * Like the chart, a budget is only rendered when istiod can keep more than one replica: a budget of
 * minAvailable 1 over a single pod would block every node drain (kubernetes/kubernetes#93476).
 */
function podDisruptionBudget(
  cpr: ControlPlaneRevision,
  facts: RevisionFacts,
): Omit<V1PodDisruptionBudget, 'apiVersion' | 'kind' | 'metadata'> | undefined {
  const istiod = cpr.spec.istiod;
  const budget = istiod.podDisruptionBudget;
  if (budget !== undefined && !budget.enabled) return undefined;
  const minimumReplicas = autoscalingEnabled(cpr)
    ? (istiod.autoscaling?.minReplicas ?? 1)
    : (istiod.replicas ?? 1);
  if (minimumReplicas <= 1) return undefined;
  const limit =
    budget?.maxUnavailable !== undefined
      ? { maxUnavailable: budget.maxUnavailable }
      : { minAvailable: budget?.minAvailable ?? 1 };
  return {
    spec: { ...limit, selector: { matchLabels: { app: 'istiod', [REVISION_LABEL]: facts.revision } } },
  };
}

function horizontalPodAutoscaler(
  cpr: ControlPlaneRevision,
  facts: RevisionFacts,
): Omit<V2HorizontalPodAutoscaler, 'apiVersion' | 'kind' | 'metadata'> | undefined {
  const autoscaling = cpr.spec.istiod.autoscaling;
  if (autoscaling === undefined || !autoscaling.enabled) return undefined;
  return {
    spec: {
      maxReplicas: autoscaling.maxReplicas,
      minReplicas: autoscaling.minReplicas,
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: istiodName(facts.revision) },
      metrics: [
        {
          type: 'Resource',
          resource: {
            name: 'cpu',
            target: { type: 'Utilization', averageUtilization: autoscaling.targetCPUUtilizationPercentage },
          },
        },
      ],
    },
  };
}

function revisionWebhookConfiguration(
  cpr: ControlPlaneRevision,
  context: RevisionBuildContext,
): Omit<V1MutatingWebhookConfiguration, 'apiVersion' | 'kind' | 'metadata'> {
  const revision = cpr.metadata.name;
  const clientConfig = injectorClientConfig(context.injector, injectionPath(revision), context.caBundle);
  return {
    webhooks: injectionWebhooks(revision, clientConfig, readInjectionWebhookSettings(cpr.spec.injection)),
  };
}
