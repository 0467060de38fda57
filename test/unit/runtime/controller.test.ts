import { Writable } from 'node:stream';

import { Metrics } from '../../../src/observability/metrics.js';
import { createLogger } from '../../../src/observability/logger.js';
import {
  Controller,
  controllerOwnerKeys,
  generationChanged,
  type ControllerOptions,
  type ReconcileContext,
  type ReconcileResult,
} from '../../../src/runtime/controller.js';
import { Informer } from '../../../src/runtime/informer.js';
import type { KubeObject, OwnerReference } from '../../../src/runtime/types.js';
import { ItemExponentialRateLimiter } from '../../../src/runtime/workqueue.js';
import { deferred, FakeClock, flush, waitFor } from './fakes.js';
import { FakeListWatcher, obj } from './fake-source.js';

function owned(name: string, namespace: string | undefined, owners: Partial<OwnerReference>[]): KubeObject {
  return obj(name, '1', {
    metadata: {
      ...(namespace ? { namespace } : {}),
      ownerReferences: owners.map((o) => ({
        apiVersion: 'meshrev.dev/v1alpha1',
        kind: 'ControlPlaneRevision',
        name: 'asm-1',
        uid: 'u1',
        ...o,
      })),
    },
  });
}

describe('controllerOwnerKeys', () => {
  const cpr = { ownerKind: 'ControlPlaneRevision', ownerApiVersion: 'meshrev.dev/v1alpha1' };
  it.each([
    [
      'maps a controller reference to a cluster-scoped owner to its name',
      owned('x', 'istio-system', [{ controller: true }]),
      cpr,
      ['asm-1'],
    ],
    [
      'ignores owner references that are not the controller',
      owned('x', 'istio-system', [{ controller: false }]),
      cpr,
      [],
    ],
    [
      'ignores controllers of another kind',
      owned('x', 'ns', [{ controller: true, kind: 'RevisionTag' }]),
      cpr,
      [],
    ],
    [
      'ignores controllers of the same kind in another group',
      owned('x', 'ns', [{ controller: true, apiVersion: 'mesh.cloud.google.com/v1beta1' }]),
      cpr,
      [],
    ],
    [
      'maps a namespaced owner to namespace/name in the owned object namespace',
      owned('pod-1', 'apps', [
        { controller: true, apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-123' },
      ]),
      { ownerKind: 'ReplicaSet' },
      ['apps/web-123'],
    ],
  ])('%s', (_name, object, watch, expected) => {
    expect(controllerOwnerKeys(object, watch)).toEqual(expected);
  });
});

describe('generationChanged', () => {
  it('passes adds and spec changes but not status-only updates', () => {
    const v1 = obj('a', '1', { metadata: { generation: 1 } });
    const v1status = obj('a', '2', { metadata: { generation: 1 } });
    const v2 = obj('a', '3', { metadata: { generation: 2 } });
    expect(generationChanged(undefined, v1)).toBe(true);
    expect(generationChanged(v1, v1status)).toBe(false);
    expect(generationChanged(v1status, v2)).toBe(true);
  });
});

class LogCollector extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    for (const line of chunk.toString().split('\n')) if (line.trim()) this.lines.push(JSON.parse(line));
    done();
  }
}

interface Harness {
  clock: FakeClock;
  primarySource: FakeListWatcher;
  ownedSource: FakeListWatcher;
  controller: Controller;
  calls: { key: string; ctx: ReconcileContext }[];
  logs: LogCollector;
  metrics: Metrics;
  informers: Informer[];
}

