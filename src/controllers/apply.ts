// Applying a set of desired objects for one owner: conflict check, server-side apply of what differs,
// pruning of what is no longer desired. Shared by the revision and tag reconcilers.
import type { DesiredObject } from './common/objects.js';
import { objectKey } from './common/objects.js';
import type { EventRecorder } from './events.js';
import type { OwnedObjectCaches } from './owned.js';
import {
  applyReason,
  DESIRED_HASH_ANNOTATION,
  firstDifference,
  isControlledBy,
  liveObjectKey,
  withDesiredHash,
  type ApplyReason,
} from './sync.js';
import { isNotFound, type KubeClient } from '../runtime/kube.js';
import { isRecord, type KubeObject } from '../runtime/types.js';
import type { Logger } from 'pino';

/**
 * How long before an owner that hit an OwnershipConflictError looks again: the other party's object is not in
 * meshrev's caches (they hold meshrev's objects only), so its removal raises no event.
 */
export const CONFLICT_RECHECK_MS = 60_000;

/** An object of the same name exists and belongs to someone else: meshrev never touches it. */
export class OwnershipConflictError extends Error {
  constructor(
    readonly object: DesiredObject,
    readonly detail: string,
  ) {
    super(
      `${object.kind} ${object.metadata.namespace ? `${object.metadata.namespace}/` : ''}${object.metadata.name} ` +
        `already exists and is not managed by this resource (${detail}); delete or rename it, or choose another name`,
    );
    this.name = 'OwnershipConflictError';
  }
}

/** Objects (by key) whose stored form never matched their desired form, with the desired hash that failed. */
const driftBlind = new Map<string, string | undefined>();

export interface ApplySetOptions {
  client: KubeClient;
  caches: OwnedObjectCaches;
  owner: KubeObject;
  desired: DesiredObject[];
  /** Whether the owner's objects that are not desired are deleted (default true). */
  prune?: boolean;
  fieldManager: string;
  events: EventRecorder;
  logger: Logger;
  signal?: AbortSignal;
}

export interface ApplySetResult {
  applied: string[];
  deleted: string[];
}

