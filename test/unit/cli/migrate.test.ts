import { ApiError } from '../../../src/runtime/kube.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { runMigrate } from '../../../src/cli/migrate.js';
import { runRollback } from '../../../src/cli/rollback.js';
import { FakeKube, testIO } from './fake-kube.js';
import {
  defaultInjectorConfiguration,
  deploymentWithPods,
  namespace,
  pod,
  revision,
  rolloutSimulator,
  tag,
} from './fixtures.js';

const NS = { apiVersion: 'v1', kind: 'Namespace' };

/** A DaemonSet whose rollout is complete on one node. */
function daemonSet(ns: string, name: string, podSpec: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace: ns, generation: 1 },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [], ...podSpec } },
    },
    status: {
      observedGeneration: 1,
      desiredNumberScheduled: 1,
      updatedNumberScheduled: 1,
      numberAvailable: 1,
    },
  } as KubeObject;
}

function cluster(): FakeKube {
  return new FakeKube().add(
    revision('asm-1233-2', '1.29.6'),
    revision('asm-1234-1', '1.30.3'),
    tag('default', 'asm-1233-2'),
    tag('prod', 'asm-1234-1'),
    namespace('shop', { 'istio-injection': 'enabled' }),
    ...deploymentWithPods('shop', 'web', 2, 'asm-1233-2'),
  );
}

function namespacePatches(kube: FakeKube) {
  return kube.writes.filter((write) => write.ref.kind === 'Namespace');
}

