// The ControlPlaneRevision API: zod is the single source of the spec and status types, and the CRD's
// openAPIV3Schema is generated from these schemas (see crd.ts).
import { z } from 'zod';

import { ConditionListSchema } from './condition.js';
import {
  API_GROUP_VERSION,
  CHANNELS,
  CONTROL_PLANE_REVISION_KIND,
  DEFAULT_CONTROL_PLANE_NAMESPACE,
  DEFAULT_HUB,
  DNS1123_LABEL_PATTERN,
  ISTIO_VERSION_PATTERN,
} from './constants.js';
import { revisionNameProblems } from './names.js';
import { InjectionSpecSchema, ProxySpecSchema } from './proxy.js';

/** A CEL rule for the CRD together with the same check for zod, so parsed objects obey it too. */
export interface MirroredRule<T> {
  rule: string;
  message: string;
  holds: (value: T) => boolean;
}

export function withRules<S extends z.ZodType>(schema: S, rules: Array<MirroredRule<z.output<S>>>) {
  return schema
    .superRefine((value, context) => {
      for (const rule of rules) {
        if (!rule.holds(value)) context.addIssue({ code: 'custom', message: rule.message });
      }
    })
    .meta({ 'x-kubernetes-validations': rules.map(({ rule, message }) => ({ rule, message })) });
}

const freeFormObject = () => z.record(z.string(), z.unknown());
const stringMap = () => z.record(z.string(), z.string());

export const IntOrStringSchema = z.union([z.int(), z.string()]).meta({ 'x-kubernetes-int-or-string': true });

const QuantitySchema = z
  .union([z.int(), z.string().regex(/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[munkMGTPE])?$/)])
  .meta({ 'x-kubernetes-int-or-string': true });

export const ResourceRequirementsSchema = z
  .object({
    limits: z.record(z.string(), QuantitySchema).optional().describe('Maximum compute resources allowed'),
    requests: z.record(z.string(), QuantitySchema).optional().describe('Minimum compute resources required'),
  })
  .describe('Compute resources, as in a container spec');

export const TolerationSchema = z.object({
  key: z.string().optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.int().optional(),
});

export const AutoscalingSpecSchema = withRules(
  z.object({
    enabled: z
      .boolean()
      .default(true)
      .describe('Whether a HorizontalPodAutoscaler owns the istiod replica count'),
    minReplicas: z.int().min(1).default(1).describe('Lower bound of the istiod replica count'),
    maxReplicas: z.int().min(1).default(5).describe('Upper bound of the istiod replica count'),
    targetCPUUtilizationPercentage: z
      .int()
      .min(1)
      .default(80)
      .describe('Average CPU utilisation (percent of requests) the autoscaler aims for'),
  }),
  [
    {
      rule: 'self.minReplicas <= self.maxReplicas',
      message: 'minReplicas must not exceed maxReplicas',
      holds: (autoscaling) => autoscaling.minReplicas <= autoscaling.maxReplicas,
    },
  ],
).describe('Horizontal autoscaling of istiod');

export const PodDisruptionBudgetSpecSchema = withRules(
  z.object({
    enabled: z
      .boolean()
      .default(true)
      .describe('Whether istiod gets a PodDisruptionBudget (only rendered with more than one replica)'),
    minAvailable: IntOrStringSchema.optional().describe('Pods that must stay available (default 1)'),
    maxUnavailable: IntOrStringSchema.optional().describe('Pods that may be unavailable'),
  }),
  [
    {
      rule: '!(has(self.minAvailable) && has(self.maxUnavailable))',
      message: 'set at most one of minAvailable and maxUnavailable',
      holds: (budget) => budget.minAvailable === undefined || budget.maxUnavailable === undefined,
    },
  ],
).describe('PodDisruptionBudget of istiod');

