// Scale benchmark on a private real cluster: thousands of namespaces and tens of thousands of pods created
// through the API (held by a scheduling gate, so neither the scheduler nor KWOK works on them), a few revisions,
// and the operator as a separate process (`node <OPERATOR_NODE_FLAGS> dist/src/cli/main.js operator`): its RSS (/proc/<pid>/status)
// and heap (its /metrics) after sync against the same operator idle on the empty cluster, and the time until a
// relabelled namespace shows in the revisions' in-use counts. Where the machine allows it the operator runs in a
// memory cgroup with its Deployment's limit (cgroup.ts), and at the end its injector takes bursts of admission
// requests on top of the 50,000 pods its informers hold: the most memory it needs, against the limit it ships with.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { repoPath } from '../hack/cluster/local-cluster.js';
import { OPERATOR_NODE_FLAGS } from '../src/cli/node-flags.js';
import {
  API_GROUP_VERSION,
  CONTROL_PLANE_REVISION_KIND,
  DEFAULT_CONTROL_PLANE_NAMESPACE,
} from '../src/crds/constants.js';
import { Informer, kubeListWatcher } from '../src/runtime/informer.js';
import { isAlreadyExists, type KubeClient } from '../src/runtime/kube.js';
import type { KubeObject } from '../src/runtime/types.js';
import { revisionWebhookConfigurationName } from '../src/controllers/common/names.js';
import { createMemoryCgroup, deploymentMemoryLimitBytes, type MemoryCgroup } from './cgroup.js';
import { LoadChild } from './load-child.js';
import type { LoadSpec } from './load-generator.js';
import { DISTINCT_PODS, REPLICA_VARIANTS, SOAK_MIX, type PayloadName, type PodVariety } from './payloads.js';
import {
  componentLog,
  ensureNamespace,
  installCrds,
  startBenchCluster,
  type BenchCluster,
} from './cluster.js';
import {
  envNumber,
  latencyCell,
  log,
  mib,
  ms,
  ratio,
  seconds,
  summarize,
  waitUntil,
  type Row,
  type SectionResult,
  type Target,
} from './common.js';

export interface ScaleOptions {
  namespaces: number;
  pods: number;
  revisions: number;
  relabels: number;
  concurrency: number;
  sampleSeconds: number;
  /** Length of each closed-loop injection burst at the end (the open-loop phase runs twice as long). */
  injectionBurstSeconds: number;
}

export function scaleOptionsFromEnv(quick: boolean): ScaleOptions {
  return {
    namespaces: envNumber('BENCH_SCALE_NAMESPACES', quick ? 500 : 5000),
    pods: envNumber('BENCH_SCALE_PODS', quick ? 5000 : 50_000),
    revisions: envNumber('BENCH_SCALE_REVISIONS', 3),
    relabels: envNumber('BENCH_SCALE_RELABELS', 5),
    concurrency: envNumber('BENCH_SCALE_CONCURRENCY', 64),
    sampleSeconds: envNumber('BENCH_SCALE_SAMPLE_SECONDS', quick ? 5 : 15),
    injectionBurstSeconds: envNumber('BENCH_SCALE_INJECTION_SECONDS', quick ? 3 : 10),
  };
}

type Cpr = KubeObject & { status?: { inUse?: { namespaces?: number; pods?: number; stalePods?: number } } };
const CPR = { apiVersion: API_GROUP_VERSION, kind: CONTROL_PLANE_REVISION_KIND };
const GATE = 'meshrev.dev/bench-hold';
const now = (): number => performance.now();

async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Creates an object, retrying what a busy API server or a not-yet-created default ServiceAccount refuses. */
async function createWithRetry(
  client: KubeClient,
  obj: KubeObject,
  stats: { retries: number },
): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await client.create(obj, { fieldManager: 'meshrev-bench' });
      return;
    } catch (err) {
      if (isAlreadyExists(err)) return;
      if (attempt >= 30) throw err;
      stats.retries += 1;
      await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** Math.min(attempt, 6))));
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function httpGet(port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** A field of /proc/<pid>/status in KiB; NaN once the process is gone. */
function procStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return Number.NaN;
  }
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

