// Everything the injection templates read, flattened from what istiod spreads over the injector ConfigMap
// (`values`, `config`) and the mesh ConfigMap. Defaults are the istio-discovery chart defaults, which are also
// the settings of the Istio conformance corpus.
import type { LabelSelector, ResourceRequirements } from './types.js';

export type NativeSidecarMode = 'auto' | 'true' | 'false';
export type InterceptionMode = 'REDIRECT' | 'TPROXY' | 'NONE';

/** Istio ProxyConfig (mesh `defaultConfig`), camelCase JSON as in the mesh ConfigMap. Unknown fields are kept. */
export type ProxyConfig = Record<string, unknown> & {
  interceptionMode?: string;
  holdApplicationUntilProxyStarts?: boolean;
  proxyMetadata?: Record<string, string>;
  statusPort?: number;
  image?: { imageType?: string };
};

/** The mesh-wide settings the injector reads from MeshConfig. */
export interface MeshSettings {
  /** Mesh `defaultConfig`, holding only what differs from Istio's built-in ProxyConfig defaults. */
  defaultConfig: ProxyConfig;
  /** Mesh `enablePrometheusMerge`; Istio treats unset as true. */
  enablePrometheusMerge?: boolean;
  /** Mesh `trustDomain`, preferred over `InjectorSettings.trustDomain`. */
  trustDomain?: string;
  /** Mesh `inboundTrafficPolicy.mode`. */
  inboundTrafficPolicyMode?: 'PASSTHROUGH' | 'LOCALHOST';
  proxyListenPort?: number;
  proxyInboundListenPort?: number;
  /**
   * Mesh `rootNamespace`: a ProxyConfig resource without a selector there applies to the whole mesh. Istio's
   * default is the control plane's namespace, which is what unset means here.
   */
  rootNamespace?: string;
  /** Mesh `extensionProviders`, read only for OpenTelemetry semantic-convention enrichment. */
  extensionProviders?: Array<Record<string, unknown>>;
}

export interface InjectorSettings {
  /** The revision name; '' and 'default' both denote the default revision. */
  revision: string;
  hub: string;
  tag: string;
  /** Image variant such as 'distroless' appended to the tag, '' for none. */
  variant: string;
  /** Proxy image name (or a full reference when it contains '/'). */
  proxyImage: string;
  proxyInitImage: string;
  imagePullPolicy: string;
  imagePullSecrets: string[];
  /** Namespace of the control plane. */
  istioNamespace: string;
  /** Address of the CA the proxies talk to (CA_ADDR). */
  caAddress: string;
  /** `global.multiCluster.clusterName`; '' lets the proxy report `Kubernetes`. */
  clusterName: string;
  network: string;
  trustDomain: string;
  meshId: string;
  clusterDomain: string;
  pilotCertProvider: string;
  /** Audience of the projected service-account token. */
  tokenAudience: string;
  /** Name of the root-certificate ConfigMap ('' for istio-ca-root-cert). */
  trustBundleName: string;
  crlConfigMapName: string;
  enableClusterTrustBundle: boolean;
  mountMtlsCerts: boolean;
  caName: string;
  /** `global.logging.level`, the agent's --log_output_level. */
  agentLogLevel: string;
  logAsJson: boolean;
  proxyLogLevel: string;
  proxyComponentLogLevel: string;
  /** Proxy resources; undefined renders none. */
  resources?: ResourceRequirements;
  statusPort: number;
  readinessInitialDelaySeconds: number;
  readinessPeriodSeconds: number;
  readinessFailureThreshold: number;
  startupProbe: { enabled: boolean; failureThreshold: number };
  includeIPRanges: string;
  excludeIPRanges: string;
  includeInboundPorts: string;
  excludeInboundPorts: string;
  includeOutboundPorts: string;
  excludeOutboundPorts: string;
  privileged: boolean;
  capNetBindService: boolean;
  seccompProfile?: Record<string, unknown>;
  /** Replaces the proxy's lifecycle hooks entirely when set. */
  lifecycle?: Record<string, unknown>;
  holdApplicationUntilProxyStarts: boolean;
  outlierLogPath: string;
  stsPort: number;
  tracer: string;
  forceApplyIptables: boolean;
  nativeNftables: boolean;
  nativeSidecars: NativeSidecarMode;
  cni: { enabled: boolean; provider: 'default' | 'multus' };
  /** istiod's COMPLIANCE_POLICY ('' for none): proxies get it too, so they enforce what istiod does. */
  compliancePolicy: string;
  /**
   * istiod's environment as the revision's spec decides it (`istiodEnvironmentValues`): what istiod's injector would
   * find with os.Getenv, read by the `env` function of custom templates.
   */
  istiodEnvironment: ReadonlyMap<string, string>;
  /**
   * The chart's `env` value (istiod's extra environment, `spec.istiod.env`), as the injector ConfigMap hands it to
   * templates under `.Values.pilot.env`: `true` and `false` as the booleans Helm would have read them as.
   */
  pilotEnv: Readonly<Record<string, string | boolean>>;
  /** `gateways.securityContext` for the gateway template's pod security context. */
  gatewaySecurityContext?: Record<string, unknown>;
  // --- injector config (`config` key of the injector ConfigMap)
  policy: 'enabled' | 'disabled';
  neverInjectSelector: LabelSelector[];
  alwaysInjectSelector: LabelSelector[];
  defaultTemplates: string[];
  /**
   * Custom templates by name (Istio's sidecarInjectorWebhook.templates): Go text/template texts rendering a Pod
   * fragment in YAML (custom-templates.ts). They shadow built-in templates of the same name.
   */
  customTemplates: Record<string, string>;
  aliases: Record<string, string[]>;
  injectedAnnotations: Record<string, string>;
  rewriteAppHTTPProbe: boolean;
  /** Namespaces never injected. */
  ignoredNamespaces: string[];
  /**
   * 'openshift': the proxy runs with the top UID (and first supplemental GID) of the namespace's SCC range, read
   * from the namespace annotations handed to the engine with each request.
   */
  platform: 'kubernetes' | 'openshift';
  mesh: MeshSettings;
}

