// The glue between the admission server and the engine: which revision a path names, the settings a
// revision's spec gives (cached per spec generation), the verdict cache, specs the injector cannot use, and native sidecars
// decided from the node kubelet versions the operator sees.
import { applyJsonPatch } from '../../../src/injector/engine/index.js';
import type { InjectResult } from '../../../src/injector/admission.js';
import {
  InjectionCache,
  injectedFromJson,
  reviewCacheKey,
  tokenVolumeName,
  verdictFor,
  type CachedVerdict,
} from '../../../src/injector/cache.js';
import { renderJob, type RenderJob } from '../../../src/injector/render-job.js';
import {
  MAX_THREAD_REVIEW_CHARS,
  RenderJobTimedOut,
  RenderThreadLost,
  type Renderer,
} from '../../../src/injector/render-pool.js';
import { InjectionService, kubeletMinor, type ObjectLookup } from '../../../src/injector/service.js';
import type { KubeObject } from '../../../src/runtime/types.js';

interface Container {
  name: string;
  image?: string;
  restartPolicy?: string;
}
interface Pod {
  metadata?: { annotations?: Record<string, string> };
  spec: { containers: Container[]; initContainers?: Container[] };
}

function objects(...items: KubeObject[]): ObjectLookup & { items: Map<string, KubeObject> } {
  const map = new Map(items.map((o) => [o.metadata?.name ?? '', o]));
  return { items: map, get: (key) => map.get(key), list: () => [...map.values()] };
}

function revision(
  name: string,
  spec: Record<string, unknown>,
  resourceVersion = '1',
  status?: Record<string, unknown>,
): KubeObject {
  return {
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'ControlPlaneRevision',
    metadata: { name, uid: `uid-${name}`, resourceVersion },
    spec,
    ...(status ? { status } : {}),
  } as KubeObject;
}

const tag = (name: string, target: string): KubeObject =>
  ({
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'RevisionTag',
    metadata: { name },
    spec: { revision: target },
  }) as KubeObject;

const node = (name: string, kubeletVersion: string): KubeObject =>
  ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    status: { nodeInfo: { kubeletVersion } },
  }) as KubeObject;

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx' }] },
};

/** POD as a ReplicaSet's pod reaches the webhook: `generateName`, no name yet (only such pods are cached). */
const REPLICA = {
  ...POD,
  metadata: { generateName: 'web-7d9f8b6c5d-', namespace: 'shop', labels: { app: 'web' } },
};

let uidCounter = 0;
/** The review text a pod arrives in, with a fresh request uid as kube-apiserver sends it. */
function reviewOf(pod: unknown, namespace = 'shop'): { text: string; uid: string } {
  const uid = `0000-${++uidCounter}`;
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid, namespace, operation: 'CREATE', object: pod },
  };
  return { text: JSON.stringify(review), uid };
}

function injected(outcome: InjectResult | Promise<InjectResult>, pod: Record<string, unknown> = POD): Pod {
  // The service answers synchronously (InjectFn allows a promise for other engines).
  if (outcome instanceof Promise) throw new Error('expected a synchronous answer');
  const result = outcome;
  if (result.kind !== 'injected') throw new Error(`expected an injection, got ${JSON.stringify(result)}`);
  return applyJsonPatch(
    structuredClone(pod),
    result.patch as Parameters<typeof applyJsonPatch>[1],
  ) as unknown as Pod;
}

const proxy = (pod: Pod): { where: 'initContainers' | 'containers'; container: Container } | undefined => {
  const init = pod.spec.initContainers?.find((c) => c.name === 'istio-proxy');
  if (init) return { where: 'initContainers', container: init };
  const main = pod.spec.containers.find((c) => c.name === 'istio-proxy');
  return main ? { where: 'containers', container: main } : undefined;
};