interface MemoryReading {
  rssMax: number;
  rssLast: number;
  heapUsedLast: number;
  heapUsedMax: number;
  heapTotalLast: number;
  externalLast: number;
  peakRss: number;
}

class OperatorProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly metricsPort: number,
    readonly injectorPort: number,
    readonly logFile: string,
  ) {}

  /** Starts the operator, inside `cgroup` when one is given (so Node sizes its heap from the cgroup's limit). */
  static async start(cluster: BenchCluster, name: string, cgroup?: MemoryCgroup): Promise<OperatorProcess> {
    const metricsPort = await freePort();
    const injectorPort = await freePort();
    const logFile = join(cluster.state.stateDir, 'logs', `operator-${name}.log`);
    const fd = openSync(logFile, 'a');
    const args = [
      ...OPERATOR_NODE_FLAGS,
      repoPath('dist', 'src', 'cli', 'main.js'),
      'operator',
      `--kubeconfig=${cluster.state.kubeconfig}`,
      '--injector-host=127.0.0.1',
      `--injector-port=${injectorPort}`,
      '--metrics-host=127.0.0.1',
      `--metrics-port=${metricsPort}`,
      '--leader-elect=false',
      '--dev-webhook-routing=true',
      `--pod-name=bench-${name}`,
      '--create-default-tag=false',
      '--resync-seconds=0',
    ];
    const [command, commandArgs] = cgroup?.wrap(process.execPath, args) ?? [process.execPath, args];
    const child = spawn(command, commandArgs, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const op = new OperatorProcess(child, metricsPort, injectorPort, logFile);
    await waitUntil(
      'the operator /readyz',
      async () => {
        if (child.exitCode !== null) throw new Error(`operator exited (${child.exitCode}): ${op.logTail()}`);
        return (await httpGet(metricsPort, '/readyz')).status === 200;
      },
      60_000,
      100,
    );
    return op;
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async heap(): Promise<{ used: number; total: number; external: number }> {
    const { text } = await httpGet(this.metricsPort, '/metrics');
    const value = (name: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
      return line ? Number(line.split(' ').at(-1)) : Number.NaN;
    };
    return {
      used: value('nodejs_heap_size_used_bytes'),
      total: value('nodejs_heap_size_total_bytes'),
      external: value('nodejs_external_memory_bytes'),
    };
  }

  /** Samples RSS and heap once a second for `secondsToSample` (the operator does nothing new meanwhile). */
  async sampleMemory(secondsToSample: number): Promise<MemoryReading> {
    const pid = this.child.pid!;
    const rss: number[] = [];
    const heap: number[] = [];
    let last = { used: Number.NaN, total: Number.NaN, external: Number.NaN };
    for (let i = 0; i < secondsToSample; i += 1) {
      rss.push(procStatusKiB(pid, 'VmRSS') * 1024);
      last = await this.heap();
      heap.push(last.used);
      await new Promise((r) => setTimeout(r, 1000));
    }
    return {
      rssMax: Math.max(...rss),
      rssLast: rss.at(-1)!,
      heapUsedLast: heap.at(-1)!,
      heapUsedMax: Math.max(...heap),
      heapTotalLast: last.total,
      externalLast: last.external,
      peakRss: procStatusKiB(pid, 'VmHWM') * 1024,
    };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
}

/** A closed-loop burst of one payload on 16 connections: distinct pods where the verdict cache could answer them. */
function closedBurst(title: string, name: PayloadName, variety: PodVariety): Burst {
  return {
    title,
    spec: (burstMs) => ({
      payloads: [{ name, weight: 1 }],
      mode: 'closed',
      connections: 16,
      durationMs: burstMs,
      variety,
      varieties: variety === 'distinct' ? DISTINCT_PODS : REPLICA_VARIANTS[name],
    }),
  };
}

interface Burst {
  title: string;
  spec: (burstMs: number) => Partial<LoadSpec>;
}

/** The injection bursts: the injection suite's payloads, its soak mix first. */
const BURSTS: Burst[] = [
  {
    title: 'small:realistic:2,000-env = 16:3:1 at 500 req/s, distinct pods (open loop)',
    spec: (burstMs) => ({
      payloads: [...SOAK_MIX],
      mode: 'open',
      rate: 500,
      connections: 32,
      durationMs: 2 * burstMs,
      variety: 'distinct',
      varieties: DISTINCT_PODS,
    }),
  },
  closedBurst('small pods, distinct, 16 connections (closed loop)', 'small', 'distinct'),
  closedBurst('2,000-env-var pods, 16 connections (closed loop)', 'env2000', 'replicas'),
  closedBurst('~1 MiB pods, 16 connections (closed loop)', 'mib', 'replicas'),
];

interface BurstReading {
  title: string;
  seconds: number;
  throughput: number;
  failed: number;
  firstProblem?: string;
  rssMax: number;
}

/** The CA the operator's injector serves under, from the revision's webhook configuration it wrote. */
async function injectorCaPem(client: KubeClient, revision: string): Promise<string> {
  let caBundle: string | undefined;
  await waitUntil(
    `the caBundle of ${revision}'s webhook configuration`,
    async () => {
      const webhook = await client.getOptional<{
        webhooks?: Array<{ clientConfig?: { caBundle?: string } }>;
      }>({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        name: revisionWebhookConfigurationName(revision, DEFAULT_CONTROL_PLANE_NAMESPACE),
      });
      caBundle = webhook?.webhooks?.[0]?.clientConfig?.caBundle;
      return caBundle !== undefined && caBundle !== '';
    },
    60_000,
    200,
  );
  return Buffer.from(caBundle!, 'base64').toString('utf8');
}

/** Runs the bursts against the operator's injector, sampling its RSS four times a second. */
async function injectionBursts(
  op: OperatorProcess,
  caPem: string,
  revision: string,
  burstMs: number,
): Promise<BurstReading[]> {
  const load = await LoadChild.start();
  const pid = op.child.pid!;
  const readings: BurstReading[] = [];
  try {
    for (const burst of BURSTS) {
      let rssMax = 0;
      const sampler = setInterval(() => {
        const rss = procStatusKiB(pid, 'VmRSS') * 1024;
        if (rss > rssMax) rssMax = rss;
      }, 250);
      const spec = burst.spec(burstMs);
      const result = await load.run({
        port: op.injectorPort,
        caPem,
        path: `/inject/${revision}`,
        warmupMs: 0,
        expectAllowed: true,
        ...spec,
      } as LoadSpec);
      clearInterval(sampler);
      const reading: BurstReading = {
        title: burst.title,
        seconds: (spec.durationMs ?? burstMs) / 1000,
        throughput: result.throughput,
        failed: result.errors + result.badResponses,
        rssMax,
        ...(result.firstProblem === undefined ? {} : { firstProblem: result.firstProblem }),
      };
      readings.push(reading);
      log(
        `scale: injection burst "${burst.title}": ${result.throughput.toFixed(0)} req/s, ${reading.failed} failed, operator RSS max ${mib(rssMax)}`,
      );
    }
  } finally {
    await load.stop();
  }
  return readings;
}

/** V8's heap limit for a Node process started in `cgroup` with the operator's flags (Node sizes it from the cgroup). */
function heapLimitIn(cgroup: MemoryCgroup): number {
  const [command, args] = cgroup.wrap(process.execPath, [
    ...OPERATOR_NODE_FLAGS,
    '-p',
    "require('node:v8').getHeapStatistics().heap_size_limit",
  ]);
  return Number(spawnSync(command, args, { encoding: 'utf8' }).stdout.trim());
}

export async function runScaleBench(options: ScaleOptions): Promise<SectionResult> {
  const cluster = await startBenchCluster('scale');
  let operator: OperatorProcess | undefined;
  let cprInformer: Informer<Cpr> | undefined;
  // The operator runs under its Deployment's memory limit where a memory cgroup can be made (one per operator
  // process, so each peak is its own); otherwise unconfined, and the report says why.
  const memoryLimit = deploymentMemoryLimitBytes();
  const cgroups: MemoryCgroup[] = [];
  let unconfined: string | undefined;
  const confine = (name: string): MemoryCgroup | undefined => {
    const made = createMemoryCgroup(`meshrev-bench-${process.pid}-${name}`, memoryLimit);
    if (typeof made === 'string') {
      unconfined = made;
      return undefined;
    }
    cgroups.push(made);
    return made;
  };
  try {
    const { client } = cluster;
    await installCrds(client);
    await ensureNamespace(client, 'istio-system');

    // --- baseline: the same operator idle on the empty cluster ----------------------------------------
    operator = await OperatorProcess.start(cluster, 'idle', confine('idle'));
    const idle = await operator.sampleMemory(options.sampleSeconds);
    await operator.stop();
    operator = undefined;
    log(`scale: idle operator RSS ${mib(idle.rssLast)}, heap ${mib(idle.heapUsedLast)}`);

    // --- namespaces and pods through the API ---------------------------------------------------------
    const revisions = Array.from(
      { length: options.revisions },
      (_, i) => `bench-${String.fromCharCode(97 + i)}`,
    );
    const nsNames = Array.from(
      { length: options.namespaces },
      (_, i) => `bench-ns-${String(i).padStart(5, '0')}`,
    );
    // Four of five namespaces select a revision; the fifth runs pods without sidecars.
    const revisionOf = (i: number): string | undefined =>
      i % 5 === 4 ? undefined : revisions[i % revisions.length];
    const stats = { retries: 0 };
    const nsStart = now();
    await pool(
      nsNames.map((name, i) => ({ name, i })),
      options.concurrency,
      async ({ name, i }) => {
        const rev = revisionOf(i);
        await createWithRetry(
          client,
          {
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: { name, labels: rev ? { 'istio.io/rev': rev } : {} },
          } as KubeObject,
          stats,
        );
      },
    );
    const nsMs = now() - nsStart;
    log(`scale: ${options.namespaces} namespaces in ${seconds(nsMs)}`);
    // Pods need their namespace's default ServiceAccount (ServiceAccount admission). kube-controller-manager
    // makes them at its client rate limit (20 QPS: minutes for thousands), so the benchmark creates them.
    const saStart = now();
    await pool(nsNames, options.concurrency, async (namespace) => {
      await createWithRetry(
        client,
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace } } as KubeObject,
        stats,
      );
    });
    const saMs = now() - saStart;

    const perNs = Math.ceil(options.pods / options.namespaces);
    const podSpecs: { ns: number; index: number }[] = [];
    for (let index = 0; index < perNs; index += 1) {
      for (let ns = 0; ns < options.namespaces && podSpecs.length < options.pods; ns += 1)
        podSpecs.push({ ns, index });
    }
    const expected = new Map(revisions.map((r) => [r, { namespaces: 0, pods: 0 }]));
    nsNames.forEach((_, i) => {
      const rev = revisionOf(i);
      if (rev) expected.get(rev)!.namespaces += 1;
    });
    const podStart = now();
    let created = 0;
    const progress = setInterval(() => log(`scale: ${created} pods created`), 15_000);
    try {
      await pool(podSpecs, options.concurrency, async ({ ns, index }) => {
        const namespace = nsNames[ns]!;
        const rev = revisionOf(ns);
        const app = `app-${index}`;
        const labels: Record<string, string> = { app, version: 'v1', 'pod-template-hash': '5d8f9c7b6d' };
        const annotations: Record<string, string> = {};
        const containers: Record<string, unknown>[] = [
          { name: app, image: `registry.example.com/${app}:1.0`, ports: [{ containerPort: 8080 }] },
        ];
        if (rev) {
          expected.get(rev)!.pods += 1;
          Object.assign(labels, {
            'istio.io/rev': rev,
            'security.istio.io/tlsMode': 'istio',
            'service.istio.io/canonical-name': app,
            'service.istio.io/canonical-revision': 'v1',
          });
          Object.assign(annotations, {
            'kubectl.kubernetes.io/default-container': app,
            'sidecar.istio.io/status': JSON.stringify({
              initContainers: null,
              containers: ['istio-proxy'],
              volumes: [
                'workload-socket',
                'credential-socket',
                'workload-certs',
                'istio-envoy',
                'istio-data',
                'istio-podinfo',
                'istio-token',
                'istiod-ca-cert',
              ],
              imagePullSecrets: null,
              revision: rev,
            }),
          });
          containers.unshift({
            name: 'istio-proxy',
            image: 'docker.io/istio/proxyv2:1.29.6',
            args: ['proxy', 'sidecar'],
          });
        }
        await createWithRetry(
          client,
          {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: `${app}-5d8f9c7b6d-x${index}`, namespace, labels, annotations },
            spec: { containers, schedulingGates: [{ name: GATE }], automountServiceAccountToken: false },
          } as KubeObject,
          stats,
        );
        created += 1;
      });
    } finally {
      clearInterval(progress);
    }
    const podMs = now() - podStart;
    const apiserverRss = procStatusKiB(cluster.state.pids['kube-apiserver']!, 'VmRSS') * 1024;
    log(`scale: ${options.pods} pods in ${seconds(podMs)} (${stats.retries} retries)`);

    for (const rev of revisions) {
      await client.apply({ ...CPR, metadata: { name: rev }, spec: { version: '1.29.6' } } as KubeObject, {
        fieldManager: 'meshrev-bench',
        force: true,
      });
    }
    cprInformer = new Informer<Cpr>({
      resource: 'bench-cprs',
      listWatcher: kubeListWatcher<Cpr>(client, CPR),
    });
    cprInformer.start();
    await cprInformer.waitForSync();
    const informer = cprInformer;
    const inUse = (rev: string) => informer.get(rev)?.status?.inUse;
    const countsMatch = (want: Map<string, { namespaces: number; pods: number }>): boolean =>
      [...want].every(([rev, w]) => inUse(rev)?.namespaces === w.namespaces && inUse(rev)?.pods === w.pods);

    // --- the operator on the full cluster ------------------------------------------------------------
    const syncStart = now();
    const scaleCgroup = confine('scale');
    operator = await OperatorProcess.start(cluster, 'scale', scaleCgroup);
    const op = operator;
    await waitUntil(
      'in-use counts of every revision',
      () => {
        if (op.child.exitCode !== null) throw new Error(`operator exited: ${op.logTail()}`);
        return countsMatch(expected);
      },
      300_000,
      50,
    );
    const syncMs = now() - syncStart;
    log(`scale: operator synced and counted in ${seconds(syncMs)}`);
    const loaded = await operator.sampleMemory(options.sampleSeconds);
    log(
      `scale: operator RSS ${mib(loaded.rssLast)} (max ${mib(loaded.rssMax)}, peak ${mib(loaded.peakRss)}), heap ${mib(loaded.heapUsedLast)}`,
    );

    // --- relabel namespaces from revision A to B -------------------------------------------------------
    const [revA, revB] = [revisions[0]!, revisions[1 % revisions.length]!];
    const candidates = nsNames.filter((_, i) => revisionOf(i) === revA).slice(0, options.relabels);
    const relabelMs: number[] = [];
    const want = new Map([...expected].map(([r, c]) => [r, { ...c }]));
    for (const name of candidates) {
      want.get(revA)!.namespaces -= 1;
      want.get(revB)!.namespaces += 1;
      const t0 = now();
      await client.apply(
        {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name, labels: { 'istio.io/rev': revB } },
        } as KubeObject,
        {
          fieldManager: 'meshrev-bench',
          force: true,
        },
      );
      await waitUntil(`in-use counts after relabelling ${name}`, () => countsMatch(want), 60_000, 10);
      relabelMs.push(now() - t0);
    }
    const relabel = summarize(relabelMs);
    const stale = inUse(revA)?.stalePods ?? 0;
    log(`scale: relabel → in-use ${latencyCell(relabel)}; ${revA} stalePods ${stale}`);

    // --- injection bursts on top of the informers' pods ------------------------------------------------
    const caPem = await injectorCaPem(client, revA);
    const bursts = await injectionBursts(op, caPem, revA, options.injectionBurstSeconds * 1000);
    const operatorAlive = op.child.exitCode === null && op.child.signalCode === null;
    const peakRss = procStatusKiB(op.child.pid!, 'VmHWM') * 1024;
    const cgroupPeak = scaleCgroup?.peakBytes();
    const oomKills = scaleCgroup?.oomKills();
    const heapLimit = scaleCgroup === undefined ? undefined : heapLimitIn(scaleCgroup);
    const burstFailures = bursts.reduce((n, b) => n + b.failed, 0);
    log(
      `scale: operator peak RSS ${mib(peakRss)}${scaleCgroup ? `, cgroup peak ${mib(cgroupPeak ?? Number.NaN)}, OOM kills ${oomKills ?? '?'}` : ` (unconfined: ${unconfined})`}`,
    );

    const rows: Row[] = [];
    const targets: Target[] = [];
    rows.push({
      metric: `create ${options.namespaces} namespaces through the API (${options.concurrency} concurrent, keep-alive)`,
      value: `${seconds(nsMs)} (${((options.namespaces / nsMs) * 1000).toFixed(0)}/s); their default ServiceAccounts ${seconds(saMs)}`,
    });
    rows.push({
      metric: `create ${options.pods} pods (scheduling-gated, ${perNs} per namespace)`,
      value: `${seconds(podMs)} (${((options.pods / podMs) * 1000).toFixed(0)}/s, ${stats.retries} retries)`,
      baseline: `kube-apiserver RSS afterwards ${mib(apiserverRss)}`,
    });
    rows.push({
      metric: 'operator start → every revision shows the right in-use counts',
      value: seconds(syncMs),
    });
    rows.push({
      metric: `operator RSS after sync (${options.sampleSeconds} s of samples; last / max / VmHWM peak)`,
      value: `${mib(loaded.rssLast)} / ${mib(loaded.rssMax)} / ${mib(loaded.peakRss)}`,
      baseline: `idle on the empty cluster: ${mib(idle.rssLast)} / ${mib(idle.rssMax)} / ${mib(idle.peakRss)}`,
      ratio: ratio(loaded.rssLast, idle.rssLast),
    });
    rows.push({
      metric: 'operator heap used after sync (last / max; heap total; external memory)',
      value: `${mib(loaded.heapUsedLast)} / ${mib(loaded.heapUsedMax)}; total ${mib(loaded.heapTotalLast)}; external ${mib(loaded.externalLast)}`,
      baseline: `idle: ${mib(idle.heapUsedLast)} / ${mib(idle.heapUsedMax)}; total ${mib(idle.heapTotalLast)}; external ${mib(idle.externalLast)}`,
      ratio: ratio(loaded.heapUsedLast, idle.heapUsedLast),
    });
    rows.push({
      metric: `relabel a namespace (${perNs} pods) ${revA} → ${revB}: until both revisions' in-use counts change (${relabelMs.length} times)`,
      value: latencyCell(relabel),
      baseline: '—',
    });
    targets.push({
      name: `operator RSS at ${options.pods} pods`,
      threshold: '< 256 MiB',
      measured: `${mib(loaded.rssMax)} (max over the samples; VmHWM peak during sync ${mib(loaded.peakRss)})`,
      met: loaded.rssMax < 256 * 2 ** 20,
    });
    for (const burst of bursts) {
      rows.push({
        metric: `injector after sync, ${burst.title}, ${burst.seconds} s`,
        value: `${burst.throughput.toFixed(0)} req/s, ${burst.failed} failed${burst.firstProblem ? ` (first: ${burst.firstProblem})` : ''}; operator RSS max ${mib(burst.rssMax)}`,
        baseline: '—',
      });
    }
    const confinement =
      scaleCgroup === undefined
        ? `not confined (${unconfined ?? 'no cgroup'}): V8 sized its heap from the machine's memory`
        : `in a memory cgroup limited to ${mib(memoryLimit)} (V8 heap limit there ${mib(heapLimit ?? Number.NaN)}); cgroup peak charge ${mib(cgroupPeak ?? Number.NaN)}, OOM kills ${oomKills ?? 'unknown'}`;
    rows.push({
      metric: 'operator memory over the whole run: peak RSS (VmHWM), sync, relabels and injection bursts',
      value: `${mib(peakRss)}; ${confinement}`,
      baseline: `the Deployment's limit: ${mib(memoryLimit)}`,
      ratio: `${((peakRss / memoryLimit) * 100).toFixed(0)}% of the limit`,
    });
    targets.push({
      name: `operator within its Deployment's memory limit at ${options.pods} pods and injection bursts`,
      threshold: `peak RSS < ${mib(memoryLimit)}, no OOM kill, every admission answered`,
      measured: `peak ${mib(peakRss)}, OOM kills ${oomKills ?? (scaleCgroup ? 'unknown' : 'n/a (not confined)')}, ${burstFailures} failed${operatorAlive ? '' : ', operator exited'}`,
      met: operatorAlive && peakRss < memoryLimit && (oomKills ?? 0) === 0 && burstFailures === 0,
    });
    targets.push({
      name: 'in-use status reflects a relabelled namespace',
      threshold: '< 5 s',
      measured: `max ${ms(relabel.max, 0)} (p50 ${ms(relabel.p50, 0)})`,
      met: relabel.max < 5000,
    });
    const notes = [
      `The operator runs as its own process (node ${OPERATOR_NODE_FLAGS.join(' ')} dist/src/cli/main.js operator, the image's flags; leader election off, default tag off); RSS from /proc/<pid>/status, heap from its /metrics (nodejs_heap_size_used_bytes).`,
      `Memory: the operator container's limit in deploy/deployment.yaml is ${mib(memoryLimit)}. ${scaleCgroup === undefined ? `This run could not make a memory cgroup (${unconfined ?? '?'}), so the operator ran unconfined, with V8's heap sized from the machine's memory; its RSS then climbs further before collections than it would under the limit.` : "Both operator processes ran in memory cgroups with that limit (bench/cgroup.ts), as the kubelet runs the container: the kernel enforces it and Node sizes V8's heap from it."} After the relabels the operator's injector (revision ${revA}) took the bursts above through its own HTTPS port, with its own certificate, while its informers held every pod.`,
      `Pods carry a scheduling gate (${GATE}) so kube-scheduler and KWOK leave them alone; a gated pod's status.phase is Pending, so it passes the operator's metadata-only pod watch (field selector status.phase!=Succeeded,status.phase!=Failed) and counts.`,
      `Four of five namespaces select one of ${options.revisions} revisions with istio.io/rev; their pods carry what injection adds (sidecar.istio.io/status with the revision, istio.io/rev label, an istio-proxy container). The pods are created before the revisions exist, so no webhook is involved.`,
      `After the relabels, ${revA} reports ${stale} stale pods (injected by ${revA}, now in namespaces selecting ${revB}).`,
    ];
    return {
      name: `Scale (${options.namespaces} namespaces, ${options.pods} pods, real local cluster)`,
      baseline: 'the same operator binary idle on the empty cluster (memory), in the same run.',
      rows,
      targets,
      notes,
      data: {
        options,
        idle,
        loaded,
        nsMs,
        saMs,
        podMs,
        syncMs,
        relabelMs,
        retries: stats.retries,
        apiserverRss,
        expected: Object.fromEntries(expected),
        memory: { limit: memoryLimit, unconfined, heapLimit, peakRss, cgroupPeak, oomKills, bursts },
      },
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(
      `${message}\n--- kube-apiserver ---\n${componentLog(cluster, 'kube-apiserver')}\n--- operator ---\n${operator?.logTail() ?? '(not running)'}`,
    );
  } finally {
    await cprInformer?.stop();
    await operator?.stop();
    await cluster.stop();
    for (const cgroup of cgroups) {
      try {
        cgroup.remove();
      } catch (error) {
        log(`scale: could not remove ${cgroup.path}: ${(error as Error).message}`);
      }
    }
  }
}
