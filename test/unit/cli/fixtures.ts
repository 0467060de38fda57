// Builders for the cluster objects the CLI tests put into FakeKube, and a rollout simulator standing in
// for the Deployment controller and the injector: after a restart it replaces one pod per tick.
import type { KubeObject } from '../../../src/runtime/types.js';
import type { FakeKube } from './fake-kube.js';

export function revision(
  name: string,
  version = '1.30.3',
  ready = 'True',
): KubeObject & Record<string, unknown> {
  return {
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'ControlPlaneRevision',
    metadata: { name },
    spec: { version },
    status: {
      version,
      conditions: [{ type: 'Ready', status: ready, reason: 'IstiodAvailable', message: 'ok' }],
    },
  };
}

export function tag(name: string, target: string): KubeObject & Record<string, unknown> {
  return {
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'RevisionTag',
    metadata: { name },
    spec: { revision: target },
  };
}

/**
 * A MutatingWebhookConfiguration labelled istio.io/rev=default: a non-revisioned Istio install's by default,
 * meshrev's own when `managedByMeshrev`.
 */
export function defaultInjectorConfiguration(
  name = 'istio-sidecar-injector',
  managedByMeshrev = false,
): KubeObject {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: {
      name,
      labels: {
        'istio.io/rev': 'default',
        ...(managedByMeshrev ? { 'app.kubernetes.io/managed-by': 'meshrev' } : {}),
      },
    },
  };
}

export function namespace(
  name: string,
  labels: Record<string, string> = {},
  annotations: Record<string, string> = {},
): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels, annotations } };
}

interface PodOptions {
  injectedBy?: string;
  labels?: Record<string, string>;
  owner?: { kind: string; name: string };
  phase?: string;
}

export function pod(
  ns: string,
  name: string,
  options: PodOptions = {},
): KubeObject & Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      labels: options.labels ?? {},
      annotations: options.injectedBy === undefined ? {} : { 'istio.io/rev': options.injectedBy },
      ...(options.owner === undefined
        ? {}
        : {
            ownerReferences: [
              { apiVersion: 'apps/v1', ...options.owner, uid: `uid-${options.owner.name}`, controller: true },
            ],
          }),
    },
    spec: { containers: [{ name: 'app', image: 'app' }] },
    status: { phase: options.phase ?? 'Running' },
  };
}

/** A Deployment whose rollout is complete, its ReplicaSet, and `replicas` pods injected by `injectedBy`. */
export function deploymentWithPods(
  ns: string,
  name: string,
  replicas: number,
  injectedBy: string | undefined,
  extra: { paused?: boolean; templateLabels?: Record<string, string> } = {},
): KubeObject[] {
  const labels = { app: name, ...extra.templateLabels };
  const replicaSet = `${name}-r0`;
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns, generation: 1 },
      spec: {
        replicas,
        ...(extra.paused === true ? { paused: true } : {}),
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'app' }] } },
      },
      status: {
        observedGeneration: 1,
        replicas,
        updatedReplicas: replicas,
        availableReplicas: replicas,
        readyReplicas: replicas,
      },
    } as KubeObject,
    {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: replicaSet,
        namespace: ns,
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'Deployment', name, uid: `uid-${name}`, controller: true },
        ],
      },
    },
    ...Array.from({ length: replicas }, (_, i) =>
      pod(ns, `${replicaSet}-${i}`, {
        labels,
        owner: { kind: 'ReplicaSet', name: replicaSet },
        ...(injectedBy === undefined ? {} : { injectedBy }),
      }),
    ),
  ];
}

/**
 * Which revision the injector would give a new pod of the namespace: a deliberately small rule set. Without a
 * `default` tag, a non-revisioned install (defaultInjectorConfiguration) injects istio-injection=enabled as
 * `default`.
 */
export function injectorFor(kube: FakeKube): (ns: string) => string | undefined {
  return (ns) => {
    const labels = kube.find({ apiVersion: 'v1', kind: 'Namespace', name: ns })?.metadata?.labels ?? {};
    const tags = new Map(
      kube
        .all({ apiVersion: 'meshrev.dev/v1alpha1', kind: 'RevisionTag' })
        .map((object) => [object.metadata?.name ?? '', (object.spec as { revision: string }).revision]),
    );
    const revisions = new Set(
      kube
        .all({ apiVersion: 'meshrev.dev/v1alpha1', kind: 'ControlPlaneRevision' })
        .map((o) => o.metadata?.name),
    );
    const classic = kube
      .all({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' })
      .some(
        (o) =>
          o.metadata?.labels?.['istio.io/rev'] === 'default' &&
          o.metadata.labels['app.kubernetes.io/managed-by'] !== 'meshrev',
      );
    if (labels['istio-injection'] === 'enabled')
      return tags.get('default') ?? (classic ? 'default' : undefined);
    const value = labels['istio.io/rev'];
    if (value === undefined) return undefined;
    return revisions.has(value)
      ? value
      : (tags.get(value) ?? (classic && value === 'default' ? value : undefined));
  };
}

/** Moves restarted Deployments one pod per tick to pods injected by what the namespace now selects. */
export function rolloutSimulator(kube: FakeKube): () => void {
  const injector = injectorFor(kube);
  const generations = new Map<string, number>();
  return () => {
    for (const deployment of kube.all({ apiVersion: 'apps/v1', kind: 'Deployment' })) {
      const ns = deployment.metadata?.namespace ?? '';
      const name = deployment.metadata?.name ?? '';
      const generation = deployment.metadata?.generation ?? 1;
      if (generation === 1) continue;
      const replicaSet = `${name}-r${generation}`;
      if (generations.get(`${ns}/${name}`) !== generation) {
        generations.set(`${ns}/${name}`, generation);
        kube.add({
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          metadata: {
            name: replicaSet,
            namespace: ns,
            ownerReferences: [
              { apiVersion: 'apps/v1', kind: 'Deployment', name, uid: `uid-${name}`, controller: true },
            ],
          },
        });
      }
      const owned = kube
        .all({ apiVersion: 'v1', kind: 'Pod' }, ns)
        .filter((p) => p.metadata?.ownerReferences?.[0]?.name.startsWith(`${name}-r`) === true);
      const old = owned.filter((p) => p.metadata?.ownerReferences?.[0]?.name !== replicaSet);
      const fresh = owned.length - old.length;
      const first = old[0];
      if (first !== undefined) {
        kube.remove({ apiVersion: 'v1', kind: 'Pod', namespace: ns, name: first.metadata?.name ?? '' });
        const revisionName = injector(ns);
        kube.add(
          pod(ns, `${replicaSet}-${fresh}`, {
            labels: (first.metadata?.labels ?? {}) as Record<string, string>,
            owner: { kind: 'ReplicaSet', name: replicaSet },
            ...(revisionName === undefined ? {} : { injectedBy: revisionName }),
          }),
        );
      }
      const updated = fresh + (first === undefined ? 0 : 1);
      deployment.status = {
        observedGeneration: generation,
        replicas: owned.length,
        updatedReplicas: updated,
        availableReplicas: updated,
        readyReplicas: updated,
      };
    }
  };
}
