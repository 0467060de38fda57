/**
 * istiod's permissions: the rules Istio's istio-discovery chart grants istiod, and the shared ClusterRoles
 * meshrev ships with them (deploy/istiod-clusterroles.yaml).
 *
 * Istio's chart renders a ClusterRole and a Role per revision. meshrev does not: the API server lets a
 * user create or update a role only if it already holds every permission in it (or has `escalate`), so
 * per-revision roles would force meshrev itself to hold all of istiod's permissions, cluster-wide Secret
 * reads included. Instead the roles are static, installed with meshrev, and meshrev only creates per-revision
 * bindings to them, which needs nothing but the `bind` verb on exactly these role names (the API server's
 * bind check authorizes `bind` on the roleRef's name, so `resourceNames` narrow it).
 *
 * The rule builders below are the single source: test/unit/deploy/rbac.test.ts checks that the shipped
 * YAML equals `sharedIstiodClusterRoles()` and that, for every supported Istio version and setting, the
 * roles bound for a revision grant exactly what that version's chart grants istiod.
 */
import type { V1PolicyRule } from '@kubernetes/client-node';

import { isAtLeastMinor, SUPPORTED_MINOR_VERSIONS } from '../common/versions.js';

/** istiod's cluster-wide rules (the chart's `clusterrole.yaml` without the analysis additions). */
export const ISTIOD_CLUSTER_ROLE = 'meshrev-istiod';
/** What the chart adds to istiod's ClusterRole with `PILOT_ENABLE_ANALYSIS=true`; bound only then. */
export const ISTIOD_ANALYSIS_CLUSTER_ROLE = 'meshrev-istiod-analysis';
/** The Gateway API deployment controller's rules; bound only when that controller is on. */
export const ISTIOD_GATEWAY_CONTROLLER_CLUSTER_ROLE = 'meshrev-istiod-gateway-controller';
/** The chart's namespaced `role.yaml`, bound by a RoleBinding in the revision's namespace only. */
export const ISTIOD_NAMESPACE_CLUSTER_ROLE = 'meshrev-istiod-namespace';

/** Every ClusterRole meshrev binds for istiod: the only names meshrev's own ClusterRole may `bind`. */
export const ISTIOD_SHARED_CLUSTER_ROLES = [
  ISTIOD_CLUSTER_ROLE,
  ISTIOD_ANALYSIS_CLUSTER_ROLE,
  ISTIOD_GATEWAY_CONTROLLER_CLUSTER_ROLE,
  ISTIOD_NAMESPACE_CLUSTER_ROLE,
] as const;

/** The Multicluster Services API group istiod uses unless `MCS_API_GROUP` says otherwise. */
export const DEFAULT_MCS_API_GROUP = 'multicluster.x-k8s.io';

const ISTIO_API_GROUPS = [
  'config.istio.io',
  'security.istio.io',
  'networking.istio.io',
  'authentication.istio.io',
  'rbac.istio.io',
  'telemetry.istio.io',
  'extensions.istio.io',
];
const READ = ['get', 'watch', 'list'];
const MANAGE = ['get', 'watch', 'list', 'update', 'patch', 'create', 'delete'];

/** What varies in the chart's `clusterrole.yaml` between Istio versions and istiod settings. */
interface ClusterRuleOptions {
  analysis: boolean;
  mcsGroup: string;
  /** `xlistenersets/status` in the experimental Gateway API group (before Istio 1.30). */
  experimentalListenerSets: boolean;
  /** `listenersets/status` in the standard Gateway API group (Istio 1.30 and later). */
  graduatedListenerSets: boolean;
}

function analysisStatusRule(): V1PolicyRule {
  return {
    apiGroups: ISTIO_API_GROUPS,
    verbs: ['update', 'patch'],
    resources: [
      'authorizationpolicies/status',
      'destinationrules/status',
      'envoyfilters/status',
      'gateways/status',
      'peerauthentications/status',
      'proxyconfigs/status',
      'requestauthentications/status',
      'serviceentries/status',
      'sidecars/status',
      'telemetries/status',
      'virtualservices/status',
      'wasmplugins/status',
      'workloadentries/status',
      'workloadgroups/status',
    ],
  };
}

