// The usage tracker over real informers on the in-memory API server: Unknown (undefined) until every
// source is synced, one computation per change however many reconciles ask, and counts per revision/tag.
import { slimNamespace, slimPod, UsageTracker, usageWorld } from '../../../src/controllers/usage-tracker.js';
import { Informer, kubeListWatcher } from '../../../src/runtime/informer.js';
import type { ResourceType } from '../../../src/runtime/resources.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { eventually, FakeKube } from './fake-kube.js';

const NAMESPACE = { apiVersion: 'v1', kind: 'Namespace' };
const POD = { apiVersion: 'v1', kind: 'Pod' };
const CPR = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'ControlPlaneRevision' };
const TAG = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'RevisionTag' };

let kube: FakeKube;
let informers: Informer[];
let sources: { namespaces: Informer; pods: Informer; revisions: Informer; tags: Informer };

const informer = (type: ResourceType): Informer =>
  new Informer({ resource: type.kind, listWatcher: kubeListWatcher(kube, type) });

beforeEach(() => {
  kube = new FakeKube();
  sources = {
    namespaces: informer(NAMESPACE),
    pods: informer(POD),
    revisions: informer(CPR),
    tags: informer(TAG),
  };
  informers = Object.values(sources);
});

afterEach(async () => {
  await Promise.all(informers.map((i) => i.stop()));
  kube.close();
});

async function startAll(): Promise<void> {
  for (const i of informers) i.start();
  await Promise.all(informers.map((i) => i.waitForSync()));
}

function injectedPod(namespace: string, name: string, revision: string): KubeObject {
  return { ...POD, metadata: { namespace, name, annotations: { 'istio.io/rev': revision } } };
}

function seedMesh(): void {
  kube.seed(
    { ...CPR, metadata: { name: 'blue' }, spec: { version: '1.28.10' } } as KubeObject,
    { ...CPR, metadata: { name: 'green' }, spec: { version: '1.29.6' } } as KubeObject,
    { ...TAG, metadata: { name: 'prod' }, spec: { revision: 'green' } } as KubeObject,
    { ...NAMESPACE, metadata: { name: 'shop', labels: { 'istio.io/rev': 'blue' } } },
    { ...NAMESPACE, metadata: { name: 'cart', labels: { 'istio.io/rev': 'prod' } } },
    { ...NAMESPACE, metadata: { name: 'plain' } },
    injectedPod('shop', 'web-1', 'blue'),
    injectedPod('shop', 'web-2', 'blue'),
    injectedPod('cart', 'api-1', 'green'),
  );
}

describe('UsageTracker', () => {
  test('knows nothing until every source is synced, so InUse stays Unknown rather than False', async () => {
    seedMesh();
    const tracker = new UsageTracker(sources);
    expect(tracker.current()).toBeUndefined();
    expect(tracker.revisionUsage('blue')).toBeUndefined();
    expect(tracker.revisionReasons('blue')).toBeUndefined();
    expect(tracker.tagUsage('prod')).toBeUndefined();
    // Three of four synced is still unknown.
    for (const i of [sources.namespaces, sources.revisions, sources.tags]) i.start();
    await Promise.all([sources.namespaces, sources.revisions, sources.tags].map((i) => i.waitForSync()));
    expect(tracker.current()).toBeUndefined();
    sources.pods.start();
    await sources.pods.waitForSync();
    expect(tracker.current()).toBeDefined();
  });

  test('counts namespaces, pods and tags per revision and per tag', async () => {
    seedMesh();
    await startAll();
    const tracker = new UsageTracker(sources);
    expect(tracker.revisionUsage('blue')).toEqual({ namespaces: 1, pods: 2, stalePods: 0, tags: [] });
    expect(tracker.revisionUsage('green')).toEqual({ namespaces: 1, pods: 1, stalePods: 0, tags: ['prod'] });
    expect(tracker.revisionUsage('missing')).toEqual({ namespaces: 0, pods: 0, stalePods: 0, tags: [] });
    // The pod in cart would get its next sidecar through the tag.
    expect(tracker.tagUsage('prod')).toEqual({ namespaces: 1, pods: 1 });
    expect(tracker.tagUsage('nobody')).toEqual({ namespaces: 0, pods: 0 });
    expect(tracker.revisionReasons('blue')?.length).toBeGreaterThan(0);
    expect(tracker.revisionReasons('missing')).toEqual([]);
    expect(tracker.injectedRevisionOf(injectedPod('shop', 'x', 'blue'))).toBe('blue');
    expect(tracker.injectedRevisionOf({ metadata: { name: 'bare' } })).toBeUndefined();
  });

  test('computes once per change however often it is asked, and again after any source changes', async () => {
    seedMesh();
    await startAll();
    const tracker = new UsageTracker(sources);
    const first = tracker.current();
    expect(tracker.current()).toBe(first);
    tracker.revisionUsage('blue');
    tracker.tagUsage('prod');
    expect(tracker.current()).toBe(first);

    kube.seed(injectedPod('shop', 'web-3', 'blue'));
    await eventually(() => sources.pods.size() === 4, 'the pod informer to see the new pod');
    const second = tracker.current();
    expect(second).not.toBe(first);
    expect(tracker.revisionUsage('blue')?.pods).toBe(3);
    expect(tracker.current()).toBe(second);

    kube.edit({ ...NAMESPACE, name: 'plain' }, (ns) => {
      ns.metadata = { ...ns.metadata, labels: { 'istio.io/rev': 'green' } };
    });
    await eventually(
      () => sources.namespaces.get('plain')?.metadata?.labels?.['istio.io/rev'] === 'green',
      'the namespace change',
    );
    expect(tracker.current()).not.toBe(second);
    expect(tracker.revisionUsage('green')?.namespaces).toBe(2);
  });
});

