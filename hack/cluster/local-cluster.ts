// A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and KWOK (fake nodes whose pods go Running/Ready), built from their Go modules by
// hack/build-k8s.sh and started as detached processes. Every component listens on 127.0.0.1 on a
// port picked at start, so several clusters (a test run while a demo is up) can run side by side.
// The state directory records the pids so `down` stops exactly what `up` started.
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  readdirSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  closeSync,
} from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatePki, pkiPaths, type ClusterPki } from './pki.js';

export const FAKE_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
export const FAKE_NODE_NAME = 'kwok-node-0';

export const COMPONENTS = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kwok',
] as const;
export type Component = (typeof COMPONENTS)[number];

export interface ClusterState {
  name: string;
  stateDir: string;
  kubeconfig: string;
  server: string;
  k8sVersion: string;
  binDir: string;
  etcdDataDir: string;
  pids: Partial<Record<Component, number>>;
  /** The command-line flags each component was started with, so fault injection can restart it alike. */
  args?: Partial<Record<Component, string[]>>;
  ports: Record<string, number>;
  startedAt: string;
}

export interface UpOptions {
  /** Directory for PKI, logs, kubeconfig and state (e.g. `.cluster` or `.cluster/test`). */
  stateDir: string;
  /** Reuse a healthy cluster already recorded in stateDir (default true). */
  reuse?: boolean;
  log?: (line: string) => void;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), findRepoRootOffset());

function findRepoRootOffset(): string {
  // Works both from the source tree (hack/cluster) and from the build output (dist/hack/cluster).
  const here = dirname(fileURLToPath(import.meta.url));
  return existsSync(join(here, '..', '..', 'package.json')) ? '../..' : '../../..';
}

export function repoPath(...parts: string[]): string {
  return join(repoRoot, ...parts);
}

