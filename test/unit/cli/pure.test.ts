import { formatDuration, parseCommandArgs, parseDuration } from '../../../src/cli/args.js';
import { readinessProblem, summariseRevision } from '../../../src/cli/cluster.js';
import { injectionWorld, resolveNamespace } from '../../../src/controllers/usage/selection.js';
import { formatTable } from '../../../src/cli/output.js';
import {
  currentSetting,
  decodeSetting,
  encodeSetting,
  type InjectionSetting,
  planRelabel,
} from '../../../src/cli/relabel.js';
import {
  expectedRevision,
  injectionView,
  optsOut,
  owningWorkloadId,
  placements,
  progressLine,
  progressOf,
  replicaSetOwners,
  restartPatch,
  rfc3339,
  restartLimit,
  rolloutState,
  workloadOf,
} from '../../../src/cli/rollout.js';
import type { KubeObject } from '../../../src/runtime/types.js';

describe('parseDuration', () => {
  test.each([
    ['5m', 300_000],
    ['90s', 90_000],
    ['1h30m', 5_400_000],
    ['250ms', 250],
    ['1.5m', 90_000],
    ['45', 45_000],
  ])('reads %s as %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(['', 'soon', '5 minutes', '-1m', 'm5'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  test('formats whole units the way they are usually written', () => {
    expect([300_000, 90_000, 7_200_000, 1_500].map(formatDuration)).toEqual(['5m', '90s', '2h', '1500ms']);
  });
});

describe('parseCommandArgs', () => {
  test('collects the connection flags, the output format and positionals', () => {
    const parsed = parseCommandArgs([
      'shop',
      '--kubeconfig',
      '/tmp/kc',
      '--context=kind',
      '-o',
      'yaml',
      'cart',
    ]);
    expect(parsed).toEqual({
      ok: true,
      common: { connection: { kubeconfig: '/tmp/kc', context: 'kind' }, output: 'yaml', help: false },
      values: { kubeconfig: '/tmp/kc', context: 'kind', output: 'yaml' },
      positionals: ['shop', 'cart'],
    });
  });

  test('defaults to table output and understands -h', () => {
    const parsed = parseCommandArgs(['-h']);
    expect(parsed.ok && parsed.common).toEqual({ connection: {}, output: 'table', help: true });
  });

  test('reports unknown flags and formats as errors', () => {
    expect(parseCommandArgs(['--nope'])).toMatchObject({ ok: false });
    expect(parseCommandArgs(['-o', 'wide'])).toEqual({
      ok: false,
      error: 'unknown output format "wide" (use one of: table, json, yaml)',
    });
  });

  test('accepts the options a command declares', () => {
    const parsed = parseCommandArgs(['--to', 'prod', '--restart'], {
      to: { type: 'string' },
      restart: { type: 'boolean' },
    });
    expect(parsed.ok && parsed.values).toMatchObject({ to: 'prod', restart: true });
  });
});

describe('formatTable', () => {
  test('pads every column to its widest cell and trims trailing blanks', () => {
    expect(
      formatTable(
        ['A', 'LONGER'],
        [
          ['wide-cell', 'x'],
          ['b', ''],
        ],
      ),
    ).toBe(['A           LONGER', 'wide-cell   x', 'b'].join('\n'));
  });
});

