// A controller in the controller-runtime mould: informer events only enqueue keys, a workqueue collapses
// them, and workers call `reconcile(key)`. Errors retry with per-key backoff, success forgets the backoff,
// and `requeueAfterMs` schedules the next look.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';

import { systemClock, type Clock, type TimerHandle } from './clock.js';
import type { InformerHandlers } from './informer.js';
import { isNamespacedKind, apiGroupOf } from './resources.js';
import { objectKey, type KubeObject, type OwnerReference } from './types.js';
import { Workqueue, type RateLimiter, type WorkqueueMetrics } from './workqueue.js';

export interface ReconcileContext {
  reconcileID: string;
  /** Child logger carrying controller, reconcileID and key. */
  logger: Logger;
  /** Aborted when the controller stops; long reconciles should give up. */
  signal: AbortSignal;
  /** Failures of this key since its last success. */
  retries: number;
}

export interface ReconcileResult {
  /** Look again after this long even if nothing changes (e.g. waiting for a rollout or a grace period). */
  requeueAfterMs?: number;
  /** Look again soon, with the per-key backoff but without counting as an error. */
  requeue?: boolean;
}

export type Reconciler = (key: string, ctx: ReconcileContext) => Promise<ReconcileResult | void>;

export type ReconcileOutcome = 'success' | 'error' | 'requeue' | 'requeue_after';

/** Hooks named after controller-runtime's controller_runtime_* metrics. */
export interface ControllerMetrics {
  reconciled(outcome: ReconcileOutcome, seconds: number): void;
  activeWorkers(delta: number): void;
  workqueue?: WorkqueueMetrics;
}

/** What the controller needs of an informer. */
export interface EventSource<T extends KubeObject = KubeObject> {
  readonly resource: string;
  start(): void;
  addHandlers(handlers: InformerHandlers<T>): () => void;
  waitForSync(signal?: AbortSignal): Promise<boolean>;
  keys(): string[];
}

export interface OwnedWatch {
  source: EventSource;
  /** Kind of the controlling owner, e.g. `ControlPlaneRevision`. */
  ownerKind: string;
  /** Restricts the owner's API group (`meshrev.dev/v1alpha1` → group `meshrev.dev`). */
  ownerApiVersion?: string;
  /** Whether the owner lives in the owned object's namespace; looked up in the resource table when absent. */
  ownerNamespaced?: boolean;
}

export interface MappedWatch {
  source: EventSource;
  /** Keys of primary objects affected by a change of `obj`. */
  map(obj: KubeObject): string[];
}

export type ChangeFilter = (oldObj: KubeObject | undefined, newObj: KubeObject) => boolean;

export interface ControllerOptions {
  name: string;
  reconcile: Reconciler;
  primary: EventSource;
  owns?: OwnedWatch[];
  watches?: MappedWatch[];
  /** Decides whether a primary add/update enqueues; e.g. `generationChanged`. Deletes always enqueue. */
  primaryFilter?: ChangeFilter;
  workers?: number;
  logger: Logger;
  metrics?: ControllerMetrics;
  /** Enqueue every primary key this often (0 = never). */
  resyncPeriodMs?: number;
  rateLimiter?: RateLimiter;
  clock?: Clock;
}

/** Like GenerationChangedPredicate: status-only updates do not enqueue. */
export const generationChanged: ChangeFilter = (oldObj, newObj) =>
  oldObj === undefined || oldObj.metadata?.generation !== newObj.metadata?.generation;

/** Keys of the controlling owners of `obj` that have the given kind. */
export function controllerOwnerKeys(
  obj: KubeObject,
  watch: Pick<OwnedWatch, 'ownerKind' | 'ownerApiVersion' | 'ownerNamespaced'>,
): string[] {
  const refs: OwnerReference[] = obj.metadata?.ownerReferences ?? [];
  const keys: string[] = [];
  for (const ref of refs) {
    if (ref.controller !== true || ref.kind !== watch.ownerKind) continue;
    if (watch.ownerApiVersion && apiGroupOf(ref.apiVersion) !== apiGroupOf(watch.ownerApiVersion)) continue;
    const namespaced =
      watch.ownerNamespaced ?? isNamespacedKind({ apiVersion: ref.apiVersion, kind: ref.kind }) ?? true;
    const namespace = obj.metadata?.namespace;
    keys.push(namespaced && namespace ? `${namespace}/${ref.name}` : ref.name);
  }
  return keys;
}

export class Controller {
  readonly name: string;
  readonly queue: Workqueue;
  private readonly options: ControllerOptions;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly stopController = new AbortController();
  private readonly removers: (() => void)[] = [];
  private resyncTimer: TimerHandle | undefined;
  private processing: Promise<void> | undefined;
  private started = false;

  constructor(options: ControllerOptions) {
    this.options = options;
    this.name = options.name;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger.child({ controller: options.name });
    this.queue = new Workqueue({
      name: options.name,
      clock: this.clock,
      rateLimiter: options.rateLimiter,
      metrics: options.metrics?.workqueue,
    });
  }

