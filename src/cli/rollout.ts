/**
 * Workload restarts and the progress of a move, as pure functions: the restart patch `kubectl rollout
 * restart` sends, whether a rollout finished (the checks `kubectl rollout status` makes), which workload
 * owns a pod, which revision a new pod would run (the webhooks' selectors, then the injector's own skip
 * rules) and how many pods already run it.
 */
import { SIDECAR_INJECT_LABEL } from '../controllers/common/labels.js';
import {
  injectedRevision,
  type InjectionWorld,
  type NamespaceResolution,
  resolvePod,
} from '../controllers/usage/selection.js';
import { injectRequired } from '../injector/engine/policy.js';
import { DEFAULT_IGNORED_NAMESPACES, type InjectorSettings } from '../injector/engine/settings.js';
import { isRecord, type KubeObject } from '../runtime/types.js';
import type { RevisionSummary } from './cluster.js';

export const RESTARTED_AT_ANNOTATION = 'kubectl.kubernetes.io/restartedAt';

export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

/** RFC 3339 in UTC without fractions, like Go's time.RFC3339 that kubectl writes. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The strategic merge patch `kubectl rollout restart` sends: a new pod-template annotation rolls the pods. */
export function restartPatch(now: Date): {
  spec: { template: { metadata: { annotations: Record<string, string> } } };
} {
  return { spec: { template: { metadata: { annotations: { [RESTARTED_AT_ANNOTATION]: rfc3339(now) } } } } };
}

function field(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (!isRecord(current)) return undefined;
    current = current[key];
  }
  return current;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function stringMap(value: unknown): Record<string, string> {
  if (!isRecord(value)) return {};
  const result: Record<string, string> = {};
  for (const [key, inner] of Object.entries(value)) if (typeof inner === 'string') result[key] = inner;
  return result;
}

export interface Workload {
  kind: WorkloadKind;
  name: string;
  /** `deployment/web`, as kubectl names it. */
  id: string;
  templateLabels: Record<string, string>;
  templateAnnotations: Record<string, string>;
  paused: boolean;
  /** StatefulSets and DaemonSets with `OnDelete` do not roll pods when the template changes. */
  onDelete: boolean;
  /** A StatefulSet's `rollingUpdate.partition`: pods with a lower ordinal keep their template. */
  partition: number;
  /** `hostNetwork: true` in the pod template: the injector never gives such pods a sidecar. */
  hostNetwork: boolean;
}

export function workloadOf(kind: WorkloadKind, object: unknown): Workload | undefined {
  const name = field(object, 'metadata', 'name');
  if (typeof name !== 'string' || name === '') return undefined;
  return {
    kind,
    name,
    id: `${kind.toLowerCase()}/${name}`,
    templateLabels: stringMap(field(object, 'spec', 'template', 'metadata', 'labels')),
    templateAnnotations: stringMap(field(object, 'spec', 'template', 'metadata', 'annotations')),
    paused: field(object, 'spec', 'paused') === true,
    onDelete: field(object, 'spec', 'updateStrategy', 'type') === 'OnDelete',
    partition:
      kind === 'StatefulSet' && field(object, 'spec', 'updateStrategy', 'type') !== 'OnDelete'
        ? count(field(object, 'spec', 'updateStrategy', 'rollingUpdate', 'partition'))
        : 0,
    hostNetwork: field(object, 'spec', 'template', 'spec', 'hostNetwork') === true,
  };
}

/**
 * What keeps a restart from moving every pod of the workload, and what the user can do about it (`rerun` is
 * the command that restarts the namespace's workloads); undefined when its controller rolls them all.
 */
export function restartLimit(workload: Workload, namespace: string, rerun: string): string | undefined {
  if (workload.paused) {
    return `it is paused: run kubectl rollout resume ${workload.id} -n ${namespace}, then ${rerun}`;
  }
  if (workload.onDelete) return 'it uses the OnDelete update strategy: delete its pods to move them';
  if (workload.partition > 0) {
    return (
      `its rolling update has partition ${workload.partition}: pods with a lower ordinal move only when ` +
      'you delete them or lower the partition'
    );
  }
  return undefined;
}

/**
 * Whether the pods opt out with `sidecar.istio.io/inject: "false"`. By label they never reach the webhook;
 * by annotation the injector skips them, but only when no label is set: the label wins (policy.ts).
 */
export function optsOut(
  labels: Readonly<Record<string, string>>,
  annotations: Readonly<Record<string, string>>,
): boolean {
  const requested = Object.prototype.hasOwnProperty.call(labels, SIDECAR_INJECT_LABEL)
    ? labels[SIDECAR_INJECT_LABEL]
    : annotations[SIDECAR_INJECT_LABEL];
  return requested === 'false';
}

