// The ControlPlaneRevision reconciler as a shell: on an in-memory API server with real owned-object
// caches, each case names the objects present, the failure injected and the Reconciled condition that
// must result; status is written only when it changed and lastTransitionTime moves only on transitions.
import { DESIRED_HASH_ANNOTATION } from '../../../src/controllers/sync.js';
import { DEFAULT_CHANNEL_TABLE, type ChannelTable } from '../../../src/controllers/common/versions.js';
import { MemoryEventRecorder } from '../../../src/controllers/events.js';
import type { OwnedObjectCaches } from '../../../src/controllers/owned.js';
import { CONFLICT_RECHECK_MS } from '../../../src/controllers/apply.js';
import {
  revisionReconciler,
  type RevisionReconcilerDeps,
} from '../../../src/controllers/revision/reconciler.js';
import type { RevisionUsage } from '../../../src/controllers/revision/status.js';
import { ApiError } from '../../../src/runtime/kube.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import {
  eventually,
  FakeKube,
  lookup,
  reconcileContext,
  startedCaches,
  stopCaches,
  type Stored,
} from './fake-kube.js';

const CPR = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'ControlPlaneRevision' };
const TAG = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'RevisionTag' };
const MWC = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' };
const DEPLOYMENT = { apiVersion: 'apps/v1', kind: 'Deployment' };
const INJECTOR = { serviceName: 'meshrev-injector', serviceNamespace: 'meshrev-system', port: 443 };

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}
type Cpr = Stored & {
  status?: {
    conditions?: Condition[];
    version?: string;
    channel?: string;
    observedGeneration?: number;
    webhookConfiguration?: string;
  };
};

let kube: FakeKube;
let caches: OwnedObjectCaches | undefined;
let events: MemoryEventRecorder;
let now: Date;

beforeEach(async () => {
  kube = new FakeKube();
  caches = await startedCaches(kube);
  events = new MemoryEventRecorder();
  now = new Date('2025-03-01T10:00:00.000Z');
});

afterEach(async () => {
  await stopCaches(caches);
  kube.close();
});

function deps(overrides: Partial<RevisionReconcilerDeps> = {}): RevisionReconcilerDeps {
  return {
    client: kube,
    revisions: lookup(kube, CPR),
    tags: lookup(kube, TAG),
    caches: caches as OwnedObjectCaches,
    channels: () => DEFAULT_CHANNEL_TABLE,
    injector: INJECTOR,
    caBundle: () => 'Q0EtQlVORExF',
    usage: () => undefined,
    namespaceExists: () => true,
    events,
    fieldManager: 'meshrev',
    operatorName: 'meshrev',
    now: () => now,
    ...overrides,
  };
}

function seedRevision(name: string, spec: Record<string, unknown>): void {
  kube.seed({ ...CPR, metadata: { name, creationTimestamp: '2025-02-01T00:00:00Z' }, spec } as KubeObject);
}

const revisionOf = (name: string): Cpr => kube.find({ ...CPR, name }) as Cpr;
const conditionOf = (name: string, type: string): Condition | undefined =>
  revisionOf(name).status?.conditions?.find((c) => c.type === type);
const reconcile = (name: string, d = deps()) => revisionReconciler(d)(name, reconcileContext());
const ownedObjects = (): Stored[] =>
  [DEPLOYMENT, MWC, { apiVersion: 'v1', kind: 'ConfigMap' }, { apiVersion: 'v1', kind: 'Service' }].flatMap(
    (t) => kube.all(t),
  );

interface FailureCase {
  name: string;
  spec: Record<string, unknown>;
  /** Objects present before the reconcile (not owned by the revision). */
  objects?: KubeObject[];
  deps?: () => Partial<RevisionReconcilerDeps>;
  reason: string;
  message: string | RegExp;
  /** Whether the revision's istiod objects are applied despite the failure. */
  applies: boolean;
  /** What the reconcile asks of the workqueue (a conflict with someone else's object is looked at again). */
  result?: { requeueAfterMs: number };
  /** The webhook configuration status names; unset when none is rendered. */
  webhookConfiguration?: string;
}

