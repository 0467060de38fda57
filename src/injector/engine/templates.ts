// The injection templates as TypeScript builders. Each returns the Pod fragment istiod's Go template of the same
// name renders (files/injection-template.yaml, gateway-injection-template.yaml, grpc-agent.yaml, grpc-simple.yaml),
// which the engine then strategically merges onto the pod. Values that Go would drop when unmarshalling into
// corev1 types (zero probe fields, empty strings) are left out here for the same result.
import { sprint } from './go-template/fmt.js';
import { goMarshal } from './go-json.js';
import { proxyConfigJson } from './proxy-config.js';
import { canonicalResources } from './quantity.js';
import type { InjectorSettings, ProxyConfig } from './settings.js';
import type {
  Container,
  EnvVar,
  JsonObject,
  ObjectMeta,
  Pod,
  PodSpec,
  ResourceRequirements,
  Volume,
} from './types.js';
import { isObject } from './types.js';

export interface TemplateContext {
  settings: InjectorSettings;
  /** Kind and apiVersion of the workload owning the pod (from its controller reference). */
  typeMeta: { apiVersion: string; kind: string };
  deployMeta: { name: string; namespace: string };
  /** Metadata and spec of the pod with any previous injection stripped. */
  metadata: ObjectMeta;
  spec: PodSpec;
  /** Mesh default ProxyConfig merged with the pod's proxy.istio.io/config. */
  proxyConfig: ProxyConfig;
  /** Native sidecars as detected for the cluster, before the pod's own annotation. */
  nativeSidecars: boolean;
  proxyImage: string;
  proxyInitImage: string;
  proxyUid: number;
  proxyGid: number;
}

export type InjectionTemplate = (ctx: TemplateContext) => Pod;

const PROXY = 'istio-proxy';

/** `annotation .ObjectMeta name default`: the annotation when present (even empty), else the default. */
function annotation(ctx: TemplateContext, name: string, fallback: string | number | boolean): string {
  const annotations = ctx.metadata.annotations ?? {};
  return Object.prototype.hasOwnProperty.call(annotations, name)
    ? (annotations[name] ?? '')
    : String(fallback);
}

function isset(ctx: TemplateContext, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(ctx.metadata.annotations ?? {}, name);
}

function label(ctx: TemplateContext, name: string): string {
  return ctx.metadata.labels?.[name] ?? '';
}

function appContainerNames(ctx: TemplateContext): string[] {
  return (ctx.spec.containers ?? []).filter((c) => c.name !== PROXY).map((c) => c.name);
}

function interceptionMode(ctx: TemplateContext): string {
  return annotation(ctx, 'sidecar.istio.io/interceptionMode', ctx.proxyConfig.interceptionMode ?? 'REDIRECT');
}

export function isNativeSidecar(ctx: Pick<TemplateContext, 'metadata' | 'nativeSidecars'>): boolean {
  const value = ctx.metadata.annotations?.['sidecar.istio.io/nativeSidecar'] || String(ctx.nativeSidecars);
  return value !== 'false';
}

/** `excludeInboundPort`: the status port appended to the excluded inbound ports unless 0 or already present. */
export function excludeInboundPort(port: string, excluded: string): string {
  const portText = port.trim();
  if (portText === '' || portText === '0') return excluded;
  const out: string[] = [];
  for (const entry of excluded.split(',')) {
    if (entry === portText) return excluded;
    if (entry.trim() !== '') out.push(entry.trim());
  }
  out.push(portText);
  return out.join(',');
}

/** `appendMultusNetwork`: adds the istio-cni network to a flat or JSON multus networks annotation once. */
export function appendMultusNetwork(existing: string, network: string): string {
  if (existing === '') return network;
  const close = existing.lastIndexOf(']');
  const slash = network.indexOf('/');
  const [ns, name] = slash >= 0 ? [network.slice(0, slash), network.slice(slash + 1)] : ['', network];
  if (close !== -1) {
    let networks: unknown;
    try {
      networks = JSON.parse(existing);
    } catch {
      return existing;
    }
    if (!Array.isArray(networks)) return existing;
    for (const entry of networks) {
      if (isObject(entry) && entry['name'] === name && (entry['namespace'] ?? '') === ns) return existing;
    }
    const item = ns === '' ? `, {"name": "${name}"}` : `, {"name": "${name}", "namespace": "${ns}"}`;
    return existing.slice(0, close) + item + existing.slice(close);
  }
  if (existing.split(',').some((n) => n.trim() === network)) return existing;
  return `${existing}, ${network}`;
}

/**
 * istiod's omitNil: drops nil (JSON null) values from maps and lists, recursively. A map or list that lost an entry
 * and is left empty becomes nil itself; one that had no nil in it is kept as it is, even when empty.
 */
export function omitNil(value: unknown): unknown {
  return withoutNils(value).value;
}

function withoutNils(value: unknown): { value: unknown; changed: boolean } {
  if (value === null || value === undefined) return { value: null, changed: true };
  if (Array.isArray(value)) {
    const kept: unknown[] = [];
    let changed = false;
    for (const item of value as unknown[]) {
      const inner = withoutNils(item);
      changed ||= inner.changed;
      if (inner.value !== null) kept.push(inner.value);
    }
    if (!changed) return { value, changed };
    return { value: kept.length === 0 ? null : kept, changed };
  }
  if (isObject(value)) {
    const kept: JsonObject = {};
    let changed = false;
    for (const [key, item] of Object.entries(value)) {
      const inner = withoutNils(item);
      changed ||= inner.changed;
      if (inner.value !== null) kept[key] = inner.value;
    }
    if (!changed) return { value, changed };
    return { value: Object.keys(kept).length === 0 ? null : kept, changed };
  }
  return { value, changed: false };
}

/** The `resources` define: resource annotations win outright (only the annotated fields), else the values. */
export function proxyResources(ctx: TemplateContext): ResourceRequirements | undefined {
  const names = {
    cpu: 'sidecar.istio.io/proxyCPU',
    memory: 'sidecar.istio.io/proxyMemory',
    cpuLimit: 'sidecar.istio.io/proxyCPULimit',
    memoryLimit: 'sidecar.istio.io/proxyMemoryLimit',
  };
  const annotations = ctx.metadata.annotations ?? {};
  if (Object.values(names).some((n) => isset(ctx, n))) {
    const out: ResourceRequirements = {};
    const requests: Record<string, string> = {};
    const limits: Record<string, string> = {};
    if (isset(ctx, names.cpu)) requests['cpu'] = annotations[names.cpu] ?? '';
    if (isset(ctx, names.memory)) requests['memory'] = annotations[names.memory] ?? '';
    if (isset(ctx, names.cpuLimit)) limits['cpu'] = annotations[names.cpuLimit] ?? '';
    if (isset(ctx, names.memoryLimit)) limits['memory'] = annotations[names.memoryLimit] ?? '';
    if (Object.keys(requests).length > 0) out.requests = requests;
    if (Object.keys(limits).length > 0) out.limits = limits;
    return canonicalResources(out);
  }
  return resourcesFromValues(ctx.settings);
}