describe('recording the previous injection label', () => {
  test.each<[Record<string, string>, InjectionSetting, string]>([
    [{ 'istio.io/rev': 'asm-1233-2' }, { kind: 'revision', value: 'asm-1233-2' }, 'asm-1233-2'],
    [{ 'istio-injection': 'enabled' }, { kind: 'injection', value: 'enabled' }, 'istio-injection=enabled'],
    [
      { 'istio-injection': 'enabled', 'istio.io/rev': 'canary' },
      { kind: 'injection', value: 'enabled' },
      'istio-injection=enabled',
    ],
    [{ 'istio-injection': 'disabled' }, { kind: 'injection', value: 'disabled' }, 'istio-injection=disabled'],
    [{ team: 'a' }, { kind: 'none' }, ''],
  ])('labels %j are recorded as %j and read back unchanged', (labels, setting, recorded) => {
    expect(currentSetting(labels)).toEqual(setting);
    expect(encodeSetting(setting)).toBe(recorded);
    expect(decodeSetting(recorded)).toEqual(setting);
  });

  test('a namespace already on the target gets no patch, so its way back is kept', () => {
    const plan = planRelabel(
      {
        name: 'shop',
        labels: { 'istio.io/rev': 'prod' },
        annotations: { 'meshrev.dev/previous-revision': 'old' },
      },
      { kind: 'revision', value: 'prod' },
    );
    expect(plan.patch).toBeUndefined();
  });

  test('istio-injection=enabled with a stray istio.io/rev is cleaned when rolling back to it', () => {
    const plan = planRelabel(
      { name: 'shop', labels: { 'istio-injection': 'enabled', 'istio.io/rev': 'x' }, annotations: {} },
      { kind: 'injection', value: 'enabled' },
    );
    expect(plan.patch?.metadata.labels).toEqual({ 'istio-injection': 'enabled', 'istio.io/rev': null });
    expect(plan.labelsAfter).toEqual({ 'istio-injection': 'enabled' });
  });
});

describe('restarts', () => {
  test('the restart patch carries an RFC 3339 timestamp without fractions, as kubectl writes it', () => {
    const now = new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678));
    expect(rfc3339(now)).toBe('2025-01-02T03:04:05Z');
    expect(restartPatch(now)).toEqual({
      spec: {
        template: {
          metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': '2025-01-02T03:04:05Z' } },
        },
      },
    });
  });

  test.each<[string, 'Deployment' | 'StatefulSet' | 'DaemonSet', unknown, boolean]>([
    [
      'a Deployment whose controller has not seen the new generation',
      'Deployment',
      {
        metadata: { generation: 2 },
        spec: { replicas: 2 },
        status: { observedGeneration: 1, updatedReplicas: 2, replicas: 2, availableReplicas: 2 },
      },
      false,
    ],
    [
      'a Deployment with old replicas still terminating',
      'Deployment',
      {
        metadata: { generation: 2 },
        spec: { replicas: 2 },
        status: { observedGeneration: 2, updatedReplicas: 2, replicas: 3, availableReplicas: 2 },
      },
      false,
    ],
    [
      'a Deployment whose updated replicas are all available',
      'Deployment',
      {
        metadata: { generation: 2 },
        spec: { replicas: 2 },
        status: { observedGeneration: 2, updatedReplicas: 2, replicas: 2, availableReplicas: 2 },
      },
      true,
    ],
    [
      'a StatefulSet whose update revision is not current yet',
      'StatefulSet',
      {
        metadata: { generation: 3 },
        spec: { replicas: 2 },
        status: {
          observedGeneration: 3,
          readyReplicas: 2,
          updatedReplicas: 2,
          currentRevision: 'a',
          updateRevision: 'b',
        },
      },
      false,
    ],
    [
      'a StatefulSet rolled out completely',
      'StatefulSet',
      {
        metadata: { generation: 3 },
        spec: { replicas: 2 },
        status: {
          observedGeneration: 3,
          readyReplicas: 2,
          updatedReplicas: 2,
          currentRevision: 'b',
          updateRevision: 'b',
        },
      },
      true,
    ],
    [
      'a DaemonSet with nodes still to update',
      'DaemonSet',
      {
        metadata: { generation: 2 },
        status: {
          observedGeneration: 2,
          desiredNumberScheduled: 3,
          updatedNumberScheduled: 2,
          numberAvailable: 3,
        },
      },
      false,
    ],
    [
      'a DaemonSet updated and available everywhere',
      'DaemonSet',
      {
        metadata: { generation: 2 },
        status: {
          observedGeneration: 2,
          desiredNumberScheduled: 3,
          updatedNumberScheduled: 3,
          numberAvailable: 3,
        },
      },
      true,
    ],
  ])('rollout of %s is done: %s', (_name, kind, object, done) => {
    expect(rolloutState(kind, object).done).toBe(done);
  });

  test('pods are attributed to their Deployment through the ReplicaSet, and directly to StatefulSets', () => {
    const owners = replicaSetOwners([
      {
        metadata: {
          name: 'web-abc',
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: '1', controller: true },
          ],
        },
      },
    ]);
    const podOwnedBy = (kind: string, name: string): KubeObject => ({
      metadata: {
        name: 'p',
        ownerReferences: [{ apiVersion: 'apps/v1', kind, name, uid: '2', controller: true }],
      },
    });
    expect(owningWorkloadId(podOwnedBy('ReplicaSet', 'web-abc'), owners)).toBe('deployment/web');
    expect(owningWorkloadId(podOwnedBy('StatefulSet', 'db'), owners)).toBe('statefulset/db');
    expect(owningWorkloadId(podOwnedBy('Job', 'migrate'), owners)).toBeUndefined();
    expect(owningWorkloadId(podOwnedBy('ReplicaSet', 'orphan-rs'), owners)).toBeUndefined();
  });

  test('progress counts pods on their expected revision', () => {
    const progress = progressOf('shop', 'asm-1234-1', [
      { name: 'a', current: 'asm-1234-1', expected: 'asm-1234-1' },
      { name: 'b', current: 'asm-1233-2', expected: 'asm-1234-1' },
      { name: 'c', expected: 'asm-1234-1' },
    ]);
    expect(progressLine(progress)).toBe('shop: 1/3 pods on asm-1234-1');
    expect(progress.left.map((pod) => pod.name)).toEqual(['b', 'c']);
    expect(progressLine(progressOf('off', undefined, [{ name: 'a' }]))).toBe(
      'off: 1/1 pods without a sidecar',
    );
  });
});

