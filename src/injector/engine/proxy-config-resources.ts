// ProxyConfig custom resources (networking.istio.io ProxyConfig) as istiod layers them into a pod's proxy config
// (its ProxyConfigs.EffectiveProxyConfig): the mesh `defaultConfig`, then the root namespace's ProxyConfig without a
// selector (mesh-wide), then the pod's namespace's one without a selector, then the `proxy.istio.io/config`
// annotation, then the first ProxyConfig in the pod's namespace whose selector matches the pod's labels. Later layers
// win. Within a namespace istiod takes the oldest matching resource (creation time, then name), so a second
// namespace-wide ProxyConfig is ignored rather than merged. A resource sets at most `concurrency`, the agent's
// environment (`environmentVariables`, which become `proxyMetadata`) and the proxy image type.
import { mergeProxyConfig } from './proxy-config.js';
import type { ProxyConfig } from './settings.js';
import { isObject } from './types.js';

/** One ProxyConfig resource reduced to what injection reads. */
export interface ProxyConfigResource {
  namespace: string;
  name: string;
  /** RFC 3339, as the API server writes it; '' sorts first. */
  creationTimestamp: string;
  /**
   * `spec.selector.matchLabels`. Undefined when the resource has no selector: it applies to its whole namespace
   * (the whole mesh in the root namespace). A selector without labels matches nothing, as in istiod.
   */
  matchLabels: Readonly<Record<string, string>> | undefined;
  /** The ProxyConfig fields the resource sets. */
  config: ProxyConfig;
}

/** The resource layers that apply to one pod (see the top of this file). */
export interface ProxyConfigLayers {
  mesh?: ProxyConfig;
  namespace?: ProxyConfig;
  workload?: ProxyConfig;
}

const INT32_MAX = 2 ** 31 - 1;

function stringMap(value: unknown, field: string): Record<string, string> | string {
  if (!isObject(value)) return `${field} must be a map of strings`;
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') return `${field}.${key} must be a string`;
  }
  return value as Record<string, string>;
}

/**
 * A ProxyConfig object as listed from the API server, or why it cannot be used. The checks are the types
 * istiod's own decoding enforces; istiod skips an object it cannot decode, and so does the injector.
 */
export function proxyConfigResourceFrom(
  obj: unknown,
): { ok: true; resource: ProxyConfigResource } | { ok: false; message: string } {
  if (!isObject(obj) || !isObject(obj['metadata'])) return { ok: false, message: 'metadata is missing' };
  const metadata = obj['metadata'];
  const namespace = metadata['namespace'];
  const name = metadata['name'];
  if (typeof namespace !== 'string' || typeof name !== 'string') {
    return { ok: false, message: 'metadata.namespace and metadata.name must be strings' };
  }
  const spec = obj['spec'] ?? {};
  if (!isObject(spec)) return { ok: false, message: 'spec must be an object' };

  let matchLabels: Record<string, string> | undefined;
  const selector = spec['selector'];
  if (selector !== undefined && selector !== null) {
    if (!isObject(selector)) return { ok: false, message: 'spec.selector must be an object' };
    const labels = selector['matchLabels'] ?? {};
    const parsed = stringMap(labels, 'spec.selector.matchLabels');
    if (typeof parsed === 'string') return { ok: false, message: parsed };
    matchLabels = parsed;
  }

  const config: ProxyConfig = {};
  const concurrency = spec['concurrency'];
  if (concurrency !== undefined && concurrency !== null) {
    if (
      typeof concurrency !== 'number' ||
      !Number.isInteger(concurrency) ||
      concurrency < 0 ||
      concurrency > INT32_MAX
    ) {
      return { ok: false, message: 'spec.concurrency must be a non-negative 32-bit integer' };
    }
    config.concurrency = concurrency;
  }
  const environment = spec['environmentVariables'];
  if (environment !== undefined && environment !== null) {
    const parsed = stringMap(environment, 'spec.environmentVariables');
    if (typeof parsed === 'string') return { ok: false, message: parsed };
    config.proxyMetadata = parsed;
  }
  const image = spec['image'];
  if (image !== undefined && image !== null) {
    if (!isObject(image)) return { ok: false, message: 'spec.image must be an object' };
    const imageType = image['imageType'] ?? '';
    if (typeof imageType !== 'string') return { ok: false, message: 'spec.image.imageType must be a string' };
    config.image = { imageType };
  }

  const created = metadata['creationTimestamp'];
  return {
    ok: true,
    resource: {
      namespace,
      name,
      creationTimestamp: typeof created === 'string' ? created : '',
      matchLabels,
      config,
    },
  };
}

/** istiod's order: oldest first, then by name, then by namespace. */
function compareResources(a: ProxyConfigResource, b: ProxyConfigResource): number {
  const byTime = compareTimestamps(a.creationTimestamp, b.creationTimestamp);
  if (byTime !== 0) return byTime;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  return 0;
}

