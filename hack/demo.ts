#!/usr/bin/env node
// `make demo`: the Istio canary upgrade, step by step, on the local control plane. Starts (or reuses) the
// cluster in .cluster/, installs the CRDs, runs the operator as a background process (pid in
// .cluster/operator.pid, log in .cluster/logs/operator.log; `make cluster-down` stops it), then prints each
// step the way Istio's canary-upgrade guide does: the command a user types and its real output. Idempotent:
// a second run replaces the operator and walks the same steps. A step that does not converge fails loudly
// with the operator's log tail.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { operatorPidFile, stopOperator, up, repoPath, type ClusterState } from './cluster/local-cluster.js';
import { OPERATOR_NODE_FLAGS } from '../src/cli/node-flags.js';

const OLD = 'asm-1233-2';
const NEW = 'asm-1234-1';
const OLD_VERSION = '1.29.6';
const NEW_VERSION = '1.30.3';
const NS = 'sample';
const APP = 'helloworld';

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string): string => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);

class DemoError extends Error {}

let state: ClusterState;
let operatorLog = '';
let stepNumber = 0;

function step(title: string, explanation?: string): void {
  stepNumber += 1;
  console.log(`\n${bold(`== ${stepNumber}. ${title}`)}`);
  if (explanation) console.log(dim(explanation));
}

