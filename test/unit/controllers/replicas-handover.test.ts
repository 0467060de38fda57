// Turning autoscaling on must not scale istiod down: before meshrev applies its Deployment without
// spec.replicas, it hands the field over to a second field manager so the API server keeps it.
import {
  applySet,
  replicasHandover,
  replicasHandoverManager,
  type ReplicasHandover,
} from '../../../src/controllers/apply.js';
import type { DesiredObject } from '../../../src/controllers/common/objects.js';
import { MemoryEventRecorder } from '../../../src/controllers/events.js';
import { OwnedObjectCaches } from '../../../src/controllers/owned.js';
import { desiredRevisionObjects } from '../../../src/controllers/revision/desired.js';
import type { ControlPlaneRevision } from '../../../src/crds/controlplanerevision.js';
import type { ApplyOptions } from '../../../src/runtime/kube.js';
import type { ObjectRef } from '../../../src/runtime/resources.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { eventually, FakeKube, keyOf, silentLogger, type Stored } from './fake-kube.js';
import { INJECTOR, only, revision } from './fixtures.js';

const MANAGER = 'meshrev';
const HANDOVER = 'meshrev-replicas-handover';

function deployment(spec: Record<string, unknown>): DesiredObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'istiod-a', namespace: 'istio-system', labels: {}, ownerReferences: [] },
    spec,
  };
}

function live(spec: Record<string, unknown>, managedFields?: unknown[]): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'istiod-a', namespace: 'istio-system', ...(managedFields ? { managedFields } : {}) },
    spec,
  } as KubeObject;
}

const ownsReplicas = { 'f:spec': { 'f:replicas': {}, 'f:template': {} } };
const entry = (manager: string, operation: string, fieldsV1: unknown, subresource?: string) => ({
  manager,
  operation,
  apiVersion: 'apps/v1',
  fieldsType: 'FieldsV1',
  fieldsV1,
  ...(subresource ? { subresource } : {}),
});

describe('replicasHandover', () => {
  const template = { metadata: {} };

  test('hands the live count over when meshrev applied spec.replicas and no longer does', () => {
    const result = replicasHandover(
      deployment({ template }),
      live({ replicas: 4, template }, [
        entry('kube-controller-manager', 'Update', { 'f:status': {} }, 'status'),
        entry(MANAGER, 'Apply', ownsReplicas),
      ]),
      MANAGER,
    );
    expect(result).toEqual<ReplicasHandover>({
      action: 'handover',
      body: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'istiod-a', namespace: 'istio-system' },
        spec: { replicas: 4 },
      } as KubeObject,
    });
    expect(replicasHandoverManager(MANAGER)).toBe(HANDOVER);
  });

  test.each<[string, unknown[]]>([
    ['another manager applied it', [entry('kubectl', 'Apply', ownsReplicas)]],
    ['the HPA took it over (scale subresource)', [entry(MANAGER, 'Apply', ownsReplicas, 'scale')]],
    ['meshrev only updated it, never applied it', [entry(MANAGER, 'Update', ownsReplicas)]],
    ['meshrev applies other fields only', [entry(MANAGER, 'Apply', { 'f:spec': { 'f:template': {} } })]],
    ['nobody', []],
  ])('does nothing when meshrev does not own spec.replicas: %s', (_name, managedFields) => {
    expect(replicasHandover(deployment({ template }), live({ replicas: 4 }, managedFields), MANAGER)).toEqual(
      {
        action: 'none',
      },
    );
  });

  test('does nothing while meshrev still applies spec.replicas', () => {
    const managedFields = [entry(MANAGER, 'Apply', ownsReplicas)];
    expect(
      replicasHandover(deployment({ replicas: 3, template }), live({ replicas: 4 }, managedFields), MANAGER),
    ).toEqual({ action: 'none' });
  });

  test('does nothing when the live object has no spec.replicas, or does not exist', () => {
    const managedFields = [entry(MANAGER, 'Apply', ownsReplicas)];
    expect(replicasHandover(deployment({ template }), live({ template }, managedFields), MANAGER)).toEqual({
      action: 'none',
    });
    expect(replicasHandover(deployment({ template }), undefined, MANAGER)).toEqual({ action: 'none' });
    const configMap: DesiredObject = { ...deployment({}), apiVersion: 'v1', kind: 'ConfigMap', data: {} };
    delete configMap['spec'];
    expect(replicasHandover(configMap, live({ replicas: 4 }, managedFields), MANAGER)).toEqual({
      action: 'none',
    });
  });

  test('asks for a read when the live object carries no managedFields', () => {
    expect(replicasHandover(deployment({ template }), live({ replicas: 4 }), MANAGER)).toEqual({
      action: 'read',
    });
  });
});

