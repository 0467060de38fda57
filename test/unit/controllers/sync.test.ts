// The drift/hash logic that keeps steady state at zero writes: when an owned object must be applied,
// and how a desired object is compared with what kube-apiserver stored.
import {
  applyReason,
  canonicalJson,
  DESIRED_HASH_ANNOTATION,
  desiredHash,
  firstDifference,
  isControlledBy,
  isSubset,
  liveObjectKey,
  quantityValue,
  withDesiredHash,
} from '../../../src/controllers/sync.js';
import type { DesiredObject } from '../../../src/controllers/common/objects.js';
import type { KubeObject } from '../../../src/runtime/types.js';

function desired(extra: Record<string, unknown> = {}, annotations?: Record<string, string>): DesiredObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'istiod-a',
      namespace: 'istio-system',
      labels: { app: 'istiod' },
      ...(annotations ? { annotations } : {}),
      ownerReferences: [
        {
          apiVersion: 'meshrev.dev/v1alpha1',
          kind: 'ControlPlaneRevision',
          name: 'a',
          uid: 'u1',
          controller: true,
        },
      ],
    },
    spec: {
      replicas: 1,
      template: {
        spec: {
          containers: [
            {
              name: 'discovery',
              image: 'docker.io/istio/pilot:1.29.6',
              resources: { requests: { cpu: '500m', memory: '2048Mi' } },
            },
          ],
        },
      },
    },
    ...extra,
  };
}

/** What kube-apiserver returns for an applied object: no apiVersion/kind (list item), defaults added. */
function stored(obj: DesiredObject, edit: (o: Record<string, unknown>) => void = () => {}): KubeObject {
  const { apiVersion: _v, kind: _k, ...rest } = structuredClone(obj);
  const live = {
    ...rest,
    metadata: { ...rest.metadata, uid: 'x', resourceVersion: '7', generation: 1 },
  } as Record<string, unknown>;
  edit(live);
  return live as KubeObject;
}

type Spec = { template: { spec: { containers: Record<string, unknown>[] } }; [k: string]: unknown };
const specOf = (o: Record<string, unknown>): Spec => o.spec as Spec;

describe('canonicalJson and desiredHash', () => {
  test('equal objects hash equally whatever the order of their keys', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe(canonicalJson({ a: [{ c: 3, d: 2 }], b: 1 }));
    expect(desiredHash(desired())).toBe(desiredHash(structuredClone(desired())));
  });

  test('undefined fields are left out, so an optional field left unset does not change the hash', () => {
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
    expect(desiredHash(desired({ extra: undefined }))).toBe(desiredHash(desired()));
  });

  test('a changed field changes the hash, and withDesiredHash records it in an annotation', () => {
    const changed = desired({ spec: { replicas: 2 } });
    expect(desiredHash(changed)).not.toBe(desiredHash(desired()));
    const hashed = withDesiredHash(desired({}, { keep: 'me' }));
    expect(hashed.metadata.annotations).toEqual({
      keep: 'me',
      [DESIRED_HASH_ANNOTATION]: desiredHash(desired({}, { keep: 'me' })),
    });
  });
});

describe('applyReason', () => {
  const want = withDesiredHash(desired());
  const cases: { name: string; live: KubeObject | undefined; expected: ReturnType<typeof applyReason> }[] = [
    { name: 'an object that does not exist is created', live: undefined, expected: 'create' },
    {
      name: 'a stored object with the same hash and fields needs nothing',
      live: stored(want),
      expected: undefined,
    },
    {
      name: 'fields kube-apiserver defaults or other managers add are ignored',
      live: stored(want, (o) => {
        specOf(o).strategy = { type: 'RollingUpdate' };
        specOf(o).template.spec.containers[0]!.terminationMessagePath = '/dev/termination-log';
        (o.metadata as Record<string, unknown>).managedFields = [{ manager: 'kubectl' }];
      }),
      expected: undefined,
    },
    {
      name: 'a re-serialised quantity (2048Mi stored as 2Gi) is not drift',
      live: stored(want, (o) => {
        specOf(o).template.spec.containers[0]!.resources = { requests: { cpu: '0.5', memory: '2Gi' } };
      }),
      expected: undefined,
    },
    {
      name: 'a stored object from an older desired state (another hash) is changed',
      live: stored(withDesiredHash(desired({ spec: { replicas: 3 } }))),
      expected: 'changed',
    },
    {
      name: 'a stored object without the hash annotation (created before meshrev set it) is changed',
      live: stored(desired()),
      expected: 'changed',
    },
    {
      name: 'a hand-edited image is drift',
      live: stored(want, (o) => {
        specOf(o).template.spec.containers[0]!.image = 'evil:latest';
      }),
      expected: 'drift',
    },
    {
      name: 'a removed desired label is drift',
      live: stored(want, (o) => {
        (o.metadata as { labels: Record<string, string> }).labels = {};
      }),
      expected: 'drift',
    },
  ];
  test.each(cases)('$name', ({ live, expected }) => {
    expect(applyReason(want, live)).toBe(expected);
  });
});