/** The settings by which a revision's injector lets a pod it is asked about through without a sidecar. */
export type InjectionPolicy = Pick<
  InjectorSettings,
  'policy' | 'neverInjectSelector' | 'alwaysInjectSelector' | 'ignoredNamespaces'
>;

/** Istio's defaults, which is what a revision whose spec.injection sets none of them runs with. */
export const DEFAULT_INJECTION_POLICY: InjectionPolicy = {
  policy: 'enabled',
  neverInjectSelector: [],
  alwaysInjectSelector: [],
  ignoredNamespaces: DEFAULT_IGNORED_NAMESPACES,
};

/** What decides a new pod's revision: the webhooks' selectors over the world, then that revision's policy. */
export interface InjectionView {
  world: InjectionWorld;
  /** By revision name; a revision not listed uses DEFAULT_INJECTION_POLICY. */
  policies: ReadonlyMap<string, InjectionPolicy>;
}

export function injectionView(world: InjectionWorld, revisions: readonly RevisionSummary[]): InjectionView {
  return {
    world,
    policies: new Map(
      revisions.map((revision) => [
        revision.name,
        { ...DEFAULT_INJECTION_POLICY, ...revision.injectionPolicy },
      ]),
    ),
  };
}

/** What a new pod with this template gets: a revision, or none, with the injector's reason when it skips. */
export interface Expectation {
  revision?: string;
  /** Why the revision the webhooks ask lets the pod through without a sidecar (istiod's injectRequired). */
  skipped?: string;
}

export function expectInjection(
  template: {
    namespace: string;
    labels: Readonly<Record<string, string>>;
    annotations: Readonly<Record<string, string>>;
    hostNetwork: boolean;
  },
  ns: NamespaceResolution,
  view: InjectionView,
): Expectation {
  const revision = resolvePod(template.labels, ns, view.world).revision;
  if (revision === undefined) return {};
  const decision = injectRequired(
    view.policies.get(revision) ?? DEFAULT_INJECTION_POLICY,
    { hostNetwork: template.hostNetwork },
    {
      namespace: template.namespace,
      labels: { ...template.labels },
      annotations: { ...template.annotations },
    },
  );
  return decision.inject ? { revision } : { skipped: decision.reason };
}

export interface RolloutState {
  done: boolean;
  /** What is still pending, in kubectl's words; empty when done. */
  waitingFor: string;
}

/** kubectl's `rollout status` checks for the three kinds (RollingUpdate; OnDelete only waits for pods). */
export function rolloutState(kind: WorkloadKind, object: unknown): RolloutState {
  const generation = count(field(object, 'metadata', 'generation'));
  const observed = count(field(object, 'status', 'observedGeneration'));
  if (observed < generation) return { done: false, waitingFor: 'the controller to observe the restart' };
  const status = (key: string) => count(field(object, 'status', key));
  const pending = (done: boolean, waitingFor: string): RolloutState => ({
    done,
    waitingFor: done ? '' : waitingFor,
  });
  switch (kind) {
    case 'Deployment': {
      const specReplicas = field(object, 'spec', 'replicas');
      const desired = typeof specReplicas === 'number' ? specReplicas : 1;
      const updated = status('updatedReplicas');
      if (updated < desired) return pending(false, `${updated}/${desired} replicas updated`);
      if (status('replicas') > updated) {
        return pending(false, `${status('replicas') - updated} old replicas pending termination`);
      }
      return pending(
        status('availableReplicas') >= updated,
        `${status('availableReplicas')}/${updated} updated replicas available`,
      );
    }
    case 'StatefulSet': {
      if (field(object, 'spec', 'updateStrategy', 'type') === 'OnDelete') return pending(true, '');
      const specReplicas = field(object, 'spec', 'replicas');
      const desired = typeof specReplicas === 'number' ? specReplicas : 1;
      if (status('readyReplicas') < desired)
        return pending(false, `${status('readyReplicas')}/${desired} pods ready`);
      const partition = count(field(object, 'spec', 'updateStrategy', 'rollingUpdate', 'partition'));
      if (status('updatedReplicas') < desired - partition) {
        return pending(false, `${status('updatedReplicas')}/${desired - partition} pods updated`);
      }
      const current = field(object, 'status', 'currentRevision');
      const update = field(object, 'status', 'updateRevision');
      return pending(partition > 0 || current === update, 'the update revision to become current');
    }
    case 'DaemonSet': {
      if (field(object, 'spec', 'updateStrategy', 'type') === 'OnDelete') return pending(true, '');
      const desired = status('desiredNumberScheduled');
      if (status('updatedNumberScheduled') < desired) {
        return pending(false, `${status('updatedNumberScheduled')}/${desired} pods updated`);
      }
      return pending(
        status('numberAvailable') >= desired,
        `${status('numberAvailable')}/${desired} pods available`,
      );
    }
  }
}

