// Prometheus metrics merging (istiod's applyPrometheusMerge): the pod's scrape annotations are handed to the agent
// in ISTIO_PROMETHEUS_ANNOTATIONS and replaced by annotations pointing Prometheus at the agent's merged endpoint.
import { goMarshal } from './go-json.js';
import { parseGoBool } from './validate.js';

const SCRAPE = 'prometheus_io_scrape';
const PORT = 'prometheus_io_port';
const PATH = 'prometheus_io_path';
const TARGETS = 'prometheus_istio_io_scrape_targets';
const PROMETHEUS_KEYS = new Set([SCRAPE, PORT, PATH, TARGETS]);

/** Ports the agent and Envoy own; scraping them through the merge would loop or double count. */
const RESERVED_PORTS: Readonly<Record<string, string>> = {
  '15000': 'Envoy admin',
  '15001': 'outbound traffic capture',
  '15004': 'pilot debug',
  '15006': 'inbound traffic capture',
  '15008': 'HBONE tunnel',
  '15020': 'pilot-agent status / merged Prometheus',
  '15021': 'Envoy health',
  '15053': 'DNS proxy',
  '15090': 'Envoy Prometheus (already merged)',
};

/** Prometheus' label-name sanitising: any character outside [a-zA-Z0-9_] becomes '_'. */
export function sanitizeLabelName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_');
}

/**
 * The sanitised spelling of an annotation key that may be a Prometheus one, else undefined. Every key this module
 * looks for starts with `prometheus`, and sanitising never changes letters, so any other key can be skipped
 * without running the replacement (this runs for every annotation of every admitted pod).
 */
export function prometheusKeyOf(key: string): string | undefined {
  return key.startsWith('prometheus') ? sanitizeLabelName(key) : undefined;
}

/** Whether the pod wants scraping: the first parsable scrape annotation (any spelling), else true. */
export function prometheusScrapeWanted(annotations: Readonly<Record<string, string>>): boolean {
  for (const key of Object.keys(annotations).sort()) {
    if (prometheusKeyOf(key) !== SCRAPE) continue;
    const parsed = parseGoBool(annotations[key] ?? '');
    if (parsed !== undefined) return parsed;
  }
  return true;
}

export function prometheusPort(annotations: Readonly<Record<string, string>>): string | undefined {
  for (const key of Object.keys(annotations).sort()) {
    if (prometheusKeyOf(key) === PORT) return annotations[key];
  }
  return undefined;
}

/** Annotations without any prometheus.io/* (or prometheus.istio.io/scrape-targets) spelling. */
export function withoutPrometheusAnnotations(
  annotations: Readonly<Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(annotations)) {
    const sanitized = prometheusKeyOf(key);
    if (sanitized === undefined || !PROMETHEUS_KEYS.has(sanitized)) out[key] = value;
  }
  return out;
}

function checkPort(port: string, statusPort: string, what: string, kind: string): string | undefined {
  const n = /^[+-]?[0-9]+$/.test(port) ? Number(port) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    return `invalid prometheus ${what}: invalid ${kind} "${port}"`;
  const canonical = String(n);
  if (canonical === statusPort)
    return `invalid prometheus ${what}: ${kind} ${port} conflicts with agent port`;
  const reason = RESERVED_PORTS[canonical];
  if (reason)
    return `invalid prometheus ${what}: ${kind} ${port} is reserved for Istio (${reason}) and cannot be scraped`;
  return undefined;
}

export type PrometheusMergeResult =
  | { kind: 'unchanged' }
  | { kind: 'merged'; annotations: Record<string, string>; scrapeEnv?: string }
  | { kind: 'error'; message: string };

/**
 * The merge decision for a pod. `enabled` is the mesh's enablePrometheusMerge (unset = true), overridden by a
 * valid `prometheus.istio.io/merge-metrics` annotation.
 */
export function prometheusMerge(
  annotations: Readonly<Record<string, string>>,
  meshEnabled: boolean | undefined,
  statusPort: number,
): PrometheusMergeResult {
  const override = annotations['prometheus.istio.io/merge-metrics'];
  const parsedOverride = override === undefined ? undefined : parseGoBool(override);
  const enabled = parsedOverride ?? meshEnabled ?? true;
  if (!enabled || !prometheusScrapeWanted(annotations)) return { kind: 'unchanged' };
  const target = String(statusPort);
  if (prometheusPort(annotations) === target) return { kind: 'unchanged' };

  const scrape: {
    scrape: string;
    path: string;
    port: string;
    targets?: Array<{ port: string; path: string }>;
  } = {
    scrape: '',
    path: '',
    port: '',
  };
  for (const key of Object.keys(annotations).sort()) {
    const value = annotations[key] ?? '';
    switch (prometheusKeyOf(key)) {
      case PORT:
        scrape.port = value;
        break;
      case SCRAPE:
        scrape.scrape = value;
        break;
      case PATH:
        scrape.path = value;
        break;
      case TARGETS: {
        const targets: Array<{ port: string; path: string }> = [];
        let valid = true;
        for (const entry of value.split(',').map((e) => e.trim())) {
          if (entry === '') continue;
          const colon = entry.indexOf(':');
          const port = (colon < 0 ? entry : entry.slice(0, colon)).trim();
          const path = colon < 0 ? '' : entry.slice(colon + 1).trim();
          if (port === '') valid = false;
          targets.push({ port, path: path || '/metrics' });
        }
        if (valid && targets.length > 0) scrape.targets = targets;
        break;
      }
    }
  }
  if (scrape.targets && scrape.targets.length > 0) {
    const first = scrape.targets[0];
    scrape.port = first?.port ?? '';
    scrape.path = first?.path ?? '';
    for (const t of scrape.targets) {
      const error = checkPort(t.port, target, 'scrape targets', 'target port');
      if (error) return { kind: 'error', message: error };
    }
  } else if (scrape.port !== '') {
    const error = checkPort(scrape.port, target, 'scrape configuration', 'port');
    if (error) return { kind: 'error', message: error };
  }
  const empty =
    !scrape.scrape && !scrape.path && !scrape.port && !(scrape.targets && scrape.targets.length > 0);
  return {
    kind: 'merged',
    annotations: {
      ...withoutPrometheusAnnotations(annotations),
      'prometheus.io/port': target,
      'prometheus.io/path': '/stats/prometheus',
      'prometheus.io/scrape': 'true',
    },
    ...(empty ? {} : { scrapeEnv: goMarshal(scrape, 'PrometheusScrape') }),
  };
}