describe('kubeletMinor', () => {
  test.each<[string | undefined, number | undefined]>([
    ['v1.34.2', 34],
    ['1.29.0', 29],
    ['v1.36.3-kwok', 36],
    ['v2.0.0', undefined],
    ['fake', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%j is minor %j', (version, minor) => {
    expect(kubeletMinor(version)).toBe(minor);
  });
});

describe('InjectionService', () => {
  test.each<{ name: string; path: string; expected: string | undefined }>([
    { name: 'a revision routes to itself', path: 'blue', expected: 'blue' },
    { name: 'a tag routes to its target revision', path: 'prod', expected: 'green' },
    { name: 'a tag whose revision is gone routes nowhere', path: 'orphan', expected: undefined },
    { name: 'an unknown name routes nowhere', path: 'nope', expected: undefined },
    { name: 'a revision wins over a tag of the same name', path: 'both', expected: 'both' },
  ])('$name', ({ path, expected }) => {
    const service = new InjectionService({
      revisions: objects(
        revision('blue', { version: '1.28.10' }),
        revision('green', { version: '1.29.6' }),
        revision('both', { version: '1.29.6' }),
      ),
      tags: objects(tag('prod', 'green'), tag('orphan', 'deleted'), tag('both', 'blue')),
      nodes: objects(),
    });
    expect(service.resolveTarget(path)).toEqual(expected === undefined ? undefined : { revision: expected });
  });

  test('derives settings once per spec generation, not again for a status-only update', () => {
    const at = (
      resourceVersion: string,
      generation: number,
      hub: string,
      status?: Record<string, unknown>,
    ) => {
      const object = revision('blue', { version: '1.28.10', hub }, resourceVersion, status);
      return { ...object, metadata: { ...object.metadata, generation } } as KubeObject;
    };
    const revisions = objects(at('10', 1, 'registry.example/istio'));
    const service = new InjectionService({ revisions, tags: objects(), nodes: objects() });
    const first = service.settingsFor('blue');
    revisions.items.set('blue', at('11', 1, 'registry.example/istio', { inUse: { namespaces: 3 } }));
    expect(service.settingsFor('blue')).toBe(first);
    revisions.items.set('blue', at('12', 2, 'mirror.example/istio', { inUse: { namespaces: 3 } }));
    expect(service.settingsFor('blue')).toMatchObject({ hub: 'mirror.example/istio' });
  });

  test('derives settings again for a revision deleted and created anew under the same name', () => {
    const created = (uid: string, hub: string) => {
      const object = revision('blue', { version: '1.28.10', hub }, '10');
      return { ...object, metadata: { ...object.metadata, uid, generation: 1 } } as KubeObject;
    };
    const revisions = objects(created('uid-first', 'registry.example/istio'));
    const service = new InjectionService({ revisions, tags: objects(), nodes: objects() });
    expect(service.settingsFor('blue')).toMatchObject({ hub: 'registry.example/istio' });
    // Same name, generation and version: only the uid tells the new object from the deleted one.
    revisions.items.set('blue', created('uid-second', 'mirror.example/istio'));
    expect(service.settingsFor('blue')).toMatchObject({ hub: 'mirror.example/istio' });
  });

  test('derives settings once per resourceVersion of a revision without a generation', () => {
    const revisions = objects(revision('blue', { version: '1.28.10', hub: 'registry.example/istio' }, '10'));
    const service = new InjectionService({ revisions, tags: objects(), nodes: objects() });
    const first = service.settingsFor('blue');
    expect(first).toMatchObject({ hub: 'registry.example/istio', tag: '1.28.10', revision: 'blue' });
    expect(service.settingsFor('blue')).toBe(first);

    revisions.items.set('blue', revision('blue', { version: '1.28.10', hub: 'mirror.example/istio' }, '11'));
    const second = service.settingsFor('blue');
    expect(second).not.toBe(first);
    expect(second).toMatchObject({ hub: 'mirror.example/istio' });
  });

  test('injects the proxy image of the version the revision resolved to', () => {
    const service = new InjectionService({
      revisions: objects(
        revision('ch', { channel: 'rapid' }, '1', { version: '1.30.3' }),
        revision('pinned', { version: '1.29.6' }),
      ),
      tags: objects(),
      nodes: objects(node('n1', 'v1.34.0')),
    });
    expect(
      proxy(injected(service.inject({ pod: POD, namespace: 'shop', revision: 'ch', pathParams: {} })))
        ?.container.image,
    ).toBe('docker.io/istio/proxyv2:1.30.3');
    expect(
      proxy(injected(service.inject({ pod: POD, namespace: 'shop', revision: 'pinned', pathParams: {} })))
        ?.container.image,
    ).toBe('docker.io/istio/proxyv2:1.29.6');
    const overridden = new InjectionService({
      revisions: objects(revision('pinned', { version: '1.29.6' })),
      tags: objects(),
      nodes: objects(),
      versionOf: () => '1.29.7',
    });
    expect(overridden.settingsFor('pinned')).toMatchObject({ tag: '1.29.7' });
  });

  test.each<{ name: string; revisions: KubeObject[]; revision: string; message: RegExp }>([
    {
      name: 'a revision that does not exist',
      revisions: [],
      revision: 'gone',
      message: /^revision "gone" does not exist$/,
    },
    {
      name: 'a revision whose spec is invalid (both version and channel)',
      revisions: [revision('bad', { version: '1.29.6', channel: 'stable' })],
      revision: 'bad',
      message: /^revision "bad" has an invalid spec: .*version and channel/s,
    },
    {
      name: 'a revision with a malformed proxy setting',
      revisions: [revision('odd', { version: '1.29.6', proxy: { nativeSidecars: 'sometimes' } })],
      revision: 'odd',
      message: /^revision "odd" has an invalid spec: .*nativeSidecars/s,
    },
  ])('rejects pods for $name with a message saying why', ({ revisions, revision: name, message }) => {
    const service = new InjectionService({
      revisions: objects(...revisions),
      tags: objects(),
      nodes: objects(),
    });
    const settings = service.settingsFor(name);
    expect(typeof settings).toBe('string');
    expect(settings).toMatch(message);
    const result = service.inject({ pod: POD, namespace: 'shop', revision: name, pathParams: {} });
    expect(result).toEqual({ kind: 'rejected', message: settings });
  });

  test.each<{
    name: string;
    nodes: KubeObject[];
    nodeName?: string;
    mode?: string;
    layout: 'initContainers' | 'containers';
  }>([
    {
      name: 'every node runs a kubelet with native sidecars',
      nodes: [node('a', 'v1.33.1'), node('b', 'v1.36.3')],
      layout: 'initContainers',
    },
    {
      name: 'one node runs an older kubelet',
      nodes: [node('a', 'v1.28.4'), node('b', 'v1.36.3')],
      layout: 'containers',
    },
    { name: 'no node is known', nodes: [], layout: 'containers' },
    {
      name: 'the pod is bound to a recent node among old ones',
      nodes: [node('a', 'v1.28.4'), node('b', 'v1.36.3')],
      nodeName: 'b',
      layout: 'initContainers',
    },
    {
      name: 'the pod is bound to an old node among recent ones',
      nodes: [node('a', 'v1.28.4'), node('b', 'v1.36.3')],
      nodeName: 'a',
      layout: 'containers',
    },
    {
      name: 'the revision turns native sidecars off',
      nodes: [node('b', 'v1.36.3')],
      mode: 'false',
      layout: 'containers',
    },
    {
      name: 'the revision turns native sidecars on',
      nodes: [node('a', 'v1.28.4')],
      mode: 'true',
      layout: 'initContainers',
    },
  ])('places istio-proxy among $layout when $name', ({ nodes, nodeName, mode, layout }) => {
    const service = new InjectionService({
      revisions: objects(
        revision('blue', { version: '1.29.6', ...(mode ? { proxy: { nativeSidecars: mode } } : {}) }),
      ),
      tags: objects(),
      nodes: objects(...nodes),
    });
    const pod = nodeName ? { ...POD, spec: { ...POD.spec, nodeName } } : POD;
    const found = proxy(
      injected(service.inject({ pod, namespace: 'shop', revision: 'blue', pathParams: {} }), pod),
    );
    expect(found?.where).toBe(layout);
    if (layout === 'initContainers') expect(found?.container.restartPolicy).toBe('Always');
  });

  test('passes a pod that opts out through untouched', () => {
    const service = new InjectionService({
      revisions: objects(revision('blue', { version: '1.29.6' })),
      tags: objects(),
      nodes: objects(),
    });
    const pod = {
      ...POD,
      metadata: { ...POD.metadata, annotations: { 'sidecar.istio.io/inject': 'false' } },
    };
    expect(service.inject({ pod, namespace: 'shop', revision: 'blue', pathParams: {} })).toMatchObject({
      kind: 'skipped',
    });
  });
});

describe('node version caching for the admission hot path', () => {
  test('keeps node versions until told that nodes changed', () => {
    let kubelet = 'v1.36.3';
    const nodes = {
      get: () => undefined,
      list: () => [{ metadata: { name: 'n1' }, status: { nodeInfo: { kubeletVersion: kubelet } } }],
    };
    const service = new InjectionService({ revisions: nodes, tags: nodes, nodes });
    const changed = service.cacheNodeVersions();
    expect(service.nodeKubeletMinors()).toEqual([36]);
    kubelet = 'v1.28.0';
    expect(service.nodeKubeletMinors()).toEqual([36]);
    changed();
    expect(service.nodeKubeletMinors()).toEqual([28]);
  });
});

describe('verdict cache for identical pods (ReplicaSet replicas reach the webhook byte-for-byte equal)', () => {
  const request = (
    pod: Record<string, unknown>,
    extra: Partial<Parameters<InjectionService['inject']>[0]> = {},
  ) => ({
    pod,
    namespace: 'shop',
    revision: 'asm-1',
    pathParams: {},
    review: reviewOf(pod, extra.namespace ?? 'shop'),
    ...extra,
  });
  const sync = (outcome: InjectResult | Promise<InjectResult>): InjectResult => {
    if (outcome instanceof Promise) throw new Error('expected a synchronous answer');
    return outcome;
  };

  test('answers an identical pod from the cache with the same verdict the engine gave', () => {
    const service = new InjectionService({
      revisions: objects(revision('asm-1', { version: '1.29.6' })),
      tags: objects(),
      nodes: objects(node('n1', 'v1.36.3')),
    });
    const first = sync(service.inject(request(structuredClone(REPLICA))));
    // The first sighting leaves only its key; the second identical pod is computed again and its verdict kept.
    expect(service.cacheStats()).toMatchObject({ hits: 0, misses: 1, entries: 0 });
    sync(service.inject(request(structuredClone(REPLICA))));
    expect(service.cacheStats()).toMatchObject({ hits: 0, misses: 2, entries: 1 });
    const third = sync(service.inject(request(structuredClone(REPLICA))));
    expect(third).toEqual(first);
    // A further hit hands back the very verdict the cache holds, so the reply can reuse its encoding.
    expect(sync(service.inject(request(structuredClone(REPLICA))))).toBe(third);
    expect(service.cacheStats()).toMatchObject({ hits: 2, misses: 2, entries: 1 });
    const uncached = new InjectionService({
      revisions: objects(revision('asm-1', { version: '1.29.6' })),
      tags: objects(),
      nodes: objects(node('n1', 'v1.36.3')),
      cache: false,
    });
    const again = sync(uncached.inject(request(structuredClone(REPLICA))));
    if (again.kind !== 'injected' || first.kind !== 'injected') throw new Error('expected injections');
    expect(again.patch).toEqual(first.patch);
    expect(JSON.parse(first.patchJson ?? 'null')).toEqual(first.patch);
    expect(uncached.cacheStats()).toBeUndefined();
  });

  test('any difference in the pod, namespace, path parameters, settings version or nodes is a miss', () => {
    const revisions = objects(revision('asm-1', { version: '1.29.6' }));
    const nodes = objects(node('n1', 'v1.36.3'));
    const service = new InjectionService({ revisions, tags: objects(), nodes });
    const base = injected(service.inject(request(structuredClone(REPLICA))), REPLICA);
    sync(service.inject(request(structuredClone(REPLICA)))); // a second sighting: the verdict is kept
    expect(service.cacheStats()).toMatchObject({ hits: 0, misses: 2, entries: 1 });
    expect(proxy(base)?.where).toBe('initContainers');

    const relabelled = {
      ...REPLICA,
      metadata: { ...REPLICA.metadata, labels: { app: 'web', version: 'v2' } },
    };
    sync(service.inject(request(relabelled)));
    sync(service.inject(request(structuredClone(REPLICA), { namespace: 'other' })));
    sync(service.inject(request(structuredClone(REPLICA), { pathParams: { ISTIO_META_NETWORK: 'n2' } })));
    expect(service.cacheStats()).toMatchObject({ hits: 0, misses: 5 });

    // A new settings version (resourceVersion) changes the image; the old verdict must not be reused.
    revisions.items.set('asm-1', revision('asm-1', { version: '1.30.1' }, '2'));
    const upgraded = injected(service.inject(request(structuredClone(REPLICA))), REPLICA);
    expect(proxy(upgraded)?.container.image).toContain('1.30.1');
    expect(proxy(base)?.container.image).toContain('1.29.6');

    // Nodes that cannot run native sidecars change the layout.
    nodes.items.set('n1', node('n1', 'v1.27.9'));
    const classic = injected(service.inject(request(structuredClone(REPLICA))), REPLICA);
    expect(proxy(classic)?.where).toBe('containers');
    expect(service.cacheStats()).toMatchObject({ hits: 0, misses: 7 });
  });

  test('does not cache pods above the size bound and keeps at most maxEntries verdicts', () => {
    const service = new InjectionService({
      revisions: objects(revision('asm-1', { version: '1.29.6' })),
      tags: objects(),
      nodes: objects(),
      cache: new InjectionCache({ maxEntries: 2, maxReviewChars: 4096 }),
    });
    const big = { ...REPLICA, metadata: { ...REPLICA.metadata, annotations: { filler: 'x'.repeat(5000) } } };
    sync(service.inject(request(structuredClone(big))));
    sync(service.inject(request(structuredClone(big))));
    expect(service.cacheStats()).toMatchObject({ entries: 0, hits: 0 });

    const replicaSet = (hash: string) => ({
      ...REPLICA,
      metadata: { ...REPLICA.metadata, generateName: `web-${hash}-`, labels: { 'pod-template-hash': hash } },
    });
    for (const hash of ['a', 'a', 'b', 'b', 'c', 'c']) sync(service.inject(request(replicaSet(hash))));
    expect(service.cacheStats()).toMatchObject({ hits: 0, entries: 2 });
    sync(service.inject(request(replicaSet('c'))));
    sync(service.inject(request(replicaSet('a'))));
    expect(service.cacheStats()).toMatchObject({ hits: 1, entries: 2 });
  });

  test('never keys a pod that arrives named: the engine answers, and nothing is looked up or remembered', () => {
    // Names are unique in a namespace, so a named pod's review does not come round as a ReplicaSet's pods do.
    const service = new InjectionService({
      revisions: objects(revision('asm-1', { version: '1.29.6' })),
      tags: objects(),
      nodes: objects(node('n1', 'v1.36.3')),
    });
    const fresh = new InjectionService({
      revisions: objects(revision('asm-1', { version: '1.29.6' })),
      tags: objects(),
      nodes: objects(node('n1', 'v1.36.3')),
      cache: false,
    });
    for (let i = 0; i < 3; i++) {
      const outcome = sync(service.inject(request(structuredClone(POD))));
      expect(outcome).toEqual(sync(fresh.inject(request(structuredClone(POD)))));
    }
    expect(service.cacheStats()).toEqual({ entries: 0, hits: 0, misses: 0 });
    // The same pod with generateName instead (a ReplicaSet's) is keyed: the third is a hit.
    for (let i = 0; i < 3; i++) sync(service.inject(request(structuredClone(REPLICA))));
    expect(service.cacheStats()).toEqual({ entries: 1, hits: 1, misses: 2 });
  });
});

describe('InjectionCache bounds', () => {
  test('evicts the least recently used entry and refuses reviews over the size bound', () => {
    const cache = new InjectionCache({ maxEntries: 2, maxReviewChars: 100 });
    const verdict: CachedVerdict = { result: { kind: 'skipped', reason: 'test' }, token: undefined };
    const keep = (key: string) => {
      cache.offer(key, () => verdict);
      expect(cache.offer(key, () => verdict)).toBe(true);
    };
    keep('a');
    keep('b');
    expect(cache.get('a')).toBe(verdict);
    keep('c'); // the least recently used (b) goes
    expect(cache.get('b')).toBeUndefined();
    expect(cache.stats()).toMatchObject({ entries: 2, hits: 1, misses: 1 });
    expect(cache.acceptsReview(101)).toBe(false);
    expect(cache.acceptsReview(100)).toBe(true);
    expect(new InjectionCache({ maxEntries: 0, maxReviewChars: 100 }).acceptsReview(1)).toBe(false);
  });
});

describe('injectedFromJson (a verdict held as its patch text)', () => {
  test('parses the patch once, on first use, and carries no getter of its own', () => {
    const verdict = injectedFromJson('[{"op":"add","path":"/metadata/labels/a","value":"b"}]');
    expect(verdict.kind).toBe('injected');
    expect(verdict.patch).toEqual([{ op: 'add', path: '/metadata/labels/a', value: 'b' }]);
    expect(verdict.patch).toBe(verdict.patch);
    // A getter defined on each verdict (an object literal's) is a closure per verdict, and the patch text it held
    // outlived young-generation collections and was promoted (see cache.ts).
    expect(Object.getOwnPropertyDescriptor(verdict, 'patch')).toBeUndefined();
  });
});

describe('InjectionCache admission (a verdict is kept from the second sighting of its key)', () => {
  const verdict: CachedVerdict = { result: { kind: 'skipped', reason: 'test' }, token: undefined };

  test('a key seen once keeps nothing and does not build the verdict; the second sighting keeps it', () => {
    const cache = new InjectionCache({ maxEntries: 4, maxReviewChars: 100 });
    let built = 0;
    const make = () => {
      built += 1;
      return verdict;
    };
    expect(cache.offer('a', make)).toBe(false);
    expect(built).toBe(0);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.offer('a', make)).toBe(true);
    expect(built).toBe(1);
    expect(cache.get('a')).toBe(verdict);
    expect(cache.stats()).toMatchObject({ entries: 1, hits: 1, misses: 1 });
  });

  test('traffic that never repeats within the window keeps nothing, however long it runs', () => {
    const cache = new InjectionCache({ maxEntries: 4, maxReviewChars: 100 });
    // Cycling through more keys than the window remembers (maxEntries): each is forgotten before it comes round.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 5; i++) expect(cache.offer(`pod-${i}`, () => verdict)).toBe(false);
    }
    expect(cache.stats().entries).toBe(0);
    // Within the window a repeat is kept.
    for (let i = 0; i < 4; i++) cache.offer(`rs-${i}`, () => verdict);
    expect(cache.offer('rs-0', () => verdict)).toBe(true);
    expect(cache.stats().entries).toBe(1);
  });
});

