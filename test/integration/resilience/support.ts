// Shared pieces of the resilience suites: the operator as a real child process (so it can be SIGKILLed and
// its RSS read), the test cluster's state for fault injection, a loopback TCP proxy that can partition an
// operator from kube-apiserver, etcd compaction, and checks that every revision's objects are exactly
// what it should own.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';

import { readState, type ClusterState } from '../../../hack/cluster/local-cluster.js';
import { OPERATOR_NODE_FLAGS } from '../../../src/cli/node-flags.js';
import { desiredRevisionObjects } from '../../../src/controllers/revision/desired.js';
import { OWNED_KINDS } from '../../../src/controllers/owned.js';
import { API_GROUP_VERSION } from '../../../src/crds/constants.js';
import { parseControlPlaneRevision } from '../../../src/crds/controlplanerevision.js';
import type { KubeClient } from '../../../src/runtime/kube.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { componentLogs, testKubeconfigPath, uniqueName, waitFor } from '../../support/kube.js';
import { repoRoot } from '../../support/operator.js';

export const CPR = { apiVersion: API_GROUP_VERSION, kind: 'ControlPlaneRevision' };
export const TAG = { apiVersion: API_GROUP_VERSION, kind: 'RevisionTag' };
export const FIELD_MANAGER = 'meshrev-resilience-tests';

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}
export type Cpr = KubeObject & {
  spec?: Record<string, unknown>;
  status?: { conditions?: Condition[]; version?: string; observedGeneration?: number };
};

/** The running test cluster as recorded by the global setup; fault injection needs its pids and flags. */
export function clusterState(): ClusterState {
  const dir = process.env.MESHREV_TEST_CLUSTER_DIR;
  const state = dir ? readState(dir) : undefined;
  if (!state) {
    throw new Error(
      'the resilience suites stop and start cluster components, so they need the cluster the global setup ' +
        'started (MESHREV_TEST_CLUSTER_DIR with a state.json); unset MESHREV_TEST_KUBECONFIG',
    );
  }
  return state;
}