/** Builds (or finds cached) binaries and returns their directory. Progress goes to stderr. */
export function ensureBinaries(log: (line: string) => void = console.error): string {
  const result = spawnSync('bash', [repoPath('hack', 'build-k8s.sh')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  if (result.status !== 0) {
    throw new Error(`building the Kubernetes binaries failed (exit ${result.status}); see the output above`);
  }
  const lines = result.stdout.trim().split('\n');
  const binDir = lines[lines.length - 1] ?? '';
  if (!existsSync(join(binDir, 'kube-apiserver'))) throw new Error(`no kube-apiserver in ${binDir}`);
  log(`binaries: ${binDir}`);
  return binDir;
}

export function readState(stateDir: string): ClusterState | undefined {
  const file = join(stateDir, 'state.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
}

function pidAlive(pid: number | undefined, binary: string): boolean {
  if (!pid) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(binary);
  } catch {
    return false;
  }
}

export async function clusterHealthy(state: ClusterState): Promise<boolean> {
  for (const c of COMPONENTS) {
    if (!pidAlive(state.pids[c], join(state.binDir, c))) return false;
  }
  try {
    const pki = pkiPaths(join(state.stateDir, 'pki'));
    const res = await httpsGet(`${state.server}/readyz`, pki);
    return res.status === 200;
  } catch {
    return false;
  }
}

export async function up(opts: UpOptions): Promise<ClusterState> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const stateDir = resolve(opts.stateDir);
  const existing = readState(stateDir);
  if (existing && (opts.reuse ?? true) && (await clusterHealthy(existing))) {
    log(`reusing running cluster ${existing.name} at ${existing.server}`);
    return existing;
  }
  if (existing) {
    log('found a stale cluster state; stopping what is left of it');
    await down(stateDir, { log });
  }

  const binDir = ensureBinaries(log);
  const started = Date.now();
  rmSync(join(stateDir, 'logs'), { recursive: true, force: true });
  mkdirSync(join(stateDir, 'logs'), { recursive: true });
  const pki = generatePki(join(stateDir, 'pki'));
  const name = `meshrev-${process.pid}-${Date.now().toString(36)}`;
  const etcdDataDir = existsSync('/dev/shm') ? join('/dev/shm', name) : join(stateDir, 'etcd-data');
  const [etcdClient, etcdPeer, apiserver, controllerManager, scheduler, kwok] = (await freePorts(6)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ports = { etcdClient, etcdPeer, apiserver, controllerManager, scheduler, kwok };
  const server = `https://127.0.0.1:${ports.apiserver}`;
  const kubeconfig = join(stateDir, 'kubeconfig');
  writeFileSync(kubeconfig, renderKubeconfig(server, pki), { mode: 0o600 });
  const k8sVersion = binDir.match(/k8s-(v[0-9.]+)/)?.[1] ?? 'unknown';
  const state: ClusterState = {
    name,
    stateDir,
    kubeconfig,
    server,
    k8sVersion,
    binDir,
    etcdDataDir,
    pids: {},
    args: {},
    ports,
    startedAt: new Date().toISOString(),
  };
  const save = (): void => writeFileSync(join(stateDir, 'state.json'), JSON.stringify(state, null, 2) + '\n');
  save();

  const start = (component: Component, args: string[]): void => {
    state.pids[component] = spawnComponent(state, component, args);
    (state.args ??= {})[component] = args;
    save();
  };

  try {
    start('etcd', [
      `--name=${name}`,
      `--data-dir=${etcdDataDir}`,
      `--listen-client-urls=http://127.0.0.1:${ports.etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${ports.etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-cluster=${name}=http://127.0.0.1:${ports.etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await waitFor(
      'etcd',
      state,
      async () => (await httpGet(`http://127.0.0.1:${ports.etcdClient}/health`)) === 200,
    );

    start('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${ports.etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${ports.apiserver}`,
      `--cert-dir=${join(stateDir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.serverCert}`,
      `--tls-private-key-file=${pki.serverKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--authorization-mode=RBAC',
      '--allow-privileged=true',
      '--endpoint-reconciler-type=none',
      '--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,ResourceQuota',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      '--v=1',
    ]);
    await waitFor(
      'kube-apiserver',
      state,
      async () => (await httpsGet(`${server}/readyz`, pki)).status === 200,
    );

    start('kube-controller-manager', [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--leader-elect=false',
      '--controllers=*',
      `--service-account-private-key-file=${pki.saKey}`,
      `--root-ca-file=${pki.caCert}`,
      `--cluster-signing-cert-file=${pki.caCert}`,
      `--cluster-signing-key-file=${pki.caKey}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${ports.controllerManager}`,
      `--cert-dir=${join(stateDir, 'kcm-certs')}`,
      '--concurrent-gc-syncs=5',
      '--v=1',
    ]);
    start('kube-scheduler', [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${ports.scheduler}`,
      `--cert-dir=${join(stateDir, 'scheduler-certs')}`,
      '--v=1',
    ]);
    start('kwok', [
      `--kubeconfig=${kubeconfig}`,
      `--config=${repoPath('hack', 'cluster', 'kwok-stages.yaml')}`,
      '--manage-all-nodes=false',
      `--manage-nodes-with-annotation-selector=${FAKE_NODE_ANNOTATION}=fake`,
      `--server-address=127.0.0.1:${ports.kwok}`,
      '--node-lease-duration-seconds=40',
    ]);
    await waitFor(
      'kube-controller-manager',
      state,
      async () =>
        (await httpsGet(`https://127.0.0.1:${ports.controllerManager}/healthz`, pki, true)).status === 200,
    );
    await waitFor(
      'kube-scheduler',
      state,
      async () => (await httpsGet(`https://127.0.0.1:${ports.scheduler}/healthz`, pki, true)).status === 200,
    );
    await createFakeNode(server, pki, k8sVersion);
    await waitFor('kwok', state, async () => nodeReady(server, pki));
    await waitFor(
      'kube-controller-manager',
      state,
      async () =>
        (await httpsGet(`${server}/api/v1/namespaces/default/serviceaccounts/default`, pki)).status === 200,
    );
  } catch (err) {
    log(String(err instanceof Error ? err.message : err));
    await down(stateDir, { log, keepLogs: true });
    throw err;
  }
  log(`cluster ${name} ready in ${((Date.now() - started) / 1000).toFixed(1)}s (Kubernetes ${k8sVersion})`);
  return state;
}

/** Where `make demo` records the pid of the operator it runs in the background against this cluster. */
export function operatorPidFile(stateDir: string): string {
  return join(resolve(stateDir), 'operator.pid');
}

/**
 * Stops the background operator recorded in the state directory (only if that pid still runs meshrev's
 * operator command); returns its pid, or undefined when none was running.
 */
export async function stopOperator(stateDir: string): Promise<number | undefined> {
  const file = operatorPidFile(stateDir);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  rmSync(file, { force: true });
  const isOperator = (): boolean => {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return cmdline.some((arg) => arg.endsWith(join('cli', 'main.js'))) && cmdline.includes('operator');
    } catch {
      return false;
    }
  };
  if (!Number.isInteger(pid) || pid <= 0 || !isOperator()) return undefined;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 25_000;
  while (isOperator() && Date.now() < deadline) await delay(100);
  if (isOperator()) process.kill(pid, 'SIGKILL');
  return pid;
}

export async function down(
  stateDir: string,
  opts: { log?: (line: string) => void; keepLogs?: boolean } = {},
): Promise<void> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const stoppedOperator = await stopOperator(stateDir);
  if (stoppedOperator) log(`operator (pid ${stoppedOperator}) stopped`);
  const state = readState(resolve(stateDir));
  if (!state) {
    log(`no cluster recorded in ${stateDir}`);
    return;
  }
  // Reverse start order: clients first, etcd last.
  for (const c of [...COMPONENTS].reverse()) {
    const pid = state.pids[c];
    if (pid && pidAlive(pid, join(state.binDir, c))) {
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 10_000;
      while (pidAlive(pid, join(state.binDir, c)) && Date.now() < deadline) await delay(100);
      if (pidAlive(pid, join(state.binDir, c))) process.kill(pid, 'SIGKILL');
    }
  }
  rmSync(state.etcdDataDir, { recursive: true, force: true });
  if (opts.keepLogs) {
    rmSync(join(state.stateDir, 'state.json'), { force: true });
  } else {
    rmSync(state.stateDir, { recursive: true, force: true });
  }
  log(`cluster ${state.name} stopped`);
}