describe('isSubset and firstDifference', () => {
  const cases: { name: string; desired: unknown; live: unknown; difference: string | undefined }[] = [
    {
      name: 'equal scalars',
      desired: { a: 1, b: 'x', c: true },
      live: { a: 1, b: 'x', c: true },
      difference: undefined,
    },
    {
      name: 'a different scalar names its path',
      desired: { a: { b: 1 } },
      live: { a: { b: 2 } },
      difference: '.a.b',
    },
    {
      name: 'a missing field names its path',
      desired: { a: { b: 'x' } },
      live: { a: {} },
      difference: '.a.b',
    },
    { name: 'a missing object at the root', desired: { a: 1 }, live: undefined, difference: '.' },
    {
      name: 'undefined desired values are not compared',
      desired: { a: undefined },
      live: {},
      difference: undefined,
    },
    // The API server omits zero values (Go omitempty), so they match an absent field.
    {
      name: 'an empty string matches an absent field',
      desired: { value: '' },
      live: {},
      difference: undefined,
    },
    { name: 'zero matches an absent field', desired: { n: 0 }, live: {}, difference: undefined },
    { name: 'false matches an absent field', desired: { b: false }, live: {}, difference: undefined },
    { name: 'an empty map matches an absent field', desired: { m: {} }, live: {}, difference: undefined },
    { name: 'an empty list matches an absent field', desired: { l: [] }, live: {}, difference: undefined },
    { name: 'null matches an absent field', desired: { x: null }, live: {}, difference: undefined },
    {
      name: 'a zero value does not match a different stored value',
      desired: { n: 0 },
      live: { n: 3 },
      difference: '.n',
    },
    {
      name: 'a non-zero value does not match an absent field',
      desired: { n: 1 },
      live: {},
      difference: '.n',
    },
    {
      name: 'quantities compare by value: 1000m = 1',
      desired: { cpu: '1000m' },
      live: { cpu: '1' },
      difference: undefined,
    },
    {
      name: 'quantities compare by value: 1Gi = 1024Mi',
      desired: { m: '1Gi' },
      live: { m: '1024Mi' },
      difference: undefined,
    },
    {
      name: 'quantities compare by value: 1e3 = 1k',
      desired: { q: '1e3' },
      live: { q: '1k' },
      difference: undefined,
    },
    { name: 'different quantities differ', desired: { m: '1Gi' }, live: { m: '1G' }, difference: '.m' },
    {
      name: 'a non-quantity string never equals another string',
      desired: { s: 'abc' },
      live: { s: 'abd' },
      difference: '.s',
    },
    { name: 'a number does not equal its string', desired: { n: 1 }, live: { n: '1' }, difference: '.n' },
    {
      name: 'named lists match by name whatever the order',
      desired: {
        env: [
          { name: 'A', value: '1' },
          { name: 'B', value: '2' },
        ],
      },
      live: {
        env: [
          { name: 'B', value: '2' },
          { name: 'A', value: '1' },
        ],
      },
      difference: undefined,
    },
    {
      name: 'foreign items in a named list (added by another manager) are ignored',
      desired: { containers: [{ name: 'discovery', image: 'i' }] },
      live: {
        containers: [
          { name: 'discovery', image: 'i' },
          { name: 'sidecar', image: 'other' },
        ],
      },
      difference: undefined,
    },
    {
      name: 'a missing named item names the item',
      desired: { containers: [{ name: 'discovery', image: 'i' }] },
      live: { containers: [{ name: 'other', image: 'i' }] },
      difference: '.containers[discovery]',
    },
    {
      name: 'a differing field of a named item names the item and the field',
      desired: { env: [{ name: 'REVISION', value: 'a' }] },
      live: { env: [{ name: 'REVISION', value: 'b' }] },
      difference: '.env[REVISION].value',
    },
    {
      name: 'lists without names compare by index',
      desired: { args: ['discovery', '--log'] },
      live: { args: ['discovery', '--log'] },
      difference: undefined,
    },
    {
      name: 'lists without names differ in order by index',
      desired: { args: ['a', 'b'] },
      live: { args: ['b', 'a'] },
      difference: '.args[0]',
    },
    {
      name: 'lists without names must have the same length (an extra item is a change)',
      desired: { args: ['a'] },
      live: { args: ['a', 'b'] },
      difference: '.args.length',
    },
    {
      name: 'a list with a duplicated name falls back to comparing by index',
      desired: {
        l: [
          { name: 'x', v: 1 },
          { name: 'x', v: 2 },
        ],
      },
      live: {
        l: [
          { name: 'x', v: 2 },
          { name: 'x', v: 1 },
        ],
      },
      difference: '.l[0].v',
    },
    {
      name: 'a list where an object is stored is a difference',
      desired: { a: [1] },
      live: { a: { 0: 1 } },
      difference: '.a',
    },
    {
      name: 'an object where a list is stored is a difference',
      desired: { a: { b: 1 } },
      live: { a: [1] },
      difference: '.a',
    },
    {
      name: 'an object where a scalar is stored is a difference',
      desired: { a: { b: 1 } },
      live: { a: 'x' },
      difference: '.a',
    },
  ];
  test.each(cases)('$name', ({ desired: want, live, difference }) => {
    expect(firstDifference(want, live)).toBe(difference);
    expect(isSubset(want, live)).toBe(difference === undefined);
  });
});

