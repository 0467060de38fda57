// Application probe rewriting (istiod's app_probe.go): kubelet probes and lifecycle hooks of app containers are
// pointed at the agent's status port under /app-health/<container>/… and /app-lifecycle/<container>/…, and the
// original targets are handed to the agent in ISTIO_KUBE_APP_PROBERS so it can run them on the kubelet's behalf.
import { goMarshalMap } from './go-json.js';
import { isObject, type Container, type HttpGetAction, type JsonObject, type Probe } from './types.js';

const PROXY = 'istio-proxy';

export function proberUrls(container: string): {
  readyz: string;
  livez: string;
  startupz: string;
  prestopz: string;
  poststartz: string;
} {
  return {
    readyz: `/app-health/${container}/readyz`,
    livez: `/app-health/${container}/livez`,
    startupz: `/app-health/${container}/startupz`,
    prestopz: `/app-lifecycle/${container}/prestopz`,
    poststartz: `/app-lifecycle/${container}/poststartz`,
  };
}

type Prober = JsonObject;

/** The agent-side prober for a probe or hook, or undefined when istiod would not hand it to the agent. */
function toProber(
  handler: JsonObject | undefined,
  withTimeout: boolean,
  namedPorts: ReadonlyMap<string, number>,
  statusPort: number,
): Prober | undefined {
  if (!handler) return undefined;
  const timeout =
    withTimeout && typeof handler['timeoutSeconds'] === 'number' ? handler['timeoutSeconds'] : undefined;
  const withTimeoutField = (p: Prober): Prober => (timeout ? { ...p, timeoutSeconds: timeout } : p);
  if (isObject(handler['httpGet']) || isObject(handler['tcpSocket'])) {
    const key = isObject(handler['httpGet']) ? 'httpGet' : 'tcpSocket';
    const action = handler[key] as JsonObject;
    const port = action['port'];
    let resolved: unknown = port;
    if (typeof port === 'string') {
      resolved = namedPorts.get(port);
      if (resolved === undefined) return undefined;
    } else if (port === statusPort) {
      return undefined;
    }
    return withTimeoutField({ [key]: { ...action, port: resolved } });
  }
  if (withTimeout && isObject(handler['grpc'])) return withTimeoutField({ grpc: handler['grpc'] });
  return undefined;
}

/**
 * ISTIO_KUBE_APP_PROBERS for the pod: every app container's (init containers first) readiness, liveness and
 * startup probe and HTTP/TCP lifecycle hooks, keyed by the URL the kubelet will call. '' when there are none.
 */
export function dumpAppProbers(containers: readonly Container[], statusPort: number): string {
  const out: Record<string, Prober> = {};
  for (const container of containers) {
    if (container.name === PROXY) continue;
    const urls = proberUrls(container.name);
    const namedPorts = new Map<string, number>();
    for (const port of container.ports ?? []) {
      if (port.name) namedPorts.set(port.name, port.containerPort);
    }
    const add = (url: string, prober: Prober | undefined): void => {
      if (prober) out[url] = prober;
    };
    add(urls.readyz, toProber(container.readinessProbe, true, namedPorts, statusPort));
    add(urls.livez, toProber(container.livenessProbe, true, namedPorts, statusPort));
    add(urls.startupz, toProber(container.startupProbe, true, namedPorts, statusPort));
    add(urls.prestopz, toProber(container.lifecycle?.preStop, false, namedPorts, statusPort));
    add(urls.poststartz, toProber(container.lifecycle?.postStart, false, namedPorts, statusPort));
  }
  return Object.keys(out).length === 0 ? '' : goMarshalMap(out, 'Prober');
}

/** Merges a previous ISTIO_KUBE_APP_PROBERS with new entries; previous entries win (they hold the real targets). */
export function mergeProbers(previous: string, next: string): string | undefined {
  let old: unknown;
  let fresh: unknown;
  try {
    old = JSON.parse(previous);
    fresh = JSON.parse(next);
  } catch {
    return undefined;
  }
  if (!isObject(old) || !isObject(fresh)) return undefined;
  return goMarshalMap({ ...fresh, ...old }, 'Prober');
}

function rewriteAction(action: JsonObject | undefined, url: string, port: number): HttpGetAction {
  const rewritten: HttpGetAction = { ...(action ?? {}), path: url, port };
  if (rewritten.scheme === 'HTTPS') rewritten.scheme = 'HTTP';
  return rewritten;
}

function rewriteHandler<T extends JsonObject>(
  handler: T | undefined,
  url: string,
  port: number,
  grpc: boolean,
): T | undefined {
  if (!handler) return undefined;
  if (isObject(handler['httpGet']))
    return { ...handler, httpGet: rewriteAction(handler['httpGet'], url, port) };
  if (isObject(handler['tcpSocket']) || (grpc && isObject(handler['grpc']))) {
    const { tcpSocket: _tcp, grpc: _grpc, ...rest } = handler;
    return { ...rest, httpGet: rewriteAction(undefined, url, port) } as unknown as T;
  }
  return undefined;
}

/** The container with its probes and HTTP/TCP hooks pointed at the status port; the same object when unchanged. */
export function rewriteContainerProbes(container: Container, statusPort: number): Container {
  const urls = proberUrls(container.name);
  let out: Container | undefined;
  const set = (key: 'readinessProbe' | 'livenessProbe' | 'startupProbe', value: Probe | undefined): void => {
    if (value) {
      out ??= { ...container };
      out[key] = value;
    }
  };
  set('readinessProbe', rewriteHandler(container.readinessProbe, urls.readyz, statusPort, true));
  set('livenessProbe', rewriteHandler(container.livenessProbe, urls.livez, statusPort, true));
  set('startupProbe', rewriteHandler(container.startupProbe, urls.startupz, statusPort, true));
  if (container.lifecycle) {
    const preStop = rewriteHandler(container.lifecycle.preStop, urls.prestopz, statusPort, false);
    const postStart = rewriteHandler(container.lifecycle.postStart, urls.poststartz, statusPort, false);
    if (preStop || postStart) {
      out ??= { ...container };
      out.lifecycle = {
        ...container.lifecycle,
        ...(preStop ? { preStop } : {}),
        ...(postStart ? { postStart } : {}),
      };
    }
  }
  return out ?? container;
}
