// The Istio canary upgrade, end to end on the real control plane: revision asm-1233-2 serves a labelled
// namespace whose Deployment's pods (made by kube-controller-manager, run by KWOK) get their proxy from
// meshrev's injector; asm-1234-1 is installed beside it; `meshrev migrate --restart` moves the pods, the old
// revision reports its stale pods until then; `meshrev rollback --restart` moves them back; deleting a
// revision in use is refused (webhook) or held (finalizer) with a message that says why and how to override.
import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';

import {
  DELETION_BLOCKED_CONDITION,
  IN_USE_FINALIZER,
  VALIDATING_WEBHOOK_CONFIGURATION_NAME,
} from '../../src/controllers/revision/deletion.js';
import type { KubeClient } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import {
  createTestNamespace,
  deleteNamespace,
  testKubeConfig,
  uniqueName,
  VALIDATION_WEBHOOK_REF,
  waitFor,
  type ValidationWebhook,
} from '../support/kube.js';
import { installCrds, startTestOperator, testClient, type TestOperator } from '../support/operator.js';
import {
  applyObject,
  CPR,
  deleteRevision,
  hasProxy,
  injectedBy,
  kubectl,
  kubectlOk,
  meshrev,
  MWC,
  podReady,
  TAG,
  waitRevisionObjectsGone,
  withLogs,
  type PodView,
} from './support.js';

const OLD = 'asm-1233-2';
const NEW = 'asm-1234-1';
const APP = 'helloworld';
const REPLICAS = 2;

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
type Revision = KubeObject & {
  status?: { conditions?: Condition[]; inUse?: { namespaces: number; pods: number; stalePods: number } };
};

const kc = testKubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);
let client: KubeClient;
let operator: TestOperator | undefined;
let namespace: string;
const namespaces: string[] = [];
const tag = uniqueName('prod');

const logged = <T>(fn: () => Promise<T>) => withLogs(() => operator, fn);

async function revisionStatus(name: string): Promise<Revision> {
  return client.get<Revision>({ ...CPR, name });
}

function condition(cpr: Revision, type: string): Condition | undefined {
  return cpr.status?.conditions?.find((c) => c.type === type);
}

async function waitReady(name: string): Promise<void> {
  await waitFor(
    `revision ${name} Ready`,
    async () => condition(await revisionStatus(name), 'Ready')?.status === 'True',
    { timeoutMs: 60_000 },
  );
}

/** The app's pods that are not being deleted. */
async function appPods(): Promise<PodView[]> {
  const list = JSON.parse(
    await kubectlOk(['-n', namespace, 'get', 'pods', '-l', `app=${APP}`, '-o', 'json']),
  ) as {
    items: PodView[];
  };
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}

async function pod(ns: string, name: string): Promise<PodView> {
  return JSON.parse(await kubectlOk(['-n', ns, 'get', 'pod', name, '-o', 'json'])) as PodView;
}

async function createBarePod(ns: string, name: string, labels: Record<string, string> = {}): Promise<void> {
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name, labels },
      spec: { containers: [{ name: 'app', image: 'docker.io/istio/examples-helloworld-v1:1.0' }] },
    },
  });
}

beforeAll(async () => {
  client = testClient();
  await installCrds(client);
  await applyObject(client, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } });
  // The default tag would make this suite depend on which revision is oldest in a shared cluster.
  operator = await startTestOperator('canary', ['--create-default-tag=false']);
  // Another suite may have left these revisions (or their pending deletion) behind.
  for (const name of [OLD, NEW]) {
    await deleteRevision(client, name);
    await waitRevisionObjectsGone(client, name);
  }
  await applyObject(client, { ...CPR, metadata: { name: OLD }, spec: { version: '1.29.6' } });
  namespace = await createTestNamespace(kc, 'canary', { 'istio.io/rev': OLD });
  namespaces.push(namespace);
}, 120_000);

afterAll(async () => {
  for (const ns of namespaces) await deleteNamespace(kc, ns);
  await client.delete({ ...TAG, name: tag }).catch(() => undefined);
  // While the operator runs, so it releases the finalizers.
  for (const name of [OLD, NEW]) await deleteRevision(client, name).catch(() => undefined);
  // Other suites reuse these revision names.
  for (const name of [OLD, NEW]) await waitRevisionObjectsGone(client, name).catch(() => undefined);
  await operator?.stop();
  client?.close();
}, 120_000);

