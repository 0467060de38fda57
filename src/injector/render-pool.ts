// Render threads: the injection engine run off the main thread, so a replica with more than one core renders pods
// for cache misses beside the thread that serves TLS, parses reviews and answers verdict cache hits. Measured on
// two cores (docs/performance.md), the main thread's CPU per distinct pod halved and the distinct pods per
// second a replica answers rose by 41–54%.
//
// A job handed to a thread costs two wake-ups between threads and, where cores are few, a thread competing for a core
// with everything else on the machine: measured on two cores with the load generator beside it, a small pod's p99
// at 1,000 distinct pods/s went from 2.2–2.6 ms to 8–27 ms with every miss sent to a thread, while the closed-loop
// throughput of distinct pods rose by half. So threads take jobs only while the main thread is busy: from 90% of
// its time in the last 250 ms until that falls under 75%. While jobs go to threads the main thread's own load
// understates what it would carry alone, so the time threads spent rendering in the window is added to it. (At
// 1,000 small distinct pods/s there, rendering every pod itself, the main thread was 48–78% busy in 100 ms windows;
// windows that short crossed 90% after any stall of the machine. An earlier rule, keep offloading while a thread
// holds jobs, sustained itself: at 1,000 pods/s a job is nearly always in flight, and one busy moment sent 98% of
// the next 10,000 misses to the thread.) At ordinary rates pods are rendered where they arrive; at full load the
// thread adds its core.
//
// Under `when-busy` threads start the first time a job is offered to them, not with the injector: a replica that is
// never busy (most replicas, most of the time) does not carry a thread's 18 MiB or more. (Under `always` every miss
// is offered, so they start with the pool.) A thread takes jobs once it has said it is ready; until then, as while
// one restarts, the caller renders them (a job posted to a thread still loading its modules would wait for that).
//
// The pool is an optimisation only: whenever a thread cannot answer (all threads busy beyond their queue, a thread
// down or restarting, a job lost with a thread that exited, a thread that reports a failure) the caller renders on
// its own thread, so no admission fails or waits for a thread. A thread that exits is started again after a
// backoff that grows while it keeps failing.
//
// One case is not handed back: a job a thread has held for longer than any render takes (a small pod renders in a
// fraction of a millisecond, and reviews over 64 KiB never come here), which means the engine is stuck on that pod.
// The watchdog rejects it with RenderJobTimedOut, which its caller answers with a denial rather than run the same
// pod on the main thread, and terminates the thread; the jobs queued behind it are lost and rendered by their
// callers, and the thread is started again. Without it the stuck admission and everything queued behind it would
// wait for kube-apiserver's webhook timeout, and the thread would stay stuck. "Longer than any render" is 3 s, or
// less when the caller's client gives up sooner: InjectionService passes half the revision's webhook timeout, so a
// revision with `timeoutSeconds: 1` has its stuck pod refused, and the pods behind it rendered, within that second.
// "Held" counts from when the thread could start on the job (its post, or the answer before it), not from the post:
// a job that merely waited past its timeout in a busy but moving queue goes back to its caller instead, and a check
// that runs late because this thread was busy waits for the answers sent meanwhile before it judges.
import { Worker } from 'node:worker_threads';

import type { Logger } from 'pino';

import type { InjectorSettings } from './engine/settings.js';
import type {
  RenderedVerdict,
  RenderJob,
  RenderThreadMessage,
  RenderThreadReply,
  RenderThreadRequest,
} from './render-job.js';

/**
 * Renders a job off the calling thread, or returns undefined when the caller should render it itself. `timeoutMs`
 * is how long the caller can wait for this job before its own client gives up (see InjectionService); a thread
 * that holds the job longer is treated as stuck on it, as past the pool's own timeout.
 */
export interface Renderer {
  render(
    revision: string,
    settings: InjectorSettings,
    job: RenderJob,
    timeoutMs?: number,
  ): Promise<RenderedVerdict> | undefined;
}

