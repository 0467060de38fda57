/**
 * The I/O shell migrate and rollback share: relabel namespaces, optionally restart their workloads the way
 * `kubectl rollout restart` does, wait with visible progress until the pods run the revision their labels now
 * select, and report what moved and what did not. Decisions come from the pure relabel and rollout modules.
 */
import { type NamespaceResolution, resolveNamespace } from '../controllers/usage/selection.js';
import { isConflict } from '../runtime/kube.js';
import type { ResourceType } from '../runtime/resources.js';
import type { KubeObject } from '../runtime/types.js';
import { formatDuration } from './args.js';
import { CLI_FIELD_MANAGER, NAMESPACE, readRunningPods } from './cluster.js';
import { type CliIO, type CliKube, ExitCode, sleepOf } from './io.js';
import { describeError } from './messages.js';
import { plural } from './output.js';
import { describePlan, describeSetting, type RelabelPlan } from './relabel.js';
import {
  describePlacement,
  expectInjection,
  type InjectionView,
  type NamespaceProgress,
  optsOut,
  type PodPlacement,
  placements,
  progressLine,
  progressOf,
  replicaSetOwners,
  restartLimit,
  restartPatch,
  rolloutState,
  type Workload,
  WORKLOAD_KINDS,
  type WorkloadKind,
  workloadOf,
} from './rollout.js';

export interface MoveOptions {
  restart: boolean;
  dryRun: boolean;
  timeoutMs: number;
  /** Pause between progress polls. */
  pollMs?: number;
  /** The command line that restarts a namespace's workloads, for the hint printed without --restart. */
  restartHint: (namespace: string) => string;
}

const DEFAULT_POLL_MS = 2_000;
/** Pods listed one by one in the final report, per namespace; the rest are counted. */
const MAX_LISTED_PODS = 20;

const REPLICA_SET: ResourceType = { apiVersion: 'apps/v1', kind: 'ReplicaSet' };

function workloadType(kind: WorkloadKind): ResourceType {
  return { apiVersion: 'apps/v1', kind };
}

interface NamespaceSnapshot {
  workloads: Array<{ workload: Workload; object: unknown }>;
  pods: KubeObject[];
  deploymentsByReplicaSet: Map<string, string>;
  /** Workloads whose pods use the host network, which pods read as metadata only do not show. */
  hostNetwork: Set<string>;
}

async function snapshot(kube: CliKube, namespace: string): Promise<NamespaceSnapshot> {
  const listWorkloads = async (kind: WorkloadKind) => {
    const { items } = await kube.listAll<unknown>(workloadType(kind), { namespace });
    return items.flatMap((object) => {
      const workload = workloadOf(kind, object);
      return workload === undefined ? [] : [{ workload, object }];
    });
  };
  const [workloads, replicaSets, pods] = await Promise.all([
    Promise.all(WORKLOAD_KINDS.map(listWorkloads)).then((lists) => lists.flat()),
    kube.listAll<KubeObject>(REPLICA_SET, { namespace, metadataOnly: true }),
    readRunningPods(kube, namespace),
  ]);
  return {
    workloads,
    pods,
    deploymentsByReplicaSet: replicaSetOwners(replicaSets.items),
    hostNetwork: new Set(workloads.filter((entry) => entry.workload.hostNetwork).map((e) => e.workload.id)),
  };
}

/**
 * What the restart step decides for one workload. `limit` says why a restart (or, paused, the lack of one)
 * leaves some of its pods where they are: those pods are not waited for but fail the move if they stay behind.
 */
type RestartDecision =
  | { action: 'restart'; workload: Workload; limit?: string }
  | { action: 'skip'; workload: Workload; why: string; awaited: boolean; limit?: string };