function analysisIngressRules(): V1PolicyRule[] {
  return [
    {
      apiGroups: ['extensions', 'networking.k8s.io'],
      resources: ['ingresses'],
      verbs: ['get', 'list', 'watch'],
    },
    { apiGroups: ['extensions', 'networking.k8s.io'], resources: ['ingresses/status'], verbs: ['*'] },
  ];
}

/** The chart's `clusterrole.yaml` with default values (istiod as CA, no taint controller). */
function clusterRules(options: ClusterRuleOptions): V1PolicyRule[] {
  const { analysis, mcsGroup } = options;
  const rules: V1PolicyRule[] = [
    {
      apiGroups: ['admissionregistration.k8s.io'],
      resources: ['mutatingwebhookconfigurations'],
      verbs: ['get', 'list', 'watch', 'update', 'patch'],
    },
    {
      apiGroups: ['admissionregistration.k8s.io'],
      resources: ['validatingwebhookconfigurations'],
      verbs: ['get', 'list', 'watch', 'update'],
    },
    { apiGroups: ISTIO_API_GROUPS, verbs: READ, resources: ['*'] },
  ];
  if (analysis) rules.push(analysisStatusRule());
  rules.push(
    { apiGroups: ['networking.istio.io'], verbs: MANAGE, resources: ['workloadentries'] },
    {
      apiGroups: ['networking.istio.io'],
      verbs: MANAGE,
      resources: ['workloadentries/status', 'serviceentries/status'],
    },
    { apiGroups: ['security.istio.io'], verbs: MANAGE, resources: ['authorizationpolicies/status'] },
    { apiGroups: [''], verbs: MANAGE, resources: ['services/status'] },
    {
      apiGroups: ['apiextensions.k8s.io'],
      resources: ['customresourcedefinitions'],
      verbs: ['get', 'list', 'watch'],
    },
    {
      apiGroups: [''],
      resources: ['pods', 'nodes', 'services', 'namespaces', 'endpoints'],
      verbs: ['get', 'list', 'watch'],
    },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
  );
  if (analysis) rules.push(...analysisIngressRules());
  rules.push(
    {
      apiGroups: ['networking.k8s.io'],
      resources: ['ingresses', 'ingressclasses'],
      verbs: ['get', 'list', 'watch'],
    },
    { apiGroups: ['networking.k8s.io'], resources: ['ingresses/status'], verbs: ['*'] },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['create', 'get', 'list', 'watch', 'update'] },
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    {
      apiGroups: ['gateway.networking.k8s.io', 'gateway.networking.x-k8s.io'],
      resources: ['*'],
      verbs: ['get', 'watch', 'list'],
    },
    {
      apiGroups: ['gateway.networking.x-k8s.io'],
      resources: [
        'xbackendtrafficpolicies/status',
        ...(options.experimentalListenerSets ? ['xlistenersets/status'] : []),
      ],
      verbs: ['update', 'patch'],
    },
    {
      apiGroups: ['gateway.networking.k8s.io'],
      resources: [
        'backendtlspolicies/status',
        'gatewayclasses/status',
        'gateways/status',
        'grpcroutes/status',
        'httproutes/status',
        'referencegrants/status',
        'tcproutes/status',
        'tlsroutes/status',
        'udproutes/status',
        ...(options.graduatedListenerSets ? ['listenersets/status'] : []),
      ],
      verbs: ['update', 'patch'],
    },
    {
      apiGroups: ['gateway.networking.k8s.io'],
      resources: ['gatewayclasses'],
      verbs: ['create', 'update', 'patch', 'delete'],
    },
    {
      apiGroups: ['inference.networking.k8s.io'],
      resources: ['inferencepools'],
      verbs: ['get', 'watch', 'list'],
    },
    {
      apiGroups: ['inference.networking.k8s.io'],
      resources: ['inferencepools/status'],
      verbs: ['update', 'patch'],
    },
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'watch', 'list'] },
    {
      apiGroups: [mcsGroup],
      resources: ['serviceexports'],
      verbs: ['get', 'watch', 'list', 'create', 'delete'],
    },
    { apiGroups: [mcsGroup], resources: ['serviceimports'], verbs: ['get', 'watch', 'list'] },
  );
  return rules;
}