/** The tail of a component's log, for error messages. */
export function logTail(stateDir: string, component: string, lines = 30): string {
  const file = join(stateDir, 'logs', `${component}.log`);
  if (!existsSync(file)) return '(no log)';
  const all = readFileSync(file, 'utf8').trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

// --- fault injection: stop and start single components of a running cluster ---------------------------

function spawnComponent(state: ClusterState, component: Component, args: string[]): number {
  const logFile = join(state.stateDir, 'logs', `${component}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(join(state.binDir, component), args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (!child.pid) throw new Error(`could not start ${component}`);
  child.unref();
  return child.pid;
}

function saveState(state: ClusterState): void {
  writeFileSync(join(state.stateDir, 'state.json'), JSON.stringify(state, null, 2) + '\n');
}

/** Whether the component's process recorded in `state` is running. */
export function componentRunning(state: ClusterState, component: Component): boolean {
  return pidAlive(state.pids[component], join(state.binDir, component));
}

/** The component's readiness as `up` judges it (etcd /health, kube-apiserver /readyz, …). */
export async function componentReady(state: ClusterState, component: Component): Promise<boolean> {
  const pki = pkiPaths(join(state.stateDir, 'pki'));
  switch (component) {
    case 'etcd':
      return (await httpGet(`http://127.0.0.1:${state.ports.etcdClient}/health`)) === 200;
    case 'kube-apiserver':
      return (await httpsGet(`${state.server}/readyz`, pki)).status === 200;
    case 'kube-controller-manager':
      return (
        (await httpsGet(`https://127.0.0.1:${state.ports.controllerManager}/healthz`, pki, true)).status ===
        200
      );
    case 'kube-scheduler':
      return (await httpsGet(`https://127.0.0.1:${state.ports.scheduler}/healthz`, pki, true)).status === 200;
    case 'kwok':
      return nodeReady(state.server, pki);
  }
}

/**
 * Stops one component by its recorded pid (SIGTERM, or SIGKILL for a crash) and waits until the process is
 * gone. The rest of the cluster keeps running; `startComponent` brings it back on the same ports.
 */
export async function stopComponent(
  state: ClusterState,
  component: Component,
  opts: { signal?: 'SIGTERM' | 'SIGKILL'; timeoutMs?: number } = {},
): Promise<void> {
  const pid = state.pids[component];
  const binary = join(state.binDir, component);
  if (!pid || !pidAlive(pid, binary)) return;
  process.kill(pid, opts.signal ?? 'SIGTERM');
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  while (pidAlive(pid, binary) && Date.now() < deadline) await delay(50);
  if (pidAlive(pid, binary)) {
    process.kill(pid, 'SIGKILL');
    while (pidAlive(pid, binary)) await delay(50);
  }
  // An exiting process loses its command line before the kernel closes its files: wait for its sockets
  // too, or a restart on the same ports races the old listener.
  const fdDeadline = Date.now() + 5_000;
  while (holdsFiles(pid) && Date.now() < fdDeadline) await delay(20);
}

function holdsFiles(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).length > 0;
  } catch {
    return false;
  }
}

