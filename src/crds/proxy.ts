// The zod schemas of ControlPlaneRevision `spec.proxy` and `spec.injection`, and the mapping from a revision's
// spec to the injection engine's settings. Field names follow Istio's `global.proxy` and
// `sidecarInjectorWebhook` values so users can carry their settings over. Schemas stay within what
// `z.toJSONSchema` renders as a Kubernetes structural schema (no object unions, transforms or refinements).
import { z } from 'zod';

import {
  defaultInjectorSettings,
  type InjectorSettings,
  type ProxyConfig,
} from '../injector/engine/index.js';
import { DEFAULT_CONTROL_PLANE_NAMESPACE, DEFAULT_HUB } from './constants.js';

const freeFormObject = () => z.record(z.string(), z.unknown());
const stringMap = () => z.record(z.string(), z.string());

/** Custom injection templates: how many a revision may hold, how long each may be, and what a name may be. */
export const MAX_TEMPLATES = 16;
export const MAX_TEMPLATE_CHARS = 64 * 1024;
const TEMPLATE_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const TEMPLATE_NAME_RULE =
  'at most 63 characters: letters, digits, "-", "_" and ".", starting and ending with a letter or digit';
const port = () => z.int().min(0).max(65535);

const ResourceListSchema = stringMap().describe('Resource name to quantity, e.g. {cpu: 100m, memory: 128Mi}');

export const ProxyResourcesSchema = z
  .object({
    requests: ResourceListSchema.optional().describe('Resource requests of istio-proxy and istio-init'),
    limits: ResourceListSchema.optional().describe('Resource limits of istio-proxy and istio-init'),
  })
  .describe(
    'Resources of the injected containers; when set it replaces the defaults (requests 100m/128Mi, limits 2/1Gi)',
  );

export const ProxySpecSchema = z
  .object({
    image: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Proxy image name under the revision's hub (default proxyv2), or a full reference if it contains '/'",
      ),
    initImage: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Image name of the traffic-setup init container (default proxyv2), or a full reference with '/'",
      ),
    variant: z
      .string()
      .optional()
      .describe("Image variant appended to the tag, e.g. 'distroless' or 'debug'"),
    resources: ProxyResourcesSchema.optional(),
    logLevel: z
      .enum(['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'])
      .optional()
      .describe('Envoy log level (default warning); pods override it with sidecar.istio.io/logLevel'),
    componentLogLevel: z
      .string()
      .optional()
      .describe('Envoy per-component log levels, e.g. misc:error (the default)'),
    agentLogLevel: z
      .string()
      .optional()
      .describe('pilot-agent and istio-iptables --log_output_level (default default:info)'),
    logAsJson: z.boolean().optional().describe('Whether pilot-agent and istio-iptables log JSON'),
    holdApplicationUntilProxyStarts: z
      .boolean()
      .optional()
      .describe(
        'Start application containers only once the proxy is ready (classic layout; native sidecars always do)',
      ),
    nativeSidecars: z
      .enum(['auto', 'true', 'false'])
      .default('auto')
      .describe(
        "Inject istio-proxy as a native sidecar (init container with restartPolicy Always): auto = when every node (or the pod's node) runs kubelet 1.33 or newer, unless istiod.env sets ENABLE_NATIVE_SIDECARS, which then decides as in istiod",
      ),
    statusPort: port()
      .optional()
      .describe(
        'Port of the agent status server used for health checks and probe rewriting (default 15020; 0 disables)',
      ),
    readinessInitialDelaySeconds: z
      .int()
      .min(0)
      .optional()
      .describe('Initial delay of the proxy readiness probe (default 0)'),
    readinessPeriodSeconds: z
      .int()
      .min(1)
      .optional()
      .describe('Period of the proxy readiness probe (default 15)'),
    readinessFailureThreshold: z
      .int()
      .min(1)
      .optional()
      .describe('Failure threshold of the proxy readiness probe (default 4)'),
    startupProbe: z
      .object({
        enabled: z.boolean().optional().describe('Whether istio-proxy gets a startup probe (default true)'),
        failureThreshold: z
          .int()
          .min(1)
          .optional()
          .describe('Startup probe failure threshold (default 600, i.e. 10 minutes)'),
      })
      .optional()
      .describe('Startup probe of istio-proxy'),
    clusterDomain: z.string().optional().describe('DNS domain of the cluster (default cluster.local)'),
    includeIPRanges: z
      .string()
      .optional()
      .describe(
        "Outbound IP ranges (CIDRs, comma-separated) redirected to the proxy; '*' for all (the default)",
      ),
    excludeIPRanges: z
      .string()
      .optional()
      .describe('Outbound IP ranges (CIDRs, comma-separated) that bypass the proxy'),
    includeInboundPorts: z
      .string()
      .optional()
      .describe("Inbound ports (comma-separated) redirected to the proxy; '*' for all (the default)"),
    excludeInboundPorts: z
      .string()
      .optional()
      .describe('Inbound ports (comma-separated) that bypass the proxy'),
    includeOutboundPorts: z
      .string()
      .optional()
      .describe('Outbound ports (comma-separated) redirected to the proxy regardless of IP ranges'),
    excludeOutboundPorts: z
      .string()
      .optional()
      .describe('Outbound ports (comma-separated) that bypass the proxy'),
    interceptionMode: z
      .enum(['REDIRECT', 'TPROXY'])
      .optional()
      .describe(
        'How inbound traffic is captured (default REDIRECT); pods may also choose NONE by annotation',
      ),
    proxyMetadata: stringMap()
      .optional()
      .describe('Environment of every proxy (ProxyConfig proxyMetadata), e.g. ISTIO_META_DNS_CAPTURE'),
    privileged: z.boolean().optional().describe('Run the injected containers privileged (default false)'),
    capNetBindService: z
      .boolean()
      .optional()
      .describe('Give istio-proxy NET_BIND_SERVICE so it can bind ports below 1024'),
    seccompProfile: freeFormObject().optional().describe('seccompProfile of the injected containers'),
    lifecycle: freeFormObject()
      .optional()
      .describe(
        'Lifecycle hooks of istio-proxy, replacing the injected ones (drain on preStop, hold on postStart)',
      ),
    outlierLogPath: z.string().optional().describe('File Envoy writes outlier-detection events to'),
  })
  .describe('Sidecar proxy settings used by the injector');