export interface RenderPoolOptions {
  threads: number;
  logger: Logger;
  /**
   * The thread's code: a module (default: render-thread.js beside this module, which is there once compiled) or,
   * for tests, script text run with `eval`.
   */
  entry?: { module: URL } | { evalScript: string };
  /** Jobs one thread may hold; beyond that on every thread, the caller renders. */
  maxQueuedPerThread?: number;
  /** Delay before a thread that exited is started again, doubling while it keeps exiting without answering. */
  restartDelayMs?: { initial: number; max: number };
  /** `when-busy` (default): threads take jobs only while the main thread is busy (see above); `always`: every job. */
  offload?: 'when-busy' | 'always';
  /** The main thread's event-loop utilisation (0–1) since the previous call; tests pass a scripted one. */
  mainThreadLoad?: () => number;
  /** Milliseconds now; tests pass a scripted clock. */
  now?: () => number;
  /**
   * How long a thread may hold its oldest job before the watchdog gives up on it (default 3 s: far beyond any
   * render, and short of kube-apiserver's default webhook timeout of 10 s; a job's own `timeoutMs` can only shorten
   * it), and how often it looks (default 125 ms: a quarter of the shortest time a caller passes, half of a 1 s
   * webhook timeout).
   */
  watchdog?: { jobTimeoutMs: number; intervalMs?: number };
}

/** Reviews longer than this are rendered where they arrive (see InjectionService); the verdict cache's bound too. */
export const MAX_THREAD_REVIEW_CHARS = 64 * 1024;

const DEFAULT_JOB_TIMEOUT_MS = 3000;
const DEFAULT_WATCHDOG_INTERVAL_MS = 125;

/** How often the main thread's load is sampled (at most; only when a job is offered). */
const LOAD_SAMPLE_MS = 250;
/** Load (see above) from which the main thread counts as busy, and under which it no longer does. */
const BUSY_FROM = 0.9;
const IDLE_UNDER = 0.75;

/** The event loop's utilisation between calls (performance.eventLoopUtilization, which Node keeps for free). */
function eventLoopLoad(): () => number {
  let previous = performance.eventLoopUtilization();
  return () => {
    const current = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(current, previous);
    previous = current;
    return delta.utilization;
  };
}

export interface RenderPoolStats {
  /** Threads configured. */
  threads: number;
  /** Threads ready for jobs now (none before the first job is offered; a thread is down while it restarts). */
  live: number;
  /** Threads started and not ready yet (loading the engine). */
  starting: number;
  /** Jobs posted and not yet answered. */
  queued: number;
  /** Jobs answered with a verdict. */
  rendered: number;
  /** Jobs a thread answered with a failure (the engine threw); the caller rendered them. */
  failed: number;
  /** Jobs lost with a thread that exited; the caller rendered them. */
  lost: number;
  /** Jobs a thread held past the watchdog's timeout; their callers denied the pod, and the thread was restarted. */
  timedOut: number;
  /** Jobs not taken because every thread was down or full; the caller rendered them. */
  declined: number;
  /** Jobs left to the caller because the main thread had time for them (offload `when-busy`). */
  kept: number;
  restarts: number;
}

/** A job that left with its thread (exited or terminated); the caller renders it instead. */
export class RenderThreadLost extends Error {
  constructor(thread: number) {
    super(`render thread ${thread} exited before it answered`);
    this.name = 'RenderThreadLost';
  }
}

/** A job the thread held past the watchdog's timeout: the engine is stuck on it, so the caller must not retry it. */
export class RenderJobTimedOut extends Error {
  constructor(thread: number, heldMs: number) {
    super(
      `render thread ${thread} held this pod for ${Math.round(heldMs)} ms without an answer; ` +
        'the thread was restarted and the pod is refused so that it cannot stall the injector',
    );
    this.name = 'RenderJobTimedOut';
  }
}

interface PendingJob {
  resolve: (verdict: RenderedVerdict) => void;
  reject: (error: Error) => void;
  postedAt: number;
  /** Held longer than this, the job is one the thread is stuck on. */
  timeoutMs: number;
}

