// A keyed workqueue with controller-runtime semantics: bursts of adds for one key collapse into one item
// (dirty set), a key is never handed to two workers at once (processing set), and a key added while it is
// being processed is queued again once that run is done.
import PQueue from 'p-queue';

import { systemClock, type Clock, type TimerHandle } from './clock.js';

export interface RateLimiter {
  /** Delay before `key` may be retried; each call counts as one more failure. */
  when(key: string): number;
  forget(key: string): void;
  numRequeues(key: string): number;
}

/** Per-key exponential backoff: base·2^failures, capped (client-go: 5 ms → 1000 s). */
export class ItemExponentialRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();

  constructor(
    private readonly baseDelayMs = 5,
    private readonly maxDelayMs = 1_000_000,
  ) {}

  when(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const delay = this.baseDelayMs * 2 ** failures;
    return Number.isFinite(delay) ? Math.min(delay, this.maxDelayMs) : this.maxDelayMs;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/** Global token bucket shared by all keys, so a mass failure cannot hammer the API server. */
export class TokenBucketRateLimiter implements RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly qps = 10,
    private readonly burst = 100,
    private readonly clock: Clock = systemClock,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  when(_key: string): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    // Reserve a token even when it is not there yet: the debt is paid by waiting.
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }

  forget(_key: string): void {}

  numRequeues(_key: string): number {
    return 0;
  }
}

export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(key: string): number {
    return Math.max(0, ...this.limiters.map((limiter) => limiter.when(key)));
  }

  forget(key: string): void {
    for (const limiter of this.limiters) limiter.forget(key);
  }

  numRequeues(key: string): number {
    return Math.max(0, ...this.limiters.map((limiter) => limiter.numRequeues(key)));
  }
}

export function defaultControllerRateLimiter(clock: Clock = systemClock): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialRateLimiter(5, 1_000_000),
    new TokenBucketRateLimiter(10, 100, clock),
  );
}

/** Hooks named after controller-runtime's workqueue_* metrics. */
export interface WorkqueueMetrics {
  depth(depth: number): void;
  added(): void;
  queueLatency(seconds: number): void;
  workDuration(seconds: number): void;
  retried(): void;
}

export interface WorkqueueOptions {
  name: string;
  rateLimiter?: RateLimiter;
  clock?: Clock;
  metrics?: WorkqueueMetrics;
}

export class Workqueue {
  readonly name: string;
  private readonly clock: Clock;
  private readonly rateLimiter: RateLimiter;
  private readonly metrics: WorkqueueMetrics | undefined;
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly enqueuedAt = new Map<string, number>();
  private readonly delayed = new Map<string, { readyAt: number; timer: TimerHandle }>();
  private readonly getters: ((key: string | undefined) => void)[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private shuttingDown = false;

  constructor(options: WorkqueueOptions) {
    this.name = options.name;
    this.clock = options.clock ?? systemClock;
    this.rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter(this.clock);
    this.metrics = options.metrics;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    this.metrics?.added();
    // A key being processed goes back on the queue only when its current run is done.
    if (this.processing.has(key)) return;
    this.push(key);
  }

  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.clock.now() + delayMs;
    const pending = this.delayed.get(key);
    // Of several delayed adds for one key, the earliest wins.
    if (pending && pending.readyAt <= readyAt) return;
    pending?.timer.cancel();
    const timer = this.clock.setTimer(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { readyAt, timer });
  }

  addRateLimited(key: string): void {
    if (this.shuttingDown) return;
    this.metrics?.retried();
    this.addAfter(key, this.rateLimiter.when(key));
  }

  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.rateLimiter.numRequeues(key);
  }

  len(): number {
    return this.queue.length;
  }

  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  hasDelayed(key: string): boolean {
    return this.delayed.has(key);
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Next key to work on, marked as processing; undefined once shut down and empty. */
  get(): Promise<string | undefined> {
    const key = this.takeNext();
    if (key !== undefined) return Promise.resolve(key);
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Marks the end of processing `key`; re-queues it if it was added meanwhile (and not dropped by shutdown). */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) this.push(key);
    this.checkDrained();
  }

  /**
   * Hands keys to at most `workers` concurrent runs of `handler` until the queue is shut down and drained.
   * `handler` errors are the caller's business (controllers catch them); here they only end that run.
   */
  async process(handler: (key: string) => Promise<void>, workers: number): Promise<void> {
    const pool = new PQueue({ concurrency: workers });
    let running = 0;
    let slotFreed: (() => void) | undefined;
    for (;;) {
      while (running >= workers) {
        await new Promise<void>((resolve) => (slotFreed = resolve));
      }
      const key = await this.get();
      if (key === undefined) break;
      running += 1;
      void pool.add(async () => {
        const started = this.clock.now();
        try {
          await handler(key);
        } catch {
          // reported by the handler's owner
        } finally {
          this.metrics?.workDuration((this.clock.now() - started) / 1000);
          running -= 1;
          this.done(key);
          slotFreed?.();
          slotFreed = undefined;
        }
      });
    }
    await pool.onIdle();
  }

  /**
   * Stops accepting keys and drops delayed ones. With `drain` (default) keys already queued are still handed
   * out; resolves once nothing is queued or processing.
   */
  shutdown(options: { drain?: boolean } = {}): Promise<void> {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) timer.cancel();
    this.delayed.clear();
    if (options.drain === false) {
      for (const key of this.queue) this.enqueuedAt.delete(key);
      this.queue.length = 0;
      // Dirty keys are the queued ones plus those re-added while their run is in progress; forgetting the latter
      // too keeps done() from queueing them again and handing them out after shutdown.
      this.dirty.clear();
      this.metrics?.depth(0);
    }
    if (this.queue.length === 0) {
      for (const getter of this.getters.splice(0)) getter(undefined);
    }
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve);
      this.checkDrained();
    });
  }

  private push(key: string): void {
    this.queue.push(key);
    this.enqueuedAt.set(key, this.clock.now());
    this.metrics?.depth(this.queue.length);
    const getter = this.getters.shift();
    if (getter) getter(this.takeNext());
  }

  private takeNext(): string | undefined {
    const key = this.queue.shift();
    if (key === undefined) return undefined;
    this.metrics?.depth(this.queue.length);
    const enqueued = this.enqueuedAt.get(key);
    if (enqueued !== undefined) this.metrics?.queueLatency((this.clock.now() - enqueued) / 1000);
    this.enqueuedAt.delete(key);
    this.processing.add(key);
    this.dirty.delete(key);
    return key;
  }

  private checkDrained(): void {
    if (!this.shuttingDown) return;
    if (this.queue.length === 0) {
      for (const getter of this.getters.splice(0)) getter(undefined);
    }
    if (this.queue.length > 0 || this.processing.size > 0) return;
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}