export interface IstiodRbacSettings {
  /** The Istio version the revision runs. */
  version: string;
  /** `PILOT_ENABLE_ANALYSIS=true`. */
  analysis: boolean;
  /** `MCS_API_GROUP`, when set. */
  mcsGroup?: string | undefined;
}

/** What Istio's chart puts in istiod's ClusterRole for `settings`: the reference the shared roles must meet. */
export function istiodClusterRules(settings: IstiodRbacSettings): V1PolicyRule[] {
  const graduated = isAtLeastMinor(settings.version, 1, 30);
  return clusterRules({
    analysis: settings.analysis,
    mcsGroup: settings.mcsGroup ?? DEFAULT_MCS_API_GROUP,
    experimentalListenerSets: !graduated,
    graduatedListenerSets: graduated,
  });
}

/**
 * The rules of `meshrev-istiod`: istiod's ClusterRole for every supported Istio version at once. The
 * versions differ only in where ListenerSet status lives (experimental group before 1.30, standard group
 * from 1.30), so the shared role grants both; an older istiod simply never uses the newer resource.
 */
export function sharedIstiodClusterRules(): V1PolicyRule[] {
  const versions = SUPPORTED_MINOR_VERSIONS.map((minor) => `${minor}.0`);
  return clusterRules({
    analysis: false,
    mcsGroup: DEFAULT_MCS_API_GROUP,
    experimentalListenerSets: versions.some((version) => !isAtLeastMinor(version, 1, 30)),
    graduatedListenerSets: versions.some((version) => isAtLeastMinor(version, 1, 30)),
  });
}

/** The rules of `meshrev-istiod-analysis`: what `PILOT_ENABLE_ANALYSIS=true` adds to istiod's ClusterRole. */
export function istiodAnalysisRules(): V1PolicyRule[] {
  return [analysisStatusRule(), ...analysisIngressRules()];
}

/** The chart's `clusterrole.yaml` rules for the Gateway API deployment controller. */
export function gatewayControllerRules(): V1PolicyRule[] {
  return [
    { apiGroups: ['apps'], verbs: MANAGE, resources: ['deployments'] },
    { apiGroups: ['autoscaling'], verbs: MANAGE, resources: ['horizontalpodautoscalers'] },
    { apiGroups: ['policy'], verbs: MANAGE, resources: ['poddisruptionbudgets'] },
    { apiGroups: [''], verbs: MANAGE, resources: ['services'] },
    { apiGroups: [''], verbs: MANAGE, resources: ['serviceaccounts'] },
  ];
}

/** The chart's `role.yaml`: CA secret, status ConfigMap cleanup, leases, config validation dry-runs. */
export function istiodRoleRules(): V1PolicyRule[] {
  return [
    { apiGroups: ['networking.istio.io'], verbs: ['create'], resources: ['gateways'] },
    {
      apiGroups: [''],
      resources: ['secrets'],
      verbs: ['create', 'get', 'watch', 'list', 'update', 'delete'],
    },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['delete'] },
    {
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      verbs: ['get', 'update', 'patch', 'create'],
    },
  ];
}

/** The ClusterRoles of deploy/istiod-clusterroles.yaml, by name, in the order the file lists them. */
export function sharedIstiodClusterRoles(): { name: string; rules: V1PolicyRule[] }[] {
  return [
    { name: ISTIOD_CLUSTER_ROLE, rules: sharedIstiodClusterRules() },
    { name: ISTIOD_ANALYSIS_CLUSTER_ROLE, rules: istiodAnalysisRules() },
    { name: ISTIOD_GATEWAY_CONTROLLER_CLUSTER_ROLE, rules: gatewayControllerRules() },
    { name: ISTIOD_NAMESPACE_CLUSTER_ROLE, rules: istiodRoleRules() },
  ];
}
