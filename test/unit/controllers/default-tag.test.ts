// The automatic `default` RevisionTag: created once, pointing at the oldest revision, never over a user's
// tag or a revision named default, and a concurrent creation is not an error.
import { MemoryEventRecorder } from '../../../src/controllers/events.js';
import {
  CREATED_BY_ANNOTATION,
  defaultTagReconciler,
  defaultTagTarget,
} from '../../../src/controllers/tag/default-tag.js';
import { ApiError } from '../../../src/runtime/kube.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { FakeKube, lookup, reconcileContext } from './fake-kube.js';

const CPR = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'ControlPlaneRevision' };
const TAG = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'RevisionTag' };

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

const reconcile = () =>
  defaultTagReconciler({
    client: kube,
    revisions: lookup(kube, CPR),
    tags: lookup(kube, TAG),
    events,
    fieldManager: 'meshrev',
  })('default', reconcileContext());

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

describe('the default tag reconciler', () => {
  test('creates tag default pointing at the oldest revision, marked as created by meshrev', async () => {
    kube.seed(revision('newer', '2025-02-01T00:00:00Z'), revision('older', '2025-01-01T00:00:00Z'));
    await reconcile();
    const tag = kube.find({ ...TAG, name: 'default' }) as
      (KubeObject & { spec?: { revision?: string } }) | undefined;
    expect(tag?.spec).toEqual({ revision: 'older' });
    expect(tag?.metadata?.annotations).toEqual({ [CREATED_BY_ANNOTATION]: 'meshrev-operator' });
    expect(kube.writesOf('create')).toHaveLength(1);
    expect(events.events).toEqual([
      expect.objectContaining({
        kind: 'ControlPlaneRevision',
        name: 'older',
        type: 'Normal',
        reason: 'DefaultTagCreated',
      }),
    ]);
  });

  test.each<{ name: string; objects: KubeObject[] }>([
    { name: 'there is no revision', objects: [] },
    {
      name: 'a default tag exists (the user may have moved it)',
      objects: [
        revision('a', '2025-01-01T00:00:00Z'),
        { ...TAG, metadata: { name: 'default' }, spec: { revision: 'b' } } as KubeObject,
      ],
    },
    {
      name: 'a revision is named default',
      objects: [revision('default', '2025-02-01T00:00:00Z'), revision('a', '2025-01-01T00:00:00Z')],
    },
  ])('creates nothing when $name', async ({ objects }) => {
    kube.seed(...objects);
    await reconcile();
    expect(kube.writeCount()).toBe(0);
    expect(events.events).toEqual([]);
  });

  test('tolerates a default tag created meanwhile by someone else', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    kube.failNext(
      'create',
      () => true,
      new ApiError(409, 'AlreadyExists', 'revisiontags "default" already exists'),
    );
    await expect(reconcile()).resolves.toBeUndefined();
    expect(events.events).toEqual([]);
  });

  test('passes other failures on for a retry', async () => {
    kube.seed(revision('a', '2025-01-01T00:00:00Z'));
    kube.failNext('create', () => true, new ApiError(403, 'Forbidden', 'revisiontags is forbidden'));
    await expect(reconcile()).rejects.toThrow('revisiontags is forbidden');
  });
});
