// One Prometheus registry per Metrics instance (never prom-client's global one), so every test and every
// embedded component gets isolated counters. Names follow controller-runtime and istiod, so existing
// dashboards and alerts work unchanged.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { InjectionCacheStats } from '../injector/cache.js';
import type { RenderPoolStats } from '../injector/render-pool.js';
import type { ControllerMetrics, ReconcileOutcome } from '../runtime/controller.js';
import type { RestartReason } from '../runtime/informer.js';
import type { RequestRecord } from '../runtime/kube.js';
import type { WorkqueueMetrics } from '../runtime/workqueue.js';

/** controller-runtime's reconcile_time_seconds buckets. */
const reconcileBuckets = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5,
  1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];

/** 10 ns · 10^i, as controller-runtime's workqueue duration histograms. */
const workqueueBuckets = Array.from({ length: 12 }, (_, i) => Number((1e-8 * 10 ** i).toPrecision(1)));

/**
 * istiod's injection buckets start at 0.1 s; meshrev's injector answers in milliseconds, so finer buckets
 * below 0.1 s are added in front of them to keep the distribution visible.
 */
export const injectionTimeBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1, 3, 5, 10, 20, 30, 60];

const webhookLatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type InjectionOutcome = 'success' | 'failure' | 'skip';

export interface MetricsOptions {
  /** Node process metrics (CPU, memory, event loop lag…); on by default. */
  defaultMetrics?: boolean;
}

export class Metrics {
  readonly registry = new Registry();