const LabelSelectorSchema = z
  .object({
    matchLabels: stringMap().optional().describe('Labels the pod must carry'),
    matchExpressions: z
      .array(
        z.object({
          key: z.string().describe('Label key'),
          operator: z
            .enum(['In', 'NotIn', 'Exists', 'DoesNotExist'])
            .describe('Relation of the key to the values'),
          values: z.array(z.string()).optional().describe('Values for In and NotIn'),
        }),
      )
      .optional()
      .describe('Label requirements, all of which must hold'),
  })
  .describe('A label selector over pod labels');

export const InjectionSpecSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Whether the webhook configuration is rendered'),
    failurePolicy: z
      .enum(['Fail', 'Ignore'])
      .default('Fail')
      .describe(
        'What the API server does when the injector cannot be reached: reject (Fail) or admit without a sidecar',
      ),
    reinvocationPolicy: z
      .enum(['Never', 'IfNeeded'])
      .default('Never')
      .describe(
        'Whether the API server calls the injector again after other mutating webhooks changed the pod',
      ),
    timeoutSeconds: z
      .int()
      .min(1)
      .max(30)
      .optional()
      .describe('Webhook call timeout in seconds (API server default 10)'),
    policy: z
      .enum(['enabled', 'disabled'])
      .default('enabled')
      .describe('enabled: inject selected pods unless they opt out; disabled: inject only pods that opt in'),
    neverInjectSelector: z
      .array(LabelSelectorSchema)
      .optional()
      .describe(
        'Pods matching any of these selectors are not injected unless they ask with sidecar.istio.io/inject',
      ),
    alwaysInjectSelector: z
      .array(LabelSelectorSchema)
      .optional()
      .describe(
        'Pods matching any of these selectors are injected unless they opt out with sidecar.istio.io/inject',
      ),
    defaultTemplates: z
      .array(z.string().min(1))
      .optional()
      .describe('Templates used when a pod names none in inject.istio.io/templates (default [sidecar])'),
    templates: z
      .record(z.string(), z.string().min(1).max(MAX_TEMPLATE_CHARS))
      .superRefine((templates, context) => {
        const names = Object.keys(templates);
        if (names.length > MAX_TEMPLATES) {
          context.addIssue({ code: 'custom', message: `at most ${MAX_TEMPLATES} custom templates` });
        }
        for (const name of names.filter((n) => n.length > 63 || !TEMPLATE_NAME.test(n))) {
          context.addIssue({ code: 'custom', message: `template name "${name}": ${TEMPLATE_NAME_RULE}` });
        }
      })
      .meta({
        maxProperties: MAX_TEMPLATES,
        'x-kubernetes-validations': [
          {
            rule: `self.all(name, name.size() <= 63 && name.matches('${TEMPLATE_NAME.source}'))`,
            message: `template names: ${TEMPLATE_NAME_RULE}`,
          },
        ],
      })
      .optional()
      .describe(
        "Custom injection templates by name (Istio's sidecarInjectorWebhook.templates): Go text/template texts that " +
          'render a Pod fragment in YAML, merged onto the pod like the built-in ones. Pods choose them with ' +
          'inject.istio.io/templates (e.g. "sidecar,spire"), or defaultTemplates names them; a custom template ' +
          'named like a built-in one replaces it. A template that does not parse is reported in the Reconciled ' +
          'condition, and pods that ask for it are refused with the error.',
      ),
    injectedAnnotations: stringMap().optional().describe('Annotations added to every injected pod'),
    rewriteAppHTTPProbe: z
      .boolean()
      .default(true)
      .describe(
        'Rewrite application probes to go through the agent (pods override with sidecar.istio.io/rewriteAppHTTPProbers)',
      ),
    enableNamespacesByDefault: z
      .boolean()
      .default(false)
      .describe(
        "Also inject pods in unlabelled namespaces (Istio's auto.sidecar-injector webhook; kube-system, kube-public, " +
          'kube-node-lease and local-path-storage excepted, and pods labelled sidecar.istio.io/inject or istio.io/rev ' +
          'left to the other webhooks). As in Istio, only where this revision serves the default selectors: the ' +
          'default RevisionTag points at it, or it is named default.',
      ),
  })
  .describe('Sidecar injection webhook settings');

