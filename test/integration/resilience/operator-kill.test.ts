// SIGKILL the operator process while 20 revisions are being reconciled, change some of them while it is
// dead, start a new process: everything converges to exactly the desired objects, with no orphan, no
// duplicate and no lost change.
import * as k8s from '@kubernetes/client-node';

import type { KubeClient } from '../../../src/runtime/kube.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { createTestNamespace, deleteNamespace, testKubeConfig, waitFor } from '../../support/kube.js';
import { installCrds, testClient } from '../../support/operator.js';
import {
  applyRevision,
  CPR,
  managedObjects,
  orphans,
  ownedObjectProblems,
  reconciledNow,
  record,
  revisionName,
  startChildOperator,
  withDiagnostics,
  type ChildOperator,
  type Cpr,
} from './support.js';

const REVISIONS = 20;

let client: KubeClient;
let kc: k8s.KubeConfig;
let namespace: string;
const operators: ChildOperator[] = [];
const created: string[] = [];

beforeAll(async () => {
  kc = testKubeConfig();
  client = testClient();
  await installCrds(client);
  namespace = await createTestNamespace(kc, 'rs-kill');
});

afterAll(async () => {
  for (const op of operators) await op.kill('SIGKILL');
  for (const name of created) await client.delete({ ...CPR, name }).catch(() => undefined);
  await deleteNamespace(kc, namespace);
  client.close();
});

const logs = (): string => operators.map((op) => `### ${op.name}\n${op.logTail(30)}`).join('\n');

async function liveRevisions(names: string[]): Promise<Map<string, Cpr>> {
  const { items } = await client.listAll<Cpr>(CPR);
  const wanted = new Set(names);
  return new Map(
    items.filter((i) => wanted.has(i.metadata?.name ?? '')).map((i) => [i.metadata?.name ?? '', i]),
  );
}

type Deployment = KubeObject & {
  spec: {
    replicas?: number;
    template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } };
  };
};

test(
  'a SIGKILLed operator is replaced and every revision converges with no orphan, duplicate or lost change',
  withDiagnostics(logs, async () => {
    const names = Array.from({ length: REVISIONS }, (_, i) =>
      revisionName(`kill${String(i).padStart(2, '0')}`),
    );
    const spec = { version: '1.29.6', namespace };
    const first = await startChildOperator('resilience-kill-1');
    operators.push(first);

    const applied = Date.now();
    created.push(...names);
    await Promise.all(names.map((name) => applyRevision(client, name, spec)));
    // Kill as soon as the operator is visibly part-way: a couple of revisions done, the rest in flight.
    await waitFor(
      'the first operator to reconcile its first revisions',
      async () => {
        const live = await liveRevisions(names);
        return [...live.values()].filter(reconciledNow).length >= 2;
      },
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    await first.kill('SIGKILL');
    const killedAfterMs = Date.now() - applied;
    const atKill = await liveRevisions(names);
    const reconciledAtKill = [...atKill.values()].filter(reconciledNow).length;
    const objectsAtKill = (await managedObjects(client)).filter((o) =>
      names.includes(o.metadata?.labels?.['istio.io/rev'] ?? ''),
    ).length;
    expect(first.alive()).toBe(false);
    expect(reconciledAtKill).toBeLessThan(REVISIONS);

    // Changes made while no operator runs: they must all land once a new one starts.
    const withEnv = names.slice(0, 3);
    const fixedReplicas = names.slice(3, 5);
    const deleted = names[5] ?? '';
    const addedLater = revisionName('kill-late');
    for (const name of withEnv) {
      await applyRevision(client, name, {
        ...spec,
        istiod: { env: { RESILIENCE_MARK: 'changed-while-down' } },
      });
    }
    for (const name of fixedReplicas) {
      await applyRevision(client, name, {
        ...spec,
        istiod: { replicas: 2, autoscaling: { enabled: false } },
      });
    }
    await client.delete({ ...CPR, name: deleted });
    created.push(addedLater);
    await applyRevision(client, addedLater, spec);
    const expected = [...names.filter((n) => n !== deleted), addedLater];

    const second = await startChildOperator('resilience-kill-2');
    operators.push(second);
    const restarted = Date.now();
    let lastProblems: string[] = [];
    const converged = await waitFor(
      'every revision to converge after the restart',
      async () => {
        const live = await liveRevisions(expected);
        if (live.size !== expected.length || ![...live.values()].every(reconciledNow)) return undefined;
        const managed = await managedObjects(client);
        lastProblems = [...live.values()].flatMap((cpr) => ownedObjectProblems(cpr, managed));
        lastProblems.push(...(await orphans(client, managed)).map((o) => `orphan ${o}`));
        if (managed.some((o) => o.metadata?.labels?.['istio.io/rev'] === deleted)) {
          lastProblems.push(`objects of the deleted revision ${deleted} remain`);
        }
        return lastProblems.length === 0 ? { live, managed } : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    ).catch((err: unknown) => {
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}; problems: ${lastProblems.slice(0, 20).join('; ')}`,
      );
    });
    const convergedMs = Date.now() - restarted;

    // No lost change: the edits made while the operator was dead are in the live objects.
    for (const name of withEnv) {
      const d = await client.get<Deployment>({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        namespace,
        name: `istiod-${name}`,
      });
      expect(d.spec.template.spec.containers[0]?.env).toEqual(
        expect.arrayContaining([{ name: 'RESILIENCE_MARK', value: 'changed-while-down' }]),
      );
    }
    for (const name of fixedReplicas) {
      const d = await client.get<Deployment>({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        namespace,
        name: `istiod-${name}`,
      });
      expect(d.spec.replicas).toBe(2);
      const hpa = await client.getOptional({
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        namespace,
        name: `istiod-${name}`,
      });
      expect(hpa).toBeUndefined();
    }
    expect(converged.live.size).toBe(REVISIONS);
    record('operator SIGKILL', {
      revisions: REVISIONS,
      killedAfterMs,
      reconciledAtKill,
      objectsAtKill,
      changedWhileDown: withEnv.length + fixedReplicas.length,
      deletedWhileDown: 1,
      createdWhileDown: 1,
      convergedAfterRestartMs: convergedMs,
      managedObjectsAfter: converged.managed.filter((o) =>
        expected.includes(o.metadata?.labels?.['istio.io/rev'] ?? ''),
      ).length,
    });
  }),
  180_000,
);