describe('a revision whose reconcile fails reports Reconciled=False, an Event and writes nothing it must not', () => {
  const cases: FailureCase[] = [
    {
      name: 'a version meshrev does not support',
      spec: { version: '1.20.0' },
      reason: 'UnsupportedVersion',
      message: 'Istio 1.20.0 is not supported; meshrev supports Istio 1.28, 1.29, 1.30',
      applies: false,
    },
    {
      name: 'a channel the channel table maps to an unsupported version',
      spec: { channel: 'rapid' },
      deps: () => ({ channels: (): ChannelTable => ({ ...DEFAULT_CHANNEL_TABLE, rapid: '1.99.0' }) }),
      reason: 'UnsupportedVersion',
      message: /Istio 1\.99\.0 is not supported/,
      applies: false,
    },
    {
      name: 'a channel whose entry in the channel ConfigMap is unusable',
      spec: { channel: 'rapid' },
      deps: () => ({
        channelProblem: (c: string) => (c === 'rapid' ? 'Istio 1.99.0 is not supported' : undefined),
      }),
      reason: 'InvalidChannelTable',
      message: /channel "rapid" \(Istio 1\.99\.0 is not supported\); the revision keeps its current version/,
      applies: false,
    },
    {
      // The CRD's enum refuses it at admission; an older CRD or a direct etcd write may not have.
      name: 'an unknown channel',
      spec: { channel: 'nightly' },
      reason: 'InvalidSpec',
      message: /channel/,
      applies: false,
    },
    {
      name: 'a namespace that does not exist',
      spec: { version: '1.29.6', namespace: 'mesh-cp' },
      deps: () => ({ namespaceExists: (ns: string) => ns !== 'mesh-cp' }),
      reason: 'NamespaceNotFound',
      message: 'namespace "mesh-cp" does not exist; create it (kubectl create namespace mesh-cp)',
      applies: false,
    },
    {
      name: 'a webhook configuration of the same name meshrev does not own',
      spec: { version: '1.29.6' },
      objects: [{ ...MWC, metadata: { name: 'istio-sidecar-injector-REV' } }],
      reason: 'WebhookConflict',
      result: { requeueAfterMs: CONFLICT_RECHECK_MS },
      message:
        /MutatingWebhookConfiguration istio-sidecar-injector-REV already exists and is not managed by this resource \(created outside meshrev\)/,
      applies: false,
    },
    {
      name: 'a RevisionTag of the same name that existed first',
      spec: { version: '1.29.6' },
      objects: [
        {
          ...TAG,
          metadata: { name: 'REV', creationTimestamp: '2024-12-01T00:00:00Z' },
          spec: { revision: 'other' },
        } as KubeObject,
      ],
      reason: 'NameConflict',
      message: /RevisionTag "REV" existed first and selects istio.io\/rev=REV/,
      applies: true,
      webhookConfiguration: undefined,
    },
  ];

  test.each(cases)('$name', async (c) => {
    const name = 'rev-a';
    seedRevision(name, c.spec);
    const fill = (o: KubeObject): KubeObject =>
      JSON.parse(JSON.stringify(o).replaceAll('REV', name)) as KubeObject;
    const foreign = kube.seed(...(c.objects ?? []).map(fill));
    const result = await reconcile(name, deps(c.deps?.()));

    expect(result).toEqual(c.result);
    if ('webhookConfiguration' in c) {
      expect(revisionOf(name).status?.webhookConfiguration).toBe(c.webhookConfiguration);
    }
    const reconciled = conditionOf(name, 'Reconciled');
    expect(reconciled).toMatchObject({ status: 'False', reason: c.reason, observedGeneration: 1 });
    if (typeof c.message === 'string') expect(reconciled?.message).toBe(c.message.replaceAll('REV', name));
    else expect(reconciled?.message).toMatch(new RegExp(c.message.source.replaceAll('REV', name)));
    expect(events.events).toContainEqual(
      expect.objectContaining({ kind: 'ControlPlaneRevision', name, type: 'Warning', reason: c.reason }),
    );

    // Objects meshrev does not own are never touched, and no webhook configuration is rendered.
    for (const o of foreign) {
      const after = kube.find({
        apiVersion: o.apiVersion ?? '',
        kind: o.kind ?? '',
        name: o.metadata?.name ?? '',
      });
      expect(after?.metadata?.resourceVersion).toBe(o.metadata?.resourceVersion);
    }
    expect(kube.writes.filter((w) => w.key.includes('MutatingWebhookConfiguration'))).toEqual([]);
    expect(
      kube.find({ ...DEPLOYMENT, namespace: 'istio-system', name: `istiod-${name}` }) !== undefined,
    ).toBe(c.applies);
    // Only the status was written besides what the case applies.
    expect(kube.writesOf('applyStatus')).toHaveLength(1);
    if (!c.applies) expect(kube.writeCount()).toBe(1);
  });
});

