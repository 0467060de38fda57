// The injection pipeline (istiod's webhook `inject` → `injectPod`), pure: a pod and a revision's settings in, a
// decision and an RFC 6902 patch out. Steps: policy → annotation validation → templates merged onto the pod →
// user container overrides → post-processing (cluster envs, Prometheus merge, probe rewrite, status metadata,
// container order) → patch emitted from what changed. Pods are copied on write throughout, so unchanged
// subtrees keep their identity and the patch touches only what injection changed.
import { dumpAppProbers, mergeProbers, rewriteContainerProbes } from './app-probes.js';
import { goMarshal } from './go-json.js';
import { arrayEditOps, mapEditOps, pointer } from './json-patch.js';
import { strategicMerge } from './merge.js';
import { canonicalResources } from './quantity.js';
import { injectRequired } from './policy.js';
import {
  prometheusMerge,
  prometheusPort,
  prometheusKeyOf,
  withoutPrometheusAnnotations,
} from './prometheus.js';
import { parseProxyConfigAnnotation } from './proxy-config.js';
import { effectiveProxyConfig, type ProxyConfigLayers } from './proxy-config-resources.js';
import type { InjectorSettings, ProxyConfig } from './settings.js';
import { customTemplatesOf } from './custom-templates.js';
import { BUILT_IN_TEMPLATES, type InjectionTemplate, type TemplateContext } from './templates.js';
import {
  isObject,
  type Container,
  type JsonObject,
  type JsonPatchOp,
  type ObjectMeta,
  type Pod,
  type PodSpec,
} from './types.js';
import { parseGoBool, validateAnnotations } from './validate.js';

const PROXY = 'istio-proxy';
const INIT = 'istio-init';
const VALIDATION = 'istio-validation';
const CORE_DUMP = 'enable-core-dump';
const STATUS_ANNOTATION = 'sidecar.istio.io/status';
const OVERRIDES_ANNOTATION = 'proxy.istio.io/overrides';
const PROXY_CONFIG_ANNOTATION = 'proxy.istio.io/config';
const NATIVE_SIDECAR_MIN_MINOR = 33;

export interface InjectionRequest {
  /** The pod as received in AdmissionReview `request.object`. */
  pod: Pod;
  /** `request.namespace`, used when the pod carries none. */
  namespace: string;
  settings: InjectorSettings;
  /** Proxy env overrides from the request path, keyed by env name (e.g. ISTIO_META_CLUSTER_ID). */
  pathParams?: Record<string, string>;
  /** Kubelet minor versions of all nodes, for native-sidecar mode 'auto'. Undefined: unknown (classic layout). */
  nodeKubeletMinorVersions?: number[];
  /** Kubelet minor version of the node the pod is bound to, when it is (takes precedence). */
  podNodeKubeletMinor?: number;
  /** Extra templates by name (custom templates); they shadow the built-in ones. */
  templates?: Readonly<Record<string, InjectionTemplate>>;
  /** Annotations of the pod's Namespace; read on OpenShift for the SCC UID and supplemental-group ranges. */
  namespaceAnnotations?: Record<string, string>;
  /**
   * The ProxyConfig resources that apply to this pod (ProxyConfigIndex.layersFor), layered under and over its
   * `proxy.istio.io/config` annotation as istiod does. Undefined: none (kube-inject, or none exist).
   */
  proxyConfigLayers?: ProxyConfigLayers;
  /** The owning workload when known (kube-inject); otherwise guessed from the pod's controller reference. */
  owner?: ReturnType<typeof deploymentMetaFromPod>;
}

export type InjectionOutcome =
  | { kind: 'skipped'; reason: string }
  | { kind: 'injected'; patch: JsonPatchOp[]; pod: Pod }
  | { kind: 'rejected'; message: string };

interface InjectionStatus {
  containers: string[];
  initContainers: string[];
}

/** Native sidecars for this request: the global mode, or in 'auto' the kubelet versions (the bound node first). */
export function detectNativeSidecars(
  mode: InjectorSettings['nativeSidecars'],
  podNodeKubeletMinor: number | undefined,
  nodeKubeletMinorVersions: readonly number[] | undefined,
): boolean {
  if (mode === 'false') return false;
  if (mode === 'true') return true;
  if (podNodeKubeletMinor !== undefined) return podNodeKubeletMinor >= NATIVE_SIDECAR_MIN_MINOR;
  if (nodeKubeletMinorVersions === undefined) return false;
  return nodeKubeletMinorVersions.every((minor) => minor >= NATIVE_SIDECAR_MIN_MINOR);
}

