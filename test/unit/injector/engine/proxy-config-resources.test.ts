// ProxyConfig resources as istiod layers them (its TestEffectiveProxyConfig shape): which resource applies to a pod,
// the precedence against the mesh default and the pod's `proxy.istio.io/config` annotation, and what the injected
// pod carries as a result.
import {
  applyJsonPatch,
  defaultInjectorSettings,
  effectiveProxyConfig,
  injectPod,
  ProxyConfigIndex,
  proxyConfigResourceFrom,
  type Container,
  type Pod,
  type ProxyConfig,
  type ProxyConfigResource,
} from '../../../../src/injector/engine/index.js';

const ROOT = 'istio-system';

function proxyConfig(
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
  created = '2026-01-01T00:00:00Z',
): ProxyConfigResource {
  const parsed = proxyConfigResourceFrom({
    apiVersion: 'networking.istio.io/v1beta1',
    kind: 'ProxyConfig',
    metadata: { namespace, name, creationTimestamp: created },
    spec,
  });
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.resource;
}

/** The effective config for a pod, the way the engine computes it. */
function effective(
  resources: ProxyConfigResource[],
  pod: { namespace: string; labels?: Record<string, string>; annotation?: ProxyConfig },
  meshDefault: ProxyConfig = {},
): ProxyConfig {
  const chosen = new ProxyConfigIndex(resources, ROOT).layersFor(pod.namespace, pod.labels ?? {});
  return effectiveProxyConfig(meshDefault, chosen?.layers, pod.annotation);
}

