// ControlPlaneRevision reconciliation against the real control plane: the objects a revision becomes,
// readiness through KWOK, zero writes in steady state, drift repair, side-by-side revisions, and
// what only the operator can judge reported in status.
import { execFileSync } from 'node:child_process';

import { API_GROUP_VERSION } from '../../src/crds/constants.js';
import { writeVerbs, type KubeClient, type Verb } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import {
  clusterBinary,
  testKubeconfigPath,
  VALIDATION_WEBHOOK_REF,
  waitFor,
  type ValidationWebhook,
} from '../support/kube.js';
import { deleteRevision, waitRevisionObjectsGone } from '../e2e/support.js';
import {
  installCrds,
  operatorLogTail,
  startTestOperator,
  testClient,
  type TestOperator,
} from '../support/operator.js';

type Obj = KubeObject & Record<string, unknown>;
interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}
type Cpr = Obj & { status?: { conditions?: Condition[]; version?: string; observedGeneration?: number } };

const CPR = { apiVersion: API_GROUP_VERSION, kind: 'ControlPlaneRevision' };
const MWC = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' };
const DEPLOYMENT = { apiVersion: 'apps/v1', kind: 'Deployment' };

let client: KubeClient;
let operator: TestOperator;
const created: string[] = [];

async function applyRevision(name: string, spec: Record<string, unknown>): Promise<void> {
  await client.apply({ ...CPR, metadata: { name }, spec } as KubeObject, {
    fieldManager: 'meshrev-tests',
    force: true,
  });
  if (!created.includes(name)) created.push(name);
}

function condition(cpr: Cpr | undefined, type: string): Condition | undefined {
  return cpr?.status?.conditions?.find((c) => c.type === type);
}

async function waitForCondition(name: string, type: string, status: string, reason?: string): Promise<Cpr> {
  return waitFor(
    `${name} ${type}=${status}${reason ? ` (${reason})` : ''}`,
    async () => {
      const cpr = await client.get<Cpr>({ ...CPR, name });
      const c = condition(cpr, type);
      return c?.status === status &&
        (!reason || c.reason === reason) &&
        c.observedGeneration === cpr.metadata?.generation
        ? cpr
        : undefined;
    },
    { timeoutMs: 30_000 },
  );
}

function kubectl(...args: string[]): string {
  return execFileSync(clusterBinary('kubectl'), ['--kubeconfig', testKubeconfigPath(), ...args], {
    encoding: 'utf8',
  });
}

async function reconcileCount(): Promise<number> {
  const text = await operator.metrics.expose();
  let total = 0;
  for (const line of text.split('\n')) {
    if (
      line.startsWith('controller_runtime_reconcile_total{') &&
      line.includes('controller="controlplanerevision"')
    ) {
      total += Number(line.split(' ').at(-1));
    }
  }
  return total;
}

beforeAll(async () => {
  client = testClient();
  await installCrds(client);
  await client.apply(
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } } as KubeObject,
    {
      fieldManager: 'meshrev-tests',
      force: true,
    },
  );
  operator = await startTestOperator('revision');
});

afterAll(async () => {
  // While the operator still runs, so it releases its finalizers; other suites reuse these names.
  for (const name of created) await deleteRevision(client, name).catch(() => undefined);
  for (const name of created) await waitRevisionObjectsGone(client, name).catch(() => undefined);
  await operator?.stop();
  client?.close();
}, 150_000);

