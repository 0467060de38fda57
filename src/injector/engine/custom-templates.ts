// Custom injection templates (Istio's `sidecarInjectorWebhook.templates`, here `spec.injection.templates`): Go
// text/template texts that render a Pod fragment in YAML, which the engine merges onto the pod like a built-in
// template's output. A template sees what istiod hands its templates (SidecarTemplateData: `.ObjectMeta`, `.Spec`,
// `.ProxyConfig`, `.MeshConfig`, `.Values`, …, with Go field names resolved onto the JSON objects) and the functions
// istiod offers (sprig's, then Istio's over them). Templates are parsed once per settings version and kept.
import { parse as parseYaml } from 'yaml';

import {
  GoTemplateError,
  goTypeName,
  goYaml,
  parseGoTemplate,
  sprint,
  toGoJson,
  type CompiledTemplate,
  type FuncMap,
} from './go-template/index.js';
import { forEachGoStruct, goMarshal, type GoStructType } from './go-json.js';
import { proxyConfigJson, proxyConfigWithDefaults } from './proxy-config.js';
import type { InjectorSettings, ProxyConfig } from './settings.js';
import {
  appendMultusNetwork,
  excludeInboundPort,
  omitNil,
  otelResourceAttributes,
  type InjectionTemplate,
  type TemplateContext,
} from './templates.js';
import { isObject, type Container, type JsonObject, type Pod, type PodSpec } from './types.js';

/** istiod parses every template as "inject", so its errors read `template: inject:3:14: …`. */
const GO_TEMPLATE_NAME = 'inject';

/** Istio's template functions (they take precedence over sprig's of the same name, as in istiod). */
export const ISTIO_FUNCTIONS: FuncMap = {
  formatDuration: (duration) => formatGoDuration(duration),
  isset: (map, key) => isObject(map) && Object.hasOwn(map, String(key)),
  excludeInboundPort: (port, excluded) => excludeInboundPort(goString(port), goString(excluded)),
  includeInboundPorts: (containers) => containerPorts(containers, () => true),
  applicationPorts: (containers) => containerPorts(containers, (c) => c.name !== 'istio-proxy'),
  kubevirtInterfaces: (interfaces) => goString(interfaces),
  annotation: (meta, name, fallback) => {
    const annotations = isObject(meta) && isObject(meta['annotations']) ? meta['annotations'] : {};
    const key = String(name);
    return Object.hasOwn(annotations, key) ? goString(annotations[key]) : goString(fallback);
  },
  valueOrDefault: (value, fallback) =>
    value === '' || value === undefined || value === null ? fallback : value,
  toJSON: (value) => goJson(value),
  toJson: (value) => goJson(value),
  // Text that is not JSON gives the string "{}" (istiod logs a warning), which `range` then refuses.
  fromJSON: (text) => {
    try {
      return JSON.parse(goString(text)) as unknown;
    } catch {
      return '{}';
    }
  },
  structToJSON: (value) => structJson(value),
  // A ProxyConfig is written as istiod's cleanProxyConfig leaves it: without the built-in defaults.
  protoToJSON: (value) =>
    value === undefined || value === null
      ? '{}'
      : goTypes.get(value as object) === 'ProxyConfig'
        ? proxyConfigJson(value as ProxyConfig)
        : JSON.stringify(value),
  // sigs.k8s.io/yaml's Marshal, as istiod's toYaml.
  toYaml: (value) => goYaml(value),
  // Istio's indent leaves the first line alone (the template puts it after a key). It pads with Sprintf's
  // "% <n>s", whose width ignores a minus sign.
  indent: (spaces, text) => {
    if (typeof spaces !== 'number' || !Number.isInteger(spaces)) {
      throw new Error(`wrong type for value; expected int; got ${goTypeName(spaces)}`);
    }
    const pad = ' '.repeat(Math.abs(spaces));
    return goString(text)
      .split('\n')
      .map((line, i) => (i === 0 ? line : pad + line))
      .join('\n');
  },
  directory: (path) => {
    const text = String(path);
    return text.slice(0, text.lastIndexOf('/') + 1);
  },
  contains: (needle, haystack) => String(haystack).includes(String(needle)),
  toLower: (text) => String(text).toLowerCase(),
  appendMultusNetwork: (existing, network) => appendMultusNetwork(goString(existing), goString(network)),
  excludeInterfaces: (interfaces) => goString(interfaces),
  // The map functions below take and give Go's map[string]string, as labels and annotations are.
  omit: (map, ...keys) => {
    const dropped = new Set(keys.map(goString));
    const out: Record<string, string> = {};
    for (const [key, value] of stringEntries(map)) if (!dropped.has(key)) out[key] = value;
    return out;
  },
  strdict: (...items) => {
    const out: Record<string, string> = {};
    for (let i = 0; i < items.length; i += 2) {
      out[goString(items[i])] = i + 1 < items.length ? goString(items[i + 1]) : '';
    }
    return out;
  },
  mergeMaps: (...maps) => mergeStringMaps(maps),
  // encoding/json of the merged map: keys sorted, and `null` when there is no map at all.
  toJsonMap: (...maps) => {
    const merged = mergeStringMaps(maps);
    return merged === null ? 'null' : toGoJson(merged, false);
  },
  omitNil: (value) => omitNil(value),
  otelResourceAttributes: (mesh, annotations, labels, namespace, containers) =>
    otelResourceAttributes(
      isObject(mesh) && Array.isArray(mesh['extensionProviders']) ? mesh['extensionProviders'] : [],
      Object.fromEntries(stringEntries(annotations)),
      Object.fromEntries(stringEntries(labels)),
      goString(namespace),
      Array.isArray(containers) ? (containers as Container[]) : [],
    ),
};

