// Injection benchmark: the real admission server (createInjectorServer) with the operator's own glue
// (InjectionService: revision spec → settingsFromRevision → engine, plus the operator's metrics hooks), over
// HTTPS keep-alive on 127.0.0.1, beside a trivial HTTPS echo server (parse the review, answer allowed:true)
// handling the same payloads in the same run as the ceiling. The load comes from a forked child process.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import pino from 'pino';

import { createInjectorServer, type InjectorServer } from '../src/injector/server.js';
import { DEFAULT_INJECTION_CACHE_LIMITS } from '../src/injector/cache.js';
import type { RenderedVerdict } from '../src/injector/render-job.js';
import { RenderPool, type Renderer, type RenderPoolStats } from '../src/injector/render-pool.js';
import { InjectionService, type ObjectLookup } from '../src/injector/service.js';
import { generateCertificateAuthority, issueServingCertificate } from '../src/injector/tls/certificates.js';
import { Metrics } from '../src/observability/metrics.js';
import type { KubeObject } from '../src/runtime/types.js';
import {
  cpuTicks,
  envNumber,
  latencyCell,
  type LatencySummary,
  log,
  mib,
  ms,
  ratio,
  type Row,
  type SectionResult,
  stallCell,
  stallProbe,
  stealPercent,
  summarize,
  type Target,
} from './common.js';
import { LoadChild } from './load-child.js';
import type { LoadResult, LoadSpec } from './load-generator.js';
import {
  DISTINCT_PODS,
  PAYLOAD_NAMES,
  PAYLOAD_TITLES,
  REPLICA_VARIANTS,
  SOAK_MIX,
  payloadBody,
  type PayloadName,
} from './payloads.js';

const REVISION = 'bench-1-29';

export interface InjectionOptions {
  latencySeconds: number;
  throughputSeconds: number;
  soakSeconds: number;
  soakRate: number;
  connections: number;
}

export function injectionOptionsFromEnv(quick: boolean): InjectionOptions {
  return {
    latencySeconds: envNumber('BENCH_LATENCY_SECONDS', quick ? 5 : 15),
    throughputSeconds: envNumber('BENCH_THROUGHPUT_SECONDS', quick ? 4 : 10),
    soakSeconds: envNumber('BENCH_SOAK_SECONDS', quick ? 30 : 300),
    soakRate: envNumber('BENCH_SOAK_RATE', 500),
    connections: envNumber('BENCH_CONNECTIONS', 16),
  };
}

type Variant = 'replicas' | 'distinct';
const VARIANTS: readonly Variant[] = ['replicas', 'distinct'];
const VARIANT_TITLES: Record<Variant, string> = {
  replicas: 'replica pods (identical reviews)',
  distinct: 'distinct pods (verdict cache misses)',
};
/** Payloads small enough for the injector's verdict cache (DEFAULT_INJECTION_CACHE_LIMITS.maxReviewChars). */
const CACHEABLE: ReadonlySet<PayloadName> = new Set(['small', 'realistic']);

/** Alternating injector/echo rounds per throughput measurement (see the throughput section). */
const THROUGHPUT_ROUNDS = 4;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Alternating injector/echo rounds per latency measurement, and the fewest requests a round may hold. */
const LATENCY_ROUNDS = 3;
const LATENCY_ROUND_MIN_SAMPLES = 500;
/**
 * Warm-up at the round's rate before the first round of each payload (1 s before later rounds). In the first
 * seconds of a new request shape V8's worker threads run in bursts (per-thread CPU from /proc: JIT and GC work),
 * and on 2 CPUs shared with the load generator they take the core the server's event loop needs: for the same
 * replica pods a 2 s warm-up measured p99 4–18 ms, 10 s measured 2–3.5 ms, while the server's own handling p99
 * stayed 0.7–0.8 ms. The latency targets are about a running injector, not its first seconds.
 */
const LATENCY_FIRST_WARMUP_MS = 8000;
/** How long the machine-stall probe spins (stallProbe), before and after the latency runs. */
const STALL_PROBE_MS = 3000;

type LatencyRound = {
  injector: LoadResult;
  echo: LoadResult;
  injectorStealPct?: number | undefined;
  echoStealPct?: number | undefined;
  /** The injector's own handling time of the round's measured requests. */
  handling?: LatencySummary;
  /** Cache misses of the injector run (warm-up included) rendered by a thread, and kept on the main thread. */
  misses?: { onThread: number; onMain: number };
};

type Percentiles = Pick<LatencySummary, 'p50' | 'p90' | 'p99'>;