/**
 * Starts a stopped component again with the flags it was started with (plus `extraArgs`, which override
 * flags of the same name, or `args` replacing them all), records the new pid in state.json and waits until
 * it is ready. Returns the state as saved.
 */
export async function startComponent(
  state: ClusterState,
  component: Component,
  opts: { args?: string[]; extraArgs?: string[]; timeoutMs?: number } = {},
): Promise<ClusterState> {
  if (componentRunning(state, component)) throw new Error(`${component} is already running`);
  const recorded = opts.args ?? state.args?.[component];
  if (!recorded) throw new Error(`no recorded flags for ${component} in ${state.stateDir}/state.json`);
  const extra = opts.extraArgs ?? [];
  const flagName = (arg: string): string => arg.split('=')[0] ?? arg;
  const overridden = new Set(extra.map(flagName));
  const args = [...recorded.filter((a) => !overridden.has(flagName(a))), ...extra];
  // The recorded flags stay the originals: a restart without extraArgs restores the usual configuration.
  (state.args ??= {})[component] = recorded;
  // A port freed by a just-killed process is occasionally still held for a moment (a socket another
  // process grabbed, or one the kernel has not released): retry a few times before failing.
  for (let attempt = 1; ; attempt++) {
    state.pids[component] = spawnComponent(state, component, args);
    saveState(state);
    try {
      await waitFor(component, state, () => componentReady(state, component), opts.timeoutMs ?? 90_000);
      return state;
    } catch (err) {
      const portBusy = String(err instanceof Error ? err.message : err).includes('address already in use');
      if (!portBusy || attempt >= 5) throw err;
      await delay(500 * attempt);
    }
  }
}

/** Stops a component and starts it again on the same ports; returns how long it was down and how long start-up took. */
export async function restartComponent(
  state: ClusterState,
  component: Component,
  opts: { signal?: 'SIGTERM' | 'SIGKILL'; extraArgs?: string[]; downMs?: number } = {},
): Promise<{ stoppedMs: number; readyMs: number }> {
  const started = Date.now();
  await stopComponent(state, component, { signal: opts.signal });
  const stopped = Date.now();
  if (opts.downMs) await delay(opts.downMs);
  const restarting = Date.now();
  await startComponent(state, component, { extraArgs: opts.extraArgs });
  return { stoppedMs: stopped - started, readyMs: Date.now() - restarting };
}

