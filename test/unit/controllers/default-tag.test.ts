// The automatic `default` RevisionTag: created once, pointing at the oldest revision, never over a user's
// tag or a revision named default, and a concurrent creation is not an error. "Once" is recorded in the
// marker ConfigMap, so a default tag deleted afterwards stays deleted, across restarts too.
import { loadOperatorConfig } from '../../../src/config.js';
import { MemoryEventRecorder } from '../../../src/controllers/events.js';
import { startControllers } from '../../../src/controllers/setup.js';
import {
  CREATED_BY_ANNOTATION,
  decideDefaultTag,
  DEFAULT_TAG_MARKER,
  defaultTagReconciler,
  defaultTagTarget,
  type DefaultTagDecision,
} from '../../../src/controllers/tag/default-tag.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { ApiError } from '../../../src/runtime/kube.js';
import type { ObjectRef } from '../../../src/runtime/resources.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { eventually, FakeKube, lookup, reconcileContext, silentLogger, syncedInformer } from './fake-kube.js';

const CPR = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'ControlPlaneRevision' };
const TAG = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'RevisionTag' };
const NAMESPACE = 'meshrev-system';
const MARKER = { apiVersion: 'v1', kind: 'ConfigMap', namespace: NAMESPACE, name: DEFAULT_TAG_MARKER };
const DEFAULT = { ...TAG, name: 'default' };

let kube: FakeKube;
let events: MemoryEventRecorder;

beforeEach(() => {
  kube = new FakeKube();
  events = new MemoryEventRecorder();
});

afterEach(() => kube.close());

function revision(name: string, created: string, deleting = false): KubeObject {
  return {
    ...CPR,
    metadata: {
      name,
      creationTimestamp: created,
      ...(deleting ? { deletionTimestamp: '2025-06-01T00:00:00Z' } : {}),
    },
    spec: { version: '1.29.6' },
  } as KubeObject;
}

/** A reconciler as one leader term holds it; a new one is what a restart or a new leader starts with. */
const newReconciler = () =>
  defaultTagReconciler({
    client: kube,
    revisions: lookup(kube, CPR),
    tags: lookup(kube, TAG),
    events,
    fieldManager: 'meshrev',
    namespace: NAMESPACE,
    now: () => new Date('2025-06-01T12:00:00Z'),
  });

const reconcile = () => newReconciler()('default', reconcileContext());

const tagOf = (name = 'default') =>
  kube.find({ ...TAG, name }) as (KubeObject & { spec?: { revision?: string } }) | undefined;
const marker = () => kube.find(MARKER) as (KubeObject & { data?: Record<string, string> }) | undefined;
const tagCreates = () => kube.writesOf('create').filter((w) => w.key.endsWith('/RevisionTag/default'));

describe('defaultTagTarget', () => {
  test.each<{ name: string; revisions: KubeObject[]; expected: string | undefined }>([
    { name: 'no revision: no target', revisions: [], expected: undefined },
    {
      name: 'the oldest revision',
      revisions: [
        revision('b', '2025-02-01T00:00:00Z'),
        revision('a', '2025-03-01T00:00:00Z'),
        revision('c', '2025-01-15T00:00:00Z'),
      ],
      expected: 'c',
    },
    {
      name: 'revisions being deleted are skipped',
      revisions: [revision('old', '2025-01-01T00:00:00Z', true), revision('new', '2025-02-01T00:00:00Z')],
      expected: 'new',
    },
    {
      name: 'equal ages are ordered by name',
      revisions: [revision('zeta', '2025-01-01T00:00:00Z'), revision('alpha', '2025-01-01T00:00:00Z')],
      expected: 'alpha',
    },
  ])('$name', ({ revisions, expected }) => {
    expect(defaultTagTarget(revisions)?.metadata?.name).toBe(expected);
  });
});

const tagObject = (revision: string): KubeObject =>
  ({ ...TAG, metadata: { name: 'default' }, spec: { revision } }) as KubeObject;