describe('ProxyConfig resources (istiod EffectiveProxyConfig)', () => {
  test.each<{
    name: string;
    resources: ProxyConfigResource[];
    pod: { namespace: string; labels?: Record<string, string>; annotation?: ProxyConfig };
    meshDefault?: ProxyConfig;
    expected: ProxyConfig;
  }>([
    {
      name: 'a resource applies to its namespace',
      resources: [proxyConfig('shop', 'pc', { concurrency: 3 })],
      pod: { namespace: 'shop' },
      expected: { concurrency: 3 },
    },
    {
      name: 'but not to another namespace',
      resources: [proxyConfig('shop', 'pc', { concurrency: 3 })],
      pod: { namespace: 'bank' },
      expected: {},
    },
    {
      name: 'a root-namespace resource applies to the whole mesh, over the mesh default',
      resources: [proxyConfig(ROOT, 'global', { concurrency: 3 })],
      pod: { namespace: 'shop' },
      meshDefault: { concurrency: 1, discoveryAddress: 'istiod:15012' },
      expected: { concurrency: 3, discoveryAddress: 'istiod:15012' },
    },
    {
      name: 'the namespace resource wins over the root one',
      resources: [
        proxyConfig(ROOT, 'global', { concurrency: 3, environmentVariables: { A: 'root', B: 'root' } }),
        proxyConfig('shop', 'pc', { concurrency: 2, environmentVariables: { A: 'shop' } }),
      ],
      pod: { namespace: 'shop' },
      expected: { concurrency: 2, proxyMetadata: { A: 'shop', B: 'root' } },
    },
    {
      name: 'a workload resource wins over the namespace one when its selector matches the pod',
      resources: [
        proxyConfig('shop', 'pc', { concurrency: 2 }),
        proxyConfig('shop', 'web', { concurrency: 5, selector: { matchLabels: { app: 'web' } } }),
      ],
      pod: { namespace: 'shop', labels: { app: 'web', version: 'v1' } },
      expected: { concurrency: 5 },
    },
    {
      name: 'a selector that does not match leaves the namespace resource',
      resources: [
        proxyConfig('shop', 'pc', { concurrency: 2 }),
        proxyConfig('shop', 'web', {
          concurrency: 5,
          selector: { matchLabels: { app: 'web', version: 'v2' } },
        }),
      ],
      pod: { namespace: 'shop', labels: { app: 'web', version: 'v1' } },
      expected: { concurrency: 2 },
    },
    {
      name: 'a selector without labels matches nothing and is not namespace-wide either',
      resources: [proxyConfig('shop', 'empty', { concurrency: 5, selector: {} })],
      pod: { namespace: 'shop', labels: { app: 'web' } },
      expected: {},
    },
    {
      name: 'root-namespace selectors apply only to pods in the root namespace',
      resources: [proxyConfig(ROOT, 'gw', { concurrency: 5, selector: { matchLabels: { app: 'gw' } } })],
      pod: { namespace: 'shop', labels: { app: 'gw' } },
      expected: {},
    },
    {
      name: 'in the root namespace its own namespace-wide resource is the mesh layer, and selectors apply',
      resources: [
        proxyConfig(ROOT, 'global', { concurrency: 3 }),
        proxyConfig(ROOT, 'gw', {
          environmentVariables: { X: 'gw' },
          selector: { matchLabels: { app: 'gw' } },
        }),
      ],
      pod: { namespace: ROOT, labels: { app: 'gw' } },
      expected: { concurrency: 3, proxyMetadata: { X: 'gw' } },
    },
    {
      name: 'of two namespace-wide resources the oldest applies, and they are not merged',
      resources: [
        proxyConfig(
          'shop',
          'newer',
          { concurrency: 4, environmentVariables: { N: '1' } },
          '2026-03-01T00:00:00Z',
        ),
        proxyConfig('shop', 'older', { concurrency: 2 }, '2026-02-01T00:00:00Z'),
      ],
      pod: { namespace: 'shop' },
      expected: { concurrency: 2 },
    },
    {
      name: 'resources created in the same second are ordered by name',
      resources: [proxyConfig('shop', 'b', { concurrency: 4 }), proxyConfig('shop', 'a', { concurrency: 2 })],
      pod: { namespace: 'shop' },
      expected: { concurrency: 2 },
    },
    {
      name: 'the annotation wins over namespace resources',
      resources: [proxyConfig('shop', 'pc', { concurrency: 2, environmentVariables: { A: 'ns' } })],
      pod: { namespace: 'shop', annotation: { concurrency: 7, proxyMetadata: { B: 'pod' } } },
      expected: { concurrency: 7, proxyMetadata: { A: 'ns', B: 'pod' } },
    },
    {
      name: 'but a matching workload resource wins over the annotation',
      resources: [proxyConfig('shop', 'web', { concurrency: 5, selector: { matchLabels: { app: 'web' } } })],
      pod: {
        namespace: 'shop',
        labels: { app: 'web' },
        annotation: { concurrency: 7, holdApplicationUntilProxyStarts: true },
      },
      expected: { concurrency: 5, holdApplicationUntilProxyStarts: true },
    },
    {
      name: 'concurrency 0 is an explicit value that replaces a lower layer',
      resources: [
        proxyConfig(ROOT, 'global', { concurrency: 3 }),
        proxyConfig('shop', 'pc', { concurrency: 0 }),
      ],
      pod: { namespace: 'shop' },
      expected: { concurrency: 0 },
    },
    {
      name: 'an image type replaces the lower layer`s image as a whole',
      resources: [proxyConfig('shop', 'pc', { image: { imageType: 'distroless' } })],
      pod: { namespace: 'shop' },
      meshDefault: { image: { imageType: 'debug' } },
      expected: { image: { imageType: 'distroless' } },
    },
  ])('$name', ({ resources, pod, meshDefault, expected }) => {
    expect(effective(resources, pod, meshDefault)).toEqual(expected);
  });

  test('with nothing that applies the mesh default itself is used, so its PROXY_CONFIG encoding stays shared', () => {
    const meshDefault: ProxyConfig = { discoveryAddress: 'istiod:15012' };
    expect(effective([], { namespace: 'shop' }, meshDefault)).toBe(meshDefault);
    expect(
      effective([proxyConfig('bank', 'pc', { concurrency: 2 })], { namespace: 'shop' }, meshDefault),
    ).toBe(meshDefault);
  });

  test('pods given the same resources share the layers and the effective config', () => {
    const index = new ProxyConfigIndex([proxyConfig('shop', 'pc', { concurrency: 2 })], ROOT);
    const first = index.layersFor('shop', { app: 'a' });
    const second = index.layersFor('shop', { app: 'b' });
    expect(first).toBe(second);
    expect(first?.sources.map((r) => r.name)).toEqual(['pc']);
    const meshDefault: ProxyConfig = {};
    expect(effectiveProxyConfig(meshDefault, first?.layers, undefined)).toBe(
      effectiveProxyConfig(meshDefault, second?.layers, undefined),
    );
  });

  test('namespaces without resources of their own share one answer, however many a review names', () => {
    const index = new ProxyConfigIndex(
      [proxyConfig(ROOT, 'mesh', { concurrency: 2 }), proxyConfig('shop', 'pc', { concurrency: 3 })],
      ROOT,
    );
    const unrelated = Array.from({ length: 1000 }, (_, i) => index.layersFor(`forged-${i}`, {}));
    expect(new Set(unrelated).size).toBe(1);
    expect(unrelated[0]?.sources.map((r) => r.name)).toEqual(['mesh']);
    expect(index.layersFor('shop', {})?.sources.map((r) => r.name)).toEqual(['mesh', 'pc']);
  });

  test.each([
    [{ concurrency: 'two' }, 'spec.concurrency must be a non-negative 32-bit integer'],
    [{ concurrency: -1 }, 'spec.concurrency must be a non-negative 32-bit integer'],
    [{ concurrency: 1.5 }, 'spec.concurrency must be a non-negative 32-bit integer'],
    [{ environmentVariables: { A: 1 } }, 'spec.environmentVariables.A must be a string'],
    [{ environmentVariables: ['A=1'] }, 'spec.environmentVariables must be a map of strings'],
    [{ image: 'distroless' }, 'spec.image must be an object'],
    [{ image: { imageType: 3 } }, 'spec.image.imageType must be a string'],
    [{ selector: { matchLabels: { app: true } } }, 'spec.selector.matchLabels.app must be a string'],
    [{ selector: 'app=web' }, 'spec.selector must be an object'],
  ])('a resource with spec %j is refused: %s', (spec, message) => {
    expect(proxyConfigResourceFrom({ metadata: { namespace: 'shop', name: 'bad' }, spec })).toEqual({
      ok: false,
      message,
    });
  });

  test('a resource without a spec sets nothing, and one without a namespace is refused', () => {
    expect(proxyConfigResourceFrom({ metadata: { namespace: 'shop', name: 'empty' } })).toEqual({
      ok: true,
      resource: {
        namespace: 'shop',
        name: 'empty',
        creationTimestamp: '',
        matchLabels: undefined,
        config: {},
      },
    });
    expect(proxyConfigResourceFrom({ metadata: { name: 'cluster-scoped' } }).ok).toBe(false);
  });
});

