// metav1.Condition bookkeeping: lastTransitionTime moves only when a condition's status changes.
import type { Condition } from '../../crds/condition.js';

export type ConditionStatus = Condition['status'];

/** A condition as a status function determines it, before it is stamped with time and generation. */
export interface ConditionUpdate {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((condition) => condition.type === type);
}

function timestamp(now: Date | string): string {
  // metav1.Time has second precision; dropping the milliseconds keeps written and read values equal.
  const date = typeof now === 'string' ? new Date(now) : now;
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Returns `conditions` with `update` applied: an existing condition of the same type keeps its position
 * and its lastTransitionTime unless the status changes; a new type is appended.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date | string,
  observedGeneration?: number,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((condition) => condition.type === update.type);
  const previous = index === -1 ? undefined : list[index];
  const next: Condition = {
    type: update.type,
    status: update.status,
    ...(observedGeneration === undefined ? {} : { observedGeneration }),
    lastTransitionTime:
      previous !== undefined && previous.status === update.status
        ? previous.lastTransitionTime
        : timestamp(now),
    reason: update.reason,
    message: update.message,
  };
  if (index === -1) list.push(next);
  else list[index] = next;
  return list;
}

export function setConditions(
  conditions: readonly Condition[] | undefined,
  updates: readonly ConditionUpdate[],
  now: Date | string,
  observedGeneration?: number,
): Condition[] {
  return updates.reduce<Condition[]>(
    (list, update) => setCondition(list, update, now, observedGeneration),
    [...(conditions ?? [])],
  );
}

/** Deep equality of JSON values where object key order does not matter. */
export function jsonEqual(left: unknown, right: unknown): boolean {
  if (left === right) return true;
  if (Array.isArray(left) || Array.isArray(right)) {
    if (!Array.isArray(left) || !Array.isArray(right) || left.length !== right.length) return false;
    return left.every((item, index) => jsonEqual(item, right[index]));
  }
  if (left === null || right === null || typeof left !== 'object' || typeof right !== 'object') return false;
  const leftEntries = Object.entries(left).filter(([, value]) => value !== undefined);
  const rightRecord = right as Record<string, unknown>;
  const rightKeys = Object.keys(rightRecord).filter((key) => rightRecord[key] !== undefined);
  if (leftEntries.length !== rightKeys.length) return false;
  return leftEntries.every(([key, value]) => key in rightRecord && jsonEqual(value, rightRecord[key]));
}
