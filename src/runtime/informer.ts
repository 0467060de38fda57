// A resilient informer: paginated list into a local store, then a watch from the list's resourceVersion
// that is resumed from the last seen resourceVersion whenever it ends. A 410 Expired means events were
// compacted away, so the informer relists and emits the difference against its store; that way handlers
// see neither lost nor phantom events. Errors restart it with jittered exponential backoff.
import type { Logger } from 'pino';

import { jitter, sleep, systemClock, type Clock } from './clock.js';
import { ApiError, isGone, type KubeClient } from './kube.js';
import type { ResourceType } from './resources.js';
import {
  isRecord,
  objectKey,
  toPlainJson,
  type KubeObject,
  type ObjectList,
  type Status,
  type WatchEvent,
} from './types.js';

export interface ListWatcher<T> {
  list(options: { limit?: number; continue?: string; signal?: AbortSignal }): Promise<ObjectList<T>>;
  watch(
    options: { resourceVersion: string; allowWatchBookmarks: boolean; timeoutSeconds: number },
    onEvent: (event: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void>;
}

export interface KubeListWatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  metadataOnly?: boolean;
}

/** List and watch of one resource through KubeClient; selectors apply to both the list and the watch. */
export function kubeListWatcher<T = KubeObject>(
  client: KubeClient,
  res: ResourceType,
  options: KubeListWatchOptions = {},
): ListWatcher<T> {
  return {
    list: async (page) => {
      const list = await client.list<T>(res, { ...options, ...page });
      if (options.metadataOnly) return list;
      // The API server leaves apiVersion and kind off list items; watch events carry them, so add them
      // here to keep cached objects alike whichever path they came by.
      return {
        ...list,
        items: list.items.map((item) => ({ apiVersion: res.apiVersion, kind: res.kind, ...item })),
      };
    },
    watch: (watchOptions, onEvent, signal) =>
      client.watch<T>(res, { ...options, ...watchOptions }, onEvent, signal),
  };
}

/**
 * The list and watch of a resource whose CRD may not be installed: Istio's own kinds, which meshrev reads but does
 * not install. While the API server answers 404, the list is empty (so the informer is synced and nothing waits for
 * it) and the watch asks again every `retryMs`, quietly, ending after about a minute like a watch that timed out.
 * Once the CRD exists, the watch starts without a resourceVersion, which delivers the existing objects as adds.
 */
export function optionalResource<T>(
  inner: ListWatcher<T>,
  options: { retryMs?: number; clock?: Clock } = {},
): ListWatcher<T> {
  const retryMs = options.retryMs ?? 5_000;
  const clock = options.clock ?? systemClock;
  const absent = (err: unknown): boolean => err instanceof ApiError && err.code === 404;
  return {
    list: async (page) => {
      try {
        return await inner.list(page);
      } catch (err) {
        if (absent(err)) return { items: [], metadata: { resourceVersion: '' } };
        throw err;
      }
    },
    watch: async (watchOptions, onEvent, signal) => {
      const started = clock.now();
      for (;;) {
        try {
          await inner.watch(watchOptions, onEvent, signal);
          return;
        } catch (err) {
          if (!absent(err)) throw err;
        }
        if (signal.aborted || clock.now() - started >= 60_000) return;
        await sleep(clock, retryMs, signal);
      }
    },
  };
}

export interface InformerHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

export type RestartReason = 'expired' | 'error' | 'idle';

export interface InformerOptions<T> {
  /** Names the informer in logs and metrics, e.g. `pods` or `apps/v1/deployments`. */
  resource: string;
  listWatcher: ListWatcher<T>;
  logger?: Logger;
  clock?: Clock;
  pageSize?: number;
  watchTimeoutSeconds?: number;
  /** Restart the watch when neither an event nor a bookmark arrived for this long. */
  idleTimeoutMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
  onRestart?(reason: RestartReason): void;
  /**
   * Reduces each object before it is stored (like client-go's SetTransform): an informer over 50,000
   * pods keeps only the fields its controllers read.
   */
  transform?: (obj: T) => T;
}

class IdleWatchError extends Error {
  constructor(ms: number) {
    super(`no watch event or bookmark for ${ms} ms`);
    this.name = 'IdleWatchError';
  }
}

/** One watch's progress: whether it was healthy decides if the reconnect backoff starts afresh. */
interface WatchRun {
  startedAt: number;
  /** A real event or bookmark arrived (an ERROR event does not count). */
  delivered: boolean;
}

/** A watch that ran this long counts as healthy even without events. */
const healthyWatchMs = 10_000;

function statusFromEventObject(object: unknown): Status {
  return isRecord(object) ? (object as Status) : {};
}

function resourceVersionOf(obj: unknown): string | undefined {
  if (!isRecord(obj) || !isRecord(obj.metadata)) return undefined;
  const rv = obj.metadata.resourceVersion;
  return typeof rv === 'string' && rv !== '' ? rv : undefined;
}

export class Informer<T extends KubeObject = KubeObject> {
  readonly resource: string;
  private readonly listWatcher: ListWatcher<T>;
  private readonly logger: Logger | undefined;
  private readonly clock: Clock;
  private readonly pageSize: number;
  private readonly watchTimeoutSeconds: number;
  private readonly idleTimeoutMs: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly random: () => number;
  private readonly onRestart: ((reason: RestartReason) => void) | undefined;
  private readonly transform: (obj: T) => T;