function decideRestart(
  entry: { workload: Workload; object: unknown },
  pods: readonly PodPlacement[],
  state: NamespaceState,
  view: InjectionView,
  rerun: string,
): RestartDecision {
  const { workload } = entry;
  const namespace = state.plan.namespace;
  // Opted out, the pods are left as their owners chose; a sidecar they still carry is reported, not fought.
  if (optsOut(workload.templateLabels, workload.templateAnnotations)) {
    return { action: 'skip', workload, why: 'its pods opt out of injection', awaited: false };
  }
  const own = pods.filter((pod) => pod.workload === workload.id);
  const behind = own.some((pod) => pod.current !== pod.expected);
  const expectation = expectInjection(
    {
      namespace,
      labels: workload.templateLabels,
      annotations: workload.templateAnnotations,
      hostNetwork: workload.hostNetwork,
    },
    state.resolution,
    view,
  );
  // The injector would let new pods through without a sidecar, and none has one: a restart changes nothing.
  if (expectation.skipped !== undefined && !behind) {
    return {
      action: 'skip',
      workload,
      why: `its pods get no sidecar (${expectation.skipped})`,
      awaited: false,
    };
  }
  if (own.length === 0) return { action: 'skip', workload, why: 'it has no running pods', awaited: false };
  if (!behind && rolloutState(workload.kind, entry.object).done) {
    return { action: 'skip', workload, why: 'its pods already run the selected revision', awaited: true };
  }
  const limit = restartLimit(workload, namespace, rerun);
  if (workload.paused) {
    return {
      action: 'skip',
      workload,
      why: 'it is paused (run kubectl rollout resume first)',
      awaited: false,
      ...(limit === undefined ? {} : { limit }),
    };
  }
  return { action: 'restart', workload, ...(limit === undefined ? {} : { limit }) };
}

function restartDecisions(
  state: NamespaceState,
  snap: NamespaceSnapshot,
  view: InjectionView,
  rerun: string,
): RestartDecision[] {
  const pods = placements(snap.pods, state.resolution, view, snap.deploymentsByReplicaSet, snap.hostNetwork);
  return snap.workloads.map((entry) => decideRestart(entry, pods, state, view, rerun));
}

interface NamespaceState {
  plan: RelabelPlan;
  resolution: NamespaceResolution;
  /** Workloads whose pods are waited for (restarted, or already moved). */
  awaited: Set<string>;
  restarted: Set<string>;
  /** Workloads a restart does not fully move (paused, OnDelete, partitioned), with what to do about it. */
  limited: Map<string, string>;
  lastLine?: string;
  progress?: NamespaceProgress;
  /** Pods that no restart moves and that do not fail the move: bare pods, Jobs, opted-out workloads. */
  unmanaged: NamespaceProgress['left'];
  /** Pods of `limited` workloads not on their expected revision: the move is not done while they stay. */
  stuck: NamespaceProgress['left'];
  done: boolean;
}

function measure(state: NamespaceState, snap: NamespaceSnapshot, view: InjectionView): NamespaceProgress {
  const all = placements(snap.pods, state.resolution, view, snap.deploymentsByReplicaSet, snap.hostNetwork);
  const awaited = all.filter((pod) => pod.workload !== undefined && state.awaited.has(pod.workload));
  const behind = all.filter(
    (pod) => (pod.workload === undefined || !state.awaited.has(pod.workload)) && pod.current !== pod.expected,
  );
  state.stuck = behind.filter((pod) => pod.workload !== undefined && state.limited.has(pod.workload));
  state.unmanaged = behind.filter((pod) => pod.workload === undefined || !state.limited.has(pod.workload));
  return progressOf(state.plan.namespace, state.resolution.revision, awaited);
}

/** After a failed restart: what was changed already, and the commands that finish the move. */
function partialMoveSummary(states: readonly NamespaceState[], options: MoveOptions): string[] {
  const relabelled = states.filter((s) => s.plan.patch !== undefined).map((s) => s.plan.namespace);
  const restarted = states.flatMap((s) => [...s.restarted].map((id) => `${id} in ${s.plan.namespace}`));
  const done = [
    ...(relabelled.length === 0 ? [] : [`relabelled ${relabelled.join(', ')}`]),
    ...(restarted.length === 0 ? [] : [`restarted ${restarted.join(', ')}`]),
  ];
  return [
    ...(done.length === 0 ? [] : [`already done: ${done.join('; ')}`]),
    'to finish the move, run:',
    ...states.map((s) => `  ${options.restartHint(s.plan.namespace)}`),
  ];
}