export type ProxySpec = z.infer<typeof ProxySpecSchema>;
export type InjectionSpec = z.infer<typeof InjectionSpecSchema>;

/** What settingsFromRevision reads of a ControlPlaneRevision spec (structural, so any spec shape with these fits). */
export interface RevisionSettingsInput {
  /** Istio version, used as the image tag. */
  version: string;
  hub?: string;
  /** Namespace of the control plane (default istio-system). */
  namespace?: string;
  imagePullPolicy?: string;
  imagePullSecrets?: string[];
  meshConfig?: Record<string, unknown>;
  proxy?: Partial<ProxySpec>;
  injection?: Partial<InjectionSpec>;
  cni?: { enabled?: boolean; provider?: 'default' | 'multus' };
  /** Address of istiod for CA and discovery; default `istiod-<revision>.<namespace>.svc:15012`. */
  caAddress?: string;
  /** Multi-cluster identity of this cluster (ISTIO_META_CLUSTER_ID; default Kubernetes). */
  clusterName?: string;
  /** Network of this cluster's workloads (ISTIO_META_NETWORK and the topology.istio.io/network label). */
  network?: string;
  meshId?: string;
  /** 'openshift' derives the proxy UID/GID from the namespace's SCC ranges. */
  platform?: 'kubernetes' | 'openshift';
}

