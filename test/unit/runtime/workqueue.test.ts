import {
  ItemExponentialRateLimiter,
  MaxOfRateLimiter,
  TokenBucketRateLimiter,
  Workqueue,
  type WorkqueueMetrics,
} from '../../../src/runtime/workqueue.js';
import { deferred, FakeClock, flush, waitFor } from './fakes.js';

function queueWithClock(clock = new FakeClock()) {
  return {
    clock,
    queue: new Workqueue({ name: 'test', clock, rateLimiter: new ItemExponentialRateLimiter(5, 1_000_000) }),
  };
}

describe('Workqueue', () => {
  it('collapses repeated adds of one key into a single item', async () => {
    const { queue } = queueWithClock();
    queue.add('a');
    queue.add('b');
    queue.add('a');
    queue.add('a');
    expect(queue.len()).toBe(2);
    expect(await queue.get()).toBe('a');
    expect(await queue.get()).toBe('b');
    expect(queue.len()).toBe(0);
  });

  it('does not hand out a key that is being processed, and re-queues it once when the run is done', async () => {
    const { queue } = queueWithClock();
    queue.add('a');
    const first = await queue.get();
    expect(first).toBe('a');
    queue.add('a');
    queue.add('a');
    expect(queue.len()).toBe(0);
    queue.done('a');
    expect(queue.len()).toBe(1);
    expect(await queue.get()).toBe('a');
    queue.done('a');
    expect(queue.len()).toBe(0);
  });

  it('never runs two reconciles of one key at the same time, even with many workers', async () => {
    const { queue } = queueWithClock();
    const running = new Map<string, number>();
    let maxSameKey = 0;
    const runs: string[] = [];
    const gates = [deferred(), deferred()];
    const handler = async (key: string) => {
      running.set(key, (running.get(key) ?? 0) + 1);
      maxSameKey = Math.max(maxSameKey, running.get(key) ?? 0);
      runs.push(key);
      await gates[runs.length - 1]?.promise;
      running.set(key, (running.get(key) ?? 0) - 1);
    };
    const processing = queue.process(handler, 4);
    queue.add('a');
    await waitFor(() => runs.length === 1, 'first run of a');
    queue.add('a');
    await flush();
    expect(runs).toEqual(['a']);
    gates[0]?.resolve();
    await waitFor(() => runs.length === 2, 'second run of a');
    gates[1]?.resolve();
    await queue.shutdown();
    await processing;
    expect(maxSameKey).toBe(1);
    expect(runs).toEqual(['a', 'a']);
  });

  it('runs different keys concurrently up to the worker count and no further', async () => {
    const { queue } = queueWithClock();
    let active = 0;
    let peak = 0;
    const release = deferred();
    const processing = queue.process(async () => {
      active += 1;
      peak = Math.max(peak, active);
      await release.promise;
      active -= 1;
    }, 3);
    for (const key of ['a', 'b', 'c', 'd', 'e']) queue.add(key);
    await waitFor(() => active === 3, 'three workers busy');
    await flush();
    expect(active).toBe(3);
    expect(queue.len()).toBe(2);
    release.resolve();
    await queue.shutdown();
    await processing;
    expect(peak).toBe(3);
    expect(queue.len()).toBe(0);
  });

  it('adds a key after the given delay, and the earliest of several delays wins', async () => {
    const { queue, clock } = queueWithClock();
    queue.addAfter('a', 1_000);
    queue.addAfter('a', 300);
    queue.addAfter('a', 2_000);
    await clock.advance(299);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(queue.len()).toBe(1);
    await clock.advance(5_000);
    expect(queue.len()).toBe(1);
  });

  it('delays rate-limited adds with per-key exponential backoff', async () => {
    const { queue, clock } = queueWithClock();
    queue.addRateLimited('a');
    await clock.advance(4);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(queue.len()).toBe(1);
    expect(await queue.get()).toBe('a');
    queue.done('a');

    queue.addRateLimited('a');
    await clock.advance(9);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(queue.len()).toBe(1);
    expect(queue.numRequeues('a')).toBe(2);
  });

  it('resets the backoff of a key on forget', async () => {
    const { queue, clock } = queueWithClock();
    queue.addRateLimited('a');
    queue.addRateLimited('a');
    queue.addRateLimited('a');
    expect(queue.numRequeues('a')).toBe(3);
    queue.forget('a');
    expect(queue.numRequeues('a')).toBe(0);
    await clock.advance(5);
    expect(queue.len()).toBe(1);
  });

  it('keeps processing queued keys on shutdown, waits for running ones and ignores new adds', async () => {
    const { queue } = queueWithClock();
    const processed: string[] = [];
    const gate = deferred();
    const processing = queue.process(async (key) => {
      if (key === 'a') await gate.promise;
      processed.push(key);
    }, 1);
    queue.add('a');
    queue.add('b');
    await waitFor(() => queue.isProcessing('a'), 'a in progress');
    queue.addAfter('c', 10);
    let drained = false;
    const shutdown = queue.shutdown().then(() => (drained = true));
    queue.add('d');
    await flush();
    expect(drained).toBe(false);
    gate.resolve();
    await shutdown;
    await processing;
    expect(processed).toEqual(['a', 'b']);
    expect(queue.hasDelayed('c')).toBe(false);
  });

  it('drops queued keys but still waits for running ones when shut down without draining', async () => {
    const { queue } = queueWithClock();
    const processed: string[] = [];
    const gate = deferred();
    const processing = queue.process(async (key) => {
      await gate.promise;
      processed.push(key);
    }, 1);
    queue.add('a');
    queue.add('b');
    await waitFor(() => queue.isProcessing('a'), 'a in progress');
    const shutdown = queue.shutdown({ drain: false });
    gate.resolve();
    await shutdown;
    await processing;
    expect(processed).toEqual(['a']);
  });

  it('does not re-queue a key added during its run when shut down without draining', async () => {
    const { queue } = queueWithClock();
    const processed: string[] = [];
    const gate = deferred();
    const processing = queue.process(async (key) => {
      await gate.promise;
      processed.push(key);
    }, 1);
    queue.add('a');
    await waitFor(() => queue.isProcessing('a'), 'a in progress');
    queue.add('a');
    const shutdown = queue.shutdown({ drain: false });
    gate.resolve();
    await shutdown;
    await processing;
    expect(processed).toEqual(['a']);
    expect(queue.len()).toBe(0);
    expect(await queue.get()).toBeUndefined();
  });

  it('keeps a handler error from stopping the workers', async () => {
    const { queue } = queueWithClock();
    const processed: string[] = [];
    const processing = queue.process(async (key) => {
      processed.push(key);
      if (key === 'a') throw new Error('boom');
    }, 1);
    queue.add('a');
    queue.add('b');
    await waitFor(() => processed.length === 2, 'both keys processed');
    await queue.shutdown();
    await processing;
    expect(processed).toEqual(['a', 'b']);
  });

  it('reports depth, adds, retries, queue latency and work duration to its metrics hooks', async () => {
    const clock = new FakeClock();
    const seen = {
      depth: [] as number[],
      adds: 0,
      retries: 0,
      latency: [] as number[],
      work: [] as number[],
    };
    const metrics: WorkqueueMetrics = {
      depth: (d) => seen.depth.push(d),
      added: () => (seen.adds += 1),
      retried: () => (seen.retries += 1),
      queueLatency: (s) => seen.latency.push(s),
      workDuration: (s) => seen.work.push(s),
    };
    const queue = new Workqueue({ name: 'm', clock, metrics, rateLimiter: new ItemExponentialRateLimiter() });
    queue.add('a');
    queue.add('a');
    queue.add('b');
    await clock.advance(250);
    const processing = queue.process(async () => {
      await clock.advance(100);
    }, 1);
    await waitFor(() => seen.work.length === 2, 'both keys worked');
    queue.addRateLimited('c');
    await queue.shutdown();
    await processing;
    expect(seen.adds).toBe(2);
    expect(seen.retries).toBe(1);
    expect(seen.depth.slice(0, 2)).toEqual([1, 2]);
    expect(seen.depth.at(-1)).toBe(0);
    expect(seen.latency[0]).toBeCloseTo(0.25);
    expect(seen.work[0]).toBeCloseTo(0.1);
  });
});

