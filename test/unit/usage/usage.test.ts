import {
  computeUsage,
  type PodInput,
  revisionUsageCounts,
  type UsageInput,
} from '../../../src/controllers/usage/usage.js';

function pod(
  namespace: string,
  name: string,
  injectedBy?: string,
  labels?: Record<string, string>,
): PodInput {
  return {
    namespace,
    name,
    ...(labels === undefined ? {} : { labels }),
    ...(injectedBy === undefined ? {} : { annotations: { 'istio.io/rev': injectedBy } }),
  };
}

function usageOf(input: Partial<UsageInput>) {
  return computeUsage({ namespaces: [], pods: [], revisions: [], tags: [], ...input });
}

describe('computeUsage', () => {
  test('a revision nothing refers to is not in use and gives no reasons', () => {
    const usage = usageOf({ revisions: ['asm-1233-2'] });
    expect(usage.revisions['asm-1233-2']).toEqual({
      namespaces: [],
      tags: [],
      pods: 0,
      stalePods: 0,
      inUse: false,
      reasons: [],
    });
    expect(usage.namespaces).toEqual([]);
  });

  test('pods injected by a revision their namespace no longer selects are stale and keep it in use', () => {
    const usage = usageOf({
      revisions: ['old', 'new'],
      namespaces: [{ name: 'shop', labels: { 'istio.io/rev': 'new' } }],
      pods: [pod('shop', 'a', 'old'), pod('shop', 'b', 'old'), pod('shop', 'c', 'new')],
    });
    expect(usage.revisions.old).toMatchObject({ namespaces: [], pods: 2, stalePods: 2, inUse: true });
    expect(usage.revisions.old?.reasons).toEqual([
      '2 pods injected by it',
      '2 of them run where another revision is now selected (restart to move)',
    ]);
    expect(usage.revisions.new).toMatchObject({ namespaces: ['shop'], pods: 1, stalePods: 0, inUse: true });
    expect(usage.namespaces).toEqual([
      {
        name: 'shop',
        via: 'istio.io/rev',
        label: 'istio.io/rev=new',
        target: 'new',
        targetKind: 'revision',
        resolvedRevision: 'new',
        pods: 3,
        podsByRevision: { new: 1, old: 2 },
        uninjectedPods: 0,
        stalePods: 2,
      },
    ]);
  });

  test('a tag keeps its revision in use and namespaces selecting the tag count for both', () => {
    const usage = usageOf({
      revisions: ['asm-1234-1'],
      tags: [{ name: 'prod', revision: 'asm-1234-1' }],
      namespaces: [{ name: 'shop', labels: { 'istio.io/rev': 'prod' } }],
      pods: [pod('shop', 'web', 'asm-1234-1')],
    });
    expect(usage.revisions['asm-1234-1']).toEqual({
      namespaces: ['shop'],
      tags: ['prod'],
      pods: 1,
      stalePods: 0,
      inUse: true,
      reasons: [
        'tag "prod" points at it',
        'namespace "shop" selects it via istio.io/rev=prod (tag)',
        '1 pod injected by it',
      ],
    });
    expect(usage.tags.prod).toEqual({ revision: 'asm-1234-1', namespaces: ['shop'], pods: 1, inUse: true });
  });

  test('a tag only points at a revision: with no namespace or pod selecting it, the tag is not in use', () => {
    const usage = usageOf({ revisions: ['r1'], tags: [{ name: 'canary', revision: 'r1' }] });
    expect(usage.tags.canary).toEqual({ revision: 'r1', namespaces: [], pods: 0, inUse: false });
    expect(usage.revisions.r1).toMatchObject({ inUse: true, reasons: ['tag "canary" points at it'] });
  });

  test('istio-injection=enabled namespaces use the default tag and its revision', () => {
    const usage = usageOf({
      revisions: ['r1', 'r2'],
      tags: [{ name: 'default', revision: 'r2' }],
      namespaces: [{ name: 'legacy', labels: { 'istio-injection': 'enabled' } }],
      pods: [pod('legacy', 'web', 'r1')],
    });
    expect(usage.revisions.r2?.namespaces).toEqual(['legacy']);
    expect(usage.revisions.r2?.reasons).toContain(
      'namespace "legacy" selects it via istio-injection=enabled (default tag)',
    );
    expect(usage.tags.default?.namespaces).toEqual(['legacy']);
    expect(usage.revisions.r1).toMatchObject({ pods: 1, stalePods: 1 });
  });

  test("with enableNamespacesByDefault on the default tag's revision, unlabelled namespaces use it, system ones do not", () => {
    const nameLabel = (name: string) => ({ 'kubernetes.io/metadata.name': name });
    const world = {
      revisions: ['r1', 'r2'],
      tags: [{ name: 'default', revision: 'r2' }],
      namespaces: [
        { name: 'apps', labels: nameLabel('apps') },
        { name: 'kube-system', labels: nameLabel('kube-system') },
        { name: 'pinned', labels: { ...nameLabel('pinned'), 'istio.io/rev': 'r1' } },
      ],
      pods: [
        pod('apps', 'web', 'r1'),
        pod('apps', 'opted-out', undefined, { 'sidecar.istio.io/inject': 'false' }),
      ],
    };
    const usage = usageOf({ ...world, autoInjectingRevisions: ['r2'] });
    expect(usage.revisions.r2?.namespaces).toEqual(['apps']);
    expect(usage.revisions.r2?.reasons).toContain(
      'namespace "apps" selects it via no injection label (default tag with enableNamespacesByDefault)',
    );
    expect(usage.tags.default?.namespaces).toEqual(['apps']);
    expect(usage.revisions.r1).toMatchObject({ namespaces: ['pinned'], pods: 1, stalePods: 1 });
    expect(usage.namespaces.map((ns) => [ns.name, ns.via, ns.resolvedRevision])).toEqual([
      ['apps', 'auto', 'r2'],
      ['pinned', 'istio.io/rev', 'r1'],
    ]);

    // Set on a revision that does not serve the default selectors, it changes nothing.
    const idle = usageOf({ ...world, autoInjectingRevisions: ['r1'] });
    expect(idle.revisions.r2?.namespaces).toEqual([]);
    expect(idle.revisions.r1).toMatchObject({ pods: 1, stalePods: 0 });
  });

  test('a disabled namespace selects nothing and its injected pods are counted but not stale', () => {
    const usage = usageOf({
      revisions: ['r1'],
      namespaces: [{ name: 'batch', labels: { 'istio-injection': 'disabled', 'istio.io/rev': 'r1' } }],
      pods: [pod('batch', 'job', 'r1', { 'istio.io/rev': 'r1' }), pod('batch', 'plain')],
    });
    expect(usage.revisions.r1).toMatchObject({ namespaces: [], pods: 1, stalePods: 0, inUse: true });
    expect(usage.namespaces).toEqual([
      {
        name: 'batch',
        via: 'disabled',
        label: 'istio-injection=disabled',
        pods: 2,
        podsByRevision: { r1: 1 },
        uninjectedPods: 1,
        stalePods: 0,
      },
    ]);
  });

  test('pods opting in by label in unlabelled namespaces are counted, and become stale when their tag moves', () => {
    const usage = usageOf({
      revisions: ['r1', 'r2'],
      tags: [{ name: 'prod', revision: 'r2' }],
      namespaces: [{ name: 'team-a' }, { name: 'quiet' }],
      pods: [
        pod('team-a', 'by-tag', 'r1', { 'istio.io/rev': 'prod' }),
        pod('team-a', 'by-revision', 'r1', { 'istio.io/rev': 'r1' }),
      ],
    });
    expect(usage.revisions.r1).toMatchObject({ namespaces: [], pods: 2, stalePods: 1, inUse: true });
    expect(usage.tags.prod).toMatchObject({ namespaces: [], pods: 1, inUse: true });
    expect(usage.namespaces.map((ns) => [ns.name, ns.via, ns.stalePods])).toEqual([['team-a', 'none', 1]]);
  });

  test('the sidecar status annotation identifies the injecting revision when istio.io/rev is missing', () => {
    const usage = usageOf({
      revisions: ['r1'],
      pods: [
        {
          namespace: 'ns',
          name: 'old-style',
          annotations: {
            'sidecar.istio.io/status': JSON.stringify({ revision: 'r1', containers: ['istio-proxy'] }),
          },
        },
      ],
    });
    expect(usage.revisions.r1?.pods).toBe(1);
  });

  test('pods of revisions meshrev does not manage are reported apart', () => {
    const usage = usageOf({
      revisions: ['r1'],
      namespaces: [{ name: 'shop', labels: { 'istio.io/rev': 'r1' } }],
      pods: [pod('shop', 'a', 'default'), pod('shop', 'b', 'default')],
    });
    expect(usage.unmanagedRevisions).toEqual({ default: 2 });
    expect(usage.revisions.r1).toMatchObject({ pods: 0, namespaces: ['shop'] });
    expect(usage.namespaces[0]).toMatchObject({ podsByRevision: { default: 2 }, stalePods: 2 });
  });

  test('a pod whose namespace has not been seen yet counts as in an unlabelled namespace', () => {
    const usage = usageOf({ revisions: ['r1'], pods: [pod('new-ns', 'a', 'r1')] });
    expect(usage.revisions.r1?.pods).toBe(1);
    expect(usage.namespaces.map((ns) => ns.name)).toEqual(['new-ns']);
  });

  test('reasons name the first namespaces and summarise the rest', () => {
    const namespaces = Array.from({ length: 13 }, (_, i) => ({
      name: `ns-${String(i).padStart(2, '0')}`,
      labels: { 'istio.io/rev': 'r1' },
    }));
    const usage = usageOf({ revisions: ['r1'], namespaces });
    expect(usage.revisions.r1?.namespaces).toHaveLength(13);
    expect(usage.revisions.r1?.reasons).toHaveLength(11);
    expect(usage.revisions.r1?.reasons.at(-1)).toBe('3 more namespaces select it');
  });

  test('revisionUsageCounts gives the counts a revision status publishes, zero for unknown revisions', () => {
    const usage = usageOf({
      revisions: ['r1'],
      tags: [{ name: 'prod', revision: 'r1' }],
      namespaces: [{ name: 'a', labels: { 'istio.io/rev': 'prod' } }],
      pods: [pod('a', 'p', 'r1')],
    });
    expect(revisionUsageCounts(usage, 'r1')).toEqual({
      namespaces: 1,
      pods: 1,
      stalePods: 0,
      tags: ['prod'],
    });
    expect(revisionUsageCounts(usage, 'unknown')).toEqual({ namespaces: 0, pods: 0, stalePods: 0, tags: [] });
  });

  test("counts every pod of 5,000 namespaces and 50,000 pods (its speed is the scale benchmark's to measure)", () => {
    const revisions = ['r1', 'r2', 'r3'];
    const namespaces = Array.from({ length: 5_000 }, (_, i) => ({
      name: `ns-${i}`,
      labels: (i % 3 === 0
        ? { 'istio-injection': 'enabled' }
        : { 'istio.io/rev': i % 3 === 1 ? 'prod' : 'r3' }) as Record<string, string>,
    }));
    const pods = Array.from({ length: 50_000 }, (_, i) =>
      pod(`ns-${i % 5_000}`, `pod-${i}`, revisions[i % 3], { app: `app-${i % 7}` }),
    );
    const usage = computeUsage({
      namespaces,
      pods,
      revisions,
      tags: [
        { name: 'default', revision: 'r1' },
        { name: 'prod', revision: 'r2' },
      ],
    });
    const total = Object.values(usage.revisions).reduce((sum, use) => sum + use.pods, 0);
    expect(total).toBe(50_000);
    expect(usage.namespaces).toHaveLength(5_000);
  });
});