interface ThreadSlot {
  index: number;
  worker: Worker | undefined;
  pending: Map<number, PendingJob>;
  /** Whether the running thread has said it is ready for jobs. */
  ready: boolean;
  /** Settings id last sent to this thread, by revision. */
  shipped: Map<string, number>;
  /** Exits since the thread last answered a job; sets the restart delay. */
  exitsWithoutAnswer: number;
  restartTimer: NodeJS.Timeout | undefined;
  /**
   * Ids of the jobs posted to the running thread and not answered yet, oldest first: the thread works on the first.
   * Unlike `pending` it keeps jobs already handed back to their callers, which the thread still works through.
   */
  inThread: number[];
  /** When the thread started on `inThread[0]`, as far as this thread can tell: its post, or the answer before it. */
  headSince: number;
}

const DEFAULT_ENTRY = { module: new URL('./render-thread.js', import.meta.url) };

export class RenderPool implements Renderer {
  private readonly slots: ThreadSlot[];
  private readonly settingsIds = new WeakMap<InjectorSettings, number>();
  private nextSettingsId = 1;
  private nextJobId = 1;
  private closed = false;
  private readonly counts = {
    rendered: 0,
    failed: 0,
    lost: 0,
    timedOut: 0,
    declined: 0,
    kept: 0,
    restarts: 0,
  };
  private readonly maxQueued: number;
  private readonly restartDelay: { initial: number; max: number };
  private readonly mainThreadLoad: () => number;
  private readonly now: () => number;
  private busy = false;
  private loadSampledAt: number;
  /** Milliseconds threads spent on the jobs they answered since the load was last sampled. */
  private offloadedMs = 0;
  private readonly jobTimeoutMs: number;
  private started = false;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private readonly watchdogIntervalMs: number;
  private lastCheckAt = 0;

  constructor(private readonly options: RenderPoolOptions) {
    this.maxQueued = options.maxQueuedPerThread ?? 64;
    this.restartDelay = options.restartDelayMs ?? { initial: 250, max: 30_000 };
    this.mainThreadLoad = options.mainThreadLoad ?? eventLoopLoad();
    this.now = options.now ?? (() => performance.now());
    this.loadSampledAt = this.now();
    this.slots = Array.from({ length: Math.max(0, options.threads) }, (_, index) => ({
      index,
      worker: undefined,
      ready: false,
      pending: new Map(),
      shipped: new Map(),
      exitsWithoutAnswer: 0,
      restartTimer: undefined,
      inThread: [],
      headSince: 0,
    }));
    this.jobTimeoutMs = options.watchdog?.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;
    this.watchdogIntervalMs =
      options.watchdog?.intervalMs ?? Math.min(DEFAULT_WATCHDOG_INTERVAL_MS, this.jobTimeoutMs / 4);
    if (options.offload === 'always') this.prestart();
  }

  /** Starts the threads now rather than when the first job is offered to them (see the top). */
  prestart(): void {
    if (this.started || this.closed || this.slots.length === 0) return;
    this.started = true;
    for (const slot of this.slots) this.start(slot);
    this.lastCheckAt = this.now();
    this.watchdogTimer = setInterval(() => this.checkStuckThreads(), this.watchdogIntervalMs);
    this.watchdogTimer.unref();
  }

