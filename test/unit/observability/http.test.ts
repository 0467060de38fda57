import { Metrics } from '../../../src/observability/metrics.js';
import {
  HealthChecks,
  informersSynced,
  startObservabilityServer,
  type ObservabilityServer,
} from '../../../src/observability/http.js';

describe('observability server', () => {
  let server: ObservabilityServer;
  let readiness: HealthChecks;
  let base: string;

  beforeEach(async () => {
    readiness = new HealthChecks(200);
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.injection('success', 0.01);
    server = await startObservabilityServer({ port: 0, host: '127.0.0.1', metrics, readiness });
    base = `http://127.0.0.1:${server.port}`;
  });

  afterEach(async () => {
    await server.close();
  });

  it('serves Prometheus text on /metrics', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(await res.text()).toContain('sidecar_injection_success_total 1');
  });

  it('answers /healthz with ok', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
  });

  it('reports not ready with the failing checks until every readiness check passes', async () => {
    const informers = [
      {
        resource: 'pods',
        synced: false,
        hasSynced() {
          return this.synced;
        },
      },
      {
        resource: 'namespaces',
        synced: true,
        hasSynced() {
          return this.synced;
        },
      },
    ];
    readiness.add('informers-synced', informersSynced(informers));
    readiness.add('certificate-loaded', () => ({ ok: true }));
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    const body = await notReady.text();
    expect(body).toContain('[-]informers-synced failed: not synced: pods');
    expect(body).toContain('[+]certificate-loaded ok');

    informers[0]!.synced = true;
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe('ok');
    const verbose = await fetch(`${base}/readyz?verbose`);
    expect(await verbose.text()).toContain('[+]informers-synced ok');
  });

  it('fails a readiness check that throws or hangs instead of hanging the probe', async () => {
    readiness.add('throws', () => {
      throw new Error('boom');
    });
    readiness.add('hangs', () => new Promise<boolean>(() => {}));
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(503);
    const body = await res.text();
    expect(body).toContain('[-]throws failed: boom');
    expect(body).toContain('[-]hangs failed: check timed out after 200 ms');
  });

  it('stops running a check once it is removed', async () => {
    const remove = readiness.add('leader-independent', () => false);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    remove();
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  it('returns 404 for unknown paths and 405 for writes', async () => {
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });
});