  private readonly store = new Map<string, T>();
  private readonly handlers = new Set<InformerHandlers<T>>();
  private readonly syncWaiters = new Set<() => void>();
  private readonly stopController = new AbortController();
  private lastResourceVersion = '';
  /** Watch events (bookmarks included) since the last list: a watch that expires without any backs off. */
  private eventsSinceList = 0;
  private synced = false;
  private running: Promise<void> | undefined;

  constructor(options: InformerOptions<T>) {
    this.resource = options.resource;
    this.listWatcher = options.listWatcher;
    this.logger = options.logger?.child({ informer: options.resource });
    this.clock = options.clock ?? systemClock;
    this.pageSize = options.pageSize ?? 500;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? 290;
    this.idleTimeoutMs = options.idleTimeoutMs ?? (this.watchTimeoutSeconds + 60) * 1000;
    this.initialBackoffMs = options.initialBackoffMs ?? 800;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.random = options.random ?? Math.random;
    this.onRestart = options.onRestart;
    this.transform = options.transform ?? ((obj) => obj);
  }

  /** Starts listing and watching; calling it again is a no-op. */
  start(): void {
    if (this.running || this.stopController.signal.aborted) return;
    this.running = this.run();
  }

  /** Stops quietly: no error is logged or thrown for the cancelled watch. */
  async stop(): Promise<void> {
    this.stopController.abort();
    for (const waiter of this.syncWaiters) waiter();
    this.syncWaiters.clear();
    await this.running;
  }