describe('the slimmed pod and namespace caches', () => {
  test('a pod keeps its identity, the selector labels and the revision that injected it', () => {
    const status = JSON.stringify({
      initContainers: ['istio-init'],
      containers: ['istio-proxy'],
      revision: 'blue',
    });
    const slim = slimPod({
      metadata: {
        name: 'web-1',
        namespace: 'shop',
        uid: 'u1',
        resourceVersion: '7',
        labels: {
          app: 'web',
          'pod-template-hash': 'abc',
          'sidecar.istio.io/inject': 'true',
          'istio.io/rev': 'green',
        },
        annotations: { 'sidecar.istio.io/status': status, 'kubectl.kubernetes.io/restartedAt': 'now' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-abc', uid: 'r1' }],
      },
    });
    expect(slim).toEqual({
      metadata: {
        name: 'web-1',
        namespace: 'shop',
        uid: 'u1',
        resourceVersion: '7',
        labels: { 'sidecar.istio.io/inject': 'true', 'istio.io/rev': 'green' },
        annotations: { 'istio.io/rev': 'blue' },
      },
    });
  });

  test('a pod no revision injected keeps no annotation', () => {
    expect(
      slimPod({ metadata: { name: 'p', namespace: 'n', annotations: { a: 'b' } } }).metadata?.annotations,
    ).toEqual({});
  });

  test('a namespace keeps only its injection labels', () => {
    expect(
      slimNamespace({
        metadata: {
          name: 'shop',
          uid: 'n1',
          labels: { team: 'x', 'istio-injection': 'enabled', 'istio.io/rev': 'b' },
        },
      }).metadata?.labels,
    ).toEqual({ 'istio-injection': 'enabled', 'istio.io/rev': 'b' });
  });

  test('a namespace keeps the name label the auto webhook excludes system namespaces by', () => {
    expect(
      slimNamespace({
        metadata: {
          name: 'kube-system',
          labels: { 'kubernetes.io/metadata.name': 'kube-system', team: 'x' },
        },
      }).metadata?.labels,
    ).toEqual({ 'kubernetes.io/metadata.name': 'kube-system' });
  });
});

describe('usageWorld', () => {
  const lookup = (objects: KubeObject[]) => ({
    keys: () => objects.map((o) => o.metadata?.name ?? ''),
    list: () => objects,
    get: (name: string) => objects.find((o) => o.metadata?.name === name),
  });
  const created = (kind: typeof CPR, name: string, at: string, spec: object): KubeObject =>
    ({ ...kind, metadata: { name, creationTimestamp: at }, spec }) as KubeObject;

  it('names the revisions injecting unlabelled namespaces and the names older tags hold against revisions', () => {
    const revisions = lookup([
      created(CPR, 'canary', '2026-01-01T00:00:00Z', { injection: { enableNamespacesByDefault: true } }),
      created(CPR, 'prod', '2026-03-01T00:00:00Z', {}),
      created(CPR, 'default', '2026-01-01T00:00:00Z', {}),
    ]);
    const tags = lookup([
      created(TAG, 'prod', '2026-02-01T00:00:00Z', { revision: 'canary' }),
      created(TAG, 'default', '2026-02-01T00:00:00Z', { revision: 'canary' }),
    ]);
    expect(usageWorld(revisions, tags)).toEqual({
      revisions: ['canary', 'prod', 'default'],
      autoInjectingRevisions: ['canary'],
      namesHeldByTags: ['prod'],
      tags: [
        { name: 'prod', revision: 'canary' },
        { name: 'default', revision: 'canary' },
      ],
    });
  });
});