function compareTimestamps(a: string, b: string): number {
  const ta = a === '' ? -Infinity : Date.parse(a);
  const tb = b === '' ? -Infinity : Date.parse(b);
  if (ta === tb || (Number.isNaN(ta) && Number.isNaN(tb))) return 0;
  if (Number.isNaN(ta)) return 1;
  if (Number.isNaN(tb)) return -1;
  return ta < tb ? -1 : 1;
}

function selects(
  matchLabels: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  const keys = Object.keys(matchLabels);
  return keys.length > 0 && keys.every((key) => labels[key] === matchLabels[key]);
}

/** The layers chosen for one pod, and the resources they came from (`namespace/name`), most general first. */
export interface ChosenLayers {
  layers: ProxyConfigLayers;
  sources: ProxyConfigResource[];
  /** What the layers set, as text: the part of a verdict cache key that depends on them. */
  key: string;
}

/** The ProxyConfig resources one revision sees, indexed by namespace in istiod's order. */
export class ProxyConfigIndex {
  private readonly byNamespace = new Map<string, ProxyConfigResource[]>();
  /** By namespace and workload resource. Bounded by the namespaces pods are admitted to, times their selectors. */
  private readonly chosen = new Map<string, ChosenLayers | undefined>();

  constructor(
    resources: readonly ProxyConfigResource[],
    private readonly rootNamespace: string,
  ) {
    for (const resource of [...resources].sort(compareResources)) {
      const list = this.byNamespace.get(resource.namespace) ?? [];
      list.push(resource);
      this.byNamespace.set(resource.namespace, list);
    }
  }

  get size(): number {
    let count = 0;
    for (const list of this.byNamespace.values()) count += list.length;
    return count;
  }

  /**
   * The layers for a pod in `namespace` with `labels`; undefined when no resource applies. Pods given the same
   * resources are given the same object.
   */
  layersFor(namespace: string, labels: Readonly<Record<string, string>>): ChosenLayers | undefined {
    if (this.byNamespace.size === 0) return undefined;
    const workload = this.byNamespace
      .get(namespace)
      ?.find((r) => r.matchLabels !== undefined && selects(r.matchLabels, labels));
    // A namespace without resources of its own gets the mesh-wide layer only, so one entry serves every such
    // namespace: the memo cannot grow with namespaces that hold no ProxyConfig (a forged review can name any).
    const scope = this.byNamespace.has(namespace) ? namespace : '';
    const key = `${scope}\n${workload?.name ?? ''}`;
    let chosen = this.chosen.get(key);
    if (chosen === undefined && !this.chosen.has(key)) {
      chosen = this.choose(scope, workload);
      this.chosen.set(key, chosen);
    }
    return chosen;
  }

  private choose(namespace: string, workload: ProxyConfigResource | undefined): ChosenLayers | undefined {
    const mesh = this.namespaceWide(this.rootNamespace);
    const own = namespace === this.rootNamespace ? undefined : this.namespaceWide(namespace);
    if (!mesh && !own && !workload) return undefined;
    const layers: ProxyConfigLayers = {};
    const sources: ProxyConfigResource[] = [];
    if (mesh) {
      layers.mesh = mesh.config;
      sources.push(mesh);
    }
    if (own) {
      layers.namespace = own.config;
      sources.push(own);
    }
    if (workload) {
      layers.workload = workload.config;
      sources.push(workload);
    }
    return { layers, sources, key: JSON.stringify(layers) };
  }

  private namespaceWide(namespace: string): ProxyConfigResource | undefined {
    return this.byNamespace.get(namespace)?.find((r) => r.matchLabels === undefined);
  }
}

/**
 * A pod's proxy config: the mesh default, then the resource layers and the pod's `proxy.istio.io/config`
 * (already parsed), in istiod's precedence. Returns `meshDefault` itself when nothing applies, so its PROXY_CONFIG
 * encoding stays shared by every such pod.
 */
export function effectiveProxyConfig(
  meshDefault: ProxyConfig,
  layers: ProxyConfigLayers | undefined,
  annotation: ProxyConfig | undefined,
): ProxyConfig {
  if (layers === undefined)
    return annotation === undefined ? meshDefault : mergeProxyConfig(meshDefault, annotation);
  // Pods that share their layers (a namespace's, or one selector's, on the main thread) share the result too.
  const memo = annotation === undefined ? withoutAnnotation.get(layers) : undefined;
  if (memo !== undefined && memo.meshDefault === meshDefault) return memo.config;
  let config = meshDefault;
  for (const layer of [layers.mesh, layers.namespace, annotation, layers.workload]) {
    if (layer !== undefined) config = mergeProxyConfig(config, layer);
  }
  if (annotation === undefined) withoutAnnotation.set(layers, { meshDefault, config });
  return config;
}

const withoutAnnotation = new WeakMap<ProxyConfigLayers, { meshDefault: ProxyConfig; config: ProxyConfig }>();
