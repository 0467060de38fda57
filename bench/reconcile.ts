// Reconcile benchmark on a private real cluster: ControlPlaneRevision apply → Reconciled=True latency (sequential
// applies of distinct revisions), a burst of revisions applied at once, API requests per reconcile and writes in
// steady state (kube-apiserver's own apiserver_request_total, plus the operator's client counters). Baseline: a
// ConfigMap applied and seen through a watch, the same way, in the same run.
import { mkdirSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';

import { loadOperatorConfig } from '../src/config.js';
import { API_GROUP_VERSION, CONTROL_PLANE_REVISION_KIND } from '../src/crds/constants.js';
import { startOperator, type OperatorHandle } from '../src/operator.js';
import { Informer, kubeListWatcher } from '../src/runtime/informer.js';
import type { KubeClient } from '../src/runtime/kube.js';
import type { KubeObject } from '../src/runtime/types.js';
import {
  apiserverRequestCounts,
  componentLog,
  countsText,
  diffCounts,
  ensureNamespace,
  installCrds,
  isWrite,
  startBenchCluster,
  total,
  type BenchCluster,
} from './cluster.js';
import {
  envNumber,
  latencyCell,
  log,
  ms,
  ratio,
  seconds,
  summarize,
  waitUntil,
  type Row,
  type SectionResult,
  type Target,
} from './common.js';

export interface ReconcileOptions {
  sequential: number;
  burst: number;
  steadySeconds: number;
}

export function reconcileOptionsFromEnv(quick: boolean): ReconcileOptions {
  return {
    sequential: envNumber('BENCH_RECONCILE_APPLIES', quick ? 20 : 50),
    burst: envNumber('BENCH_RECONCILE_BURST', quick ? 40 : 100),
    steadySeconds: envNumber('BENCH_STEADY_SECONDS', quick ? 10 : 30),
  };
}

type Cpr = KubeObject & {
  status?: {
    observedGeneration?: number;
    conditions?: { type: string; status: string; observedGeneration?: number }[];
  };
};

const CPR = { apiVersion: API_GROUP_VERSION, kind: CONTROL_PLANE_REVISION_KIND };
const now = (): number => performance.now();

function reconciled(obj: Cpr): boolean {
  const c = obj.status?.conditions?.find((x) => x.type === 'Reconciled');
  return (
    c?.status === 'True' &&
    (c.observedGeneration ?? obj.status?.observedGeneration) === obj.metadata?.generation
  );
}

/** Resolves the first time a watched object satisfies a predicate; one informer serves every waiter. */
class Arrivals<T extends KubeObject> {
  private readonly waiters = new Map<string, { test: (o: T) => boolean; resolve: (at: number) => void }>();
  constructor(readonly informer: Informer<T>) {
    const check = (obj: T): void => {
      const key = obj.metadata?.namespace
        ? `${obj.metadata.namespace}/${obj.metadata.name}`
        : (obj.metadata?.name ?? '');
      const w = this.waiters.get(key);
      if (w && w.test(obj)) {
        this.waiters.delete(key);
        w.resolve(now());
      }
    };
    informer.addHandlers({ onAdd: check, onUpdate: (_old, obj) => check(obj) });
  }

  /** Registered before the write that should cause it, so no event can be missed. */
  expect(key: string, test: (o: T) => boolean, timeoutMs = 120_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(new Error(`timed out waiting for ${key}`));
      }, timeoutMs);
      this.waiters.set(key, {
        test,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      });
      const present = this.informer.get(key);
      if (present && test(present)) {
        this.waiters.delete(key);
        clearTimeout(timer);
        resolve(now());
      }
    });
  }
}

interface OperatorCounts {
  requests: Record<string, number>;
  writes: number;
  reconciles: number;
}

async function operatorCounts(op: OperatorHandle): Promise<OperatorCounts> {
  const requests: Record<string, number> = {};
  for (const verb of ['get', 'list', 'watch', 'create', 'update', 'patch', 'apply', 'delete'] as const) {
    requests[verb] = op.client.requestCount(verb);
  }
  let reconciles = 0;
  for (const line of (await op.metrics.expose()).split('\n')) {
    if (line.startsWith('controller_runtime_reconcile_total{')) reconciles += Number(line.split(' ').at(-1));
  }
  return { requests, writes: op.client.writeCount(), reconciles };
}