export const DEFAULT_IGNORED_NAMESPACES = [
  'kube-system',
  'kube-public',
  'kube-node-lease',
  'local-path-storage',
];

/** The istio-discovery chart defaults (profile empty), i.e. the settings of the Istio conformance corpus. */
export function defaultInjectorSettings(overrides: Partial<InjectorSettings> = {}): InjectorSettings {
  return {
    revision: 'default',
    hub: 'registry.istio.io/testing',
    tag: 'latest',
    variant: '',
    proxyImage: 'proxyv2',
    proxyInitImage: 'proxyv2',
    imagePullPolicy: '',
    imagePullSecrets: [],
    istioNamespace: 'istio-system',
    caAddress: 'istiod.istio-system.svc:15012',
    clusterName: '',
    network: '',
    trustDomain: 'cluster.local',
    meshId: '',
    clusterDomain: 'cluster.local',
    pilotCertProvider: 'istiod',
    tokenAudience: 'istio-ca',
    trustBundleName: '',
    crlConfigMapName: '',
    enableClusterTrustBundle: false,
    mountMtlsCerts: false,
    caName: '',
    agentLogLevel: 'default:info',
    logAsJson: false,
    proxyLogLevel: 'warning',
    proxyComponentLogLevel: 'misc:error',
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2000m', memory: '1024Mi' } },
    statusPort: 15020,
    readinessInitialDelaySeconds: 0,
    readinessPeriodSeconds: 15,
    readinessFailureThreshold: 4,
    startupProbe: { enabled: true, failureThreshold: 600 },
    includeIPRanges: '*',
    excludeIPRanges: '',
    includeInboundPorts: '*',
    excludeInboundPorts: '',
    includeOutboundPorts: '',
    excludeOutboundPorts: '',
    privileged: false,
    capNetBindService: false,
    holdApplicationUntilProxyStarts: false,
    outlierLogPath: '',
    stsPort: 0,
    tracer: 'none',
    forceApplyIptables: false,
    nativeNftables: false,
    nativeSidecars: 'auto',
    cni: { enabled: false, provider: 'default' },
    compliancePolicy: '',
    istiodEnvironment: new Map(),
    pilotEnv: {},
    policy: 'enabled',
    neverInjectSelector: [],
    alwaysInjectSelector: [],
    defaultTemplates: ['sidecar'],
    customTemplates: {},
    aliases: {},
    injectedAnnotations: {},
    rewriteAppHTTPProbe: true,
    ignoredNamespaces: DEFAULT_IGNORED_NAMESPACES,
    platform: 'kubernetes',
    mesh: { defaultConfig: {} },
    ...overrides,
  };
}