describe('decideDefaultTag', () => {
  const a = revision('a', '2025-01-01T00:00:00Z');
  const b = revision('b', '2025-02-01T00:00:00Z');
  const aDeleting = revision('a', '2025-01-01T00:00:00Z', true);
  const namedDefault = revision('default', '2025-03-01T00:00:00Z');
  test.each<{
    name: string;
    revisions: KubeObject[];
    defaultTagExists: boolean;
    markerExists: boolean;
    expected: { action: DefaultTagDecision['action']; target?: string };
  }>([
    {
      name: 'no revision, no marker',
      revisions: [],
      defaultTagExists: false,
      markerExists: false,
      expected: { action: 'none' },
    },
    {
      name: 'the first revision appears: create',
      revisions: [a],
      defaultTagExists: false,
      markerExists: false,
      expected: { action: 'create', target: 'a' },
    },
    {
      name: 'several revisions, no marker: create for the oldest',
      revisions: [b, a],
      defaultTagExists: false,
      markerExists: false,
      expected: { action: 'create', target: 'a' },
    },
    {
      name: 'the tag was deleted after the marker was written: nothing',
      revisions: [a, b],
      defaultTagExists: false,
      markerExists: true,
      expected: { action: 'none' },
    },
    {
      name: 'tag and marker exist: nothing',
      revisions: [a],
      defaultTagExists: true,
      markerExists: true,
      expected: { action: 'none' },
    },
    {
      name: 'a default tag already exists (a user`s, or an earlier release`s): record only',
      revisions: [a],
      defaultTagExists: true,
      markerExists: false,
      expected: { action: 'record', target: 'a' },
    },
    {
      name: 'a revision is named default: record only',
      revisions: [a, namedDefault],
      defaultTagExists: false,
      markerExists: false,
      expected: { action: 'record', target: 'a' },
    },
    {
      name: 'only revisions being deleted, no marker: nothing',
      revisions: [aDeleting],
      defaultTagExists: false,
      markerExists: false,
      expected: { action: 'none' },
    },
    {
      name: 'only revisions being deleted, marker: kept until they are gone',
      revisions: [aDeleting],
      defaultTagExists: false,
      markerExists: true,
      expected: { action: 'none' },
    },
    {
      name: 'no revision left, marker: forget, so the next first revision gets a tag',
      revisions: [],
      defaultTagExists: true,
      markerExists: true,
      expected: { action: 'forget' },
    },
  ])('$name', ({ revisions, defaultTagExists, markerExists, expected }) => {
    const decision = decideDefaultTag({ revisions, defaultTagExists, markerExists });
    expect({
      action: decision.action,
      ...('target' in decision ? { target: decision.target.metadata?.name } : {}),
    }).toEqual(expected);
  });
});