  private readonly reconcileTotal: Counter<'controller' | 'result'>;
  private readonly reconcileErrors: Counter<'controller'>;
  private readonly reconcileTime: Histogram<'controller'>;
  private readonly activeWorkers: Gauge<'controller'>;
  private readonly workqueueDepth: Gauge<'name'>;
  private readonly workqueueAdds: Counter<'name'>;
  private readonly workqueueQueueDuration: Histogram<'name'>;
  private readonly workqueueWorkDuration: Histogram<'name'>;
  private readonly workqueueRetries: Counter<'name'>;
  private readonly webhookRequests: Counter<'webhook' | 'code'>;
  private readonly webhookLatency: Histogram<'webhook'>;
  private readonly injectionRequests: Counter;
  private readonly injectionSuccess: Counter;
  private readonly injectionFailure: Counter;
  private readonly injectionSkip: Counter;
  private readonly injectionTime: Histogram;
  private readonly informerRestarts: Counter<'resource' | 'reason'>;
  private readonly leader: Gauge;
  private readonly kubeRequests: Counter<'verb' | 'method' | 'code'>;
  private readonly kubeRequestDuration: Histogram<'verb'>;
  private certificateNotAfterMs: number | undefined;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.reconcileTotal = new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: reconcileBuckets,
      registers,
    });
    this.activeWorkers = new Gauge({
      name: 'controller_runtime_active_workers',
      help: 'Number of currently used workers per controller',
      labelNames: ['controller'],
      registers,
    });
    this.workqueueDepth = new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue',
      labelNames: ['name'],
      registers,
    });
    this.workqueueAdds = new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    this.workqueueQueueDuration = new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames: ['name'],
      buckets: workqueueBuckets,
      registers,
    });
    this.workqueueWorkDuration = new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes',
      labelNames: ['name'],
      buckets: workqueueBuckets,
      registers,
    });
    this.workqueueRetries = new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    this.webhookRequests = new Counter({
      name: 'controller_runtime_webhook_requests_total',
      help: 'Total number of admission requests by HTTP status code',
      labelNames: ['webhook', 'code'],
      registers,
    });
    this.webhookLatency = new Histogram({
      name: 'controller_runtime_webhook_latency_seconds',
      help: 'Histogram of the latency of processing admission requests',
      labelNames: ['webhook'],
      buckets: webhookLatencyBuckets,
      registers,
    });
    this.injectionRequests = new Counter({
      name: 'sidecar_injection_requests_total',
      help: 'Total number of sidecar injection requests.',
      registers,
    });
    this.injectionSuccess = new Counter({
      name: 'sidecar_injection_success_total',
      help: 'Total number of successful sidecar injection requests.',
      registers,
    });
    this.injectionFailure = new Counter({
      name: 'sidecar_injection_failure_total',
      help: 'Total number of failed sidecar injection requests.',
      registers,
    });
    this.injectionSkip = new Counter({
      name: 'sidecar_injection_skip_total',
      help: 'Total number of skipped sidecar injection requests.',
      registers,
    });
    this.injectionTime = new Histogram({
      name: 'sidecar_injection_time_seconds',
      help: 'Total time taken for injection in seconds.',
      buckets: injectionTimeBuckets,
      registers,
    });
    this.informerRestarts = new Counter({
      name: 'meshrev_informer_restarts_total',
      help: 'Informer list/watch restarts by resource and reason (expired, error, idle)',
      labelNames: ['resource', 'reason'],
      registers,
    });
    this.leader = new Gauge({
      name: 'meshrev_leader',
      help: '1 while this replica holds the leader lease, else 0',
      registers,
    });
    this.leader.set(0);
    this.kubeRequests = new Counter({
      name: 'meshrev_kube_api_requests_total',
      help: 'Kubernetes API requests by verb, HTTP method and status code (0 = no response)',
      labelNames: ['verb', 'method', 'code'],
      registers,
    });
    this.kubeRequestDuration = new Histogram({
      name: 'meshrev_kube_api_request_duration_seconds',
      help: 'Kubernetes API request latency by verb (watch: stream lifetime)',
      labelNames: ['verb'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    const notAfter = () => this.certificateNotAfterMs;
    new Gauge({
      name: 'meshrev_injector_certificate_expiry_seconds',
      help: 'Seconds until the injector serving certificate expires',
      registers,
      collect() {
        const expiry = notAfter();
        if (expiry !== undefined) this.set((expiry - Date.now()) / 1000);
      },
    });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition format served on /metrics. */
  expose(): Promise<string> {
    return this.registry.metrics();
  }

  controller(name: string): ControllerMetrics {
    this.activeWorkers.labels(name).set(0);
    return {
      reconciled: (outcome: ReconcileOutcome, seconds: number) => {
        this.reconcileTotal.labels(name, outcome).inc();
        if (outcome === 'error') this.reconcileErrors.labels(name).inc();
        this.reconcileTime.labels(name).observe(seconds);
      },
      activeWorkers: (delta: number) => this.activeWorkers.labels(name).inc(delta),
      workqueue: this.workqueue(name),
    };
  }

  workqueue(name: string): WorkqueueMetrics {
    this.workqueueDepth.labels(name).set(0);
    return {
      depth: (depth) => this.workqueueDepth.labels(name).set(depth),
      added: () => this.workqueueAdds.labels(name).inc(),
      queueLatency: (seconds) => this.workqueueQueueDuration.labels(name).observe(seconds),
      workDuration: (seconds) => this.workqueueWorkDuration.labels(name).observe(seconds),
      retried: () => this.workqueueRetries.labels(name).inc(),
    };
  }

  /** An `onRestart` hook for an informer of `resource`. */
  informerRestartHook(resource: string): (reason: RestartReason) => void {
    return (reason) => this.informerRestarts.labels(resource, reason).inc();
  }

  /** A KubeClient `onRequest` listener. */
  readonly kubeRequest = (record: RequestRecord): void => {
    this.kubeRequests.labels(record.verb, record.method, String(record.code)).inc();
    this.kubeRequestDuration.labels(record.verb).observe(record.durationMs / 1000);
  };

  webhookRequest(webhook: string, code: number, seconds: number): void {
    this.webhookRequests.labels(webhook, String(code)).inc();
    this.webhookLatency.labels(webhook).observe(seconds);
  }

  /** Counts one injection request as istiod does: requests_total plus exactly one outcome counter. */
  injection(outcome: InjectionOutcome, seconds: number): void {
    this.injectionRequests.inc();
    if (outcome === 'success') this.injectionSuccess.inc();
    else if (outcome === 'failure') this.injectionFailure.inc();
    else this.injectionSkip.inc();
    this.injectionTime.observe(seconds);
  }

  setLeader(leading: boolean): void {
    this.leader.set(leading ? 1 : 0);
  }

  setInjectorCertificateNotAfter(notAfter: Date): void {
    this.certificateNotAfterMs = notAfter.getTime();
  }

  /** Render threads (src/injector/render-pool.ts): how many run, and where each cache miss was rendered. */
  watchRenderPool(stats: () => RenderPoolStats): void {
    const registers = [this.registry];
    new Gauge({
      name: 'meshrev_injector_render_threads',
      help:
        'Render threads ready to run the injection engine beside the main thread (configured minus those restarting; ' +
        'under --injector-render-offload=when-busy none until the main thread is first busy)',
      registers,
      collect() {
        this.set(stats().live);
      },
    });
    new Counter({
      name: 'meshrev_injector_render_jobs_total',
      help:
        'Cache misses offered to render threads, by result: rendered by a thread, or rendered on the main thread ' +
        'because it had time for them (kept), every thread was busy, down or starting (declined), a thread exited ' +
        'first (lost) or reported a failure (failed); or held past the watchdog timeout, so the pod was refused ' +
        '(timed_out)',
      labelNames: ['result'],
      registers,
      collect() {
        const current = stats();
        this.reset();
        for (const result of ['rendered', 'kept', 'declined', 'lost', 'failed'] as const) {
          this.inc({ result }, current[result]);
        }
        this.inc({ result: 'timed_out' }, current.timedOut);
      },
    });
    new Counter({
      name: 'meshrev_injector_render_thread_restarts_total',
      help: 'Render threads that exited and were started again',
      registers,
      collect() {
        this.reset();
        this.inc(stats().restarts);
      },
    });
  }

  /** Exposes the injection verdict cache's counters, read from `stats` at scrape time. */
  watchInjectionCache(stats: () => InjectionCacheStats | undefined): void {
    const registers = [this.registry];
    new Counter({
      name: 'meshrev_injection_cache_lookups_total',
      help: 'Injection verdict cache lookups (identical pods answered without running the engine)',
      labelNames: ['result'],
      registers,
      collect() {
        const current = stats();
        if (current === undefined) return;
        this.reset();
        this.inc({ result: 'hit' }, current.hits);
        this.inc({ result: 'miss' }, current.misses);
      },
    });
    new Gauge({
      name: 'meshrev_injection_cache_entries',
      help: 'Injection verdicts currently cached',
      registers,
      collect() {
        this.set(stats()?.entries ?? 0);
      },
    });
  }
}