export function condition(obj: { status?: { conditions?: Condition[] } } | undefined, type: string) {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

/** Reconciled=True for the object's current generation. */
export function reconciledNow(cpr: Cpr | undefined): boolean {
  const c = condition(cpr, 'Reconciled');
  return c?.status === 'True' && c.observedGeneration === cpr?.metadata?.generation;
}

export async function applyRevision(
  client: KubeClient,
  name: string,
  spec: Record<string, unknown>,
): Promise<Cpr> {
  return client.apply({ ...CPR, metadata: { name }, spec } as KubeObject, {
    fieldManager: FIELD_MANAGER,
    force: true,
  }) as Promise<Cpr>;
}

export async function waitForReconciled(client: KubeClient, name: string, timeoutMs = 30_000): Promise<Cpr> {
  return waitFor(
    `${name} Reconciled=True at its current generation`,
    async () => {
      const cpr = await client.getOptional<Cpr>({ ...CPR, name });
      return reconciledNow(cpr) ? cpr : undefined;
    },
    { timeoutMs },
  );
}

export function revisionName(prefix: string): string {
  // Revision names are at most 39 characters and become label values and object names.
  return uniqueName(prefix).slice(0, 30);
}

// --- the objects a revision owns -------------------------------------------------------------------------

const refKey = (o: { kind?: string; metadata?: { namespace?: string; name?: string } }): string =>
  `${o.kind}/${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;

/** Every meshrev-labelled object of every owned kind, cluster-wide (one list per kind). */
export async function managedObjects(client: KubeClient): Promise<KubeObject[]> {
  const all: KubeObject[] = [];
  for (const type of OWNED_KINDS) {
    const { items } = await client.listAll<KubeObject>(type, {
      labelSelector: 'app.kubernetes.io/managed-by=meshrev',
    });
    for (const item of items) all.push({ ...item, apiVersion: type.apiVersion, kind: type.kind });
  }
  return all;
}

/**
 * What differs between the objects a revision should own (the operator's own pure builder applied to the
 * live spec) and what the API server holds with that revision as controller: missing ones and extras
 * (duplicates or leftovers). Empty when they match exactly.
 */
export function ownedObjectProblems(cpr: Cpr, managed: KubeObject[]): string[] {
  const parsed = parseControlPlaneRevision(cpr);
  if (!parsed.ok) return [`${cpr.metadata?.name}: spec does not parse: ${parsed.error}`];
  const version = cpr.status?.version ?? (typeof cpr.spec?.version === 'string' ? cpr.spec.version : '');
  const desired = desiredRevisionObjects(parsed.value, {
    resolvedVersion: version,
    injector: { serviceName: 'meshrev-injector', serviceNamespace: 'meshrev-system', port: 443 },
    caBundle: undefined,
    operatorName: 'meshrev',
  });
  const want = new Set(desired.map(refKey));
  const owned = managed.filter((o) =>
    (o.metadata?.ownerReferences ?? []).some((r) => r.controller === true && r.uid === cpr.metadata?.uid),
  );
  const have = owned.map(refKey);
  const problems: string[] = [];
  for (const key of want) if (!have.includes(key)) problems.push(`${cpr.metadata?.name}: missing ${key}`);
  const seen = new Set<string>();
  for (const key of have) {
    if (!want.has(key)) problems.push(`${cpr.metadata?.name}: unexpected ${key}`);
    if (seen.has(key)) problems.push(`${cpr.metadata?.name}: duplicate ${key}`);
    seen.add(key);
  }
  return problems;
}

/** meshrev-labelled objects whose controller owner (a revision or tag) no longer exists, or that have none. */
export async function orphans(client: KubeClient, managed: KubeObject[]): Promise<string[]> {
  const owners = new Set<string>();
  for (const type of [CPR, TAG]) {
    const { items } = await client.listAll<KubeObject>(type);
    for (const item of items) if (item.metadata?.uid) owners.add(item.metadata.uid);
  }
  return managed
    .filter((o) => {
      const controller = (o.metadata?.ownerReferences ?? []).find((r) => r.controller === true);
      return !controller || !owners.has(controller.uid);
    })
    .map(refKey);
}

// --- the operator as a child process -----------------------------------------------------------------------

export interface ChildOperator {
  name: string;
  pid: number;
  logFile: string;
  injectorPort: number;
  metricsPort: number;
  process: ChildProcess;
  exited: Promise<number | null>;
  alive(): boolean;
  kill(signal: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  metrics(): Promise<string>;
  /** Resident set size in bytes, from /proc. */
  rssBytes(): number;
  logTail(lines?: number): string;
}

/**
 * Starts `meshrev operator` from dist/ as its own process against the test cluster (what the container
 * runs), logging to a file under the cluster's log directory; resolves once it has logged its ports.
 */
export async function startChildOperator(name: string, extraArgs: string[] = []): Promise<ChildOperator> {
  const logDir = join(process.env.MESHREV_TEST_CLUSTER_DIR ?? join(repoRoot, '.cluster'), 'logs');
  const logFile = join(logDir, `operator-${name}.log`);
  // The log is appended to across runs: only what this process writes (past `offset`) describes it.
  const offset = existsSync(logFile) ? statSync(logFile).size : 0;
  const fd = openSync(logFile, 'a');
  const child = spawn(
    process.execPath,
    [
      ...OPERATOR_NODE_FLAGS,
      join(repoRoot, 'dist', 'src', 'cli', 'main.js'),
      'operator',
      `--kubeconfig=${testKubeconfigPath()}`,
      '--dev-webhook-routing',
      '--leader-elect=false',
      '--injector-host=127.0.0.1',
      '--injector-port=0',
      '--metrics-host=127.0.0.1',
      '--metrics-port=0',
      '--create-default-tag=false',
      `--pod-name=${name}`,
      '--log-level=debug',
      ...extraArgs,
    ],
    { stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  const pid = child.pid;
  if (!pid) throw new Error(`could not start the operator ${name}`);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  const logTail = (lines = 40): string => {
    try {
      return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no operator log)';
    }
  };
  const ports = await waitFor(
    `operator ${name} to start`,
    () => {
      if (exitCode !== undefined) throw new Error(`operator ${name} exited with ${exitCode}:\n${logTail()}`);
      for (const line of readFileSync(logFile).subarray(offset).toString('utf8').split('\n')) {
        if (!line.includes('meshrev operator started')) continue;
        const entry = JSON.parse(line) as { pod?: string; injectorPort?: number; metricsPort?: number };
        if (entry.injectorPort && entry.metricsPort)
          return { injector: entry.injectorPort, metrics: entry.metricsPort };
      }
      return undefined;
    },
    { timeoutMs: 30_000 },
  ).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}\n--- operator log ---\n${logTail()}`,
    );
  });
  return {
    name,
    pid,
    logFile,
    injectorPort: ports.injector,
    metricsPort: ports.metrics,
    process: child,
    exited,
    alive: () => exitCode === undefined,
    kill: async (signal) => {
      if (exitCode !== undefined) return;
      child.kill(signal);
      await exited;
    },
    metrics: () => httpText(`http://127.0.0.1:${ports.metrics}/metrics`),
    rssBytes: () => {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 'NaN');
      return kb * 1024;
    },
    logTail,
  };
}

export function httpText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(body)
          : reject(new Error(`GET ${url}: HTTP ${res.statusCode} ${body}`)),
      );
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.end();
  });
}

