import { formatDuration, parseCommandArgs, parseDuration } from '../../../src/cli/args.js';
import { formatTable } from '../../../src/cli/output.js';
import {
  currentSetting,
  decodeSetting,
  encodeSetting,
  type InjectionSetting,
  planRelabel,
} from '../../../src/cli/relabel.js';
import {
  owningWorkloadId,
  progressLine,
  progressOf,
  replicaSetOwners,
  restartPatch,
  rfc3339,
  rolloutState,
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