function countsDelta(a: OperatorCounts, b: OperatorCounts): OperatorCounts {
  const requests: Record<string, number> = {};
  for (const [verb, n] of Object.entries(b.requests)) {
    const d = n - (a.requests[verb] ?? 0);
    if (d > 0) requests[verb] = d;
  }
  return { requests, writes: b.writes - a.writes, reconciles: b.reconciles - a.reconciles };
}

const requestsText = (r: Record<string, number>): string =>
  Object.entries(r)
    .map(([v, n]) => `${v} ${n}`)
    .join(', ') || 'none';

/** Waits until the operator has made no request for `quietMs` (its work after the last change is done). */
async function settle(op: OperatorHandle, quietMs = 3000, timeoutMs = 180_000): Promise<void> {
  let last = op.client.requestCount();
  let since = now();
  await waitUntil(
    'the operator to go quiet',
    () => {
      const current = op.client.requestCount();
      if (current !== last) {
        last = current;
        since = now();
      }
      return now() - since >= quietMs;
    },
    timeoutMs,
    100,
  );
}

async function apply(client: KubeClient, obj: KubeObject): Promise<void> {
  await client.apply(obj, { fieldManager: 'meshrev-bench', force: true });
}

export async function runReconcileBench(options: ReconcileOptions): Promise<SectionResult> {
  const cluster: BenchCluster = await startBenchCluster('reconcile');
  let operator: OperatorHandle | undefined;
  const informers: Informer[] = [];
  const logDir = join(cluster.state.stateDir, 'logs');
  try {
    const { client, kc } = cluster;
    await installCrds(client);
    await ensureNamespace(client, 'istio-system');
    await ensureNamespace(client, 'bench');

    mkdirSync(logDir, { recursive: true });
    const config = loadOperatorConfig(
      [
        `--kubeconfig=${cluster.state.kubeconfig}`,
        '--injector-host=127.0.0.1',
        '--injector-port=0',
        '--metrics-host=127.0.0.1',
        '--metrics-port=0',
        '--dev-webhook-routing=true',
        '--leader-elect=false',
        '--pod-name=bench-reconcile',
        '--resync-seconds=0',
        '--create-default-tag=false',
      ],
      {},
    );
    const logger = pino(
      { level: 'info', base: { component: 'meshrev' } },
      createWriteStream(join(logDir, 'operator.log')),
    );
    operator = await startOperator(config, { logger });
    const op = operator;

    const cprInformer = new Informer<Cpr>({
      resource: 'bench-cprs',
      listWatcher: kubeListWatcher<Cpr>(client, CPR),
    });
    const cmInformer = new Informer({
      resource: 'bench-configmaps',
      listWatcher: kubeListWatcher(client, { apiVersion: 'v1', kind: 'ConfigMap' }, { namespace: 'bench' }),
    });
    informers.push(cprInformer as unknown as Informer, cmInformer);
    cprInformer.start();
    cmInformer.start();
    await cprInformer.waitForSync();
    await cmInformer.waitForSync();
    const cprs = new Arrivals(cprInformer);
    const cms = new Arrivals(cmInformer);
    await settle(op);

    // --- baseline: a ConfigMap apply seen through a watch --------------------------------------------
    const cm = (name: string): KubeObject =>
      ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace: 'bench' },
        data: { key: name },
      }) as KubeObject;
    let before = await apiserverRequestCounts(kc);
    const cmLatency: number[] = [];
    for (let i = 0; i < options.sequential; i += 1) {
      const name = `bench-seq-${String(i).padStart(3, '0')}`;
      const seen = cms.expect(`bench/${name}`, () => true);
      const t0 = now();
      await apply(client, cm(name));
      cmLatency.push((await seen) - t0);
    }
    const cmRequests = diffCounts(before, await apiserverRequestCounts(kc));
    const cmBurstStart = now();
    await Promise.all(
      Array.from({ length: options.burst }, (_, i) => {
        const name = `bench-burst-${String(i).padStart(3, '0')}`;
        const seen = cms.expect(`bench/${name}`, () => true);
        return apply(client, cm(name)).then(() => seen);
      }),
    );
    const cmBurstMs = now() - cmBurstStart;
    log(
      `reconcile: baseline ConfigMap ${latencyCell(summarize(cmLatency))}, burst ${options.burst} in ${seconds(cmBurstMs)}`,
    );

    // --- sequential ControlPlaneRevision applies -------------------------------------------------------
    const cpr = (name: string): KubeObject =>
      ({ ...CPR, metadata: { name }, spec: { version: '1.29.6' } }) as KubeObject;
    before = await apiserverRequestCounts(kc);
    let opBefore = await operatorCounts(op);
    const cprLatency: number[] = [];
    for (let i = 0; i < options.sequential; i += 1) {
      const name = `bench-seq-${String(i).padStart(3, '0')}`;
      const done = cprs.expect(name, reconciled);
      const t0 = now();
      await apply(client, cpr(name));
      cprLatency.push((await done) - t0);
    }
    const seqSummary = summarize(cprLatency);
    log(`reconcile: sequential ${latencyCell(seqSummary)}; waiting for the operator to go quiet`);
    await settle(op);
    const seqApiserver = diffCounts(before, await apiserverRequestCounts(kc));
    const seqOperator = countsDelta(opBefore, await operatorCounts(op));

    // --- a burst of revisions at once ------------------------------------------------------------------
    before = await apiserverRequestCounts(kc);
    opBefore = await operatorCounts(op);
    const burstStart = now();
    const burstDone = await Promise.all(
      Array.from({ length: options.burst }, (_, i) => {
        const name = `bench-burst-${String(i).padStart(3, '0')}`;
        const done = cprs.expect(name, reconciled, 300_000);
        return apply(client, cpr(name)).then(() => done);
      }),
    );
    const burstMs = Math.max(...burstDone) - burstStart;
    const burstPerRevision = summarize(burstDone.map((t) => t - burstStart));
    log(`reconcile: burst of ${options.burst} reconciled in ${seconds(burstMs)}; waiting for quiet`);
    await settle(op);
    const burstApiserver = diffCounts(before, await apiserverRequestCounts(kc));
    const burstOperator = countsDelta(opBefore, await operatorCounts(op));

    // --- steady state: forced full resyncs, nothing changed ------------------------------------------
    before = await apiserverRequestCounts(kc);
    opBefore = await operatorCounts(op);
    const steadyStart = now();
    const resyncs = 3;
    for (let i = 0; i < resyncs; i += 1) {
      op.resyncNow();
      await settle(op, 2000);
    }
    // The rest of the window passes with the operator idle but watching.
    const remaining = options.steadySeconds * 1000 - (now() - steadyStart);
    if (remaining > 0) await new Promise((r) => setTimeout(r, remaining));
    const steadyApiserver = diffCounts(before, await apiserverRequestCounts(kc));
    const steadyOperator = countsDelta(opBefore, await operatorCounts(op));
    const steadyWindowMs = now() - steadyStart;
    const steadyApiserverWrites = new Map([...steadyApiserver].filter(([k]) => isWrite(k)));
    const revisionCount = options.sequential + options.burst;

    const rows: Row[] = [];
    const targets: Target[] = [];
    const cmSummary = summarize(cmLatency);
    rows.push({
      metric: `apply → Reconciled=True, ${options.sequential} distinct revisions one after another`,
      value: latencyCell(seqSummary),
      baseline: `ConfigMap apply → seen by a watch: ${latencyCell(cmSummary)}`,
      ratio: `p50 ${ratio(seqSummary.p50, cmSummary.p50)}, p99 ${ratio(seqSummary.p99, cmSummary.p99)}`,
    });
    rows.push({
      metric: `${options.burst} revisions applied at once → all Reconciled=True`,
      value: `${seconds(burstMs)} (per revision p50 ${ms(burstPerRevision.p50, 0)}, p99 ${ms(burstPerRevision.p99, 0)})`,
      baseline: `${options.burst} ConfigMaps at once → all seen: ${seconds(cmBurstMs)}`,
      ratio: ratio(burstMs, cmBurstMs),
    });
    const seqApiTotal = total(seqApiserver);
    const cmApiTotal = total(cmRequests);
    rows.push({
      metric: 'kube-apiserver requests per sequential revision (all clients, apply until quiet)',
      value: `${(seqApiTotal / options.sequential).toFixed(1)} (writes ${(total(seqApiserver, isWrite) / options.sequential).toFixed(1)})`,
      baseline: `${(cmApiTotal / options.sequential).toFixed(1)} per ConfigMap (writes ${(total(cmRequests, isWrite) / options.sequential).toFixed(1)})`,
      ratio: ratio(seqApiTotal, cmApiTotal),
    });
    rows.push({
      metric: "operator's own requests per sequential revision (its client counters)",
      value: `${(Object.values(seqOperator.requests).reduce((a, b) => a + b, 0) / options.sequential).toFixed(1)} (${requestsText(seqOperator.requests)}; ${seqOperator.reconciles} reconciles)`,
      baseline: '1 apply per ConfigMap',
    });
    rows.push({
      metric: "operator's own requests per burst revision",
      value: `${(Object.values(burstOperator.requests).reduce((a, b) => a + b, 0) / options.burst).toFixed(1)} (${requestsText(burstOperator.requests)}; ${burstOperator.reconciles} reconciles)`,
      baseline: '1 apply per ConfigMap',
    });
    rows.push({
      metric: `steady state: ${resyncs} forced resyncs of all ${revisionCount} revisions over ${seconds(steadyWindowMs)}`,
      value: `operator writes ${steadyOperator.writes}; operator requests ${requestsText(steadyOperator.requests)}; ${steadyOperator.reconciles} reconciles`,
      baseline: `kube-apiserver writes from all clients: ${countsText(steadyApiserverWrites)}`,
    });
    targets.push({
      name: 'steady-state writes by the operator',
      threshold: '0',
      measured: `${steadyOperator.writes} writes over ${steadyOperator.reconciles} reconciles (kube-apiserver: ${total(steadyApiserverWrites)} writes from all clients, ${countsText(steadyApiserverWrites, 4)})`,
      met: steadyOperator.writes === 0 && steadyOperator.reconciles >= revisionCount,
    });
    const notes = [
      'The operator runs in the benchmark process (startOperator, leader election off, default tag off, periodic resync off, 4 workers) against a private cluster started for this run and torn down after it.',
      'Latency is taken from the write to the first watch event (a separate informer in the benchmark) showing Reconciled=True at the applied generation.',
      `kube-apiserver request counts are apiserver_request_total before/after each phase; they include kube-controller-manager, kube-scheduler and KWOK acting on the istiod Deployments the revisions create. Sequential phase, all clients: ${countsText(seqApiserver, 14)}.`,
      `Burst phase, all clients: ${countsText(burstApiserver, 10)}.`,
      `Steady state: only the operator's write counter is judged; writes by other components (KWOK's node lease, node status) are listed beside it.`,
    ];
    return {
      name: 'Reconcile (real local cluster, kube-apiserver 1.36)',
      baseline:
        'a trivial ConfigMap apply, waited for through a watch, measured the same way in the same run.',
      rows,
      targets,
      notes,
      data: {
        options,
        cprLatencyMs: cprLatency,
        configMapLatencyMs: cmLatency,
        burstMs,
        burstPerRevisionMs: burstDone.map((t) => t - burstStart),
        cmBurstMs,
        apiserver: {
          configMaps: Object.fromEntries(cmRequests),
          sequential: Object.fromEntries(seqApiserver),
          burst: Object.fromEntries(burstApiserver),
          steady: Object.fromEntries(steadyApiserver),
        },
        operator: { sequential: seqOperator, burst: burstOperator, steady: steadyOperator },
      },
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(
      `${message}\n--- kube-apiserver ---\n${componentLog(cluster, 'kube-apiserver')}\n--- operator ---\n${componentLog(cluster, 'operator', 30)}`,
    );
  } finally {
    for (const informer of informers) await informer.stop();
    await operator?.stop();
    await cluster.stop();
  }
}