export const IstiodSpecSchema = withRules(
  z.object({
    replicas: z
      .int()
      .min(0)
      .optional()
      .describe('Fixed istiod replica count (default 1); not allowed while autoscaling is enabled'),
    resources: ResourceRequirementsSchema.optional().describe(
      'istiod container resources (default requests cpu 500m, memory 2048Mi)',
    ),
    env: stringMap()
      .optional()
      .describe(
        "Extra environment variables of the istiod container (Helm's pilot.env); the injector reads them as istiod's does (COMPLIANCE_POLICY reaches the proxies, ENABLE_CLUSTER_TRUST_BUNDLE_API=true mounts the CA from the ClusterTrustBundle in istiod and the proxies, ENABLE_NATIVE_SIDECARS decides the layout when proxy.nativeSidecars is auto, custom templates read them with env and .Values.pilot.env)",
      ),
    nodeSelector: stringMap().optional(),
    tolerations: z.array(TolerationSchema).optional(),
    affinity: freeFormObject().optional().describe('Pod affinity, as in a pod spec'),
    podLabels: stringMap().optional().describe('Extra labels on istiod pods'),
    podAnnotations: stringMap().optional().describe('Extra annotations on istiod pods'),
    autoscaling: AutoscalingSpecSchema.optional(),
    podDisruptionBudget: PodDisruptionBudgetSpecSchema.optional(),
  }),
  [
    {
      rule: '!has(self.replicas) || !has(self.autoscaling) || !self.autoscaling.enabled',
      message: 'replicas cannot be set while autoscaling is enabled: the HorizontalPodAutoscaler owns it',
      holds: (istiod) => istiod.replicas === undefined || istiod.autoscaling?.enabled !== true,
    },
  ],
).describe('The istiod Deployment');

const AccessLogEncodingSchema = z.enum(['TEXT', 'JSON']);

/**
 * Mesh-wide configuration rendered into the revision's `istio-<rev>` ConfigMap. Only the most used
 * top-level fields of Istio's MeshConfig are typed; every other field is kept as given.
 */
export const MeshConfigSchema = z
  .looseObject({
    accessLogFile: z.string().optional(),
    accessLogFormat: z.string().optional(),
    accessLogEncoding: AccessLogEncodingSchema.optional(),
    enableTracing: z.boolean().optional(),
    enablePrometheusMerge: z.boolean().optional(),
    enableAutoMtls: z.boolean().optional(),
    trustDomain: z.string().optional(),
    trustDomainAliases: z.array(z.string()).optional(),
    rootNamespace: z.string().optional(),
    connectTimeout: z.string().optional(),
    protocolDetectionTimeout: z.string().optional(),
    ingressClass: z.string().optional(),
    ingressService: z.string().optional(),
    ingressSelector: z.string().optional(),
    ingressControllerMode: z.enum(['UNSPECIFIED', 'DEFAULT', 'STRICT', 'OFF']).optional(),
    h2UpgradePolicy: z.enum(['DO_NOT_UPGRADE', 'UPGRADE']).optional(),
    outboundTrafficPolicy: z.object({ mode: z.enum(['REGISTRY_ONLY', 'ALLOW_ANY']).optional() }).optional(),
    inboundTrafficPolicy: z.object({ mode: z.enum(['PASSTHROUGH', 'LOCALHOST']).optional() }).optional(),
    defaultConfig: freeFormObject().optional().describe('Default ProxyConfig of every proxy'),
    defaultProviders: z
      .object({
        tracing: z.array(z.string()).optional(),
        metrics: z.array(z.string()).optional(),
        accessLogging: z.array(z.string()).optional(),
      })
      .optional(),
    extensionProviders: z.array(freeFormObject()).optional(),
    discoverySelectors: z.array(freeFormObject()).optional(),
  })
  .describe("Istio MeshConfig for this revision, merged over Istio's defaults");