/** The values' resources in canonical form, worked out once per settings object (the engine never mutates them). */
const valuesResources = new WeakMap<InjectorSettings, ResourceRequirements | undefined>();

function resourcesFromValues(settings: InjectorSettings): ResourceRequirements | undefined {
  if (valuesResources.has(settings)) return valuesResources.get(settings);
  // The template renders them only when the map is not empty (Go's `if`), through omitNil.
  const fromValues =
    isObject(settings.resources) && Object.keys(settings.resources).length > 0
      ? omitNil(settings.resources)
      : undefined;
  const resources = isObject(fromValues) ? canonicalResources(fromValues as ResourceRequirements) : undefined;
  // Shared by every pod these settings inject: frozen, so a caller that edits its output pod fails loudly.
  if (resources !== undefined) {
    for (const block of Object.values(resources)) if (isObject(block)) Object.freeze(block);
    Object.freeze(resources);
  }
  valuesResources.set(settings, resources);
  return resources;
}

function fieldEnv(name: string, fieldPath: string): EnvVar {
  return { name, valueFrom: { fieldRef: { fieldPath } } };
}

/**
 * The Istio minor release whose templates the revision's istiod renders: `settings.tag` is the revision's version
 * (1.29.6). Any other tag (the conformance corpus's `latest`) means the newest templates, which the corpus holds.
 * The releases differ in a few lines, listed where the templates read this.
 */
function istioMinor(settings: InjectorSettings): number {
  let minor = minorByTag.get(settings.tag);
  if (minor === undefined) {
    const match = /^1\.(\d+)\.\d+/.exec(settings.tag);
    minor = match ? Number(match[1]) : Number.POSITIVE_INFINITY;
    if (minorByTag.size >= 64) minorByTag.clear();
    minorByTag.set(settings.tag, minor);
  }
  return minor;
}

const minorByTag = new Map<string, number>();

/**
 * Resource env. Istio 1.29's templates set the divisor to 1; 1.28's leave it out, and istiod's Go structs then
 * write the zero Quantity, "0" (which the kubelet reads as 1).
 */
function resourceEnv(ctx: TemplateContext, name: string, resource: string): EnvVar {
  const divisor = istioMinor(ctx.settings) <= 28 ? '0' : '1';
  return { name, valueFrom: { resourceFieldRef: { resource, divisor } } };
}

/** GOMEMLIMIT, and GOMAXPROCS up to Istio 1.30 (later templates leave Go to read its CPU limit itself). */
function goRuntimeEnv(ctx: TemplateContext): EnvVar[] {
  const env = [resourceEnv(ctx, 'GOMEMLIMIT', 'limits.memory')];
  if (istioMinor(ctx.settings) <= 30) env.push(resourceEnv(ctx, 'GOMAXPROCS', 'limits.cpu'));
  return env;
}

/** ISTIO_META_POD_PORTS: every container port as Go JSON, one per line, exactly as the template lays it out. */
export function podPortsJson(spec: PodSpec): string {
  const lines: string[] = [];
  for (const container of spec.containers ?? []) {
    for (const port of container.ports ?? []) {
      lines.push((lines.length === 0 ? '' : ',') + goMarshal(port, 'ContainerPort'));
    }
  }
  return ['[', ...lines.map((l) => '    ' + l), ']'].join('\n');
}

function meshTrustDomain(ctx: TemplateContext): string {
  return ctx.settings.mesh.trustDomain || ctx.settings.trustDomain;
}

/**
 * istiod's otelResourceAttributes: OTEL_RESOURCE_ATTRIBUTES for the proxy, when an OpenTelemetry provider asks for
 * OTel's semantic conventions (otherwise ''). Custom templates call it with the same arguments.
 */
export function otelResourceAttributes(
  extensionProviders: readonly unknown[],
  annotations: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
  namespace: string,
  containers: readonly Container[],
): string {
  const enriched = extensionProviders.some((provider) => {
    const otel = isObject(provider) ? provider['opentelemetry'] : undefined;
    return isObject(otel) && otel['serviceAttributeEnrichment'] === 'OTEL_SEMANTIC_CONVENTIONS';
  });
  if (!enriched) return '';
  const attrs: string[] = [];
  const ns = annotations['resource.opentelemetry.io/service.namespace'];
  if (ns) attrs.push(`service.namespace=${ns}`);
  else if (namespace !== '') attrs.push(`service.namespace=${namespace}`);
  const version =
    annotations['resource.opentelemetry.io/service.version'] || labels['app.kubernetes.io/version'];
  if (version) attrs.push(`service.version=${version}`);
  else if (containers.length === 1) {
    let image = containers[0]?.image ?? '';
    let digest = '';
    const at = image.indexOf('@');
    if (at >= 0) {
      digest = image.slice(at + 1);
      image = image.slice(0, at);
    }
    const colon = image.lastIndexOf(':');
    const tag = colon > image.lastIndexOf('/') ? image.slice(colon + 1) : '';
    if (tag && digest) attrs.push(`service.version=${tag}@${digest}`);
    else if (digest || tag) attrs.push(`service.version=${digest || tag}`);
  }
  const instance = annotations['resource.opentelemetry.io/service.instance.id'];
  if (instance) attrs.push(`service.instance.id=${instance}`);
  else if (containers.length > 0)
    attrs.push(`service.instance.id=${namespace}.$(POD_NAME).${containers[0]?.name ?? ''}`);
  return attrs.join(',');
}

/** The app containers' names; with none, no value, as Go's omitempty leaves it when istiod marshals the pod. */
function appContainersEnv(ctx: TemplateContext): EnvVar {
  const names = appContainerNames(ctx).join(',');
  return names === ''
    ? { name: 'ISTIO_META_APP_CONTAINERS' }
    : { name: 'ISTIO_META_APP_CONTAINERS', value: names };
}

function proxyMetadataEnv(ctx: TemplateContext): EnvVar[] {
  const metadata = ctx.proxyConfig.proxyMetadata ?? {};
  return Object.keys(metadata)
    .sort()
    .map((name) => ({ name, value: String(metadata[name]) }));
}