interface LatencyRounds {
  rounds: LatencyRound[];
  /** Per percentile, the median over rounds. */
  injector: Percentiles;
  echo: Percentiles;
  minThroughput: number;
  failed: number;
  firstProblem?: string | undefined;
}

function summarizeRounds(rounds: LatencyRound[]): LatencyRounds {
  const medianOf = (which: 'injector' | 'echo'): Percentiles => ({
    p50: median(rounds.map((r) => r[which].latency.p50)),
    p90: median(rounds.map((r) => r[which].latency.p90)),
    p99: median(rounds.map((r) => r[which].latency.p99)),
  });
  return {
    rounds,
    injector: medianOf('injector'),
    echo: medianOf('echo'),
    minThroughput: Math.min(...rounds.map((r) => r.injector.throughput)),
    failed: rounds.reduce((n, r) => n + r.injector.errors + r.injector.badResponses, 0),
    firstProblem: rounds.find((r) => r.injector.firstProblem !== undefined)?.injector.firstProblem,
  };
}

const pct = (value: number | undefined): string => (value === undefined ? 'n/a' : `${value.toFixed(1)}%`);

const p99List = (summary: LatencyRounds, which: 'injector' | 'echo'): string =>
  summary.rounds.map((r) => r[which].latency.p99.toFixed(2)).join(' / ');

function roundsCell(summary: LatencyRounds, which: 'injector' | 'echo'): string {
  const m = summary[which];
  const n = summary.rounds.reduce((sum, r) => sum + r[which].latency.count, 0);
  const steal = summary.rounds.map((r) => pct(r[`${which}StealPct`])).join(' / ');
  return `p50 ${m.p50.toFixed(2)} / p90 ${m.p90.toFixed(2)} / p99 ${m.p99.toFixed(2)} ms (median round; p99 by round ${p99List(summary, which)}; steal ${steal}; n=${n})`;
}

/** The fixed offered rate of each payload's latency run. */
const LATENCY_RATES: Record<PayloadName, number> = { small: 1000, realistic: 200, env2000: 50, mib: 20 };

function mapLookup(objects: KubeObject[]): ObjectLookup {
  const byName = new Map(objects.map((o) => [o.metadata?.name ?? '', o]));
  return { get: (key) => byName.get(key), list: () => [...byName.values()] };
}

/**
 * The ceiling: reads the body, parses the review and allows it, on the same TLS material and keep-alive setup. Under
 * `/replay/<payload>` it answers instead with the patch the injector gave that payload when it was validated: the
 * reply meshrev must send, at no cost of its making, so the most any injector sending that patch could reach here.
 */
function createEchoServer(
  tls: { certPem: string; keyPem: string },
  replayPatches: ReadonlyMap<string, string>,
): https.Server {
  const server = https.createServer({
    key: tls.keyPem,
    cert: tls.certPem,
    minVersion: 'TLSv1.2',
    noDelay: true,
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 10_000;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let uid = '';
      try {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request?: { uid?: string } };
        uid = review.request?.uid ?? '';
      } catch {
        // an echo server answers anyway
      }
      const patch = replayPatches.get(req.url ?? '');
      const body = Buffer.from(
        JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response:
            patch === undefined
              ? { uid, allowed: true }
              : { uid, allowed: true, patchType: 'JSONPatch', patch },
        }),
      );
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
      res.end(body);
    });
  });
  return server;
}

