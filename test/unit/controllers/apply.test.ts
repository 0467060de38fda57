// applySet on an in-memory API server with real informer caches: conflicts are refused before any write,
// objects are created, updated or repaired only when needed, what is no longer desired is pruned, and
// every step is told as an Event.
import { randomBytes } from 'node:crypto';

import { applySet, OwnershipConflictError, type ApplySetResult } from '../../../src/controllers/apply.js';
import type { DesiredObject } from '../../../src/controllers/common/objects.js';
import { MemoryEventRecorder } from '../../../src/controllers/events.js';
import { OwnedObjectCaches } from '../../../src/controllers/owned.js';
import { ApiError } from '../../../src/runtime/kube.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { eventually, FakeKube, silentLogger, type Stored } from './fake-kube.js';

const OWNER: KubeObject = {
  apiVersion: 'meshrev.dev/v1alpha1',
  kind: 'ControlPlaneRevision',
  metadata: { name: 'a', uid: 'owner-a' },
};
const OTHER_OWNER = {
  apiVersion: 'meshrev.dev/v1alpha1',
  kind: 'ControlPlaneRevision',
  name: 'b',
  uid: 'owner-b',
  controller: true,
};

let kube: FakeKube;
let caches: OwnedObjectCaches;
let events: MemoryEventRecorder;

/** Unique names: applySet remembers drift-blind objects by key across calls. */
const unique = (prefix: string): string => `${prefix}-${randomBytes(3).toString('hex')}`;

function configMap(name: string, data: Record<string, string>, owner = OWNER): DesiredObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      namespace: 'istio-system',
      labels: { 'app.kubernetes.io/managed-by': 'meshrev', 'istio.io/rev': owner.metadata?.name ?? '' },
      ownerReferences: [
        {
          apiVersion: owner.apiVersion ?? '',
          kind: owner.kind ?? '',
          name: owner.metadata?.name ?? '',
          uid: owner.metadata?.uid ?? '',
          controller: true,
        },
      ],
    },
    data,
  };
}

function webhookConfiguration(name: string): DesiredObject {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: {
      name,
      labels: { 'app.kubernetes.io/managed-by': 'meshrev' },
      ownerReferences: [
        {
          apiVersion: 'meshrev.dev/v1alpha1',
          kind: 'ControlPlaneRevision',
          name: 'a',
          uid: 'owner-a',
          controller: true,
        },
      ],
    },
    webhooks: [{ name: 'rev.namespace.sidecar-injector.istio.io', sideEffects: 'None' }],
  };
}

const ref = (o: DesiredObject) => ({
  apiVersion: o.apiVersion,
  kind: o.kind,
  namespace: o.metadata.namespace,
  name: o.metadata.name,
});

async function run(desired: DesiredObject[]): Promise<ApplySetResult> {
  return applySet({
    client: kube,
    caches,
    owner: OWNER,
    desired,
    fieldManager: 'meshrev',
    events,
    logger: silentLogger,
  });
}

/** Waits until the caches hold what the fake API server stores for `objects`. */
async function cachesCaughtUp(...objects: DesiredObject[]): Promise<void> {
  await eventually(
    () =>
      objects.every((o) => {
        const live = kube.find(ref(o));
        const cached = caches.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name);
        return live?.metadata?.resourceVersion === cached?.metadata?.resourceVersion;
      }),
    'informer caches to catch up',
  );
}

beforeEach(async () => {
  kube = new FakeKube();
  caches = new OwnedObjectCaches(kube, silentLogger);
  events = new MemoryEventRecorder();
  for (const informer of caches.all()) informer.start();
  await Promise.all(caches.all().map((i) => i.waitForSync()));
});

afterEach(async () => {
  await Promise.all(caches.all().map((i) => i.stop()));
  kube.close();
});

