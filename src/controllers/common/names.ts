// Names of the objects meshrev derives from a revision or a tag, and the rules their sources obey.
import { DEFAULT_CONTROL_PLANE_NAMESPACE } from '../../crds/constants.js';

/** Deployment, Service, ServiceAccount, Role, RoleBinding, PodDisruptionBudget and HPA of a revision. */
export const istiodName = (revision: string): string => `istiod-${revision}`;

/** The revision's mesh ConfigMap. */
export const meshConfigMapName = (revision: string): string => `istio-${revision}`;

/** Istio names its injector webhook configuration after the namespace only outside istio-system. */
export function revisionWebhookConfigurationName(revision: string, namespace: string): string {
  const base = `istio-sidecar-injector-${revision}`;
  return namespace === DEFAULT_CONTROL_PLANE_NAMESPACE ? base : `${base}-${namespace}`;
}

/**
 * Tags are cluster-scoped objects with unique names, so unlike Istio's chart (which renders tags per
 * release namespace) no namespace suffix is needed to keep two tag webhook configurations apart.
 */
export const tagWebhookConfigurationName = (tag: string): string => `istio-revision-tag-${tag}`;

export const istiodClusterRoleName = (revision: string, namespace: string): string =>
  `istiod-clusterrole-${revision}-${namespace}`;

/** meshrev's own binding (Istio's chart has none): istiod's analysis permissions, only with analysis on. */
export const istiodAnalysisClusterRoleBindingName = (revision: string, namespace: string): string =>
  `istiod-analysis-${revision}-${namespace}`;

export const gatewayControllerClusterRoleName = (revision: string, namespace: string): string =>
  `istiod-gateway-controller-${revision}-${namespace}`;

/** Path of the embedded injector that injects with `revisionOrTag`'s settings. */
export const injectionPath = (revisionOrTag: string): string => `/inject/${revisionOrTag}`;

export { revisionNameProblems, tagNameProblems } from '../../crds/names.js';