describe('replicas that differ only in their service-account token volume name', () => {
  // kube-apiserver's ServiceAccount plugin names the token volume kube-api-access-<5 random chars> before any
  // webhook runs, so that is how a ReplicaSet's pods differ at admission.
  const replica = (token: string, annotations: Record<string, string> = {}) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'web-7d9f8b6c5d-',
      namespace: 'shop',
      labels: { app: 'web', 'pod-template-hash': '7d9f8b6c5d' },
      annotations,
    },
    spec: {
      containers: [
        {
          name: 'web',
          image: 'nginx',
          ports: [{ name: 'http', containerPort: 8080 }],
          readinessProbe: { httpGet: { path: '/ready', port: 8080 } },
          volumeMounts: [
            { name: token, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
          ],
        },
      ],
      volumes: [
        { name: 'data', emptyDir: {} },
        { name: token, projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } },
      ],
    },
  });
  const services = () => {
    const deps = () => ({
      revisions: objects(revision('asm-1', { version: '1.29.6' })),
      tags: objects(),
      nodes: objects(node('n1', 'v1.36.3')),
    });
    return { cached: new InjectionService(deps()), fresh: new InjectionService({ ...deps(), cache: false }) };
  };
  const ask = (service: InjectionService, pod: Record<string, unknown>): InjectResult => {
    const outcome = service.inject({
      pod,
      namespace: 'shop',
      revision: 'asm-1',
      pathParams: {},
      review: reviewOf(pod),
    });
    if (outcome instanceof Promise) throw new Error('expected a synchronous answer');
    return outcome;
  };

  test('a later replica is a cache hit whose patch is exactly what the engine gives for that replica', () => {
    const { cached, fresh } = services();
    ask(cached, replica('kube-api-access-first'));
    ask(cached, replica('kube-api-access-abc12')); // the second sighting: its verdict is kept
    const second = ask(cached, replica('kube-api-access-zz9x8'));
    expect(cached.cacheStats()).toMatchObject({ hits: 1, misses: 2 });
    const expected = ask(fresh, replica('kube-api-access-zz9x8'));
    if (second.kind !== 'injected' || expected.kind !== 'injected') throw new Error('expected injections');
    expect(second.patch).toEqual(expected.patch);
    expect(JSON.parse(second.patchJson ?? 'null')).toEqual(expected.patch);
    expect(second.patchJson).not.toContain('abc12');
    const pod = injected(second, replica('kube-api-access-zz9x8'));
    expect(pod.spec.containers.map((c) => c.name)).toEqual(['web']);
  });

  test('with custom templates the token volume is not renamed into a kept verdict: a template may transform it', () => {
    // This template writes each volume's name upper-cased, which a rename of the lower-case name cannot follow.
    const template = [
      'metadata:',
      '  annotations:',
      '  {{- range .Spec.Volumes }}',
      '    volume.example.com/{{ .Name | upper }}: "seen"',
      '  {{- end }}',
    ].join('\n');
    const deps = () => ({
      revisions: objects(
        revision('asm-1', {
          version: '1.29.6',
          injection: { defaultTemplates: ['sidecar', 'volumes'], templates: { volumes: template } },
        }),
      ),
      tags: objects(),
      nodes: objects(node('n1', 'v1.36.3')),
    });
    const cached = new InjectionService(deps());
    const fresh = new InjectionService({ ...deps(), cache: false });
    for (const token of ['kube-api-access-first', 'kube-api-access-abc12', 'kube-api-access-dd4e5']) {
      ask(cached, replica(token));
    }
    const third = ask(cached, replica('kube-api-access-zz9x8'));
    const expected = ask(fresh, replica('kube-api-access-zz9x8'));
    if (third.kind !== 'injected' || expected.kind !== 'injected') throw new Error('expected injections');
    expect(JSON.stringify(expected.patch)).toContain('KUBE-API-ACCESS-ZZ9X8');
    expect(third.patch).toEqual(expected.patch);
  });

  test('the token name anywhere else in the pod turns the renaming off (a miss, still correct)', () => {
    const { cached, fresh } = services();
    const annotated = (token: string) => replica(token, { note: `mounted ${token}` });
    expect(
      tokenVolumeName(annotated('kube-api-access-abc12'), JSON.stringify(annotated('kube-api-access-abc12'))),
    ).toBeUndefined();
    ask(cached, annotated('kube-api-access-abc12'));
    ask(cached, annotated('kube-api-access-abc12'));
    const second = ask(cached, annotated('kube-api-access-zz9x8'));
    expect(cached.cacheStats()).toMatchObject({ hits: 0, misses: 3 });
    const expected = ask(fresh, annotated('kube-api-access-zz9x8'));
    if (second.kind !== 'injected' || expected.kind !== 'injected') throw new Error('expected injections');
    expect(second.patch).toEqual(expected.patch);
  });

  test.each([
    ['no token volume', { spec: { volumes: [{ name: 'data', emptyDir: {} }] } }],
    [
      'a volume named like one but not projected',
      { spec: { volumes: [{ name: 'kube-api-access-abc12', emptyDir: {} }] } },
    ],
    [
      'two token volumes',
      {
        spec: {
          volumes: [
            { name: 'kube-api-access-abc12', projected: {} },
            { name: 'kube-api-access-def34', projected: {} },
          ],
        },
      },
    ],
  ])('does not rename with %s', (_name, pod) => {
    expect(tokenVolumeName(pod, JSON.stringify(pod))).toBeUndefined();
  });
});

