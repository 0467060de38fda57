// Validation of the pod annotations that feed the injection templates (istiod's validate.go). A failure rejects
// the pod with a message naming the annotation, e.g.
// `invalid value 'bad' for annotation 'traffic.sidecar.istio.io/includeOutboundIPRanges': includeIPRanges invalid: …`.
import { isIPv4, isIPv6 } from 'node:net';

import { parseProxyConfigAnnotation } from './proxy-config.js';
import { isValidQuantity } from './quantity.js';

type Validator = (value: string) => string | undefined;

const UINT = /^[0-9]+$/;

/** Go's strconv.ParseBool. */
export function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

function parseUint(value: string, bits: number): number | undefined {
  if (!UINT.test(value)) return undefined;
  const n = Number(value);
  return n < 2 ** bits ? n : undefined;
}

function portError(text: string): string | undefined {
  return parseUint(text.trim(), 16) === undefined ? `failed parsing port '${text}'` : undefined;
}

function portListError(parameter: string, ports: string): string | undefined {
  const trimmed = ports.trim();
  if (trimmed === '') return undefined;
  for (const port of trimmed.split(',')) {
    const error = portError(port);
    if (error) return `${parameter} invalid: failed parsing port '${port}': ${error}`;
  }
  return undefined;
}

/** netip.ParsePrefix: an address (no zone, no IPv4 leading zeros) and a prefix length within range. */
export function isValidCidr(cidr: string): boolean {
  const slash = cidr.indexOf('/');
  if (slash < 0) return false;
  const address = cidr.slice(0, slash);
  const bits = cidr.slice(slash + 1);
  if (!/^(0|[1-9][0-9]*)$/.test(bits)) return false;
  if (isIPv4(address))
    return address.split('.').every((o) => o === '0' || !o.startsWith('0')) && Number(bits) <= 32;
  if (isIPv6(address) && !address.includes('%')) return Number(bits) <= 128;
  return false;
}

function cidrListError(cidrs: string): string | undefined {
  if (cidrs.length === 0) return undefined;
  for (const cidr of cidrs.split(',')) {
    if (!isValidCidr(cidr)) return `failed parsing cidr '${cidr}'`;
  }
  return undefined;
}

function interfaceNamesError(interfaces: string): string | undefined {
  if (interfaces.length === 0) return undefined;
  for (const raw of interfaces.split(',')) {
    const name = raw.trim();
    if (name.length === 0) return 'empty interface name';
    if (name.length > 15) return `interface name "${name}" too long (max 15 chars)`;
    if (!/^[a-zA-Z][a-zA-Z0-9_.-]*$/.test(name))
      return `interface name "${name}" contains invalid characters`;
  }
  return undefined;
}

const uint32: Validator = (v) =>
  parseUint(v, 32) === undefined ? `invalid unsigned integer '${v}'` : undefined;
const quantity: Validator = (v) =>
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u001f\u007f-\u009f]/.test(v)
    ? 'value contains control characters'
    : isValidQuantity(v)
      ? undefined
      : 'quantities must match the regular expression';

/** The annotations istiod validates before injecting, and how. */
export const ANNOTATION_VALIDATORS: Readonly<Record<string, Validator>> = {
  'sidecar.istio.io/interceptionMode': (v) =>
    ['REDIRECT', 'TPROXY', 'NONE'].includes(v)
      ? undefined
      : `interceptionMode invalid, use REDIRECT,TPROXY,NONE: ${v}`,
  'status.sidecar.istio.io/port': (v) => {
    const error = portError(v);
    return error ? `excludeInboundPorts invalid: ${error}` : undefined;
  },
  'readiness.status.sidecar.istio.io/initialDelaySeconds': uint32,
  'readiness.status.sidecar.istio.io/periodSeconds': uint32,
  'readiness.status.sidecar.istio.io/failureThreshold': uint32,
  'traffic.sidecar.istio.io/includeOutboundIPRanges': (v) => {
    const error = v === '*' ? undefined : cidrListError(v);
    return error ? `includeIPRanges invalid: ${error}` : undefined;
  },
  'traffic.sidecar.istio.io/excludeOutboundIPRanges': (v) => {
    const error = cidrListError(v);
    return error ? `excludeIPRanges invalid: ${error}` : undefined;
  },
  'traffic.sidecar.istio.io/includeInboundPorts': (v) =>
    v === '*' ? undefined : portListError('includeInboundPorts', v),
  'traffic.sidecar.istio.io/excludeInboundPorts': (v) => portListError('excludeInboundPorts', v),
  'traffic.sidecar.istio.io/excludeOutboundPorts': (v) => portListError('excludeOutboundPorts', v),
  'traffic.sidecar.istio.io/excludeInterfaces': interfaceNamesError,
  'traffic.sidecar.istio.io/kubevirtInterfaces': interfaceNamesError,
  'istio.io/reroute-virtual-interfaces': interfaceNamesError,
  'prometheus.istio.io/merge-metrics': (v) =>
    parseGoBool(v) === undefined ? `invalid syntax: ${v}` : undefined,
  'proxy.istio.io/config': (v) => {
    try {
      parseProxyConfigAnnotation(v);
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  },
  'sidecar.istio.io/proxyCPU': quantity,
  'sidecar.istio.io/proxyMemory': quantity,
  'sidecar.istio.io/proxyCPULimit': quantity,
  'sidecar.istio.io/proxyMemoryLimit': quantity,
};

/** Every invalid annotation, one message each (sorted by annotation name so the result is stable). */
export function validateAnnotations(annotations: Readonly<Record<string, string>>): string[] {
  const errors: string[] = [];
  for (const name of Object.keys(annotations).sort()) {
    const validator = ANNOTATION_VALIDATORS[name];
    const value = annotations[name];
    if (!validator || value === undefined) continue;
    const error = validator(value);
    if (error !== undefined) errors.push(`invalid value '${value}' for annotation '${name}': ${error}`);
  }
  return errors;
}