function post(
  port: number,
  caPem: string,
  path: string,
  body: Buffer,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        ca: caPem,
        headers: { 'Content-Type': 'application/json', 'Content-Length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** One full check per payload before anything is timed: the injector really injects it. */
async function validatePayload(
  port: number,
  caPem: string,
  name: PayloadName,
): Promise<{ requestBytes: number; patchOps: number; responseBytes: number; patchBase64: string }> {
  const body = payloadBody(name);
  const reply = await post(port, caPem, `/inject/${REVISION}`, body);
  if (reply.status !== 200)
    throw new Error(`payload ${name}: HTTP ${reply.status}: ${reply.text.slice(0, 300)}`);
  const review = JSON.parse(reply.text) as {
    response?: { allowed?: boolean; patchType?: string; patch?: string; status?: unknown };
  };
  const response = review.response;
  if (response?.allowed !== true || response.patchType !== 'JSONPatch' || response.patch === undefined) {
    throw new Error(`payload ${name} was not injected: ${reply.text.slice(0, 300)}`);
  }
  const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as unknown[];
  if (!JSON.stringify(patch).includes('istio-proxy'))
    throw new Error(`payload ${name}: the patch adds no istio-proxy`);
  return {
    requestBytes: body.length,
    patchOps: patch.length,
    responseBytes: reply.text.length,
    patchBase64: response.patch,
  };
}

interface MemorySample {
  t: number;
  rss: number;
  heapUsed: number;
  afterGc: boolean;
}

export async function runInjectionBench(options: InjectionOptions): Promise<SectionResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const now = new Date();
  const ca = await generateCertificateAuthority({ now });
  const leaf = await issueServingCertificate({
    ca,
    now,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  const tls = { certPem: leaf.certPem, keyPem: leaf.keyPem };

  const revision: KubeObject = {
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'ControlPlaneRevision',
    metadata: { name: REVISION, resourceVersion: '1', generation: 1 },
    spec: { version: '1.29.6' },
  } as KubeObject;
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'node-0' },
    status: { nodeInfo: { kubeletVersion: 'v1.36.3' } },
  } as KubeObject;
  // As the operator runs it: render threads for cache misses (--injector-render-threads, default 1).
  const renderThreads = Number(process.env.BENCH_RENDER_THREADS ?? '1');
  const renderPool =
    renderThreads > 0
      ? new RenderPool({
          threads: renderThreads,
          logger: pino({ level: 'warn' }),
          offload: process.env.BENCH_RENDER_OFFLOAD === 'always' ? 'always' : 'when-busy',
        })
      : undefined;
  const injectionService = (renderer: Renderer | undefined): InjectionService => {
    const service = new InjectionService({
      revisions: mapLookup([revision]),
      tags: mapLookup([]),
      nodes: mapLookup([node]),
      // As in the operator: the ProxyConfig informer is there (empty, as where no ProxyConfig exists) and its index
      // is kept until a resource changes.
      proxyConfigs: mapLookup([]),
      ...(renderer === undefined ? {} : { renderer }),
    });
    service.cacheProxyConfigs();
    return service;
  };
  const injection = injectionService(renderPool);
  const metrics = new Metrics();
  // The server's own handling time per request (request headers parsed → reply handed to the socket), from the
  // same hook the operator's metrics use: what the injector adds, apart from the machine's scheduling. Collected
  // only during an injector latency round, so it never grows the heap the soak watches.
  let handlingMs: number[] | undefined;
  const logger = pino({ level: 'info' }, pino.destination('/dev/null'));
  const injectorServer = (service: InjectionService): InjectorServer =>
    createInjectorServer({
      host: '127.0.0.1',
      port: 0,
      tls,
      inject: service.inject,
      resolveTarget: service.resolveTarget,
      logger,
      // The operator's hooks, so the measured path pays for the same metrics.
      hooks: {
        onAdmission: (outcome, _revision, secondsTaken) => {
          handlingMs?.push(secondsTaken * 1000);
          metrics.webhookRequest('/inject', outcome === 'error' ? 500 : 200, secondsTaken);
          metrics.injection(
            outcome === 'injected' ? 'success' : outcome === 'skipped' ? 'skip' : 'failure',
            secondsTaken,
          );
        },
      },
    });
  const injector = injectorServer(injection);
  const { port: injectorPort } = await injector.listen();
  // The injector with a free engine: the same server, glue, verdict cache and hooks, but each miss is answered at
  // once, as a render thread would answer it, with the verdict the real engine gave the payload when it was
  // validated. It still decodes the review, keys it, builds and writes the reply; it only renders nothing. Its share
  // of echo is the most the injector's request path could reach for distinct pods on this machine with any engine.
  const recordedVerdicts = new Map<PayloadName, RenderedVerdict>();
  let freeEnginePayload: PayloadName = 'small';
  const freeEngine = injectorServer(
    injectionService({
      render: () => {
        const verdict = recordedVerdicts.get(freeEnginePayload);
        return verdict === undefined ? undefined : Promise.resolve(verdict);
      },
    }),
  );
  const { port: freeEnginePort } = await freeEngine.listen();
  // Filled as each payload is validated: the injector's patch for it, which the echo server replays.
  const replayPatches = new Map<string, string>();
  const echo = createEchoServer(tls, replayPatches);
  const echoPort = await new Promise<number>((resolve) =>
    echo.listen(0, '127.0.0.1', () => {
      const a = echo.address();
      resolve(typeof a === 'object' && a !== null ? a.port : 0);
    }),
  );
  const load = await LoadChild.start();
  log(`injection: injector on :${injectorPort}, echo on :${echoPort}, load generator pid ${load.pid()}`);

  const rows: Row[] = [];
  const targets: Target[] = [];
  const notes: string[] = [];
  const data: Record<string, unknown> = { options };

  try {
    const sizes: Record<string, unknown> = {};
    for (const name of PAYLOAD_NAMES) {
      const { patchBase64, ...size } = await validatePayload(injectorPort, ca.certPem, name);
      replayPatches.set(`/replay/${name}`, patchBase64);
      const patchJson = Buffer.from(patchBase64, 'base64').toString('utf8');
      recordedVerdicts.set(name, { kind: 'injected', patchJson, patchBase64 });
      sizes[name] = size;
    }
    data.payloads = sizes;
    log(`injection: payloads validated ${JSON.stringify(sizes)}`);

    const spec = (port: number, path: string, payload: PayloadName, over: Partial<LoadSpec>): LoadSpec => ({
      port,
      caPem: ca.certPem,
      path,
      payloads: [{ name: payload, weight: 1 }],
      mode: 'open',
      connections: 32,
      durationMs: options.latencySeconds * 1000,
      warmupMs: 2000,
      expectAllowed: true,
      variety: 'replicas',
      varieties: REPLICA_VARIANTS[payload],
      ...over,
    });
    const targetsOf = { injector: [injectorPort, `/inject/${REVISION}`], echo: [echoPort, '/echo'] } as const;

    // Each payload is sent two ways where it matters. "replicas": the pods of one ReplicaSet, as a Deployment's
    // scale-up or rollout reaches the webhook (identical but for the token volume's name; the injector may answer
    // later replicas from its verdict cache). "distinct": DISTINCT_PODS pods of as many ReplicaSets, more than the
    // cache holds or remembers, so every request is keyed, misses and runs the engine. Pods over the cache's size bound (2,000-env, 1 MiB) are
    // never cached, so they run once.
    const runs: Array<{ name: PayloadName; variant: Variant }> = [];
    for (const name of PAYLOAD_NAMES) {
      runs.push({ name, variant: 'replicas' });
      if (CACHEABLE.has(name)) runs.push({ name, variant: 'distinct' });
    }
    const variantSpec = (variant: Variant, name: PayloadName): Partial<LoadSpec> =>
      variant === 'distinct'
        ? { variety: 'distinct', varieties: DISTINCT_PODS }
        : { variety: 'replicas', varieties: REPLICA_VARIANTS[name] };
    const runTitle = (name: PayloadName, variant: Variant): string =>
      CACHEABLE.has(name) ? `${PAYLOAD_TITLES[name]}, ${VARIANT_TITLES[variant]}` : PAYLOAD_TITLES[name];
    const runKey = (name: PayloadName, variant: Variant): string => `${name}/${variant}`;

    // --- latency at a fixed offered rate (open loop) -------------------------------------------------
    // Like throughput, injector and echo alternate in LATENCY_ROUNDS rounds (injector first, then echo first, …),
    // each long enough for LATENCY_ROUND_MIN_SAMPLES requests, and the machine's steal time is recorded for every
    // round. A tail percentile on a shared VM moves with the hypervisor's scheduling from one minute to the next:
    // the verdict uses the median round's p99, and every round's p99 is printed beside it, so nothing is hidden.
    const latency: Record<string, LatencyRounds> = {};
    const stallsBefore = stallProbe(STALL_PROBE_MS);
    log(`injection: stall probe before the latency runs: ${stallCell(stallsBefore)}`);
    for (const { name, variant } of runs) {
      const rate = LATENCY_RATES[name];
      const roundMs = Math.max(
        (options.latencySeconds * 1000) / LATENCY_ROUNDS,
        (LATENCY_ROUND_MIN_SAMPLES / rate) * 1000,
      );
      const rounds: LatencyRound[] = [];
      for (let round = 0; round < LATENCY_ROUNDS; round++) {
        const result = {} as LatencyRound;
        const order = round % 2 === 0 ? (['injector', 'echo'] as const) : (['echo', 'injector'] as const);
        for (const which of order) {
          const [port, path] = targetsOf[which];
          const before = cpuTicks();
          const handled: number[] = [];
          if (which === 'injector') handlingMs = handled;
          const poolBefore = renderPool?.stats();
          result[which] = await load.run(
            spec(port, path, name, {
              rate,
              durationMs: roundMs,
              warmupMs: round === 0 ? LATENCY_FIRST_WARMUP_MS : 1000,
              ...variantSpec(variant, name),
            }),
          );
          result[`${which}StealPct`] = stealPercent(before, cpuTicks());
          handlingMs = undefined;
          // The warm-up's requests come first; the measured ones are the last `completed`.
          if (which === 'injector') result.handling = summarize(handled.slice(-result.injector.completed));
          const poolAfter = renderPool?.stats();
          if (which === 'injector' && poolBefore !== undefined && poolAfter !== undefined) {
            const onMain = (s: RenderPoolStats) => s.kept + s.declined + s.lost + s.failed;
            result.misses = {
              onThread: poolAfter.rendered - poolBefore.rendered,
              onMain: onMain(poolAfter) - onMain(poolBefore),
            };
          }
        }
        rounds.push(result);
        log(
          `injection: ${runKey(name, variant)} @${rate}/s round ${round + 1}: injector ${latencyCell(result.injector.latency)} (steal ${pct(result.injectorStealPct)}), echo ${latencyCell(result.echo.latency)} (steal ${pct(result.echoStealPct)}) errors=${result.injector.errors + result.injector.badResponses}${result.misses ? ` misses on thread/main ${result.misses.onThread}/${result.misses.onMain}` : ''}`,
        );
      }
      const summary = summarizeRounds(rounds);
      latency[runKey(name, variant)] = summary;
      rows.push({
        metric: `${runTitle(name, variant)}: latency at ${rate} req/s (open loop, ${LATENCY_ROUNDS} alternating rounds of ${(roundMs / 1000).toFixed(0)} s)`,
        value: roundsCell(summary, 'injector'),
        baseline: roundsCell(summary, 'echo'),
        ratio: `median p99 ${ratio(summary.injector.p99, summary.echo.p99)}`,
      });
      if (summary.failed > 0)
        notes.push(
          `${runKey(name, variant)}: ${summary.failed} failed requests (first: ${summary.firstProblem ?? '?'})`,
        );
    }
    data.latency = latency;
    const stallsAfter = stallProbe(STALL_PROBE_MS);
    log(`injection: stall probe after the latency runs: ${stallCell(stallsAfter)}`);
    data.stallProbe = { before: stallsBefore, after: stallsAfter };
    rows.push({
      metric:
        'machine stalls: a thread spinning alone (servers and generator idle), before / after the latency runs',
      value: `${stallCell(stallsBefore)} / ${stallCell(stallsAfter)}`,
      baseline: '—',
      ratio: '—',
    });
    for (const variant of VARIANTS) {
      const small = latency[runKey('small', variant)]!;
      rows.push({
        metric: `small pod @1000/s, ${VARIANT_TITLES[variant]}: latency from scheduled send time (generator lag included), p99 by round`,
        value: `p99 ${small.rounds.map((r) => r.injector.latencyFromSchedule!.p99.toFixed(2)).join(' / ')} ms`,
        baseline: `p99 ${small.rounds.map((r) => r.echo.latencyFromSchedule!.p99.toFixed(2)).join(' / ')} ms`,
        ratio: `generator lag p99 ${small.rounds.map((r) => r.injector.sendLag!.p99.toFixed(2)).join(' / ')} ms`,
      });
      rows.push({
        metric: `small pod @1000/s, ${VARIANT_TITLES[variant]}: the injector's own handling time (request headers parsed → reply written), by round`,
        value: small.rounds.map((r) => (r.handling ? latencyCell(r.handling) : 'n/a')).join('; '),
        baseline: '—',
        ratio: '—',
      });
      if (small.rounds.every((r) => r.misses !== undefined))
        rows.push({
          metric: `small pod @1000/s, ${VARIANT_TITLES[variant]}: cache misses rendered by the render thread / on the main thread (warm-up included), by round`,
          value: small.rounds.map((r) => `${r.misses!.onThread} / ${r.misses!.onMain}`).join('; '),
          baseline: '—',
          ratio: '—',
        });
      targets.push({
        name: `small pod p99 at 1,000 req/s, ${VARIANT_TITLES[variant]}`,
        threshold: '< 2 ms (median of rounds)',
        measured: `${ms(small.injector.p99)} (rounds ${p99List(small, 'injector')} ms; lowest rate achieved ${small.minThroughput.toFixed(0)} req/s, ${small.failed} failed)`,
        met: small.injector.p99 < 2 && small.minThroughput >= 950 && small.failed === 0,
      });
    }
    const env = latency[runKey('env2000', 'replicas')]!;
    targets.push({
      name: '2,000-env-var pod latency (p99)',
      threshold: '< 10 ms (median of rounds)',
      measured: `p99 ${ms(env.injector.p99)} (rounds ${p99List(env, 'injector')} ms), p50 ${ms(env.injector.p50)}`,
      met: env.injector.p99 < 10 && env.failed === 0,
    });
    const big = latency[runKey('mib', 'replicas')]!;
    targets.push({
      name: '1 MiB pod latency (p99)',
      threshold: '< 50 ms (median of rounds)',
      measured: `p99 ${ms(big.injector.p99)} (rounds ${p99List(big, 'injector')} ms), p50 ${ms(big.injector.p50)}`,
      met: big.injector.p99 < 50 && big.failed === 0,
    });
    // --- max throughput (closed loop, N keep-alive connections) -------------------------------------
    // Injector and echo alternate in THROUGHPUT_ROUNDS short rounds (injector first, then echo first, …) and the
    // ratio is the median of the per-round ratios: on a shared 2-CPU machine the capacity drifts over seconds, and
    // one long run of each would compare different moments.
    // Each round also runs the echo server replaying the injector's own patch for the payload (createEchoServer):
    // how far the reply's size alone, sent over TLS and read by the generator, puts the ceiling below echo's. Rounds
    // of distinct pods run the injector with a free engine too: how far the rest of its request path does.
    type Contender = 'injector' | 'freeEngine' | 'replay' | 'echo';
    type ThroughputRound = Partial<Record<Contender, LoadResult>> &
      Record<'injector' | 'replay' | 'echo', LoadResult>;
    const throughput: Record<string, { rounds: ThroughputRound[] }> = {};
    const roundMs = Math.max(2000, (options.throughputSeconds * 1000) / THROUGHPUT_ROUNDS);
    for (const { name, variant } of runs) {
      const rounds: ThroughputRound[] = [];
      const targetOf: Record<Contender, readonly [number, string]> = {
        ...targetsOf,
        freeEngine: [freeEnginePort, `/inject/${REVISION}`],
        replay: [echoPort, `/replay/${name}`],
      };
      const contenders: Contender[] =
        variant === 'distinct'
          ? ['injector', 'freeEngine', 'replay', 'echo']
          : ['injector', 'replay', 'echo'];
      freeEnginePayload = name;
      for (let round = 0; round < THROUGHPUT_ROUNDS; round++) {
        const result = {} as ThroughputRound;
        for (const which of round % 2 === 0 ? contenders : [...contenders].reverse()) {
          const [port, path] = targetOf[which];
          result[which] = await load.run(
            spec(port, path, name, {
              mode: 'closed',
              connections: options.connections,
              durationMs: roundMs,
              warmupMs: 500,
              ...variantSpec(variant, name),
            }),
          );
        }
        rounds.push(result);
        const freeEngineLog =
          result.freeEngine === undefined
            ? ''
            : `, free engine ${result.freeEngine.throughput.toFixed(0)} req/s`;
        log(
          `injection: ${runKey(name, variant)} closed loop round ${round + 1}: injector ${result.injector.throughput.toFixed(0)} req/s${freeEngineLog}, echo ${result.echo.throughput.toFixed(0)} req/s, echo replaying the patch ${result.replay.throughput.toFixed(0)} req/s`,
        );
      }
      throughput[runKey(name, variant)] = { rounds };
      const sharesOf = (which: Contender): number[] =>
        rounds.map((r) => (r[which]?.throughput ?? 0) / r.echo.throughput);
      const shares = sharesOf('injector');
      const share = median(shares);
      const replayShare = median(sharesOf('replay'));
      const failed = rounds.reduce((n, r) => n + r.injector.errors + r.injector.badResponses, 0);
      const perRound = (which: Contender): string =>
        rounds.map((r) => (r[which]?.throughput ?? 0).toFixed(0)).join(' / ');
      const p99 = (which: Contender): string =>
        ms(Math.max(...rounds.map((r) => r[which]?.latency.p99 ?? 0)));
      const percents = (values: number[]): string => values.map((x) => (x * 100).toFixed(0)).join(' / ');
      const comparison = (which: Contender, metric: string): Row => ({
        metric: `${runTitle(name, variant)}: ${metric}`,
        value: `${perRound(which)} req/s (p99 ≤ ${p99(which)})`,
        baseline: `${perRound('echo')} req/s`,
        ratio: `median ${(median(sharesOf(which)) * 100).toFixed(0)}% (${percents(sharesOf(which))})`,
      });
      rows.push({
        metric: `${runTitle(name, variant)}: max throughput, ${options.connections} connections (closed loop, ${THROUGHPUT_ROUNDS} alternating rounds)`,
        value: `${perRound('injector')} req/s (p99 ≤ ${p99('injector')})`,
        baseline: `${perRound('echo')} req/s (p99 ≤ ${p99('echo')})`,
        ratio: `median ${(share * 100).toFixed(0)}% (${percents(shares)})`,
      });
      const measured = [`the reply alone: ${(replayShare * 100).toFixed(0)}%`];
      if (contenders.includes('freeEngine')) {
        rows.push(
          comparison(
            'freeEngine',
            "the injector with a free engine, every miss answered at once with the payload's recorded verdict (same rounds)",
          ),
        );
        measured.unshift(`with a free engine: ${(median(sharesOf('freeEngine')) * 100).toFixed(0)}%`);
      }
      rows.push(
        comparison(
          'replay',
          "the reply alone, the echo server answering with the injector's patch for the payload (same rounds)",
        ),
      );
      targets.push({
        name: `${runTitle(name, variant)}: throughput vs echo ceiling`,
        threshold: '≥ 50% (median of rounds)',
        measured: `${(share * 100).toFixed(0)}% (${measured.join('; ')})`,
        met: share >= 0.5 && failed === 0,
      });
    }
    data.throughput = throughput;
    data.verdictCache = injection.cacheStats();

    // --- memory over a long run --------------------------------------------------------------------
    const samples: MemorySample[] = [];
    const started = Date.now();
    const sample = (afterGc: boolean): void => {
      if (afterGc) gc?.();
      const m = process.memoryUsage();
      samples.push({
        t: (Date.now() - started) / 1000,
        rss: m.rss,
        heapUsed: m.heapUsed,
        afterGc: afterGc && gc !== undefined,
      });
    };
    sample(true);
    let ticks = 0;
    // Steal time over the whole soak and its worst 10 s, since a tail over 5 minutes is the machine's as often as
    // the injector's.
    const soakTicksBefore = cpuTicks();
    let windowTicks = soakTicksBefore;
    let worstWindowSteal: number | undefined;
    const sampler = setInterval(() => {
      ticks += 1;
      const tenSecondMark = ticks % 10 === 0;
      sample(tenSecondMark);
      if (tenSecondMark) {
        const now = cpuTicks();
        const steal = stealPercent(windowTicks, now);
        if (steal !== undefined) worstWindowSteal = Math.max(worstWindowSteal ?? 0, steal);
        windowTicks = now;
      }
    }, 1000);
    const soak = await load.run({
      port: injectorPort,
      caPem: ca.certPem,
      path: `/inject/${REVISION}`,
      payloads: [...SOAK_MIX],
      mode: 'open',
      rate: options.soakRate,
      connections: 32,
      durationMs: options.soakSeconds * 1000,
      warmupMs: 0,
      expectAllowed: true,
      // Distinct pods keep the verdict cache's window of keys churning: the harder case for flat memory.
      variety: 'distinct',
      varieties: DISTINCT_PODS,
    });
    clearInterval(sampler);
    const soakSteal = stealPercent(soakTicksBefore, cpuTicks());
    sample(true);
    data.soak = { result: soak, samples, stealPct: soakSteal, worstTenSecondStealPct: worstWindowSteal };
    log(
      `injection: soak ${options.soakSeconds} s at ${options.soakRate}/s: ${latencyCell(soak.latency)}, ${soak.errors + soak.badResponses} failed (steal ${pct(soakSteal)}, worst 10 s ${pct(worstWindowSteal)})`,
    );
    const gcSamples = samples.filter((s) => s.afterGc);
    // The first post-GC figure after a tenth of the run (caches and pools warm) against the last one.
    const warm = gcSamples.find((s) => s.t >= options.soakSeconds / 10) ?? gcSamples[0]!;
    const last = gcSamples.at(-1)!;
    const half = options.soakSeconds / 2;
    const rssFirstHalfMax = Math.max(...samples.filter((s) => s.t <= half).map((s) => s.rss));
    const rssSecondHalfMax = Math.max(...samples.filter((s) => s.t > half).map((s) => s.rss));
    const heapGrowth = last.heapUsed - warm.heapUsed;
    const rssGrowth = rssSecondHalfMax - rssFirstHalfMax;
    const flat =
      heapGrowth <= Math.max(2 * 2 ** 20, warm.heapUsed * 0.05) && rssGrowth <= rssFirstHalfMax * 0.1;
    rows.push({
      metric: `soak: ${options.soakSeconds} s at ${options.soakRate} req/s (small:realistic:2,000-env = 16:3:1, distinct pods)`,
      value: `${soak.completed} answered, ${soak.errors + soak.badResponses} failed, ${latencyCell(soak.latency)}; steal ${pct(soakSteal)} (worst 10 s ${pct(worstWindowSteal)})`,
    });
    rows.push({
      metric: 'soak: server heap after GC (warm → end)',
      value: `${mib(warm.heapUsed)} at ${warm.t.toFixed(0)} s → ${mib(last.heapUsed)} at ${last.t.toFixed(0)} s`,
      ...(gc === undefined ? { baseline: 'no --expose-gc: plain samples' } : {}),
    });
    rows.push({
      metric: 'soak: server RSS max (first half → second half)',
      value: `${mib(rssFirstHalfMax)} → ${mib(rssSecondHalfMax)}`,
    });
    targets.push({
      name: 'memory flat over the soak',
      threshold: 'post-GC heap growth ≤ max(2 MiB, 5%) and RSS max growth ≤ 10%',
      measured: `heap ${heapGrowth >= 0 ? '+' : ''}${mib(heapGrowth)}, RSS ${rssGrowth >= 0 ? '+' : ''}${mib(rssGrowth)} over ${options.soakSeconds} s`,
      met: flat && soak.errors + soak.badResponses === 0,
    });
    notes.push(
      "Load generator: a forked child process (bench/load-generator.ts) talking to the servers through a lean pool of keep-alive TLS connections on 127.0.0.1 (bench/lean-client.ts; Node's https client cost it as much CPU per request as the server spends); the servers run in the benchmark process, so generator and server each have their own event loop and core.",
      'Latency is measured in the generator from the moment a request is written to the end of its response; the "from scheduled send time" row adds the generator\'s own timer lag (coordinated-omission view).',
      `Replica pods: the pods of one ReplicaSet as they reach a webhook (generateName, no name yet), identical but for the random suffix of their service-account token volume (kube-api-access-xxxxx, a different one per request); the injector answers later replicas from its verdict cache, renaming the token volume (src/injector/cache.ts). Distinct pods: the first pods of ${DISTINCT_PODS} ReplicaSets (each its own generateName and owner, so its own workload name) cycled in order, more than the cache keeps (${DEFAULT_INJECTION_CACHE_LIMITS.maxEntries} entries) or remembers (as many keys seen once), so every request is keyed, misses and runs the whole engine, and none is kept (named pods, a StatefulSet's or bare ones, skip the cache and its key). Verdict cache after the throughput runs: ${JSON.stringify(data.verdictCache)}.`,
      renderPool === undefined
        ? "Render threads: none (BENCH_RENDER_THREADS=0); every cache miss is rendered on the server's main thread."
        : `Render threads: ${renderThreads} (the operator's --injector-render-threads default is 1), offload ${process.env.BENCH_RENDER_OFFLOAD === 'always' ? 'always' : 'when-busy (the default: misses go to the thread only while the main thread is busy)'} (src/injector/render-pool.ts); jobs at the end: ${JSON.stringify(renderPool.stats())}.`,
      'Echo ceiling: the same TLS material and keep-alive settings; it reads and JSON-parses the review and answers allowed:true. On 2 CPUs the generator needs one core of its own; with the lean pool the echo server, not the generator, bounds the closed-loop ceiling (it runs at ~96% of a core).',
      "The reply alone: the same echo server answering each review with the patch the injector gave that payload (recorded when the payload was validated), in the same alternating rounds. It computes nothing an injector must, so its share of echo is the most any injector sending meshrev's patch could reach on this machine; what separates the injector from it is the injector's own work (decoding the review, the verdict cache's key, the engine, the patch's serialisation).",
      "The injector with a free engine (distinct pods only): a second injector server, built as the first (server, InjectionService, verdict cache, metrics hooks), whose render thread is replaced by one that answers every job at once with the verdict the real engine gave the payload when it was validated. It decodes and keys each review and builds and writes the reply as the injector does, and renders nothing; its share of echo is the most the injector's request path could reach for pods it must render, whatever the engine cost. Between it and the reply alone lies the rest of the request path (decoding into the pod, the cache key, the reply's assembly); between it and the injector, the engine and the patch's serialisation.",
      `Payload sizes (request bytes / patch operations): ${PAYLOAD_NAMES.map((n) => {
        const s = sizes[n] as { requestBytes: number; patchOps: number };
        return `${n} ${s.requestBytes} B / ${s.patchOps} ops`;
      }).join(', ')}.`,
    );
  } finally {
    await load.stop();
    await injector.close(1000);
    await freeEngine.close(1000);
    await renderPool?.close();
    echo.closeAllConnections();
    await new Promise<void>((resolve) => echo.close(() => resolve()));
  }

  return {
    name: 'Injection (HTTPS admission server, keep-alive, 127.0.0.1)',
    baseline:
      'a trivial HTTPS echo server (parse the AdmissionReview, answer allowed:true) given the same payloads at the same rate in the same run.',
    rows,
    targets,
    notes,
    data,
  };
}
