// Reading Istio's injection golden corpus and running it the way upstream's webhook test does
// (pkg/kube/inject/inject_test.go runWebhook): workload → pod, inject, apply the JSON Patch, compare pods.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { parseAllDocuments } from 'yaml';

import { settingsFromRevision, type RevisionSettingsInput } from '../../../src/crds/proxy.js';
import {
  injectPod,
  type InjectionOutcome,
  type InjectorSettings,
  type Pod,
} from '../../../src/injector/engine/index.js';

import { isObject, type JsonObject } from '../../../src/injector/engine/types.js';

export { isObject, type JsonObject };

/** The corpus folder: MESHREV_CONFORMANCE_DIR, else ../shared/conformance/istio-inject beside the repository. */
export function corpusDir(): string {
  return (
    process.env['MESHREV_CONFORMANCE_DIR'] ??
    path.resolve(process.cwd(), '../shared/conformance/istio-inject')
  );
}

export interface CorpusRow {
  kind: string;
  input: string;
  expected: string;
  settings: string;
}

export function readRows(dir: string): CorpusRow[] {
  const lines = readFileSync(path.join(dir, 'test_cases.tsv'), 'utf8').split('\n').slice(1);
  return lines
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const [kind = '', input = '', expected = '', settings = ''] = line.split('\t');
      return { kind, input, expected, settings: settings.trim() };
    });
}

/** YAML documents of a corpus file, parsed as Go's YAML 1.1 reader would, empty documents dropped. */
export function readDocs(dir: string, file: string): unknown[] {
  const text = readFileSync(path.join(dir, 'testdata', file), 'utf8');
  return parseAllDocuments(text, { version: '1.1' })
    .map((d) => d.toJS() as unknown)
    .filter((d) => d !== null && d !== undefined);
}

export function corpusPresent(dir: string): boolean {
  return existsSync(path.join(dir, 'test_cases.tsv')) && existsSync(path.join(dir, 'testdata'));
}

const INJECTABLE = new Set([
  'Deployment',
  'DeploymentConfig',
  'DaemonSet',
  'StatefulSet',
  'Job',
  'ReplicaSet',
  'ReplicationController',
  'CronJob',
  'Pod',
]);

/** The documents the webhook test turns into pods, with v1 Lists expanded. */
export function injectableDocs(docs: readonly unknown[]): JsonObject[] {
  return docs.flatMap((doc): JsonObject[] => {
    if (!isObject(doc)) return [];
    if (doc['kind'] === 'List' && Array.isArray(doc['items'])) return injectableDocs(doc['items']);
    return typeof doc['kind'] === 'string' && INJECTABLE.has(doc['kind']) ? [doc] : [];
  });
}

function simulateOwnerRef(meta: JsonObject, name: string, apiVersion: string, kind: string): JsonObject {
  return {
    ...meta,
    generateName: name,
    ownerReferences: [{ apiVersion, kind, name, controller: true }],
  };
}

/** The documented conversion of a workload into the Pod its controller would create. */
export function objectToPod(doc: JsonObject): JsonObject {
  const kind = String(doc['kind']);
  const apiVersion = String(doc['apiVersion'] ?? '');
  const metadata = isObject(doc['metadata']) ? doc['metadata'] : {};
  const name = String(metadata['name'] ?? '');
  const spec = isObject(doc['spec']) ? doc['spec'] : {};
  if (kind === 'Pod') return structuredClone(doc);
  let template: JsonObject;
  if (kind === 'CronJob') {
    const job = isObject(spec['jobTemplate']) ? spec['jobTemplate'] : {};
    const jobSpec = isObject(job['spec']) ? job['spec'] : {};
    template = isObject(jobSpec['template']) ? jobSpec['template'] : {};
  } else {
    template = isObject(spec['template']) ? spec['template'] : {};
  }
  template = structuredClone(template);
  const podMeta = isObject(template['metadata']) ? template['metadata'] : {};
  if (kind === 'Deployment') {
    const meta = simulateOwnerRef(podMeta, `${name}-fake`, 'apps/v1', 'ReplicaSet');
    meta['generateName'] = `${name}-fake-`;
    meta['labels'] = { ...(isObject(meta['labels']) ? meta['labels'] : {}), 'pod-template-hash': 'fake' };
    return { metadata: meta, spec: template['spec'] ?? {} };
  }
  return { metadata: simulateOwnerRef(podMeta, name, apiVersion, kind), spec: template['spec'] ?? {} };
}

