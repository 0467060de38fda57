// A ControlPlaneRevision's status, computed from what the reconciler observed (pure; written only when changed).
import type { ControlPlaneRevisionStatus } from '../../crds/controlplanerevision.js';
import { type ConditionUpdate, jsonEqual, setConditions } from '../common/conditions.js';

export const RevisionConditionType = {
  Reconciled: 'Reconciled',
  Ready: 'Ready',
  InUse: 'InUse',
} as const;

export const RevisionConditionReason = {
  Reconciled: 'Reconciled',
  ApplyFailed: 'ApplyFailed',
  InvalidSpec: 'InvalidSpec',
  UnknownChannel: 'UnknownChannel',
  UnsupportedVersion: 'UnsupportedVersion',
  WebhookConflict: 'WebhookConflict',
  InvalidTemplate: 'InvalidTemplate',
  IstiodAvailable: 'IstiodAvailable',
  IstiodNotAvailable: 'IstiodNotAvailable',
  IstiodNotFound: 'IstiodNotFound',
  InUse: 'InUse',
  NotInUse: 'NotInUse',
  UsageUnknown: 'UsageUnknown',
} as const;

/** Why a reconciliation failed: a CamelCase reason and a message written for the cluster's users. */
export interface ReconcileFailure {
  reason: string;
  message: string;
}

export function determineReconciledCondition(failure?: ReconcileFailure): ConditionUpdate {
  if (failure === undefined) {
    return {
      type: RevisionConditionType.Reconciled,
      status: 'True',
      reason: RevisionConditionReason.Reconciled,
      message: 'All objects of the revision are applied',
    };
  }
  return {
    type: RevisionConditionType.Reconciled,
    status: 'False',
    reason: failure.reason,
    message: failure.message,
  };
}

/** The parts of the istiod Deployment's status the Ready condition is derived from. */
export interface DeploymentObservation {
  name: string;
  replicas?: number | undefined;
  readyReplicas?: number | undefined;
  conditions?: ReadonlyArray<{
    type: string;
    status: string;
    reason?: string | undefined;
    message?: string | undefined;
  }>;
}

/** Ready mirrors the istiod Deployment's Available condition, but never claims readiness with no ready pod. */
export function determineReadyCondition(deployment: DeploymentObservation | undefined): ConditionUpdate {
  const notReady = (reason: string, message: string): ConditionUpdate => ({
    type: RevisionConditionType.Ready,
    status: 'False',
    reason,
    message,
  });
  if (deployment === undefined) {
    return notReady(RevisionConditionReason.IstiodNotFound, 'The istiod Deployment does not exist yet');
  }
  const ready = deployment.readyReplicas ?? 0;
  const desired = deployment.replicas ?? 0;
  const counts = `${ready}/${desired} istiod replicas ready`;
  const available = deployment.conditions?.find((condition) => condition.type === 'Available');
  if (available === undefined) {
    return notReady(
      RevisionConditionReason.IstiodNotAvailable,
      `Waiting for Deployment ${deployment.name} to report availability (${counts})`,
    );
  }
  if (available.status !== 'True') {
    const detail =
      available.message === undefined || available.message === '' ? '' : `: ${available.message}`;
    return notReady(
      RevisionConditionReason.IstiodNotAvailable,
      `Deployment ${deployment.name} is not available (${counts})${detail}`,
    );
  }
  if (ready === 0) {
    return notReady(
      RevisionConditionReason.IstiodNotAvailable,
      `Deployment ${deployment.name} has no ready pod`,
    );
  }
  return {
    type: RevisionConditionType.Ready,
    status: 'True',
    reason: RevisionConditionReason.IstiodAvailable,
    message: `istiod is available (${counts})`,
  };
}

/** Who selects a revision; `tags` are the RevisionTags pointing at it. */
export interface RevisionUsage {
  namespaces: number;
  pods: number;
  stalePods: number;
  tags: readonly string[];
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** InUse is Unknown until usage was counted, so nothing is pruned on missing information. */
export function determineInUseCondition(usage: RevisionUsage | undefined): ConditionUpdate {
  if (usage === undefined) {
    return {
      type: RevisionConditionType.InUse,
      status: 'Unknown',
      reason: RevisionConditionReason.UsageUnknown,
      message: 'Usage of the revision has not been determined yet',
    };
  }
  const users: string[] = [];
  if (usage.namespaces > 0) users.push(plural(usage.namespaces, 'namespace'));
  if (usage.pods > 0) users.push(plural(usage.pods, 'pod'));
  if (usage.tags.length > 0)
    users.push(`${usage.tags.length === 1 ? 'tag' : 'tags'} ${[...usage.tags].sort().join(', ')}`);
  if (users.length === 0) {
    return {
      type: RevisionConditionType.InUse,
      status: 'False',
      reason: RevisionConditionReason.NotInUse,
      message: 'No namespace, pod or tag uses the revision',
    };
  }
  const stale =
    usage.stalePods > 0 ? `; ${plural(usage.stalePods, 'pod')} still run another revision's proxy` : '';
  return {
    type: RevisionConditionType.InUse,
    status: 'True',
    reason: RevisionConditionReason.InUse,
    message: `Used by ${users.join(', ')}${stale}`,
  };
}

export interface RevisionObservations {
  /** metadata.generation of the ControlPlaneRevision that was reconciled. */
  generation: number | undefined;
  /** The version and channel resolved for this generation; undefined when resolution failed. */
  resolved: { version: string; channel?: string | undefined } | undefined;
  failure?: ReconcileFailure | undefined;
  /** undefined when the Deployment does not exist (or could not be read). */
  deployment?: DeploymentObservation | undefined;
  /** undefined when usage could not be counted. */
  usage?: RevisionUsage | undefined;
  /** Name of the revision's webhook configuration; undefined when injection is disabled. */
  webhookConfiguration?: string | undefined;
  now: Date | string;
}

export function computeRevisionStatus(
  previous: ControlPlaneRevisionStatus | undefined,
  observed: RevisionObservations,
): ControlPlaneRevisionStatus {
  const conditions = setConditions(
    previous?.conditions,
    [
      determineReconciledCondition(observed.failure),
      determineReadyCondition(observed.deployment),
      determineInUseCondition(observed.usage),
    ],
    observed.now,
    observed.generation,
  );
  // A failed resolution keeps reporting the version that is still deployed.
  const version = observed.resolved?.version ?? previous?.version;
  const channel = observed.resolved === undefined ? previous?.channel : observed.resolved.channel;
  const inUse =
    observed.usage === undefined
      ? previous?.inUse
      : {
          namespaces: observed.usage.namespaces,
          pods: observed.usage.pods,
          stalePods: observed.usage.stalePods,
        };
  return {
    ...(observed.generation === undefined ? {} : { observedGeneration: observed.generation }),
    ...(version === undefined ? {} : { version }),
    ...(channel === undefined ? {} : { channel }),
    conditions,
    ...(observed.deployment === undefined
      ? {}
      : {
          istiod: {
            replicas: observed.deployment.replicas ?? 0,
            readyReplicas: observed.deployment.readyReplicas ?? 0,
          },
        }),
    ...(observed.webhookConfiguration === undefined
      ? {}
      : { webhookConfiguration: observed.webhookConfiguration }),
    ...(inUse === undefined ? {} : { inUse }),
  };
}

/** Whether two statuses are the same, so the reconciler skips a status write that would change nothing. */
export function statusEqual(
  left: ControlPlaneRevisionStatus | undefined,
  right: ControlPlaneRevisionStatus | undefined,
): boolean {
  return jsonEqual(left ?? {}, right ?? {});
}