describe('ItemExponentialRateLimiter', () => {
  it('doubles the delay on every failure from 5 ms and caps it at 1000 s', () => {
    const limiter = new ItemExponentialRateLimiter(5, 1_000_000);
    const delays = Array.from({ length: 5 }, () => limiter.when('a'));
    expect(delays).toEqual([5, 10, 20, 40, 80]);
    for (let i = 0; i < 40; i += 1) limiter.when('a');
    expect(limiter.when('a')).toBe(1_000_000);
    expect(limiter.when('b')).toBe(5);
  });
});

describe('TokenBucketRateLimiter', () => {
  it('lets a burst through at once and then spaces items at the configured rate', async () => {
    const clock = new FakeClock();
    const limiter = new TokenBucketRateLimiter(10, 100, clock);
    const burst = Array.from({ length: 100 }, (_, i) => limiter.when(`k${i}`));
    expect(burst.every((d) => d === 0)).toBe(true);
    expect(limiter.when('x')).toBeCloseTo(100);
    expect(limiter.when('y')).toBeCloseTo(200);
    await clock.advance(1_000);
    expect(limiter.when('z')).toBe(0);
  });
});

describe('MaxOfRateLimiter', () => {
  it('waits for the slowest of its limiters', () => {
    const clock = new FakeClock();
    const limiter = new MaxOfRateLimiter(
      new ItemExponentialRateLimiter(5),
      new TokenBucketRateLimiter(1, 1, clock),
    );
    expect(limiter.when('a')).toBe(5);
    expect(limiter.when('a')).toBeCloseTo(1_000);
  });
});