describe('a canary upgrade from asm-1233-2 to asm-1234-1', () => {
  test(
    'pods of a namespace labelled istio.io/rev=asm-1233-2 run its proxy as a native sidecar and show READY 2/2',
    logged(async () => {
      await waitReady(OLD);
      await apps.createNamespacedDeployment({
        namespace,
        body: {
          metadata: { name: APP, labels: { app: APP } },
          spec: {
            replicas: REPLICAS,
            selector: { matchLabels: { app: APP } },
            template: {
              metadata: { labels: { app: APP, version: 'v1' } },
              spec: {
                containers: [
                  {
                    name: APP,
                    image: 'docker.io/istio/examples-helloworld-v1:1.0',
                    ports: [{ containerPort: 5000 }],
                  },
                ],
              },
            },
          },
        },
      });
      const pods = await waitFor(
        `${REPLICAS} ${APP} pods Running and Ready`,
        async () => {
          const list = await appPods();
          return list.length === REPLICAS && list.every(podReady) ? list : undefined;
        },
        { timeoutMs: 60_000 },
      );
      for (const p of pods) {
        expect(injectedBy(p)).toBe(OLD);
        // Kubernetes 1.36 nodes: the proxy is an init container that keeps running (restartPolicy Always).
        expect(p.spec.initContainers).toEqual(
          expect.arrayContaining([expect.objectContaining({ name: 'istio-proxy', restartPolicy: 'Always' })]),
        );
        expect(p.spec.containers.map((c) => c.name)).toEqual([APP]);
      }
      const table = await kubectlOk(['-n', namespace, 'get', 'pod', '-l', `app=${APP}`]);
      const rows = table.trim().split('\n');
      expect(rows[0]).toMatch(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE/);
      expect(rows.slice(1)).toHaveLength(REPLICAS);
      for (const row of rows.slice(1)) expect(row).toMatch(new RegExp(`^${APP}-\\S+\\s+2/2\\s+Running\\s`));
    }),
  );

  test(
    'a pod labelled sidecar.istio.io/inject=false is left alone, and a namespace with istio-injection=disabled gets nothing',
    logged(async () => {
      await createBarePod(namespace, 'opted-out', {
        'sidecar.istio.io/inject': 'false',
        'istio.io/rev': OLD,
      });
      const disabled = await createTestNamespace(kc, 'canary-off', { 'istio-injection': 'disabled' });
      namespaces.push(disabled);
      await createBarePod(disabled, 'plain', { 'istio.io/rev': OLD, 'sidecar.istio.io/inject': 'true' });
      for (const [ns, name] of [
        [namespace, 'opted-out'],
        [disabled, 'plain'],
      ] as const) {
        const p = await pod(ns, name);
        expect(hasProxy(p)).toBe(false);
        expect(injectedBy(p)).toBeUndefined();
      }
      const table = await kubectlOk(['-n', disabled, 'get', 'pod', 'plain', '--no-headers']);
      expect(table).toMatch(/^plain\s+(0|1)\/1\s/);
    }),
  );

  test(
    'with asm-1234-1 and a tag installed, the webhook inspection shows one Istio-shaped configuration per revision and tag',
    logged(async () => {
      await applyObject(client, { ...CPR, metadata: { name: NEW }, spec: { version: '1.30.3' } });
      await waitReady(NEW);
      await applyObject(client, { ...TAG, metadata: { name: tag }, spec: { revision: NEW } });
      await waitFor(`tag ${tag} webhook configuration`, () =>
        client.getOptional({ ...MWC, name: `istio-revision-tag-${tag}` }),
      );

      const listing = parseYaml(
        await kubectlOk([
          '-n',
          'istio-system',
          'get',
          'mutatingwebhookconfiguration',
          '-l',
          'app=sidecar-injector',
          '-o',
          'yaml',
        ]),
      ) as {
        kind: string;
        items: {
          metadata: { name: string; labels: Record<string, string> };
          webhooks: {
            name: string;
            namespaceSelector: unknown;
            objectSelector: unknown;
            clientConfig: { service: { name: string; namespace: string; path: string } };
          }[];
        }[];
      };
      expect(listing.kind).toBe('List');
      const expected = [
        { name: `istio-sidecar-injector-${OLD}`, selects: OLD, rev: OLD, tag: undefined },
        { name: `istio-sidecar-injector-${NEW}`, selects: NEW, rev: NEW, tag: undefined },
        { name: `istio-revision-tag-${tag}`, selects: tag, rev: NEW, tag },
      ];
      for (const want of expected) {
        // Exactly one configuration carries this revision (or tag) label set.
        const matching = listing.items.filter(
          (i) =>
            i.metadata.labels['istio.io/rev'] === want.rev && i.metadata.labels['istio.io/tag'] === want.tag,
        );
        expect(matching.map((i) => i.metadata.name)).toEqual([want.name]);
        const [mwc] = matching;
        expect(mwc?.webhooks.map((w) => w.name)).toEqual([
          'rev.namespace.sidecar-injector.istio.io',
          'rev.object.sidecar-injector.istio.io',
        ]);
        expect(mwc?.webhooks[0]?.namespaceSelector).toEqual({
          matchExpressions: [
            { key: 'istio.io/rev', operator: 'In', values: [want.selects] },
            { key: 'istio-injection', operator: 'DoesNotExist' },
          ],
        });
        expect(mwc?.webhooks[0]?.objectSelector).toEqual({
          matchExpressions: [{ key: 'sidecar.istio.io/inject', operator: 'NotIn', values: ['false'] }],
        });
        expect(mwc?.webhooks[1]?.namespaceSelector).toEqual({
          matchExpressions: [
            { key: 'istio.io/rev', operator: 'DoesNotExist' },
            { key: 'istio-injection', operator: 'DoesNotExist' },
          ],
        });
        expect(mwc?.webhooks[1]?.objectSelector).toEqual({
          matchExpressions: [
            { key: 'sidecar.istio.io/inject', operator: 'NotIn', values: ['false'] },
            { key: 'istio.io/rev', operator: 'In', values: [want.selects] },
          ],
        });
        for (const w of mwc?.webhooks ?? []) {
          expect(w.clientConfig.service).toMatchObject({
            name: 'meshrev-injector',
            namespace: 'meshrev-system',
            path: `/inject/${want.rev}`,
          });
        }
      }
    }),
  );

  test(
    'meshrev migrate relabels the namespace, the old revision reports stale pods, and --restart moves every pod',
    logged(async () => {
      const relabel = await meshrev(['migrate', namespace, '--to', NEW]);
      expect(relabel).toMatchObject({ code: 0 });
      const ns = await core.readNamespace({ name: namespace });
      expect(ns.metadata?.labels?.['istio.io/rev']).toBe(NEW);
      expect(ns.metadata?.annotations?.['meshrev.dev/previous-revision']).toBe(OLD);

      const stale = await waitFor(
        `${OLD} to report ${REPLICAS} stale pods`,
        async () => {
          const cpr = await revisionStatus(OLD);
          return cpr.status?.inUse?.stalePods === REPLICAS ? cpr : undefined;
        },
        { timeoutMs: 30_000 },
      );
      expect(condition(stale, 'InUse')).toMatchObject({ status: 'True' });
      expect(condition(stale, 'InUse')?.message).toContain(
        `${REPLICAS} pods still run another revision's proxy`,
      );
      expect((await appPods()).map(injectedBy)).toEqual([OLD, OLD]);

      const moved = await meshrev(['migrate', namespace, '--to', NEW, '--restart', '--timeout', '120s']);
      expect(moved.stderr).toBe('');
      expect(moved.code).toBe(0);
      expect(moved.stdout).toContain(`restarted deployment/${APP}`);
      expect(moved.stdout).toContain(`${namespace}: done, ${REPLICAS}/${REPLICAS} pods run ${NEW}`);
      const pods = await appPods();
      expect(pods.map(injectedBy)).toEqual([NEW, NEW]);
      expect(pods.every(podReady)).toBe(true);

      await waitFor(
        `${OLD} to report no pods and no stale pods`,
        async () => {
          const inUse = (await revisionStatus(OLD)).status?.inUse;
          return inUse?.pods === 0 && inUse.stalePods === 0 && inUse.namespaces === 0;
        },
        { timeoutMs: 30_000 },
      );
      const status = JSON.parse((await meshrev(['status', '-o', 'json'])).stdout) as unknown;
      expect(JSON.stringify(status)).toContain(namespace);
    }),
  );

  test(
    'deleting the revision the workloads run on is refused with what uses it and how to override',
    logged(async () => {
      const refused = await kubectl(['delete', 'controlplanerevision', NEW]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('Error from server (Forbidden)');
      expect(refused.stderr).toContain(
        'denied the request: ControlPlaneRevision "asm-1234-1" is still in use',
      );
      expect(refused.stderr).toContain(`namespace "${namespace}" selects it via istio.io/rev=${NEW}`);
      expect(refused.stderr).toContain(`${REPLICAS} pods injected by it`);
      expect(refused.stderr).toContain('meshrev.dev/allow-delete-in-use=true');
      const live = await revisionStatus(NEW);
      expect(live.metadata?.deletionTimestamp).toBeUndefined();
      expect(live.metadata?.finalizers).toContain(IN_USE_FINALIZER);
      const events = await waitFor('a DeletionRefused event', async () => {
        const list = JSON.parse(
          await kubectlOk([
            'get',
            'events',
            '-A',
            '--field-selector',
            `involvedObject.name=${NEW},reason=DeletionRefused`,
            '-o',
            'json',
          ]),
        ) as { items: { type: string; message: string }[] };
        return list.items.length > 0 ? list.items : undefined;
      });
      expect(events[0]?.type).toBe('Warning');
    }),
  );

  test(
    'meshrev rollback --restart returns the namespace and its pods to asm-1233-2, and asm-1234-1 then deletes',
    logged(async () => {
      const back = await meshrev(['rollback', namespace, '--restart', '--timeout', '120s']);
      expect(back.stderr).toBe('');
      expect(back.code).toBe(0);
      expect(back.stdout).toContain(`${namespace}: done, ${REPLICAS}/${REPLICAS} pods run ${OLD}`);
      expect((await core.readNamespace({ name: namespace })).metadata?.labels?.['istio.io/rev']).toBe(OLD);
      expect((await appPods()).map(injectedBy)).toEqual([OLD, OLD]);

      // Only the unused tag still points at it: the delete goes through, with a warning about the tag.
      await waitFor(
        `${NEW} to be unused`,
        async () => (await revisionStatus(NEW)).status?.inUse?.pods === 0,
        { timeoutMs: 30_000 },
      );
      const deleted = await kubectl(['delete', 'controlplanerevision', NEW, '--timeout=30s']);
      expect(deleted.stderr).toContain(`Warning: RevisionTag "${tag}" still points at "${NEW}"`);
      expect(deleted.code).toBe(0);
      expect(await client.getOptional({ ...CPR, name: NEW })).toBeUndefined();
    }),
  );

  test(
    'a hand-deleted meshrev-validation comes back; while no operator runs, the finalizer holds the deletion of an in-use revision and says why until overridden',
    logged(async () => {
      const vwcRef = VALIDATION_WEBHOOK_REF;
      type Vwc = ValidationWebhook;
      const saved = await client.get<Vwc>(vwcRef);
      await client.delete(vwcRef);
      const restored = await waitFor(
        `${VALIDATING_WEBHOOK_CONFIGURATION_NAME} to be applied again`,
        async () => {
          const live = await client.getOptional<Vwc>(vwcRef);
          return live !== undefined && live.metadata?.uid !== saved.metadata?.uid ? live : undefined;
        },
        { timeoutMs: 30_000 },
      );
      expect(restored.webhooks?.[0]?.clientConfig?.caBundle).toBe(
        saved.webhooks?.[0]?.clientConfig?.caBundle,
      );
      // An edit of a field meshrev sets is undone too.
      await client.patch(
        vwcRef,
        [{ op: 'replace', path: '/webhooks/0/failurePolicy', value: 'Fail' }],
        'application/json-patch+json',
      );
      await waitFor(
        `${VALIDATING_WEBHOOK_CONFIGURATION_NAME} to fail open again`,
        async () => (await client.getOptional<Vwc>(vwcRef))?.webhooks?.[0]?.failurePolicy === 'Ignore',
        { timeoutMs: 30_000 },
      );

      // The webhook fails open (failurePolicy Ignore) while no replica answers: the finalizer is the backstop.
      await operator?.stop();
      const accepted = await kubectl(['delete', 'controlplanerevision', OLD, '--wait=false']);
      expect(accepted.code).toBe(0);
      operator = await startTestOperator('canary-restarted', ['--create-default-tag=false']);
      const held = await waitFor(
        `${OLD} to report ${DELETION_BLOCKED_CONDITION}`,
        async () => {
          const cpr = await revisionStatus(OLD);
          return condition(cpr, DELETION_BLOCKED_CONDITION)?.status === 'True' ? cpr : undefined;
        },
        { timeoutMs: 30_000 },
      );
      expect(held.metadata?.deletionTimestamp).toBeDefined();
      expect(condition(held, DELETION_BLOCKED_CONDITION)?.message).toContain(
        `namespace "${namespace}" selects it via istio.io/rev=${OLD}`,
      );
      const described = await kubectlOk(['describe', 'controlplanerevision', OLD]);
      expect(described).toContain('DeletionBlocked');
      expect(described).toContain('meshrev.dev/allow-delete-in-use=true');

      // The pods keep being served meanwhile: a new pod in the namespace still gets the old revision's proxy.
      await createBarePod(namespace, 'during-deletion');
      expect(injectedBy(await pod(namespace, 'during-deletion'))).toBe(OLD);

      await kubectlOk(['annotate', 'controlplanerevision', OLD, 'meshrev.dev/allow-delete-in-use=true']);
      await waitFor(
        `${OLD} to be deleted`,
        async () => (await client.getOptional({ ...CPR, name: OLD })) === undefined,
        { timeoutMs: 30_000 },
      );
    }),
  );
});
