// /metrics, /healthz and /readyz of a running operator, read over HTTP as Prometheus and the kubelet do:
// the controller-runtime, workqueue, webhook and istiod injection series exist and move when work happens;
// readiness follows the informers, not leadership.
import { API_GROUP_VERSION } from '../../src/crds/constants.js';
import type { KubeClient } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import {
  componentLogs,
  createTestNamespace,
  deleteNamespace,
  testKubeConfig,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import {
  ensureIstioSystemNamespace,
  installCrds,
  operatorLogTail,
  startTestOperator,
  testClient,
  type TestOperator,
} from '../support/operator.js';
import { httpGet, injectorCa, podReview, sendAdmission, sumMetric } from '../support/process-operator.js';

type Obj = KubeObject & Record<string, unknown>;
type WithConditions = Obj & { status?: { conditions?: { type: string; status: string }[] } };
interface PodShape {
  spec?: { containers?: { name: string }[]; initContainers?: { name: string }[] };
}

const CPR = { apiVersion: API_GROUP_VERSION, kind: 'ControlPlaneRevision' };
const RBAC = 'rbac.authorization.k8s.io/v1';
const rev = uniqueName('metrics');

let client: KubeClient;
let operator: TestOperator;
const started: TestOperator[] = [];
const namespaces: string[] = [];
const cleanup: { apiVersion: string; kind: string; name: string; namespace?: string }[] = [];

function withLogs<T>(fn: () => Promise<T>): () => Promise<T> {
  return async () => {
    try {
      return await fn();
    } catch (err) {
      const logs = started
        .map((op) => `--- operator ${op.config.podName} ---\n${operatorLogTail(op, 25)}`)
        .join('\n');
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}\n${logs}\n${componentLogs(['kube-apiserver'])}`,
      );
    }
  };
}

async function scrape(op: TestOperator = operator): Promise<string> {
  const { status, body } = await httpGet(op.metricsPort, '/metrics');
  if (status !== 200) throw new Error(`/metrics answered ${status}`);
  return body;
}

async function value(name: string, labels: Record<string, string> = {}): Promise<number> {
  return sumMetric(await scrape(), name, labels);
}

/** Runs `action`, then waits until `name{labels}` has grown past its value before the action. */
async function grows(
  name: string,
  labels: Record<string, string>,
  action: () => Promise<unknown>,
): Promise<void> {
  const before = await value(name, labels);
  await action();
  await waitFor(
    `${name}${JSON.stringify(labels)} to grow past ${before}`,
    async () => (await value(name, labels)) > before,
  );
}

function pod(name: string, namespace: string, annotations: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, annotations },
    spec: { containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
  } as KubeObject;
}

function containerNames(p: PodShape): string[] {
  return [...(p.spec?.containers ?? []), ...(p.spec?.initContainers ?? [])].map((c) => c.name);
}

beforeAll(async () => {
  client = testClient();
  await installCrds(client);
  await ensureIstioSystemNamespace(client);
  operator = await startTestOperator('metrics', ['--create-default-tag=false']);
  started.push(operator);
});

afterAll(async () => {
  await client.delete({ ...CPR, name: rev }).catch(() => undefined);
  for (const op of started) await op.stop();
  for (const ns of namespaces) await deleteNamespace(testKubeConfig(), ns);
  for (const ref of cleanup) await client.delete(ref).catch(() => undefined);
  client?.close();
});

describe('the metrics endpoint', () => {
  test(
    'exposes the controller-runtime, workqueue, webhook, injection, informer, certificate, render thread and leader series',
    withLogs(async () => {
      const text = await scrape();
      for (const [name, type] of [
        ['controller_runtime_reconcile_total', 'counter'],
        ['controller_runtime_reconcile_errors_total', 'counter'],
        ['controller_runtime_reconcile_time_seconds', 'histogram'],
        ['controller_runtime_active_workers', 'gauge'],
        ['workqueue_depth', 'gauge'],
        ['workqueue_adds_total', 'counter'],
        ['workqueue_queue_duration_seconds', 'histogram'],
        ['workqueue_work_duration_seconds', 'histogram'],
        ['workqueue_retries_total', 'counter'],
        ['controller_runtime_webhook_requests_total', 'counter'],
        ['controller_runtime_webhook_latency_seconds', 'histogram'],
        ['sidecar_injection_requests_total', 'counter'],
        ['sidecar_injection_success_total', 'counter'],
        ['sidecar_injection_skip_total', 'counter'],
        ['sidecar_injection_failure_total', 'counter'],
        ['sidecar_injection_time_seconds', 'histogram'],
        ['meshrev_informer_restarts_total', 'counter'],
        ['meshrev_injector_certificate_expiry_seconds', 'gauge'],
        ['meshrev_injector_render_threads', 'gauge'],
        ['meshrev_injector_render_jobs_total', 'counter'],
        ['meshrev_injector_render_thread_restarts_total', 'counter'],
        ['meshrev_leader', 'gauge'],
      ]) {
        expect(text).toContain(`# TYPE ${name} ${type}\n`);
      }
      // Without leader election the single replica leads.
      expect(sumMetric(text, 'meshrev_leader')).toBe(1);
      const expiry = sumMetric(text, 'meshrev_injector_certificate_expiry_seconds');
      expect(expiry).toBeGreaterThan(24 * 3600);
      for (const controller of ['controlplanerevision', 'revisiontag']) {
        expect(text).toContain(`workqueue_depth{name="${controller}"}`);
        expect(text).toContain(`controller_runtime_active_workers{controller="${controller}"}`);
      }
    }),
  );

  test(
    'counts reconciles and workqueue adds when a revision is applied',
    withLogs(async () => {
      const labels = { controller: 'controlplanerevision', result: 'success' };
      const adds = await value('workqueue_adds_total', { name: 'controlplanerevision' });
      const timed = await value('controller_runtime_reconcile_time_seconds_count', {
        controller: 'controlplanerevision',
      });
      await grows('controller_runtime_reconcile_total', labels, () =>
        client.apply({ ...CPR, metadata: { name: rev }, spec: { version: '1.29.6' } } as KubeObject, {
          fieldManager: 'meshrev-tests',
          force: true,
        }),
      );
      await waitFor(`${rev} Reconciled=True`, async () => {
        const cpr = await client.get<WithConditions>({ ...CPR, name: rev });
        return cpr.status?.conditions?.some((c) => c.type === 'Reconciled' && c.status === 'True');
      });
      expect(await value('workqueue_adds_total', { name: 'controlplanerevision' })).toBeGreaterThan(adds);
      expect(
        await value('controller_runtime_reconcile_time_seconds_count', {
          controller: 'controlplanerevision',
        }),
      ).toBeGreaterThan(timed);
      expect(
        await value('workqueue_work_duration_seconds_count', { name: 'controlplanerevision' }),
      ).toBeGreaterThan(0);
    }),
  );

  test(
    'counts an injection, a skipped pod and a failed request, through kube-apiserver and directly',
    withLogs(async () => {
      const ns = await createTestNamespace(testKubeConfig(), 'metrics-inject', { 'istio.io/rev': rev });
      namespaces.push(ns);
      const requests = await value('sidecar_injection_requests_total');
      const webhookOk = await value('controller_runtime_webhook_requests_total', {
        webhook: '/inject',
        code: '200',
      });
      const timed = await value('sidecar_injection_time_seconds_count');

      await grows('sidecar_injection_success_total', {}, async () => {
        const created = (await client.create(pod('injected', ns))) as PodShape;
        expect(containerNames(created)).toContain('istio-proxy');
      });
      await grows('sidecar_injection_skip_total', {}, async () => {
        const created = (await client.create(
          pod('opted-out', ns, { 'sidecar.istio.io/inject': 'false' }),
        )) as PodShape;
        expect(containerNames(created)).not.toContain('istio-proxy');
      });
      const ca = await injectorCa(client);
      await grows('sidecar_injection_failure_total', {}, async () => {
        const answer = await sendAdmission(
          { port: operator.injectorPort, path: '/inject/no-such-revision', ca },
          podReview('failing', ns, pod('nowhere', ns) as unknown as Record<string, unknown>),
        );
        expect(answer).toMatchObject({ status: 200, allowed: false });
      });

      expect(await value('sidecar_injection_requests_total')).toBeGreaterThanOrEqual(requests + 3);
      expect(await value('sidecar_injection_time_seconds_count')).toBeGreaterThanOrEqual(timed + 3);
      // A denied review is still an HTTP 200 answer: the code label is the status sent, as in controller-runtime.
      expect(
        await value('controller_runtime_webhook_requests_total', { webhook: '/inject', code: '200' }),
      ).toBeGreaterThanOrEqual(webhookOk + 3);
      expect(
        await value('controller_runtime_webhook_requests_total', { webhook: '/inject', code: '500' }),
      ).toBe(0);
    }),
  );

  test(
    'answers /healthz and /readyz with 200 on a synced replica',
    withLogs(async () => {
      expect(await httpGet(operator.metricsPort, '/healthz')).toEqual({ status: 200, body: 'ok' });
      expect(await httpGet(operator.metricsPort, '/readyz')).toEqual({ status: 200, body: 'ok' });
      const verbose = await httpGet(operator.metricsPort, '/readyz?verbose');
      expect(verbose.body).toContain('[+]informers ok');
      expect(verbose.body).toContain('[+]certificates ok');
    }),
  );

  test(
    'reports not ready (503, naming the informer) until every informer has synced, and ready once it has',
    withLogs(async () => {
      // A replica whose identity may not list RevisionTags cannot sync that informer until it is allowed to.
      const user = uniqueName('meshrev-readyz');
      const base = uniqueName('meshrev-readyz-base');
      const tags = uniqueName('meshrev-readyz-tags');
      const grant = async (
        kind: 'ClusterRole' | 'Role',
        name: string,
        rules: unknown[],
        namespace?: string,
      ) => {
        const meta = namespace ? { name, namespace } : { name };
        await client.create({ apiVersion: RBAC, kind, metadata: meta, rules } as KubeObject);
        await client.create({
          apiVersion: RBAC,
          kind: kind === 'Role' ? 'RoleBinding' : 'ClusterRoleBinding',
          metadata: meta,
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind, name },
          subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
        } as KubeObject);
        for (const k of [kind, kind === 'Role' ? 'RoleBinding' : 'ClusterRoleBinding']) {
          cleanup.push({ apiVersion: RBAC, kind: k, name, ...(namespace ? { namespace } : {}) });
        }
      };
      await grant('ClusterRole', base, [
        { apiGroups: ['meshrev.dev'], resources: ['controlplanerevisions'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['networking.istio.io'], resources: ['proxyconfigs'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
      ]);
      await grant(
        'Role',
        base,
        [
          { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'update'] },
          { apiGroups: [''], resources: ['services'], verbs: ['get', 'create', 'patch'] },
        ],
        'meshrev-system',
      );

      const limited = await startTestOperator(
        'metrics-readyz',
        ['--leader-elect=true', `--lease-name=${uniqueName('readyz-lease')}`],
        { impersonate: { user, groups: ['system:authenticated'] } },
      );
      started.push(limited);
      const notReady = await httpGet(limited.metricsPort, '/readyz');
      expect(notReady.status).toBe(503);
      expect(notReady.body).toMatch(/^\[-\]informers failed: not synced: .*revisiontags/m);
      expect((await httpGet(limited.metricsPort, '/healthz')).status).toBe(200);
      // Readiness never depends on leadership: this replica cannot even read the Lease.
      expect(sumMetric((await httpGet(limited.metricsPort, '/metrics')).body, 'meshrev_leader')).toBe(0);

      await grant('ClusterRole', tags, [
        { apiGroups: ['meshrev.dev'], resources: ['revisiontags'], verbs: ['get', 'list', 'watch'] },
      ]);
      await waitFor(
        '/readyz 200 once the RevisionTag informer syncs',
        async () => (await httpGet(limited.metricsPort, '/readyz')).status === 200,
      );
      expect(sumMetric((await httpGet(limited.metricsPort, '/metrics')).body, 'meshrev_leader')).toBe(0);
      expect(
        sumMetric((await httpGet(limited.metricsPort, '/metrics')).body, 'meshrev_informer_restarts_total', {
          resource: 'revisiontags',
        }),
      ).toBeGreaterThan(0);
    }),
  );
});