export const ControlPlaneRevisionSpecSchema = withRules(
  z.object({
    version: z
      .string()
      .regex(new RegExp(ISTIO_VERSION_PATTERN))
      .optional()
      .describe('Istio version x.y.z; exactly one of version and channel'),
    channel: z
      .enum(CHANNELS)
      .optional()
      .describe(
        'Release channel resolved to a version by the channel table; exactly one of version and channel',
      ),
    namespace: z
      .string()
      .max(63)
      .regex(new RegExp(DNS1123_LABEL_PATTERN))
      .default(DEFAULT_CONTROL_PLANE_NAMESPACE)
      .meta({ 'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'namespace is immutable' }] })
      .describe('Namespace istiod and its namespaced objects live in (immutable)'),
    hub: z.string().min(1).default(DEFAULT_HUB).describe('Registry and path of the Istio images'),
    imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
    imagePullSecrets: z
      .array(z.string().min(1))
      .optional()
      .describe("Names of image pull Secrets in the revision's namespace"),
    istiod: IstiodSpecSchema.prefault({}),
    meshConfig: MeshConfigSchema.optional(),
    proxy: ProxySpecSchema.prefault({}),
    injection: InjectionSpecSchema.prefault({}),
  }),
  [
    {
      rule: 'has(self.version) != has(self.channel)',
      message: 'set exactly one of version and channel',
      holds: (spec) => (spec.version === undefined) !== (spec.channel === undefined),
    },
  ],
).describe('Desired state of one Istio control-plane revision');

export const IstiodStatusSchema = z.object({
  replicas: z.int().min(0).optional().describe('Pods of the istiod Deployment'),
  readyReplicas: z.int().min(0).optional().describe('Ready pods of the istiod Deployment'),
});

export const InUseStatusSchema = z.object({
  namespaces: z.int().min(0).optional().describe('Namespaces selecting this revision'),
  pods: z.int().min(0).optional().describe('Pods injected by this revision'),
  stalePods: z.int().min(0).optional().describe('Pods selecting this revision but injected by another one'),
});

export const ControlPlaneRevisionStatusSchema = z
  .object({
    observedGeneration: z.int().min(0).optional().describe('The .metadata.generation last reconciled'),
    version: z.string().optional().describe('The resolved Istio version'),
    channel: z.string().optional().describe('The channel the version was resolved from'),
    conditions: ConditionListSchema.optional(),
    istiod: IstiodStatusSchema.optional(),
    webhookConfiguration: z.string().optional().describe('Name of the MutatingWebhookConfiguration'),
    inUse: InUseStatusSchema.optional(),
  })
  .describe('Observed state of the revision');

export type ControlPlaneRevisionSpec = z.output<typeof ControlPlaneRevisionSpecSchema>;
export type ControlPlaneRevisionSpecInput = z.input<typeof ControlPlaneRevisionSpecSchema>;
export type ControlPlaneRevisionStatus = z.output<typeof ControlPlaneRevisionStatusSchema>;
export type IstiodSpec = z.output<typeof IstiodSpecSchema>;
export type MeshConfig = z.output<typeof MeshConfigSchema>;
export type ResourceRequirements = z.output<typeof ResourceRequirementsSchema>;

/** The object metadata meshrev reads; the rest of ObjectMeta is carried but not typed. */
export const OwnerMetadataSchema = z.looseObject({
  name: z.string(),
  uid: z.string().optional(),
  generation: z.int().optional(),
  resourceVersion: z.string().optional(),
  labels: stringMap().optional(),
  annotations: stringMap().optional(),
  creationTimestamp: z.string().optional(),
  deletionTimestamp: z.string().optional(),
});

export const ControlPlaneRevisionSchema = z
  .object({
    apiVersion: z.literal(API_GROUP_VERSION),
    kind: z.literal(CONTROL_PLANE_REVISION_KIND),
    metadata: OwnerMetadataSchema,
    spec: ControlPlaneRevisionSpecSchema,
    status: ControlPlaneRevisionStatusSchema.optional(),
  })
  .superRefine((revision, context) => {
    for (const message of revisionNameProblems(revision.metadata.name))
      context.addIssue({ code: 'custom', message });
  });

export type ControlPlaneRevision = z.output<typeof ControlPlaneRevisionSchema>;

/** Parses an object read from the API server (timestamps may arrive as Date from typed list calls). */
export function parseControlPlaneRevision(
  object: unknown,
): { ok: true; value: ControlPlaneRevision } | { ok: false; error: string } {
  const result = ControlPlaneRevisionSchema.safeParse(normaliseDates(object));
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, error: z.prettifyError(result.error) };
}

export function normaliseDates(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(normaliseDates);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, normaliseDates(inner)]));
  }
  return value;
}