/** The owning workload, guessed from the controller reference like istiod's GetDeployMetaFromPod. */
export function deploymentMetaFromPod(
  metadata: ObjectMeta,
  namespace: string,
): {
  typeMeta: { apiVersion: string; kind: string };
  deployMeta: { name: string; namespace: string };
} {
  const typeMeta = { apiVersion: 'v1', kind: 'Pod' };
  const deployMeta = { name: metadata.name ?? '', namespace };
  const labels = metadata.labels ?? {};
  if (metadata.generateName) {
    const controller = (metadata.ownerReferences ?? []).find((ref) => ref.controller === true);
    if (controller) {
      typeMeta.apiVersion = controller.apiVersion ?? '';
      typeMeta.kind = controller.kind ?? '';
      const ownerName = controller.name ?? '';
      deployMeta.name = ownerName;
      const hash = labels['pod-template-hash'];
      const rolloutHash = labels['rollouts-pod-template-hash'];
      if (typeMeta.kind === 'ReplicaSet' && hash && ownerName.endsWith(hash)) {
        deployMeta.name = trimSuffix(ownerName, `-${hash}`);
        typeMeta.kind = 'Deployment';
      } else if (typeMeta.kind === 'ReplicaSet' && rolloutHash && ownerName.endsWith(rolloutHash)) {
        deployMeta.name = trimSuffix(ownerName, `-${rolloutHash}`);
        typeMeta.kind = 'Rollout';
        typeMeta.apiVersion = 'v1alpha1';
      } else if (typeMeta.kind === 'ReplicationController' && labels['deploymentconfig']) {
        deployMeta.name = labels['deploymentconfig'];
        typeMeta.kind = 'DeploymentConfig';
      } else if (typeMeta.kind === 'Job') {
        const cron = /^(.+)-\d{8,10}$/.exec(ownerName);
        if (cron?.[1]) {
          deployMeta.name = cron[1];
          typeMeta.kind = 'CronJob';
          typeMeta.apiVersion = 'batch/v1';
        }
      }
    }
  }
  if (deployMeta.name === '') deployMeta.name = metadata.name ?? '';
  return { typeMeta, deployMeta };
}

const UID_RANGE_ANNOTATION = 'openshift.io/sa.scc.uid-range';
const SUPPLEMENTAL_GROUPS_ANNOTATION = 'openshift.io/sa.scc.supplemental-groups';

/** An OpenShift ID block, `<start>/<size>` or `<start>-<end>`, as its inclusive end. */
function blockEnd(block: string): number | undefined {
  const sized = /^\s*(\d+)\/(\d+)/.exec(block);
  if (sized) return Number(sized[1]) + Number(sized[2]) - 1;
  const ranged = /^\s*(\d+)-(\d+)/.exec(block);
  return ranged ? Number(ranged[2]) : undefined;
}

/** Proxy UID and GID: 1337, or on OpenShift the top of the namespace's UID range and first supplemental group. */
export function proxyIds(
  platform: InjectorSettings['platform'],
  namespaceAnnotations: Readonly<Record<string, string>> | undefined,
): { uid: number; gid: number } {
  const ids = { uid: 1337, gid: 1337 };
  if (platform !== 'openshift' || !namespaceAnnotations) return ids;
  const uidRange = namespaceAnnotations[UID_RANGE_ANNOTATION];
  const uid = uidRange ? blockEnd(uidRange) : undefined;
  if (uid !== undefined) ids.uid = uid;
  const groups = namespaceAnnotations[SUPPLEMENTAL_GROUPS_ANNOTATION] || uidRange;
  const gid = groups ? blockEnd(groups.split(',')[0] ?? '') : undefined;
  if (gid !== undefined) ids.gid = gid;
  return ids;
}

function trimSuffix(text: string, suffix: string): string {
  return text.endsWith(suffix) ? text.slice(0, -suffix.length) : text;
}

function findContainer(name: string, list: readonly Container[] | undefined): Container | undefined {
  return list?.find((c) => c.name === name);
}

function findInPod(name: string, pod: Pod): Container | undefined {
  return findContainer(name, pod.spec?.containers) ?? findContainer(name, pod.spec?.initContainers);
}

function parseStatus(value: string | undefined): InjectionStatus | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(value);
    if (!isObject(parsed)) return undefined;
    const names = (v: unknown): string[] =>
      Array.isArray(v) ? v.filter((n): n is string => typeof n === 'string') : [];
    return { containers: names(parsed['containers']), initContainers: names(parsed['initContainers']) };
  } catch {
    return undefined;
  }
}

interface ParsedOverrides {
  containers: Container[];
  initContainers: Container[];
}

