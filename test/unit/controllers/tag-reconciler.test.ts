// The RevisionTag reconciler as a shell, on an in-memory API server with real owned-object caches.
import { MemoryEventRecorder } from '../../../src/controllers/events.js';
import type { OwnedObjectCaches } from '../../../src/controllers/owned.js';
import { tagReconciler, type TagReconcilerDeps } from '../../../src/controllers/tag/reconciler.js';
import { ApiError } from '../../../src/runtime/kube.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { FakeKube, lookup, reconcileContext, startedCaches, stopCaches, type Stored } from './fake-kube.js';

const CPR = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'ControlPlaneRevision' };
const TAG = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'RevisionTag' };
const MWC = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' };
const INJECTOR = { serviceName: 'meshrev-injector', serviceNamespace: 'meshrev-system', port: 443 };

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
type Tag = Stored & {
  status?: { conditions?: Condition[]; revision?: string; webhookConfiguration?: string };
};
interface Webhook {
  name: string;
  failurePolicy: string;
  clientConfig: { service: { path: string }; caBundle?: string };
}
type Mwc = Stored & { webhooks: Webhook[] };

let kube: FakeKube;
let caches: OwnedObjectCaches | undefined;
let events: MemoryEventRecorder;

beforeEach(async () => {
  kube = new FakeKube();
  caches = await startedCaches(kube);
  events = new MemoryEventRecorder();
});

afterEach(async () => {
  await stopCaches(caches);
  kube.close();
});

function deps(overrides: Partial<TagReconcilerDeps> = {}): TagReconcilerDeps {
  return {
    client: kube,
    tags: lookup(kube, TAG),
    revisions: lookup(kube, CPR),
    caches: caches as OwnedObjectCaches,
    injector: INJECTOR,
    caBundle: () => 'Q0E=',
    usage: () => ({ namespaces: 1, pods: 0 }),
    events,
    fieldManager: 'meshrev',
    operatorName: 'meshrev',
    now: () => new Date('2025-03-01T10:00:00Z'),
    ...overrides,
  };
}

function seedRevision(
  name: string,
  spec: Record<string, unknown> = { version: '1.29.6' },
  created = '2025-02-01T00:00:00Z',
): void {
  kube.seed({ ...CPR, metadata: { name, creationTimestamp: created }, spec } as KubeObject);
}

function seedTag(name: string, revision: string, created = '2025-02-02T00:00:00Z'): void {
  kube.seed({ ...TAG, metadata: { name, creationTimestamp: created }, spec: { revision } } as KubeObject);
}

const reconcile = (name: string, d = deps()) => tagReconciler(d)(name, reconcileContext());
const tagOf = (name: string): Tag => kube.find({ ...TAG, name }) as Tag;
const tagStatus = (name: string) => tagOf(name).status;
const reconciled = (name: string): Condition | undefined =>
  tagOf(name).status?.conditions?.find((c) => c.type === 'Reconciled');
const webhookConfiguration = (tag: string): Mwc | undefined =>
  kube.find({ ...MWC, name: `istio-revision-tag-${tag}` }) as Mwc | undefined;