function operatorLogTail(lines = 40): string {
  if (!existsSync(operatorLog)) return '(no operator log)';
  return readFileSync(operatorLog, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

function fail(message: string): never {
  throw new DemoError(`${message}\n--- operator log (${operatorLog}) ---\n${operatorLogTail()}`);
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command the way the user would type it, printing the command line and its output. */
function sh(
  shown: string,
  file: string,
  args: string[],
  opts: { input?: string; expectFailure?: boolean } = {},
): Ran {
  console.log(`$ ${shown}`);
  const result = spawnSync(file, args, {
    input: opts.input,
    encoding: 'utf8',
    env: { ...process.env, KUBECONFIG: state.kubeconfig },
    timeout: 300_000,
  });
  const ran = { code: result.status ?? 1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
  const out = (ran.stdout + ran.stderr).trimEnd();
  if (out) console.log(out.replace(/^/gm, '  '));
  if (opts.expectFailure ? ran.code === 0 : ran.code !== 0) {
    fail(
      `step "${shown}" ${opts.expectFailure ? 'unexpectedly succeeded' : `failed with exit code ${ran.code}`}`,
    );
  }
  return ran;
}

function kubectl(args: string[], opts: { input?: string; expectFailure?: boolean; show?: string } = {}): Ran {
  return sh(opts.show ?? `kubectl ${args.join(' ')}`, join(state.binDir, 'kubectl'), args, opts);
}

/** kubectl without printing (for checks behind the scenes). */
function quiet(args: string[]): string {
  const result = spawnSync(join(state.binDir, 'kubectl'), ['--kubeconfig', state.kubeconfig, ...args], {
    encoding: 'utf8',
  });
  return result.status === 0 ? result.stdout : '';
}

function meshrev(args: string[], opts: { expectFailure?: boolean } = {}): Ran {
  return sh(
    `meshrev ${args.join(' ')}`,
    process.execPath,
    [repoPath('dist', 'src', 'cli', 'main.js'), ...args],
    opts,
  );
}

function applyYaml(yaml: string): void {
  console.log(dim(yaml.trimEnd().replace(/^/gm, '    ')));
  kubectl(['apply', '--server-side', '-f', '-'], {
    input: yaml,
    show: 'kubectl apply --server-side -f - <<EOF  (the manifest above)',
  });
}

async function until(description: string, probe: () => boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) fail(`timed out after ${timeoutMs / 1000}s waiting for ${description}`);
    await delay(500);
  }
}

function revisionManifest(name: string, version: string): string {
  return `apiVersion: meshrev.dev/v1alpha1
kind: ControlPlaneRevision
metadata:
  name: ${name}
spec:
  version: ${version}
`;
}

const APP_MANIFEST = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${APP}
  namespace: ${NS}
  labels: {app: ${APP}}
spec:
  replicas: 2
  selector:
    matchLabels: {app: ${APP}}
  template:
    metadata:
      labels: {app: ${APP}, version: v1}
    spec:
      containers:
      - name: ${APP}
        image: docker.io/istio/examples-helloworld-v1:1.0
        ports: [{containerPort: 5000}]
`;

interface PodList {
  items: {
    metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string };
    status?: { phase?: string };
  }[];
}

function appPods(): PodList['items'] {
  const text = quiet(['-n', NS, 'get', 'pods', '-l', `app=${APP}`, '-o', 'json']);
  if (!text) return [];
  return (JSON.parse(text) as PodList).items.filter((p) => !p.metadata.deletionTimestamp);
}

function podsOn(revision: string): boolean {
  const pods = appPods();
  return (
    pods.length === 2 &&
    pods.every((p) => p.metadata.annotations?.['istio.io/rev'] === revision && p.status?.phase === 'Running')
  );
}

function showPods(): void {
  kubectl(['get', 'pods', '-n', NS, '-l', `app=${APP}`]);
  kubectl([
    'get',
    'pods',
    '-n',
    NS,
    '-l',
    `app=${APP}`,
    '-o',
    'custom-columns=NAME:.metadata.name,INJECTED-BY:.metadata.annotations.istio\\.io/rev',
  ]);
}

// ------------------------------------------------------------------------------------------------------------
// Cluster, CRDs and the operator

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startOperator(): Promise<void> {
  const pidFile = operatorPidFile(state.stateDir);
  const stopped = await stopOperator(state.stateDir);
  if (stopped)
    console.log(dim(`stopped the operator a previous run left (pid ${stopped}); starting a fresh one`));
  mkdirSync(join(state.stateDir, 'logs'), { recursive: true });
  operatorLog = join(state.stateDir, 'logs', 'operator.log');
  const before = existsSync(operatorLog) ? readFileSync(operatorLog, 'utf8').length : 0;
  const fd = openSync(operatorLog, 'a');
  const args = [
    ...OPERATOR_NODE_FLAGS,
    repoPath('dist', 'src', 'cli', 'main.js'),
    'operator',
    '--dev-webhook-routing',
    '--leader-elect=false',
    `--kubeconfig=${state.kubeconfig}`,
    '--injector-host=127.0.0.1',
    '--injector-port=0',
    '--metrics-host=127.0.0.1',
    '--metrics-port=0',
    '--pod-name=meshrev-demo',
  ];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd], cwd: repoPath() });
  closeSync(fd);
  if (!child.pid) fail('could not start the operator');
  child.unref();
  writeFileSync(pidFile, `${child.pid}\n`);
  console.log(
    `$ meshrev operator --dev-webhook-routing --leader-elect=false --kubeconfig ${state.kubeconfig} &`,
  );
  console.log(dim(`  pid ${child.pid}, log ${operatorLog}`));
  const pid = child.pid;
  await until(
    'the operator to start (its log says "meshrev operator started")',
    () => {
      if (!pidAlive(pid)) fail('the operator exited during start-up');
      return readFileSync(operatorLog, 'utf8').slice(before).includes('meshrev operator started');
    },
    60_000,
  );
  await until(
    'the operator to register its validating webhook',
    () => quiet(['get', 'validatingwebhookconfiguration', 'meshrev-validation', '-o', 'name']).trim() !== '',
  );
}

async function installCrds(): Promise<void> {
  const dir = repoPath('deploy', 'crds');
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    kubectl(['apply', '--server-side', '--force-conflicts', '-f', join('deploy', 'crds', file)], {
      show: `kubectl apply --server-side -f deploy/crds/${file}`,
    });
  }
  kubectl([
    'wait',
    '--for=condition=Established',
    'crd/controlplanerevisions.meshrev.dev',
    'crd/revisiontags.meshrev.dev',
    '--timeout=60s',
  ]);
}

// ------------------------------------------------------------------------------------------------------------
// The walk-through

async function main(): Promise<void> {
  console.log(bold('meshrev demo: a canary control-plane upgrade on a local Kubernetes control plane'));
  state = await up({ stateDir: repoPath('.cluster'), log: (l) => console.log(dim(`[cluster] ${l}`)) });
  operatorLog = join(state.stateDir, 'logs', 'operator.log');

  step('Install the meshrev CRDs and the control-plane namespace');
  await installCrds();
  applyYaml('apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n');

  step(
    'Run the operator',
    'Locally, its injector and webhooks are reached through an ExternalName Service to localhost.',
  );
  await startOperator();

  step(
    `Install the control plane revision ${OLD}`,
    'A ControlPlaneRevision becomes istiod and its sidecar-injector webhook configuration.',
  );
  applyYaml(revisionManifest(OLD, OLD_VERSION));
  kubectl(['wait', '--for=condition=Ready', `controlplanerevision/${OLD}`, '--timeout=90s']);
  kubectl(['get', 'controlplanerevisions']);

  step(
    `Label the namespace ${NS} for revision ${OLD}`,
    'As Istio documents: remove istio-injection, set istio.io/rev.',
  );
  applyYaml(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`);
  kubectl(['label', 'namespace', NS, 'istio-injection-', `istio.io/rev=${OLD}`, '--overwrite']);

  step(
    'Deploy a sample application',
    'kube-controller-manager creates the pods, the injector adds istio-proxy, KWOK runs them.',
  );
  applyYaml(APP_MANIFEST);
  kubectl(['rollout', 'status', `deployment/${APP}`, '-n', NS, '--timeout=90s']);
  if (!podsOn(OLD)) {
    // A previous run may have left the pods on another revision: restart them onto this one.
    kubectl(['rollout', 'restart', `deployment/${APP}`, '-n', NS]);
    kubectl(['rollout', 'status', `deployment/${APP}`, '-n', NS, '--timeout=90s']);
  }
  await until(`both ${APP} pods to run ${OLD}'s proxy`, () => podsOn(OLD));
  const table = kubectl(['get', 'pods', '-n', NS, '-l', `app=${APP}`]).stdout;
  const rows = table.trim().split('\n').slice(1);
  if (rows.length !== 2 || !rows.every((r) => /\s2\/2\s+Running\s/.test(r)))
    fail('expected 2 pods with READY 2/2');
  console.log(
    dim(
      '  READY 2/2: the app container and istio-proxy (a native sidecar: an init container that keeps running)',
    ),
  );

  step(`Install the canary revision ${NEW} beside it`);
  applyYaml(revisionManifest(NEW, NEW_VERSION));
  kubectl(['wait', '--for=condition=Ready', `controlplanerevision/${NEW}`, '--timeout=90s']);
  kubectl(['get', 'controlplanerevisions']);

  step(
    'Inspect the sidecar-injector webhook configurations',
    'One per revision and tag, each selecting istio.io/rev=<its name>.',
  );
  kubectl(['-n', 'istio-system', 'get', 'mutatingwebhookconfiguration', '-l', 'app=sidecar-injector']);
  kubectl([
    '-n',
    'istio-system',
    'get',
    'mutatingwebhookconfiguration',
    '-l',
    'app=sidecar-injector',
    '-o',
    'custom-columns=NAME:.metadata.name,REVISION:.metadata.labels.istio\\.io/rev,TAG:.metadata.labels.istio\\.io/tag,SELECTS:.webhooks[0].namespaceSelector.matchExpressions[0].values[0],PATH:.webhooks[0].clientConfig.service.path',
  ]);

  step(
    `Migrate ${NS} to ${NEW}, restarting its workloads`,
    'Relabels the namespace, restarts the Deployment and waits for every pod.',
  );
  meshrev(['migrate', NS, '--to', NEW, '--restart', '--timeout', '2m']);
  if (!podsOn(NEW)) fail(`the pods do not all run ${NEW} after the migration`);
  showPods();

  step('The one screen for an upgrade', 'Revisions, tags, and what each namespace runs.');
  meshrev(['status']);

  step(
    `Try to delete ${NEW} while the workloads use it`,
    'meshrev refuses, says what uses it and how to override.',
  );
  kubectl(['delete', 'controlplanerevision', NEW], { expectFailure: true });

  step(`Roll ${NS} back to ${OLD}`, 'The previous revision was recorded by migrate.');
  meshrev(['rollback', NS, '--restart', '--timeout', '2m']);
  if (!podsOn(OLD)) fail(`the pods do not all run ${OLD} after the rollback`);
  showPods();
  kubectl(['get', 'controlplanerevisions']);

  console.log(`
${bold('Done. The cluster and the operator keep running; explore:')}
  export KUBECONFIG=${state.kubeconfig}
  export PATH=${state.binDir}:$PATH
  alias meshrev='${process.execPath} ${repoPath('dist', 'src', 'cli', 'main.js')}'
  kubectl get controlplanerevisions,revisiontags
  kubectl get pods -n ${NS}
  meshrev status
  meshrev migrate ${NS} --to ${NEW} --restart      # and: meshrev rollback ${NS} --restart
  meshrev tag set prod --revision ${NEW}; meshrev tag list
  tail -f ${operatorLog}
Clean up everything (cluster and operator): make cluster-down`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`\nmake demo FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