/** The identity env every proxy template starts with: cert provider, CA address and downward-API fields. */
function identityEnv(ctx: TemplateContext): EnvVar[] {
  const { settings } = ctx;
  const env: EnvVar[] = [
    { name: 'PILOT_CERT_PROVIDER', value: settings.pilotCertProvider },
    { name: 'CA_ADDR', value: settings.caAddress },
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('INSTANCE_IP', 'status.podIP'),
    fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    fieldEnv('HOST_IP', 'status.hostIP'),
  ];
  return env;
}

function complianceEnv(ctx: TemplateContext): EnvVar[] {
  const policy = ctx.settings.compliancePolicy;
  if (!policy) return [];
  const env: EnvVar[] = [{ name: 'COMPLIANCE_POLICY', value: policy }];
  // Istio 1.31's templates add Go's FIPS 140-3 mode for that policy.
  if (policy === 'fips-140-3' && istioMinor(ctx.settings) > 30)
    env.push({ name: 'GODEBUG', value: 'fips140=only' });
  return env;
}

function ownerEnv(ctx: TemplateContext): EnvVar[] {
  const { typeMeta, deployMeta } = ctx;
  if (!typeMeta.apiVersion || !deployMeta.name) return [];
  const namespace = deployMeta.namespace || 'default';
  return [
    {
      name: 'ISTIO_META_OWNER',
      value: `kubernetes://apis/${typeMeta.apiVersion}/namespaces/${namespace}/${typeMeta.kind.toLowerCase()}s/${deployMeta.name}`,
    },
  ];
}

function meshIdEnv(ctx: TemplateContext): EnvVar[] {
  const env: EnvVar[] = [];
  const trustDomain = meshTrustDomain(ctx);
  if (ctx.settings.meshId) env.push({ name: 'ISTIO_META_MESH_ID', value: ctx.settings.meshId });
  else if (trustDomain) env.push({ name: 'ISTIO_META_MESH_ID', value: trustDomain });
  if (trustDomain) env.push({ name: 'TRUST_DOMAIN', value: trustDomain });
  return env;
}

function readinessProbe(ctx: TemplateContext, port: number, useAnnotations: boolean): JsonObject {
  const { settings } = ctx;
  const read = (name: string, fallback: number): number =>
    Number(
      useAnnotations ? annotation(ctx, `readiness.status.sidecar.istio.io/${name}`, fallback) : fallback,
    );
  return withoutZeros({
    httpGet: { path: '/healthz/ready', port },
    initialDelaySeconds: read('initialDelaySeconds', settings.readinessInitialDelaySeconds),
    periodSeconds: read('periodSeconds', settings.readinessPeriodSeconds),
    timeoutSeconds: 3,
    failureThreshold: read('failureThreshold', settings.readinessFailureThreshold),
  });
}

/** Probe integers are `omitempty` in corev1: zero means absent. */
function withoutZeros(probe: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const key of Object.keys(probe)) if (probe[key] !== 0) out[key] = probe[key];
  return out;
}

function userVolumeMounts(ctx: TemplateContext): JsonObject[] {
  return jsonAnnotationEntries(ctx, 'sidecar.istio.io/userVolumeMount');
}

function userVolumes(ctx: TemplateContext): Volume[] {
  return jsonAnnotationEntries(ctx, 'sidecar.istio.io/userVolume') as Volume[];
}

/**
 * What the templates' `range $key, $value := fromJSON (index .ObjectMeta.Annotations name)` iterates over: an
 * object's entries in key order, a list's by index, nothing for null. istiod's fromJSON gives the string "{}" for
 * text that is not JSON, and range refuses a string or any other scalar, so such an annotation fails the injection.
 */
function rangeOverJsonAnnotation(ctx: TemplateContext, name: string): Array<[string, unknown]> {
  const raw = ctx.metadata.annotations?.[name];
  if (raw === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error(
      `failed to run injection template: annotation ${name} is not JSON: ${JSON.stringify(raw)}`,
    );
  }
  if (parsed === null) return [];
  if (Array.isArray(parsed)) return parsed.map((value, index) => [String(index), value]);
  if (isObject(parsed))
    return Object.keys(parsed)
      .sort()
      .map((key) => [key, parsed[key]]);
  throw new Error(
    `failed to run injection template: annotation ${name} is not a JSON object or list: ${raw}`,
  );
}

/**
 * User volumes and mounts: `- name: "<key>"` followed by the value's YAML, so the value must be an object with
 * fields (anything else is not YAML there, and istiod fails the injection), and a `name` in it wins (the last of
 * two equal YAML keys does).
 */
function jsonAnnotationEntries(ctx: TemplateContext, name: string): JsonObject[] {
  return rangeOverJsonAnnotation(ctx, name).map(([key, value]) => {
    if (!isObject(value) || Object.keys(value).length === 0) {
      throw new Error(
        `failed to run injection template: annotation ${name}: entry ${JSON.stringify(key)} is not a JSON object with fields`,
      );
    }
    return { name: key, ...value };
  });
}

function istiodCaVolume(ctx: TemplateContext): Volume[] {
  const { settings } = ctx;
  if (settings.pilotCertProvider !== 'istiod') return [];
  if (settings.enableClusterTrustBundle) {
    return [
      {
        name: 'istiod-ca-cert',
        projected: {
          sources: [
            {
              clusterTrustBundle: {
                name: `istio.io:istiod-ca:${settings.trustBundleName || 'root-cert'}`,
                path: 'root-cert.pem',
              },
            },
          ],
        },
      },
    ];
  }
  return [{ name: 'istiod-ca-cert', configMap: { name: settings.trustBundleName || 'istio-ca-root-cert' } }];
}

function tokenVolume(ctx: TemplateContext): Volume {
  return {
    name: 'istio-token',
    projected: {
      sources: [
        {
          serviceAccountToken: {
            path: 'istio-token',
            expirationSeconds: 43200,
            audience: ctx.settings.tokenAudience,
          },
        },
      ],
    },
  };
}

