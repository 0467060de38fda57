// Random pods and revision specs for `make template-parity`'s random mode: the pod annotations, labels, containers
// and probes Istio's templates read, and the spec fields that change what they render, drawn from a seed so that a
// difference can be replayed. Values are mostly valid (an invalid annotation is refused before any template runs,
// the same on both sides) with some that are not.
import { settingsFromRevision, type RevisionSettingsInput } from '../src/crds/proxy.js';
import type { InjectorSettings, Pod } from '../src/injector/engine/index.js';
import type { Container } from '../src/injector/engine/types.js';

type Random = () => number;

function picker(next: Random) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const maybe = (p: number) => next() < p;
  return { pick, maybe };
}

const NAMES = ['hello', 'web', 'a', 'checkout-service', `${'x'.repeat(60)}-_.y`, `_${'b'.repeat(61)}-tail`];

/** Annotations the templates read, each with values worth trying. */
const ANNOTATIONS: ReadonlyArray<[string, readonly string[]]> = [
  ['sidecar.istio.io/proxyCPU', ['100m', '2', '1500m']],
  ['sidecar.istio.io/proxyMemory', ['128Mi', '1Gi']],
  ['sidecar.istio.io/proxyCPULimit', ['2', '500m']],
  ['sidecar.istio.io/proxyMemoryLimit', ['1Gi', '512Mi']],
  ['sidecar.istio.io/proxyImage', ['docker.io/istio/proxyv2:1.30.3', 'proxyv2-custom']],
  ['sidecar.istio.io/interceptionMode', ['REDIRECT', 'TPROXY', 'NONE']],
  ['traffic.sidecar.istio.io/includeOutboundIPRanges', ['*', '10.0.0.0/8,172.16.0.0/12', '']],
  ['traffic.sidecar.istio.io/excludeOutboundIPRanges', ['10.96.0.1/32', '']],
  ['traffic.sidecar.istio.io/includeInboundPorts', ['*', '8080,9090', '']],
  ['traffic.sidecar.istio.io/excludeInboundPorts', ['15020', '9000', '9000,15021', '']],
  ['traffic.sidecar.istio.io/includeOutboundPorts', ['5432', '']],
  ['traffic.sidecar.istio.io/excludeOutboundPorts', ['3306,6379', '']],
  ['traffic.sidecar.istio.io/excludeInterfaces', ['eth1', 'eth1,eth2']],
  ['traffic.sidecar.istio.io/kubevirtInterfaces', ['net1']],
  ['status.sidecar.istio.io/port', ['15020', '0', '16000']],
  ['readiness.status.sidecar.istio.io/initialDelaySeconds', ['0', '5']],
  ['readiness.status.sidecar.istio.io/periodSeconds', ['2', '30']],
  ['readiness.status.sidecar.istio.io/failureThreshold', ['1', '10']],
  ['readiness.status.sidecar.istio.io/applicationPorts', ['8080', '']],
  ['sidecar.istio.io/logLevel', ['debug', 'info']],
  ['sidecar.istio.io/componentLogLevel', ['misc:debug', 'upstream:info']],
  ['sidecar.istio.io/agentLogLevel', ['default:debug']],
  [
    'sidecar.istio.io/userVolume',
    [
      '[{"name":"extra","emptyDir":{}}]',
      '{"extra":{"emptyDir":{}}}',
      '[{"emptyDir":{}}]',
      'null',
      'not json',
      '5',
      '{"e":{}}',
    ],
  ],
  [
    'sidecar.istio.io/userVolumeMount',
    [
      '[{"name":"extra","mountPath":"/extra"}]',
      '{"extra":{"mountPath":"/x"}}',
      '"text"',
      '{"extra":{"mountPath":"/x","name":"other"}}',
    ],
  ],
  ['sidecar.istio.io/bootstrapOverride', ['custom-bootstrap']],
  ['sidecar.istio.io/rewriteAppHTTPProbers', ['true', 'false']],
  ['sidecar.istio.io/nativeSidecar', ['true', 'false']],
  ['sidecar.istio.io/capNetBindService', ['true', 'false']],
  ['sidecar.istio.io/enableCoreDump', ['true']],
  [
    'proxy.istio.io/config',
    [
      '{"holdApplicationUntilProxyStarts": true}',
      '{"concurrency": 2}',
      '{"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}',
      '{"interceptionMode": "TPROXY"}',
    ],
  ],
  ['prometheus.io/scrape', ['true', 'false']],
  ['prometheus.io/port', ['9090', '8080']],
  ['prometheus.io/path', ['/metrics']],
  [
    'apm.datadoghq.com/env',
    ['{"DD_ENV":"prod","DD_SERVICE":"web"}', 'not json', '{"DD_VERSION":"2","DD_TRACE":true}'],
  ],
  ['kubectl.kubernetes.io/default-container', ['app-0']],
  ['kubectl.kubernetes.io/default-logs-container', ['app-0']],
  ['k8s.v1.cni.cncf.io/networks', ['istio-cni', '[{"name": "macvlan"}]', 'other']],
  ['inject.istio.io/templates', ['sidecar', 'gateway', 'grpc-agent', 'grpc-simple', 'sidecar,grpc-agent']],
  ['resource.opentelemetry.io/service.version', ['v3']],
];

