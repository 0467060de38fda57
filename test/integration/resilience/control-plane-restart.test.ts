// kube-apiserver, and separately etcd, are killed and restarted under a running operator: its informers
// recover by themselves (no operator restart), and a change made after the outage is reconciled within
// seconds — both a new revision (the primary informer) and a deleted owned object (the owned-object caches).
import * as k8s from '@kubernetes/client-node';

import { componentReady, restartComponent, type Component } from '../../../hack/cluster/local-cluster.js';
import type { KubeClient } from '../../../src/runtime/kube.js';
import { createTestNamespace, deleteNamespace, testKubeConfig, waitFor } from '../../support/kube.js';
import {
  installCrds,
  operatorLogTail,
  startTestOperator,
  testClient,
  type TestOperator,
} from '../../support/operator.js';
import {
  applyRevision,
  clusterState,
  CPR,
  metricValue,
  record,
  revisionName,
  waitForReconciled,
  withDiagnostics,
} from './support.js';

let client: KubeClient;
let kc: k8s.KubeConfig;
let namespace: string;
let operator: TestOperator;
let baseline: string;
const created: string[] = [];

beforeAll(async () => {
  kc = testKubeConfig();
  client = testClient();
  await installCrds(client);
  namespace = await createTestNamespace(kc, 'rs-restart');
  operator = await startTestOperator('resilience-restart', ['--create-default-tag=false']);
  baseline = revisionName('restart-base');
  created.push(baseline);
  await applyRevision(client, baseline, { version: '1.29.6', namespace });
  await waitForReconciled(client, baseline);
});

afterAll(async () => {
  await operator?.stop();
  for (const name of created) await client.delete({ ...CPR, name }).catch(() => undefined);
  await deleteNamespace(kc, namespace);
  client.close();
});

const logs = (): string => (operator ? operatorLogTail(operator) : '(no operator)');

async function restarts(): Promise<number> {
  return metricValue(await operator.metrics.expose(), 'meshrev_informer_restarts_total');
}

describe.each<[Component]>([['kube-apiserver'], ['etcd']])(
  'after %s is killed and restarted',
  (component) => {
    test(
      'the running operator recovers its watches and reconciles a change made after the outage within seconds',
      withDiagnostics(logs, async () => {
        const state = clusterState();
        const restartsBefore = await restarts();
        const outage = await restartComponent(state, component, { signal: 'SIGKILL' });
        // etcd's clients come back on their own; the API is usable once kube-apiserver is ready again.
        await waitFor(
          'kube-apiserver to be ready',
          () => componentReady(state, 'kube-apiserver').catch(() => false),
          {
            timeoutMs: 60_000,
          },
        );
        const apiReady = Date.now();

        // A change to the primary resource...
        const added = revisionName(`after-${component === 'etcd' ? 'etcd' : 'api'}`);
        created.push(added);
        await applyRevision(client, added, { version: '1.29.6', namespace });
        await waitForReconciled(client, added, 30_000);
        const newRevisionMs = Date.now() - apiReady;

        // ...and to an owned object: the istiod Service of the baseline revision is deleted and must come back.
        const serviceRef = { apiVersion: 'v1', kind: 'Service', namespace, name: `istiod-${baseline}` };
        const before = await client.get(serviceRef);
        const deletedAt = Date.now();
        await client.delete(serviceRef);
        await waitFor(
          'the deleted istiod Service to be recreated',
          async () => {
            const again = await client.getOptional(serviceRef);
            return again !== undefined && again.metadata?.uid !== before.metadata?.uid;
          },
          { timeoutMs: 30_000 },
        );
        const driftRepairMs = Date.now() - deletedAt;
        const restartsAfter = await restarts();

        if (component === 'kube-apiserver') {
          // Every watch went through the killed process, so the informers must have restarted them.
          expect(restartsAfter).toBeGreaterThan(restartsBefore);
        }
        expect(operator.isLeader()).toBe(true);
        record(`${component} restart`, {
          stoppedMs: outage.stoppedMs,
          restartReadyMs: outage.readyMs,
          newRevisionReconciledAfterApiReadyMs: newRevisionMs,
          deletedServiceRecreatedMs: driftRepairMs,
          informerRestarts: restartsAfter - restartsBefore,
          expired: metricValue(await operator.metrics.expose(), 'meshrev_informer_restarts_total', {
            reason: 'expired',
          }),
        });
      }),
      120_000,
    );
  },
);
