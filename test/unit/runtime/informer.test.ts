import { ApiError } from '../../../src/runtime/kube.js';
import { Informer, optionalResource, type RestartReason } from '../../../src/runtime/informer.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { FakeClock, flush, waitFor } from './fakes.js';
import { FakeListWatcher, gone, obj } from './fake-source.js';

type Recorded = [string, string, string?];

function setup(options: { idleTimeoutMs?: number; pageSize?: number } = {}) {
  const clock = new FakeClock();
  const source = new FakeListWatcher();
  const restarts: RestartReason[] = [];
  const informer = new Informer({
    resource: 'configmaps',
    listWatcher: source,
    clock,
    random: () => 0,
    idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
    pageSize: options.pageSize ?? 500,
    onRestart: (reason) => restarts.push(reason),
  });
  const events: Recorded[] = [];
  const rv = (o: KubeObject) => o.metadata?.resourceVersion ?? '';
  informer.addHandlers({
    onAdd: (o) => events.push(['add', o.metadata?.name ?? '', rv(o)]),
    onUpdate: (oldObj, newObj) =>
      events.push(['update', newObj.metadata?.name ?? '', `${rv(oldObj)}->${rv(newObj)}`]),
    onDelete: (o) => events.push(['delete', o.metadata?.name ?? '']),
  });
  return { clock, source, informer, events, restarts };
}

async function started(ctx: ReturnType<typeof setup>) {
  ctx.informer.start();
  await ctx.informer.waitForSync();
  await waitFor(() => ctx.source.activeWatch !== undefined, 'watch opened');
  return ctx.source.activeWatch!;
}