describe('reviewCacheKey: the key of a review from its text', () => {
  const pod = (token: string, managedAt: string, labels: Record<string, string> = { app: 'web' }) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'web-5d8f-',
      namespace: 'shop',
      labels,
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', time: managedAt }],
    },
    spec: {
      containers: [
        { name: 'web', image: 'nginx', volumeMounts: [{ name: token, mountPath: '/var/run/secrets' }] },
      ],
      volumes: [{ name: token, projected: { sources: [] } }],
    },
  });
  const text = (uid: string, object: unknown, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid, namespace: 'shop', operation: 'CREATE', object, ...extra },
    });
  const keyOf = (uid: string, object: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
    const { managedFields: _dropped, ...metadata } = object.metadata as Record<string, unknown>;
    return reviewCacheKey(text(uid, object, extra), uid, { ...object, metadata });
  };

  test('replicas with another uid, managedFields time and token volume name share a key', () => {
    const first = keyOf('u-1', pod('kube-api-access-abc12', '2026-11-22T01:00:00Z'));
    const second = keyOf('u-2', pod('kube-api-access-zz9x8', '2026-11-22T01:00:07Z'));
    expect(first?.digest).toBeDefined();
    expect(second?.digest).toBe(first?.digest);
    expect([first?.token, second?.token]).toEqual(['kube-api-access-abc12', 'kube-api-access-zz9x8']);
  });

  test('any other difference, even the order of fields or whitespace, gives another key', () => {
    const base = keyOf('u-1', pod('kube-api-access-abc12', 't'))?.digest;
    expect(keyOf('u-2', pod('kube-api-access-abc12', 't', { app: 'web', v: '2' }))?.digest).not.toBe(base);
    expect(keyOf('u-3', pod('kube-api-access-abc12', 't'), { dryRun: true })?.digest).not.toBe(base);
    const object = pod('kube-api-access-abc12', 't');
    const spaced = text('u-4', object).replace('"operation":', '"operation" :');
    expect(reviewCacheKey(spaced, 'u-4', object)?.digest).not.toBe(base);
    // The uid member moved: the same text outside it, cut at another offset.
    const moved = JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { namespace: 'shop', uid: 'u-1', operation: 'CREATE', object },
    });
    expect(reviewCacheKey(moved, 'u-1', object)?.digest).not.toBe(base);
  });

  test('does not key a review whose spans cannot be found unambiguously', () => {
    const object = pod('kube-api-access-abc12', 't');
    // The request uid also appears elsewhere.
    expect(reviewCacheKey(text('u-1', object, { extra: { uid: 'u-1' } }), 'u-1', object)).toBeUndefined();
    // No uid member in compact form.
    expect(
      reviewCacheKey(text('u-1', object).replace('"uid":"u-1"', '"uid": "u-1"'), 'u-1', object),
    ).toBeUndefined();
    // managedFields spelled twice, or not a list.
    expect(reviewCacheKey(text('u-1', object, { managedFields: [] }), 'u-1', object)).toBeUndefined();
    const odd = { ...object, metadata: { ...object.metadata, managedFields: 'x' } };
    expect(reviewCacheKey(text('u-1', odd), 'u-1', odd)).toBeUndefined();
  });
});