  private sources(): EventSource[] {
    return [
      this.options.primary,
      ...(this.options.owns ?? []).map((w) => w.source),
      ...(this.options.watches ?? []).map((w) => w.source),
    ];
  }

  private registerHandlers(): void {
    const filter = this.options.primaryFilter;
    const enqueue = (key: string) => this.queue.add(key);
    this.removers.push(
      this.options.primary.addHandlers({
        onAdd: (obj) => {
          if (!filter || filter(undefined, obj)) enqueue(objectKey(obj));
        },
        onUpdate: (oldObj, newObj) => {
          if (!filter || filter(oldObj, newObj)) enqueue(objectKey(newObj));
        },
        onDelete: (obj) => enqueue(objectKey(obj)),
      }),
    );
    const mapped: MappedWatch[] = [
      ...(this.options.owns ?? []).map((owned) => ({
        source: owned.source,
        map: (obj: KubeObject) => controllerOwnerKeys(obj, owned),
      })),
      ...(this.options.watches ?? []),
    ];
    for (const watch of mapped) {
      const enqueueMapped = (obj: KubeObject) => {
        for (const key of watch.map(obj)) enqueue(key);
      };
      this.removers.push(
        watch.source.addHandlers({
          onAdd: enqueueMapped,
          // Both sides: an object that changed owner must wake the old owner too.
          onUpdate: (oldObj, newObj) => {
            enqueueMapped(oldObj);
            enqueueMapped(newObj);
          },
          onDelete: enqueueMapped,
        }),
      );
    }
  }

  /**
   * Starts the informers, waits until all have synced, then starts the workers. Resolves true once workers
   * run, false if `signal` aborted (or stop() was called) before the caches synced.
   */
  async start(signal?: AbortSignal): Promise<boolean> {
    if (this.started) throw new Error(`controller ${this.name} already started`);
    this.started = true;
    const stopSignal = signal
      ? AbortSignal.any([signal, this.stopController.signal])
      : this.stopController.signal;
    signal?.addEventListener('abort', () => void this.stop(), { once: true });

    this.registerHandlers();
    for (const source of this.sources()) source.start();
    this.logger.info('waiting for caches to sync');
    const synced = await Promise.all(this.sources().map((s) => s.waitForSync(stopSignal)));
    if (stopSignal.aborted || synced.includes(false)) return false;

    this.scheduleResync();
    const workers = this.options.workers ?? 1;
    this.processing = this.queue.process((key) => this.reconcileKey(key, stopSignal), workers);
    this.logger.info({ workers }, 'workers started');
    return true;
  }

  /** Stops taking keys, waits for running reconciles, and detaches from the informers. */
  async stop(): Promise<void> {
    if (this.stopController.signal.aborted) {
      await this.processing;
      return;
    }
    this.stopController.abort();
    this.resyncTimer?.cancel();
    for (const remove of this.removers.splice(0)) remove();
    await this.queue.shutdown({ drain: false });
    await this.processing;
    this.logger.info('controller stopped');
  }

  /** Enqueues a key by hand, e.g. from a webhook or a test. */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  private scheduleResync(): void {
    const period = this.options.resyncPeriodMs ?? 0;
    if (period <= 0) return;
    this.resyncTimer = this.clock.setTimer(() => {
      if (this.stopController.signal.aborted) return;
      for (const key of this.options.primary.keys()) this.queue.add(key);
      this.scheduleResync();
    }, period);
  }

  private async reconcileKey(key: string, signal: AbortSignal): Promise<void> {
    const reconcileID = randomUUID();
    const logger = this.logger.child({ reconcileID, key });
    const metrics = this.options.metrics;
    const started = this.clock.now();
    let outcome: ReconcileOutcome = 'success';
    metrics?.activeWorkers(1);
    try {
      const result = await this.options.reconcile(key, {
        reconcileID,
        logger,
        signal,
        retries: this.queue.numRequeues(key),
      });
      if (result?.requeueAfterMs !== undefined && result.requeueAfterMs > 0) {
        outcome = 'requeue_after';
        this.queue.forget(key);
        this.queue.addAfter(key, result.requeueAfterMs);
      } else if (result?.requeue) {
        outcome = 'requeue';
        this.queue.addRateLimited(key);
      } else {
        this.queue.forget(key);
      }
    } catch (err) {
      outcome = 'error';
      if (!signal.aborted) {
        logger.error({ err, retries: this.queue.numRequeues(key) }, 'reconciler error');
        this.queue.addRateLimited(key);
      }
    } finally {
      metrics?.activeWorkers(-1);
      const durationMs = this.clock.now() - started;
      metrics?.reconciled(outcome, durationMs / 1000);
      logger.debug({ outcome, durationMs }, 'reconciled');
    }
  }
}