function withLogs<T>(fn: () => Promise<T>): () => Promise<T> {
  return async () => {
    try {
      return await fn();
    } catch (err) {
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}\n--- operator log ---\n${operatorLogTail(operator)}`,
      );
    }
  };
}

describe('a ControlPlaneRevision', () => {
  const rev = 'asm-1233-2';

  test(
    'becomes istiod objects and an Istio-shaped webhook configuration, then Ready once istiod is Available',
    withLogs(async () => {
      await applyRevision(rev, { version: '1.29.6' });
      const mwc = await waitFor('the revision webhook configuration', () =>
        client.getOptional<Obj>({ ...MWC, name: `istio-sidecar-injector-${rev}` }),
      );
      expect(mwc.metadata?.labels).toMatchObject({ app: 'sidecar-injector', 'istio.io/rev': rev });
      const webhooks = mwc.webhooks as {
        name: string;
        namespaceSelector: unknown;
        objectSelector: unknown;
        clientConfig: { service: { name: string; namespace: string; path: string }; caBundle?: string };
        sideEffects: string;
        admissionReviewVersions: string[];
        failurePolicy: string;
      }[];
      expect(webhooks.map((w) => w.name)).toEqual([
        'rev.namespace.sidecar-injector.istio.io',
        'rev.object.sidecar-injector.istio.io',
      ]);
      expect(webhooks[0]?.namespaceSelector).toEqual({
        matchExpressions: [
          { key: 'istio.io/rev', operator: 'In', values: [rev] },
          { key: 'istio-injection', operator: 'DoesNotExist' },
        ],
      });
      expect(webhooks[1]?.objectSelector).toEqual({
        matchExpressions: [
          { key: 'sidecar.istio.io/inject', operator: 'NotIn', values: ['false'] },
          { key: 'istio.io/rev', operator: 'In', values: [rev] },
        ],
      });
      for (const w of webhooks) {
        expect(w.clientConfig.service).toMatchObject({
          name: 'meshrev-injector',
          namespace: 'meshrev-system',
          path: `/inject/${rev}`,
        });
        expect(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString()).toContain(
          'BEGIN CERTIFICATE',
        );
        expect(w.sideEffects).toBe('None');
        expect(w.admissionReviewVersions).toEqual(['v1']);
        expect(w.failurePolicy).toBe('Fail');
      }

      const deployment = await waitFor('the istiod Deployment', () =>
        client.getOptional<
          Obj & {
            spec: {
              template: {
                metadata: { labels: Record<string, string> };
                spec: { containers: { image: string; env?: { name: string; value?: string }[] }[] };
              };
            };
          }
        >({
          ...DEPLOYMENT,
          namespace: 'istio-system',
          name: `istiod-${rev}`,
        }),
      );
      const container = deployment.spec.template.spec.containers[0];
      expect(container?.image).toBe('docker.io/istio/pilot:1.29.6');
      expect(container?.env).toEqual(expect.arrayContaining([{ name: 'REVISION', value: rev }]));
      expect(deployment.spec.template.metadata.labels).toMatchObject({ app: 'istiod', 'istio.io/rev': rev });
      for (const [kind, apiVersion, namespace, name] of [
        ['ServiceAccount', 'v1', 'istio-system', `istiod-${rev}`],
        ['Service', 'v1', 'istio-system', `istiod-${rev}`],
        ['ConfigMap', 'v1', 'istio-system', `istio-${rev}`],
      ] as const) {
        const obj = await client.get<Obj>({ apiVersion, kind, namespace, name });
        expect(obj.metadata?.labels).toMatchObject({
          'app.kubernetes.io/managed-by': 'meshrev',
          'istio.io/rev': rev,
        });
        expect(obj.metadata?.ownerReferences?.[0]).toMatchObject({
          kind: 'ControlPlaneRevision',
          name: rev,
          controller: true,
        });
      }

      const ready = await waitForCondition(rev, 'Ready', 'True');
      expect(condition(ready, 'Reconciled')?.status).toBe('True');
      expect(ready.status?.version).toBe('1.29.6');
      expect(ready.status?.observedGeneration).toBe(ready.metadata?.generation);

      const table = kubectl('get', 'controlplanerevisions');
      expect(table.split('\n')[0]).toMatch(/^NAME\s+VERSION\s+READY\s+RECONCILED\s+IN USE\s+AGE/);
      expect(table).toMatch(new RegExp(`${rev}\\s+1\\.29\\.6\\s+True\\s+True`));
      expect(kubectl('get', 'cpr', '-o', 'wide').split('\n')[0]).toMatch(/CHANNEL\s+NAMESPACE/);
      expect(kubectl('wait', '--for=condition=Ready', `cpr/${rev}`, '--timeout=10s')).toContain(
        'condition met',
      );
    }),
  );

  test(
    'costs zero writes in steady state, however often it is reconciled',
    withLogs(async () => {
      await waitForCondition(rev, 'Ready', 'True');
      // Let any trailing status write from the previous test land first.
      const settled = await waitFor('writes to settle', async () => {
        const before = operator.client.writeCount();
        const reconciles = await reconcileCount();
        operator.resyncNow();
        await waitFor('a resync reconcile', async () => (await reconcileCount()) > reconciles);
        return operator.client.writeCount() === before ? before : undefined;
      });
      for (let i = 0; i < 5; i++) {
        const reconciles = await reconcileCount();
        operator.resyncNow();
        await waitFor(`resync ${i + 1} to reconcile`, async () => (await reconcileCount()) > reconciles);
      }
      expect(operator.client.writeCount()).toBe(settled);
    }),
  );

  test(
    'repairs drift: a deleted webhook configuration is recreated and a hand-edited istiod image restored',
    withLogs(async () => {
      const mwcName = `istio-sidecar-injector-${rev}`;
      const original = await client.get<Obj>({ ...MWC, name: mwcName });
      await client.delete({ ...MWC, name: mwcName });
      await waitFor('the webhook configuration to be recreated', async () => {
        const again = await client.getOptional<Obj>({ ...MWC, name: mwcName });
        return again && again.metadata?.uid !== original.metadata?.uid ? again : undefined;
      });

      await client.patch(
        { ...DEPLOYMENT, namespace: 'istio-system', name: `istiod-${rev}` },
        [
          {
            op: 'replace',
            path: '/spec/template/spec/containers/0/image',
            value: 'example.invalid/hacked:1',
          },
        ],
        'application/json-patch+json',
        { fieldManager: 'someone-else' },
      );
      await waitFor('the istiod image to be restored', async () => {
        const d = await client.get<
          Obj & { spec: { template: { spec: { containers: { image: string }[] } } } }
        >({
          ...DEPLOYMENT,
          namespace: 'istio-system',
          name: `istiod-${rev}`,
        });
        return d.spec.template.spec.containers[0]?.image === 'docker.io/istio/pilot:1.29.6';
      });
    }),
  );

  test(
    'runs beside a second revision, and deleting one removes exactly its own objects',
    withLogs(async () => {
      const other = 'asm-1234-1';
      await applyRevision(other, { version: '1.30.3' });
      await waitForCondition(other, 'Ready', 'True');
      const listing = JSON.parse(
        kubectl(
          '-n',
          'istio-system',
          'get',
          'mutatingwebhookconfiguration',
          '-l',
          'app=sidecar-injector',
          '-o',
          'json',
        ),
      ) as { items: Obj[] };
      const names = listing.items.map((i) => i.metadata?.name);
      expect(names).toEqual(
        expect.arrayContaining([`istio-sidecar-injector-${rev}`, `istio-sidecar-injector-${other}`]),
      );

      await client.delete({ ...CPR, name: other });
      await waitFor(
        'the second revision objects to be garbage collected',
        async () => {
          const mwc = await client.getOptional({ ...MWC, name: `istio-sidecar-injector-${other}` });
          const dep = await client.getOptional({
            ...DEPLOYMENT,
            namespace: 'istio-system',
            name: `istiod-${other}`,
          });
          return mwc === undefined && dep === undefined;
        },
        { timeoutMs: 60_000 },
      );
      expect(await client.getOptional({ ...MWC, name: `istio-sidecar-injector-${rev}` })).toBeDefined();
      expect(
        await client.getOptional({ ...DEPLOYMENT, namespace: 'istio-system', name: `istiod-${rev}` }),
      ).toBeDefined();
    }),
  );

  test(
    'reports an unsupported version as Reconciled=False with a reason, an Event, and no objects',
    withLogs(async () => {
      const bad = 'too-old';
      await applyRevision(bad, { version: '1.10.0' });
      const cpr = await waitForCondition(bad, 'Reconciled', 'False', 'UnsupportedVersion');
      expect(condition(cpr, 'Reconciled')?.message).toMatch(/1\.10/);
      expect(
        await client.getOptional({ ...DEPLOYMENT, namespace: 'istio-system', name: `istiod-${bad}` }),
      ).toBeUndefined();
      const events = JSON.parse(
        kubectl('get', 'events', '-A', '--field-selector', `involvedObject.name=${bad}`, '-o', 'json'),
      ) as {
        items: { reason: string; type: string }[];
      };
      expect(events.items.some((e) => e.reason === 'UnsupportedVersion' && e.type === 'Warning')).toBe(true);
    }),
  );

  test(
    'says so when its control-plane namespace does not exist, and proceeds once it does',
    withLogs(async () => {
      const name = 'elsewhere';
      const namespace = `cp-${Date.now().toString(36)}`;
      await applyRevision(name, { version: '1.29.6', namespace });
      const cpr = await waitForCondition(name, 'Reconciled', 'False', 'NamespaceNotFound');
      expect(condition(cpr, 'Reconciled')?.message).toContain(namespace);
      await client.apply(
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } } as KubeObject,
        {
          fieldManager: 'meshrev-tests',
          force: true,
        },
      );
      await waitForCondition(name, 'Reconciled', 'True');
      expect(
        await client.getOptional({ ...MWC, name: `istio-sidecar-injector-${name}-${namespace}` }),
      ).toBeDefined();
      await client.delete({ apiVersion: 'v1', kind: 'Namespace', name: namespace });
    }),
  );

  test(
    'keeps its istiod replicas when autoscaling is turned on, for the HorizontalPodAutoscaler to take over',
    withLogs(async () => {
      const name = 'scaled';
      const deployment = { ...DEPLOYMENT, namespace: 'istio-system', name: `istiod-${name}` };
      const replicasOf = async () =>
        (await client.get<Obj & { spec?: { replicas?: number } }>(deployment)).spec?.replicas;
      await applyRevision(name, { version: '1.29.6', istiod: { replicas: 3 } });
      await waitForCondition(name, 'Reconciled', 'True');
      expect(await replicasOf()).toBe(3);

      // The test's field manager gives up istiod.replicas with this apply; meshrev then stops applying it.
      await applyRevision(name, {
        version: '1.29.6',
        istiod: { autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 5 } },
      });
      await waitForCondition(name, 'Reconciled', 'True');
      await waitFor('the HorizontalPodAutoscaler', () =>
        client.getOptional({
          apiVersion: 'autoscaling/v2',
          kind: 'HorizontalPodAutoscaler',
          namespace: 'istio-system',
          name: `istiod-${name}`,
        }),
      );
      // Dropped by server-side apply, the count would have fallen back to 1 (and the HPA raised it to 2).
      expect(await replicasOf()).toBe(3);
    }),
  );

  test(
    'never touches a webhook configuration of the same name that it does not own',
    withLogs(async () => {
      const squatted = 'squatted';
      const foreign = {
        ...MWC,
        metadata: { name: `istio-sidecar-injector-${squatted}`, labels: { owner: 'someone-else' } },
        webhooks: [],
      };
      await client.apply(foreign as KubeObject, { fieldManager: 'someone-else', force: true });
      try {
        await applyRevision(squatted, { version: '1.29.6' });
        const cpr = await waitForCondition(squatted, 'Reconciled', 'False', 'WebhookConflict');
        expect(condition(cpr, 'Reconciled')?.message).toContain(`istio-sidecar-injector-${squatted}`);
        const still = await client.get<Obj>({ ...MWC, name: `istio-sidecar-injector-${squatted}` });
        expect(still.metadata?.labels).toEqual({ owner: 'someone-else' });
        expect(still.metadata?.ownerReferences).toBeUndefined();
      } finally {
        await client.delete({ ...MWC, name: `istio-sidecar-injector-${squatted}` }).catch(() => undefined);
      }
    }),
  );

  test(
    'a restarted operator that finds meshrev-validation as it applies it writes nothing to it, and repairs an edit with one apply',
    withLogs(async () => {
      const vwcRef = VALIDATION_WEBHOOK_REF;
      type Vwc = ValidationWebhook;
      await waitFor('meshrev-validation to be in place', () => client.getOptional<Vwc>(vwcRef));
      // The same injector port: with dev routing the port is part of the configuration.
      const port = operator.injectorPort;
      await operator.stop();
      const requests: Array<{ verb: string; path: string }> = [];
      operator = await startTestOperator('revision-restarted', [`--injector-port=${port}`], {
        onKubeRequest: (r) => requests.push({ verb: r.verb, path: r.path }),
      });
      const toWebhook = (r: { path: string }) => r.path.includes('/validatingwebhookconfigurations');
      await waitFor('the leader to list meshrev-validation', () =>
        requests.some((r) => r.verb === 'list' && toWebhook(r)),
      );
      await client.patch(
        vwcRef,
        [{ op: 'replace', path: '/webhooks/0/failurePolicy', value: 'Fail' }],
        'application/json-patch+json',
      );
      await waitFor(
        'the edit to be undone',
        async () => (await client.getOptional<Vwc>(vwcRef))?.webhooks?.[0]?.failurePolicy === 'Ignore',
        { timeoutMs: 30_000 },
      );
      // The client records a request once its response is back, which can be after this test already reads the
      // repaired object: wait for the record too.
      const webhookWrites = () => requests.filter((r) => writeVerbs.has(r.verb as Verb) && toWebhook(r));
      await waitFor('the repair to be recorded', () => webhookWrites().length > 0);
      expect(webhookWrites().map((r) => r.verb)).toEqual(['apply']);
    }),
  );
});
