// A RevisionTag's status, computed from what the reconciler observed (pure; written only when changed).
import type { RevisionTagStatus } from '../../crds/revisiontag.js';
import { type ConditionUpdate, jsonEqual, setConditions } from '../common/conditions.js';

export const TagConditionType = {
  Reconciled: 'Reconciled',
  InUse: 'InUse',
} as const;

export const TagConditionReason = {
  Reconciled: 'Reconciled',
  ApplyFailed: 'ApplyFailed',
  RevisionNotFound: 'RevisionNotFound',
  NameConflict: 'NameConflict',
  WebhookConflict: 'WebhookConflict',
  InUse: 'InUse',
  NotInUse: 'NotInUse',
  UsageUnknown: 'UsageUnknown',
} as const;

export interface TagReconcileFailure {
  reason: string;
  message: string;
}

export function determineTagReconciledCondition(failure?: TagReconcileFailure): ConditionUpdate {
  if (failure === undefined) {
    return {
      type: TagConditionType.Reconciled,
      status: 'True',
      reason: TagConditionReason.Reconciled,
      message: 'The tag webhook configuration is applied',
    };
  }
  return {
    type: TagConditionType.Reconciled,
    status: 'False',
    reason: failure.reason,
    message: failure.message,
  };
}

export interface TagUsage {
  namespaces: number;
  pods: number;
}

export function determineTagInUseCondition(usage: TagUsage | undefined): ConditionUpdate {
  if (usage === undefined) {
    return {
      type: TagConditionType.InUse,
      status: 'Unknown',
      reason: TagConditionReason.UsageUnknown,
      message: 'Usage of the tag has not been determined yet',
    };
  }
  const users: string[] = [];
  if (usage.namespaces > 0) users.push(`${usage.namespaces} namespace${usage.namespaces === 1 ? '' : 's'}`);
  if (usage.pods > 0) users.push(`${usage.pods} pod${usage.pods === 1 ? '' : 's'}`);
  if (users.length === 0) {
    return {
      type: TagConditionType.InUse,
      status: 'False',
      reason: TagConditionReason.NotInUse,
      message: 'No namespace or pod selects the tag',
    };
  }
  return {
    type: TagConditionType.InUse,
    status: 'True',
    reason: TagConditionReason.InUse,
    message: `Selected by ${users.join(' and ')}`,
  };
}

export interface TagObservations {
  generation: number | undefined;
  /** The revision the tag's webhooks route to; undefined when nothing was applied. */
  revision: string | undefined;
  failure?: TagReconcileFailure | undefined;
  usage?: TagUsage | undefined;
  webhookConfiguration?: string | undefined;
  now: Date | string;
}

export function computeTagStatus(
  previous: RevisionTagStatus | undefined,
  observed: TagObservations,
): RevisionTagStatus {
  // What this reconcile routed and rendered, not what an earlier one did: with nothing to route the webhook
  // configuration was pruned, and a status still naming it would send people looking for a deleted object.
  const { revision, webhookConfiguration } = observed;
  return {
    ...(observed.generation === undefined ? {} : { observedGeneration: observed.generation }),
    ...(revision === undefined ? {} : { revision }),
    ...(webhookConfiguration === undefined ? {} : { webhookConfiguration }),
    conditions: setConditions(
      previous?.conditions,
      [determineTagReconciledCondition(observed.failure), determineTagInUseCondition(observed.usage)],
      observed.now,
      observed.generation,
    ),
  };
}

export function tagStatusEqual(
  left: RevisionTagStatus | undefined,
  right: RevisionTagStatus | undefined,
): boolean {
  return jsonEqual(left ?? {}, right ?? {});
}