describe('the default tag reconciler', () => {
  test('creates tag default pointing at the oldest revision, marked as created by meshrev, and the marker', async () => {
    kube.seed(revision('newer', '2025-02-01T00:00:00Z'), revision('older', '2025-01-01T00:00:00Z'));
    await reconcile();
    const tag = tagOf();
    expect(tag?.spec).toEqual({ revision: 'older' });
    expect(tag?.metadata?.annotations).toEqual({ [CREATED_BY_ANNOTATION]: 'meshrev-operator' });
    expect(marker()?.data).toEqual({
      revision: 'older',
      outcome: 'created',
      time: '2025-06-01T12:00:00.000Z',
    });
    // the tag first, then the marker: a failure in between leaves a tag the retry records
    expect(kube.writesOf('create').map((w) => w.key)).toEqual([
      'meshrev.dev/v1alpha1/RevisionTag/default',
      `v1/ConfigMap/${NAMESPACE}/${DEFAULT_TAG_MARKER}`,
    ]);
    expect(kube.writesOf('create')[1]?.body).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: DEFAULT_TAG_MARKER,
        namespace: NAMESPACE,
        labels: { 'app.kubernetes.io/name': 'meshrev', 'app.kubernetes.io/part-of': 'meshrev' },
        annotations: { 'meshrev.dev/description': expect.any(String) },
      },
      data: { revision: 'older', outcome: 'created', time: '2025-06-01T12:00:00.000Z' },
    });
    expect(events.events).toEqual([
      expect.objectContaining({
        kind: 'ControlPlaneRevision',
        name: 'older',
        type: 'Normal',
        reason: 'DefaultTagCreated',
      }),
    ]);
  });

  test('does not create the tag again once it is deleted, in this leader term or after a restart', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    const leader = newReconciler();
    await leader('a', reconcileContext());
    expect(tagOf()?.spec).toEqual({ revision: 'a' });

    kube.remove(DEFAULT); // a user, or a GitOps prune
    await leader('default', reconcileContext());
    kube.seed(revision('b', '2025-02-01T00:00:00Z')); // later revisions do not bring it back either
    await leader('b', reconcileContext());
    await newReconciler()('a', reconcileContext()); // a restart, or another replica leading

    expect(tagOf()).toBeUndefined();
    expect(tagCreates()).toHaveLength(1);
    expect(events.events).toHaveLength(1);
  });

  test('within a leader term, the marker once seen is not read again', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    const leader = newReconciler();
    await leader('a', reconcileContext());
    kube.failNext('get', () => true, new ApiError(500, 'InternalError', 'should not be read'));
    await expect(leader('a', reconcileContext())).resolves.toBeUndefined();
  });

  test('never touches a user`s own default tag, and respects its deletion later', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'), revision('b', '2025-02-01T00:00:00Z'), tagObject('b'));
    await reconcile();
    expect(tagOf()?.spec).toEqual({ revision: 'b' });
    expect(kube.writes.map((w) => `${w.verb} ${w.key}`)).toEqual([
      `create v1/ConfigMap/${NAMESPACE}/${DEFAULT_TAG_MARKER}`,
    ]);
    expect(marker()?.data).toMatchObject({ revision: 'a', outcome: 'already-present' });

    kube.remove(DEFAULT);
    await reconcile();
    expect(tagOf()).toBeUndefined();
    expect(tagCreates()).toEqual([]);
    expect(events.events).toEqual([]);
  });

  test('an upgraded operator records the tag an earlier release created, so its deletion is respected', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'), {
      ...tagObject('a'),
      metadata: { name: 'default', annotations: { [CREATED_BY_ANNOTATION]: 'meshrev-operator' } },
    } as KubeObject);
    await reconcile();
    kube.remove(DEFAULT);
    await reconcile();
    expect(tagOf()).toBeUndefined();
    expect(tagCreates()).toEqual([]);
  });

  test('after the last revision is gone, a new first revision gets a tag again', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    const leader = newReconciler();
    await leader('a', reconcileContext());
    kube.remove(DEFAULT);
    kube.remove({ ...CPR, name: 'a' });
    await leader('a', reconcileContext());
    expect(marker()).toBeUndefined();

    kube.seed(revision('fresh', '2025-03-01T00:00:00Z'));
    await leader('fresh', reconcileContext());
    expect(tagOf()?.spec).toEqual({ revision: 'fresh' });
    expect(marker()?.data).toMatchObject({ revision: 'fresh', outcome: 'created' });
  });

  test('keeps the marker while a revision is still being deleted', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    await reconcile();
    kube.remove(DEFAULT);
    kube.edit({ ...CPR, name: 'a' }, (cpr) => {
      cpr.metadata = { ...cpr.metadata, deletionTimestamp: '2025-06-01T00:00:00Z' };
    });
    await reconcile();
    expect(marker()).toBeDefined();
    expect(tagCreates()).toHaveLength(1);
  });

  test.each<{ name: string; objects: KubeObject[]; marker: boolean }>([
    { name: 'there is no revision', objects: [], marker: false },
    {
      name: 'a default tag exists (the user may have moved it)',
      objects: [revision('a', '2025-01-01T00:00:00Z'), tagObject('b')],
      marker: true,
    },
    {
      name: 'a revision is named default',
      objects: [revision('default', '2025-02-01T00:00:00Z'), revision('a', '2025-01-01T00:00:00Z')],
      marker: true,
    },
  ])('creates no tag when $name', async ({ objects, marker: recorded }) => {
    kube.seed(...objects);
    await reconcile();
    expect(tagCreates()).toEqual([]);
    expect(kube.writes.map((w) => w.key)).toEqual(
      recorded ? [`v1/ConfigMap/${NAMESPACE}/${DEFAULT_TAG_MARKER}`] : [],
    );
    expect(events.events).toEqual([]);
  });

  test('leaves istio-injection=enabled to a non-revisioned Istio install it finds, until that install is gone', async () => {
    const istio = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: {
        name: 'istio-sidecar-injector',
        labels: { 'istio.io/rev': 'default', app: 'sidecar-injector' },
      },
    };
    kube.seed(revision('canary', '2025-01-01T00:00:00Z'), istio as KubeObject);
    await reconcile();
    expect(tagOf()).toBeUndefined();
    expect(marker()).toBeUndefined();
    expect(events.events).toContainEqual(
      expect.objectContaining({ name: 'canary', type: 'Warning', reason: 'DefaultTagSkipped' }),
    );
    expect(events.events.at(-1)?.message).toContain('MutatingWebhookConfiguration istio-sidecar-injector');

    kube.remove({ apiVersion: istio.apiVersion, kind: istio.kind, name: istio.metadata.name });
    await reconcile();
    expect(tagOf()?.spec).toEqual({ revision: 'canary' });
  });

  test('tolerates a default tag created meanwhile by someone else, and records it', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    kube.failNext(
      'create',
      (key) => key.endsWith('/RevisionTag/default'),
      new ApiError(409, 'AlreadyExists', 'revisiontags "default" already exists'),
    );
    await expect(reconcile()).resolves.toBeUndefined();
    expect(events.events).toEqual([]);
    expect(marker()?.data).toMatchObject({ outcome: 'already-present' });
  });

  test('a marker write that fails is retried without a second tag', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    kube.failNext(
      'create',
      (key) => key.includes('/ConfigMap/'),
      new ApiError(500, 'InternalError', 'etcdserver: request timed out'),
    );
    const leader = newReconciler();
    await expect(leader('a', reconcileContext())).rejects.toThrow('request timed out');
    expect(tagOf()).toBeDefined();
    await leader('a', reconcileContext());
    expect(marker()).toBeDefined();
    expect(tagCreates()).toHaveLength(1);
    expect(events.events).toHaveLength(1);
  });

  test('passes other failures on for a retry', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    kube.failNext('create', () => true, new ApiError(403, 'Forbidden', 'revisiontags is forbidden'));
    await expect(reconcile()).rejects.toThrow('revisiontags is forbidden');
    expect(marker()).toBeUndefined();
  });
});