  render(
    revision: string,
    settings: InjectorSettings,
    job: RenderJob,
    timeoutMs?: number,
  ): Promise<RenderedVerdict> | undefined {
    if (!this.offloadNow()) {
      this.counts.kept++;
      return undefined;
    }
    this.prestart();
    const slot = this.leastQueued();
    if (slot?.worker === undefined || slot.pending.size >= this.maxQueued) {
      this.counts.declined++;
      return undefined;
    }
    const id = this.nextJobId++;
    const request: RenderThreadRequest = { id, settingsId: this.settingsIdOf(settings), job };
    const shippedId = slot.shipped.get(revision);
    if (shippedId !== request.settingsId) {
      request.settings = settings;
      if (shippedId !== undefined) request.retire = [shippedId];
      slot.shipped.set(revision, request.settingsId);
    }
    const worker = slot.worker;
    return new Promise<RenderedVerdict>((resolve, reject) => {
      slot.pending.set(id, {
        resolve,
        reject,
        postedAt: this.now(),
        timeoutMs: Math.min(this.jobTimeoutMs, timeoutMs ?? Infinity),
      });
      try {
        worker.postMessage(request);
        if (slot.inThread.length === 0) slot.headSince = this.now();
        slot.inThread.push(id);
      } catch (error) {
        // Not sent (a value the structured clone cannot copy): no answer will come, so nothing may wait for one.
        slot.pending.delete(id);
        slot.shipped.delete(revision);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  stats(): RenderPoolStats {
    let live = 0;
    let starting = 0;
    let queued = 0;
    for (const slot of this.slots) {
      if (slot.worker !== undefined && slot.ready) live++;
      else if (slot.worker !== undefined) starting++;
      queued += slot.pending.size;
    }
    return { threads: this.slots.length, live, starting, queued, ...this.counts };
  }

  /** Stops every thread; jobs still queued are lost (their callers render them). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdogTimer);
    await Promise.all(
      this.slots.map(async (slot) => {
        clearTimeout(slot.restartTimer);
        await slot.worker?.terminate();
      }),
    );
  }

  /** Whether a job offered now goes to a thread: always, or while the main thread is busy (see the top). */
  private offloadNow(): boolean {
    if (this.options.offload === 'always') return true;
    const now = this.now();
    const window = now - this.loadSampledAt;
    if (window >= LOAD_SAMPLE_MS) {
      const load = this.mainThreadLoad() + this.offloadedMs / window;
      this.loadSampledAt = now;
      this.offloadedMs = 0;
      this.busy = this.busy ? load >= IDLE_UNDER : load >= BUSY_FROM;
    }
    return this.busy;
  }

  private leastQueued(): ThreadSlot | undefined {
    let best: ThreadSlot | undefined;
    for (const slot of this.slots) {
      if (slot.worker === undefined || !slot.ready) continue;
      if (best === undefined || slot.pending.size < best.pending.size) best = slot;
    }
    return best;
  }

  private settingsIdOf(settings: InjectorSettings): number {
    let id = this.settingsIds.get(settings);
    if (id === undefined) {
      id = this.nextSettingsId++;
      this.settingsIds.set(settings, id);
    }
    return id;
  }

  private start(slot: ThreadSlot): void {
    slot.restartTimer = undefined;
    if (this.closed) return;
    const entry = this.options.entry ?? DEFAULT_ENTRY;
    const name = `meshrev-render-${slot.index}`;
    const worker =
      'module' in entry
        ? new Worker(entry.module, { name })
        : new Worker(entry.evalScript, { name, eval: true });
    // Queued jobs belong to admission requests, whose sockets keep the process alive; an idle thread must not.
    worker.unref();
    slot.worker = worker;
    slot.ready = false;
    worker.on('message', (message: RenderThreadMessage) => {
      if ('ready' in message) {
        slot.ready = slot.worker === worker;
        return;
      }
      if (slot.worker !== worker) return;
      // Answers come in the order of the posts: the thread has moved on to the next job now.
      const at = slot.inThread.indexOf(message.id);
      if (at !== -1) slot.inThread.splice(0, at + 1);
      slot.headSince = this.now();
      this.settle(slot, message);
    });
    worker.on('error', (err) =>
      this.options.logger.error({ err, thread: slot.index }, 'render thread failed'),
    );
    worker.on('exit', (code) => this.onExit(slot, worker, { exitCode: code }));
  }

  /**
   * A thread answers its jobs in the order they were posted, so it is working on the oldest it has not answered, and
   * has been since its post or the answer before it (`headSince`). Once a job has waited past its timeout, one of two
   * things holds. Either the thread has been on its current job longer than that timeout: the engine is stuck on it
   * (see the top), so that pod is refused and the thread restarted, and a job with a short timeout queued behind one
   * with a long timeout does not wait out the long one. Or the thread is moving and the job merely waited in its
   * queue: it goes back to its caller, who renders it, and no pod is refused for a queue it did not cause.
   */
  private checkStuckThreads(): void {
    const now = this.now();
    const sinceLastCheck = now - this.lastCheckAt;
    this.lastCheckAt = now;
    // This check ran late: the main thread was busy, and answers the threads sent meanwhile may not have been
    // delivered yet (timers run before messages). Judge at the next check, once they have been.
    if (sinceLastCheck > 2 * this.watchdogIntervalMs) return;
    for (const slot of this.slots) {
      const worker = slot.worker;
      if (worker === undefined) continue;
      const overdue = [...slot.pending].filter(([, waiting]) => now - waiting.postedAt > waiting.timeoutMs);
      if (overdue.length === 0) continue;
      const heldMs = now - slot.headSince;
      if (heldMs > Math.min(...overdue.map(([, waiting]) => waiting.timeoutMs))) {
        this.refuseStuckJob(slot, worker, heldMs);
        continue;
      }
      for (const [id, waiting] of overdue) {
        slot.pending.delete(id);
        this.counts.lost++;
        waiting.reject(new RenderThreadLost(slot.index));
      }
    }
  }

  /** Refuses the pod the thread is stuck on (if its caller still waits), and restarts the thread. */
  private refuseStuckJob(slot: ThreadSlot, worker: Worker, heldMs: number): void {
    const headId = slot.inThread[0];
    const stuck = headId === undefined ? undefined : slot.pending.get(headId);
    if (headId !== undefined && stuck !== undefined) {
      slot.pending.delete(headId);
      this.counts.timedOut++;
      stuck.reject(new RenderJobTimedOut(slot.index, heldMs));
    }
    this.options.logger.error(
      { thread: slot.index, heldMs: Math.round(heldMs), queuedBehind: slot.pending.size },
      'render thread is stuck on a pod; refusing that pod and restarting the thread',
    );
    // The jobs queued behind it go back to their callers now, not when the exit event comes: until then a later
    // check would find the next of them held as long and refuse a pod that did nothing wrong.
    void worker.terminate();
    this.onExit(slot, worker, { terminatedBy: 'watchdog' });
  }

  private settle(slot: ThreadSlot, reply: RenderThreadReply): void {
    const job = slot.pending.get(reply.id);
    if (job === undefined) return;
    slot.pending.delete(reply.id);
    slot.exitsWithoutAnswer = 0;
    this.offloadedMs += reply.renderMs ?? 0;
    if ('verdict' in reply) {
      this.counts.rendered++;
      job.resolve(reply.verdict);
    } else {
      this.counts.failed++;
      job.reject(new Error(reply.failed));
    }
  }

  /** A thread gone (it exited, or the watchdog terminated it): its jobs go back to their callers, and it restarts. */
  private onExit(
    slot: ThreadSlot,
    worker: Worker,
    how: { exitCode: number } | { terminatedBy: 'watchdog' },
  ): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.ready = false;
    slot.shipped.clear();
    slot.inThread = [];
    const lost = [...slot.pending.values()];
    slot.pending.clear();
    this.counts.lost += lost.length;
    for (const job of lost) job.reject(new RenderThreadLost(slot.index));
    if (this.closed) return;

    const delay = Math.min(this.restartDelay.max, this.restartDelay.initial * 2 ** slot.exitsWithoutAnswer);
    slot.exitsWithoutAnswer++;
    this.counts.restarts++;
    this.options.logger.warn(
      { thread: slot.index, ...how, lostJobs: lost.length, restartInMs: delay },
      'render thread exited; its jobs are rendered on the main thread until it is back',
    );
    slot.restartTimer = setTimeout(() => this.start(slot), delay);
    slot.restartTimer.unref();
  }
}