describe('verdictFor', () => {
  test('renames the token volume inside a patch that mentions it, and reuses a patch that does not', () => {
    const mentioning: CachedVerdict = {
      result: {
        kind: 'injected',
        patch: [
          {
            op: 'add',
            path: '/spec/containers/1',
            value: { volumeMounts: [{ name: 'kube-api-access-abc12' }] },
          },
        ],
      },
      token: 'kube-api-access-abc12',
    };
    const renamed = verdictFor(mentioning, 'kube-api-access-zz9x8');
    if (renamed.kind !== 'injected') throw new Error('expected an injection');
    expect(renamed.patch).toEqual([
      { op: 'add', path: '/spec/containers/1', value: { volumeMounts: [{ name: 'kube-api-access-zz9x8' }] } },
    ]);
    expect(verdictFor(mentioning, 'kube-api-access-abc12')).toBe(mentioning.result);

    const silent: CachedVerdict = {
      result: { kind: 'injected', patch: [{ op: 'add', path: '/metadata/labels/a', value: 'b' }] },
      token: 'kube-api-access-abc12',
    };
    expect(verdictFor(silent, 'kube-api-access-zz9x8')).toBe(silent.result);
  });
});

describe('render threads (a Renderer renders cache misses off the main thread)', () => {
  const serviceWith = (renderer?: Renderer) =>
    new InjectionService({
      revisions: objects(revision('asm-1', { version: '1.29.6' })),
      tags: objects(),
      nodes: objects(),
      ...(renderer === undefined ? {} : { renderer }),
    });
  const request = (pod: Record<string, unknown>, withReview = true) => ({
    pod,
    namespace: 'shop',
    revision: 'asm-1',
    pathParams: {},
    ...(withReview ? { review: reviewOf(pod) } : {}),
  });
  /** A renderer that renders on this thread as a render thread would, from the review text, and records its jobs. */
  const recordingRenderer = (answer: 'render' | 'decline' | 'lose' | 'time out' = 'render') => {
    const jobs: RenderJob[] = [];
    const renderer: Renderer = {
      render: (_revision, settings, job) => {
        jobs.push(job);
        if (answer === 'decline') return undefined;
        if (answer === 'lose') return Promise.reject(new RenderThreadLost(0));
        if (answer === 'time out') return Promise.reject(new RenderJobTimedOut(0, 3001));
        return Promise.resolve(renderJob(job, settings));
      },
    };
    return { renderer, jobs };
  };
  const patchOf = (result: InjectResult): unknown => {
    if (result.kind !== 'injected') throw new Error(`expected an injection, got ${JSON.stringify(result)}`);
    return result.patch;
  };
  const withoutThreads = () =>
    patchOf(serviceWith().inject(request(structuredClone(REPLICA))) as InjectResult);

  test('a miss is rendered by the renderer from the review text, with the verdict the main thread gives', async () => {
    const { renderer, jobs } = recordingRenderer();
    const service = serviceWith(renderer);
    const req = request(structuredClone(REPLICA));
    const answer = service.inject(req);
    expect(answer).toBeInstanceOf(Promise);
    const result = await answer;
    expect(jobs).toEqual([{ input: { reviewText: req.review?.text }, namespace: 'shop', pathParams: {} }]);
    expect(patchOf(result)).toEqual(withoutThreads());
    // The reply's encoding came with the verdict.
    if (result.kind !== 'injected') throw new Error('expected an injection');
    expect(result.patchBase64?.toString('latin1')).toBe(
      Buffer.from(result.patchJson ?? '').toString('base64'),
    );
  });

  test('verdicts rendered off the main thread fill the verdict cache; hits never reach the renderer', async () => {
    const { renderer, jobs } = recordingRenderer();
    const service = serviceWith(renderer);
    await service.inject(request(structuredClone(REPLICA)));
    const kept = await service.inject(request(structuredClone(REPLICA)));
    const hit = service.inject(request(structuredClone(REPLICA)));
    expect(hit).toBe(kept);
    expect(jobs).toHaveLength(2);
    expect(service.cacheStats()).toMatchObject({ hits: 1, misses: 2, entries: 1 });
  });

  test.each(['decline', 'lose'] as const)(
    'when the renderer would %s the job, the main thread renders the same verdict',
    async (answer) => {
      const { renderer, jobs } = recordingRenderer(answer);
      const service = serviceWith(renderer);
      expect(patchOf(await service.inject(request(structuredClone(REPLICA))))).toEqual(withoutThreads());
      expect(jobs).toHaveLength(1);
    },
  );

  test('a pod a thread got stuck on is refused, not rendered on the main thread, and nothing is cached', async () => {
    const { renderer, jobs } = recordingRenderer('time out');
    const service = serviceWith(renderer);
    await expect(service.inject(request(structuredClone(REPLICA)))).rejects.toThrow(
      /render thread 0 held this pod for 3001 ms without an answer/,
    );
    await expect(service.inject(request(structuredClone(REPLICA)))).rejects.toBeInstanceOf(RenderJobTimedOut);
    expect(jobs).toHaveLength(2);
    expect(service.cacheStats()).toMatchObject({ entries: 0 });
  });

  test("a render thread may hold a pod for half the revision's webhook timeout (kube-apiserver's 10 s if unset)", async () => {
    const timeouts: Array<number | undefined> = [];
    const service = new InjectionService({
      revisions: objects(
        revision('asm-1', { version: '1.29.6' }),
        revision('asm-fast', { version: '1.29.6', injection: { timeoutSeconds: 1 } }),
      ),
      tags: objects(),
      nodes: objects(),
      cache: false,
      renderer: {
        render: (_revision, settings, job, timeoutMs) => {
          timeouts.push(timeoutMs);
          return Promise.resolve(renderJob(job, settings));
        },
      },
    });
    await service.inject(request(structuredClone(REPLICA)));
    await service.inject({ ...request(structuredClone(REPLICA)), revision: 'asm-fast' });
    expect(timeouts).toEqual([5000, 500]);
  });

  test('a pod whose review is over 64 KiB is rendered on the main thread', () => {
    const { renderer, jobs } = recordingRenderer();
    const service = serviceWith(renderer);
    const large = {
      ...structuredClone(REPLICA),
      metadata: { ...REPLICA.metadata, annotations: { note: 'x'.repeat(MAX_THREAD_REVIEW_CHARS) } },
    };
    const result = service.inject(request(large));
    expect(result).not.toBeInstanceOf(Promise);
    expect((result as InjectResult).kind).toBe('injected');
    expect(jobs).toHaveLength(0);
  });

  test('a pod without its review text (no admission request) is rendered on the main thread', () => {
    const { renderer, jobs } = recordingRenderer();
    const service = serviceWith(renderer);
    const result = service.inject(request(structuredClone(REPLICA), false));
    expect(result).not.toBeInstanceOf(Promise);
    expect(patchOf(result as InjectResult)).toEqual(withoutThreads());
    expect(jobs).toHaveLength(0);
  });

  test('a pod the engine cannot render gets the same answer after a lost job as without threads', async () => {
    const { renderer } = recordingRenderer('lose');
    const service = serviceWith(renderer);
    const broken = () =>
      ({ ...structuredClone(REPLICA), spec: { containers: 'not a list' } }) as Record<string, unknown>;
    const alone = serviceWith();
    const expected = alone.inject(request(broken()));
    expect(expected).toMatchObject({ kind: 'rejected', message: expect.stringContaining('not a function') });
    expect(await service.inject(request(broken()))).toEqual(expected);
  });
});