describe('custom injection templates', () => {
  test('a template that does not parse is reported in Reconciled while every object is applied', async () => {
    seedRevision('tmpl', {
      version: '1.29.6',
      injection: { templates: { good: 'spec: {}\n', broken: 'spec: {{ .Spec' } },
    });
    await reconcile('tmpl');
    const reconciled = conditionOf('tmpl', 'Reconciled');
    expect(reconciled).toMatchObject({ status: 'False', reason: 'InvalidTemplate' });
    expect(reconciled?.message).toMatch(
      /^injection template "broken" does not parse: template: inject:1:.*; pods that ask for it are refused$/,
    );
    expect(events.events).toContainEqual(
      expect.objectContaining({ name: 'tmpl', type: 'Warning', reason: 'InvalidTemplate' }),
    );
    expect(kube.find({ ...DEPLOYMENT, namespace: 'istio-system', name: 'istiod-tmpl' })).toBeDefined();
    expect(kube.find({ ...MWC, name: 'istio-sidecar-injector-tmpl' })).toBeDefined();

    // Templates that parse are no failure.
    seedRevision('fine', { version: '1.29.6', injection: { templates: { good: 'spec: {}\n' } } });
    await reconcile('fine');
    expect(conditionOf('fine', 'Reconciled')).toMatchObject({ status: 'True', reason: 'Reconciled' });
  });
});

