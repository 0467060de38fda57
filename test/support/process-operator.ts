// Runs the compiled production entry point (`dist/src/cli/main.js operator …`) as a child process, the
// way a container does, with its log in a file under the cluster's log directory. Tests kill it with real
// signals, read its /metrics and probes, and send AdmissionReviews straight to its injector port.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';

import type { KubeClient } from '../../src/runtime/kube.js';
import { OPERATOR_NODE_FLAGS } from '../../src/cli/node-flags.js';
import { componentLogs, testKubeconfigPath, waitFor } from './kube.js';
import { repoRoot } from './operator.js';

export const mainEntry = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessOperator {
  name: string;
  pid: number;
  logFile: string;
  injectorPort: number;
  metricsPort: number;
  /** Settles when the process has exited. */
  exited: Promise<ExitStatus>;
  alive(): boolean;
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<ExitStatus>;
  logTail(lines?: number): string;
  /** GET on the metrics port: /metrics, /healthz, /readyz. */
  httpGet(path: string): Promise<{ status: number; body: string }>;
  /** The sum of every sample of `name` whose labels include `labels` (0 when absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

const running = new Set<ProcessOperator>();

function clusterLogDir(): string {
  const dir = join(process.env.MESHREV_TEST_CLUSTER_DIR ?? join(repoRoot, '.cluster', 'test'), 'logs');
  mkdirSync(dir, { recursive: true });
  return dir;
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no operator log)';
  }
}

/** The listening ports from the operator's `meshrev operator started` log line. */
function startedLine(file: string): { injectorPort: number; metricsPort: number } | undefined {
  if (!existsSync(file)) return undefined;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.includes('meshrev operator started')) continue;
    try {
      const record = JSON.parse(line) as { injectorPort?: number; metricsPort?: number };
      if (record.injectorPort && record.metricsPort) {
        return { injectorPort: record.injectorPort, metricsPort: record.metricsPort };
      }
    } catch {
      // a partly written line: read again on the next poll
    }
  }
  return undefined;
}

export function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', reject);
  });
}

/** Sums the samples of `name` in a Prometheus text exposition whose labels include `labels`. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const sampleLabels = match[3] ?? '';
    if (Object.entries(labels).every(([k, v]) => sampleLabels.includes(`${k}="${v}"`)))
      total += Number(match[4]);
  }
  return total;
}

/**
 * Starts `meshrev operator` against the test cluster. Ports default to free ones (0) and are read back
 * from the operator's start-up log line; `args` are appended (later flags win).
 */
export async function startProcessOperator(name: string, args: string[] = []): Promise<ProcessOperator> {
  const logFile = join(clusterLogDir(), `operator-process-${name}-${Date.now()}.log`);
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      [
        ...OPERATOR_NODE_FLAGS,
        mainEntry,
        'operator',
        `--kubeconfig=${testKubeconfigPath()}`,
        '--injector-host=127.0.0.1',
        '--injector-port=0',
        '--metrics-host=127.0.0.1',
        '--metrics-port=0',
        `--pod-name=${name}`,
        '--log-level=debug',
        ...args,
      ],
      { stdio: ['ignore', fd, fd], env: { ...process.env, NODE_OPTIONS: '' } },
    );
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start operator process ${name}`);
  let exitStatus: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      exitStatus = { code, signal };
      resolve(exitStatus);
    });
  });

  const ports = await waitFor(
    `operator process ${name} to start`,
    () => {
      if (exitStatus) throw new Error(`exited early (${JSON.stringify(exitStatus)}):\n${tail(logFile, 30)}`);
      return startedLine(logFile);
    },
    { timeoutMs: 30_000 },
  ).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- log ---\n${tail(logFile, 30)}`);
  });

  const operator: ProcessOperator = {
    name,
    pid,
    logFile,
    ...ports,
    exited,
    alive: () => exitStatus === undefined,
    kill: (signal) => {
      if (exitStatus === undefined) process.kill(pid, signal);
    },
    stop: async (graceMs = 30_000) => {
      if (exitStatus) return exitStatus;
      operator.kill('SIGTERM');
      const timer = setTimeout(() => operator.kill('SIGKILL'), graceMs);
      const status = await exited;
      clearTimeout(timer);
      return status;
    },
    logTail: (lines = 40) => tail(logFile, lines),
    httpGet: (path) => httpGet(ports.metricsPort, path),
    metric: async (metricName, labels = {}) => {
      const { status, body } = await httpGet(ports.metricsPort, '/metrics');
      if (status !== 200) throw new Error(`/metrics answered ${status}`);
      return sumMetric(body, metricName, labels);
    },
  };
  running.add(operator);
  void exited.then(() => running.delete(operator));
  return operator;
}