function parseOverrides(value: string | undefined): ParsedOverrides {
  if (value === undefined) return { containers: [], initContainers: [] };
  const parsed: unknown = JSON.parse(value);
  if (!isObject(parsed)) throw new Error(`${OVERRIDES_ANNOTATION} is not a JSON object`);
  const list = (v: unknown): Container[] =>
    Array.isArray(v) ? v.filter(isObject).map((c) => c as Container) : [];
  return { containers: list(parsed['containers']), initContainers: list(parsed['initContainers']) };
}

function withSpec(pod: Pod, spec: PodSpec): Pod {
  return { ...pod, spec };
}

function withMetadata(pod: Pod, metadata: ObjectMeta): Pod {
  return { ...pod, metadata };
}

/** The pod the templates see: a previous injection's containers removed and user overrides put back. */
function templateInputPod(pod: Pod, meshStatusPort: number): Pod {
  const annotations = pod.metadata?.annotations ?? {};
  let stripped = pod;
  const status = parseStatus(annotations[STATUS_ANNOTATION]);
  if (status && annotations[STATUS_ANNOTATION] !== undefined) {
    const containers = (pod.spec?.containers ?? []).filter((c) => !status.containers.includes(c.name));
    const initContainers = (pod.spec?.initContainers ?? []).filter(
      (c) => !status.initContainers.includes(c.name),
    );
    let strippedAnnotations: Record<string, string> = { ...annotations };
    if (prometheusPort(strippedAnnotations) === String(meshStatusPort)) {
      strippedAnnotations = withoutPrometheusAnnotations(strippedAnnotations);
    }
    delete strippedAnnotations[STATUS_ANNOTATION];
    stripped = {
      ...pod,
      metadata: { ...pod.metadata, annotations: strippedAnnotations },
      spec: { ...pod.spec, containers, initContainers },
    };
  }
  const overrides = parseOverrides(annotations[OVERRIDES_ANNOTATION]);
  if (overrides.containers.length === 0 && overrides.initContainers.length === 0) return stripped;
  const containers = [...(stripped.spec?.containers ?? [])];
  const initContainers = [...(stripped.spec?.initContainers ?? [])];
  for (const c of overrides.containers) if (!findContainer(c.name, containers)) containers.push(c);
  for (const c of overrides.initContainers)
    if (!findContainer(c.name, initContainers)) initContainers.push(c);
  return withSpec(stripped, { ...stripped.spec, containers, initContainers });
}

/** `proxyImageURL`: hub/name:tag with the image type (variant) swapped in. */
export function proxyImageUrl(
  settings: InjectorSettings,
  imageName: string,
  imageType: string,
  annotations: Readonly<Record<string, string>>,
): string {
  let type = imageType || settings.variant;
  const annotated = annotations['sidecar.istio.io/proxyImageType'];
  if (annotated !== undefined) type = annotated;
  let tag = settings.tag;
  if (type !== '') {
    for (const known of ['distroless', 'debug']) {
      if (tag.endsWith(`-${known}`)) {
        tag = tag.slice(0, -(known.length + 1));
        break;
      }
    }
    if (type !== 'default') tag = `${tag}-${type}`;
  }
  return `${settings.hub}/${imageName}:${tag}`;
}

function selectTemplates(
  annotations: Readonly<Record<string, string>>,
  settings: InjectorSettings,
): string[] {
  const requested = annotations['inject.istio.io/templates'];
  const names =
    requested !== undefined ? requested.split(',').map((n) => n.trim()) : settings.defaultTemplates;
  return names.flatMap((name) => settings.aliases[name] ?? [name]);
}

function moveToInitContainers(pod: Pod, name: string, original: Pod): Pod {
  const containers = pod.spec?.containers ?? [];
  const index = containers.findIndex((c) => c.name === name);
  const moved = containers[index];
  if (moved === undefined) return pod;
  const inits = pod.spec?.initContainers ?? [];
  // Only when templates are chained (`sidecar,spire,more`): an earlier custom template in this injection
  // customised the proxy under `containers` while an init container of that name is already there. istiod appends
  // a second one, and one of the two is then lost (here the template's changes, silently); the fragment is meant
  // for that proxy, so it is merged into it. A container the pod arrived with keeps istiod's handling.
  const existing = (original.spec?.containers ?? []).includes(moved)
    ? -1
    : inits.findIndex((c) => c.name === name);
  return withSpec(pod, {
    ...pod.spec,
    containers: containers.filter((_, i) => i !== index),
    initContainers:
      existing >= 0
        ? inits.map((c, i) => (i === existing ? strategicMerge(c, moved) : c))
        : [...inits, moved],
  });
}