/** A map[string]string argument's entries (nil, or anything not a map, has none). */
function stringEntries(map: unknown): Array<[string, string]> {
  return isObject(map) ? Object.entries(map).map(([key, value]) => [key, goString(value)]) : [];
}

/** istiod's mergeMaps: later maps win; nil when given none. */
function mergeStringMaps(maps: readonly unknown[]): Record<string, string> | null {
  if (maps.length === 0) return null;
  const out: Record<string, string> = {};
  for (const map of maps) for (const [key, value] of stringEntries(map)) out[key] = value;
  return out;
}

const functionsByRevision = new WeakMap<InjectorSettings, FuncMap>();

/**
 * Istio's functions with `env` reading the revision's istiod environment: istiod's looks a variable up in its own
 * process (os.Getenv) and gives the default for an unset or empty one.
 */
function functionsFor(settings: InjectorSettings): FuncMap {
  let functions = functionsByRevision.get(settings);
  if (functions === undefined) {
    functions = {
      ...ISTIO_FUNCTIONS,
      env: (key, fallback) => settings.istiodEnvironment.get(goString(key)) || goString(fallback),
    };
    functionsByRevision.set(settings, functions);
  }
  return functions;
}

/** fmt.Sprint of one value, as istiod's functions format their arguments. */
function goString(value: unknown): string {
  return sprint([value]);
}

/** encoding/json, as istiod's toJSON and structToJSON marshal (nil is `{}` there). */
function goJson(value: unknown): string {
  return value === undefined || value === null ? '{}' : toGoJson(value, false);
}

/**
 * The Go type of template data objects where a function's output depends on it: the pod spec's structs, so that
 * structToJSON writes fields in struct order with their omitempty rules as encoding/json does (the sidecar template
 * marshals each port into ISTIO_META_POD_PORTS), and ProxyConfig, which protoToJSON cleans of istiod's defaults.
 */
type GoType = GoStructType | 'ProxyConfig';
const goTypes = new WeakMap<object, GoType>();

function rememberGoTypes(spec: PodSpec, proxyConfigs: readonly ProxyConfig[]): void {
  const remember = (object: object, type: GoType) => goTypes.set(object, type);
  forEachGoStruct(spec.containers, 'Container', remember);
  forEachGoStruct(spec.initContainers, 'Container', remember);
  for (const config of proxyConfigs) remember(config, 'ProxyConfig');
}

/**
 * A deep copy of template data that keeps each object's Go type. Own enumerable keys only, `__proto__` included as
 * a plain key, as structuredClone would copy them.
 */
