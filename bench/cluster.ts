// A private real cluster for a benchmark (`.cluster/bench-<suite>-<pid>`, torn down afterwards), the CRDs, and
// kube-apiserver's own request counters (`apiserver_request_total`) read from its /metrics endpoint.
import * as k8s from '@kubernetes/client-node';
import https from 'node:https';

import { installCrds as installMeshrevCrds } from '../hack/cluster/crds.js';
import { down, logTail, repoPath, up, type ClusterState } from '../hack/cluster/local-cluster.js';
import { KubeClient } from '../src/runtime/kube.js';
import type { KubeObject } from '../src/runtime/types.js';
import { log } from './common.js';

export interface BenchCluster {
  state: ClusterState;
  kc: k8s.KubeConfig;
  client: KubeClient;
  stop(): Promise<void>;
}

const running = new Set<string>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  const stopAll = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping ${running.size} benchmark cluster(s)`);
    void Promise.all([...running].map((dir) => down(dir, { log }))).finally(() => process.exit(130));
  };
  process.once('SIGINT', stopAll);
  process.once('SIGTERM', stopAll);
}

export async function startBenchCluster(suite: string): Promise<BenchCluster> {
  hookExit();
  const stateDir = repoPath('.cluster', `bench-${suite}-${process.pid}`);
  running.add(stateDir);
  const state = await up({ stateDir, reuse: false, log });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(state.kubeconfig);
  const client = KubeClient.fromKubeConfig(kc, { userAgent: 'meshrev-bench' });
  return {
    state,
    kc,
    client,
    stop: async () => {
      client.close();
      await down(stateDir, { log });
      running.delete(stateDir);
    },
  };
}

export function componentLog(cluster: BenchCluster, component: string, lines = 20): string {
  return logTail(cluster.state.stateDir, component, lines);
}

/** Applies deploy/crds and waits until they are Established. */
export async function installCrds(client: KubeClient): Promise<void> {
  await installMeshrevCrds(client, 'meshrev-bench');
}

export async function ensureNamespace(
  client: KubeClient,
  name: string,
  labels: Record<string, string> = {},
): Promise<void> {
  await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } } as KubeObject, {
    fieldManager: 'meshrev-bench',
    force: true,
  });
}

/** GET a raw path on kube-apiserver with the kubeconfig's credentials. */
export async function rawGet(kc: k8s.KubeConfig, path: string): Promise<string> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no cluster');
  const url = new URL(path, cluster.server);
  const options: https.RequestOptions = {
    method: 'GET',
    hostname: url.hostname,
    port: url.port,
    path: url.pathname,
  };
  await kc.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = https.request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200)
          reject(new Error(`GET ${path}: HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
        else resolve(text);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** `verb resource[/subresource]` → count, summed over codes, scopes and versions. */
export type RequestCounts = Map<string, number>;

export async function apiserverRequestCounts(kc: k8s.KubeConfig): Promise<RequestCounts> {
  const text = await rawGet(kc, '/metrics');
  const counts: RequestCounts = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries(
      [...line.slice(line.indexOf('{') + 1, line.lastIndexOf('}')).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [
        m[1],
        m[2],
      ]),
    );
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const resource = `${labels.resource ?? ''}${labels.subresource ? `/${labels.subresource}` : ''}`;
    const key = `${labels.verb ?? '?'} ${resource}`;
    counts.set(key, (counts.get(key) ?? 0) + value);
  }
  return counts;
}

export function diffCounts(before: RequestCounts, after: RequestCounts): RequestCounts {
  const out: RequestCounts = new Map();
  for (const [key, value] of after) {
    const d = value - (before.get(key) ?? 0);
    if (d > 0) out.set(key, d);
  }
  return new Map([...out].sort((a, b) => b[1] - a[1]));
}

const WRITE_VERBS = new Set([
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'APPLY',
  'DELETECOLLECTION',
  'CREATE',
  'UPDATE',
]);

export function isWrite(key: string): boolean {
  return WRITE_VERBS.has(key.split(' ')[0]!.toUpperCase());
}

export function total(counts: RequestCounts, filter: (key: string) => boolean = () => true): number {
  let sum = 0;
  for (const [key, value] of counts) if (filter(key)) sum += value;
  return sum;
}

export function countsText(counts: RequestCounts, limit = 12): string {
  const entries = [...counts];
  const shown = entries.slice(0, limit).map(([k, v]) => `${k} ${v}`);
  if (entries.length > limit) shown.push(`… ${entries.length - limit} more`);
  return shown.length === 0 ? 'none' : shown.join(', ');
}