/** For afterAll: stops every operator process this worker started and has not seen exit. */
export async function stopAllProcessOperators(): Promise<void> {
  await Promise.all([...running].map((op) => op.stop(10_000)));
}

/** The injector CA every replica serves under (Secret meshrev-system/meshrev-injector-tls, ca.crt). */
export async function injectorCa(client: KubeClient, namespace = 'meshrev-system'): Promise<string> {
  const secret = await client.get<{ data?: Record<string, string> }>({
    apiVersion: 'v1',
    kind: 'Secret',
    namespace,
    name: 'meshrev-injector-tls',
  });
  const ca = secret.data?.['ca.crt'];
  if (!ca) throw new Error('the injector TLS Secret has no ca.crt');
  return Buffer.from(ca, 'base64').toString('utf8');
}

export interface AdmissionResult {
  status: number;
  allowed?: boolean;
  patched: boolean;
  message?: string;
}

/** A v1 AdmissionReview for creating `pod` in `namespace`. */
export function podReview(uid: string, namespace: string, pod: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      object: pod,
    },
  });
}

export interface AdmissionTarget {
  port: number;
  path: string;
  ca: string;
}

function parseAdmission(status: number, body: string): AdmissionResult {
  try {
    const parsed = JSON.parse(body) as {
      response?: { allowed?: boolean; patch?: string; status?: { message?: string } };
    };
    const message = parsed.response?.status?.message;
    return {
      status,
      patched: Boolean(parsed.response?.patch),
      ...(parsed.response?.allowed !== undefined ? { allowed: parsed.response.allowed } : {}),
      ...(message !== undefined ? { message } : {}),
    };
  } catch {
    return { status, patched: false, message: body.slice(0, 200) };
  }
}

/**
 * Opens an admission request and sends `firstBytes` of the body; `finish()` sends the rest and resolves
 * with the answer. With firstBytes = body length it is a plain request.
 */
export function openAdmission(
  target: AdmissionTarget,
  body: string,
  firstBytes = body.length,
): { sent: Promise<void>; finish(): Promise<AdmissionResult> } {
  const payload = Buffer.from(body, 'utf8');
  let answer: Promise<AdmissionResult> | undefined;
  const req = https.request({
    host: '127.0.0.1',
    port: target.port,
    path: target.path,
    method: 'POST',
    ca: target.ca,
    servername: 'localhost',
    agent: false,
    timeout: 15_000,
    headers: { 'Content-Type': 'application/json', 'Content-Length': payload.length },
  });
  const response = new Promise<AdmissionResult>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(parseAdmission(res.statusCode ?? 0, text)));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('admission request timed out')));
    req.on('error', reject);
  });
  response.catch(() => undefined);
  const sent = new Promise<void>((resolve, reject) => {
    req.once('error', reject);
    req.write(payload.subarray(0, firstBytes), (err) => (err ? reject(err) : resolve()));
  });
  sent.catch(() => undefined);
  return {
    sent,
    finish: () => {
      answer ??= (async () => {
        await sent;
        req.end(payload.subarray(firstBytes));
        return response;
      })();
      return answer;
    },
  };
}

export function sendAdmission(target: AdmissionTarget, body: string): Promise<AdmissionResult> {
  return openAdmission(target, body).finish();
}

/** Wraps a test body so that a failure carries every operator's log tail and kube-apiserver's. */
export function withOperatorLogs<T>(
  operators: readonly ProcessOperator[],
  fn: () => Promise<T>,
): () => Promise<T> {
  return async () => {
    try {
      return await fn();
    } catch (err) {
      const logs = operators
        .map((op) => `--- operator ${op.name} (pid ${op.pid}) ---\n${op.logTail(25)}`)
        .join('\n');
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}\n${logs}\n${componentLogs(['kube-apiserver'])}`,
      );
    }
  };
}