describe('the tag reconciler', () => {
  test('renders the tag webhook configuration routed to the target revision with its settings', async () => {
    seedRevision('canary', { version: '1.29.6', injection: { failurePolicy: 'Ignore' } });
    seedTag('prod', 'canary');
    await reconcile('prod');
    const mwc = webhookConfiguration('prod');
    expect(mwc?.metadata?.labels).toMatchObject({
      'istio.io/tag': 'prod',
      'istio.io/rev': 'canary',
      app: 'sidecar-injector',
    });
    expect(
      mwc?.webhooks.map((w) => [
        w.name,
        w.clientConfig.service.path,
        w.failurePolicy,
        w.clientConfig.caBundle,
      ]),
    ).toEqual([
      ['rev.namespace.sidecar-injector.istio.io', '/inject/canary', 'Ignore', 'Q0E='],
      ['rev.object.sidecar-injector.istio.io', '/inject/canary', 'Ignore', 'Q0E='],
    ]);
    expect(tagOf('prod').status).toMatchObject({
      revision: 'canary',
      webhookConfiguration: 'istio-revision-tag-prod',
      observedGeneration: 1,
    });
    expect(reconciled('prod')).toMatchObject({ status: 'True', reason: 'Reconciled' });
    expect(tagOf('prod').status?.conditions?.find((c) => c.type === 'InUse')).toMatchObject({
      status: 'True',
      message: 'Selected by 1 namespace',
    });
  });

  test('adds the legacy istio-injection=enabled and sidecar.istio.io/inject=true webhooks to the default tag', async () => {
    seedRevision('stable');
    seedTag('default', 'stable');
    await reconcile('default');
    expect(
      webhookConfiguration('default')?.webhooks.map((w) => [w.name, w.clientConfig.service.path]),
    ).toEqual([
      ['rev.namespace.sidecar-injector.istio.io', '/inject/stable'],
      ['rev.object.sidecar-injector.istio.io', '/inject/stable'],
      ['namespace.sidecar-injector.istio.io', '/inject/stable'],
      ['object.sidecar-injector.istio.io', '/inject/stable'],
    ]);
  });

  test('prunes the webhook configuration of a tag whose target revision is gone, and says why', async () => {
    seedRevision('old');
    seedTag('prod', 'old');
    await reconcile('prod');
    expect(webhookConfiguration('prod')).toBeDefined();
    kube.remove({ ...CPR, name: 'old' });
    expect(tagStatus('prod')).toMatchObject({
      revision: 'old',
      webhookConfiguration: 'istio-revision-tag-prod',
    });
    await reconcile('prod');
    expect(webhookConfiguration('prod')).toBeUndefined();
    expect(tagStatus('prod')?.revision).toBeUndefined();
    expect(tagStatus('prod')?.webhookConfiguration).toBeUndefined();
    expect(reconciled('prod')).toMatchObject({
      status: 'False',
      reason: 'RevisionNotFound',
      message: 'ControlPlaneRevision "old" does not exist; the tag routes nowhere until it does',
    });
    expect(events.events).toContainEqual(
      expect.objectContaining({
        kind: 'RevisionTag',
        name: 'prod',
        type: 'Warning',
        reason: 'RevisionNotFound',
      }),
    );
    expect(events.events).toContainEqual(expect.objectContaining({ reason: 'Deleted' }));
  });

  test('renders nothing for a tag named like a revision that existed first', async () => {
    seedRevision('canary', { version: '1.29.6' }, '2025-01-01T00:00:00Z');
    seedRevision('prod', { version: '1.29.6' }, '2025-01-01T00:00:00Z');
    seedTag('prod', 'canary', '2025-02-01T00:00:00Z');
    await reconcile('prod');
    expect(webhookConfiguration('prod')).toBeUndefined();
    expect(reconciled('prod')).toMatchObject({ status: 'False', reason: 'NameConflict' });
    expect(reconciled('prod')?.message).toContain('ControlPlaneRevision "prod" existed first');
    expect(kube.writesOf('apply')).toEqual([]);
  });

  test('refuses a webhook configuration of the same name that meshrev does not own', async () => {
    seedRevision('canary');
    seedTag('prod', 'canary');
    const [foreign] = kube.seed({ ...MWC, metadata: { name: 'istio-revision-tag-prod' } });
    // Looked at again later: the foreign object's removal raises no event meshrev sees.
    await expect(reconcile('prod')).resolves.toEqual({ requeueAfterMs: 60_000 });
    expect(reconciled('prod')).toMatchObject({ status: 'False', reason: 'WebhookConflict' });
    expect(webhookConfiguration('prod')?.metadata?.resourceVersion).toBe(foreign?.metadata?.resourceVersion);
    expect(kube.writesOf('apply')).toEqual([]);
  });

  test('throws on a failed apply, after reporting ApplyFailed', async () => {
    seedRevision('canary');
    seedTag('prod', 'canary');
    kube.failNext('apply', () => true, new ApiError(503, 'ServiceUnavailable', 'apiserver is shutting down'));
    await expect(reconcile('prod')).rejects.toThrow('apiserver is shutting down');
    expect(tagStatus('prod')?.webhookConfiguration).toBeUndefined();
    expect(reconciled('prod')).toMatchObject({
      status: 'False',
      reason: 'ApplyFailed',
      message: 'apiserver is shutting down',
    });
  });

  test('writes nothing when the tag is in sync', async () => {
    seedRevision('canary');
    seedTag('prod', 'canary');
    await reconcile('prod');
    const writes = kube.writeCount();
    await reconcile('prod');
    await reconcile('prod');
    expect(kube.writeCount()).toBe(writes);
  });

  test('does nothing for a tag that was deleted', async () => {
    await reconcile('gone');
    expect(kube.writeCount()).toBe(0);
  });
});