/** The probe fields istiod's built-in templates always write, zero or not. */
const TEMPLATE_PROBE_FIELDS = ['initialDelaySeconds', 'periodSeconds', 'timeoutSeconds', 'failureThreshold'];
const PROBES = ['readinessProbe', 'livenessProbe', 'startupProbe'] as const;

/**
 * istiod merges the template's YAML onto the pod, where a probe field the template writes as 0 still replaces the
 * pod's value before Go's omitempty drops it. The built-in templates leave zeros out, so where the pod already had
 * the container (an istio-proxy of the user's, or of an earlier injection in the same list), the fields they always
 * write and left out (their zeros) are removed here instead.
 */
function withTemplateProbeZeros(merged: Pod, rendered: Pod, original: Pod): Pod {
  return dropProbeFields(
    merged,
    renderedContainers(rendered).filter((c) => findInPod(c.name, original) !== undefined),
    (field, _value, written) =>
      written !== undefined && written[field] === undefined && TEMPLATE_PROBE_FIELDS.includes(field),
  );
}

/**
 * A custom template's containers keep the probe fields it wrote as 0 through the merge (custom-templates.ts), so
 * that they replace the pod's values as in istiod; Go's omitempty then drops them from the result.
 */
function withoutProbeZeros(merged: Pod, rendered: Pod): Pod {
  return dropProbeFields(
    merged,
    renderedContainers(rendered).filter((c) => PROBES.some((probe) => isObject(c[probe]))),
    (_field, value) => value === 0,
  );
}

function renderedContainers(rendered: Pod): Container[] {
  return [...(rendered.spec?.containers ?? []), ...(rendered.spec?.initContainers ?? [])];
}

/**
 * Removes from the merged pod's copy of each of `containers` the probe fields `drop` picks, given the field, its
 * merged value and the probe as the template wrote it (undefined when it wrote none).
 */
function dropProbeFields(
  merged: Pod,
  containers: readonly Container[],
  drop: (field: string, value: unknown, written: JsonObject | undefined) => boolean,
): Pod {
  let pod = merged;
  for (const container of containers) {
    pod = mapContainer(pod, container.name, (c) => {
      let next = c;
      for (const probe of PROBES) {
        const current = next[probe];
        if (!isObject(current)) continue;
        const written = isObject(container[probe]) ? (container[probe] as JsonObject) : undefined;
        const dropped = Object.keys(current).filter((field) => drop(field, current[field], written));
        if (dropped.length === 0) continue;
        const kept: JsonObject = { ...current };
        for (const field of dropped) delete kept[field];
        next = { ...next, [probe]: kept };
      }
      return next;
    });
  }
  return pod;
}

function mapContainer(pod: Pod, name: string, update: (c: Container) => Container): Pod {
  const spec = pod.spec ?? {};
  for (const key of ['containers', 'initContainers'] as const) {
    const list = spec[key];
    const index = list?.findIndex((c) => c.name === name) ?? -1;
    if (list && index >= 0) {
      const current = list[index] as Container;
      const next = update(current);
      if (next === current) return pod;
      const copy = list.slice();
      copy[index] = next;
      return withSpec(pod, { ...spec, [key]: copy });
    }
  }
  return pod;
}

/** Moves the named container to the front or back of a list (istiod's modifyContainers). */
function moveContainer(list: readonly Container[], name: string, where: 'first' | 'last'): Container[] {
  const match = list.find((c) => c.name === name);
  if (!match) return list as Container[];
  const rest = list.filter((c) => c.name !== name);
  return where === 'first' ? [match, ...rest] : [...rest, match];
}

function appendEnv(container: Container, name: string, value: string): Container {
  return { ...container, env: [...(container.env ?? []), { name, value }] };
}

/** The user's istio-proxy runAsUser/runAsGroup carried over to the traffic-setup init container. */
function adjustInitContainerUser(
  finalPod: Pod,
  userProxy: Container | undefined,
  proxyConfig: ProxyConfig,
): Pod {
  const user = userProxy?.securityContext;
  if (!user || (user.runAsUser === undefined && user.runAsGroup === undefined)) return finalPod;
  const inits = finalPod.spec?.initContainers ?? [];
  const init = findContainer(INIT, inits) ?? findContainer(VALIDATION, inits);
  if (!init) return finalPod;
  const tproxy =
    proxyConfig.interceptionMode === 'TPROXY' ||
    finalPod.metadata?.annotations?.['sidecar.istio.io/interceptionMode'] === 'TPROXY';
  let pod = finalPod;
  if (tproxy && user.runAsUser !== undefined) {
    pod = mapContainer(pod, PROXY, (c) => ({
      ...c,
      securityContext: { ...c.securityContext, runAsUser: 0 },
    }));
  }
  pod = mapContainer(pod, init.name, (c) => {
    let next = c;
    if (!tproxy && c.name === VALIDATION) {
      next = {
        ...next,
        securityContext: {
          ...next.securityContext,
          ...(user.runAsUser !== undefined ? { runAsUser: user.runAsUser } : {}),
          ...(user.runAsGroup !== undefined ? { runAsGroup: user.runAsGroup } : {}),
        },
      };
    }
    if (user.runAsUser !== undefined && user.runAsUser !== 0 && next.args) {
      const at = next.args.indexOf('-u');
      if (at >= 0 && at + 1 < next.args.length) {
        const args = next.args.slice();
        args[at + 1] = String(user.runAsUser);
        next = { ...next, args };
      }
    }
    return next;
  });
  return pod;
}

