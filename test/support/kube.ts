// Helpers for integration tests: a client for the test cluster, unique namespaces per suite, and
// wait-for-condition polling (never fixed sleeps).
import * as k8s from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { logTail } from '../../hack/cluster/local-cluster.js';
import { VALIDATING_WEBHOOK_CONFIGURATION_NAME } from '../../src/controllers/revision/deletion.js';
import type { KubeObject } from '../../src/runtime/types.js';

export function testKubeconfigPath(): string {
  const path = process.env.MESHREV_TEST_KUBECONFIG;
  if (!path)
    throw new Error('MESHREV_TEST_KUBECONFIG is not set: integration tests run under the global setup');
  return path;
}

export function testKubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(testKubeconfigPath());
  return kc;
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

/** Polls `probe` until it returns a value other than undefined/false, or fails with `description`. */
export async function waitFor<T>(
  description: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const suffix = lastError
        ? ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`
        : '';
      throw new Error(`timed out waiting for ${description}${suffix}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

/** Creates a namespace for one suite and waits for its default ServiceAccount (pods need it). */
export async function createTestNamespace(
  kc: k8s.KubeConfig,
  prefix: string,
  labels: Record<string, string> = {},
): Promise<string> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const name = uniqueName(prefix);
  await core.createNamespace({
    body: { metadata: { name, labels: { 'meshrev.dev/test': 'true', ...labels } } },
  });
  await waitFor(`default ServiceAccount in ${name}`, async () => {
    await core.readNamespacedServiceAccount({ name: 'default', namespace: name });
    return true;
  });
  return name;
}

export async function deleteNamespace(kc: k8s.KubeConfig, name: string): Promise<void> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.deleteNamespace({ name }).catch(() => undefined);
}

/** Component log tails for a failure message (only when this run started the cluster). */
export function componentLogs(components = ['kube-apiserver', 'kube-controller-manager', 'kwok']): string {
  const dir = process.env.MESHREV_TEST_CLUSTER_DIR;
  if (!dir || !existsSync(join(dir, 'logs'))) return '(component logs unavailable)';
  return components.map((c) => `--- ${c} ---\n${logTail(dir, c, 20)}`).join('\n');
}

/** The path of a cached Kubernetes binary (e.g. kubectl) of the test cluster. */
export function clusterBinary(name: string): string {
  const dir = process.env.MESHREV_TEST_BIN_DIR;
  if (!dir) throw new Error('MESHREV_TEST_BIN_DIR is not set: integration tests run under the global setup');
  return join(dir, name);
}

/** meshrev-validation: the ValidatingWebhookConfiguration that guards the deletion of ControlPlaneRevisions. */
export const VALIDATION_WEBHOOK_REF = {
  apiVersion: 'admissionregistration.k8s.io/v1',
  kind: 'ValidatingWebhookConfiguration',
  name: VALIDATING_WEBHOOK_CONFIGURATION_NAME,
};

export type ValidationWebhook = KubeObject & {
  webhooks?: { failurePolicy?: string; clientConfig?: { caBundle?: string } }[];
};