describe('meshrev migrate', () => {
  test('relabels with a merge patch that removes istio-injection and records the previous label', async () => {
    const kube = cluster();
    const resourceVersion = kube.find({ ...NS, name: 'shop' })?.metadata?.resourceVersion;
    const io = testIO(kube);

    const code = await runMigrate(['shop', '--to', 'asm-1234-1'], io);

    expect(code).toBe(0);
    expect(kube.writes).toEqual([
      {
        verb: 'patch',
        ref: { ...NS, name: 'shop' },
        contentType: 'application/merge-patch+json',
        fieldManager: 'meshrev-cli',
        body: {
          metadata: {
            resourceVersion,
            labels: { 'istio-injection': null, 'istio.io/rev': 'asm-1234-1' },
            annotations: { 'meshrev.dev/previous-revision': 'istio-injection=enabled' },
          },
        },
      },
    ]);
    expect(kube.find({ ...NS, name: 'shop' })?.metadata?.labels).toEqual({ 'istio.io/rev': 'asm-1234-1' });
    expect(io.stdoutText()).toContain('shop: 0/2 pods on asm-1234-1');
    expect(io.stdoutText()).toContain('meshrev migrate shop --to asm-1234-1 --restart');
  });

  test('records the previous istio.io/rev value when moving between revisions', async () => {
    const kube = cluster().add(namespace('cart', { 'istio.io/rev': 'asm-1233-2' }));
    const code = await runMigrate(['cart', '--to', 'prod'], testIO(kube));
    expect(code).toBe(0);
    expect(namespacePatches(kube)[0]?.body).toMatchObject({
      metadata: {
        labels: { 'istio-injection': null, 'istio.io/rev': 'prod' },
        annotations: { 'meshrev.dev/previous-revision': 'asm-1233-2' },
      },
    });
  });

  test('fails with exit code 1 naming the target when no revision or tag has that name, and writes nothing', async () => {
    const kube = cluster();
    const io = testIO(kube);
    const code = await runMigrate(['shop', '--to', 'asm-9999-1'], io);
    expect(code).toBe(1);
    expect(io.stderrText()).toContain('no revision or tag named "asm-9999-1"');
    expect(io.stderrText()).toContain('revisions: asm-1233-2, asm-1234-1');
    expect(kube.writes).toEqual([]);
  });

  test('fails with exit code 1 when a tag points at a revision that does not exist', async () => {
    const kube = cluster().add(tag('broken', 'asm-0000-0'));
    const io = testIO(kube);
    expect(await runMigrate(['shop', '--to', 'broken'], io)).toBe(1);
    expect(io.stderrText()).toContain('tag "broken" points at revision "asm-0000-0", which does not exist');
    expect(kube.writes).toEqual([]);
  });

  test('changes no namespace when one of them does not exist', async () => {
    const kube = cluster();
    const io = testIO(kube);
    expect(await runMigrate(['shop', 'nowhere', '--to', 'prod'], io)).toBe(1);
    expect(io.stderrText()).toContain('namespace not found: nowhere; nothing was changed');
    expect(kube.writes).toEqual([]);
  });

  test.each([
    [['shop'], '--to <revision|tag> is required'],
    [['--to', 'prod'], 'name at least one namespace'],
    [['shop', '--to', 'prod', '--timeout', 'soon'], 'invalid --timeout "soon"'],
    [['shop', '--to', 'prod', '--bogus'], "Unknown option '--bogus'"],
  ])('rejects %j as a usage error with exit code 2', async (args, message) => {
    const kube = cluster();
    const io = testIO(kube);
    expect(await runMigrate(args, io)).toBe(2);
    expect(io.stderrText()).toContain(message);
    expect(io.stderrText()).toContain('Usage: meshrev migrate');
    expect(kube.writes).toEqual([]);
  });

  test('prints its help with exit code 0 and without touching the cluster', async () => {
    const io = testIO(new FakeKube());
    io.kube = () => {
      throw new Error('help must not build a client');
    };
    expect(await runMigrate(['--help'], io)).toBe(0);
    expect(io.stdoutText()).toContain('--restart');
  });

  test('a dry run prints the relabel and the restarts it would make and writes nothing', async () => {
    const kube = cluster().add(
      ...deploymentWithPods('shop', 'batch', 1, undefined, {
        templateLabels: { 'sidecar.istio.io/inject': 'false' },
      }),
    );
    const io = testIO(kube);
    const code = await runMigrate(['shop', '--to', 'prod', '--restart', '--dry-run'], io);
    expect(code).toBe(0);
    expect(kube.writes).toEqual([]);
    expect(io.stdoutText()).toContain('Dry run: nothing is changed.');
    expect(io.stdoutText()).toContain(
      'shop: relabel istio-injection=enabled -> istio.io/rev=prod (records meshrev.dev/previous-revision="istio-injection=enabled"); new pods get asm-1234-1',
    );
    expect(io.stdoutText()).toContain('shop: would restart deployment/web');
    expect(io.stdoutText()).toContain('shop: would skip deployment/batch: its pods opt out of injection');
  });

  test('with --restart it restarts workloads like kubectl and waits with progress until every pod moved', async () => {
    const kube = cluster();
    const io = testIO(kube, rolloutSimulator(kube));

    const code = await runMigrate(['shop', '--to', 'prod', '--restart'], io);

    expect(code).toBe(0);
    const restarts = kube.writes.filter((write) => write.ref.kind === 'Deployment');
    expect(restarts).toEqual([
      {
        verb: 'patch',
        ref: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'web' },
        contentType: 'application/strategic-merge-patch+json',
        fieldManager: 'meshrev-cli',
        body: {
          spec: {
            template: {
              metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': '2025-05-06T07:08:09Z' } },
            },
          },
        },
      },
    ]);
    const lines = io.out;
    expect(lines).toContain('shop: 0/2 pods on asm-1234-1');
    expect(lines).toContain('shop: 1/2 pods on asm-1234-1');
    expect(lines).toContain('shop: 2/2 pods on asm-1234-1');
    expect(lines).toContain('shop: done, 2/2 pods run asm-1234-1');
    expect(io.sleeps.length).toBeGreaterThan(0);
  });

  test('exits with code 3 and lists the pods left when the timeout passes', async () => {
    const kube = cluster();
    const io = testIO(kube); // nothing rolls the pods

    const code = await runMigrate(['shop', '--to', 'asm-1234-1', '--restart', '--timeout', '10s'], io);

    expect(code).toBe(3);
    expect(io.stdoutText()).toContain('shop: 2/2 pods not moved to asm-1234-1:');
    expect(io.stdoutText()).toContain('web-r0-0 (deployment/web) runs asm-1233-2');
    expect(io.stderrText()).toContain('timed out after 10s with 2 pods not moved');
    expect(io.sleeps.reduce((sum, ms) => sum + ms, 0)).toBeGreaterThanOrEqual(10_000);
  });

  test('skips paused Deployments, and fails with exit code 3 naming them while their pods run another revision', async () => {
    const kube = cluster().add(...deploymentWithPods('shop', 'frozen', 1, 'asm-1233-2', { paused: true }));
    const io = testIO(kube, rolloutSimulator(kube));

    const code = await runMigrate(['shop', '--to', 'prod', '--restart', '--timeout', '1m'], io);

    expect(code).toBe(3);
    expect(
      kube.writes.filter((write) => write.ref.kind === 'Deployment').map((write) => write.ref.name),
    ).toEqual(['web']);
    expect(io.stdoutText()).toContain('shop: skipped deployment/frozen: it is paused');
    expect(io.stdoutText()).not.toContain('shop: done');
    expect(io.out).toContain(
      'shop: not done: 1 pod not moved to asm-1234-1 in workloads a restart does not move:',
    );
    expect(io.out).toContain(
      '  deployment/frozen: it is paused: run kubectl rollout resume deployment/frozen -n shop, then meshrev migrate shop --to prod --restart',
    );
    expect(io.out).toContain('    frozen-r0-0 (deployment/frozen) runs asm-1233-2');
    expect(io.stderrText()).toContain('error: 1 pod not moved in workloads a restart does not move');
    // Not a timeout: the paused Deployment is not waited for, web's rollout is.
    expect(io.stderrText()).not.toContain('timed out');
    expect(io.sleeps.reduce((sum, ms) => sum + ms, 0)).toBeLessThan(60_000);
  });

  test('a paused Deployment whose pods already run the target does not fail the move', async () => {
    const kube = cluster().add(...deploymentWithPods('shop', 'frozen', 1, 'asm-1234-1', { paused: true }));
    const io = testIO(kube, rolloutSimulator(kube));
    expect(await runMigrate(['shop', '--to', 'prod', '--restart'], io)).toBe(0);
    expect(io.stdoutText()).toContain('shop: done, 3/3 pods run asm-1234-1');
  });

  test('opted-out workloads are not moved and do not fail the move, even with a sidecar left', async () => {
    const kube = cluster().add(
      ...deploymentWithPods('shop', 'batch', 1, 'asm-1233-2', {
        templateLabels: { 'sidecar.istio.io/inject': 'false' },
      }),
    );
    const io = testIO(kube, rolloutSimulator(kube));
    expect(await runMigrate(['shop', '--to', 'prod', '--restart'], io)).toBe(0);
    expect(io.stdoutText()).toContain('shop: skipped deployment/batch: its pods opt out of injection');
    expect(io.stdoutText()).toContain('shop: done, 2/2 pods run asm-1234-1');
  });

  test('restarts a workload whose label asks for injection although its annotation opts out: the label wins', async () => {
    const kube = cluster();
    const web = kube.find({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'web' });
    (web?.spec as { template: { metadata: Record<string, unknown> } }).template.metadata = {
      labels: { app: 'web', 'sidecar.istio.io/inject': 'true' },
      annotations: { 'sidecar.istio.io/inject': 'false' },
    };
    const io = testIO(kube);
    expect(await runMigrate(['shop', '--to', 'prod', '--restart', '--dry-run'], io)).toBe(0);
    expect(io.stdoutText()).toContain('shop: would restart deployment/web');
  });

  test('workloads on the host network get no sidecar, so they are neither restarted nor waited for', async () => {
    const kube = cluster().add(daemonSet('shop', 'node-agent', { hostNetwork: true }), {
      ...pod('shop', 'node-agent-x', {
        owner: { kind: 'DaemonSet', name: 'node-agent' },
        labels: { app: 'node-agent' },
      }),
    });
    const io = testIO(kube, rolloutSimulator(kube));

    const code = await runMigrate(['shop', '--to', 'prod', '--restart', '--timeout', '1m'], io);

    expect(code).toBe(0);
    expect(kube.writes.filter((write) => write.ref.kind === 'DaemonSet')).toEqual([]);
    expect(io.stdoutText()).toContain(
      'shop: skipped daemonset/node-agent: its pods get no sidecar (pod uses host networking)',
    );
    expect(io.stdoutText()).toContain('shop: done, 2/2 pods run asm-1234-1');
    expect(io.stdoutText()).not.toContain('node-agent-x');
  });

  test('workloads in namespaces the injector ignores are neither restarted nor waited for', async () => {
    const kube = cluster().add(
      namespace('kube-system'),
      ...deploymentWithPods('kube-system', 'coredns', 2, undefined),
      pod('kube-system', 'etcd', { labels: { component: 'etcd' } }),
    );
    const io = testIO(kube, rolloutSimulator(kube));

    const code = await runMigrate(['kube-system', '--to', 'prod', '--restart', '--timeout', '1m'], io);

    expect(code).toBe(0);
    expect(kube.writes.filter((write) => write.ref.kind === 'Deployment')).toEqual([]);
    expect(io.stdoutText()).toContain(
      'kube-system: skipped deployment/coredns: its pods get no sidecar (namespace kube-system is never injected)',
    );
    expect(io.stdoutText()).not.toContain('not restarted by meshrev');
  });

  test("workloads the target revision's injection policy skips are neither restarted nor waited for", async () => {
    const strict = revision('asm-1234-1', '1.30.3');
    strict.spec = {
      version: '1.30.3',
      injection: { policy: 'disabled', neverInjectSelector: [{ matchLabels: { tier: 'legacy' } }] },
    };
    const kube = new FakeKube().add(
      revision('asm-1233-2', '1.29.6'),
      strict,
      namespace('shop', { 'istio.io/rev': 'asm-1233-2' }),
      ...deploymentWithPods('shop', 'web', 1, undefined),
    );
    const io = testIO(kube, rolloutSimulator(kube));

    const code = await runMigrate(['shop', '--to', 'asm-1234-1', '--restart', '--timeout', '1m'], io);

    expect(code).toBe(0);
    expect(kube.writes.filter((write) => write.ref.kind === 'Deployment')).toEqual([]);
    expect(io.stdoutText()).toContain(
      'shop: skipped deployment/web: its pods get no sidecar (injection policy is disabled)',
    );
  });

  test('does not restart workloads whose pods already run the target, so a rerun is cheap', async () => {
    const kube = new FakeKube().add(
      revision('asm-1234-1'),
      namespace('shop', { 'istio.io/rev': 'asm-1234-1' }),
      ...deploymentWithPods('shop', 'web', 2, 'asm-1234-1'),
    );
    const io = testIO(kube);
    expect(await runMigrate(['shop', '--to', 'asm-1234-1', '--restart'], io)).toBe(0);
    expect(kube.writes).toEqual([]);
    expect(io.stdoutText()).toContain('shop: already labelled istio.io/rev=asm-1234-1');
    expect(io.stdoutText()).toContain('shop: done, 2/2 pods run asm-1234-1');
  });

  test('reports bare pods it cannot restart without waiting for them', async () => {
    const kube = cluster().add(pod('shop', 'debug', { injectedBy: 'asm-1233-2' }));
    const io = testIO(kube, rolloutSimulator(kube));
    expect(await runMigrate(['shop', '--to', 'prod', '--restart'], io)).toBe(0);
    expect(io.stdoutText()).toContain('shop: 1 pod not restarted by meshrev');
    expect(io.stdoutText()).toContain(
      'debug (not owned by a Deployment, StatefulSet or DaemonSet) runs asm-1233-2',
    );
  });
  test('restarts StatefulSets and DaemonSets too, and warns that OnDelete ones only move when pods are deleted', async () => {
    const owned = (kind: string, name: string) => ({
      apiVersion: 'apps/v1',
      kind,
      metadata: { name, namespace: 'shop', generation: 1 },
      spec: {
        template: { metadata: { labels: { app: name } } },
        ...(kind === 'DaemonSet' ? { updateStrategy: { type: 'OnDelete' } } : {}),
      },
      status: { observedGeneration: 1 },
    });
    const kube = new FakeKube().add(
      revision('asm-1234-1'),
      namespace('shop'),
      owned('StatefulSet', 'db'),
      owned('DaemonSet', 'agent'),
      pod('shop', 'db-0', { owner: { kind: 'StatefulSet', name: 'db' }, labels: { app: 'db' } }),
      pod('shop', 'agent-x', { owner: { kind: 'DaemonSet', name: 'agent' }, labels: { app: 'agent' } }),
    );
    const io = testIO(kube);

    const code = await runMigrate(['shop', '--to', 'asm-1234-1', '--restart', '--timeout', '0s'], io);

    expect(code).toBe(3);
    expect(
      kube.writes
        .filter((write) => write.ref.kind !== 'Namespace')
        .map((write) => `${write.ref.kind}/${write.ref.name}`),
    ).toEqual(['StatefulSet/db', 'DaemonSet/agent']);
    expect(io.stderrText()).toContain(
      'daemonset/agent uses the OnDelete update strategy; delete its pods to move them',
    );
    expect(io.stdoutText()).toContain('db-0 (statefulset/db) runs no sidecar');
  });

  test('warns about partitioned StatefulSets and fails with exit code 3 naming the pods below the partition, without waiting for them', async () => {
    const kube = new FakeKube().add(
      revision('asm-1233-2'),
      revision('asm-1234-1'),
      namespace('shop', { 'istio.io/rev': 'asm-1233-2' }),
      {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'db', namespace: 'shop', generation: 1 },
        spec: {
          replicas: 2,
          updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 1 } },
          template: { metadata: { labels: { app: 'db' } } },
        },
        status: { observedGeneration: 1, readyReplicas: 2, updatedReplicas: 2 },
      } as KubeObject,
      ...[0, 1].map((i) =>
        pod('shop', `db-${i}`, {
          owner: { kind: 'StatefulSet', name: 'db' },
          labels: { app: 'db' },
          injectedBy: 'asm-1233-2',
        }),
      ),
    );
    // The StatefulSet controller: a restart replaces only db-1, the pod at or above the partition.
    const statefulSetController = () => {
      const db = kube.find({ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'shop', name: 'db' });
      if (db === undefined || db.metadata?.generation === 1) return;
      kube.add(
        pod('shop', 'db-1', {
          owner: { kind: 'StatefulSet', name: 'db' },
          labels: { app: 'db' },
          injectedBy: 'asm-1234-1',
        }),
      );
      db.status = {
        observedGeneration: db.metadata?.generation,
        readyReplicas: 2,
        updatedReplicas: 1,
        currentRevision: 'db-a',
        updateRevision: 'db-b',
      };
    };
    const io = testIO(kube, statefulSetController);

    const code = await runMigrate(['shop', '--to', 'asm-1234-1', '--restart', '--timeout', '1m'], io);

    expect(code).toBe(3);
    expect(kube.writes.map((write) => `${write.ref.kind}/${write.ref.name}`)).toEqual([
      'Namespace/shop',
      'StatefulSet/db',
    ]);
    expect(io.stderrText()).toContain(
      'warning: shop: statefulset/db has rolling-update partition 1; delete its pods with a lower ordinal, or lower the partition, to move them',
    );
    expect(io.out).toContain(
      '  statefulset/db: its rolling update has partition 1: pods with a lower ordinal move only when you delete them or lower the partition',
    );
    expect(io.out).toContain('    db-0 (statefulset/db) runs asm-1233-2');
    expect(io.stdoutText()).not.toContain('db-1 (statefulset/db)');
    expect(io.stdoutText()).not.toContain('shop: done');
    expect(io.stderrText()).not.toContain('timed out');
    expect(io.sleeps.reduce((sum, ms) => sum + ms, 0)).toBeLessThan(60_000);
  });

  test('when a restart fails it says what was already done and how to finish the move', async () => {
    const kube = cluster().add(...deploymentWithPods('shop', 'api', 1, 'asm-1233-2'));
    const patch = kube.patch.bind(kube);
    kube.patch = async (ref, body, contentType, options) => {
      if (ref.name === 'api') throw new ApiError(500, 'InternalError', 'etcd is sad');
      return patch(ref, body, contentType, options);
    };
    const io = testIO(kube);

    expect(await runMigrate(['shop', '--to', 'prod', '--restart'], io)).toBe(1);

    expect(io.err).toEqual([
      'error: restarting deployment/api in shop failed: etcd is sad (InternalError)',
      'already done: relabelled shop; restarted deployment/web in shop',
      'to finish the move, run:',
      '  meshrev migrate shop --to prod --restart',
    ]);
  });

  test.each([
    ['False', 'revision asm-1234-1 is not Ready (Ready=False: ok)'],
    [undefined, 'revision asm-1234-1 has not reported a Ready condition yet'],
  ])(
    'refuses a target revision whose Ready condition is %s unless --force, and writes nothing',
    async (ready, message) => {
      const unready = revision('asm-1234-1', '1.30.3', ready ?? 'True');
      if (ready === undefined) unready.status = { version: '1.30.3' };
      const kube = new FakeKube().add(
        revision('asm-1233-2', '1.29.6'),
        unready,
        tag('prod', 'asm-1234-1'),
        namespace('shop', { 'istio.io/rev': 'asm-1233-2' }),
        ...deploymentWithPods('shop', 'web', 1, 'asm-1233-2'),
      );
      for (const to of ['asm-1234-1', 'prod']) {
        const io = testIO(kube);
        expect(await runMigrate(['shop', '--to', to], io)).toBe(1);
        expect(io.stderrText()).toContain(message);
        expect(io.stderrText()).toContain('pass --force to move anyway; nothing was changed');
        if (to === 'prod') expect(io.stderrText()).toContain(`tag prod points at ${message}`);
        expect(kube.writes).toEqual([]);
      }

      const io = testIO(kube);
      expect(await runMigrate(['shop', '--to', 'prod', '--force'], io)).toBe(0);
      expect(io.stderrText()).toBe(`warning: tag prod points at ${message}; moving anyway (--force)`);
      expect(kube.find({ ...NS, name: 'shop' })?.metadata?.labels).toEqual({ 'istio.io/rev': 'prod' });
    },
  );

  test('documents --force in its help', async () => {
    const io = testIO(new FakeKube());
    expect(await runMigrate(['--help'], io)).toBe(0);
    expect(io.stdoutText()).toContain('--force');
  });

  test('stops with exit code 1 when a namespace changed between read and relabel', async () => {
    const kube = cluster().add(namespace('cart', { 'istio.io/rev': 'asm-1233-2' }));
    const patch = kube.patch.bind(kube);
    kube.patch = async (ref, body, contentType, options) => {
      if (ref.name === 'cart') throw new ApiError(409, 'Conflict', 'the object has been modified');
      return patch(ref, body, contentType, options);
    };
    const io = testIO(kube);
    expect(await runMigrate(['shop', 'cart', '--to', 'prod'], io)).toBe(1);
    expect(io.stderrText()).toBe(
      'error: namespace cart changed while it was being relabelled; run the command again (already done: shop)',
    );
  });
});