function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function recordOf(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** The injector settings of revision `revisionName` as configured by its ControlPlaneRevision spec. */
export function settingsFromRevision(revisionName: string, spec: RevisionSettingsInput): InjectorSettings {
  const defaults = defaultInjectorSettings();
  const proxy = spec.proxy ?? {};
  const injection = spec.injection ?? {};
  const mesh = spec.meshConfig ?? {};
  const namespace = spec.namespace ?? DEFAULT_CONTROL_PLANE_NAMESPACE;
  const istiod = spec.caAddress ?? `istiod-${revisionName}.${namespace}.svc:15012`;

  const defaultConfig: ProxyConfig = { discoveryAddress: istiod, ...(recordOf(mesh['defaultConfig']) ?? {}) };
  if (proxy.interceptionMode !== undefined && defaultConfig.interceptionMode === undefined) {
    defaultConfig.interceptionMode = proxy.interceptionMode;
  }
  if (proxy.proxyMetadata !== undefined) {
    defaultConfig.proxyMetadata = { ...proxy.proxyMetadata, ...defaultConfig.proxyMetadata };
  }
  const inbound = recordOf(mesh['inboundTrafficPolicy']);
  const inboundMode = stringOf(inbound?.['mode']);
  const extensionProviders = Array.isArray(mesh['extensionProviders'])
    ? mesh['extensionProviders'].filter((p): p is Record<string, unknown> => recordOf(p) !== undefined)
    : undefined;

  return defaultInjectorSettings({
    revision: revisionName,
    hub: spec.hub ?? DEFAULT_HUB,
    tag: spec.version,
    variant: proxy.variant ?? '',
    proxyImage: proxy.image ?? 'proxyv2',
    proxyInitImage: proxy.initImage ?? 'proxyv2',
    imagePullPolicy: spec.imagePullPolicy ?? '',
    imagePullSecrets: spec.imagePullSecrets ?? [],
    istioNamespace: namespace,
    caAddress: istiod,
    clusterName: spec.clusterName ?? '',
    network: spec.network ?? '',
    meshId: spec.meshId ?? '',
    trustDomain: stringOf(mesh['trustDomain']) ?? defaults.trustDomain,
    clusterDomain: proxy.clusterDomain ?? defaults.clusterDomain,
    agentLogLevel: proxy.agentLogLevel ?? defaults.agentLogLevel,
    logAsJson: proxy.logAsJson ?? false,
    proxyLogLevel: proxy.logLevel ?? defaults.proxyLogLevel,
    proxyComponentLogLevel: proxy.componentLogLevel ?? defaults.proxyComponentLogLevel,
    resources: proxy.resources ?? defaults.resources,
    statusPort: proxy.statusPort ?? defaults.statusPort,
    readinessInitialDelaySeconds: proxy.readinessInitialDelaySeconds ?? defaults.readinessInitialDelaySeconds,
    readinessPeriodSeconds: proxy.readinessPeriodSeconds ?? defaults.readinessPeriodSeconds,
    readinessFailureThreshold: proxy.readinessFailureThreshold ?? defaults.readinessFailureThreshold,
    startupProbe: {
      enabled: proxy.startupProbe?.enabled ?? defaults.startupProbe.enabled,
      failureThreshold: proxy.startupProbe?.failureThreshold ?? defaults.startupProbe.failureThreshold,
    },
    includeIPRanges: proxy.includeIPRanges ?? defaults.includeIPRanges,
    excludeIPRanges: proxy.excludeIPRanges ?? defaults.excludeIPRanges,
    includeInboundPorts: proxy.includeInboundPorts ?? defaults.includeInboundPorts,
    excludeInboundPorts: proxy.excludeInboundPorts ?? defaults.excludeInboundPorts,
    includeOutboundPorts: proxy.includeOutboundPorts ?? defaults.includeOutboundPorts,
    excludeOutboundPorts: proxy.excludeOutboundPorts ?? defaults.excludeOutboundPorts,
    privileged: proxy.privileged ?? false,
    capNetBindService: proxy.capNetBindService ?? false,
    ...(proxy.seccompProfile ? { seccompProfile: proxy.seccompProfile } : {}),
    ...(proxy.lifecycle ? { lifecycle: proxy.lifecycle } : {}),
    holdApplicationUntilProxyStarts: proxy.holdApplicationUntilProxyStarts ?? false,
    outlierLogPath: proxy.outlierLogPath ?? '',
    nativeSidecars: proxy.nativeSidecars ?? 'auto',
    cni: { enabled: spec.cni?.enabled ?? false, provider: spec.cni?.provider ?? 'default' },
    platform: spec.platform ?? 'kubernetes',
    policy: injection.policy ?? 'enabled',
    neverInjectSelector: injection.neverInjectSelector ?? [],
    alwaysInjectSelector: injection.alwaysInjectSelector ?? [],
    defaultTemplates:
      injection.defaultTemplates && injection.defaultTemplates.length > 0
        ? injection.defaultTemplates
        : ['sidecar'],
    customTemplates: injection.templates ?? {},
    injectedAnnotations: injection.injectedAnnotations ?? {},
    rewriteAppHTTPProbe: injection.rewriteAppHTTPProbe ?? true,
    mesh: {
      defaultConfig,
      ...(typeof mesh['enablePrometheusMerge'] === 'boolean'
        ? { enablePrometheusMerge: mesh['enablePrometheusMerge'] }
        : {}),
      ...(stringOf(mesh['trustDomain']) ? { trustDomain: stringOf(mesh['trustDomain']) } : {}),
      ...(inboundMode === 'LOCALHOST' || inboundMode === 'PASSTHROUGH'
        ? { inboundTrafficPolicyMode: inboundMode }
        : {}),
      ...(typeof mesh['proxyListenPort'] === 'number' ? { proxyListenPort: mesh['proxyListenPort'] } : {}),
      ...(typeof mesh['proxyInboundListenPort'] === 'number'
        ? { proxyInboundListenPort: mesh['proxyInboundListenPort'] }
        : {}),
      ...(extensionProviders ? { extensionProviders } : {}),
      rootNamespace: stringOf(mesh['rootNamespace']) || namespace,
    },
  });
}
