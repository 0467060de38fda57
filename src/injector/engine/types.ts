// Shapes of the Kubernetes objects the injection engine reads and builds. Pods arrive as plain JSON from an
// AdmissionReview, so every type keeps an index signature: fields the engine does not know pass through untouched.

export type JsonObject = Record<string, unknown>;

export interface ObjectFieldSelector extends JsonObject {
  apiVersion?: string;
  fieldPath: string;
}

export interface EnvVar extends JsonObject {
  name: string;
  value?: string;
  valueFrom?: JsonObject;
}

export interface ContainerPort extends JsonObject {
  name?: string;
  containerPort: number;
  protocol?: string;
}

export interface VolumeMount extends JsonObject {
  name: string;
  mountPath: string;
}

export interface HttpGetAction extends JsonObject {
  path?: string;
  port: number | string;
  host?: string;
  scheme?: string;
}

export interface Probe extends JsonObject {
  httpGet?: HttpGetAction;
  tcpSocket?: { port: number | string; host?: string } & JsonObject;
  grpc?: { port: number; service?: string } & JsonObject;
  exec?: JsonObject;
  timeoutSeconds?: number;
}

export interface LifecycleHandler extends JsonObject {
  httpGet?: HttpGetAction;
  tcpSocket?: { port: number | string; host?: string } & JsonObject;
}

export interface Lifecycle extends JsonObject {
  postStart?: LifecycleHandler;
  preStop?: LifecycleHandler;
}

export interface SecurityContext extends JsonObject {
  runAsUser?: number;
  runAsGroup?: number;
}

export interface ResourceRequirements extends JsonObject {
  limits?: Record<string, string>;
  requests?: Record<string, string>;
}

export interface Container extends JsonObject {
  name: string;
  image?: string;
  args?: string[];
  env?: EnvVar[];
  ports?: ContainerPort[];
  volumeMounts?: VolumeMount[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: Lifecycle;
  securityContext?: SecurityContext;
  resources?: ResourceRequirements;
}

export interface Volume extends JsonObject {
  name: string;
}

export interface PodSpec extends JsonObject {
  containers?: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  imagePullSecrets?: Array<{ name: string } & JsonObject>;
  hostNetwork?: boolean;
  nodeName?: string;
  serviceAccountName?: string;
}

export interface OwnerReference extends JsonObject {
  apiVersion?: string;
  kind?: string;
  name?: string;
  controller?: boolean;
}

export interface ObjectMeta extends JsonObject {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface Pod extends JsonObject {
  metadata?: ObjectMeta;
  spec?: PodSpec;
}

/** One RFC 6902 operation. The engine only emits add, replace and remove. */
export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string };

/** A Kubernetes label selector (matchLabels AND matchExpressions). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