function sidecarOf(pod: Pod): Container | undefined {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
    (c) => c.name === 'istio-proxy',
  );
}

function envOf(container: Container | undefined): Record<string, string | undefined> {
  return Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
}

describe('injection with ProxyConfig resources', () => {
  const pod: Pod = {
    metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' } },
    spec: { containers: [{ name: 'web', image: 'example/web:1' }] },
  };
  const settings = defaultInjectorSettings({ hub: 'docker.io/istio', tag: '1.29.6' });

  function injectWith(resources: ProxyConfigResource[], target: Pod = pod): Pod {
    const chosen = new ProxyConfigIndex(resources, ROOT).layersFor('shop', target.metadata?.labels ?? {});
    const outcome = injectPod({
      pod: target,
      namespace: 'shop',
      settings,
      nodeKubeletMinorVersions: [33],
      ...(chosen ? { proxyConfigLayers: chosen.layers } : {}),
    });
    if (outcome.kind !== 'injected') throw new Error(`expected injection, got ${JSON.stringify(outcome)}`);
    return applyJsonPatch(target, outcome.patch) as Pod;
  }

  test('environment variables reach the proxy and PROXY_CONFIG; the image type picks the image', () => {
    const proxy = sidecarOf(
      injectWith([
        proxyConfig('shop', 'pc', {
          concurrency: 2,
          environmentVariables: { ISTIO_META_DNS_CAPTURE: 'true' },
          image: { imageType: 'distroless' },
        }),
      ]),
    );
    const env = envOf(proxy);
    expect(env['ISTIO_META_DNS_CAPTURE']).toBe('true');
    expect(JSON.parse(env['PROXY_CONFIG'] ?? '')).toEqual({
      concurrency: 2,
      proxyMetadata: { ISTIO_META_DNS_CAPTURE: 'true' },
      image: { imageType: 'distroless' },
    });
    expect(proxy?.image).toBe('docker.io/istio/proxyv2:1.29.6-distroless');
  });

  test('empty layers inject the pod exactly as no layers do', () => {
    const plain = injectPod({ pod, namespace: 'shop', settings, nodeKubeletMinorVersions: [33] });
    const empty = injectPod({
      pod,
      namespace: 'shop',
      settings,
      nodeKubeletMinorVersions: [33],
      proxyConfigLayers: {},
    });
    expect(empty).toEqual(plain);
    expect(JSON.parse(envOf(sidecarOf(injectWith([])))['PROXY_CONFIG'] ?? '')).toEqual({});
  });

  test('the pod annotation and a workload resource combine as istiod combines them', () => {
    const annotated: Pod = {
      ...pod,
      metadata: {
        ...pod.metadata,
        annotations: { 'proxy.istio.io/config': 'concurrency: 7\nholdApplicationUntilProxyStarts: true' },
      },
    };
    const proxyConfigEnv = envOf(
      sidecarOf(
        injectWith(
          [proxyConfig('shop', 'web', { concurrency: 5, selector: { matchLabels: { app: 'web' } } })],
          annotated,
        ),
      ),
    )['PROXY_CONFIG'];
    expect(JSON.parse(proxyConfigEnv ?? '')).toEqual({
      concurrency: 5,
      holdApplicationUntilProxyStarts: true,
    });
  });
});