/** Brings the owner's objects to `desired`; writes nothing when they already match. */
export async function applySet(opts: ApplySetOptions): Promise<ApplySetResult> {
  const { client, caches, owner, fieldManager, events, logger, signal } = opts;
  const uid = owner.metadata?.uid;
  const desired = opts.desired.map(withDesiredHash);
  const result: ApplySetResult = { applied: [], deleted: [] };

  // First look at everything, then write: a conflict on the last object must not leave the first ones
  // half-applied.
  const plan: {
    object: DesiredObject;
    reason: ApplyReason;
    field: string | undefined;
    replace: KubeObject | undefined;
    handover: KubeObject | undefined;
  }[] = [];
  for (const object of desired) {
    const { apiVersion, kind, metadata } = object;
    let live = caches.get(apiVersion, kind, metadata.namespace, metadata.name);
    if (live === undefined) {
      // Not in meshrev's cache (which only holds meshrev-labelled objects): make sure nobody else's
      // object of that name exists before a forced apply would take it over.
      const found = await client.getOptional<KubeObject>(
        { apiVersion, kind, namespace: metadata.namespace, name: metadata.name },
        { signal },
      );
      live = found === undefined ? undefined : { ...found, apiVersion, kind };
    }
    if (live !== undefined && !isControlledBy(live, uid))
      throw new OwnershipConflictError(object, describeOwner(live));
    let reason = applyReason(object, live);
    // An object the API server normalises in a way the drift check does not understand would be
    // re-applied on every reconcile; for those only a change of the desired object triggers an apply.
    if (
      reason === 'drift' &&
      driftBlind.get(objectKey(object)) === object.metadata.annotations?.[DESIRED_HASH_ANNOTATION]
    ) {
      reason = undefined;
    }
    if (reason !== undefined) {
      const { apiVersion: _v, kind: _k, ...fields } = object;
      plan.push({
        object,
        reason,
        field: reason === 'drift' ? firstDifference(fields, live) : undefined,
        replace: live !== undefined && roleRefChanged(object, live) ? live : undefined,
        handover: await replicasHandoverFor(client, object, live, fieldManager, signal),
      });
    }
  }

  const changes: Record<ApplyReason, string[]> = { create: [], changed: [], drift: [] };
  for (const { object, reason, field, replace, handover } of plan) {
    const { kind, metadata } = object;
    const key = objectKey(object);
    // A binding's roleRef cannot be changed in place (e.g. upgrading from per-revision istiod roles to
    // the shared ones): delete the binding, then apply it anew.
    if (replace !== undefined) await deleteLive(client, replace, signal);
    if (handover !== undefined) {
      // Not forced: it only co-owns the current value, and must not overwrite a count someone changed since.
      await client.apply(handover, {
        fieldManager: replicasHandoverManager(fieldManager),
        force: false,
        signal,
      });
      logger.info({ object: key }, 'handed spec.replicas over before applying without it');
    }
    // Forced: meshrev takes back fields others own, e.g. spec.replicas from the HPA when autoscaling is
    // turned off again.
    const stored = await client.apply(object, { fieldManager, force: true, signal });
    const { apiVersion: _v, kind: _k, ...fields } = object;
    const unmatched = firstDifference(fields, stored);
    if (unmatched !== undefined) {
      driftBlind.set(key, object.metadata.annotations?.[DESIRED_HASH_ANNOTATION]);
      logger.warn(
        { object: key, field: unmatched },
        'the API server stores this field differently; drift checks skip the object',
      );
    } else {
      driftBlind.delete(key);
    }
    result.applied.push(key);
    logger.info({ object: key, reason, ...(field ? { field } : {}) }, 'applied');
    changes[reason].push(`${kind} ${metadata.namespace ? `${metadata.namespace}/` : ''}${metadata.name}`);
  }
  // One Event per kind of change and reconcile, not one per object: a new revision is one write, not nine.
  if (changes.create.length > 0)
    events.record(owner, 'Normal', 'Created', `Created ${changes.create.join(', ')}`);
  if (changes.changed.length > 0)
    events.record(owner, 'Normal', 'Updated', `Updated ${changes.changed.join(', ')}`);
  if (changes.drift.length > 0) {
    events.record(owner, 'Normal', 'DriftRepaired', `Restored hand-edited ${changes.drift.join(', ')}`);
  }

  if (opts.prune === false) return result;
  const wanted = new Set(desired.map((o) => objectKey(o)));
  for (const live of caches.ownedBy(uid)) {
    const key = liveObjectKey(live);
    if (wanted.has(key)) continue;
    const ref = await deleteLive(client, live, signal);
    result.deleted.push(key);
    logger.info({ object: key }, 'deleted object no longer desired');
    events.record(
      owner,
      'Normal',
      'Deleted',
      `Deleted ${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`,
    );
  }
  return result;
}

/** The field manager that keeps a replica count meshrev stops applying (see replicasHandover). */
export function replicasHandoverManager(fieldManager: string): string {
  return `${fieldManager}-replicas-handover`;
}

export type ReplicasHandover =
  | { action: 'none' }
  /** Whether meshrev owns the live count is unknown (its managedFields are not at hand): read the object. */
  | { action: 'read' }
  /** Apply `body` under replicasHandoverManager before the desired object. */
  | { action: 'handover'; body: KubeObject };

/**
 * Whether applying `desired` over `live` needs a hand-over of spec.replicas first. When autoscaling is turned
 * on the desired Deployment no longer sets spec.replicas; were meshrev's manager its only owner, the server-side
 * apply would remove the field, the Deployment would fall back to one replica and the HPA would scale up again
 * later. Applying the live count under a second manager first makes that manager co-own the field, so it stays
 * (and the HPA takes it with its next scale) — the "transferring ownership" recipe of server-side apply. Only
 * the apply that drops the field needs this: afterwards meshrev no longer owns spec.replicas.
 */