/**
 * FakeKube plus server-side apply's ownership of a Deployment's spec.replicas: every apply's field manager and
 * force are recorded, each manager's Apply entry in managedFields says whether it owns spec.replicas, and an
 * apply without spec.replicas removes the field only when no other entry owns it.
 */
class ReplicasOwnershipKube extends FakeKube {
  readonly applies: { key: string; fieldManager: string; force: boolean | undefined; body: unknown }[] = [];
  readonly gets: string[] = [];

  override async get<T = KubeObject>(ref: ObjectRef): Promise<T> {
    this.gets.push(keyOf(ref));
    return super.get<T>(ref);
  }

  override async apply<T extends KubeObject>(obj: T, options: ApplyOptions): Promise<T> {
    const ref = {
      apiVersion: obj.apiVersion ?? '',
      kind: obj.kind ?? '',
      namespace: obj.metadata?.namespace,
      name: obj.metadata?.name ?? '',
    };
    this.applies.push({
      key: keyOf(ref),
      fieldManager: options.fieldManager,
      force: options.force,
      body: structuredClone(obj),
    });
    const before = this.find(ref);
    const stored = await super.apply(obj, options);
    if (obj.kind !== 'Deployment') return stored;
    const applied = ((obj as unknown as Stored)['spec'] ?? {}) as Record<string, unknown>;
    const previous = (before?.['spec'] ?? {}) as Record<string, unknown>;
    const appliesReplicas = applied['replicas'] !== undefined;
    const others = ((before?.metadata?.managedFields ?? []) as ReturnType<typeof entry>[]).filter(
      (e) => !(e.manager === options.fieldManager && e.operation === 'Apply' && !e.subresource),
    );
    const managedFields = [
      ...(appliesReplicas && options.force !== false
        ? others.map((e) => ({ ...e, fieldsV1: { 'f:spec': {} } })) // forced: the others lose the field
        : others),
      entry(options.fieldManager, 'Apply', { 'f:spec': appliesReplicas ? { 'f:replicas': {} } : {} }),
    ];
    // Only a hand-over body consists of spec.replicas alone; a full body replaces the spec.
    const spec = Object.keys(applied).every((k) => k === 'replicas')
      ? { ...previous, ...applied }
      : { ...applied };
    const ownedByOthers = others.some(
      (e) => (e.fieldsV1 as { 'f:spec'?: Record<string, unknown> })['f:spec']?.['f:replicas'] !== undefined,
    );
    if (!appliesReplicas && ownedByOthers && previous['replicas'] !== undefined) {
      spec['replicas'] = previous['replicas'];
    }
    return this.edit(ref, (o) => {
      o['spec'] = spec;
      o.metadata = { ...o.metadata, managedFields };
    }) as unknown as T;
  }
}