function podInfoVolume(): Volume {
  return {
    name: 'istio-podinfo',
    downwardAPI: {
      items: [
        { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
        { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
      ],
    },
  };
}

function mtlsCertsVolume(ctx: TemplateContext): Volume[] {
  if (!ctx.settings.mountMtlsCerts) return [];
  const account = ctx.spec.serviceAccountName ?? '';
  return [
    {
      name: 'istio-certs',
      secret: { optional: true, secretName: account === '' ? 'istio.default' : `istio.${account}` },
    },
  ];
}

function bootstrapOverrideVolume(ctx: TemplateContext): Volume[] {
  if (!isset(ctx, 'sidecar.istio.io/bootstrapOverride')) return [];
  return [
    {
      name: 'custom-bootstrap-volume',
      configMap: { name: annotation(ctx, 'sidecar.istio.io/bootstrapOverride', '') },
    },
  ];
}

function workloadCertsVolume(ctx: TemplateContext, source: JsonObject | undefined): Volume {
  if (ctx.settings.caName === 'GkeWorkloadCertificate') {
    return {
      name: 'gke-workload-certificate',
      csi: { driver: 'workloadcertificates.security.cloud.google.com' },
    };
  }
  return source ? { name: 'workload-certs', emptyDir: source } : { name: 'workload-certs' };
}

/** The mounts the sidecar and gateway proxies share after their CA mounts, in Istio's order. */
function proxyDataMounts(ctx: TemplateContext): JsonObject[] {
  const mounts: JsonObject[] = [{ mountPath: '/var/lib/istio/data', name: 'istio-data' }];
  if (isset(ctx, 'sidecar.istio.io/bootstrapOverride')) {
    mounts.push({ mountPath: '/etc/istio/custom-bootstrap', name: 'custom-bootstrap-volume' });
  }
  mounts.push(
    { mountPath: '/etc/istio/proxy', name: 'istio-envoy' },
    { mountPath: '/var/run/secrets/tokens', name: 'istio-token' },
  );
  if (ctx.settings.mountMtlsCerts)
    mounts.push({ mountPath: '/etc/certs/', name: 'istio-certs', readOnly: true });
  mounts.push({ name: 'istio-podinfo', mountPath: '/etc/istio/pod' });
  return mounts;
}

function workloadCertsMount(ctx: TemplateContext): JsonObject {
  return ctx.settings.caName === 'GkeWorkloadCertificate'
    ? {
        name: 'gke-workload-certificate',
        mountPath: '/var/run/secrets/workload-spiffe-credentials',
        readOnly: true,
      }
    : { name: 'workload-certs', mountPath: '/var/run/secrets/workload-spiffe-credentials' };
}

function imagePullSecrets(ctx: TemplateContext): PodSpec {
  const secrets = ctx.settings.imagePullSecrets;
  return secrets.length === 0 ? {} : { imagePullSecrets: secrets.map((name) => ({ name })) };
}

function imagePullPolicy(ctx: TemplateContext): JsonObject {
  return ctx.settings.imagePullPolicy ? { imagePullPolicy: ctx.settings.imagePullPolicy } : {};
}

function chooseImage(ctx: TemplateContext, valuesImage: string, computed: string): string {
  const requested = annotation(ctx, 'sidecar.istio.io/proxyImage', valuesImage);
  return requested.includes('/') ? requested : computed;
}

function defaultContainerAnnotations(ctx: TemplateContext): Record<string, string> {
  const first = appContainerNames(ctx)[0];
  if (first === undefined) return {};
  const out: Record<string, string> = {};
  if (!isset(ctx, 'kubectl.kubernetes.io/default-logs-container')) {
    out['kubectl.kubernetes.io/default-logs-container'] = first;
  }
  if (!isset(ctx, 'kubectl.kubernetes.io/default-container'))
    out['kubectl.kubernetes.io/default-container'] = first;
  return out;
}

function canonicalName(ctx: TemplateContext, truncate: boolean): string {
  const name =
    label(ctx, 'service.istio.io/canonical-name') ||
    label(ctx, 'app.kubernetes.io/name') ||
    label(ctx, 'app') ||
    ctx.deployMeta.name;
  if (!truncate) return name;
  const cut = name.slice(0, 63);
  // Up to Istio 1.30 the template trimmed one trailing "-" (trimSuffix); later ones trim "-", "_" and "." at both ends.
  if (istioMinor(ctx.settings) <= 30) return cut.endsWith('-') ? cut.slice(0, -1) : cut;
  return cut.replace(/^[-_.]+|[-_.]+$/g, '');
}

function canonicalRevision(ctx: TemplateContext): string {
  return (
    label(ctx, 'service.istio.io/canonical-revision') ||
    label(ctx, 'app.kubernetes.io/version') ||
    label(ctx, 'version') ||
    'latest'
  );
}

function revisionName(ctx: TemplateContext): string {
  return ctx.settings.revision || 'default';
}

function proxyArgs(ctx: TemplateContext, kind: 'sidecar' | 'router'): string[] {
  const { settings } = ctx;
  const args = [
    'proxy',
    kind,
    '--domain',
    `$(POD_NAMESPACE).svc.${settings.clusterDomain}`,
    `--proxyLogLevel=${annotation(ctx, 'sidecar.istio.io/logLevel', settings.proxyLogLevel)}`,
    `--proxyComponentLogLevel=${annotation(ctx, 'sidecar.istio.io/componentLogLevel', settings.proxyComponentLogLevel)}`,
    `--log_output_level=${annotation(ctx, 'sidecar.istio.io/agentLogLevel', settings.agentLogLevel)}`,
  ];
  if (settings.stsPort) args.push(`--stsPort=${settings.stsPort}`);
  if (settings.logAsJson) args.push('--log_as_json');
  return args;
}

/** The default `sidecar` template. */
export const sidecarTemplate: InjectionTemplate = (ctx) => {
  const { settings, proxyConfig } = ctx;
  const mode = interceptionMode(ctx);
  const tproxy = mode === 'TPROXY';
  const capNetBindService =
    annotation(ctx, 'sidecar.istio.io/capNetBindService', settings.capNetBindService) === 'true';
  const native = isNativeSidecar(ctx);
  const statusPort = annotation(ctx, 'status.sidecar.istio.io/port', settings.statusPort);
  const excludedInbound = excludeInboundPort(
    statusPort,
    annotation(ctx, 'traffic.sidecar.istio.io/excludeInboundPorts', settings.excludeInboundPorts),
  );
  const includeOutboundPorts = annotation(
    ctx,
    'traffic.sidecar.istio.io/includeOutboundPorts',
    settings.includeOutboundPorts,
  );
  const excludeOutboundPorts = annotation(
    ctx,
    'traffic.sidecar.istio.io/excludeOutboundPorts',
    settings.excludeOutboundPorts,
  );
  const wantIncludeOutboundPorts =
    isset(ctx, 'traffic.sidecar.istio.io/includeOutboundPorts') || settings.includeOutboundPorts !== '';
  const wantExcludeOutboundPorts =
    isset(ctx, 'traffic.sidecar.istio.io/excludeOutboundPorts') || settings.excludeOutboundPorts !== '';
  const annotations = ctx.metadata.annotations ?? {};
  const resources = proxyResources(ctx);
  const uid = String(ctx.proxyUid || 1337);
  const gid = ctx.proxyGid || 1337;

  const labels: Record<string, string> = {
    'security.istio.io/tlsMode': label(ctx, 'security.istio.io/tlsMode') || 'istio',
  };
  if (proxyConfig.proxyMetadata?.['ISTIO_META_ENABLE_HBONE'] === 'true') {
    labels['networking.istio.io/tunnel'] = label(ctx, 'networking.istio.io/tunnel') || 'http';
  }
  labels['service.istio.io/canonical-name'] = canonicalName(ctx, true);
  labels['service.istio.io/canonical-revision'] = canonicalRevision(ctx);

  const podAnnotations: Record<string, string> = {
    'istio.io/rev': revisionName(ctx),
    ...defaultContainerAnnotations(ctx),
  };
  if (settings.cni.enabled) {
    if (settings.cni.provider === 'multus') {
      podAnnotations['k8s.v1.cni.cncf.io/networks'] = appendMultusNetwork(
        annotations['k8s.v1.cni.cncf.io/networks'] ?? '',
        'default/istio-cni',
      );
    }
    podAnnotations['sidecar.istio.io/interceptionMode'] = mode;
    const include = annotation(
      ctx,
      'traffic.sidecar.istio.io/includeOutboundIPRanges',
      settings.includeIPRanges,
    );
    if (include) podAnnotations['traffic.sidecar.istio.io/includeOutboundIPRanges'] = include;
    const exclude = annotation(
      ctx,
      'traffic.sidecar.istio.io/excludeOutboundIPRanges',
      settings.excludeIPRanges,
    );
    if (exclude) podAnnotations['traffic.sidecar.istio.io/excludeOutboundIPRanges'] = exclude;
    podAnnotations['traffic.sidecar.istio.io/includeInboundPorts'] = annotation(
      ctx,
      'traffic.sidecar.istio.io/includeInboundPorts',
      settings.includeInboundPorts,
    );
    podAnnotations['traffic.sidecar.istio.io/excludeInboundPorts'] = excludedInbound;
    if (wantIncludeOutboundPorts)
      podAnnotations['traffic.sidecar.istio.io/includeOutboundPorts'] = includeOutboundPorts;
    if (isset(ctx, 'traffic.sidecar.istio.io/excludeOutboundPorts') || settings.excludeOutboundPorts !== '') {
      podAnnotations['traffic.sidecar.istio.io/excludeOutboundPorts'] = excludeOutboundPorts;
    }
    for (const name of [
      'traffic.sidecar.istio.io/kubevirtInterfaces',
      'istio.io/reroute-virtual-interfaces',
      'traffic.sidecar.istio.io/excludeInterfaces',
    ]) {
      const value = annotations[name];
      if (value) podAnnotations[name] = value;
    }
  }

  const hold =
    (proxyConfig.holdApplicationUntilProxyStarts === true || settings.holdApplicationUntilProxyStarts) &&
    !native;
  const noInitContainer = mode === 'NONE' && !native;

  const initContainers: Container[] = [];
  if (!noInitContainer && mode !== 'NONE') {
    const args = [
      'istio-iptables',
      '-p',
      String(settings.mesh.proxyListenPort || 15001),
      '-z',
      String(settings.mesh.proxyInboundListenPort || 15006),
      '-u',
      tproxy ? '1337' : uid,
      '-m',
      mode,
      '-i',
      annotation(ctx, 'traffic.sidecar.istio.io/includeOutboundIPRanges', settings.includeIPRanges),
      '-x',
      annotation(ctx, 'traffic.sidecar.istio.io/excludeOutboundIPRanges', settings.excludeIPRanges),
      '-b',
      annotation(ctx, 'traffic.sidecar.istio.io/includeInboundPorts', settings.includeInboundPorts),
      '-d',
      excludedInbound ? `15090,15021,${excludedInbound}` : '15090,15021',
    ];
    if (wantIncludeOutboundPorts) args.push('-q', includeOutboundPorts);
    if (wantExcludeOutboundPorts) args.push('-o', excludeOutboundPorts);
    if (isset(ctx, 'istio.io/reroute-virtual-interfaces')) {
      args.push('-k', annotations['istio.io/reroute-virtual-interfaces'] ?? '');
    } else if (isset(ctx, 'traffic.sidecar.istio.io/kubevirtInterfaces')) {
      args.push('-k', annotations['traffic.sidecar.istio.io/kubevirtInterfaces'] ?? '');
    }
    if (isset(ctx, 'traffic.sidecar.istio.io/excludeInterfaces')) {
      args.push('-c', annotations['traffic.sidecar.istio.io/excludeInterfaces'] ?? '');
    }
    args.push(
      `--log_output_level=${annotation(ctx, 'sidecar.istio.io/agentLogLevel', settings.agentLogLevel)}`,
    );
    if (settings.logAsJson) args.push('--log_as_json');
    if (settings.cni.enabled) args.push('--run-validation', '--skip-rule-apply');
    else if (settings.forceApplyIptables) args.push('--force-apply');
    if (settings.nativeNftables) args.push('--native-nftables');

    const securityContext: JsonObject = settings.cni.enabled
      ? {
          allowPrivilegeEscalation: settings.privileged,
          privileged: settings.privileged,
          capabilities: { drop: ['ALL'] },
          readOnlyRootFilesystem: true,
          runAsGroup: tproxy ? 1337 : gid,
          runAsUser: tproxy ? 1337 : Number(uid),
          runAsNonRoot: true,
        }
      : {
          allowPrivilegeEscalation: settings.privileged,
          privileged: settings.privileged,
          capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
          readOnlyRootFilesystem: false,
          runAsGroup: 0,
          runAsNonRoot: false,
          runAsUser: 0,
        };
    if (settings.seccompProfile && Object.keys(settings.seccompProfile).length > 0) {
      securityContext['seccompProfile'] = settings.seccompProfile;
    }
    const metadataEnv = proxyMetadataEnv(ctx);
    initContainers.push({
      name: settings.cni.enabled ? 'istio-validation' : 'istio-init',
      // Up to Istio 1.30 the template gave istio-init the proxy's image unless the values named a full reference.
      image: chooseImage(
        ctx,
        settings.proxyInitImage,
        istioMinor(settings) <= 30 ? ctx.proxyImage : ctx.proxyInitImage,
      ),
      args,
      ...imagePullPolicy(ctx),
      ...(metadataEnv.length > 0 ? { env: metadataEnv } : {}),
      ...(resources ? { resources } : {}),
      securityContext,
    });
  }

  let lifecycle: JsonObject | undefined;
  if (settings.lifecycle && Object.keys(settings.lifecycle).length > 0) lifecycle = settings.lifecycle;
  else if (hold) lifecycle = { postStart: { exec: { command: ['pilot-agent', 'wait'] } } };
  else if (native) {
    lifecycle = {
      preStop: {
        exec: { command: ['pilot-agent', 'request', `--debug-port=${statusPort}`, 'POST', 'drain'] },
      },
    };
  }

  const env: EnvVar[] = [];
  if (settings.mesh.inboundTrafficPolicyMode === 'LOCALHOST') {
    env.push({ name: 'REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION', value: 'true' });
  }
  env.push(
    ...identityEnv(ctx),
    resourceEnv(ctx, 'ISTIO_CPU_LIMIT', 'limits.cpu'),
    { name: 'PROXY_CONFIG', value: proxyConfigJson(proxyConfig) + '\n' },
    { name: 'ISTIO_META_POD_PORTS', value: podPortsJson(ctx.spec) },
    appContainersEnv(ctx),
    ...goRuntimeEnv(ctx),
    ...complianceEnv(ctx),
    { name: 'ISTIO_META_CLUSTER_ID', value: settings.clusterName || 'Kubernetes' },
    fieldEnv('ISTIO_META_NODE_NAME', 'spec.nodeName'),
    {
      name: 'ISTIO_META_INTERCEPTION_MODE',
      value: annotations['sidecar.istio.io/interceptionMode'] || proxyConfig.interceptionMode || 'REDIRECT',
    },
  );
  if (settings.network) env.push({ name: 'ISTIO_META_NETWORK', value: settings.network });
  const workloadName = label(ctx, 'service.istio.io/workload-name') || ctx.deployMeta.name;
  if (workloadName) env.push({ name: 'ISTIO_META_WORKLOAD_NAME', value: workloadName });
  env.push(...ownerEnv(ctx));
  if (isset(ctx, 'sidecar.istio.io/bootstrapOverride')) {
    env.push({
      name: 'ISTIO_BOOTSTRAP_OVERRIDE',
      value: '/etc/istio/custom-bootstrap/custom_bootstrap.json',
    });
  }
  env.push(...meshIdEnv(ctx));
  if (settings.tracer === 'datadog') {
    for (const [name, value] of rangeOverJsonAnnotation(ctx, 'apm.datadoghq.com/env')) {
      env.push({ name, value: sprint([value]) });
    }
  }
  // Istio 1.30 added OpenTelemetry's resource attributes.
  const otel =
    istioMinor(settings) < 30
      ? ''
      : otelResourceAttributes(
          ctx.settings.mesh.extensionProviders ?? [],
          ctx.metadata.annotations ?? {},
          ctx.metadata.labels ?? {},
          ctx.deployMeta.namespace,
          ctx.spec.containers ?? [],
        );
  if (otel) env.push({ name: 'OTEL_RESOURCE_ATTRIBUTES', value: otel });
  env.push(...proxyMetadataEnv(ctx));

  let securityContext: JsonObject;
  if (proxyConfig.proxyMetadata?.['IPTABLES_TRACE_LOGGING'] === 'true') {
    securityContext = {
      allowPrivilegeEscalation: true,
      capabilities: { add: ['NET_ADMIN'], drop: ['ALL'] },
      privileged: true,
      readOnlyRootFilesystem: true,
      runAsGroup: gid,
      runAsNonRoot: false,
      runAsUser: 0,
    };
  } else {
    const add = [...(tproxy ? ['NET_ADMIN'] : []), ...(capNetBindService ? ['NET_BIND_SERVICE'] : [])];
    securityContext = {
      allowPrivilegeEscalation: settings.privileged,
      capabilities: add.length > 0 ? { add, drop: ['ALL'] } : { drop: ['ALL'] },
      privileged: settings.privileged,
      readOnlyRootFilesystem: true,
      ...(tproxy || capNetBindService
        ? { runAsNonRoot: false, runAsUser: 0, runAsGroup: 1337 }
        : { runAsNonRoot: true, runAsUser: Number(uid), runAsGroup: gid }),
    };
  }
  if (settings.seccompProfile && Object.keys(settings.seccompProfile).length > 0) {
    securityContext['seccompProfile'] = settings.seccompProfile;
  }

  const volumeMounts: JsonObject[] = [
    { name: 'workload-socket', mountPath: '/var/run/secrets/workload-spiffe-uds' },
    { name: 'credential-socket', mountPath: '/var/run/secrets/credential-uds' },
    workloadCertsMount(ctx),
  ];
  if (settings.pilotCertProvider === 'istiod') {
    volumeMounts.push(
      { mountPath: '/var/run/secrets/istio', name: 'istiod-ca-cert' },
      { mountPath: '/var/run/secrets/istio/crl', name: 'istio-ca-crl' },
    );
  }
  volumeMounts.push(...proxyDataMounts(ctx), ...userVolumeMounts(ctx));

  const proxy: Container = {
    name: PROXY,
    image: chooseImage(ctx, settings.proxyImage, ctx.proxyImage),
    ...(native ? { restartPolicy: 'Always' } : {}),
    ports: [{ containerPort: 15090, protocol: 'TCP', name: 'http-envoy-prom' }],
    args: [
      ...proxyArgs(ctx, 'sidecar'),
      ...(settings.outlierLogPath ? [`--outlierLogPath=${settings.outlierLogPath}`] : []),
    ],
    ...(lifecycle ? { lifecycle } : {}),
    env,
    ...imagePullPolicy(ctx),
    securityContext,
    ...(resources ? { resources } : {}),
    volumeMounts: volumeMounts as Container['volumeMounts'],
  };
  if (statusPort !== '0') {
    if (settings.startupProbe.enabled) {
      proxy.startupProbe = withoutZeros({
        httpGet: { path: '/healthz/ready', port: 15021 },
        periodSeconds: 1,
        timeoutSeconds: 3,
        failureThreshold: settings.startupProbe.failureThreshold,
      });
    }
    proxy.readinessProbe = readinessProbe(ctx, 15021, true);
  }

  const volumes: Volume[] = [
    { name: 'workload-socket' },
    { name: 'credential-socket' },
    workloadCertsVolume(ctx, undefined),
    ...bootstrapOverrideVolume(ctx),
    { emptyDir: { medium: 'Memory' }, name: 'istio-envoy' },
    { name: 'istio-data', emptyDir: {} },
    podInfoVolume(),
    tokenVolume(ctx),
    ...istiodCaVolume(ctx),
    {
      name: 'istio-ca-crl',
      // Istio 1.29 made the CRL ConfigMap's name a value.
      configMap: {
        name: (istioMinor(settings) > 28 && settings.crlConfigMapName) || 'istio-ca-crl',
        optional: true,
      },
    },
    ...mtlsCertsVolume(ctx),
    ...userVolumes(ctx),
  ];

  const spec: PodSpec = {
    initContainers: native ? [...initContainers, proxy] : initContainers,
    ...(native ? {} : { containers: [proxy] }),
    volumes,
    ...imagePullSecrets(ctx),
  };
  return { metadata: { labels, annotations: podAnnotations }, spec };
};

/** The `gateway` template: a router proxy in `containers`, no traffic capture, unprivileged low ports. */
export const gatewayTemplate: InjectionTemplate = (ctx) => {
  const { settings, proxyConfig } = ctx;
  const uid = ctx.proxyUid || 1337;
  const gid = ctx.proxyGid || 1337;
  const env: EnvVar[] = [
    ...identityEnv(ctx),
    resourceEnv(ctx, 'ISTIO_CPU_LIMIT', 'limits.cpu'),
    { name: 'PROXY_CONFIG', value: proxyConfigJson(proxyConfig) + '\n' },
    { name: 'ISTIO_META_POD_PORTS', value: podPortsJson(ctx.spec) },
    ...goRuntimeEnv(ctx),
    ...complianceEnv(ctx),
    appContainersEnv(ctx),
    { name: 'ISTIO_META_CLUSTER_ID', value: settings.clusterName || 'Kubernetes' },
    fieldEnv('ISTIO_META_NODE_NAME', 'spec.nodeName'),
    { name: 'ISTIO_META_INTERCEPTION_MODE', value: proxyConfig.interceptionMode || 'REDIRECT' },
  ];
  if (settings.network) env.push({ name: 'ISTIO_META_NETWORK', value: settings.network });
  if (ctx.deployMeta.name) env.push({ name: 'ISTIO_META_WORKLOAD_NAME', value: ctx.deployMeta.name });
  env.push(...ownerEnv(ctx));
  if (isset(ctx, 'sidecar.istio.io/bootstrapOverride')) {
    env.push({
      name: 'ISTIO_BOOTSTRAP_OVERRIDE',
      value: '/etc/istio/custom-bootstrap/custom_bootstrap.json',
    });
  }
  env.push(...meshIdEnv(ctx), ...proxyMetadataEnv(ctx));

  const volumeMounts: JsonObject[] = [
    { name: 'workload-socket', mountPath: '/var/run/secrets/workload-spiffe-uds' },
    { name: 'credential-socket', mountPath: '/var/run/secrets/credential-uds' },
    workloadCertsMount(ctx),
  ];
  if (settings.pilotCertProvider === 'istiod') {
    volumeMounts.push({ mountPath: '/var/run/secrets/istio', name: 'istiod-ca-cert' });
  }
  volumeMounts.push(...proxyDataMounts(ctx));

  const proxy: Container = {
    name: PROXY,
    image: chooseImage(ctx, settings.proxyImage, ctx.proxyImage),
    ports: [{ containerPort: 15090, protocol: 'TCP', name: 'http-envoy-prom' }],
    args: proxyArgs(ctx, 'router'),
    ...(settings.lifecycle && Object.keys(settings.lifecycle).length > 0
      ? { lifecycle: settings.lifecycle }
      : {}),
    securityContext: { runAsUser: uid, runAsGroup: gid },
    env,
    ...imagePullPolicy(ctx),
    readinessProbe: readinessProbe(ctx, 15021, false),
    volumeMounts: volumeMounts as Container['volumeMounts'],
  };

  const volumes: Volume[] = [
    { name: 'workload-socket' },
    { emptyDir: {}, name: 'credential-socket' },
    workloadCertsVolume(ctx, {}),
    ...bootstrapOverrideVolume(ctx),
    { emptyDir: { medium: 'Memory' }, name: 'istio-envoy' },
    { name: 'istio-data', emptyDir: {} },
    podInfoVolume(),
    tokenVolume(ctx),
    ...istiodCaVolume(ctx),
    ...mtlsCertsVolume(ctx),
  ];

  const securityContext =
    settings.gatewaySecurityContext && Object.keys(settings.gatewaySecurityContext).length > 0
      ? settings.gatewaySecurityContext
      : { sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }] };
  return {
    metadata: {
      labels: {
        'service.istio.io/canonical-name': canonicalName(ctx, false),
        'service.istio.io/canonical-revision': canonicalRevision(ctx),
      },
      annotations: { 'istio.io/rev': revisionName(ctx), ...defaultContainerAnnotations(ctx) },
    },
    spec: { securityContext, containers: [proxy], volumes, ...imagePullSecrets(ctx) },
  };
};

