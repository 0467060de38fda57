// Runs the real operator in the test process against the test cluster, with its injector reached by
// kube-apiserver through an ExternalName Service to localhost (dev webhook routing).
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';

import { installCrds as installMeshrevCrds } from '../../hack/cluster/crds.js';
import { loadOperatorConfig, type OperatorConfig } from '../../src/config.js';
import { startOperator, type OperatorHandle, type OperatorOverrides } from '../../src/operator.js';
import { KubeClient } from '../../src/runtime/kube.js';
import { testKubeConfig, testKubeconfigPath } from './kube.js';

export const repoRoot = join(import.meta.dirname, '..', '..');

export function testClient(): KubeClient {
  return KubeClient.fromKubeConfig(testKubeConfig(), { userAgent: 'meshrev-tests' });
}

/** Applies deploy/crds and waits until the API server serves them. */
export async function installCrds(client: KubeClient): Promise<void> {
  await installMeshrevCrds(client, 'meshrev-tests');
}

/** Creates `istio-system` (where revisions' webhook configurations and istiod live) unless it exists. */
export async function ensureIstioSystemNamespace(client: KubeClient): Promise<void> {
  if (await client.getOptional({ apiVersion: 'v1', kind: 'Namespace', name: 'istio-system' })) return;
  await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } });
}

export interface TestOperator extends OperatorHandle {
  config: OperatorConfig;
  logFile: string;
}

/** Starts an operator; `name` keeps its log file apart (under the cluster's log directory). */
export async function startTestOperator(
  name: string,
  args: string[] = [],
  overrides: Pick<OperatorOverrides, 'impersonate' | 'onKubeRequest'> = {},
): Promise<TestOperator> {
  const config = loadOperatorConfig(
    [
      `--kubeconfig=${testKubeconfigPath()}`,
      '--injector-host=127.0.0.1',
      '--injector-port=0',
      '--metrics-host=127.0.0.1',
      '--metrics-port=0',
      '--dev-webhook-routing=true',
      '--leader-elect=false',
      `--pod-name=${name}`,
      '--resync-seconds=0',
      // Every cache miss through the render thread, so the suites exercise it (by default only a busy replica does).
      '--injector-render-offload=always',
      ...args,
    ],
    {},
  );
  const logDir = join(process.env.MESHREV_TEST_CLUSTER_DIR ?? join(repoRoot, '.cluster', 'test'), 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, `operator-${name}.log`);
  const logger = pino(
    { level: 'debug', base: { component: 'meshrev', pod: name } },
    createWriteStream(logFile, { flags: 'a' }),
  );
  // Running from TypeScript sources: render threads load the compiled entry (`make test` builds first).
  const renderThreadModule = pathToFileURL(join(repoRoot, 'dist', 'src', 'injector', 'render-thread.js'));
  const handle = await startOperator(config, { ...overrides, logger, renderThreadModule });
  return { ...handle, config, logFile };
}

export function operatorLogTail(op: { logFile: string }, lines = 40): string {
  try {
    return readFileSync(op.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no operator log)';
  }
}
