// kube-inject: the same engine applied to manifests instead of admission requests. Workload pod templates are
// injected in place; everything else passes through unchanged (istiod's IntoResourceFile / IntoObject).
import { deploymentMetaFromPod, injectPod } from './inject.js';
import { applyJsonPatch } from './json-patch.js';
import { injectRequired } from './policy.js';
import type { InjectorSettings } from './settings.js';
import { isObject, type JsonObject, type ObjectMeta, type Pod, type PodSpec } from './types.js';

export interface KubeInjectOptions {
  /** Kubelet minor versions of the cluster's nodes, for native-sidecar mode 'auto'. */
  nodeKubeletMinorVersions?: number[];
  /** Receives one line per workload left alone (host network, injection disabled). */
  warn?: (message: string) => void;
}

const WORKLOAD_KINDS = new Set([
  'Deployment',
  'DeploymentConfig',
  'DaemonSet',
  'StatefulSet',
  'Job',
  'ReplicaSet',
  'ReplicationController',
]);

/** Where the pod template lives inside a document, or undefined when the document holds none. */
function podTemplateOf(doc: JsonObject): { holder: JsonObject; key: string } | undefined {
  const kind = doc['kind'];
  const spec = doc['spec'];
  if (kind === 'Pod') return { holder: doc, key: '' };
  if (!isObject(spec)) return undefined;
  if (kind === 'CronJob') {
    const jobTemplate = spec['jobTemplate'];
    const jobSpec = isObject(jobTemplate) ? jobTemplate['spec'] : undefined;
    return isObject(jobSpec) && isObject(jobSpec['template'])
      ? { holder: jobSpec, key: 'template' }
      : undefined;
  }
  if (typeof kind === 'string' && WORKLOAD_KINDS.has(kind) && isObject(spec['template'])) {
    return { holder: spec, key: 'template' };
  }
  return undefined;
}

function injectDocument(doc: JsonObject, settings: InjectorSettings, opts: KubeInjectOptions): JsonObject {
  if (doc['kind'] === 'List' && Array.isArray(doc['items'])) {
    return {
      ...doc,
      items: doc['items'].map((item) => (isObject(item) ? injectDocument(item, settings, opts) : item)),
    };
  }
  const location = podTemplateOf(doc);
  if (!location) return doc;
  const template = (location.key === '' ? location.holder : location.holder[location.key]) as JsonObject;
  const docMeta = (isObject(doc['metadata']) ? doc['metadata'] : {}) as ObjectMeta;
  // istioctl reads and writes a CronJob's pod metadata on the job template, not on the pod template.
  const jobTemplate = doc['kind'] === 'CronJob' ? (doc['spec'] as JsonObject)['jobTemplate'] : undefined;
  const metaSource = isObject(jobTemplate) ? jobTemplate : template;
  const podMeta = (isObject(metaSource['metadata']) ? metaSource['metadata'] : {}) as ObjectMeta;
  const podSpec = (isObject(template['spec']) ? template['spec'] : {}) as PodSpec;
  const kind = String(doc['kind']);
  const owner =
    kind === 'Pod'
      ? deploymentMetaFromPod(podMeta, podMeta.namespace ?? '')
      : {
          typeMeta: { apiVersion: String(doc['apiVersion'] ?? ''), kind },
          deployMeta: { name: docMeta.name ?? '', namespace: docMeta.namespace ?? '' },
        };
  const namespace = podMeta.namespace || owner.deployMeta.namespace;
  const fullName = `${owner.deployMeta.namespace ? owner.deployMeta.namespace + '/' : ''}${podMeta.name || owner.deployMeta.name}`;
  if (podSpec.hostNetwork === true) {
    opts.warn?.(`===> Skipping injection because ${kind} "${fullName}" has host networking enabled`);
    return doc;
  }
  const pod: Pod = { metadata: podMeta, spec: podSpec };
  const policy = {
    ...settings,
    policy: 'enabled' as const,
    neverInjectSelector: [],
    alwaysInjectSelector: [],
  };
  if (!injectRequired(policy, podSpec, { ...podMeta, namespace }).inject) {
    opts.warn?.(`===> Skipping injection because ${kind} "${fullName}" has sidecar injection disabled`);
    return doc;
  }
  const outcome = injectPod({
    pod,
    namespace,
    settings: { ...policy, defaultTemplates: ['sidecar'], injectedAnnotations: {} },
    owner,
    ...(opts.nodeKubeletMinorVersions ? { nodeKubeletMinorVersions: opts.nodeKubeletMinorVersions } : {}),
  });
  if (outcome.kind === 'rejected') throw new Error(outcome.message);
  if (outcome.kind === 'skipped') return doc;
  const injected = applyJsonPatch(pod, outcome.patch) as Pod;
  if (location.key === '') return { ...doc, metadata: injected.metadata, spec: injected.spec };
  if (isObject(jobTemplate)) {
    const withSpec = replaceTemplate(doc, location.holder, location.key, {
      ...template,
      spec: injected.spec,
    });
    const spec = withSpec['spec'] as JsonObject;
    const newJobTemplate = spec['jobTemplate'] as JsonObject;
    return {
      ...withSpec,
      spec: { ...spec, jobTemplate: { ...newJobTemplate, metadata: injected.metadata } },
    };
  }
  return replaceTemplate(doc, location.holder, location.key, {
    ...template,
    metadata: injected.metadata,
    spec: injected.spec,
  });
}

/** A copy of `doc` with the object at `holder[key]` replaced, copying only the path down to it. */
function replaceTemplate(doc: JsonObject, holder: JsonObject, key: string, value: JsonObject): JsonObject {
  const walk = (node: unknown): unknown => {
    if (node === holder) return { ...holder, [key]: value };
    if (!isObject(node)) return node;
    for (const [k, child] of Object.entries(node)) {
      const replaced = walk(child);
      if (replaced !== child) return { ...node, [k]: replaced };
    }
    return node;
  };
  return walk(doc) as JsonObject;
}

/**
 * Injects every workload of a manifest stream (Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets,
 * ReplicationControllers, Jobs, CronJobs, DeploymentConfigs, v1 Lists of them); other documents pass through.
 * Throws with the engine's message when a workload's annotations are invalid.
 */
export function kubeInjectDocuments(
  docs: readonly unknown[],
  settings: InjectorSettings,
  opts: KubeInjectOptions = {},
): unknown[] {
  return docs.map((doc) => (isObject(doc) ? injectDocument(doc, settings, opts) : doc));
}
