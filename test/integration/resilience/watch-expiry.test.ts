// Watch expiry on the real cluster: kube-apiserver runs without its watch cache (so watches are served by
// etcd and honour compaction), the operator reaches it through a loopback proxy that can cut it off, and
// while it is cut off (long enough for the informers to back off towards 30 s) revisions are created,
// changed and deleted, an owned object is deleted, and etcd is compacted past everything the operator has seen. On reconnect every watch gets 410 Expired: the
// informers must relist and emit exactly the difference — nothing lost, nothing phantom.
import * as k8s from '@kubernetes/client-node';

import { restartComponent } from '../../../hack/cluster/local-cluster.js';
import type { KubeClient } from '../../../src/runtime/kube.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { createTestNamespace, deleteNamespace, testKubeConfig, waitFor } from '../../support/kube.js';
import {
  installCrds,
  operatorLogTail,
  startTestOperator,
  testClient,
  type TestOperator,
} from '../../support/operator.js';
import {
  admissionReview,
  applyRevision,
  clusterState,
  compactEtcd,
  CPR,
  injectorAgent,
  managedObjects,
  metricValue,
  orphans,
  ownedObjectProblems,
  postToInjector,
  reconciledNow,
  record,
  reviewResponse,
  revisionName,
  startApiServerProxy,
  waitForReconciled,
  withDiagnostics,
  type Cpr,
  type TcpProxy,
} from './support.js';

let client: KubeClient;
let kc: k8s.KubeConfig;
let namespace: string;
let operator: TestOperator | undefined;
let proxy: TcpProxy | undefined;
let watchCacheDisabled = false;
const created: string[] = [];

beforeAll(async () => {
  kc = testKubeConfig();
  client = testClient();
  await installCrds(client);
  namespace = await createTestNamespace(kc, 'rs-expiry');
});

afterAll(async () => {
  await operator?.stop();
  await proxy?.close();
  // Give the cluster back to the other suites with its usual flags (watch cache on).
  if (watchCacheDisabled) await restartComponent(clusterState(), 'kube-apiserver', { signal: 'SIGKILL' });
  for (const name of created) await client.delete({ ...CPR, name }).catch(() => undefined);
  await deleteNamespace(kc, namespace);
  client.close();
}, 60_000);

const logs = (): string => (operator ? operatorLogTail(operator) : '(no operator)');

async function expiredCount(resource?: string): Promise<number> {
  const text = (await operator?.metrics.expose()) ?? '';
  return metricValue(text, 'meshrev_informer_restarts_total', {
    reason: 'expired',
    ...(resource ? { resource } : {}),
  });
}

type Deployment = KubeObject & {
  spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } };
};