/** The `grpc-agent` template: proxyless gRPC with the agent (no Envoy) serving xDS to the app over a socket. */
export const grpcAgentTemplate: InjectionTemplate = (ctx) => {
  const { settings, proxyConfig } = ctx;
  const resources = proxyResources(ctx);
  const env: EnvVar[] = [
    { name: 'ISTIO_META_GENERATOR', value: 'grpc' },
    { name: 'OUTPUT_CERTS', value: '/var/lib/istio/data' },
  ];
  if (settings.mesh.inboundTrafficPolicyMode === 'LOCALHOST') {
    env.push({ name: 'REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION', value: 'true' });
  }
  env.push(
    ...identityEnv(ctx),
    { name: 'PROXY_CONFIG', value: proxyConfigJson(proxyConfig) + '\n' },
    { name: 'ISTIO_META_POD_PORTS', value: podPortsJson(ctx.spec) },
    appContainersEnv(ctx),
    { name: 'ISTIO_META_CLUSTER_ID', value: settings.clusterName || 'Kubernetes' },
    fieldEnv('ISTIO_META_NODE_NAME', 'spec.nodeName'),
  );
  if (settings.network) env.push({ name: 'ISTIO_META_NETWORK', value: settings.network });
  if (ctx.deployMeta.name) env.push({ name: 'ISTIO_META_WORKLOAD_NAME', value: ctx.deployMeta.name });
  env.push(
    ...ownerEnv(ctx),
    ...meshIdEnv(ctx),
    ...proxyMetadataEnv(ctx),
    { name: 'ISTIO_META_DNS_CAPTURE', value: 'false' },
    { name: 'DISABLE_ENVOY', value: 'true' },
  );

  const statusPort = annotation(ctx, 'status.sidecar.istio.io/port', settings.statusPort);
  const proxy: Container = {
    name: PROXY,
    image: chooseImage(ctx, settings.proxyImage, ctx.proxyImage),
    ports: [{ containerPort: 15020, protocol: 'TCP', name: 'mesh-metrics' }],
    args: proxyArgs(ctx, 'sidecar'),
    lifecycle: {
      postStart: { exec: { command: ['pilot-agent', 'wait', '--url=http://localhost:15020/healthz/ready'] } },
    },
    env,
    ...imagePullPolicy(ctx),
  };
  const mounts: JsonObject[] = [];
  if (statusPort !== '0') {
    proxy.readinessProbe = readinessProbe(ctx, 15020, true);
    if (resources) proxy.resources = resources;
    mounts.push(
      { name: 'workload-socket', mountPath: '/var/run/secrets/workload-spiffe-uds' },
      workloadCertsMount(ctx),
    );
    if (settings.pilotCertProvider === 'istiod') {
      mounts.push({ mountPath: '/var/run/secrets/istio', name: 'istiod-ca-cert' });
    }
    mounts.push(
      { mountPath: '/var/lib/istio/data', name: 'istio-data' },
      { mountPath: '/etc/istio/proxy', name: 'istio-xds' },
      { mountPath: '/var/run/secrets/tokens', name: 'istio-token' },
    );
    if (settings.mountMtlsCerts)
      mounts.push({ mountPath: '/etc/certs/', name: 'istio-certs', readOnly: true });
    mounts.push({ name: 'istio-podinfo', mountPath: '/etc/istio/pod' });
  }
  const userMounts = userVolumeMounts(ctx);
  if (statusPort !== '0') mounts.push(...userMounts);
  else if (userMounts.length > 0) {
    // With the status port off, istiod's grpc-agent template skips everything from the readiness probe to its
    // mounts, and the user's mounts it writes after that land in the env list: its Go structs keep their names
    // only. After an imagePullPolicy line they are not YAML, and istiod fails the injection.
    if (settings.imagePullPolicy) {
      throw new Error(
        'failed parsing generated injected YAML (check Istio sidecar injector configuration): the grpc-agent template puts sidecar.istio.io/userVolumeMount after imagePullPolicy when the status port is 0',
      );
    }
    env.push(...userMounts.map((mount) => ({ name: String(mount['name']) })));
  }
  if (mounts.length > 0) proxy.volumeMounts = mounts as Container['volumeMounts'];

  const appContainers: Container[] = appContainerNames(ctx).map((name) => ({
    name,
    env: [
      { name: 'GRPC_XDS_EXPERIMENTAL_SECURITY_SUPPORT', value: 'true' },
      { name: 'GRPC_XDS_BOOTSTRAP', value: '/etc/istio/proxy/grpc-bootstrap.json' },
    ],
    volumeMounts: [
      { mountPath: '/var/lib/istio/data', name: 'istio-data' },
      { mountPath: '/etc/istio/proxy', name: 'istio-xds' },
      workloadCertsMount(ctx) as { name: string; mountPath: string },
    ],
  }));

  const volumes: Volume[] = [
    { name: 'workload-socket' },
    workloadCertsVolume(ctx, undefined),
    ...bootstrapOverrideVolume(ctx),
    { emptyDir: { medium: 'Memory' }, name: 'istio-xds' },
    { name: 'istio-data', emptyDir: {} },
    podInfoVolume(),
    tokenVolume(ctx),
    ...istiodCaVolume(ctx),
    ...mtlsCertsVolume(ctx),
    ...userVolumes(ctx),
  ];
  return {
    metadata: {
      labels: {
        'service.istio.io/canonical-name': canonicalName(ctx, false),
        'service.istio.io/canonical-revision': canonicalRevision(ctx),
      },
      annotations: {
        'istio.io/rev': revisionName(ctx),
        ...defaultContainerAnnotations(ctx),
        'sidecar.istio.io/rewriteAppHTTPProbers': 'false',
      },
    },
    spec: { containers: [proxy, ...appContainers], volumes, ...imagePullSecrets(ctx) },
  };
};

