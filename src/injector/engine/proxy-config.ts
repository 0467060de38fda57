// ProxyConfig handling: merging the `proxy.istio.io/config` annotation over the mesh default, and the compact
// PROXY_CONFIG JSON istiod hands the agent (protojson field order, built-in defaults left out).
import { parse as parseYaml } from 'yaml';

import { goQuote } from './go-json.js';
import type { ProxyConfig } from './settings.js';
import { isObject } from './types.js';

/** ProxyConfig fields in proto declaration order, which is the order protojson writes them in. */
const FIELD_ORDER = [
  'configPath',
  'binaryPath',
  'serviceCluster',
  'tracingServiceName',
  'drainDuration',
  'discoveryAddress',
  'discoveryRefreshDelay',
  'zipkinAddress',
  'statsdUdpAddress',
  'envoyMetricsServiceAddress',
  'proxyAdminPort',
  'availabilityZone',
  'controlPlaneAuthPolicy',
  'customConfigFile',
  'statNameLength',
  'concurrency',
  'proxyBootstrapTemplatePath',
  'interceptionMode',
  'tracing',
  'sds',
  'envoyAccessLogService',
  'envoyMetricsService',
  'proxyMetadata',
  'runtimeValues',
  'statusPort',
  'extraStatTags',
  'gatewayTopology',
  'terminationDrainDuration',
  'meshId',
  'readinessProbe',
  'proxyStatsMatcher',
  'holdApplicationUntilProxyStarts',
  'caCertificatesPem',
  'image',
  'privateKeyProvider',
  'proxyHeaders',
  'fileFlushInterval',
  'fileFlushMinSizeKb',
  'statsCompression',
  'connectionSettings',
];

/** Istio's built-in ProxyConfig defaults, which PROXY_CONFIG leaves out. */
const BUILT_IN_DEFAULTS: Readonly<Record<string, unknown>> = {
  configPath: './etc/istio/proxy',
  binaryPath: '/usr/local/bin/envoy',
  serviceCluster: 'istio-proxy',
  drainDuration: '45s',
  terminationDrainDuration: '5s',
  discoveryAddress: 'istiod.istio-system.svc:15012',
  proxyAdminPort: 15000,
  statNameLength: 189,
  statusPort: 15020,
  controlPlaneAuthPolicy: 'MUTUAL_TLS',
};

/**
 * Enum fields at their zero value, which protojson leaves out like any other proto3 zero: REDIRECT and NONE are
 * the first values of their enums.
 */
const ENUM_ZEROS: Readonly<Record<string, string>> = {
  interceptionMode: 'REDIRECT',
  controlPlaneAuthPolicy: 'NONE',
};

/**
 * The ProxyConfig istiod's templates see: the built-in defaults (mesh.DefaultProxyConfig) under `config`, and the
 * enums at their zero value, which a Go template prints by name. One view per config object; never mutated.
 */
export function proxyConfigWithDefaults(config: ProxyConfig): ProxyConfig {
  let view = viewsWithDefaults.get(config);
  if (view === undefined) {
    view = Object.freeze({ ...ENUM_ZEROS, ...BUILT_IN_DEFAULTS, ...config });
    viewsWithDefaults.set(config, view);
  }
  return view;
}

const viewsWithDefaults = new WeakMap<ProxyConfig, ProxyConfig>();

const DURATION_FIELDS = new Set([
  'drainDuration',
  'discoveryRefreshDelay',
  'terminationDrainDuration',
  'fileFlushInterval',
]);

export class ProxyConfigError extends Error {}