function copyTemplateData(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  let copy: unknown[] | Record<string, unknown>;
  if (Array.isArray(value)) copy = value.map(copyTemplateData);
  else {
    const object: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      Object.defineProperty(object, key, {
        value: copyTemplateData(item),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    copy = object;
  }
  const type = goTypes.get(value);
  if (type !== undefined) goTypes.set(copy, type);
  return copy;
}

/** istiod's structToJSON: encoding/json of a struct (or a list of them), `{}` for nil. */
function structJson(value: unknown): string {
  if (value === undefined || value === null) return '{}';
  const first: unknown = Array.isArray(value) ? value[0] : value;
  const type = isObject(first) ? goTypes.get(first) : undefined;
  return type === undefined || type === 'ProxyConfig' ? goJson(value) : goMarshal(value, type);
}

/** The containers' ports as istiod lists them: in order, repeats kept, UDP and SCTP ones left out. */
function containerPorts(containers: unknown, include: (c: Container) => boolean): string {
  if (!Array.isArray(containers)) return '';
  const ports: string[] = [];
  for (const c of containers as Container[]) {
    if (!isObject(c) || !include(c)) continue;
    for (const port of c.ports ?? []) {
      if (port.protocol === 'UDP' || port.protocol === 'SCTP') continue;
      ports.push(String(port.containerPort));
    }
  }
  return ports.join(',');
}

/** time.Duration's String for a protobuf duration given as "90s" or {seconds, nanos}. */
function formatGoDuration(value: unknown): string {
  let seconds: number;
  if (typeof value === 'string' && /^-?[0-9]+(\.[0-9]+)?s$/.test(value)) seconds = Number(value.slice(0, -1));
  else if (isObject(value)) seconds = Number(value['seconds'] ?? 0) + Number(value['nanos'] ?? 0) / 1e9;
  else return '0s';
  if (seconds === 0) return '0s';
  const sign = seconds < 0 ? '-' : '';
  let rest = Math.abs(seconds);
  if (rest < 1) {
    const ms = rest * 1000;
    return ms >= 1 ? `${sign}${trimFloat(ms)}ms` : `${sign}${trimFloat(ms * 1000)}µs`;
  }
  const hours = Math.floor(rest / 3600);
  rest -= hours * 3600;
  const minutes = Math.floor(rest / 60);
  rest -= minutes * 60;
  let out = sign;
  if (hours > 0) out += `${hours}h`;
  if (hours > 0 || minutes > 0) out += `${minutes}m`;
  return `${out}${trimFloat(rest)}s`;
}

function trimFloat(n: number): string {
  return String(Number(n.toFixed(9)));
}

/** The names a custom template may call beyond the builtins and sprig: Istio's, `env` (per revision) among them. */
const ISTIO_FUNCTION_NAMES = [...Object.keys(ISTIO_FUNCTIONS), 'env'];

/**
 * What istiod's SidecarTemplateData holds, for a custom template: Go field names at the top, the JSON objects below
 * (the template engine resolves `.Spec.Containers` to `spec.containers`). `.Values` holds the Helm values meshrev
 * derives from the revision's spec (README lists them).
 */
export function templateData(ctx: TemplateContext): JsonObject {
  const { settings } = ctx;
  const proxyConfig = proxyConfigWithDefaults(ctx.proxyConfig);
  const mesh = meshConfigOf(settings);
  rememberGoTypes(ctx.spec, [proxyConfig, mesh['defaultConfig'] as ProxyConfig]);
  return {
    TypeMeta: ctx.typeMeta,
    DeploymentMeta: ctx.deployMeta,
    ObjectMeta: ctx.metadata,
    Spec: ctx.spec,
    ProxyConfig: proxyConfig,
    MeshConfig: mesh,
    Values: valuesOf(settings),
    Revision: settings.revision || 'default',
    NativeSidecars: ctx.nativeSidecars,
    ProxyImage: ctx.proxyImage,
    ProxyInitImage: ctx.proxyInitImage,
    ProxyUID: ctx.proxyUid,
    ProxyGID: ctx.proxyGid,
    // istiod's InboundTrafficPolicyMode: the mesh's mode in lower case, passthrough when unset.
    InboundTrafficPolicyMode:
      settings.mesh.inboundTrafficPolicyMode === 'LOCALHOST' ? 'localhost' : 'passthrough',
    CompliancePolicy: settings.compliancePolicy,
  };
}

const derived = new WeakMap<InjectorSettings, { mesh: JsonObject; values: JsonObject }>();

function derivedOf(settings: InjectorSettings): { mesh: JsonObject; values: JsonObject } {
  let entry = derived.get(settings);
  if (entry === undefined) {
    entry = { mesh: buildMeshConfig(settings), values: buildValues(settings) };
    derived.set(settings, entry);
  }
  return entry;
}

/** The mesh config istiod's templates see for these settings (`make istiod-parity` gives it to istiod too). */
export function meshConfigOf(settings: InjectorSettings): JsonObject {
  return derivedOf(settings).mesh;
}

/** The chart values istiod's templates see for these settings (`make istiod-parity` gives them to istiod too). */
export function valuesOf(settings: InjectorSettings): JsonObject {
  return derivedOf(settings).values;
}

function buildMeshConfig(settings: InjectorSettings): JsonObject {
  const { mesh } = settings;
  return {
    defaultConfig: proxyConfigWithDefaults(mesh.defaultConfig),
    trustDomain: mesh.trustDomain ?? settings.trustDomain,
    rootNamespace: mesh.rootNamespace ?? settings.istioNamespace,
    ...(mesh.enablePrometheusMerge === undefined
      ? {}
      : { enablePrometheusMerge: mesh.enablePrometheusMerge }),
    ...(mesh.inboundTrafficPolicyMode
      ? { inboundTrafficPolicy: { mode: mesh.inboundTrafficPolicyMode } }
      : {}),
    ...(mesh.proxyListenPort === undefined ? {} : { proxyListenPort: mesh.proxyListenPort }),
    ...(mesh.proxyInboundListenPort === undefined
      ? {}
      : { proxyInboundListenPort: mesh.proxyInboundListenPort }),
    ...(mesh.extensionProviders ? { extensionProviders: mesh.extensionProviders } : {}),
  };
}

/**
 * The values istiod's templates read: what the chart puts in the injector ConfigMap (`global`,
 * `sidecarInjectorWebhook` and `revision`, with `pilot.cni`, `pilot.env` and `gateways`' security settings), as the
 * revision's spec sets them over the chart's defaults.
 */
function buildValues(s: InjectorSettings): JsonObject {
  return {
    revision: s.revision === 'default' ? '' : s.revision,
    global: {
      hub: s.hub,
      tag: s.tag,
      variant: s.variant,
      imagePullPolicy: s.imagePullPolicy,
      imagePullSecrets: s.imagePullSecrets,
      istioNamespace: s.istioNamespace,
      caAddress: s.caAddress,
      caName: s.caName,
      network: s.network,
      meshID: s.meshId,
      multiCluster: { clusterName: s.clusterName },
      trustBundleName: s.trustBundleName,
      pilotCertProvider: s.pilotCertProvider,
      mountMtlsCerts: s.mountMtlsCerts,
      sds: { token: { aud: s.tokenAudience } },
      logAsJson: s.logAsJson,
      logging: { level: s.agentLogLevel },
      sts: { servicePort: s.stsPort },
      proxy: {
        autoInject: s.policy,
        image: s.proxyImage,
        clusterDomain: s.clusterDomain,
        logLevel: s.proxyLogLevel,
        componentLogLevel: s.proxyComponentLogLevel,
        resources: s.resources,
        statusPort: s.statusPort,
        privileged: s.privileged,
        capNetBindService: s.capNetBindService,
        readinessInitialDelaySeconds: s.readinessInitialDelaySeconds,
        readinessPeriodSeconds: s.readinessPeriodSeconds,
        readinessFailureThreshold: s.readinessFailureThreshold,
        startupProbe: s.startupProbe,
        includeIPRanges: s.includeIPRanges,
        excludeIPRanges: s.excludeIPRanges,
        includeInboundPorts: s.includeInboundPorts,
        excludeInboundPorts: s.excludeInboundPorts,
        includeOutboundPorts: s.includeOutboundPorts,
        excludeOutboundPorts: s.excludeOutboundPorts,
        holdApplicationUntilProxyStarts: s.holdApplicationUntilProxyStarts,
        outlierLogPath: s.outlierLogPath,
        tracer: s.tracer,
        ...(s.lifecycle ? { lifecycle: s.lifecycle } : {}),
        ...(s.seccompProfile ? { seccompProfile: s.seccompProfile } : {}),
      },
      proxy_init: { image: s.proxyInitImage, forceApplyIptables: s.forceApplyIptables },
      nativeNftables: s.nativeNftables,
    },
    pilot: {
      cni: { enabled: s.cni.enabled, provider: s.cni.provider },
      env: s.pilotEnv,
      // Not in the ConfigMap the chart renders (the template's default applies); Istio's own tests pass it.
      ...(s.crlConfigMapName ? { crlConfigMapName: s.crlConfigMapName } : {}),
    },
    gateways: { securityContext: s.gatewaySecurityContext ?? {}, seccompProfile: {} },
    sidecarInjectorWebhook: {
      defaultTemplates: s.defaultTemplates,
      injectedAnnotations: s.injectedAnnotations,
      rewriteAppHTTPProbe: s.rewriteAppHTTPProbe,
      neverInjectSelector: s.neverInjectSelector,
      alwaysInjectSelector: s.alwaysInjectSelector,
    },
  };
}

/** A custom template's text parsed, or why it does not parse. */
type Parsed = { ok: true; template: CompiledTemplate } | { ok: false; message: string };

/**
 * Parsed templates by text. The reconciler checks a revision's templates on every reconcile and each settings
 * version parses them again; texts rarely change, so they are parsed once (the bound only limits what a stream of
 * edits can leave behind).
 */
const parsedByText = new Map<string, Parsed>();
const MAX_PARSED_TEXTS = 64;

function parseCustomTemplate(text: string): Parsed {
  let parsed = parsedByText.get(text);
  if (parsed === undefined) {
    try {
      parsed = {
        ok: true,
        template: parseGoTemplate(GO_TEMPLATE_NAME, text, { funcNames: ISTIO_FUNCTION_NAMES }),
      };
    } catch (error) {
      parsed = { ok: false, message: error instanceof Error ? error.message : String(error) };
    }
    if (parsedByText.size >= MAX_PARSED_TEXTS) parsedByText.clear();
    parsedByText.set(text, parsed);
  }
  return parsed;
}

/** Why each of `texts` that does not parse fails, by template name (for the revision's status). */
export function customTemplateProblems(texts: Readonly<Record<string, string>>): Record<string, string> {
  const problems: Record<string, string> = {};
  for (const [name, text] of Object.entries(texts)) {
    const parsed = parseCustomTemplate(text);
    if (!parsed.ok) problems[name] = parsed.message;
  }
  return problems;
}

const compiled = new WeakMap<InjectorSettings, Readonly<Record<string, InjectionTemplate>>>();

/** The revision's custom templates as engine templates, parsed once per settings object. */
export function customTemplatesOf(settings: InjectorSettings): Readonly<Record<string, InjectionTemplate>> {
  let templates = compiled.get(settings);
  if (templates === undefined) {
    const built: Record<string, InjectionTemplate> = {};
    for (const [name, text] of Object.entries(settings.customTemplates)) {
      built[name] = customTemplate(name, parseCustomTemplate(text));
    }
    templates = built;
    compiled.set(settings, templates);
  }
  return templates;
}

function customTemplate(name: string, parsed: Parsed): InjectionTemplate {
  if (!parsed.ok) {
    return () => {
      throw new Error(`failed to parse injection template "${name}": ${parsed.message}`);
    };
  }
  return (ctx) => {
    let text: string;
    try {
      // A copy: sprig's set, unset and merge change the maps they are given, and the engine's pod, the settings'
      // values and the mesh config are shared (the patch is built from what the pipeline replaced).
      text = parsed.template.execute(copyTemplateData(templateData(ctx)), functionsFor(ctx.settings));
    } catch (error) {
      const message =
        error instanceof GoTemplateError || error instanceof Error ? error.message : String(error);
      throw new Error(`failed to run injection template "${name}": ${message}`);
    }
    let fragment: unknown;
    try {
      // Go's YAML reader (sigs.k8s.io/yaml, not strict) lets a repeated key's last value win.
      fragment = parseYaml(text, { version: '1.1', uniqueKeys: false });
    } catch (error) {
      throw new Error(`injection template "${name}" rendered invalid YAML: ${(error as Error).message}`);
    }
    if (fragment === null || fragment === undefined) return {};
    if (!isObject(fragment))
      throw new Error(`injection template "${name}" must render a Pod fragment (a YAML map)`);
    return withGoContainers(fragment) as Pod;
  };
}

/**
 * The fragment's containers as istiod's unmarshalling of the rendered YAML into a corev1.Pod leaves them, and as the
 * built-in templates write them: only the fields Go's structs have, quantities in canonical form (`2000m` is `2`),
 * and zero values of omitempty fields dropped (`initialDelaySeconds: 0`).
 */
function asGoContainer(container: JsonObject): JsonObject {
  const out = JSON.parse(goMarshal(container, 'Container')) as JsonObject;
  // Go writes a container without resources as `resources: {}`; meshrev's templates leave the key out.
  if (container['resources'] === undefined) delete out['resources'];
  // istiod merges the YAML before Go reads it, so a probe field written as 0 still replaces the pod's value: it is
  // kept for the merge, and dropped after it (inject.ts).
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    const written = container[probe];
    const read = out[probe];
    if (!isObject(written) || !isObject(read)) continue;
    for (const [field, value] of Object.entries(written)) if (value === 0) read[field] = 0;
  }
  return out;
}

function withGoContainers(fragment: JsonObject): JsonObject {
  const spec = fragment['spec'];
  if (!isObject(spec)) return fragment;
  const out: JsonObject = { ...spec };
  for (const key of ['containers', 'initContainers']) {
    const list = spec[key];
    if (Array.isArray(list)) out[key] = list.map((c) => (isObject(c) ? asGoContainer(c) : c));
  }
  return { ...fragment, spec: out };
}