const GRPC_BOOTSTRAP_SCRIPT = [
  'NODE_ID="sidecar~${INSTANCE_IP}~${POD_NAME}.${POD_NAMESPACE}~cluster.local"',
  'SERVER_URI="dns:///istiod.${ISTIO_NAMESPACE}.svc:15010"',
  "echo '",
  '{',
  '  "xds_servers": [',
  '    {',
  '      "server_uri": "\'${SERVER_URI}\'",',
  '      "channel_creds": [{"type": "insecure"}],',
  '      "server_features" : ["xds_v3"]',
  '    }',
  '  ],',
  '  "node": {',
  '    "id": "\'${NODE_ID}\'",',
  '    "metadata": {',
  '      "GENERATOR": "grpc"',
  '    }',
  '  }',
  "}' > /var/lib/grpc/data/bootstrap.json",
].join('\n');

/** The `grpc-simple` template: proxyless gRPC bootstrapped by an init container, no agent. */
export const grpcSimpleTemplate: InjectionTemplate = (ctx) => ({
  metadata: { annotations: { 'sidecar.istio.io/rewriteAppHTTPProbers': 'false' } },
  spec: {
    initContainers: [
      {
        name: 'grpc-bootstrap-init',
        image: 'busybox:1.28',
        volumeMounts: [{ mountPath: '/var/lib/grpc/data/', name: 'grpc-io-proxyless-bootstrap' }],
        env: [
          fieldEnv('INSTANCE_IP', 'status.podIP'),
          fieldEnv('POD_NAME', 'metadata.name'),
          fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
          { name: 'ISTIO_NAMESPACE', value: `${ctx.settings.istioNamespace}\n` },
        ],
        command: ['sh', '-c', GRPC_BOOTSTRAP_SCRIPT],
      },
    ],
    containers: (ctx.spec.containers ?? []).map((c) => ({
      name: c.name,
      env: [
        { name: 'GRPC_XDS_BOOTSTRAP', value: '/var/lib/grpc/data/bootstrap.json' },
        { name: 'GRPC_GO_LOG_VERBOSITY_LEVEL', value: '99' },
        { name: 'GRPC_GO_LOG_SEVERITY_LEVEL', value: 'info' },
      ],
      volumeMounts: [{ mountPath: '/var/lib/grpc/data/', name: 'grpc-io-proxyless-bootstrap' }],
    })),
    volumes: [{ name: 'grpc-io-proxyless-bootstrap', emptyDir: {} }],
  },
});

/** Templates available by name, as in istiod's injector ConfigMap. */
export const BUILT_IN_TEMPLATES: Readonly<Record<string, InjectionTemplate>> = {
  sidecar: sidecarTemplate,
  gateway: gatewayTemplate,
  'grpc-agent': grpcAgentTemplate,
  'grpc-simple': grpcSimpleTemplate,
};