describe('the revision reconciler', () => {
  test('applies every object of a revision and reports Reconciled=True with the resolved version', async () => {
    seedRevision('canary', { channel: 'regular' });
    await reconcile(
      'canary',
      deps({ usage: () => ({ namespaces: 2, pods: 3, stalePods: 0, tags: ['prod'] }) }),
    );
    const deployment = kube.find({ ...DEPLOYMENT, namespace: 'istio-system', name: 'istiod-canary' });
    expect(deployment?.metadata?.annotations?.[DESIRED_HASH_ANNOTATION]).toBeDefined();
    expect(deployment?.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'ControlPlaneRevision',
      name: 'canary',
      controller: true,
    });
    const mwc = kube.find({ ...MWC, name: 'istio-sidecar-injector-canary' }) as
      | (Stored & { webhooks: { clientConfig: { caBundle?: string; service: { path: string } } }[] })
      | undefined;
    expect(mwc?.webhooks.map((w) => [w.clientConfig.service.path, w.clientConfig.caBundle])).toEqual([
      ['/inject/canary', 'Q0EtQlVORExF'],
      ['/inject/canary', 'Q0EtQlVORExF'],
    ]);
    const status = revisionOf('canary').status;
    expect(status).toMatchObject({
      observedGeneration: 1,
      version: DEFAULT_CHANNEL_TABLE.regular,
      channel: 'regular',
      webhookConfiguration: 'istio-sidecar-injector-canary',
    });
    expect(conditionOf('canary', 'Reconciled')).toMatchObject({
      status: 'True',
      reason: 'Reconciled',
      lastTransitionTime: '2025-03-01T10:00:00Z',
    });
    expect(conditionOf('canary', 'Ready')).toMatchObject({ status: 'False', reason: 'IstiodNotAvailable' });
    expect(conditionOf('canary', 'InUse')).toMatchObject({
      status: 'True',
      message: 'Used by 2 namespaces, 3 pods, tag prod',
    });
    expect(ownedObjects().length).toBeGreaterThanOrEqual(4);
    const created = events.events.filter((e) => e.reason === 'Created');
    expect(created).toHaveLength(1);
    for (const write of kube.writesOf('apply'))
      expect(created[0]?.message).toContain(write.key.split('/').at(-1) ?? '');
  });

  test('writes nothing at all when reconciling a revision that is in sync', async () => {
    seedRevision('steady', { version: '1.29.6' });
    await reconcile('steady');
    const writes = kube.writeCount();
    for (let i = 0; i < 5; i++) {
      now = new Date(now.getTime() + 60_000);
      await reconcile('steady');
    }
    expect(kube.writeCount()).toBe(writes);
  });

  test('keeps lastTransitionTime of conditions whose status did not change, and moves it for those that did', async () => {
    seedRevision('ltt', { version: '1.29.6' });
    await reconcile('ltt');
    const first = conditionOf('ltt', 'Reconciled')?.lastTransitionTime;
    expect(conditionOf('ltt', 'InUse')).toMatchObject({ status: 'Unknown', lastTransitionTime: first });

    now = new Date('2025-03-01T11:30:00.000Z');
    const usage: RevisionUsage = { namespaces: 0, pods: 0, stalePods: 0, tags: [] };
    kube.edit({ ...DEPLOYMENT, namespace: 'istio-system', name: 'istiod-ltt' }, (d) => {
      d.status = { replicas: 1, readyReplicas: 1, conditions: [{ type: 'Available', status: 'True' }] };
    });
    await reconcile('ltt', deps({ usage: () => usage }));
    expect(conditionOf('ltt', 'Reconciled')).toMatchObject({ status: 'True', lastTransitionTime: first });
    expect(conditionOf('ltt', 'Ready')).toMatchObject({
      status: 'True',
      reason: 'IstiodAvailable',
      lastTransitionTime: '2025-03-01T11:30:00Z',
    });
    expect(conditionOf('ltt', 'InUse')).toMatchObject({
      status: 'False',
      lastTransitionTime: '2025-03-01T11:30:00Z',
    });
    expect(revisionOf('ltt').status).toMatchObject({ istiod: { replicas: 1, readyReplicas: 1 } });
  });

  test('throws on a failed apply so the workqueue backs off, after reporting ApplyFailed in status', async () => {
    seedRevision('flaky', { version: '1.29.6' });
    kube.failNext(
      'apply',
      (key) => key.includes('/Deployment/'),
      new ApiError(500, 'InternalError', 'etcdserver: leader changed'),
    );
    await expect(reconcile('flaky')).rejects.toThrow('etcdserver: leader changed');
    expect(conditionOf('flaky', 'Reconciled')).toMatchObject({
      status: 'False',
      reason: 'ApplyFailed',
      message: 'etcdserver: leader changed',
    });
    expect(events.events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'ApplyFailed' }));

    // The retry succeeds and the condition transitions back.
    now = new Date('2025-03-01T10:00:05.000Z');
    await reconcile('flaky');
    expect(conditionOf('flaky', 'Reconciled')).toMatchObject({
      status: 'True',
      lastTransitionTime: '2025-03-01T10:00:05Z',
    });
  });

  test('does not throw for failures only a spec change can fix, so they are not retried in a hot loop', async () => {
    seedRevision('old', { version: '1.20.0' });
    await expect(reconcile('old')).resolves.toBeUndefined();
  });

  test('keeps reporting the deployed version while a new one cannot be resolved', async () => {
    seedRevision('pinned', { version: '1.29.6' });
    await reconcile('pinned');
    kube.edit({ ...CPR, name: 'pinned' }, (o) => {
      o.spec = { version: '1.20.0' };
      o.metadata = { ...o.metadata, generation: 2 };
    });
    await reconcile('pinned');
    expect(revisionOf('pinned').status).toMatchObject({ version: '1.29.6', observedGeneration: 2 });
    expect(conditionOf('pinned', 'Reconciled')).toMatchObject({
      status: 'False',
      reason: 'UnsupportedVersion',
      observedGeneration: 2,
    });
  });

  test.each([
    [
      'its control-plane namespace is gone',
      { version: '1.29.6' },
      { namespaceExists: () => false },
      'NamespaceNotFound',
    ],
    [
      "its channel's table entry is unusable",
      { channel: 'regular' },
      { channelProblem: () => 'not a version' },
      'InvalidChannelTable',
    ],
  ])(
    'while %s, its webhook configuration still takes a new CA bundle, and nothing else is touched',
    async (_, spec, failing, reason) => {
      seedRevision('stuck', spec);
      await reconcile('stuck');
      const mwcRef = { ...MWC, name: 'istio-sidecar-injector-stuck' };
      type Mwc = Stored & { webhooks: { clientConfig: { caBundle?: string } }[] };
      const bundles = () =>
        (kube.find(mwcRef) as Mwc | undefined)?.webhooks.map((w) => w.clientConfig.caBundle);
      await eventually(
        () => caches?.get(MWC.apiVersion, MWC.kind, undefined, mwcRef.name) !== undefined,
        'the webhook configuration in the cache',
      );
      const deploymentBefore = kube.find({ ...DEPLOYMENT, namespace: 'istio-system', name: 'istiod-stuck' });

      await reconcile('stuck', deps({ ...failing, caBundle: () => 'TkVXLUNB' }));

      expect(conditionOf('stuck', 'Reconciled')).toMatchObject({ status: 'False', reason });
      expect(bundles()).toEqual(['TkVXLUNB', 'TkVXLUNB']);
      expect(kube.find({ ...DEPLOYMENT, namespace: 'istio-system', name: 'istiod-stuck' })).toEqual(
        deploymentBefore,
      );
      // Once the bundle is current, the stuck revision writes nothing more.
      await eventually(
        () =>
          (caches?.get(MWC.apiVersion, MWC.kind, undefined, mwcRef.name) as Mwc | undefined)?.webhooks[0]
            ?.clientConfig.caBundle === 'TkVXLUNB',
        'the new bundle in the cache',
      );
      const writes = kube.writeCount();
      await reconcile('stuck', deps({ ...failing, caBundle: () => 'TkVXLUNB' }));
      expect(kube.writeCount()).toBe(writes);
    },
  );

  test('does nothing for a revision that was deleted', async () => {
    await expect(reconcile('gone')).resolves.toBeUndefined();
    expect(kube.writeCount()).toBe(0);
  });

  test('renders no webhook configuration, and prunes it, when injection is disabled', async () => {
    seedRevision('quiet', { version: '1.29.6' });
    await reconcile('quiet');
    expect(kube.find({ ...MWC, name: 'istio-sidecar-injector-quiet' })).toBeDefined();
    kube.edit({ ...CPR, name: 'quiet' }, (o) => {
      o.spec = { version: '1.29.6', injection: { enabled: false } };
      o.metadata = { ...o.metadata, generation: 2 };
    });
    await reconcile('quiet');
    expect(kube.find({ ...MWC, name: 'istio-sidecar-injector-quiet' })).toBeUndefined();
    expect(revisionOf('quiet').status?.webhookConfiguration).toBeUndefined();
  });
});