export function replicasHandover(
  desired: DesiredObject,
  live: KubeObject | undefined,
  fieldManager: string,
): ReplicasHandover {
  if (live === undefined || !isRecord(desired['spec']) || desired['spec']['replicas'] !== undefined)
    return { action: 'none' };
  const liveSpec = (live as { spec?: unknown }).spec;
  const replicas = isRecord(liveSpec) ? liveSpec['replicas'] : undefined;
  if (typeof replicas !== 'number') return { action: 'none' };
  const managedFields = live.metadata?.managedFields;
  if (managedFields === undefined) return { action: 'read' };
  const owned = managedFields.some(
    (entry) =>
      isRecord(entry) &&
      entry['manager'] === fieldManager &&
      entry['operation'] === 'Apply' &&
      !entry['subresource'] &&
      isRecord(entry['fieldsV1']) &&
      isRecord(entry['fieldsV1']['f:spec']) &&
      entry['fieldsV1']['f:spec']['f:replicas'] !== undefined,
  );
  if (!owned) return { action: 'none' };
  const { name, namespace } = desired.metadata;
  return {
    action: 'handover',
    body: {
      apiVersion: desired.apiVersion,
      kind: desired.kind,
      metadata: namespace === undefined ? { name } : { name, namespace },
      spec: { replicas },
    } as KubeObject,
  };
}

/** The hand-over apply body `desired` needs, if any; reads the object only when its cached copy cannot tell. */
async function replicasHandoverFor(
  client: KubeClient,
  desired: DesiredObject,
  live: KubeObject | undefined,
  fieldManager: string,
  signal: AbortSignal | undefined,
): Promise<KubeObject | undefined> {
  let decision = replicasHandover(desired, live, fieldManager);
  if (decision.action === 'read') {
    const { apiVersion, kind, metadata } = desired;
    const found = await client.getOptional<KubeObject>(
      { apiVersion, kind, namespace: metadata.namespace, name: metadata.name },
      { signal },
    );
    // An object without managedFields has no owner to hand over from.
    decision =
      found === undefined
        ? { action: 'none' }
        : replicasHandover(
            desired,
            { ...found, metadata: { ...found.metadata, managedFields: found.metadata?.managedFields ?? [] } },
            fieldManager,
          );
  }
  return decision.action === 'handover' ? decision.body : undefined;
}

/** Deletes exactly `live` (not a newer object of the same name); gone already is fine. */
async function deleteLive(
  client: KubeClient,
  live: KubeObject,
  signal: AbortSignal | undefined,
): Promise<{ apiVersion: string; kind: string; namespace: string | undefined; name: string }> {
  const ref = {
    apiVersion: live.apiVersion ?? '',
    kind: live.kind ?? '',
    namespace: live.metadata?.namespace,
    name: live.metadata?.name ?? '',
  };
  try {
    await client.delete(ref, {
      preconditions: { uid: live.metadata?.uid },
      propagationPolicy: 'Background',
      signal,
    });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  return ref;
}

/** Whether `desired` is an RBAC binding whose (immutable) roleRef differs from the live one's. */
function roleRefChanged(desired: DesiredObject, live: KubeObject): boolean {
  if (desired.kind !== 'ClusterRoleBinding' && desired.kind !== 'RoleBinding') return false;
  const want = (desired as { roleRef?: Record<string, unknown> }).roleRef;
  const have = (live as { roleRef?: Record<string, unknown> }).roleRef;
  if (want === undefined || have === undefined) return false;
  return (
    want['apiGroup'] !== have['apiGroup'] || want['kind'] !== have['kind'] || want['name'] !== have['name']
  );
}

function describeOwner(live: KubeObject): string {
  const controller = live.metadata?.ownerReferences?.find((r) => r.controller === true);
  if (controller) return `controlled by ${controller.kind} ${controller.name}`;
  const manager = live.metadata?.labels?.['app.kubernetes.io/managed-by'];
  return manager ? `managed by ${manager}` : 'created outside meshrev';
}