function harness(
  reconcile: (key: string, ctx: ReconcileContext) => Promise<ReconcileResult | void> = async () => {},
  extra: Partial<ControllerOptions> = {},
): Harness {
  const clock = new FakeClock();
  const primarySource = new FakeListWatcher();
  const ownedSource = new FakeListWatcher();
  const informerOptions = { clock, random: () => 0 };
  const primary = new Informer({
    resource: 'controlplanerevisions',
    listWatcher: primarySource,
    ...informerOptions,
  });
  const ownedInformer = new Informer({
    resource: 'deployments',
    listWatcher: ownedSource,
    ...informerOptions,
  });
  const logs = new LogCollector();
  const metrics = new Metrics({ defaultMetrics: false });
  const calls: Harness['calls'] = [];
  const controller = new Controller({
    name: 'revision',
    primary,
    owns: [
      { source: ownedInformer, ownerKind: 'ControlPlaneRevision', ownerApiVersion: 'meshrev.dev/v1alpha1' },
    ],
    reconcile: async (key, ctx) => {
      calls.push({ key, ctx });
      ctx.logger.info('reconciling');
      return reconcile(key, ctx);
    },
    logger: createLogger({ component: 'test', level: 'debug', destination: logs }),
    metrics: metrics.controller('revision'),
    clock,
    rateLimiter: new ItemExponentialRateLimiter(5, 1_000_000),
    ...extra,
  });
  return {
    clock,
    primarySource,
    ownedSource,
    controller,
    calls,
    logs,
    metrics,
    informers: [primary, ownedInformer],
  };
}