describe('meshrev rollback', () => {
  test('returns to the recorded label and records the label it leaves, so a second rollback goes forward', async () => {
    const kube = cluster();
    expect(await runMigrate(['shop', '--to', 'asm-1234-1'], testIO(kube))).toBe(0);

    const io = testIO(kube);
    expect(await runRollback(['shop'], io)).toBe(0);
    expect(namespacePatches(kube)[1]?.body).toMatchObject({
      metadata: {
        labels: { 'istio-injection': 'enabled', 'istio.io/rev': null },
        annotations: { 'meshrev.dev/previous-revision': 'asm-1234-1' },
      },
    });
    expect(kube.find({ ...NS, name: 'shop' })?.metadata?.labels).toEqual({ 'istio-injection': 'enabled' });
    expect(io.stdoutText()).toContain('Rolling back shop to istio-injection=enabled');

    expect(await runRollback(['shop'], testIO(kube))).toBe(0);
    expect(kube.find({ ...NS, name: 'shop' })?.metadata?.labels).toEqual({ 'istio.io/rev': 'asm-1234-1' });
  });

  test('a namespace that had no injection label goes back to none', async () => {
    const kube = cluster().add(namespace('plain', { team: 'a' }));
    expect(await runMigrate(['plain', '--to', 'prod'], testIO(kube))).toBe(0);
    expect(await runRollback(['plain'], testIO(kube))).toBe(0);
    expect(kube.find({ ...NS, name: 'plain' })?.metadata?.labels).toEqual({ team: 'a' });
    expect(kube.find({ ...NS, name: 'plain' })?.metadata?.annotations).toEqual({
      'meshrev.dev/previous-revision': 'prod',
    });
  });

  test('refuses with exit code 1 when nothing was recorded, and changes nothing', async () => {
    const kube = cluster();
    const io = testIO(kube);
    expect(await runRollback(['shop'], io)).toBe(1);
    expect(io.stderrText()).toContain('namespace shop has no meshrev.dev/previous-revision annotation');
    expect(kube.writes).toEqual([]);
  });

  test('refuses when the recorded revision no longer exists', async () => {
    const kube = cluster().add(
      namespace('old', { 'istio.io/rev': 'asm-1234-1' }, { 'meshrev.dev/previous-revision': 'asm-1100-1' }),
    );
    const io = testIO(kube);
    expect(await runRollback(['old'], io)).toBe(1);
    expect(io.stderrText()).toContain('namespace old was on asm-1100-1, which is gone');
    expect(kube.writes).toEqual([]);
  });

  test('refuses to go back to a revision that is not Ready unless --force', async () => {
    const kube = new FakeKube().add(
      revision('asm-1233-2', '1.29.6', 'False'),
      revision('asm-1234-1'),
      namespace('shop', { 'istio.io/rev': 'asm-1234-1' }, { 'meshrev.dev/previous-revision': 'asm-1233-2' }),
    );
    const io = testIO(kube);
    expect(await runRollback(['shop'], io)).toBe(1);
    expect(io.stderrText()).toContain(
      'error: namespace shop would go back to istio.io/rev=asm-1233-2, but revision asm-1233-2 is not Ready (Ready=False: ok); ' +
        'wait until it is Ready (meshrev status) or pass --force to move anyway',
    );
    expect(kube.writes).toEqual([]);

    const forced = testIO(kube);
    expect(await runRollback(['shop', '--force'], forced)).toBe(0);
    expect(forced.stderrText()).toContain('moving anyway (--force)');
    expect(kube.find({ ...NS, name: 'shop' })?.metadata?.labels).toEqual({ 'istio.io/rev': 'asm-1233-2' });

    const help = testIO(kube);
    expect(await runRollback(['--help'], help)).toBe(0);
    expect(help.stdoutText()).toContain('--force');
  });

  test('refuses to go back to istio-injection=enabled when the default tag points at a revision that is not Ready', async () => {
    const kube = new FakeKube().add(
      revision('asm-1233-2', '1.29.6', 'Unknown'),
      revision('asm-1234-1'),
      tag('default', 'asm-1233-2'),
      namespace(
        'shop',
        { 'istio.io/rev': 'asm-1234-1' },
        { 'meshrev.dev/previous-revision': 'istio-injection=enabled' },
      ),
    );
    const io = testIO(kube);
    expect(await runRollback(['shop'], io)).toBe(1);
    expect(io.stderrText()).toContain('revision asm-1233-2 is not Ready (Ready=Unknown: ok)');
    expect(kube.writes).toEqual([]);
  });

  test('with --restart waits for the pods to return to the previous revision', async () => {
    const kube = new FakeKube().add(
      revision('asm-1233-2'),
      revision('asm-1234-1'),
      namespace('shop', { 'istio.io/rev': 'asm-1234-1' }, { 'meshrev.dev/previous-revision': 'asm-1233-2' }),
      ...deploymentWithPods('shop', 'web', 3, 'asm-1234-1'),
    );
    const io = testIO(kube, rolloutSimulator(kube));
    expect(await runRollback(['shop', '--restart'], io)).toBe(0);
    expect(io.out).toContain('shop: 3/3 pods on asm-1233-2');
    expect(io.out).toContain('shop: done, 3/3 pods run asm-1233-2');
  });
});