describe('Informer', () => {
  let ctx: ReturnType<typeof setup>;
  afterEach(async () => {
    await ctx.informer.stop();
  });

  it('lists every page, syncs, then watches from the list resourceVersion with bookmarks and a timeout', async () => {
    ctx = setup({ pageSize: 2 });
    ctx.source.set(obj('a', '1'), obj('b', '2'), obj('c', '3'), obj('d', '4'), obj('e', '5'));
    ctx.source.resourceVersion = 5;
    expect(ctx.informer.hasSynced()).toBe(false);
    const watch = await started(ctx);
    expect(ctx.informer.hasSynced()).toBe(true);
    expect(ctx.source.listCalls).toBe(3);
    expect(ctx.informer.keys().sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(watch).toMatchObject({ resourceVersion: '5', allowWatchBookmarks: true, timeoutSeconds: 290 });
    expect(ctx.events.map((e) => e[0])).toEqual(['add', 'add', 'add', 'add', 'add']);
  });

  it('applies watch events to its store and hands old and new objects to update handlers', async () => {
    ctx = setup();
    ctx.source.set(obj('a', '1'));
    const watch = await started(ctx);
    watch.emit({ type: 'ADDED', object: obj('b', '6') });
    watch.emit({ type: 'MODIFIED', object: obj('a', '7') });
    watch.emit({ type: 'DELETED', object: obj('b', '8') });
    expect(ctx.events).toEqual([
      ['add', 'a', '1'],
      ['add', 'b', '6'],
      ['update', 'a', '1->7'],
      ['delete', 'b'],
    ]);
    expect(ctx.informer.get('a')?.metadata?.resourceVersion).toBe('7');
    expect(ctx.informer.get('b')).toBeUndefined();
    expect(ctx.informer.lastSyncResourceVersion()).toBe('8');
  });

  it('resumes an ended watch from the last bookmark without relisting', async () => {
    ctx = setup();
    const watch = await started(ctx);
    watch.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '50' } } });
    watch.end();
    await waitFor(() => ctx.source.watchCalls.length === 2, 'second watch');
    expect(ctx.source.watchCalls[1]?.resourceVersion).toBe('50');
    expect(ctx.source.listCalls).toBe(1);
    expect(ctx.restarts).toEqual([]);
    expect(ctx.events).toEqual([]);
  });

  it('relists on 410 Gone and emits only the differences against its store', async () => {
    ctx = setup();
    ctx.source.set(obj('a', '1'), obj('b', '2'), obj('c', '3'));
    const watch = await started(ctx);
    ctx.events.length = 0;
    ctx.source.set(obj('b', '9'), obj('d', '10'));
    ctx.source.remove('c');
    ctx.source.resourceVersion = 10;
    watch.fail(gone());
    await waitFor(() => ctx.source.watchCalls.length === 2, 'watch after relist');
    expect(ctx.source.listCalls).toBe(2);
    expect(ctx.restarts).toEqual(['expired']);
    expect(ctx.events).toEqual([
      ['update', 'b', '2->9'],
      ['add', 'd', '10'],
      ['delete', 'c'],
    ]);
    expect(ctx.source.watchCalls[1]?.resourceVersion).toBe('10');
    expect(ctx.informer.keys().sort()).toEqual(['a', 'b', 'd']);
  });

  it('treats an ERROR event carrying an Expired status like a 410', async () => {
    ctx = setup();
    ctx.source.set(obj('a', '1'));
    const watch = await started(ctx);
    ctx.source.remove('a');
    watch.emit({
      type: 'ERROR',
      object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' } as KubeObject,
    });
    await waitFor(() => ctx.source.listCalls === 2, 'relist');
    await waitFor(() => ctx.source.watchCalls.length === 2, 'new watch');
    expect(ctx.restarts).toEqual(['expired']);
    expect(ctx.events.at(-1)).toEqual(['delete', 'a']);
  });

  it('restarts a failed watch with jittered exponential backoff from the last resourceVersion', async () => {
    ctx = setup();
    ctx.source.resourceVersion = 20;
    const watch = await started(ctx);
    const boom = new ApiError(500, 'InternalError', 'etcd unavailable');
    ctx.source.failNextWatch(boom);
    watch.fail(boom);
    await flush();
    expect(ctx.restarts).toEqual(['error']);
    await ctx.clock.advance(799);
    expect(ctx.source.watchCalls).toHaveLength(1);
    await ctx.clock.advance(1);
    expect(ctx.source.watchCalls).toHaveLength(2);
    expect(ctx.restarts).toEqual(['error', 'error']);
    await ctx.clock.advance(1_599);
    expect(ctx.source.watchCalls).toHaveLength(2);
    await ctx.clock.advance(1);
    expect(ctx.source.watchCalls).toHaveLength(3);
    expect(ctx.source.watchCalls.map((w) => w.resourceVersion)).toEqual(['20', '20', '20']);
    expect(ctx.source.listCalls).toBe(1);
  });

  it('relists at once when a watch resumed after an outage gets 410, however long the backoff had grown', async () => {
    ctx = setup();
    ctx.source.set(obj('a', '1'));
    const watch = await started(ctx);
    for (let i = 0; i < 5; i += 1) ctx.source.failNextWatch(new Error('connection refused'));
    watch.fail(new Error('connection reset'));
    await ctx.clock.advance(0.8e3 + 1.6e3 + 3.2e3 + 6.4e3 + 12.8e3 + 25.6e3);
    expect(ctx.source.watchCalls).toHaveLength(7);
    expect(ctx.source.activeWatch).toBeDefined();
    // Back: the server answers, but the resourceVersion was compacted away meanwhile.
    ctx.source.set(obj('b', '9'));
    ctx.source.remove('a');
    ctx.source.resourceVersion = 9;
    ctx.source.activeWatch?.fail(gone());
    await waitFor(() => ctx.source.listCalls === 2, 'relist without waiting out the backoff');
    await waitFor(() => ctx.source.watchCalls.length === 8, 'watch after the relist');
    expect(ctx.source.watchCalls[7]?.resourceVersion).toBe('9');
    expect(ctx.events.slice(-2)).toEqual([
      ['add', 'b', '9'],
      ['delete', 'a'],
    ]);
  });

  it('backs off when a relisted watch expires again before delivering anything', async () => {
    ctx = setup();
    const watch = await started(ctx);
    watch.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '3' } } });
    watch.fail(gone());
    await waitFor(() => ctx.source.watchCalls.length === 2, 'watch after the first relist');
    ctx.source.activeWatch?.fail(gone());
    await waitFor(() => ctx.restarts.length === 2, 'second expiry');
    await ctx.clock.advance(799);
    expect(ctx.source.listCalls).toBe(2);
    await ctx.clock.advance(1);
    await waitFor(() => ctx.source.listCalls === 3, 'relist after backing off');
  });

  it('caps the backoff at 30 seconds', async () => {
    ctx = setup();
    const watch = await started(ctx);
    for (let i = 0; i < 8; i += 1) ctx.source.failNextWatch(new Error('connection reset'));
    watch.fail(new Error('connection reset'));
    await ctx.clock.advance(0.8e3 + 1.6e3 + 3.2e3 + 6.4e3 + 12.8e3 + 25.6e3);
    const before = ctx.source.watchCalls.length;
    expect(before).toBe(7);
    await ctx.clock.advance(29_999);
    expect(ctx.source.watchCalls).toHaveLength(before);
    await ctx.clock.advance(1);
    expect(ctx.source.watchCalls).toHaveLength(before + 1);
  });

  it('starts the backoff afresh after a watch that delivered events and then broke', async () => {
    ctx = setup();
    await started(ctx);
    for (let i = 0; i < 4; i += 1) {
      const watch = ctx.source.activeWatch!;
      watch.emit({ type: 'ADDED', object: obj(`cm-${i}`, String(10 + i)) });
      watch.fail(new Error('read ECONNRESET'));
      await ctx.clock.advance(799);
      expect(ctx.source.watchCalls).toHaveLength(i + 1);
      await ctx.clock.advance(1);
      expect(ctx.source.watchCalls).toHaveLength(i + 2);
    }
    expect(ctx.restarts).toEqual(['error', 'error', 'error', 'error']);
  });

  it('starts the backoff afresh after a quiet watch that ran for 10 seconds, but not after an ERROR event', async () => {
    ctx = setup();
    await started(ctx);
    for (let i = 0; i < 3; i += 1) {
      await ctx.clock.advance(10_000);
      ctx.source.activeWatch!.fail(new Error('read ECONNRESET'));
      await ctx.clock.advance(800);
      expect(ctx.source.watchCalls).toHaveLength(i + 2);
    }
    // Watches that get nothing but an ERROR event at once are not healthy: the count goes on (1.6 s, 3.2 s).
    const error = { kind: 'Status', code: 500, reason: 'InternalError', message: 'etcd' } as KubeObject;
    ctx.source.activeWatch!.emit({ type: 'ERROR', object: error });
    await ctx.clock.advance(1_599);
    expect(ctx.source.watchCalls).toHaveLength(4);
    await ctx.clock.advance(1);
    expect(ctx.source.watchCalls).toHaveLength(5);
    ctx.source.activeWatch!.emit({ type: 'ERROR', object: error });
    await ctx.clock.advance(3_199);
    expect(ctx.source.watchCalls).toHaveLength(5);
    await ctx.clock.advance(1);
    expect(ctx.source.watchCalls).toHaveLength(6);
  });

  it('retries a failing initial list until it succeeds and only then reports synced', async () => {
    ctx = setup();
    ctx.source.set(obj('a', '1'));
    ctx.source.failNextList(new Error('dial tcp: connection refused'));
    ctx.informer.start();
    await flush();
    expect(ctx.informer.hasSynced()).toBe(false);
    expect(ctx.restarts).toEqual(['error']);
    await ctx.clock.advance(800);
    expect(await ctx.informer.waitForSync()).toBe(true);
    expect(ctx.events).toEqual([['add', 'a', '1']]);
  });

  it('restarts a watch that stays silent past the idle timeout', async () => {
    ctx = setup({ idleTimeoutMs: 10_000 });
    ctx.source.resourceVersion = 7;
    const watch = await started(ctx);
    await ctx.clock.advance(9_000);
    watch.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '8' } } });
    await ctx.clock.advance(9_000);
    expect(ctx.source.watchCalls).toHaveLength(1);
    await ctx.clock.advance(1_000);
    expect(ctx.restarts).toEqual(['idle']);
    await ctx.clock.advance(800);
    expect(ctx.source.watchCalls).toHaveLength(2);
    expect(ctx.source.watchCalls[1]?.resourceVersion).toBe('8');
  });

  it('stops silently: no restart is reported and no further list or watch happens', async () => {
    ctx = setup();
    await started(ctx);
    await ctx.informer.stop();
    await ctx.clock.advance(120_000);
    expect(ctx.restarts).toEqual([]);
    expect(ctx.source.watchCalls).toHaveLength(1);
    expect(ctx.source.listCalls).toBe(1);
  });

  it('replays its store as adds to handlers registered after sync', async () => {
    ctx = setup();
    ctx.source.set(obj('a', '1'), obj('b', '2'));
    await started(ctx);
    const late: string[] = [];
    ctx.informer.addHandlers({ onAdd: (o) => late.push(o.metadata?.name ?? '') });
    expect(late.sort()).toEqual(['a', 'b']);
  });

  it('keeps timestamps as strings even when the source hands out Date objects', async () => {
    ctx = setup();
    const created = new Date('2025-01-01T00:00:00Z');
    ctx.source.set({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'a', resourceVersion: '1', creationTimestamp: created as unknown as string },
    });
    await started(ctx);
    expect(ctx.informer.get('a')?.metadata?.creationTimestamp).toBe('2025-01-01T00:00:00.000Z');
  });

  it('keys namespaced objects as namespace/name', async () => {
    ctx = setup();
    ctx.source.set(obj('a', '1', { metadata: { namespace: 'ns1' } }));
    await started(ctx);
    expect(ctx.informer.keys()).toEqual(['ns1/a']);
  });

  it('answers waitForSync with false when the wait is aborted before the first list', async () => {
    ctx = setup();
    const abort = new AbortController();
    const waiting = ctx.informer.waitForSync(abort.signal);
    abort.abort();
    expect(await waiting).toBe(false);
  });

  it('survives a handler that throws', async () => {
    ctx = setup();
    ctx.informer.addHandlers({
      onAdd: () => {
        throw new Error('handler bug');
      },
    });
    const watch = await started(ctx);
    watch.emit({ type: 'ADDED', object: obj('a', '3') });
    expect(ctx.informer.get('a')).toBeDefined();
    expect(ctx.events).toEqual([['add', 'a', '3']]);
    expect(ctx.restarts).toEqual([]);
  });
});