/** Sum of a Prometheus counter/gauge over the series whose labels include every given pair. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.split(' ').at(-1));
  }
  return total;
}

// --- admission requests straight at the injector port -------------------------------------------------------

export function admissionReview(
  namespace: string,
  uid: string,
  pod?: Record<string, unknown>,
): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      userInfo: { username: 'meshrev-tests' },
      object: pod ?? {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'app-', namespace, labels: { app: 'app' } },
        spec: { containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
      },
    },
  };
}

export interface HttpsReply {
  status: number;
  body: string;
}

/** A keep-alive agent that accepts the injector's self-signed serving certificate (loopback only). */
export function injectorAgent(maxSockets = 8): Agent {
  return new Agent({ keepAlive: true, maxSockets, rejectUnauthorized: false });
}

/** POSTs to the injector on 127.0.0.1; `body` goes out as given (string or bytes) or as JSON. */
export function postToInjector(
  port: number,
  path: string,
  body: unknown,
  opts: { agent?: Agent; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpsReply> {
  const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent: opts.agent,
        rejectUnauthorized: false,
        timeout: opts.timeoutMs ?? 10_000,
        headers: { 'content-type': 'application/json', ...opts.headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`POST ${path}: timeout`)));
    req.end(payload);
  });
}

/** The `response` of an AdmissionReview reply. */
export function reviewResponse(reply: HttpsReply): {
  allowed?: boolean;
  patch?: string;
  status?: { message?: string };
} {
  const parsed = JSON.parse(reply.body) as {
    response?: { allowed?: boolean; patch?: string; status?: { message?: string } };
  };
  return parsed.response ?? {};
}

// --- partitions and compaction ---------------------------------------------------------------------------

export interface TcpProxy {
  port: number;
  /** A kubeconfig like the test cluster's whose server is this proxy. */
  kubeconfig: string;
  /** Cuts every open connection and refuses new ones until `heal`. */
  partition(): void;
  heal(): void;
  connections(): number;
  close(): Promise<void>;
}

/** A loopback TCP proxy in front of kube-apiserver (TLS passes through; 127.0.0.1 is in the server's cert). */
export async function startApiServerProxy(state: ClusterState, name: string): Promise<TcpProxy> {
  const upstreamPort = state.ports.apiserver;
  if (!upstreamPort) throw new Error('no kube-apiserver port in the cluster state');
  const pairs = new Set<[Socket, Socket]>();
  let partitioned = false;
  const server: Server = createServer((downstream) => {
    if (partitioned) {
      downstream.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: upstreamPort });
    const pair: [Socket, Socket] = [downstream, upstream];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const kubeconfig = join(state.stateDir, `kubeconfig-proxy-${name}`);
  writeFileSync(
    kubeconfig,
    readFileSync(state.kubeconfig, 'utf8').replace(
      `server: ${state.server}`,
      `server: https://127.0.0.1:${port}`,
    ),
    { mode: 0o600 },
  );
  return {
    port,
    kubeconfig,
    partition: () => {
      partitioned = true;
      for (const [a, b] of [...pairs]) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    heal: () => {
      partitioned = false;
    },
    connections: () => pairs.size,
    close: async () => {
      partitioned = true;
      for (const [a, b] of [...pairs]) {
        a.destroy();
        b.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function etcdPost(state: ClusterState, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${state.ports.etcdClient}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** etcd's current revision (every write in the cluster bumps it). */
export async function etcdRevision(state: ClusterState): Promise<number> {
  const reply = await etcdPost(state, '/v3/kv/range', {
    key: Buffer.from('meshrev-probe').toString('base64'),
  });
  return Number((reply.header as { revision?: string } | undefined)?.revision ?? NaN);
}

/** Compacts etcd's history up to its current revision, so a watch from any older resourceVersion gets 410. */
export async function compactEtcd(state: ClusterState): Promise<number> {
  const revision = await etcdRevision(state);
  await etcdPost(state, '/v3/kv/compaction', { revision: String(revision), physical: true });
  return revision;
}

// --- diagnostics ---------------------------------------------------------------------------------------------

/** Wraps a test body so a failure carries the operator log tail(s) and the cluster components' logs. */
export function withDiagnostics<T>(logs: () => string, fn: () => Promise<T>): () => Promise<T> {
  return async () => {
    try {
      return await fn();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const wrapped = new Error(
        `${message}\n--- operator log ---\n${logs()}\n--- components ---\n${componentLogs(['etcd', 'kube-apiserver', 'kube-controller-manager'])}`,
      );
      if (err instanceof Error && err.stack)
        wrapped.stack = `${wrapped.message}\n${err.stack.split('\n').slice(1).join('\n')}`;
      throw wrapped;
    }
  };
}

/** A one-line record of what a scenario did, printed into the test output. */
export function record(scenario: string, facts: Record<string, unknown>): void {
  console.log(`[resilience] ${scenario}: ${JSON.stringify(facts)}`);
}