/** Parses the YAML or JSON of a `proxy.istio.io/config` annotation. Throws ProxyConfigError when invalid. */
export function parseProxyConfigAnnotation(text: string): ProxyConfig {
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new ProxyConfigError(`failed to convert to apply proxy config: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isObject(parsed)) throw new ProxyConfigError('failed to convert to apply proxy config: not an object');
  const mode = parsed['interceptionMode'];
  if (mode !== undefined && !['REDIRECT', 'TPROXY', 'NONE'].includes(String(mode))) {
    throw new ProxyConfigError(`invalid interceptionMode ${String(mode)}`);
  }
  const metadata = parsed['proxyMetadata'];
  if (metadata !== undefined && metadata !== null && !isObject(metadata)) {
    throw new ProxyConfigError('proxyMetadata must be a map of strings');
  }
  for (const field of DURATION_FIELDS) {
    const value = parsed[field];
    if (value !== undefined && (typeof value !== 'string' || !/^-?[0-9]+(\.[0-9]+)?s$/.test(value))) {
      throw new ProxyConfigError(`invalid duration for ${field}: ${String(value)}`);
    }
  }
  return parsed as ProxyConfig;
}

/** Top-level fields of `overlay` replace those of `base`; proxyMetadata maps are merged, as istiod does. */
export function mergeProxyConfig(base: ProxyConfig, overlay: ProxyConfig): ProxyConfig {
  const merged: ProxyConfig = { ...base, ...overlay };
  if (base.proxyMetadata || overlay.proxyMetadata) {
    merged.proxyMetadata = { ...base.proxyMetadata, ...overlay.proxyMetadata };
  }
  return merged;
}

/** protojson renders durations with 0, 3, 6 or 9 fractional digits. */
function formatDuration(value: string): string {
  const match = /^(-?[0-9]+)(?:\.([0-9]+))?s$/.exec(value);
  if (!match) return value;
  const fraction = (match[2] ?? '').replace(/0+$/, '');
  if (fraction === '') return `${match[1]}s`;
  const width = fraction.length <= 3 ? 3 : fraction.length <= 6 ? 6 : 9;
  return `${match[1]}.${fraction.padEnd(width, '0').slice(0, 9)}s`;
}

function encodeValue(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return goQuote(value);
  if (typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return '[' + value.map(encodeValue).join(',') + ']';
  if (isObject(value)) {
    return (
      '{' +
      Object.keys(value)
        .map((k) => goQuote(k) + ':' + encodeValue(value[k]))
        .join(',') +
      '}'
    );
  }
  return 'null';
}

function sameValue(a: unknown, b: unknown): boolean {
  return encodeValue(a) === encodeValue(b);
}

/**
 * Encodings already computed, by config object. Configs are never mutated once built; the mesh default of a
 * revision is one object shared by every pod without a `proxy.istio.io/config` annotation, so its encoding is
 * computed once per settings version instead of once per admission.
 */
const proxyConfigJsonCache = new WeakMap<ProxyConfig, string>();

/** The PROXY_CONFIG env value: compact JSON without the built-in defaults (istiod's `cleanProxyConfig`). */
export function proxyConfigJson(config: ProxyConfig): string {
  let json = proxyConfigJsonCache.get(config);
  if (json === undefined) {
    json = encodeProxyConfig(config);
    proxyConfigJsonCache.set(config, json);
  }
  return json;
}

function encodeProxyConfig(config: ProxyConfig): string {
  const parts: string[] = [];
  const known = new Set(FIELD_ORDER);
  const keys = [
    ...FIELD_ORDER,
    ...Object.keys(config)
      .filter((k) => !known.has(k))
      .sort(),
  ];
  for (const key of keys) {
    let value = config[key];
    if (value === undefined || value === null) continue;
    if (DURATION_FIELDS.has(key) && typeof value === 'string') value = formatDuration(value);
    if (key in BUILT_IN_DEFAULTS && sameValue(value, BUILT_IN_DEFAULTS[key])) continue;
    if (ENUM_ZEROS[key] === value) continue;
    // proto3 scalars at their zero value are not emitted; wrapper and message fields are.
    if (value === '' || (value === 0 && key !== 'concurrency') || (value === false && !isWrapperBool(key)))
      continue;
    if (key === 'proxyMetadata' || key === 'runtimeValues') {
      if (!isObject(value) || Object.keys(value).length === 0) continue;
      const map = value;
      parts.push(
        goQuote(key) +
          ':{' +
          Object.keys(map)
            .sort()
            .map((k) => goQuote(k) + ':' + goQuote(String(map[k])))
            .join(',') +
          '}',
      );
      continue;
    }
    if (Array.isArray(value) && value.length === 0) continue;
    parts.push(goQuote(key) + ':' + encodeValue(value));
  }
  return '{' + parts.join(',') + '}';
}

function isWrapperBool(key: string): boolean {
  return key === 'holdApplicationUntilProxyStarts' || key === 'statsCompression';
}