describe('a non-revisioned Istio install serving istio-injection=enabled', () => {
  /** istioctl's classic install injects shop; meshrev has one revision and no default tag. */
  function classicCluster(): FakeKube {
    return new FakeKube().add(
      defaultInjectorConfiguration(),
      revision('asm-1234-1'),
      namespace('shop', { 'istio-injection': 'enabled' }),
      ...deploymentWithPods('shop', 'web', 2, 'default'),
    );
  }

  const mwcLists = (kube: FakeKube) =>
    kube.lists.filter((list) => list.kind === 'MutatingWebhookConfiguration').length;

  test('migrate to a meshrev revision and rollback --restart: the pods return to it and count as moved', async () => {
    const kube = classicCluster();
    const forward = testIO(kube, rolloutSimulator(kube));
    expect(await runMigrate(['shop', '--to', 'asm-1234-1', '--restart'], forward)).toBe(0);
    expect(forward.out).toContain('shop: done, 2/2 pods run asm-1234-1');
    expect(mwcLists(kube)).toBe(1);

    // An hour later, so the restart annotation changes and the Deployment rolls again.
    const back = testIO(kube, rolloutSimulator(kube), Date.UTC(2025, 4, 6, 8, 8, 9));
    expect(await runRollback(['shop', '--restart'], back)).toBe(0);
    expect(mwcLists(kube)).toBe(2);
    expect(back.stderrText()).not.toContain('no sidecar');
    expect(back.stderrText()).toBe('');
    expect(back.stdoutText()).toContain(
      'shop: note: revision default is the Istio install meshrev does not manage ' +
        '(MutatingWebhookConfiguration istio-sidecar-injector); meshrev cannot check that it is ready',
    );
    expect(back.stdoutText()).toContain(
      'shop: relabelled istio.io/rev=asm-1234-1 -> istio-injection=enabled; new pods get default',
    );
    expect(back.out).toContain('shop: done, 2/2 pods run default');
    expect(kube.find({ ...NS, name: 'shop' })?.metadata?.labels).toEqual({ 'istio-injection': 'enabled' });
  });

  test('migrate --to default reaches the classic install, without a readiness refusal', async () => {
    const kube = new FakeKube().add(
      defaultInjectorConfiguration(),
      revision('asm-1234-1'),
      namespace('shop', { 'istio.io/rev': 'asm-1234-1' }),
      ...deploymentWithPods('shop', 'web', 1, 'asm-1234-1'),
    );
    const io = testIO(kube, rolloutSimulator(kube));
    expect(await runMigrate(['shop', '--to', 'default', '--restart'], io)).toBe(0);
    expect(io.stdoutText()).toContain('note: revision default is the Istio install meshrev does not manage');
    expect(io.out).toContain('shop: done, 1/1 pods run default');
  });

  test("a meshrev default tag, or meshrev's own istio.io/rev=default configuration, keeps the old behaviour", async () => {
    const tagged = classicCluster().add(revision('asm-1233-2'), tag('default', 'asm-1233-2'));
    const io = testIO(tagged);
    expect(await runMigrate(['shop', '--to', 'asm-1234-1', '--restart', '--dry-run'], io)).toBe(0);
    expect(io.stdoutText()).not.toContain('note:');

    const managed = new FakeKube().add(
      defaultInjectorConfiguration('istio-revision-tag-default', true),
      revision('asm-1234-1'),
      namespace(
        'shop',
        { 'istio.io/rev': 'asm-1234-1' },
        { 'meshrev.dev/previous-revision': 'istio-injection=enabled' },
      ),
    );
    const back = testIO(managed);
    expect(await runRollback(['shop'], back)).toBe(0);
    expect(back.stderrText()).toContain('no "default" tag or revision exists: new pods get no sidecar');
  });
});