/**
 * User customisation of injected containers: a container of the same name in the pod (or recorded in
 * proxy.istio.io/overrides) is merged over what the template produced, `image: auto` keeping the injected image.
 */
function reapplyOverrides(finalPod: Pod, originalPod: Pod, templatePod: Pod, proxyConfig: ProxyConfig): Pod {
  const annotations = originalPod.metadata?.annotations ?? {};
  const existing = parseOverrides(annotations[OVERRIDES_ANNOTATION]);
  const statusValue = annotations[STATUS_ANNOTATION];
  const status =
    statusValue !== undefined
      ? (parseStatus(statusValue) ?? { containers: [], initContainers: [] })
      : undefined;
  const recorded: ParsedOverrides = { containers: [], initContainers: [] };
  let pod = finalPod;
  const overlayOf = (match: Container): Container => {
    const overlay: Container = { ...match };
    if (overlay.image === 'auto' || overlay.image === '') delete overlay.image;
    // The user's container reaches istiod as a Go struct, so its quantities are already canonical there.
    if (isObject(overlay.resources)) overlay.resources = canonicalResources(overlay.resources);
    return overlay;
  };
  // On re-injection the pod's copy of an injected container is istiod's output, not the user's wish; istiod then
  // lets the template win, which undoes the user's overrides. meshrev re-applies the recorded overrides instead,
  // so that re-injection (reinvocationPolicy IfNeeded, kube-inject of injected YAML) is idempotent.
  for (const c of templatePod.spec?.containers ?? []) {
    const reinjected = status?.containers.includes(c.name) === true;
    const match =
      findContainer(c.name, existing.containers) ??
      (reinjected ? undefined : findContainer(c.name, originalPod.spec?.containers));
    if (!match) continue;
    const overlay = overlayOf(match);
    recorded.containers.push(overlay);
    pod = strategicMerge(pod, { spec: { containers: [overlay] } });
  }
  for (const c of templatePod.spec?.initContainers ?? []) {
    const reinjected = status?.initContainers.includes(c.name) === true;
    const match =
      findContainer(c.name, existing.initContainers) ??
      (reinjected ? undefined : findInPod(c.name, originalPod));
    if (!match) continue;
    const overlay = overlayOf(match);
    recorded.initContainers.push(overlay);
    pod = strategicMerge(pod, { spec: { initContainers: [overlay] } });
  }
  if (status === undefined && (recorded.containers.length > 0 || recorded.initContainers.length > 0)) {
    pod = withMetadata(pod, {
      ...pod.metadata,
      annotations: {
        ...pod.metadata?.annotations,
        [OVERRIDES_ANNOTATION]: goMarshal(recorded, 'ParsedContainers'),
      },
    });
  }
  const userProxy =
    findContainer(PROXY, existing.containers) ??
    findContainer(PROXY, existing.initContainers) ??
    findInPod(PROXY, originalPod);
  return adjustInitContainerUser(pod, userProxy, proxyConfig);
}

function injectionStatusJson(templatePod: Pod, revision: string): string {
  const names = (list: ReadonlyArray<{ name: string }> | undefined): string[] | null =>
    list && list.length > 0 ? list.map((e) => e.name) : null;
  const spec = templatePod.spec ?? {};
  return goMarshal(
    {
      initContainers: names(spec.initContainers),
      containers: names(spec.containers),
      volumes: names(spec.volumes),
      imagePullSecrets: names(spec.imagePullSecrets),
      revision: revision || 'default',
    },
    'InjectionStatus',
  );
}