describe('applySet hands spec.replicas over when autoscaling is turned on', () => {
  const CONTEXT = {
    resolvedVersion: '1.29.6',
    injector: INJECTOR,
    caBundle: undefined,
    operatorName: 'meshrev',
  };
  const fixed = revision('a', { istiod: { replicas: 3 } });
  const autoscaled = (extra: Record<string, string> = {}) =>
    revision('a', {
      istiod: {
        autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 7 },
        podAnnotations: extra,
      },
    });
  const objectsOf = (cpr: ControlPlaneRevision) =>
    desiredRevisionObjects(cpr, CONTEXT).filter(
      (o) => o.kind === 'Deployment' || o.kind === 'HorizontalPodAutoscaler',
    );
  const istiod = only(objectsOf(fixed), 'Deployment');
  const istiodRef = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    namespace: istiod.metadata.namespace,
    name: istiod.metadata.name,
  };
  const istiodKey = keyOf(istiodRef);

  let kube: ReplicasOwnershipKube;
  let caches: OwnedObjectCaches;

  beforeEach(async () => {
    kube = new ReplicasOwnershipKube();
    caches = new OwnedObjectCaches(kube, silentLogger);
    for (const informer of caches.all()) informer.start();
    await Promise.all(caches.all().map((i) => i.waitForSync()));
  });

  afterEach(async () => {
    await Promise.all(caches.all().map((i) => i.stop()));
    kube.close();
  });

  async function run(cpr: ControlPlaneRevision, from: OwnedObjectCaches = caches): Promise<void> {
    await applySet({
      client: kube,
      caches: from,
      owner: cpr as KubeObject,
      desired: objectsOf(cpr),
      fieldManager: MANAGER,
      events: new MemoryEventRecorder(),
      logger: silentLogger,
    });
    await caughtUp(cpr);
  }

  /** Lets the caches see every write before the next reconcile, as the work queue's informer events would. */
  async function caughtUp(cpr: ControlPlaneRevision): Promise<void> {
    await eventually(
      () =>
        [...objectsOf(cpr), istiod].every(
          (o) =>
            caches.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name)?.metadata
              ?.resourceVersion === kube.find({ ...o, ...o.metadata })?.metadata?.resourceVersion,
        ),
      'caches to catch up',
    );
  }

  const replicas = () => (kube.find(istiodRef)?.['spec'] as { replicas?: number } | undefined)?.replicas;
  const appliesSince = (n: number) => kube.applies.slice(n).map((a) => [a.key, a.fieldManager, a.force]);
  const hpaKey = `autoscaling/v2/HorizontalPodAutoscaler/${istiod.metadata.namespace}/${istiod.metadata.name}`;

  test('once, before the apply that drops the field, and never in steady state', async () => {
    await run(fixed);
    expect(appliesSince(0)).toEqual([[istiodKey, MANAGER, true]]);
    expect(replicas()).toBe(3);
    await run(fixed);
    expect(kube.applies).toHaveLength(1);

    // The transition: the hand-over (not forced, only the live count) comes first, then the Deployment.
    let seen = kube.applies.length;
    await run(autoscaled());
    expect(appliesSince(seen)).toEqual([
      [istiodKey, HANDOVER, false],
      [istiodKey, MANAGER, true],
      [hpaKey, MANAGER, true],
    ]);
    expect(kube.applies[seen]?.body).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: istiod.metadata.name, namespace: istiod.metadata.namespace },
      spec: { replicas: 3 },
    });
    expect(replicas()).toBe(3); // not dropped to the default of one

    // Steady state: no write at all.
    seen = kube.applies.length;
    await run(autoscaled());
    expect(kube.writeCount()).toBe(seen);

    // The HPA scales through the scale subresource and takes the field.
    kube.edit(istiodRef, (o) => {
      (o['spec'] as Record<string, unknown>)['replicas'] = 5;
      o.metadata = {
        ...o.metadata,
        managedFields: [
          ...(o.metadata?.managedFields ?? []).map((e) => ({ ...(e as object), fieldsV1: { 'f:spec': {} } })),
          entry('kube-controller-manager', 'Update', ownsReplicas, 'scale'),
        ],
      };
    });
    await caughtUp(autoscaled());
    await run(autoscaled());
    expect(kube.writeCount()).toBe(seen);

    // A later change with autoscaling still on: meshrev no longer owns the count, so no hand-over.
    await run(autoscaled({ 'example.com/note': 'changed' }));
    expect(appliesSince(seen)).toEqual([[istiodKey, MANAGER, true]]);
    expect(replicas()).toBe(5);

    // Autoscaling off again: the forced apply takes spec.replicas back from the HPA's manager.
    seen = kube.applies.length;
    await run(fixed);
    expect(appliesSince(seen)).toEqual([[istiodKey, MANAGER, true]]);
    expect(replicas()).toBe(3);
  });

  test('reads the object once at the transition when the cache holds no managedFields', async () => {
    // A cache slimmed of managedFields (nothing to tell ownership from).
    const slim = {
      get: (...args: Parameters<OwnedObjectCaches['get']>) => {
        const obj = caches.get(...args);
        if (obj?.metadata === undefined) return obj;
        const { managedFields: _dropped, ...metadata } = obj.metadata;
        return { ...obj, metadata };
      },
      ownedBy: (uid: string | undefined) => caches.ownedBy(uid),
    } as unknown as OwnedObjectCaches;
    await run(fixed, slim);
    await run(fixed, slim);
    const gets = () => kube.gets.filter((key) => key === istiodKey).length;
    const readsBefore = gets();
    const seen = kube.applies.length;

    await run(autoscaled(), slim);
    expect(gets()).toBe(readsBefore + 1);
    expect(appliesSince(seen)).toEqual([
      [istiodKey, HANDOVER, false],
      [istiodKey, MANAGER, true],
      [hpaKey, MANAGER, true],
    ]);
    expect(replicas()).toBe(3);

    await run(autoscaled(), slim);
    expect(gets()).toBe(readsBefore + 1);
    expect(kube.writeCount()).toBe(seen + 3);
  });
});