  isStopped(): boolean {
    return this.stopController.signal.aborted;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves true once the first list is in the store, false if `signal` aborts or the informer stops first. */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    if (signal?.aborted || this.isStopped()) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = () => {
        this.syncWaiters.delete(waiter);
        signal?.removeEventListener('abort', waiter);
        resolve(this.synced);
      };
      this.syncWaiters.add(waiter);
      signal?.addEventListener('abort', waiter, { once: true });
    });
  }

  /**
   * Adds handlers; once synced, the current store is replayed to them as adds. Returns a remover.
   * Handlers should only enqueue keys: they run on the informer's path and must not block.
   */
  addHandlers(handlers: InformerHandlers<T>): () => void {
    this.handlers.add(handlers);
    if (this.synced) {
      for (const obj of this.store.values()) this.call(handlers, 'add', () => handlers.onAdd?.(obj));
    }
    return () => this.handlers.delete(handlers);
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  keys(): string[] {
    return [...this.store.keys()];
  }

  size(): number {
    return this.store.size;
  }

  lastSyncResourceVersion(): string {
    return this.lastResourceVersion;
  }

  private async run(): Promise<void> {
    const stopSignal = this.stopController.signal;
    let needList = true;
    let failures = 0;
    let expiredInARow = 0;
    while (!stopSignal.aborted) {
      let watch: WatchRun | undefined;
      try {
        if (needList) {
          await this.relist(stopSignal);
          needList = false;
        }
        watch = { startedAt: this.clock.now(), delivered: false };
        await this.watchOnce(stopSignal, watch);
        // A watch that ends normally is resumed at once; a short one that delivered nothing still counts
        // towards backoff so a server closing watches immediately does not cause a hot loop.
        failures = this.wasHealthy(watch) ? 0 : failures + 1;
        if (failures > 1) await sleep(this.clock, this.backoffDelay(failures - 1), stopSignal);
      } catch (err) {
        if (stopSignal.aborted) break;
        let reason: RestartReason;
        if (isGone(err)) {
          reason = 'expired';
          needList = true;
          this.logger?.info({ resourceVersion: this.lastResourceVersion }, 'watch expired, relisting');
        } else if (err instanceof IdleWatchError) {
          reason = 'idle';
          this.logger?.warn({ err }, 'watch idle, restarting');
        } else {
          reason = 'error';
          this.logger?.warn({ err }, 'list/watch failed, retrying');
        }
        this.reportRestart(reason);
        let wait: number;
        if (reason === 'expired') {
          // A 410 is an answer from a reachable server: relist at once, whatever backoff the connection errors
          // of an outage built up (otherwise recovery waits up to another 30 s after the server is back). Only a
          // watch that expires again before delivering anything since its relist backs off, so a server that
          // keeps answering 410 cannot cause a hot loop.
          failures = 0;
          expiredInARow = this.eventsSinceList > 0 ? 1 : expiredInARow + 1;
          wait = expiredInARow === 1 ? 0 : this.backoffDelay(expiredInARow - 1);
        } else {
          // A watch that was healthy before it broke (a connection reset or proxy kill after minutes of events)
          // starts the count afresh, as client-go resets its backoff after a healthy period; otherwise routine
          // resets would climb to the cap and leave every reconnect blind for 30 s.
          if (watch && this.wasHealthy(watch)) failures = 0;
          failures += 1;
          wait = this.backoffDelay(failures);
        }
        if (wait > 0) await sleep(this.clock, wait, stopSignal);
      }
    }
  }

  private wasHealthy(watch: WatchRun): boolean {
    return watch.delivered || this.clock.now() - watch.startedAt >= healthyWatchMs;
  }

  private backoffDelay(failures: number): number {
    const base = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** Math.max(0, failures - 1));
    return Math.min(this.maxBackoffMs, jitter(base, 0.5, this.random));
  }

  private reportRestart(reason: RestartReason): void {
    try {
      this.onRestart?.(reason);
    } catch {
      // metrics hooks must not break the informer
    }
  }

  private async relist(signal: AbortSignal): Promise<void> {
    const fresh = new Map<string, T>();
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.listWatcher.list({ limit: this.pageSize, continue: continueToken, signal });
      for (const item of page.items) {
        const obj = this.transform(toPlainJson(item));
        fresh.set(objectKey(obj), obj);
      }
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken && !signal.aborted);
    if (signal.aborted) return;
    this.replace(fresh);
    this.lastResourceVersion = resourceVersion;
    this.eventsSinceList = 0;
    if (!this.synced) {
      this.synced = true;
      for (const waiter of [...this.syncWaiters]) waiter();
      this.logger?.debug({ count: fresh.size, resourceVersion }, 'informer synced');
    }
  }

  /** Swaps in a freshly listed state and tells handlers exactly what changed. */
  private replace(fresh: Map<string, T>): void {
    const previous = new Map(this.store);
    this.store.clear();
    for (const [key, obj] of fresh) this.store.set(key, obj);
    for (const [key, obj] of fresh) {
      const old = previous.get(key);
      if (!old) {
        this.emitAdd(obj);
      } else if (resourceVersionOf(old) !== resourceVersionOf(obj)) {
        this.emitUpdate(old, obj);
      }
    }
    for (const [key, old] of previous) {
      if (!fresh.has(key)) this.emitDelete(old);
    }
  }

  /** Records in `run` whether any event (bookmarks included) arrived. */
  private async watchOnce(stopSignal: AbortSignal, run: WatchRun): Promise<void> {
    const watchAbort = new AbortController();
    const signal = AbortSignal.any([stopSignal, watchAbort.signal]);
    let idle: IdleWatchError | undefined;
    let eventError: unknown;
    const watchdog = () =>
      this.clock.setTimer(() => {
        idle = new IdleWatchError(this.idleTimeoutMs);
        watchAbort.abort(idle);
      }, this.idleTimeoutMs);
    let timer = watchdog();
    try {
      await this.listWatcher.watch(
        {
          resourceVersion: this.lastResourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: this.watchTimeoutSeconds,
        },
        (event) => {
          if (signal.aborted) return;
          timer.cancel();
          timer = watchdog();
          try {
            this.handleEvent(event);
            run.delivered = true;
          } catch (err) {
            eventError = err;
            watchAbort.abort(err);
          }
        },
        signal,
      );
    } finally {
      timer.cancel();
    }
    if (stopSignal.aborted) return;
    if (eventError !== undefined) throw eventError;
    if (idle) throw idle;
  }

  private handleEvent(event: WatchEvent<T>): void {
    if (event.type === 'ERROR') {
      throw ApiError.fromStatus(statusFromEventObject(event.object), 500);
    }
    this.eventsSinceList += 1;
    const rv = resourceVersionOf(event.object);
    if (event.type === 'BOOKMARK') {
      if (rv) this.lastResourceVersion = rv;
      return;
    }
    const obj = this.transform(toPlainJson(event.object));
    const key = objectKey(obj);
    const old = this.store.get(key);
    if (event.type === 'DELETED') {
      this.store.delete(key);
      if (old) this.emitDelete(obj);
    } else {
      this.store.set(key, obj);
      if (old) {
        this.emitUpdate(old, obj);
      } else {
        this.emitAdd(obj);
      }
    }
    if (rv) this.lastResourceVersion = rv;
  }

  private emitAdd(obj: T): void {
    for (const handlers of this.handlers) this.call(handlers, 'add', () => handlers.onAdd?.(obj));
  }

  private emitUpdate(oldObj: T, newObj: T): void {
    for (const handlers of this.handlers)
      this.call(handlers, 'update', () => handlers.onUpdate?.(oldObj, newObj));
  }

  private emitDelete(obj: T): void {
    for (const handlers of this.handlers) this.call(handlers, 'delete', () => handlers.onDelete?.(obj));
  }

  private call(_handlers: InformerHandlers<T>, event: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger?.error({ err, event }, 'informer handler threw');
    }
  }
}

/** Where an informer's restarts are counted (the operator's Metrics). */
export interface InformerRestartCounter {
  informerRestartHook(resource: string): (reason: RestartReason) => void;
}

/**
 * An informer over one resource through `client`, named `resource` in its logs and restart metrics; selectors and
 * metadata-only apply to both list and watch, and `transform` slims what it stores.
 */
export function kubeInformer<T extends KubeObject = KubeObject>(
  deps: { client: KubeClient; logger?: Logger; metrics: InformerRestartCounter },
  resource: string,
  type: ResourceType,
  options: KubeListWatchOptions = {},
  transform?: (obj: T) => T,
): Informer<T> {
  return new Informer<T>({
    resource,
    listWatcher: kubeListWatcher<T>(deps.client, type, options),
    ...(deps.logger ? { logger: deps.logger } : {}),
    onRestart: deps.metrics.informerRestartHook(resource),
    ...(transform ? { transform } : {}),
  });
}