describe('the default-tag controller in the leader`s controller set', () => {
  async function leadWith(args: string[]): Promise<() => Promise<void>> {
    const started: { stop(): Promise<void> }[] = [];
    const revisions = await syncedInformer(kube, CPR, started);
    const tags = await syncedInformer(kube, TAG, started);
    const leading = new AbortController();
    const running = startControllers({
      client: kube,
      config: loadOperatorConfig(args, {}),
      logger: silentLogger,
      metrics: new Metrics({ defaultMetrics: false }),
      revisions,
      tags,
      injector: { serviceName: 'meshrev-injector', serviceNamespace: NAMESPACE, port: 443 },
      caBundle: () => undefined,
      signal: leading.signal,
    });
    return async () => {
      leading.abort();
      await running.stop();
      await Promise.all(started.map((s) => s.stop()));
    };
  }

  test('creates the tag and the marker once, and not again after the tag is deleted and a new leader starts', async () => {
    let markerReads = 0;
    const get = kube.get.bind(kube);
    kube.get = ((ref: ObjectRef) => {
      if (ref.kind === 'ConfigMap' && ref.name === DEFAULT_TAG_MARKER) markerReads++;
      return get(ref);
    }) as typeof kube.get;
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    let stop = await leadWith([]);
    await eventually(() => marker() !== undefined, 'the marker');
    expect(tagOf()?.spec).toEqual({ revision: 'a' });
    kube.remove(DEFAULT);
    await stop();

    markerReads = 0;
    stop = await leadWith([]);
    kube.seed(revision('b', '2025-02-01T00:00:00Z'));
    await eventually(() => markerReads > 0, 'the new leader to read the marker');
    await stop(); // waits for the reconcile under way
    expect(tagOf()).toBeUndefined();
    expect(tagCreates()).toHaveLength(1);
  });

  test('--create-default-tag=false creates neither tag nor marker', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    const stop = await leadWith(['--create-default-tag=false']);
    await eventually(
      () => kube.writesOf('applyStatus').some((w) => w.key.endsWith('/ControlPlaneRevision/a')),
      'the revision to be reconciled',
    );
    await stop();
    expect(tagOf()).toBeUndefined();
    expect(marker()).toBeUndefined();
  });
});