const PROBE_KEYS = new Set(['readinessProbe', 'livenessProbe', 'startupProbe']);
const OMITEMPTY_BOOLS = new Set([
  'readOnly',
  'stdin',
  'stdinOnce',
  'tty',
  'hostNetwork',
  'hostPID',
  'hostIPC',
]);
const QUANTITY_MAPS = new Set(['limits', 'requests']);

/**
 * What a Go round trip through corev1.Pod makes equal: nulls, empty lists and maps, `resources: {}`,
 * `creationTimestamp: null`, zero probe integers and false non-pointer booleans disappear; quantities are
 * canonical. Plus upstream's scrubbing: no sidecar.istio.io/status, no fieldRef apiVersion.
 */
export function normalize(value: unknown, canonicalQuantity: (q: string) => string, key = ''): unknown {
  if (Array.isArray(value)) {
    const items = value.map((v) => normalize(v, canonicalQuantity, '')).filter((v) => v !== undefined);
    return items.length === 0 ? undefined : items;
  }
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === 'creationTimestamp' || k === 'status') continue;
      if (key === 'annotations' && k === 'sidecar.istio.io/status') continue;
      if (key === 'fieldRef' && k === 'apiVersion') continue;
      if (v === false && OMITEMPTY_BOOLS.has(k)) continue;
      if (v === 0 && PROBE_KEYS.has(key)) continue;
      if (QUANTITY_MAPS.has(key) && (typeof v === 'string' || typeof v === 'number')) {
        out[k] = canonicalQuantity(String(v));
        continue;
      }
      const n =
        PROBE_KEYS.has(k) && isObject(v)
          ? normalizeProbe(v, canonicalQuantity)
          : normalize(v, canonicalQuantity, k);
      if (n !== undefined) out[k] = n;
    }
    if (Object.keys(out).length === 0 && key !== 'emptyDir') return undefined;
    return out;
  }
  if (value === null || value === '') return undefined;
  return value;
}

function normalizeProbe(probe: JsonObject, canonicalQuantity: (q: string) => string): unknown {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(probe)) {
    if (v === 0) continue;
    const n = normalize(v, canonicalQuantity, k);
    if (n !== undefined) out[k] = n;
  }
  return out;
}

/** Namespace annotations of upstream's fake cluster (an OpenShift-style project with SCC ranges). */
export const NAMESPACE_ANNOTATIONS: Readonly<Record<string, Record<string, string>>> = {
  'test-ns': {
    'openshift.io/sa.scc.uid-range': '1000620000/10000',
    'openshift.io/sa.scc.supplemental-groups': '1000620000/10000',
  },
};

/** Upstream's fake cluster's nodes run kubelet 1.33 and 1.34, so native sidecars in 'auto' mode. */
export const NODE_MINORS = [33, 34];