export async function executeMoves(
  plans: readonly RelabelPlan[],
  view: InjectionView,
  options: MoveOptions,
  kube: CliKube,
  io: CliIO,
): Promise<number> {
  const states: NamespaceState[] = plans.map((plan) => ({
    plan,
    resolution: resolveNamespace(plan.labelsAfter, view.world),
    awaited: new Set(),
    restarted: new Set(),
    limited: new Map(),
    unmanaged: [],
    stuck: [],
    done: false,
  }));
  const newPodsGet = (state: NamespaceState) =>
    state.resolution.revision === undefined
      ? 'new pods get no sidecar'
      : `new pods get ${state.resolution.revision}`;

  if (options.dryRun) {
    io.stdout('Dry run: nothing is changed.');
    for (const state of states) {
      io.stdout(`${describePlan(state.plan)}; ${newPodsGet(state)}`);
      if (!options.restart) continue;
      const snap = await snapshot(kube, state.plan.namespace);
      const rerun = options.restartHint(state.plan.namespace);
      for (const decision of restartDecisions(state, snap, view, rerun)) {
        const but =
          decision.action === 'restart' && decision.limit !== undefined ? `, but ${decision.limit}` : '';
        io.stdout(
          decision.action === 'restart'
            ? `${state.plan.namespace}: would restart ${decision.workload.id}${but}`
            : `${state.plan.namespace}: would skip ${decision.workload.id}: ${decision.why}`,
        );
      }
    }
    return ExitCode.Ok;
  }

  for (const state of states) {
    const { plan } = state;
    if (plan.patch === undefined) {
      io.stdout(`${plan.namespace}: already labelled ${describeSetting(plan.to)}; ${newPodsGet(state)}`);
      continue;
    }
    try {
      await kube.patch({ ...NAMESPACE, name: plan.namespace }, plan.patch, 'application/merge-patch+json', {
        fieldManager: CLI_FIELD_MANAGER,
      });
    } catch (err) {
      const done = states.slice(0, states.indexOf(state)).map((s) => s.plan.namespace);
      const why = isConflict(err)
        ? `namespace ${plan.namespace} changed while it was being relabelled; run the command again`
        : `relabelling namespace ${plan.namespace} failed: ${describeError(err)}`;
      io.stderr(`error: ${why}${done.length === 0 ? '' : ` (already done: ${done.join(', ')})`}`);
      return ExitCode.Error;
    }
    io.stdout(
      `${plan.namespace}: relabelled ${describeSetting(plan.from)} -> ${describeSetting(plan.to)}; ${newPodsGet(state)}`,
    );
  }

  if (!options.restart) {
    for (const state of states) {
      const snap = await snapshot(kube, state.plan.namespace);
      for (const entry of snap.workloads) state.awaited.add(entry.workload.id);
      const progress = measure(state, snap, view);
      io.stdout(progressLine(progress));
      if (progress.left.length > 0) {
        io.stdout(
          `${state.plan.namespace}: ${plural(progress.left.length, 'pod')} move only when restarted: ${options.restartHint(state.plan.namespace)}`,
        );
      }
    }
    return ExitCode.Ok;
  }

  for (const state of states) {
    const namespace = state.plan.namespace;
    const snap = await snapshot(kube, namespace);
    for (const decision of restartDecisions(state, snap, view, options.restartHint(namespace))) {
      if (decision.limit !== undefined) state.limited.set(decision.workload.id, decision.limit);
      if (decision.action === 'skip') {
        if (decision.awaited) state.awaited.add(decision.workload.id);
        io.stdout(`${namespace}: skipped ${decision.workload.id}: ${decision.why}`);
        continue;
      }
      try {
        await kube.patch(
          { ...workloadType(decision.workload.kind), namespace, name: decision.workload.name },
          restartPatch(io.now()),
          'application/strategic-merge-patch+json',
          { fieldManager: CLI_FIELD_MANAGER },
        );
      } catch (err) {
        io.stderr(`error: restarting ${decision.workload.id} in ${namespace} failed: ${describeError(err)}`);
        for (const line of partialMoveSummary(states, options)) io.stderr(line);
        return ExitCode.Error;
      }
      // A limited workload's rollout is waited for, its pods are not: some of them never move by themselves.
      if (decision.limit === undefined) state.awaited.add(decision.workload.id);
      state.restarted.add(decision.workload.id);
      io.stdout(`${namespace}: restarted ${decision.workload.id}`);
      if (decision.workload.onDelete) {
        io.stderr(
          `warning: ${namespace}: ${decision.workload.id} uses the OnDelete update strategy; delete its pods to move them`,
        );
      } else if (decision.workload.partition > 0) {
        io.stderr(
          `warning: ${namespace}: ${decision.workload.id} has rolling-update partition ${decision.workload.partition}; ` +
            'delete its pods with a lower ordinal, or lower the partition, to move them',
        );
      }
    }
  }

  const timedOut = await waitForMoves(states, view, options, kube, io);
  return report(states, timedOut, options, io);
}