async function waitFor(
  component: Component,
  state: ClusterState,
  ready: () => Promise<boolean>,
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const binary = join(state.binDir, component);
  for (;;) {
    if (!pidAlive(state.pids[component], binary)) {
      throw new Error(
        `${component} exited during start-up. Last lines of its log:\n${logTail(state.stateDir, component)}`,
      );
    }
    try {
      if (await ready()) return;
    } catch {
      // not ready yet
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${component} did not become ready within ${timeoutMs / 1000}s. Last lines of its log:\n` +
          logTail(state.stateDir, component),
      );
    }
    await delay(200);
  }
}

function renderKubeconfig(server: string, pki: ClusterPki): string {
  const b64 = (file: string): string => readFileSync(file).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: meshrev-local',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(pki.caCert)}`,
    'users:',
    '- name: meshrev-admin',
    '  user:',
    `    client-certificate-data: ${b64(pki.adminCert)}`,
    `    client-key-data: ${b64(pki.adminKey)}`,
    'contexts:',
    '- name: meshrev-local',
    '  context:',
    '    cluster: meshrev-local',
    '    user: meshrev-admin',
    'current-context: meshrev-local',
    '',
  ].join('\n');
}

async function createFakeNode(server: string, pki: ClusterPki, kubeletVersion: string): Promise<void> {
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: FAKE_NODE_NAME,
      annotations: { [FAKE_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/hostname': FAKE_NODE_NAME,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node-role.kubernetes.io/agent': '',
        type: 'kwok',
      },
    },
    status: {
      allocatable: { cpu: '64', memory: '256Gi', pods: '1000' },
      capacity: { cpu: '64', memory: '256Gi', pods: '1000' },
      nodeInfo: {
        architecture: 'amd64',
        kubeletVersion,
        kubeProxyVersion: kubeletVersion,
        operatingSystem: 'linux',
        containerRuntimeVersion: 'kwok',
      },
    },
  };
  const res = await httpsRequestJson('POST', `${server}/api/v1/nodes`, pki, node);
  if (res.status !== 201 && res.status !== 409) {
    throw new Error(`creating the fake node failed: HTTP ${res.status} ${res.body}`);
  }
}

async function nodeReady(server: string, pki: ClusterPki): Promise<boolean> {
  const res = await httpsGet(`${server}/api/v1/nodes/${FAKE_NODE_NAME}`, pki);
  if (res.status !== 200) return false;
  const node = JSON.parse(res.body) as { status?: { conditions?: { type: string; status: string }[] } };
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function httpGet(url: string): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolvePromise(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

function httpsGet(url: string, pki: ClusterPki, insecure = false): Promise<{ status: number; body: string }> {
  return httpsRequestJson('GET', url, pki, undefined, insecure);
}

function httpsRequestJson(
  method: string,
  url: string,
  pki: ClusterPki,
  body?: unknown,
  insecure = false,
): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpsRequest(
      url,
      {
        method,
        timeout: 5000,
        ca: readFileSync(pki.caCert),
        cert: readFileSync(pki.adminCert),
        key: readFileSync(pki.adminKey),
        rejectUnauthorized: !insecure,
        headers: payload ? { 'content-type': 'application/json' } : {},
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(payload);
  });
}

/**
 * Distinct free loopback ports below the kernel's ephemeral range: all listeners are held open until every
 * port is known. Ports from the ephemeral range (what listen(0) hands out) break restarts: while a component
 * is down, clients retrying 127.0.0.1:<port> can be given that very port as their own source port and connect
 * to themselves (TCP simultaneous open), or another outgoing connection takes it, and the restarted
 * component then fails with "bind: address already in use".
 */
async function freePorts(count: number): Promise<number[]> {
  const ephemeralLow = ephemeralPortRange()[0];
  const min = 10_000;
  const max = ephemeralLow - 1;
  if (max - min < count * 10) return ephemeralFreePorts(count);
  const servers: ReturnType<typeof createServer>[] = [];
  const tried = new Set<number>();
  while (servers.length < count && tried.size < max - min) {
    const port = min + Math.floor(Math.random() * (max - min + 1));
    if (tried.has(port)) continue;
    tried.add(port);
    const srv = await new Promise<ReturnType<typeof createServer> | undefined>((resolvePromise) => {
      const candidate = createServer();
      candidate.unref();
      candidate.once('error', () => resolvePromise(undefined));
      candidate.listen(port, '127.0.0.1', () => resolvePromise(candidate));
    });
    if (srv) servers.push(srv);
  }
  const ports = servers.map((srv) => {
    const addr = srv.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  });
  await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
  if (ports.length < count)
    throw new Error(`found only ${ports.length} free loopback ports below ${ephemeralLow}`);
  return ports;
}

/** The kernel's ephemeral (source) port range; Linux's default when it cannot be read. */
function ephemeralPortRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low && high) return [low, high];
  } catch {
    // not Linux
  }
  return [32768, 60999];
}

async function ephemeralFreePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolvePromise, reject) => {
          const srv = createServer();
          srv.unref();
          srv.on('error', reject);
          srv.listen(0, '127.0.0.1', () => resolvePromise(srv));
        }),
    ),
  );
  const ports = servers.map((srv) => {
    const addr = srv.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  });
  await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
  return ports;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