describe('applySet', () => {
  test('creates what does not exist, records one Created event naming each, and writes nothing once in sync', async () => {
    const cm = configMap(unique('mesh'), { mesh: 'a: 1' });
    const mwc = webhookConfiguration(unique('istio-sidecar-injector'));
    const result = await run([cm, mwc]);
    expect(result.applied).toEqual([
      `v1/ConfigMap/istio-system/${cm.metadata.name}`,
      `admissionregistration.k8s.io/v1/MutatingWebhookConfiguration/${mwc.metadata.name}`,
    ]);
    expect(result.deleted).toEqual([]);
    expect(events.events.map((e) => [e.type, e.reason, e.message])).toEqual([
      [
        'Normal',
        'Created',
        `Created ConfigMap istio-system/${cm.metadata.name}, MutatingWebhookConfiguration ${mwc.metadata.name}`,
      ],
    ]);
    expect(kube.find(ref(cm))?.metadata?.annotations?.['meshrev.dev/desired-hash']).toMatch(/^[0-9a-f]{16}$/);

    await cachesCaughtUp(cm, mwc);
    const writes = kube.writeCount();
    const again = await run([cm, mwc]);
    expect(again).toEqual({ applied: [], deleted: [] });
    expect(kube.writeCount()).toBe(writes);
    expect(events.events).toHaveLength(1);
  });

  test('applies an object whose desired form changed and records Updated', async () => {
    const name = unique('mesh');
    await run([configMap(name, { mesh: 'a: 1' })]);
    await cachesCaughtUp(configMap(name, {}));
    const result = await run([configMap(name, { mesh: 'a: 2' })]);
    expect(result.applied).toEqual([`v1/ConfigMap/istio-system/${name}`]);
    expect(kube.find(ref(configMap(name, {})))?.data).toEqual({ mesh: 'a: 2' });
    expect(events.events.at(-1)).toMatchObject({
      reason: 'Updated',
      message: `Updated ConfigMap istio-system/${name}`,
    });
  });

  test('restores a hand-edited field and records DriftRepaired', async () => {
    const cm = configMap(unique('mesh'), { mesh: 'a: 1' });
    await run([cm]);
    kube.edit(ref(cm), (o) => {
      o.data = { mesh: 'hacked' };
    });
    await cachesCaughtUp(cm);
    const result = await run([cm]);
    expect(result.applied).toHaveLength(1);
    expect(kube.find(ref(cm))?.data).toEqual({ mesh: 'a: 1' });
    expect(events.events.at(-1)).toMatchObject({ type: 'Normal', reason: 'DriftRepaired' });
  });

  test('leaves alone fields another manager added', async () => {
    const cm = configMap(unique('mesh'), { mesh: 'a: 1' });
    await run([cm]);
    kube.edit(ref(cm), (o) => {
      o.metadata = { ...o.metadata, labels: { ...o.metadata?.labels, 'team.example/owner': 'platform' } };
      o.binaryData = { extra: 'AAAA' };
    });
    await cachesCaughtUp(cm);
    const writes = kube.writeCount();
    expect(await run([cm])).toEqual({ applied: [], deleted: [] });
    expect(kube.writeCount()).toBe(writes);
  });

  test.each<{ name: string; foreign: (name: string) => KubeObject; detail: string }>([
    {
      name: 'created outside meshrev',
      foreign: (name) => ({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name },
      }),
      detail: 'created outside meshrev',
    },
    {
      name: 'labelled by another manager',
      foreign: (name) => ({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'Helm' } },
      }),
      detail: 'managed by Helm',
    },
    {
      name: 'controlled by another revision',
      foreign: (name) => ({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: {
          name,
          labels: { 'app.kubernetes.io/managed-by': 'meshrev' },
          ownerReferences: [OTHER_OWNER],
        },
      }),
      detail: 'controlled by ControlPlaneRevision b',
    },
  ])('refuses an existing object $name before writing anything', async ({ foreign, detail }) => {
    const cm = configMap(unique('mesh'), { mesh: 'a: 1' });
    const mwc = webhookConfiguration(unique('istio-sidecar-injector'));
    kube.seed(foreign(mwc.metadata.name));
    await eventually(() => caches.all().every((i) => i.hasSynced()), 'caches');
    const error = await run([cm, mwc]).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(OwnershipConflictError);
    expect((error as OwnershipConflictError).object.metadata.name).toBe(mwc.metadata.name);
    expect((error as Error).message).toContain(
      `MutatingWebhookConfiguration ${mwc.metadata.name} already exists and is not managed by this resource (${detail})`,
    );
    // The ConfigMap comes first in the list, yet nothing was written: conflicts are checked before applying.
    expect(kube.writeCount()).toBe(0);
    expect(kube.find(ref(cm))).toBeUndefined();
    expect(events.events).toEqual([]);
  });

  test('prunes owned objects that are no longer desired, and only those', async () => {
    const keep = configMap(unique('keep'), { a: '1' });
    const drop = configMap(unique('drop'), { b: '2' });
    const foreign = configMap(
      unique('theirs'),
      { c: '3' },
      { ...OWNER, metadata: { name: 'b', uid: 'owner-b' } },
    );
    await run([keep, drop]);
    kube.seed(foreign);
    await cachesCaughtUp(keep, drop, foreign);
    const result = await run([keep]);
    expect(result).toEqual({ applied: [], deleted: [`v1/ConfigMap/istio-system/${drop.metadata.name}`] });
    expect(kube.find(ref(drop))).toBeUndefined();
    expect(kube.find(ref(keep))).toBeDefined();
    expect(kube.find(ref(foreign))).toBeDefined();
    const deleteWrite = kube.writesOf('delete');
    expect(deleteWrite.map((w) => w.key)).toEqual([`v1/ConfigMap/istio-system/${drop.metadata.name}`]);
    expect(events.events.at(-1)).toMatchObject({
      reason: 'Deleted',
      message: `Deleted ConfigMap istio-system/${drop.metadata.name}`,
    });
  });

  test('replaces a binding whose roleRef changed (roleRef is immutable) and prunes the role it no longer uses', async () => {
    const name = unique('istiod-clusterrole');
    // Cluster-scoped, labelled as meshrev's and controlled by OWNER, like the webhook configuration.
    const meta = (objectName: string) => webhookConfiguration(objectName).metadata;
    const legacyRole: DesiredObject = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: meta(name),
      rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
    };
    const binding = (roleName: string): DesiredObject => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: meta(name),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
      subjects: [{ kind: 'ServiceAccount', name: 'istiod-a', namespace: 'istio-system' }],
    });
    await run([legacyRole, binding(name)]);
    await cachesCaughtUp(legacyRole, binding(name));
    const uidBefore = kube.find(ref(binding(name)))?.metadata?.uid;

    const result = await run([binding('meshrev-istiod')]);
    expect(result).toEqual({
      applied: [`rbac.authorization.k8s.io/v1/ClusterRoleBinding/${name}`],
      deleted: [`rbac.authorization.k8s.io/v1/ClusterRole/${name}`],
    });
    const stored = kube.find(ref(binding(name))) as (Stored & { roleRef?: { name: string } }) | undefined;
    expect(stored?.roleRef?.name).toBe('meshrev-istiod');
    expect(stored?.metadata?.uid).not.toBe(uidBefore);
    expect(kube.find(ref(legacyRole))).toBeUndefined();
    expect(kube.writesOf('delete').map((w) => w.key)).toEqual([
      `rbac.authorization.k8s.io/v1/ClusterRoleBinding/${name}`,
      `rbac.authorization.k8s.io/v1/ClusterRole/${name}`,
    ]);
  });

  test('treats an object already gone when pruning as pruned', async () => {
    const drop = configMap(unique('drop'), { b: '2' });
    await run([drop]);
    await cachesCaughtUp(drop);
    kube.failNext('delete', (key) => key.endsWith(drop.metadata.name), new ApiError(404, 'NotFound', 'gone'));
    expect((await run([])).deleted).toEqual([`v1/ConfigMap/istio-system/${drop.metadata.name}`]);
  });

  test('passes a failed write on to the caller, so the reconcile is retried with backoff', async () => {
    const cm = configMap(unique('mesh'), { a: '1' });
    kube.failNext('apply', () => true, new ApiError(500, 'InternalError', 'etcdserver: request timed out'));
    await expect(run([cm])).rejects.toThrow('etcdserver: request timed out');
    expect(events.events).toEqual([]);
  });

  test('does not re-apply on every reconcile a field the API server stores in its own way', async () => {
    const cm = configMap(unique('normalised'), { mesh: 'MIXED' });
    // This API server lower-cases the field: the drift check can never see the desired value.
    kube.normalise = (o: Stored) =>
      o.data ? { ...o, data: { mesh: String((o.data as Record<string, string>).mesh).toLowerCase() } } : o;
    await run([cm]);
    await cachesCaughtUp(cm);
    const writes = kube.writeCount();
    expect(await run([cm])).toEqual({ applied: [], deleted: [] });
    expect(kube.writeCount()).toBe(writes);
    // A change of the desired object is still applied.
    const changed = configMap(cm.metadata.name, { mesh: 'OTHER' });
    expect((await run([changed])).applied).toHaveLength(1);
  });
});