const LABELS: ReadonlyArray<[string, readonly string[]]> = [
  ['app', NAMES],
  ['version', ['v1', 'v2']],
  ['app.kubernetes.io/name', NAMES],
  ['app.kubernetes.io/version', ['1.0']],
  ['service.istio.io/canonical-name', NAMES],
  ['service.istio.io/canonical-revision', ['stable']],
  ['service.istio.io/workload-name', ['custom-workload']],
  ['networking.istio.io/tunnel', ['http']],
  ['topology.istio.io/network', ['net-b']],
];

function container(next: Random, index: number): Container {
  const { pick, maybe } = picker(next);
  const ports = maybe(0.7)
    ? [
        { name: 'http', containerPort: pick([80, 8080, 9080]) },
        ...(maybe(0.4) ? [{ containerPort: 9090, protocol: pick(['TCP', 'UDP', 'SCTP']) }] : []),
        ...(maybe(0.2) ? [{ name: 'grpc', containerPort: 7070 }] : []),
      ]
    : undefined;
  const probe = () =>
    pick<Record<string, unknown>>([
      { httpGet: { path: '/ready', port: 'http' } },
      { httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP', httpHeaders: [{ name: 'X', value: 'y' }] } },
      { tcpSocket: { port: 8080 } },
      { grpc: { port: 7070 } },
      { exec: { command: ['true'] } },
      { httpGet: { port: 'http' }, initialDelaySeconds: 3, periodSeconds: 5 },
    ]);
  return {
    name: `app-${index}`,
    image: pick(['example/app:1', 'registry:5000/team/app:2@sha256:abc', 'app']),
    ...(ports ? { ports } : {}),
    ...(maybe(0.5) ? { readinessProbe: probe() } : {}),
    ...(maybe(0.4) ? { livenessProbe: probe() } : {}),
    ...(maybe(0.2) ? { startupProbe: probe() } : {}),
    ...(maybe(0.2) ? { lifecycle: { postStart: { httpGet: { path: '/start', port: 8080 } } } } : {}),
    ...(maybe(0.3) ? { env: [{ name: 'A', value: '1' }] } : {}),
  } as Container;
}

/** A pod as a Deployment's ReplicaSet (or, now and then, a bare pod or a StatefulSet) creates it. */
export function randomPod(next: Random): { pod: Pod; namespace: string } {
  const { pick, maybe } = picker(next);
  const labels: Record<string, string> = {};
  for (const [key, values] of LABELS) if (maybe(0.25)) labels[key] = pick(values);
  const annotations: Record<string, string> = {};
  for (const [key, values] of ANNOTATIONS) if (maybe(0.12)) annotations[key] = pick(values);
  const containers = Array.from({ length: 1 + Math.floor(next() * 3) }, (_, i) => container(next, i));
  if (maybe(0.1)) containers.push({ name: 'istio-proxy', image: 'auto' } as Container);
  const owner = pick(['ReplicaSet', 'ReplicaSet', 'StatefulSet', 'Job', 'none']);
  const name = pick(NAMES);
  // test-ns is the corpus's OpenShift-style namespace, with SCC ranges that an openshift revision reads.
  const namespace = pick(['shop', 'shop', 'test-ns']);
  const metadata: Record<string, unknown> = {
    namespace,
    labels: owner === 'ReplicaSet' ? { ...labels, 'pod-template-hash': '5d4f8' } : labels,
    annotations,
  };
  if (owner === 'none') metadata['name'] = name;
  else {
    const ownerName = owner === 'ReplicaSet' ? `${name}-5d4f8` : name;
    metadata['generateName'] = `${ownerName}-`;
    const apiVersion = owner === 'Job' ? 'batch/v1' : 'apps/v1';
    metadata['ownerReferences'] = [{ apiVersion, kind: owner, name: ownerName, controller: true }];
  }
  const spec: Record<string, unknown> = { containers };
  if (maybe(0.2)) spec['initContainers'] = [{ name: 'setup', image: 'busybox' }];
  if (maybe(0.1)) spec['securityContext'] = { runAsUser: 1000, fsGroup: 2000 };
  if (maybe(0.1)) spec['imagePullSecrets'] = [{ name: 'pull' }];
  return { pod: { metadata, spec } as Pod, namespace };
}

/** A revision spec over the corpus's defaults, with the fields that change what the templates render. */
export function randomSettings(next: Random, base: RevisionSettingsInput, tag: string): InjectorSettings {
  const { pick, maybe } = picker(next);
  const spec: RevisionSettingsInput = structuredClone({ ...base, version: tag });
  const proxy: NonNullable<RevisionSettingsInput['proxy']> = (spec.proxy ??= {});
  if (maybe(0.2)) spec.cni = { enabled: true, provider: pick(['default', 'multus']) };
  if (maybe(0.15)) spec.imagePullPolicy = pick(['Always', 'IfNotPresent']);
  if (maybe(0.1)) spec.imagePullSecrets = ['registry-a'];
  if (maybe(0.2)) spec.network = 'net-a';
  if (maybe(0.2)) spec.clusterName = 'east';
  if (maybe(0.2)) spec.meshId = 'mesh-1';
  if (maybe(0.2)) proxy.holdApplicationUntilProxyStarts = true;
  if (maybe(0.2)) proxy.nativeSidecars = pick(['true', 'false'] as const);
  if (maybe(0.2)) proxy.privileged = true;
  if (maybe(0.2)) proxy.logAsJson = true;
  if (maybe(0.2)) proxy.statusPort = 15021;
  if (maybe(0.2)) proxy.includeIPRanges = '10.0.0.0/8';
  if (maybe(0.2)) proxy.excludeOutboundPorts = '3306';
  if (maybe(0.2)) proxy.resources = { requests: { cpu: '50m' } };
  if (maybe(0.2)) proxy.interceptionMode = 'TPROXY';
  if (maybe(0.2)) proxy.proxyMetadata = { ISTIO_META_DNS_CAPTURE: 'true' };
  if (maybe(0.1)) proxy.initImage = 'proxyinit';
  if (maybe(0.1)) proxy.image = 'docker.io/istio/proxyv2:1.30.3';
  if (maybe(0.2)) {
    spec.meshConfig = {
      ...spec.meshConfig,
      extensionProviders: [
        { name: 'otel', opentelemetry: { serviceAttributeEnrichment: 'OTEL_SEMANTIC_CONVENTIONS' } },
      ],
    };
  }
  if (maybe(0.1)) spec.meshConfig = { ...spec.meshConfig, inboundTrafficPolicy: { mode: 'LOCALHOST' } };
  if (maybe(0.1)) spec.meshConfig = { ...spec.meshConfig, trustDomain: 'example.org' };
  if (maybe(0.1))
    spec.meshConfig = { ...spec.meshConfig, proxyListenPort: 15101, proxyInboundListenPort: 15106 };
  if (maybe(0.2)) {
    spec.meshConfig = {
      ...spec.meshConfig,
      defaultConfig: pick([
        { holdApplicationUntilProxyStarts: true },
        { concurrency: 2, proxyMetadata: { ISTIO_META_DNS_AUTO_ALLOCATE: 'true' } },
        { tracing: { zipkin: { address: 'zipkin.tracing:9411' } } },
        { drainDuration: '30s', terminationDrainDuration: '10s' },
        { image: { imageType: 'distroless' } },
      ]),
    };
  }
  if (maybe(0.1)) proxy.variant = 'distroless';
  if (maybe(0.1)) proxy.logLevel = 'debug';
  if (maybe(0.1)) proxy.componentLogLevel = 'misc:info';
  if (maybe(0.1)) proxy.agentLogLevel = 'default:debug';
  if (maybe(0.1)) proxy.readinessInitialDelaySeconds = 2;
  if (maybe(0.1)) proxy.readinessPeriodSeconds = 5;
  if (maybe(0.1)) proxy.readinessFailureThreshold = 10;
  if (maybe(0.1)) proxy.startupProbe = { enabled: pick([true, false]), failureThreshold: 30 };
  if (maybe(0.1)) proxy.clusterDomain = 'corp.local';
  if (maybe(0.1)) proxy.includeInboundPorts = '8080';
  if (maybe(0.1)) proxy.excludeInboundPorts = '9000';
  if (maybe(0.1)) proxy.includeOutboundPorts = '443';
  if (maybe(0.1)) proxy.excludeIPRanges = '169.254.169.254/32';
  if (maybe(0.1)) proxy.capNetBindService = true;
  if (maybe(0.1)) proxy.outlierLogPath = '/dev/stdout';
  if (maybe(0.1)) proxy.seccompProfile = { type: 'RuntimeDefault' };
  if (maybe(0.1)) proxy.lifecycle = { preStop: { exec: { command: ['sleep', '5'] } } };
  if (maybe(0.1)) spec.injection = { ...spec.injection, rewriteAppHTTPProbe: false };
  if (maybe(0.2)) spec.platform = 'openshift';
  const revision = pick(['default', 'default', 'canary', 'asm-1-30']);
  if (revision !== 'default' && maybe(0.5)) delete spec.caAddress;
  const settings = settingsFromRevision(revision, spec);
  return {
    ...settings,
    ...(maybe(0.15) ? { compliancePolicy: pick(['fips-140-2', 'fips-140-3']) } : {}),
    // Not in the CRD; Istio's values.global.proxy.tracer.
    ...(maybe(0.2) ? { tracer: 'datadog' } : {}),
  };
}