describe('quantityValue', () => {
  test.each([
    ['500m', 0.5],
    ['2', 2],
    ['1.5', 1.5],
    ['.5', 0.5],
    ['2k', 2000],
    ['1Ki', 1024],
    ['2Gi', 2 * 2 ** 30],
    ['1e3', 1000],
    ['1E-3', 0.001],
    ['+4M', 4e6],
  ])('%s is %d', (text, value) => {
    expect(quantityValue(text)).toBeCloseTo(value, 9);
  });

  test.each(['abc', '1.2.3', 'Mi', '1Xi', ''])('%j is not a quantity', (text) => {
    expect(quantityValue(text)).toBeUndefined();
  });
});

describe('ownership and keys', () => {
  const owned: KubeObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: 'istio-a',
      namespace: 'istio-system',
      ownerReferences: [
        { apiVersion: 'x/v1', kind: 'Other', name: 'o', uid: 'other' },
        {
          apiVersion: 'meshrev.dev/v1alpha1',
          kind: 'ControlPlaneRevision',
          name: 'a',
          uid: 'u1',
          controller: true,
        },
      ],
    },
  };

  test('an object is controlled only by the owner named in its controller reference', () => {
    expect(isControlledBy(owned, 'u1')).toBe(true);
    expect(isControlledBy(owned, 'other')).toBe(false);
    expect(isControlledBy(owned, undefined)).toBe(false);
    expect(isControlledBy({ metadata: { name: 'x' } }, 'u1')).toBe(false);
  });

  test('live keys match the keys of desired objects, with or without a namespace', () => {
    expect(liveObjectKey(owned)).toBe('v1/ConfigMap/istio-system/istio-a');
    expect(
      liveObjectKey({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name: 'w' },
      }),
    ).toBe('admissionregistration.k8s.io/v1/MutatingWebhookConfiguration/w');
  });
});