/** The RFC 6902 patch from the received pod to the injected one, built from what the pipeline replaced. */
export function buildPatch(original: Pod, final: Pod): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  const diffObject = (
    path: string,
    before: JsonObject,
    after: JsonObject,
    handled: (key: string) => boolean,
  ): void => {
    for (const key of Object.keys(before)) {
      if (!(key in after) && !handled(key)) ops.push({ op: 'remove', path: path + pointer(key) });
    }
    for (const [key, value] of Object.entries(after)) {
      if (handled(key) || before[key] === value) continue;
      ops.push({ op: key in before ? 'replace' : 'add', path: path + pointer(key), value });
    }
  };
  const metaBefore = original.metadata ?? {};
  const metaAfter = final.metadata ?? {};
  if (original.metadata === undefined && final.metadata !== undefined) {
    ops.push({ op: 'add', path: '/metadata', value: final.metadata });
  } else if (metaBefore !== metaAfter) {
    for (const key of ['labels', 'annotations'] as const) {
      if (metaBefore[key] !== metaAfter[key])
        ops.push(...mapEditOps(`/metadata/${key}`, metaBefore[key], metaAfter[key] ?? {}));
    }
    diffObject('/metadata', metaBefore, metaAfter, (k) => k === 'labels' || k === 'annotations');
  }
  const specBefore: JsonObject = original.spec ?? {};
  const specAfter: JsonObject = final.spec ?? {};
  if (original.spec === undefined && final.spec !== undefined) {
    ops.push({ op: 'add', path: '/spec', value: final.spec });
  } else if (specBefore !== specAfter) {
    const isList = (k: string): boolean => Array.isArray(specBefore[k]) && Array.isArray(specAfter[k]);
    for (const key of Object.keys(specAfter)) {
      if (isList(key) && specBefore[key] !== specAfter[key]) {
        ops.push(
          ...arrayEditOps(`/spec${pointer(key)}`, specBefore[key] as unknown[], specAfter[key] as unknown[]),
        );
      }
    }
    diffObject('/spec', specBefore, specAfter, isList);
  }
  return ops;
}

/** Runs the whole injection for one admission request. Pure; never throws for bad pod input. */
export function injectPod(req: InjectionRequest): InjectionOutcome {
  const { settings } = req;
  const original = req.pod;
  const metadata: ObjectMeta = original.metadata ?? {};
  const namespace = metadata.namespace || req.namespace;
  const decision = injectRequired(settings, original.spec ?? {}, { ...metadata, namespace });
  if (!decision.inject) return { kind: 'skipped', reason: decision.reason };
  try {
    return runInjection(req, namespace);
  } catch (error) {
    return { kind: 'rejected', message: (error as Error).message };
  }
}

class RejectedError extends Error {}

/**
 * On OpenShift a user istio-proxy running as the same UID as the app loses its runAsUser/runAsGroup so that the
 * namespace-derived proxy UID applies (istiod does this before computing the patch).
 */
function resetSidecarUserOnOpenShift(pod: Pod): Pod {
  const all = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  const proxy = all.find((c) => c.name === PROXY);
  if (!proxy?.securityContext) return pod;
  let sidecarUser = 0;
  let appUser = 0;
  for (const c of all) {
    const user = c.securityContext?.runAsUser;
    if (c.name === PROXY) sidecarUser = user ?? sidecarUser;
    else if (c.name !== VALIDATION && c.name !== INIT && user !== undefined) appUser = user;
  }
  if (sidecarUser !== appUser) return pod;
  return mapContainer(pod, PROXY, (c) => {
    const { runAsUser: _user, runAsGroup: _group, ...securityContext } = c.securityContext ?? {};
    return { ...c, securityContext };
  });
}