describe('what a new pod would run', () => {
  const world = injectionWorld(['asm-1234-1'], [{ name: 'prod', revision: 'asm-1234-1' }]);
  const onProd = resolveNamespace({ 'istio.io/rev': 'prod' }, world);
  const podIn = (
    namespace: string,
    labels: Record<string, string> = {},
    annotations: Record<string, string> = {},
  ): KubeObject => ({ metadata: { name: 'p', namespace, labels, annotations } });

  test.each<[string, Record<string, string>, Record<string, string>, boolean]>([
    ['the label says false', { 'sidecar.istio.io/inject': 'false' }, {}, true],
    ['the annotation says false and there is no label', {}, { 'sidecar.istio.io/inject': 'false' }, true],
    [
      'the label says true, which wins over the annotation',
      { 'sidecar.istio.io/inject': 'true' },
      { 'sidecar.istio.io/inject': 'false' },
      false,
    ],
    [
      'any label wins over the annotation',
      { 'sidecar.istio.io/inject': 'maybe' },
      { 'sidecar.istio.io/inject': 'false' },
      false,
    ],
    ['nothing is set', {}, {}, false],
  ])('opts out when %s: %s', (_name, labels, annotations, out) => {
    expect(optsOut(labels, annotations)).toBe(out);
    const view = injectionView(world, []);
    expect(expectedRevision(podIn('shop', labels, annotations), onProd, view)).toBe(
      out ? undefined : 'asm-1234-1',
    );
  });

  test('pods on the host network and pods in ignored namespaces get no sidecar, whatever selects them', () => {
    const view = injectionView(world, []);
    expect(expectedRevision(podIn('shop'), onProd, view)).toBe('asm-1234-1');
    expect(expectedRevision(podIn('shop'), onProd, view, true)).toBeUndefined();
    for (const ns of ['kube-system', 'kube-public']) {
      expect(expectedRevision(podIn(ns), onProd, view)).toBeUndefined();
    }
  });

  test("the revision's injection policy and neverInjectSelector decide, as its injector does", () => {
    const revision = summariseRevision({
      metadata: { name: 'asm-1234-1' },
      spec: {
        injection: {
          policy: 'disabled',
          neverInjectSelector: [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['legacy'] }] }],
          alwaysInjectSelector: [{ matchLabels: { app: 'web' } }],
        },
      },
    });
    expect(revision?.injectionPolicy).toEqual({
      policy: 'disabled',
      neverInjectSelector: [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['legacy'] }] }],
      alwaysInjectSelector: [{ matchLabels: { app: 'web' } }],
    });
    const view = injectionView(world, revision === undefined ? [] : [revision]);
    expect(expectedRevision(podIn('shop', { app: 'api' }), onProd, view)).toBeUndefined();
    expect(expectedRevision(podIn('shop', { app: 'web' }), onProd, view)).toBe('asm-1234-1');
    expect(
      expectedRevision(podIn('shop', { app: 'web', 'sidecar.istio.io/inject': 'true' }), onProd, view),
    ).toBe('asm-1234-1');
    expect(summariseRevision({ metadata: { name: 'plain' }, spec: {} })?.injectionPolicy).toBeUndefined();
  });

  test('pods are expected on the host network when the workload that owns them is', () => {
    const pods: KubeObject[] = [
      {
        metadata: {
          name: 'agent-x',
          namespace: 'shop',
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: '1', controller: true },
          ],
        },
      },
    ];
    const view = injectionView(world, []);
    expect(placements(pods, onProd, view, new Map())[0]?.expected).toBe('asm-1234-1');
    expect(
      placements(pods, onProd, view, new Map(), new Set(['daemonset/agent']))[0]?.expected,
    ).toBeUndefined();
  });
});