/** Polls until every awaited pod runs its expected revision and every restarted rollout finished. */
async function waitForMoves(
  states: NamespaceState[],
  view: InjectionView,
  options: MoveOptions,
  kube: CliKube,
  io: CliIO,
): Promise<boolean> {
  const sleep = sleepOf(io);
  const deadline = io.now().getTime() + options.timeoutMs;
  for (;;) {
    for (const state of states) {
      if (state.done) continue;
      const snap = await snapshot(kube, state.plan.namespace);
      const progress = measure(state, snap, view);
      state.progress = progress;
      const rollingOut = snap.workloads.filter(
        (entry) =>
          state.restarted.has(entry.workload.id) && !rolloutState(entry.workload.kind, entry.object).done,
      );
      const line = progressLine(progress);
      if (line !== state.lastLine) {
        io.stdout(line);
        state.lastLine = line;
      }
      state.done = progress.left.length === 0 && rollingOut.length === 0;
    }
    if (states.every((state) => state.done)) return false;
    if (io.now().getTime() >= deadline) return true;
    await sleep(options.pollMs ?? DEFAULT_POLL_MS);
  }
}

function listPods(pods: readonly PodPlacement[], indent: string, io: CliIO): void {
  for (const pod of pods.slice(0, MAX_LISTED_PODS)) io.stdout(`${indent}${describePlacement(pod)}`);
  if (pods.length > MAX_LISTED_PODS) io.stdout(`${indent}… and ${pods.length - MAX_LISTED_PODS} more`);
}

function report(states: NamespaceState[], timedOut: boolean, options: MoveOptions, io: CliIO): number {
  let podsLeft = 0;
  let podsStuck = 0;
  for (const state of states) {
    const progress = state.progress;
    if (progress === undefined) continue;
    const target = progress.revision ?? 'no sidecar';
    if (progress.left.length === 0) {
      // Pods a restart cannot move keep the namespace from being done even though every waited-for pod moved.
      if (state.stuck.length === 0) {
        io.stdout(`${progress.namespace}: done, ${progress.moved}/${progress.pods} pods run ${target}`);
      }
    } else {
      podsLeft += progress.left.length;
      io.stdout(
        `${progress.namespace}: ${progress.left.length}/${progress.pods} pods not moved to ${target}:`,
      );
      listPods(progress.left, '  ', io);
    }
    if (state.stuck.length > 0) {
      podsStuck += state.stuck.length;
      io.stdout(
        `${progress.namespace}: not done: ${plural(state.stuck.length, 'pod')} not moved to ${target} in workloads a restart does not move:`,
      );
      for (const [workload, limit] of state.limited) {
        const pods = state.stuck.filter((pod) => pod.workload === workload);
        if (pods.length === 0) continue;
        io.stdout(`  ${workload}: ${limit}`);
        listPods(pods, '    ', io);
      }
    }
    if (state.unmanaged.length > 0) {
      io.stdout(
        `${progress.namespace}: ${plural(state.unmanaged.length, 'pod')} not restarted by meshrev (delete or restart them yourself):`,
      );
      listPods(state.unmanaged, '  ', io);
    }
  }
  if (timedOut && podsLeft > 0) {
    io.stderr(
      `error: timed out after ${formatDuration(options.timeoutMs)} with ${plural(podsLeft, 'pod')} not moved; ` +
        'check the rollouts (kubectl rollout status) and run the command again to keep waiting',
    );
  } else if (timedOut) {
    io.stderr(`error: timed out after ${formatDuration(options.timeoutMs)} waiting for rollouts to finish`);
  }
  // Same exit code as a timeout: in both cases pods are left on another revision and the move is not done.
  if (podsStuck > 0) {
    io.stderr(
      `error: ${plural(podsStuck, 'pod')} not moved in workloads a restart does not move (paused, OnDelete or ` +
        'partitioned); see above for what to do',
    );
  }
  return timedOut || podsStuck > 0 ? ExitCode.TimedOut : ExitCode.Ok;
}
