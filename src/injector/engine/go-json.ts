// JSON text byte-identical to what Go's encoding/json writes for the Kubernetes structs istiod serialises into
// annotations and env values (proxy.istio.io/overrides, ISTIO_META_POD_PORTS, ISTIO_KUBE_APP_PROBERS, …):
// struct field order instead of insertion order, `omitempty` rules, sorted map keys, HTML-safe escaping.
import { boundedMemo } from './memo.js';
import { canonicalQuantity } from './quantity.js';
import { isObject } from './types.js';

/**
 * One struct field: its JSON name, the struct type of its value (or 'map' for a Go map, 'quantity' for a
 * resource.Quantity), and how emptiness is treated: 'omitempty' drops zero values, 'always' never drops,
 * 'pointer' drops only absent values (a Go pointer keeps false and 0), 'nullable' writes null for them (a pointer
 * without omitempty).
 */
type FieldSpec = readonly [
  name: string,
  type: string | undefined,
  presence: 'omitempty' | 'always' | 'pointer' | 'nullable',
];

const STRUCTS: Readonly<Record<string, readonly FieldSpec[]>> = {
  Container: [
    ['name', undefined, 'always'],
    ['image', undefined, 'omitempty'],
    ['command', undefined, 'omitempty'],
    ['args', undefined, 'omitempty'],
    ['workingDir', undefined, 'omitempty'],
    ['ports', 'ContainerPort', 'omitempty'],
    ['envFrom', undefined, 'omitempty'],
    ['env', 'EnvVar', 'omitempty'],
    ['resources', 'ResourceRequirements', 'always'],
    ['resizePolicy', undefined, 'omitempty'],
    ['restartPolicy', undefined, 'pointer'],
    ['restartPolicyRules', undefined, 'omitempty'],
    ['volumeMounts', 'VolumeMount', 'omitempty'],
    ['volumeDevices', undefined, 'omitempty'],
    ['livenessProbe', 'Probe', 'pointer'],
    ['readinessProbe', 'Probe', 'pointer'],
    ['startupProbe', 'Probe', 'pointer'],
    ['lifecycle', 'Lifecycle', 'pointer'],
    ['terminationMessagePath', undefined, 'omitempty'],
    ['terminationMessagePolicy', undefined, 'omitempty'],
    ['imagePullPolicy', undefined, 'omitempty'],
    ['securityContext', 'SecurityContext', 'pointer'],
    ['stdin', undefined, 'omitempty'],
    ['stdinOnce', undefined, 'omitempty'],
    ['tty', undefined, 'omitempty'],
  ],
  ContainerPort: [
    ['name', undefined, 'omitempty'],
    ['hostPort', undefined, 'omitempty'],
    ['containerPort', undefined, 'always'],
    ['protocol', undefined, 'omitempty'],
    ['hostIP', undefined, 'omitempty'],
  ],
  EnvVar: [
    ['name', undefined, 'always'],
    ['value', undefined, 'omitempty'],
    ['valueFrom', 'EnvVarSource', 'pointer'],
  ],
  EnvVarSource: [
    ['fieldRef', 'ObjectFieldSelector', 'pointer'],
    ['resourceFieldRef', 'ResourceFieldSelector', 'pointer'],
    ['configMapKeyRef', undefined, 'pointer'],
    ['secretKeyRef', undefined, 'pointer'],
    ['fileKeyRef', undefined, 'pointer'],
  ],
  ObjectFieldSelector: [
    ['apiVersion', undefined, 'omitempty'],
    ['fieldPath', undefined, 'always'],
  ],
  ResourceFieldSelector: [
    ['containerName', undefined, 'omitempty'],
    ['resource', undefined, 'always'],
    ['divisor', 'quantity', 'always'],
  ],
  ResourceRequirements: [
    ['limits', 'QuantityMap', 'omitempty'],
    ['requests', 'QuantityMap', 'omitempty'],
    ['claims', undefined, 'omitempty'],
  ],
  VolumeMount: [
    ['name', undefined, 'always'],
    ['readOnly', undefined, 'omitempty'],
    ['recursiveReadOnly', undefined, 'pointer'],
    ['mountPath', undefined, 'always'],
    ['subPath', undefined, 'omitempty'],
    ['mountPropagation', undefined, 'pointer'],
    ['subPathExpr', undefined, 'omitempty'],
  ],
  Probe: [
    ['exec', 'ExecAction', 'pointer'],
    ['httpGet', 'HTTPGetAction', 'pointer'],
    ['tcpSocket', 'TCPSocketAction', 'pointer'],
    ['grpc', 'GRPCAction', 'pointer'],
    ['initialDelaySeconds', undefined, 'omitempty'],
    ['timeoutSeconds', undefined, 'omitempty'],
    ['periodSeconds', undefined, 'omitempty'],
    ['successThreshold', undefined, 'omitempty'],
    ['failureThreshold', undefined, 'omitempty'],
    ['terminationGracePeriodSeconds', undefined, 'pointer'],
  ],
  Prober: [
    ['httpGet', 'HTTPGetAction', 'pointer'],
    ['tcpSocket', 'TCPSocketAction', 'pointer'],
    ['grpc', 'GRPCAction', 'pointer'],
    ['timeoutSeconds', undefined, 'omitempty'],
  ],
  ExecAction: [['command', undefined, 'omitempty']],
  HTTPGetAction: [
    ['path', undefined, 'omitempty'],
    ['port', undefined, 'always'],
    ['host', undefined, 'omitempty'],
    ['scheme', undefined, 'omitempty'],
    ['httpHeaders', 'HTTPHeader', 'omitempty'],
  ],
  HTTPHeader: [
    ['name', undefined, 'always'],
    ['value', undefined, 'always'],
  ],
  TCPSocketAction: [
    ['port', undefined, 'always'],
    ['host', undefined, 'omitempty'],
  ],
  GRPCAction: [
    ['port', undefined, 'always'],
    // A pointer without omitempty: Go writes null when it is unset.
    ['service', undefined, 'nullable'],
  ],
  Lifecycle: [
    ['postStart', 'LifecycleHandler', 'pointer'],
    ['preStop', 'LifecycleHandler', 'pointer'],
    ['stopSignal', undefined, 'pointer'],
  ],
  LifecycleHandler: [
    ['exec', 'ExecAction', 'pointer'],
    ['httpGet', 'HTTPGetAction', 'pointer'],
    ['tcpSocket', 'TCPSocketAction', 'pointer'],
    ['sleep', undefined, 'pointer'],
  ],
  SecurityContext: [
    ['capabilities', 'Capabilities', 'pointer'],
    ['privileged', undefined, 'pointer'],
    ['seLinuxOptions', undefined, 'pointer'],
    ['windowsOptions', undefined, 'pointer'],
    ['runAsUser', undefined, 'pointer'],
    ['runAsGroup', undefined, 'pointer'],
    ['runAsNonRoot', undefined, 'pointer'],
    ['readOnlyRootFilesystem', undefined, 'pointer'],
    ['allowPrivilegeEscalation', undefined, 'pointer'],
    ['procMount', undefined, 'pointer'],
    ['seccompProfile', undefined, 'pointer'],
    ['appArmorProfile', undefined, 'pointer'],
  ],
  Capabilities: [
    ['add', undefined, 'omitempty'],
    ['drop', undefined, 'omitempty'],
  ],
  ParsedContainers: [
    ['containers', 'Container', 'omitempty'],
    ['initContainers', 'Container', 'omitempty'],
  ],
  InjectionStatus: [
    ['initContainers', undefined, 'always'],
    ['containers', undefined, 'always'],
    ['volumes', undefined, 'always'],
    ['imagePullSecrets', undefined, 'always'],
    ['revision', undefined, 'always'],
  ],
  PrometheusScrape: [
    ['scrape', undefined, 'always'],
    ['path', undefined, 'always'],
    ['port', undefined, 'always'],
    ['targets', 'ScrapeTarget', 'omitempty'],
  ],
  ScrapeTarget: [
    ['port', undefined, 'always'],
    ['path', undefined, 'always'],
  ],
};

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === '' || value === 0 || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (isObject(value)) return Object.keys(value).length === 0;
  return false;
}

