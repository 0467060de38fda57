/**
 * The I/O shell migrate and rollback share: relabel namespaces, optionally restart their workloads the way
 * `kubectl rollout restart` does, wait with visible progress until the pods run the revision their labels now
 * select, and report what moved and what did not. Decisions come from the pure relabel and rollout modules.
 */
import {
  type InjectionWorld,
  type NamespaceResolution,
  resolveNamespace,
} from '../controllers/usage/selection.js';
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
  type NamespaceProgress,
  optsOut,
  type PodPlacement,
  placements,
  progressLine,
  progressOf,
  replicaSetOwners,
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
  return { workloads, pods, deploymentsByReplicaSet: replicaSetOwners(replicaSets.items) };
}

/** What the restart step decides for one workload. */
type RestartDecision =
  | { action: 'restart'; workload: Workload }
  | { action: 'skip'; workload: Workload; why: string; awaited: boolean };

function decideRestart(
  entry: { workload: Workload; object: unknown },
  pods: readonly PodPlacement[],
): RestartDecision {
  const { workload } = entry;
  if (workload.paused) {
    return {
      action: 'skip',
      workload,
      why: 'it is paused (run kubectl rollout resume first)',
      awaited: false,
    };
  }
  if (optsOut(workload.templateLabels, workload.templateAnnotations)) {
    return { action: 'skip', workload, why: 'its pods opt out of injection', awaited: false };
  }
  const own = pods.filter((pod) => pod.workload === workload.id);
  if (own.length === 0) return { action: 'skip', workload, why: 'it has no running pods', awaited: false };
  const behind = own.some((pod) => pod.current !== pod.expected);
  if (!behind && rolloutState(workload.kind, entry.object).done) {
    return { action: 'skip', workload, why: 'its pods already run the selected revision', awaited: true };
  }
  return { action: 'restart', workload };
}

function restartDecisions(
  state: NamespaceState,
  snap: NamespaceSnapshot,
  world: InjectionWorld,
): RestartDecision[] {
  const pods = placements(snap.pods, state.resolution, world, snap.deploymentsByReplicaSet);
  return snap.workloads.map((entry) => decideRestart(entry, pods));
}

interface NamespaceState {
  plan: RelabelPlan;
  resolution: NamespaceResolution;
  /** Workloads whose pods are waited for (restarted, or already moved). */
  awaited: Set<string>;
  restarted: Set<string>;
  lastLine?: string;
  progress?: NamespaceProgress;
  /** Pods that no restart moves: bare pods, Jobs, paused or opted-out workloads. */
  unmanaged: NamespaceProgress['left'];
  done: boolean;
}

function measure(state: NamespaceState, snap: NamespaceSnapshot, world: InjectionWorld): NamespaceProgress {
  const all = placements(snap.pods, state.resolution, world, snap.deploymentsByReplicaSet);
  const awaited = all.filter((pod) => pod.workload !== undefined && state.awaited.has(pod.workload));
  state.unmanaged = all.filter(
    (pod) => (pod.workload === undefined || !state.awaited.has(pod.workload)) && pod.current !== pod.expected,
  );
  return progressOf(state.plan.namespace, state.resolution.revision, awaited);
}

export async function executeMoves(
  plans: readonly RelabelPlan[],
  world: InjectionWorld,
  options: MoveOptions,
  kube: CliKube,
  io: CliIO,
): Promise<number> {
  const states: NamespaceState[] = plans.map((plan) => ({
    plan,
    resolution: resolveNamespace(plan.labelsAfter, world),
    awaited: new Set(),
    restarted: new Set(),
    unmanaged: [],
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
      for (const decision of restartDecisions(state, snap, world)) {
        io.stdout(
          decision.action === 'restart'
            ? `${state.plan.namespace}: would restart ${decision.workload.id}`
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
      const progress = measure(state, snap, world);
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
    for (const decision of restartDecisions(state, snap, world)) {
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
        return ExitCode.Error;
      }
      state.awaited.add(decision.workload.id);
      state.restarted.add(decision.workload.id);
      io.stdout(`${namespace}: restarted ${decision.workload.id}`);
      if (decision.workload.onDelete) {
        io.stderr(
          `warning: ${namespace}: ${decision.workload.id} uses the OnDelete update strategy; delete its pods to move them`,
        );
      }
    }
  }

  const timedOut = await waitForMoves(states, world, options, kube, io);
  return report(states, timedOut, options, io);
}

/** Polls until every awaited pod runs its expected revision and every restarted rollout finished. */
async function waitForMoves(
  states: NamespaceState[],
  world: InjectionWorld,
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
      const progress = measure(state, snap, world);
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

function report(states: NamespaceState[], timedOut: boolean, options: MoveOptions, io: CliIO): number {
  let podsLeft = 0;
  for (const state of states) {
    const progress = state.progress;
    if (progress === undefined) continue;
    const target = progress.revision ?? 'no sidecar';
    if (progress.left.length === 0) {
      io.stdout(`${progress.namespace}: done, ${progress.moved}/${progress.pods} pods run ${target}`);
    } else {
      podsLeft += progress.left.length;
      io.stdout(
        `${progress.namespace}: ${progress.left.length}/${progress.pods} pods not moved to ${target}:`,
      );
      for (const pod of progress.left.slice(0, MAX_LISTED_PODS)) io.stdout(`  ${describePlacement(pod)}`);
      if (progress.left.length > MAX_LISTED_PODS)
        io.stdout(`  … and ${progress.left.length - MAX_LISTED_PODS} more`);
    }
    if (state.unmanaged.length > 0) {
      io.stdout(
        `${progress.namespace}: ${plural(state.unmanaged.length, 'pod')} not restarted by meshrev (delete or restart them yourself):`,
      );
      for (const pod of state.unmanaged.slice(0, MAX_LISTED_PODS)) io.stdout(`  ${describePlacement(pod)}`);
      if (state.unmanaged.length > MAX_LISTED_PODS)
        io.stdout(`  … and ${state.unmanaged.length - MAX_LISTED_PODS} more`);
    }
  }
  if (timedOut && podsLeft > 0) {
    io.stderr(
      `error: timed out after ${formatDuration(options.timeoutMs)} with ${plural(podsLeft, 'pod')} not moved; ` +
        'check the rollouts (kubectl rollout status) and run the command again to keep waiting',
    );
    return ExitCode.TimedOut;
  }
  if (timedOut) {
    io.stderr(`error: timed out after ${formatDuration(options.timeoutMs)} waiting for rollouts to finish`);
    return ExitCode.TimedOut;
  }
  return ExitCode.Ok;
}