describe('ProxyConfig resources (networking.istio.io) layered into the pods of a revision', () => {
  const proxyConfigResource = (
    namespace: string,
    name: string,
    spec: Record<string, unknown>,
    labels?: Record<string, string>,
    resourceVersion = '1',
  ): KubeObject =>
    ({
      apiVersion: 'networking.istio.io/v1beta1',
      kind: 'ProxyConfig',
      metadata: {
        namespace,
        name,
        uid: `uid-${namespace}-${name}`,
        resourceVersion,
        creationTimestamp: '2026-01-01T00:00:00Z',
        ...(labels ? { labels } : {}),
      },
      spec,
    }) as KubeObject;
  const request = (pod: Record<string, unknown>, revisionName = 'asm-1') => ({
    pod,
    namespace: 'shop',
    revision: revisionName,
    pathParams: {},
    review: reviewOf(pod),
  });
  const sidecarEnv = (outcome: InjectResult | Promise<InjectResult>): Record<string, string | undefined> => {
    const container = proxy(injected(outcome, REPLICA))?.container as
      (Container & { env?: { name: string; value?: string }[] }) | undefined;
    return Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
  };
  const revisions = () =>
    objects(
      revision('asm-1', { version: '1.29.6' }),
      revision('asm-2', { version: '1.29.6', meshConfig: { rootNamespace: 'mesh-root' } }),
    );

  test('a revision sees the resources without an istio.io/rev label and those labelled with its name', () => {
    const service = new InjectionService({
      revisions: revisions(),
      tags: objects(),
      nodes: objects(),
      proxyConfigs: objects(
        proxyConfigResource('istio-system', 'mesh-wide', { environmentVariables: { MESH: 'all' } }),
        proxyConfigResource(
          'shop',
          'for-asm-1',
          { environmentVariables: { OWN: 'asm-1' } },
          { 'istio.io/rev': 'asm-1' },
        ),
        proxyConfigResource(
          'shop',
          'for-asm-2',
          { environmentVariables: { OWN: 'asm-2' } },
          { 'istio.io/rev': 'asm-2' },
        ),
      ),
    });
    const first = sidecarEnv(service.inject(request(structuredClone(REPLICA), 'asm-1')));
    expect(first).toMatchObject({ MESH: 'all', OWN: 'asm-1' });
    // asm-2's mesh root namespace is mesh-root, so the istio-system resource is an ordinary namespace's there.
    const second = sidecarEnv(service.inject(request(structuredClone(REPLICA), 'asm-2')));
    expect(second['OWN']).toBe('asm-2');
    expect(second['MESH']).toBeUndefined();
  });

  test('a changed resource changes the next verdict, and the verdict cache never serves the old one', () => {
    const resources = objects(proxyConfigResource('shop', 'pc', { environmentVariables: { LEVEL: 'one' } }));
    const service = new InjectionService({
      revisions: revisions(),
      tags: objects(),
      nodes: objects(),
      proxyConfigs: resources,
    });
    const changed = service.cacheProxyConfigs();
    for (let i = 0; i < 3; i++) {
      expect(sidecarEnv(service.inject(request(structuredClone(REPLICA))))['LEVEL']).toBe('one');
    }
    expect(service.cacheStats()).toMatchObject({ hits: 1, entries: 1 });

    // The index is kept until the informer says the resources changed (until then the cached verdict is right
    // for what the injector knows).
    resources.items.set(
      'pc',
      proxyConfigResource('shop', 'pc', { environmentVariables: { LEVEL: 'two' } }, undefined, '2'),
    );
    expect(sidecarEnv(service.inject(request(structuredClone(REPLICA))))['LEVEL']).toBe('one');
    expect(service.cacheStats()).toMatchObject({ hits: 2 });
    changed();
    expect(sidecarEnv(service.inject(request(structuredClone(REPLICA))))['LEVEL']).toBe('two');

    resources.items.delete('pc');
    changed();
    expect(sidecarEnv(service.inject(request(structuredClone(REPLICA))))['LEVEL']).toBeUndefined();
    // Both answers after a change came from the engine, not from the verdict the cache holds.
    expect(service.cacheStats()).toMatchObject({ hits: 2 });
  });

  test('a resource the injector cannot use is reported once per version and the others still apply', () => {
    const reported: string[] = [];
    const resources = objects(
      proxyConfigResource('shop', 'bad', { concurrency: 'many' }),
      proxyConfigResource('shop', 'good', { environmentVariables: { GOOD: 'yes' } }, undefined),
    );
    const service = new InjectionService({
      revisions: revisions(),
      tags: objects(),
      nodes: objects(),
      proxyConfigs: resources,
      onInvalidProxyConfig: (key, message) => reported.push(`${key}: ${message}`),
    });
    for (let i = 0; i < 2; i++) {
      expect(sidecarEnv(service.inject(request(structuredClone(REPLICA))))['GOOD']).toBe('yes');
    }
    expect(reported).toEqual(['shop/bad: spec.concurrency must be a non-negative 32-bit integer']);
    resources.items.set('bad', proxyConfigResource('shop', 'bad', { concurrency: -2 }, undefined, '2'));
    service.inject(request(structuredClone(REPLICA)));
    expect(reported).toHaveLength(2);
  });

  test('a render thread is handed the layers the main thread chose', async () => {
    const jobs: RenderJob[] = [];
    const service = new InjectionService({
      revisions: revisions(),
      tags: objects(),
      nodes: objects(),
      proxyConfigs: objects(proxyConfigResource('shop', 'pc', { concurrency: 2 })),
      renderer: {
        render: (_revision, settings, job) => {
          jobs.push(job);
          return Promise.resolve(renderJob(job, settings));
        },
      },
    });
    const env = sidecarEnv(await service.inject(request(structuredClone(REPLICA))));
    expect(jobs.map((job) => job.proxyConfigLayers)).toEqual([{ namespace: { concurrency: 2 } }]);
    expect(JSON.parse(env['PROXY_CONFIG'] ?? '')).toMatchObject({ concurrency: 2 });
  });
});
