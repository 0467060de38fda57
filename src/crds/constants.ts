// Identity of meshrev's API and the limits its object names must respect.

export const API_GROUP = 'meshrev.dev';
export const API_VERSION = 'v1alpha1';
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

export const CONTROL_PLANE_REVISION_KIND = 'ControlPlaneRevision';
export const REVISION_TAG_KIND = 'RevisionTag';

export const DEFAULT_CONTROL_PLANE_NAMESPACE = 'istio-system';
export const DEFAULT_HUB = 'docker.io/istio';

/**
 * Longest allowed ControlPlaneRevision name (= revision).
 *
 * The tightest derived name is the istiod pod: Deployment `istiod-<rev>` owns ReplicaSet
 * `istiod-<rev>-<pod-template-hash>` (hash up to 10 characters), whose pods are named from the
 * generate-name base `<replicaset>-`, which the API server cuts at 58 characters before appending 5
 * random ones. Keeping the whole base means 7 + rev + 1 + 10 + 1 <= 58, so rev <= 39. Everything else
 * then fits with room to spare: label values (`istio.io/rev`, <= 63), Service `istiod-<rev>` (DNS-1035
 * label, <= 63), and the DNS-subdomain names (<= 253) `istio-sidecar-injector-<rev>-<namespace>` (at most
 * 23 + 39 + 1 + 63 = 126) and `istiod-gateway-controller-<rev>-<namespace>` (at most 129).
 */
export const MAX_REVISION_NAME_LENGTH = 39;

/**
 * Longest allowed RevisionTag name. A tag is used as an `istio.io/rev` label value (<= 63) and Istio
 * publishes a Service `istiod-revision-tag-<tag>` per tag, a DNS-1035 label: 20 + tag <= 63, so tag <= 43.
 */
export const MAX_TAG_NAME_LENGTH = 43;

export const DNS1123_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const ISTIO_VERSION_PATTERN = '^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$';

export const CHANNELS = ['regular', 'rapid', 'stable'] as const;
export type Channel = (typeof CHANNELS)[number];