test(
  'after a long partition and an etcd compaction expire every watch, the informers relist and nothing is lost or phantom',
  withDiagnostics(logs, async () => {
    const state = clusterState();
    const restart = await restartComponent(state, 'kube-apiserver', {
      signal: 'SIGKILL',
      extraArgs: ['--watch-cache=false'],
    });
    watchCacheDisabled = true;
    proxy = await startApiServerProxy(state, 'watch-expiry');
    operator = await startTestOperator('resilience-expiry', [
      `--kubeconfig=${proxy.kubeconfig}`,
      '--create-default-tag=false',
    ]);

    const spec = { version: '1.29.6', namespace };
    const [kept, changed, removed] = [
      revisionName('exp-keep'),
      revisionName('exp-change'),
      revisionName('exp-remove'),
    ];
    created.push(kept, changed, removed);
    for (const name of [kept, changed, removed]) await applyRevision(client, name, spec);
    for (const name of [kept, changed, removed]) await waitForReconciled(client, name);
    const expiredBefore = await expiredCount();
    const revisionsExpiredBefore = await expiredCount('controlplanerevisions');

    // Cut the operator off, change things behind its back, and compact etcd past all of it.
    const partitionedAt = Date.now();
    proxy.partition();
    const added = revisionName('exp-added');
    created.push(added);
    await applyRevision(client, added, spec);
    await applyRevision(client, changed, {
      ...spec,
      istiod: { env: { RESILIENCE_MARK: 'changed-while-expired' } },
    });
    await client.delete({ ...CPR, name: removed });
    const keptService = { apiVersion: 'v1', kind: 'Service', namespace, name: `istiod-${kept}` };
    const keptServiceUid = (await client.get(keptService)).metadata?.uid;
    await client.delete(keptService);
    // A real outage, not a blip: hold the partition until the informers have failed to reconnect many times
    // and backed off towards their 30 s ceiling; recovery must not then wait out a second full backoff.
    const restartsAtCut = metricValue(await operator.metrics.expose(), 'meshrev_informer_restarts_total');
    await waitFor(
      'the informers to fail to reconnect 80 times',
      async () =>
        metricValue((await operator?.metrics.expose()) ?? '', 'meshrev_informer_restarts_total') >
        restartsAtCut + 80,
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const compactedAt = await compactEtcd(state);
    proxy.heal();
    const healedAt = Date.now();

    // Lost events would leave these undone.
    const addedCpr = await waitForReconciled(client, added, 60_000);
    await waitFor(
      'the change made while expired to reach the istiod Deployment',
      async () => {
        const d = await client.get<Deployment>({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          namespace,
          name: `istiod-${changed}`,
        });
        return d.spec.template.spec.containers[0]?.env?.some(
          (e) => e.name === 'RESILIENCE_MARK' && e.value === 'changed-while-expired',
        );
      },
      { timeoutMs: 30_000 },
    );
    await waitFor(
      'the Service deleted while expired to be recreated',
      async () => {
        const again = await client.getOptional(keptService);
        return again !== undefined && again.metadata?.uid !== keptServiceUid;
      },
      { timeoutMs: 30_000 },
    );
    await waitForReconciled(client, changed);
    const recoveredMs = Date.now() - healedAt;

    // The relist is what recovered them: the 410s were counted as expiries.
    expect(await expiredCount('controlplanerevisions')).toBeGreaterThan(revisionsExpiredBefore);

    // The operator's revision cache matches the API: the injector (which resolves names from that cache)
    // knows every revision the API server has and no longer knows the deleted one.
    const { items: live } = await client.listAll<Cpr>(CPR);
    const agent = injectorAgent(2);
    const unknownToInjector: string[] = [];
    for (const cpr of live) {
      const name = cpr.metadata?.name ?? '';
      const reply = await postToInjector(
        operator.injectorPort,
        `/inject/${name}`,
        admissionReview(namespace, `uid-${name}`),
        { agent },
      );
      if (reviewResponse(reply).status?.message?.includes('no ControlPlaneRevision or RevisionTag named'))
        unknownToInjector.push(name);
    }
    expect(unknownToInjector).toEqual([]);
    const gone = reviewResponse(
      await postToInjector(
        operator.injectorPort,
        `/inject/${removed}`,
        admissionReview(namespace, 'uid-gone'),
        { agent },
      ),
    );
    agent.destroy();
    expect(gone.allowed).toBe(false);
    expect(gone.status?.message).toContain(`no ControlPlaneRevision or RevisionTag named "${removed}"`);

    // No phantom: nothing of the deleted revision is recreated, and the others own exactly their objects.
    let problems: string[] = [];
    await waitFor(
      'the objects to match the revisions exactly',
      async () => {
        const managed = await managedObjects(client);
        const mine = await Promise.all(
          [kept, changed, added].map((name) => client.get<Cpr>({ ...CPR, name })),
        );
        problems = [
          ...mine.flatMap((cpr) =>
            reconciledNow(cpr) ? ownedObjectProblems(cpr, managed) : [`${cpr.metadata?.name} not reconciled`],
          ),
          ...(await orphans(client, managed)).map((o) => `orphan ${o}`),
          ...managed
            .filter((o) => o.metadata?.labels?.['istio.io/rev'] === removed)
            .map((o) => `phantom ${o.kind}/${o.metadata?.name}`),
        ];
        return problems.length === 0;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    ).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}: ${problems.join('; ')}`);
    });
    expect(addedCpr.metadata?.name).toBe(added);
    record('watch expiry', {
      apiserverRestartWithoutWatchCacheMs: restart.readyMs,
      partitionedMs: healedAt - partitionedAt,
      compactedAtEtcdRevision: compactedAt,
      expiredRestarts: (await expiredCount()) - expiredBefore,
      recoveredAfterHealMs: recoveredMs,
      revisionsCheckedAgainstCache: live.length,
    });
  }),
  150_000,
);
