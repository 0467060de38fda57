import { Metrics, injectionTimeBuckets } from '../../../src/observability/metrics.js';

describe('Metrics', () => {
  it('exposes controller-runtime, workqueue, injection and meshrev metric names', async () => {
    const metrics = new Metrics();
    const controller = metrics.controller('revision');
    controller.reconciled('success', 0.02);
    controller.reconciled('error', 0.5);
    controller.activeWorkers(1);
    controller.workqueue?.added();
    controller.workqueue?.depth(3);
    controller.workqueue?.queueLatency(0.001);
    controller.workqueue?.workDuration(0.01);
    controller.workqueue?.retried();
    metrics.webhookRequest('/inject/asm-1', 200, 0.004);
    metrics.injection('success', 0.003);
    metrics.informerRestartHook('pods')('expired');
    metrics.kubeRequest({ verb: 'apply', method: 'PATCH', path: '/x', code: 200, durationMs: 12 });
    metrics.setLeader(true);
    metrics.setInjectorCertificateNotAfter(new Date(Date.now() + 3_600_000));

    const text = await metrics.expose();
    for (const line of [
      'controller_runtime_reconcile_total{controller="revision",result="success"} 1',
      'controller_runtime_reconcile_total{controller="revision",result="error"} 1',
      'controller_runtime_reconcile_errors_total{controller="revision"} 1',
      'controller_runtime_reconcile_time_seconds_count{controller="revision"} 2',
      'controller_runtime_active_workers{controller="revision"} 1',
      'workqueue_depth{name="revision"} 3',
      'workqueue_adds_total{name="revision"} 1',
      'workqueue_queue_duration_seconds_count{name="revision"} 1',
      'workqueue_work_duration_seconds_count{name="revision"} 1',
      'workqueue_retries_total{name="revision"} 1',
      'controller_runtime_webhook_requests_total{webhook="/inject/asm-1",code="200"} 1',
      'controller_runtime_webhook_latency_seconds_count{webhook="/inject/asm-1"} 1',
      'sidecar_injection_requests_total 1',
      'sidecar_injection_success_total 1',
      'sidecar_injection_failure_total 0',
      'sidecar_injection_skip_total 0',
      'sidecar_injection_time_seconds_count 1',
      'meshrev_informer_restarts_total{resource="pods",reason="expired"} 1',
      'meshrev_kube_api_requests_total{verb="apply",method="PATCH",code="200"} 1',
      'meshrev_leader 1',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).toContain('process_cpu_user_seconds_total');
    const expiry = /^meshrev_injector_certificate_expiry_seconds (\S+)$/m.exec(text)?.[1];
    expect(Number(expiry)).toBeGreaterThan(3_500);
    expect(Number(expiry)).toBeLessThanOrEqual(3_600);
  });

  it('keeps the istiod injection buckets and adds finer ones below 0.1 s', async () => {
    expect(injectionTimeBuckets).toEqual(expect.arrayContaining([0.1, 1, 3, 5, 10, 20, 30, 60]));
    expect(injectionTimeBuckets.filter((b) => b < 0.1).length).toBeGreaterThanOrEqual(4);
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.injection('skip', 0.002);
    const text = await metrics.expose();
    expect(text).toContain('sidecar_injection_time_seconds_bucket{le="0.0025"} 1');
    expect(text).toContain('sidecar_injection_time_seconds_bucket{le="0.001"} 0');
    expect(text).toContain('sidecar_injection_skip_total 1');
  });

  it('reads the injection verdict cache counters at scrape time', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    let stats = { entries: 0, hits: 0, misses: 0 };
    metrics.watchInjectionCache(() => stats);
    expect(await metrics.expose()).toContain('meshrev_injection_cache_lookups_total{result="hit"} 0');
    stats = { entries: 3, hits: 41, misses: 3 };
    const text = await metrics.expose();
    expect(text).toContain('meshrev_injection_cache_lookups_total{result="hit"} 41');
    expect(text).toContain('meshrev_injection_cache_lookups_total{result="miss"} 3');
    expect(text).toContain('meshrev_injection_cache_entries 3');
  });

  it('reads the render threads and where cache misses were rendered at scrape time', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const stats = {
      threads: 2,
      live: 1,
      starting: 0,
      queued: 3,
      rendered: 40,
      kept: 7,
      failed: 1,
      lost: 2,
      timedOut: 4,
      declined: 5,
      restarts: 1,
    };
    metrics.watchRenderPool(() => stats);
    const text = await metrics.expose();
    expect(text).toContain('meshrev_injector_render_threads 1');
    expect(text).toContain('meshrev_injector_render_jobs_total{result="rendered"} 40');
    expect(text).toContain('meshrev_injector_render_jobs_total{result="declined"} 5');
    expect(text).toContain('meshrev_injector_render_jobs_total{result="kept"} 7');
    expect(text).toContain('meshrev_injector_render_jobs_total{result="lost"} 2');
    expect(text).toContain('meshrev_injector_render_jobs_total{result="failed"} 1');
    expect(text).toContain('meshrev_injector_render_jobs_total{result="timed_out"} 4');
    expect(text).toContain('meshrev_injector_render_thread_restarts_total 1');
  });

  it('gives every instance its own registry so counters do not leak between instances', async () => {
    const first = new Metrics({ defaultMetrics: false });
    const second = new Metrics({ defaultMetrics: false });
    first.injection('failure', 0.01);
    expect(await first.expose()).toContain('sidecar_injection_failure_total 1');
    expect(await second.expose()).toContain('sidecar_injection_failure_total 0');
    expect(await second.expose()).toContain('meshrev_leader 0');
  });
});