describe('optionalResource (a kind whose CRD may not be installed)', () => {
  const absent = () => new ApiError(404, 'NotFound', 'the server could not find the requested resource');

  function optionalSetup() {
    const clock = new FakeClock();
    const source = new FakeListWatcher();
    const restarts: RestartReason[] = [];
    const informer = new Informer({
      resource: 'proxyconfigs',
      listWatcher: optionalResource(source, { retryMs: 5_000, clock }),
      clock,
      random: () => 0,
      idleTimeoutMs: 120_000,
      onRestart: (reason) => restarts.push(reason),
    });
    const added: string[] = [];
    informer.addHandlers({ onAdd: (o) => added.push(o.metadata?.name ?? '') });
    return { clock, source, informer, restarts, added };
  }

  let ctx: ReturnType<typeof optionalSetup>;
  afterEach(async () => {
    await ctx.informer.stop();
  });

  it('is synced and empty while the CRD is missing, asks again quietly, and sees the objects once it exists', async () => {
    ctx = optionalSetup();
    ctx.source.failNextList(absent());
    for (let i = 0; i < 3; i++) ctx.source.failNextWatch(absent());
    ctx.source.set(obj('mesh-wide', '7'));
    ctx.informer.start();
    expect(await ctx.informer.waitForSync()).toBe(true);
    expect(ctx.informer.list()).toEqual([]);
    await flush();
    expect(ctx.source.watchCalls).toHaveLength(1);
    await ctx.clock.advance(5_000);
    expect(ctx.source.watchCalls).toHaveLength(2);
    await ctx.clock.advance(10_000);
    // The CRD appeared: the watch starts without a resourceVersion and the API server sends what exists as adds.
    expect(ctx.source.watchCalls).toHaveLength(4);
    const watch = ctx.source.activeWatch!;
    expect(watch.resourceVersion).toBe('');
    watch.emit({ type: 'ADDED', object: obj('mesh-wide', '7') });
    expect(ctx.added).toEqual(['mesh-wide']);
    expect(ctx.informer.keys()).toEqual(['mesh-wide']);
    expect(ctx.restarts).toEqual([]);
  });

  it('ends a watch that found nothing for a minute, like a watch that timed out, and the informer resumes it', async () => {
    ctx = optionalSetup();
    ctx.source.failNextList(absent());
    for (let i = 0; i < 20; i++) ctx.source.failNextWatch(absent());
    ctx.informer.start();
    await ctx.informer.waitForSync();
    await ctx.clock.advance(60_000);
    // 13 attempts in the first call (0 s, 5 s, … 60 s), then the informer opened the next watch at once.
    expect(ctx.source.watchCalls).toHaveLength(14);
    expect(ctx.restarts).toEqual([]);
  });

  it('passes any other error on, so the informer backs off and reports it', async () => {
    ctx = optionalSetup();
    ctx.source.failNextList(new ApiError(403, 'Forbidden', 'proxyconfigs is forbidden'));
    ctx.informer.start();
    await waitFor(() => ctx.restarts.length === 1, 'restart reported');
    expect(ctx.restarts).toEqual(['error']);
    expect(ctx.informer.hasSynced()).toBe(false);
  });
});
