// Shared by the end-to-end suites: subprocesses that never block the event loop (the in-process operator
// must keep answering kube-apiserver's webhook calls while kubectl or the meshrev CLI runs), revision
// set-up and clean-up that tolerate other suites' leftovers, and failure messages with the logs.
import { execFile } from 'node:child_process';
import { join } from 'node:path';

import { ALLOW_DELETE_IN_USE_ANNOTATION } from '../../src/controllers/revision/deletion.js';
import { API_GROUP_VERSION } from '../../src/crds/constants.js';
import type { KubeClient } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import { clusterBinary, componentLogs, testKubeconfigPath, uniqueName, waitFor } from '../support/kube.js';
import { operatorLogTail, repoRoot, type TestOperator } from '../support/operator.js';

export const CPR = { apiVersion: API_GROUP_VERSION, kind: 'ControlPlaneRevision' };
export const TAG = { apiVersion: API_GROUP_VERSION, kind: 'RevisionTag' };
export const MWC = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' };
export const FIELD_MANAGER = 'meshrev-e2e';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The cluster's kubectl against the test cluster (asynchronous: the operator answers webhooks meanwhile). */
export function kubectl(args: string[], timeoutMs = 60_000): Promise<Run> {
  return run(clusterBinary('kubectl'), ['--kubeconfig', testKubeconfigPath(), ...args], timeoutMs);
}

/** kubectl that must succeed; returns stdout. */
export async function kubectlOk(args: string[]): Promise<string> {
  const result = await kubectl(args);
  if (result.code !== 0)
    throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

/** The compiled CLI (`dist/src/cli/main.js`) as a user runs it. */
export function meshrev(args: string[], timeoutMs = 150_000): Promise<Run> {
  return run(
    process.execPath,
    [join(repoRoot, 'dist', 'src', 'cli', 'main.js'), ...args, '--kubeconfig', testKubeconfigPath()],
    timeoutMs,
  );
}

type WebhookConfiguration = KubeObject & { webhooks?: { clientConfig: { caBundle?: string } }[] };

/** The revision's webhook configuration once meshrev has written the injector's CA into every webhook. */
export function webhookConfigurationWithCaBundle(
  client: KubeClient,
  revision: string,
): Promise<WebhookConfiguration> {
  return waitFor(
    `webhook configuration of ${revision} with a caBundle`,
    async () => {
      const live = await client.getOptional<WebhookConfiguration>({
        ...MWC,
        name: `istio-sidecar-injector-${revision}`,
      });
      return live?.webhooks?.every((w) => w.clientConfig.caBundle) ? live : undefined;
    },
    { timeoutMs: 30_000 },
  );
}

/**
 * A namespace for a test (labelled `meshrev.dev/test` and `labels`), added to `created` for clean-up, once
 * kube-controller-manager has created its default ServiceAccount, which pods need.
 */
export async function testNamespace(
  client: KubeClient,
  prefix: string,
  labels: Record<string, string>,
  created: string[],
): Promise<string> {
  const name = uniqueName(prefix);
  await client.create({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'meshrev.dev/test': 'true', ...labels } },
  });
  created.push(name);
  await waitFor(`default ServiceAccount in ${name}`, () =>
    client.getOptional({ apiVersion: 'v1', kind: 'ServiceAccount', namespace: name, name: 'default' }),
  );
  return name;
}

export async function applyObject(client: KubeClient, obj: Record<string, unknown>): Promise<void> {
  await client.apply(obj as KubeObject, { fieldManager: FIELD_MANAGER, force: true });
}

/**
 * Deletes a revision whatever uses it (override annotation) and waits until it is gone: the finalizer is
 * released by `operator`, so this must run while it still runs.
 */
export async function deleteRevision(client: KubeClient, name: string): Promise<void> {
  const live = await client.getOptional<KubeObject>({ ...CPR, name });
  if (live === undefined) return;
  await client
    .patch(
      { ...CPR, name },
      { metadata: { annotations: { [ALLOW_DELETE_IN_USE_ANNOTATION]: 'true' } } },
      'application/merge-patch+json',
    )
    .catch(() => undefined);
  await client.delete({ ...CPR, name }).catch(() => undefined);
  await waitFor(
    `revision ${name} to be gone`,
    async () => (await client.getOptional({ ...CPR, name })) === undefined,
    {
      timeoutMs: 30_000,
    },
  );
}

/**
 * Waits until the garbage collector removed what a deleted revision owned, so a later suite that creates a
 * revision of the same name does not meet its predecessor's objects (the collector can lag by its resource
 * discovery period on a cluster whose CRDs are new).
 */
export async function waitRevisionObjectsGone(
  client: KubeClient,
  name: string,
  namespace = 'istio-system',
): Promise<void> {
  await waitFor(
    `the objects of revision ${name} to be garbage collected`,
    async () =>
      (await client.getOptional({ ...CPR, name })) === undefined &&
      (await client.getOptional({ ...MWC, name: `istio-sidecar-injector-${name}` })) === undefined &&
      (await client.getOptional({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        namespace,
        name: `istiod-${name}`,
      })) === undefined,
    { timeoutMs: 90_000, intervalMs: 500 },
  );
}

/** Wraps a test body so a failure carries the operator's log tail and the cluster components' logs. */
export function withLogs<T>(
  operator: () => TestOperator | undefined,
  fn: () => Promise<T>,
): () => Promise<T> {
  return async () => {
    try {
      return await fn();
    } catch (err) {
      const op = operator();
      throw new Error(
        `${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n--- operator log ---\n` +
          `${op ? operatorLogTail(op) : '(no operator)'}\n--- components ---\n${componentLogs()}`,
      );
    }
  };
}

export interface PodView {
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec: {
    containers: { name: string }[];
    initContainers?: { name: string; restartPolicy?: string }[];
  };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}

/** The revision whose injector gave the pod its proxy (annotation `istio.io/rev`), or undefined. */
export function injectedBy(pod: PodView): string | undefined {
  return pod.metadata.annotations?.['istio.io/rev'];
}

/** Whether the pod carries an `istio-proxy` container (native sidecar or classic). */
export function hasProxy(pod: PodView): boolean {
  return [...pod.spec.containers, ...(pod.spec.initContainers ?? [])].some((c) => c.name === 'istio-proxy');
}

export function podReady(pod: PodView): boolean {
  return (
    pod.status?.phase === 'Running' &&
    (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}