const GO_ESCAPED = /[<>&\u2028\u2029]/;
/**
 * Short strings (field names, env names, ports and paths) repeat on every admission, and quoting is most of what
 * marshalling a probe or port list costs.
 */
const quoteShort = boundedMemo(4096, quoteGo);
const QUOTED_MAX_LENGTH = 64;

/** Go's encoding/json string escaping: HTML-significant characters and line separators become \u escapes. */
export function goQuote(text: string): string {
  return text.length <= QUOTED_MAX_LENGTH ? quoteShort(text) : quoteGo(text);
}

function quoteGo(text: string): string {
  const json = JSON.stringify(text);
  return GO_ESCAPED.test(json)
    ? json.replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
    : json;
}

function encodeAny(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return goQuote(value);
  if (typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return '[' + value.map(encodeAny).join(',') + ']';
  if (isObject(value)) {
    return (
      '{' +
      Object.keys(value)
        .sort()
        .filter((k) => value[k] !== undefined)
        .map((k) => goQuote(k) + ':' + encodeAny(value[k]))
        .join(',') +
      '}'
    );
  }
  return 'null';
}

/** A struct field with its quoted JSON key and colon written out once (on first use), not for every value. */
interface CompiledField {
  name: string;
  type: string | undefined;
  presence: FieldSpec[2];
  key: string;
}

let compiledStructs: Record<string, readonly CompiledField[]> | undefined;

function structFields(type: string): readonly CompiledField[] | undefined {
  compiledStructs ??= Object.fromEntries(
    Object.entries(STRUCTS).map(([structName, fields]) => [
      structName,
      fields.map(([name, fieldType, presence]) => ({
        name,
        type: fieldType,
        presence,
        key: goQuote(name) + ':',
      })),
    ]),
  );
  return compiledStructs[type];
}

function encodeTyped(value: unknown, type: string | undefined): string {
  if (type === undefined || value === null || value === undefined) return encodeAny(value);
  if (type === 'quantity')
    return goQuote(canonicalQuantity(typeof value === 'number' ? value : String(value)));
  if (type === 'QuantityMap' && isObject(value)) {
    return (
      '{' +
      Object.keys(value)
        .sort()
        .map((k) => {
          const q = value[k];
          return goQuote(k) + ':' + goQuote(canonicalQuantity(typeof q === 'number' ? q : String(q)));
        })
        .join(',') +
      '}'
    );
  }
  if (Array.isArray(value)) return '[' + value.map((v) => encodeTyped(v, type)).join(',') + ']';
  const fields = structFields(type);
  if (!fields || !isObject(value)) return encodeAny(value);
  let out = '';
  for (const { name, type: fieldType, presence, key } of fields) {
    const fieldValue = value[name];
    const absent = fieldValue === undefined || fieldValue === null;
    if (presence === 'omitempty' ? isEmpty(fieldValue) : presence === 'pointer' && absent) continue;
    const encoded = absent
      ? presence === 'nullable'
        ? 'null'
        : zeroValue(type, name, fieldType)
      : encodeTyped(fieldValue, fieldType);
    out += (out === '' ? '{' : ',') + key + encoded;
  }
  return out === '' ? '{}' : out + '}';
}

/** What Go writes for an always-present field the value lacks: the zero value of the field's Go type. */
function zeroValue(struct: string, name: string, fieldType: string | undefined): string {
  if (fieldType !== undefined && STRUCTS[fieldType]) return '{}';
  if (name === 'containerPort' || name === 'port') return '0';
  // A zero resource.Quantity marshals as "0" (omitempty never drops a struct).
  if (fieldType === 'quantity') return '"0"';
  if (struct === 'InjectionStatus' && name !== 'revision') return 'null';
  return '""';
}

/** Marshals `value` as Go would marshal the named struct type (see STRUCTS); unknown fields are dropped. */
export function goMarshal(value: unknown, type: keyof typeof STRUCTS | 'map'): string {
  return type === 'map' ? encodeAny(value) : encodeTyped(value, type);
}

/** The Go struct types goMarshal knows, for callers that keep a value's type beside it. */
export type GoStructType = keyof typeof STRUCTS;

/**
 * Calls `visit` with every object in `value` (an object of struct `type`, or a list of them) that a known struct
 * type describes, its nested structs included, so that a caller can remember which Go type each object stands for.
 */
export function forEachGoStruct(
  value: unknown,
  type: GoStructType,
  visit: (object: object, type: GoStructType) => void,
): void {
  if (Array.isArray(value)) {
    for (const item of value) forEachGoStruct(item, type, visit);
    return;
  }
  if (!isObject(value)) return;
  visit(value, type);
  for (const [name, fieldType] of STRUCTS[type] ?? []) {
    if (fieldType !== undefined && Object.hasOwn(STRUCTS, fieldType))
      forEachGoStruct(value[name], fieldType, visit);
  }
}

/** Marshals a map of struct values, keys sorted like a Go map. */
export function goMarshalMap(
  value: Readonly<Record<string, unknown>>,
  valueType: keyof typeof STRUCTS,
): string {
  return (
    '{' +
    Object.keys(value)
      .sort()
      .map((k) => goQuote(k) + ':' + encodeTyped(value[k], valueType))
      .join(',') +
    '}'
  );
}