describe('workloads a restart does not fully move', () => {
  const statefulSet = (updateStrategy: unknown, template: unknown = {}) =>
    workloadOf('StatefulSet', { metadata: { name: 'db' }, spec: { updateStrategy, template } });

  test('reads the partition of a rolling update, and host networking from the pod template', () => {
    expect(statefulSet({ type: 'RollingUpdate', rollingUpdate: { partition: 2 } })?.partition).toBe(2);
    expect(statefulSet({ rollingUpdate: { partition: 2 } })?.partition).toBe(2);
    expect(statefulSet({ type: 'OnDelete', rollingUpdate: { partition: 2 } })?.partition).toBe(0);
    expect(statefulSet({})?.partition).toBe(0);
    expect(statefulSet({}, { spec: { hostNetwork: true } })?.hostNetwork).toBe(true);
    expect(statefulSet({})?.hostNetwork).toBe(false);
  });

  test('says what keeps pods where they are and what to do', () => {
    const rerun = 'meshrev migrate shop --to prod --restart';
    const partitioned = statefulSet({ rollingUpdate: { partition: 1 } });
    const plain = statefulSet({});
    const onDelete = statefulSet({ type: 'OnDelete' });
    if (partitioned === undefined || plain === undefined || onDelete === undefined)
      throw new Error('no workload');
    expect(restartLimit(plain, 'shop', rerun)).toBeUndefined();
    expect(restartLimit(partitioned, 'shop', rerun)).toContain('its rolling update has partition 1');
    expect(restartLimit(onDelete, 'shop', rerun)).toContain('OnDelete');
    expect(
      restartLimit({ ...plain, kind: 'Deployment', id: 'deployment/web', paused: true }, 'shop', rerun),
    ).toBe(`it is paused: run kubectl rollout resume deployment/web -n shop, then ${rerun}`);
  });
});

describe('target readiness', () => {
  const revisions = [
    { name: 'ready', ready: 'True' },
    { name: 'broken', ready: 'False', readyMessage: 'istiod has no ready pod' },
    { name: 'new' },
  ];

  test('only a revision whose Ready condition is True is fit to move to', () => {
    expect(readinessProblem('ready', revisions)).toBeUndefined();
    expect(readinessProblem('broken', revisions)).toBe(
      'revision broken is not Ready (Ready=False: istiod has no ready pod)',
    );
    expect(readinessProblem('new', revisions)).toBe('revision new has not reported a Ready condition yet');
    expect(readinessProblem('missing', revisions)).toBeUndefined();
  });
});