function runInjection(req: InjectionRequest, namespace: string): InjectionOutcome {
  const { settings } = req;
  const original = settings.platform === 'openshift' ? resetSidecarUserOnOpenShift(req.pod) : req.pod;
  const annotations = original.metadata?.annotations ?? {};
  const invalid = validateAnnotations(annotations);
  if (invalid.length > 0) {
    return { kind: 'rejected', message: `failed to run injection template: ${invalid.join('; ')}` };
  }
  const annotationConfig = annotations[PROXY_CONFIG_ANNOTATION];
  const proxyConfig = effectiveProxyConfig(
    settings.mesh.defaultConfig,
    req.proxyConfigLayers,
    annotationConfig === undefined ? undefined : parseProxyConfigAnnotation(annotationConfig),
  );
  const meshStatusPort = settings.mesh.defaultConfig.statusPort ?? 15020;

  const proxyEnvs: Record<string, string> = { ...req.pathParams };
  let cluster = settings.clusterName;
  let network = settings.network;
  if (proxyEnvs['ISTIO_META_CLUSTER_ID']) cluster = proxyEnvs['ISTIO_META_CLUSTER_ID'];
  if (proxyEnvs['ISTIO_META_NETWORK']) network = proxyEnvs['ISTIO_META_NETWORK'];
  const networkLabel = original.metadata?.labels?.['topology.istio.io/network'];
  if (networkLabel !== undefined) network = networkLabel;
  if (cluster) proxyEnvs['ISTIO_META_CLUSTER_ID'] = cluster;
  if (network) proxyEnvs['ISTIO_META_NETWORK'] = network;

  const input = templateInputPod(original, meshStatusPort);
  const inputMeta = input.metadata ?? {};
  const { typeMeta, deployMeta } = req.owner ?? deploymentMetaFromPod({ ...original.metadata }, namespace);
  const nativeSidecars = detectNativeSidecars(
    settings.nativeSidecars,
    req.podNodeKubeletMinor,
    req.nodeKubeletMinorVersions,
  );
  const ids = proxyIds(settings.platform, req.namespaceAnnotations);
  const ctx: TemplateContext = {
    settings,
    typeMeta,
    deployMeta,
    metadata: inputMeta,
    spec: input.spec ?? {},
    proxyConfig,
    nativeSidecars,
    proxyImage: proxyImageUrl(
      settings,
      settings.proxyImage || 'proxyv2',
      proxyConfig.image?.imageType ?? '',
      inputMeta.annotations ?? {},
    ),
    proxyInitImage: proxyImageUrl(
      settings,
      settings.proxyInitImage || 'proxyv2',
      '',
      inputMeta.annotations ?? {},
    ),
    proxyUid: ids.uid,
    proxyGid: ids.gid,
  };

  let merged: Pod = original;
  let templatePod: Pod = {};
  const templates = { ...BUILT_IN_TEMPLATES, ...customTemplatesOf(settings), ...req.templates };
  const nativeOverride = annotations['sidecar.istio.io/nativeSidecar'];
  const native = nativeOverride === 'true' ? true : nativeOverride === 'false' ? false : nativeSidecars;
  for (const name of selectTemplates(annotations, settings)) {
    const template = templates[name];
    if (!template) {
      throw new RejectedError(
        `failed to run injection template: requested template "${name}" not found; have ${Object.keys(templates).join(', ')}`,
      );
    }
    const rendered = template(ctx);
    templatePod = strategicMerge(templatePod, rendered);
    if (
      native &&
      findContainer(PROXY, templatePod.spec?.initContainers) &&
      findContainer(PROXY, merged.spec?.containers)
    ) {
      merged = moveToInitContainers(merged, PROXY, original);
    }
    merged = strategicMerge(merged, rendered);
    merged =
      BUILT_IN_TEMPLATES[name] === template
        ? withTemplateProbeZeros(merged, rendered, original)
        : withoutProbeZeros(merged, rendered);
  }

  let pod = reapplyOverrides(merged, original, templatePod, proxyConfig);
  pod = withMetadata(pod, {
    ...pod.metadata,
    annotations: { ...pod.metadata?.annotations },
    labels: { ...pod.metadata?.labels },
  });

  if (Object.keys(proxyEnvs).length > 0) {
    const names = Object.keys(proxyEnvs).sort();
    pod = mapContainer(pod, PROXY, (c) => ({
      ...c,
      env: [
        ...(c.env ?? []).filter((e) => !(e.name in proxyEnvs)),
        ...names.map((name) => ({ name, value: proxyEnvs[name] ?? '' })),
      ],
    }));
  }

  const merge = prometheusMerge(
    pod.metadata?.annotations ?? {},
    settings.mesh.enablePrometheusMerge,
    meshStatusPort,
  );
  if (merge.kind === 'error') throw new RejectedError(`failed to process pod: ${merge.message}`);
  if (merge.kind === 'merged') {
    pod = withMetadata(pod, { ...pod.metadata, annotations: merge.annotations });
    const scrapeEnv = merge.scrapeEnv;
    if (scrapeEnv !== undefined)
      pod = mapContainer(pod, PROXY, (c) => appendEnv(c, 'ISTIO_PROMETHEUS_ANNOTATIONS', scrapeEnv));
  }

  pod = applySecurePrometheusAnnotation(pod);
  pod = applyProbeRewrite(pod, settings, meshStatusPort);

  const finalAnnotations: Record<string, string> = { ...pod.metadata?.annotations };
  const finalLabels: Record<string, string> = { ...pod.metadata?.labels };
  const injectedNetwork = proxyEnvs['ISTIO_META_NETWORK'];
  if (injectedNetwork !== undefined) finalLabels['topology.istio.io/network'] = injectedNetwork;
  finalAnnotations[STATUS_ANNOTATION] = injectionStatusJson(templatePod, settings.revision);
  Object.assign(finalAnnotations, settings.injectedAnnotations);
  pod = withMetadata(pod, { ...pod.metadata, labels: finalLabels, annotations: finalAnnotations });

  pod = reorderContainers(pod, proxyConfig, settings);
  return { kind: 'injected', patch: buildPatch(original, pod), pod };
}