describe('Controller', () => {
  let h: Harness;
  afterEach(async () => {
    await h.controller.stop();
    await Promise.all(h.informers.map((i) => i.stop()));
  });

  it('starts workers only after every informer has synced, then reconciles each primary object', async () => {
    h = harness();
    h.primarySource.set(obj('asm-1', '1'), obj('asm-2', '2'));
    h.ownedSource.failNextList(new Error('connection refused'));
    let startedWorkers: boolean | undefined;
    void h.controller.start().then((ok) => (startedWorkers = ok));
    await flush();
    expect(startedWorkers).toBeUndefined();
    expect(h.calls).toEqual([]);
    await h.clock.advance(800);
    await waitFor(() => h.calls.length === 2, 'both revisions reconciled');
    expect(startedWorkers).toBe(true);
    expect(h.calls.map((c) => c.key).sort()).toEqual(['asm-1', 'asm-2']);
  });

  it('reconciles the controlling owner when an owned object changes', async () => {
    h = harness();
    h.primarySource.set(obj('asm-1', '1'));
    await h.controller.start();
    await waitFor(() => h.calls.length === 1, 'initial reconcile');
    h.ownedSource.activeWatch?.emit({
      type: 'MODIFIED',
      object: owned('istiod-asm-1', 'istio-system', [{ controller: true }]),
    });
    await waitFor(() => h.calls.length === 2, 'owner reconciled again');
    expect(h.calls[1]?.key).toBe('asm-1');
  });

  it('enqueues keys from a mapping function for watched kinds', async () => {
    const tagSource = new FakeListWatcher();
    const clock = new FakeClock();
    const tags = new Informer({ resource: 'revisiontags', listWatcher: tagSource, clock });
    h = harness(undefined, {
      watches: [
        {
          source: tags,
          map: (o) => {
            const target = (o as { spec?: { revision?: string } }).spec?.revision;
            return target ? [target] : [];
          },
        },
      ],
    });
    h.informers.push(tags);
    await h.controller.start();
    tagSource.activeWatch?.emit({
      type: 'ADDED',
      object: { ...obj('default', '4'), spec: { revision: 'asm-9' } } as KubeObject,
    });
    await waitFor(() => h.calls.length === 1, 'mapped key reconciled');
    expect(h.calls[0]?.key).toBe('asm-9');
  });

  it('retries a failing reconcile with growing per-key backoff and counts the errors', async () => {
    let failures = 2;
    h = harness(async () => {
      if (failures > 0) {
        failures -= 1;
        throw new Error('apply failed');
      }
    });
    h.primarySource.set(obj('asm-1', '1'));
    await h.controller.start();
    await waitFor(() => h.calls.length === 1, 'first attempt');
    await h.clock.advance(4);
    expect(h.calls).toHaveLength(1);
    await h.clock.advance(1);
    await waitFor(() => h.calls.length === 2, 'retry after 5 ms');
    expect(h.calls[1]?.ctx.retries).toBe(1);
    await h.clock.advance(9);
    expect(h.calls).toHaveLength(2);
    await h.clock.advance(1);
    await waitFor(() => h.calls.length === 3, 'retry after 10 ms');
    await flush();
    expect(h.controller.queue.numRequeues('asm-1')).toBe(0);
    const text = await h.metrics.expose();
    expect(text).toContain('controller_runtime_reconcile_errors_total{controller="revision"} 2');
    expect(text).toContain('controller_runtime_reconcile_total{controller="revision",result="error"} 2');
    expect(text).toContain('controller_runtime_reconcile_total{controller="revision",result="success"} 1');
    const errorLine = h.logs.lines.find((l) => l.msg === 'reconciler error');
    expect(errorLine).toMatchObject({
      controller: 'revision',
      key: 'asm-1',
      err: { message: 'apply failed' },
    });
  });

  it('reconciles again after requeueAfterMs without counting an error', async () => {
    h = harness(async () => ({ requeueAfterMs: 30_000 }));
    h.primarySource.set(obj('asm-1', '1'));
    await h.controller.start();
    await waitFor(() => h.calls.length === 1, 'first reconcile');
    await h.clock.advance(29_999);
    expect(h.calls).toHaveLength(1);
    await h.clock.advance(1);
    await waitFor(() => h.calls.length === 2, 'requeued reconcile');
    const text = await h.metrics.expose();
    expect(text).toContain(
      'controller_runtime_reconcile_total{controller="revision",result="requeue_after"} 2',
    );
    expect(text).not.toContain('result="error"} 1');
  });

  it('enqueues every primary key on each resync period', async () => {
    h = harness(undefined, { resyncPeriodMs: 60_000 });
    h.primarySource.set(obj('asm-1', '1'), obj('asm-2', '2'));
    await h.controller.start();
    await waitFor(() => h.calls.length === 2, 'initial reconciles');
    await h.clock.advance(60_000);
    await waitFor(() => h.calls.length === 4, 'resync reconciles');
    await h.clock.advance(60_000);
    await waitFor(() => h.calls.length === 6, 'second resync');
  });

  it('gives every reconcile its own reconcileID and puts it on each of its log lines', async () => {
    h = harness();
    h.primarySource.set(obj('asm-1', '1'), obj('asm-2', '2'));
    await h.controller.start();
    await waitFor(() => h.calls.length === 2, 'reconciles');
    const ids = h.calls.map((c) => c.ctx.reconcileID);
    expect(new Set(ids).size).toBe(2);
    const lines = h.logs.lines.filter((l) => l.msg === 'reconciling');
    expect(lines.map((l) => [l.reconcileID, l.key, l.controller]).sort()).toEqual(
      h.calls.map((c) => [c.ctx.reconcileID, c.key, 'revision']).sort(),
    );
  });

  it('does not reconcile for status-only updates when filtered by generation', async () => {
    h = harness(undefined, { primaryFilter: generationChanged });
    h.primarySource.set(obj('asm-1', '1', { metadata: { generation: 1 } }));
    await h.controller.start();
    await waitFor(() => h.calls.length === 1, 'initial reconcile');
    h.primarySource.activeWatch?.emit({
      type: 'MODIFIED',
      object: obj('asm-1', '2', { metadata: { generation: 1 } }),
    });
    h.primarySource.activeWatch?.emit({
      type: 'MODIFIED',
      object: obj('asm-1', '3', { metadata: { generation: 2 } }),
    });
    await waitFor(() => h.calls.length === 2, 'spec change reconciled');
    await flush();
    expect(h.calls).toHaveLength(2);
  });

  it('reconciles a deleted primary object so it can clean up', async () => {
    h = harness();
    h.primarySource.set(obj('asm-1', '1'));
    await h.controller.start();
    await waitFor(() => h.calls.length === 1, 'initial reconcile');
    h.primarySource.activeWatch?.emit({ type: 'DELETED', object: obj('asm-1', '2') });
    await waitFor(() => h.calls.length === 2, 'reconcile after delete');
  });

  it('on stop, aborts the reconcile signal, waits for the running reconcile and takes no more keys', async () => {
    const gate = deferred();
    let sawAbort = false;
    h = harness(async (_key, ctx) => {
      ctx.signal.addEventListener('abort', () => (sawAbort = true));
      await gate.promise;
    });
    h.primarySource.set(obj('asm-1', '1'), obj('asm-2', '2'));
    await h.controller.start();
    await waitFor(() => h.calls.length === 1, 'first reconcile running');
    let stopped = false;
    const stopping = h.controller.stop().then(() => (stopped = true));
    await flush();
    expect(sawAbort).toBe(true);
    expect(stopped).toBe(false);
    gate.resolve();
    await stopping;
    expect(h.calls).toHaveLength(1);
  });
});