/** The admission outcome for `pod` in upstream's fake cluster: its nodes, and its namespaces' annotations. */
export function injectInUpstreamCluster(
  pod: Pod,
  namespace: string,
  settings: InjectorSettings,
): InjectionOutcome {
  const namespaceAnnotations = NAMESPACE_ANNOTATIONS[namespace];
  return injectPod({
    pod,
    namespace,
    settings,
    nodeKubeletMinorVersions: NODE_MINORS,
    ...(namespaceAnnotations ? { namespaceAnnotations } : {}),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Settings

/** The corpus defaults (istio-discovery chart, profile empty, revision "default") as a ControlPlaneRevision spec. */
export function baseSpec(): RevisionSettingsInput {
  return {
    version: 'latest',
    hub: 'registry.istio.io/testing',
    namespace: 'istio-system',
    caAddress: 'istiod.istio-system.svc:15012',
    meshConfig: { trustDomain: 'cluster.local' },
    proxy: {},
    injection: {},
  };
}

export type CaseSettings =
  | { kind: 'webhook' | 'kube-inject'; settings: InjectorSettings; expectedError?: string }
  | { kind: 'out-of-scope'; reason: string };

/** Cases meshrev does not claim, each with the reason (reported, never silently passed). */
export const OUT_OF_SCOPE: ReadonlyArray<{ match: (row: CorpusRow) => boolean; reason: string }> = [
  {
    match: (row) => row.settings.includes('istio=1.26.0'),
    reason: 'rendered by the Istio 1.26.0 template; meshrev renders the current template only',
  },
];

function proxySpec(spec: RevisionSettingsInput): NonNullable<RevisionSettingsInput['proxy']> {
  spec.proxy ??= {};
  return spec.proxy;
}

function meshConfig(spec: RevisionSettingsInput): JsonObject {
  spec.meshConfig ??= {};
  return spec.meshConfig;
}

function defaultConfig(spec: RevisionSettingsInput): JsonObject {
  const mesh = meshConfig(spec);
  if (!isObject(mesh['defaultConfig'])) mesh['defaultConfig'] = {};
  return mesh['defaultConfig'] as JsonObject;
}

function omitNulls(value: unknown): unknown {
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === null) continue;
    const kept = omitNulls(v);
    if (!isObject(kept) || Object.keys(kept).length > 0) out[k] = kept;
  }
  return out;
}

/**
 * Translates a test_cases.tsv settings column into a ControlPlaneRevision spec (plus the few injector settings
 * the CRD does not expose). Unknown settings throw, so a new corpus surfaces them instead of passing silently.
 */
export function caseSettings(dir: string, row: CorpusRow): CaseSettings {
  const outOfScope = OUT_OF_SCOPE.find((o) => o.match(row));
  if (outOfScope) return { kind: 'out-of-scope', reason: outOfScope.reason };
  const spec = baseSpec();
  const extra: Partial<InjectorSettings> = {};
  let kind: 'webhook' | 'kube-inject' = 'webhook';
  let expectedError: string | undefined;
  const tokens = row.settings === '(default settings)' ? [] : row.settings.split(';').map((t) => t.trim());
  for (const token of tokens.filter((t) => t !== '')) {
    const [name = '', value = ''] = token.split(/=(.*)/s);
    const proxy = proxySpec(spec);
    switch (name) {
      case 'components.cni.enabled':
        spec.cni = { ...spec.cni, enabled: value === 'true' };
        break;
      case 'values.cni.provider':
        spec.cni = { ...spec.cni, provider: value === 'multus' ? 'multus' : 'default' };
        break;
      case 'values.global.network':
        spec.network = value;
        break;
      case 'values.global.proxy.image':
        proxy.image = value;
        break;
      case 'values.global.proxy_init.image':
        proxy.initImage = value;
        break;
      case 'values.global.imagePullPolicy':
        spec.imagePullPolicy = value;
        break;
      case 'ENABLE_NATIVE_SIDECARS':
        proxy.nativeSidecars = value === 'false' ? 'false' : value === 'true' ? 'true' : 'auto';
        break;
      case 'values.global.proxy.includeIPRanges':
        proxy.includeIPRanges = value;
        break;
      case 'values.global.proxy.excludeIPRanges':
        proxy.excludeIPRanges = value;
        break;
      case 'values.global.proxy.excludeInboundPorts':
        proxy.excludeInboundPorts = value;
        break;
      case 'values.global.proxy.statusPort':
        proxy.statusPort = Number(value);
        break;
      case 'values.global.proxy.readinessInitialDelaySeconds':
        proxy.readinessInitialDelaySeconds = Number(value);
        break;
      case 'values.global.proxy.readinessPeriodSeconds':
        proxy.readinessPeriodSeconds = Number(value);
        break;
      case 'values.global.proxy.readinessFailureThreshold':
        proxy.readinessFailureThreshold = Number(value);
        break;
      case 'values.global.proxy.holdApplicationUntilProxyStarts':
        proxy.holdApplicationUntilProxyStarts = value === 'true';
        break;
      case 'values.global.mountMtlsCerts':
        extra.mountMtlsCerts = value === 'true';
        break;
      case 'COMPLIANCE_POLICY':
        extra.compliancePolicy = value;
        break;
      case 'iop':
        applyIop(dir, value, spec);
        break;
      case 'mesh':
        applyMeshTweak(value, spec);
        break;
      case 'skipWebhook':
        kind = 'kube-inject';
        break;
      case 'expectedError':
        expectedError = value;
        break;
      case 'platform':
        spec.platform = value === 'openshift' ? 'openshift' : 'kubernetes';
        break;
      case 'webhook-only':
        break;
      default:
        throw new Error(`unknown corpus setting ${JSON.stringify(token)}`);
    }
  }
  const settings = { ...settingsFromRevision('default', spec), ...extra };
  return expectedError !== undefined ? { kind, settings, expectedError } : { kind, settings };
}

function applyIop(dir: string, file: string, spec: RevisionSettingsInput): void {
  if (file === 'hello-template-in-values.iop.yaml') return; // podDNSSearchNamespaces no longer affect injection
  const [iop] = readDocs(dir, file);
  const values = isObject(iop) && isObject(iop['spec']) ? iop['spec']['values'] : undefined;
  const webhook = isObject(values) ? values['sidecarInjectorWebhook'] : undefined;
  if (isObject(webhook)) {
    for (const [key, value] of Object.entries(webhook)) {
      if (key !== 'templates' || !isObject(value)) {
        throw new Error(`unsupported IstioOperator value sidecarInjectorWebhook.${key} in ${file}`);
      }
      // The custom templates, as a ControlPlaneRevision's spec.injection.templates carries them.
      spec.injection = { ...spec.injection, templates: value as Record<string, string> };
    }
  }
  const global = isObject(values) ? values['global'] : undefined;
  if (!isObject(global)) {
    if (isObject(webhook)) return;
    throw new Error(`unsupported IstioOperator file ${file}`);
  }
  for (const [key, value] of Object.entries(global)) {
    if (key === 'imagePullSecrets' && Array.isArray(value)) {
      spec.imagePullSecrets = value.map(String);
    } else if (key === 'proxy' && isObject(value) && isObject(value['resources'])) {
      // A CRD cannot carry Helm's null-deletes-default semantics: the spec states the resulting resources.
      proxySpec(spec).resources = omitNulls(value['resources']) as NonNullable<
        RevisionSettingsInput['proxy']
      >['resources'];
    } else {
      throw new Error(`unsupported IstioOperator value global.${key} in ${file}`);
    }
  }
}

function applyMeshTweak(what: string, spec: RevisionSettingsInput): void {
  for (const field of what.split(' ')) {
    switch (field) {
      case 'DefaultConfig.InterceptionMode':
        proxySpec(spec).interceptionMode = 'TPROXY';
        break;
      case 'DefaultConfig.DrainDuration':
        defaultConfig(spec)['drainDuration'] = '23s';
        break;
      case 'DefaultConfig.ProxyMetadata':
        defaultConfig(spec)['proxyMetadata'] = {
          ISTIO_META_TLS_CLIENT_KEY: '/etc/identity/client/keys/client-key.pem',
        };
        break;
      case 'DefaultConfig.Tracing':
        defaultConfig(spec)['tracing'] = {};
        break;
      case 'InboundTrafficPolicy':
        meshConfig(spec)['inboundTrafficPolicy'] = { mode: 'LOCALHOST' };
        break;
      case 'ExtensionProviders':
        meshConfig(spec)['extensionProviders'] = [
          {
            name: 'otel',
            opentelemetry: {
              service: 'otel-collector.observability.svc.cluster.local',
              port: 4317,
              serviceAttributeEnrichment: 'OTEL_SEMANTIC_CONVENTIONS',
            },
          },
        ];
        break;
      default:
        throw new Error(`unknown mesh setting ${field}`);
    }
  }
}