/** Maps ReplicaSet name → owning Deployment name, from ReplicaSet metadata. */
export function replicaSetOwners(replicaSets: readonly KubeObject[]): Map<string, string> {
  const owners = new Map<string, string>();
  for (const replicaSet of replicaSets) {
    const name = replicaSet.metadata?.name;
    const owner = replicaSet.metadata?.ownerReferences?.find(
      (ref) => ref.controller === true && ref.kind === 'Deployment',
    );
    if (name !== undefined && owner !== undefined) owners.set(name, owner.name);
  }
  return owners;
}

/** `deployment/web` for a pod of Deployment web (through its ReplicaSet), or undefined for other owners. */
export function owningWorkloadId(
  pod: KubeObject,
  deploymentsByReplicaSet: ReadonlyMap<string, string>,
): string | undefined {
  const owner = pod.metadata?.ownerReferences?.find((ref) => ref.controller === true);
  if (owner === undefined) return undefined;
  if (owner.kind === 'ReplicaSet') {
    const deployment = deploymentsByReplicaSet.get(owner.name);
    return deployment === undefined ? undefined : `deployment/${deployment}`;
  }
  if (owner.kind === 'StatefulSet' || owner.kind === 'DaemonSet')
    return `${owner.kind.toLowerCase()}/${owner.name}`;
  return undefined;
}

/**
 * The revision a new pod like this one would be injected by; undefined when it would run without a sidecar.
 * Pods are read as metadata only, so whether they use the host network comes from their workload's template.
 */
export function expectedRevision(
  pod: KubeObject,
  ns: NamespaceResolution,
  view: InjectionView,
  hostNetwork = false,
): string | undefined {
  const template = {
    namespace: pod.metadata?.namespace ?? '',
    labels: pod.metadata?.labels ?? {},
    annotations: pod.metadata?.annotations ?? {},
    hostNetwork,
  };
  return expectInjection(template, ns, view).revision;
}

export interface PodPlacement {
  name: string;
  /** The workload that owns it (`deployment/web`), when a Deployment, StatefulSet or DaemonSet does. */
  workload?: string;
  current?: string;
  expected?: string;
}

export interface NamespaceProgress {
  namespace: string;
  /** The revision new pods of the namespace get; undefined when they get no sidecar. */
  revision?: string;
  pods: number;
  moved: number;
  /** Pods not yet on their expected revision. */
  left: PodPlacement[];
}

/** Terminating pods are already on their way out and do not count. */
export function placements(
  pods: readonly KubeObject[],
  ns: NamespaceResolution,
  view: InjectionView,
  deploymentsByReplicaSet: ReadonlyMap<string, string>,
  /** Ids of the workloads whose pod template sets hostNetwork. */
  hostNetwork: ReadonlySet<string> = new Set(),
): PodPlacement[] {
  const result: PodPlacement[] = [];
  for (const pod of pods) {
    const name = pod.metadata?.name;
    if (name === undefined || pod.metadata?.deletionTimestamp !== undefined) continue;
    const workload = owningWorkloadId(pod, deploymentsByReplicaSet);
    const current = injectedRevision(pod.metadata?.annotations);
    const expected = expectedRevision(pod, ns, view, workload !== undefined && hostNetwork.has(workload));
    result.push({
      name,
      ...(workload === undefined ? {} : { workload }),
      ...(current === undefined ? {} : { current }),
      ...(expected === undefined ? {} : { expected }),
    });
  }
  return result.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function progressOf(
  namespace: string,
  revision: string | undefined,
  pods: readonly PodPlacement[],
): NamespaceProgress {
  const left = pods.filter((pod) => pod.current !== pod.expected);
  return {
    namespace,
    ...(revision === undefined ? {} : { revision }),
    pods: pods.length,
    moved: pods.length - left.length,
    left,
  };
}

/** `shop: 3/5 pods on asm-1234-1`, or `… without a sidecar` for a namespace leaving the mesh. */
export function progressLine(progress: NamespaceProgress): string {
  const where = progress.revision === undefined ? 'without a sidecar' : `on ${progress.revision}`;
  return `${progress.namespace}: ${progress.moved}/${progress.pods} pods ${where}`;
}

export function describePlacement(pod: PodPlacement): string {
  const now = pod.current ?? 'no sidecar';
  const owner =
    pod.workload === undefined ? 'not owned by a Deployment, StatefulSet or DaemonSet' : pod.workload;
  return `${pod.name} (${owner}) runs ${now}`;
}