function applySecurePrometheusAnnotation(pod: Pod): Pod {
  const annotations = pod.metadata?.annotations ?? {};
  if (Object.keys(annotations).some((k) => prometheusKeyOf(k) === 'prometheus_istio_io_secure_port')) {
    return pod;
  }
  const port = findInPod(PROXY, pod)?.env?.find(
    (e) =>
      e.name === 'ENVOY_SECURE_MERGED_METRICS_PORT' &&
      e.value !== undefined &&
      e.value !== '' &&
      e.value !== '0',
  )?.value;
  if (port === undefined) return pod;
  return withMetadata(pod, {
    ...pod.metadata,
    annotations: { ...annotations, 'prometheus.istio.io/secure-port': port },
  });
}

function applyProbeRewrite(pod: Pod, settings: InjectorSettings, meshStatusPort: number): Pod {
  if (!findInPod(PROXY, pod)) return pod;
  const annotations = pod.metadata?.annotations ?? {};
  const requested = annotations['sidecar.istio.io/rewriteAppHTTPProbers'];
  const rewrite =
    (requested !== undefined ? parseGoBool(requested) : undefined) ?? settings.rewriteAppHTTPProbe;
  if (!rewrite) return pod;
  const spec = pod.spec ?? {};
  const probers = dumpAppProbers(
    [...(spec.initContainers ?? []), ...(spec.containers ?? [])],
    meshStatusPort,
  );
  let out = pod;
  if (probers !== '') {
    const previouslyInjected = annotations[STATUS_ANNOTATION] !== undefined;
    out = mapContainer(out, PROXY, (c) => {
      const env = c.env ?? [];
      const at = previouslyInjected ? env.findIndex((e) => e.name === 'ISTIO_KUBE_APP_PROBERS') : -1;
      if (at < 0) return appendEnv(c, 'ISTIO_KUBE_APP_PROBERS', probers);
      const mergedValue = mergeProbers(env[at]?.value ?? '', probers);
      if (mergedValue === undefined) return c;
      const copy = env.slice();
      copy[at] = { name: 'ISTIO_KUBE_APP_PROBERS', value: mergedValue };
      return { ...c, env: copy };
    });
  }
  const statusAnnotation = annotations['status.sidecar.istio.io/port'];
  const statusPort = statusAnnotation !== undefined ? Number(statusAnnotation) || 0 : meshStatusPort;
  const rewriteList = (list: Container[] | undefined): Container[] | undefined => {
    if (!list) return list;
    let changed = false;
    const next = list.map((c) => {
      if (c.name === PROXY) return c;
      const r = rewriteContainerProbes(c, statusPort);
      if (r !== c) changed = true;
      return r;
    });
    return changed ? next : list;
  };
  const outSpec = out.spec ?? {};
  const containers = rewriteList(outSpec.containers);
  const initContainers = rewriteList(outSpec.initContainers);
  if (containers === outSpec.containers && initContainers === outSpec.initContainers) return out;
  return withSpec(out, {
    ...outSpec,
    ...(containers ? { containers } : {}),
    ...(initContainers ? { initContainers } : {}),
  });
}

/**
 * Container order: istio-proxy last, or first when the app must wait for it; with a native sidecar the init
 * containers start with traffic setup, the proxy and core-dump setup, classic keeps istio-init after user inits.
 */
function reorderContainers(pod: Pod, proxyConfig: ProxyConfig, settings: InjectorSettings): Pod {
  const hold =
    proxyConfig.holdApplicationUntilProxyStarts === true || settings.holdApplicationUntilProxyStarts;
  const spec = pod.spec ?? {};
  const next: PodSpec = { ...spec };
  if (spec.containers) next.containers = moveContainer(spec.containers, PROXY, hold ? 'first' : 'last');
  if (spec.initContainers) {
    let inits: Container[] = spec.initContainers;
    if (findContainer(PROXY, inits)) {
      for (const name of [CORE_DUMP, PROXY, VALIDATION, INIT]) inits = moveContainer(inits, name, 'first');
    } else {
      inits = moveContainer(inits, VALIDATION, 'first');
      inits = moveContainer(inits, INIT, 'last');
      inits = moveContainer(inits, CORE_DUMP, 'last');
    }
    next.initContainers = inits;
  }
  return withSpec(pod, next);
}
