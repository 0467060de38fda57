// Safe deletion of a ControlPlaneRevision that workloads still use. Two layers give one answer:
//   1. a ValidatingWebhookConfiguration (`meshrev-validation`, failurePolicy Ignore) routes DELETE of a
//      revision to the operator's admission server, which refuses it with a message that says what uses the
//      revision and how to override: `kubectl delete` and a GitOps prune get that answer at once;
//   2. the finalizer `meshrev.dev/in-use-protection` is the backstop when the webhook is not called (operator
//      down, webhook removed): the deletion is held, a DeletionBlocked condition and an Event say why, and the
//      finalizer goes as soon as nothing uses the revision (or the override annotation is set).
// The decision itself (`deletionVerdict`) is pure and shared by both layers.
import type { V1ObjectMeta, V1ValidatingWebhookConfiguration } from '@kubernetes/client-node';

import type { Condition } from '../../crds/condition.js';
import {
  API_GROUP,
  API_GROUP_VERSION,
  API_VERSION,
  CONTROL_PLANE_REVISION_KIND,
} from '../../crds/constants.js';
import type {
  ChangeFilter,
  ReconcileContext,
  ReconcileResult,
  Reconciler,
} from '../../runtime/controller.js';
import type { Informer } from '../../runtime/informer.js';
import { isNotFound, type KubeClient } from '../../runtime/kube.js';
import type { KubeObject } from '../../runtime/types.js';
import { jsonEqual, setConditions, type ConditionUpdate } from '../common/conditions.js';
import type { InjectorEndpoint } from '../common/webhooks.js';
import type { EventRecorder } from '../events.js';
import { applyReason, DESIRED_HASH_ANNOTATION, firstDifference, withDesiredHash } from '../sync.js';
import { computeUsage, type UsageWorldInput } from '../usage/index.js';
import { determineInUseCondition } from './status.js';

export const IN_USE_FINALIZER = 'meshrev.dev/in-use-protection';
export const ALLOW_DELETE_IN_USE_ANNOTATION = 'meshrev.dev/allow-delete-in-use';
export const VALIDATING_WEBHOOK_CONFIGURATION_NAME = 'meshrev-validation';
export const VALIDATE_REVISIONS_PATH = '/validate/controlplanerevisions';
export const DELETION_WEBHOOK_NAME = 'deletion.controlplanerevisions.meshrev.dev';
export const DELETION_BLOCKED_CONDITION = 'DeletionBlocked';

/** What uses a revision: the usage tracker's RevisionUse (src/controllers/usage/usage.ts), or the part read here. */
export interface DeletionUsage {
  /** Namespaces whose labels select the revision, directly or through a tag. */
  namespaces: readonly string[];
  /** Running pods injected by the revision. */
  pods: number;
  stalePods: number;
  /** Tags pointing at the revision. */
  tags: readonly string[];
  /** Why it is in use, for people (namespaces by name, pod counts, tags). */
  reasons: readonly string[];
}

export type DeletionVerdict =
  /** Delete now. `overridden`: it is in use, but the override annotation says delete anyway; `message` says so. */
  | { verdict: 'allow'; overridden: boolean; message?: string }
  | { verdict: 'refuse'; message: string }
  /** Usage is not known yet (caches syncing): the webhook lets the finalizer decide, the finalizer waits. */
  | { verdict: 'unknown'; message: string };

function overrideSet(annotations: Readonly<Record<string, string>> | undefined): boolean {
  return annotations?.[ALLOW_DELETE_IN_USE_ANNOTATION]?.trim().toLowerCase() === 'true';
}

/** A tag that only points at the revision does not hold it: whatever uses the tag is counted as namespaces/pods. */
function blockingReasons(usage: DeletionUsage): string[] {
  return usage.reasons.filter((reason) => !/^tag ".*" points at it$/.test(reason));
}

function tagNote(name: string, usage: DeletionUsage): string {
  if (usage.tags.length === 0) return '';
  const tags = [...usage.tags].sort().map((t) => `"${t}"`);
  return (
    ` RevisionTag${tags.length === 1 ? '' : 's'} ${tags.join(', ')} still point${tags.length === 1 ? 's' : ''} at ` +
    `"${name}" and will select no revision until moved (meshrev tag set <tag> --revision <revision>).`
  );
}

/**
 * Whether a ControlPlaneRevision may be deleted. It is held while namespaces select it (directly or through
 * a tag) or running pods carry its proxy; a tag that merely points at it does not hold it. The annotation
 * `meshrev.dev/allow-delete-in-use=true` overrides.
 */
export function deletionVerdict(
  name: string,
  usage: DeletionUsage | undefined,
  annotations: Readonly<Record<string, string>> | undefined,
): DeletionVerdict {
  if (usage === undefined) {
    return {
      verdict: 'unknown',
      message: `the usage of ControlPlaneRevision "${name}" is not known yet (the operator's caches are syncing)`,
    };
  }
  const inUse = usage.namespaces.length > 0 || usage.pods > 0;
  if (!inUse) {
    const note = tagNote(name, usage).trim();
    return note === ''
      ? { verdict: 'allow', overridden: false }
      : { verdict: 'allow', overridden: false, message: note };
  }
  const reasons = blockingReasons(usage);
  const what = reasons.length > 0 ? reasons.join('; ') : 'workloads use it';
  if (overrideSet(annotations)) {
    return {
      verdict: 'allow',
      overridden: true,
      message:
        `ControlPlaneRevision "${name}" is deleted although it is in use (${ALLOW_DELETE_IN_USE_ANNOTATION}=true): ` +
        `${what}. Their proxies lose their control plane and new pods there get no sidecar.`,
    };
  }
  const firstNamespace = usage.namespaces[0];
  const move =
    firstNamespace === undefined
      ? 'restart or remove the pods it injected'
      : `move them to another revision first (e.g. meshrev migrate ${usage.namespaces.join(' ')} --to <revision> --restart)`;
  return {
    verdict: 'refuse',
    message:
      `ControlPlaneRevision "${name}" is still in use: ${what}. To delete it, ${move}; ` +
      `or override: kubectl annotate controlplanerevision ${name} ${ALLOW_DELETE_IN_USE_ANNOTATION}=true`,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The validating webhook configuration

/** `meshrev-validation`: DELETE of ControlPlaneRevisions goes to the operator; Ignore so an absent operator never blocks. */
export function desiredValidatingWebhookConfiguration(
  injector: InjectorEndpoint,
  caBundle: string | undefined,
): V1ValidatingWebhookConfiguration & { apiVersion: string; kind: string; metadata: V1ObjectMeta } {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: {
      name: VALIDATING_WEBHOOK_CONFIGURATION_NAME,
      labels: { 'app.kubernetes.io/name': 'meshrev', 'app.kubernetes.io/managed-by': 'meshrev' },
    },
    webhooks: [
      {
        name: DELETION_WEBHOOK_NAME,
        clientConfig: {
          service: {
            name: injector.serviceName,
            namespace: injector.serviceNamespace,
            path: VALIDATE_REVISIONS_PATH,
            port: injector.port,
          },
          ...(caBundle === undefined ? {} : { caBundle }),
        },
        rules: [
          {
            operations: ['DELETE'],
            apiGroups: [API_GROUP],
            apiVersions: [API_VERSION],
            resources: ['controlplanerevisions'],
            scope: 'Cluster',
          },
        ],
        sideEffects: 'None',
        failurePolicy: 'Ignore',
        matchPolicy: 'Equivalent',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: 5,
      },
    ],
  };
}

/**
 * What the leader applies: the desired configuration with the hash annotation the reconcilers use, so that a
 * newer meshrev that stops setting a field is told apart from a configuration in place (validationWebhookDrift).
 */
export function appliedValidatingWebhookConfiguration(
  injector: InjectorEndpoint,
  caBundle: string | undefined,
): ReturnType<typeof desiredValidatingWebhookConfiguration> {
  return withDesiredHash(desiredValidatingWebhookConfiguration(injector, caBundle));
}

/**
 * Why the live configuration must be applied again (the first field meshrev sets that differs, or that meshrev's
 * desired configuration changed), or undefined when it is as meshrev applies it.
 */
export function validationWebhookDrift(
  live: KubeObject,
  injector: InjectorEndpoint,
  caBundle: string | undefined,
): string | undefined {
  const desired = desiredValidatingWebhookConfiguration(injector, caBundle);
  if (applyReason(withDesiredHash(desired), live) === undefined) return undefined;
  // Name a field when one differs; otherwise only the hash does (a meshrev that set more, or none, applied it).
  const { apiVersion: _apiVersion, kind: _kind, ...fields } = desired;
  return (
    firstDifference(fields, live) ?? `meshrev's desired configuration changed (${DESIRED_HASH_ANNOTATION})`
  );
}

/** Applies `meshrev-validation` (server-side apply; a no-op when unchanged). */
export async function ensureValidatingWebhookConfiguration(
  client: KubeClient,
  injector: InjectorEndpoint,
  caBundle: string | undefined,
  fieldManager: string,
  signal?: AbortSignal,
): Promise<void> {
  await client.apply(appliedValidatingWebhookConfiguration(injector, caBundle) as KubeObject, {
    fieldManager,
    force: true,
    ...(signal === undefined ? {} : { signal }),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The admission decision for `/validate/controlplanerevisions`

export interface RevisionDeletionRequest {
  operation: string;
  name: string;
  /** The revision as stored (AdmissionRequest.oldObject on DELETE). */
  oldObject: unknown;
}

export type RevisionDeletionAnswer =
  { allowed: true; warnings?: string[] } | { allowed: false; message: string };

export interface RevisionDeletionValidatorDeps {
  usage: (revision: string) => DeletionUsage | undefined | Promise<DeletionUsage | undefined>;
  events?: EventRecorder;
}

function metadataOf(obj: unknown): { name?: string; uid?: string; annotations?: Record<string, string> } {
  if (obj === null || typeof obj !== 'object') return {};
  const metadata = (obj as { metadata?: unknown }).metadata;
  return metadata !== null && typeof metadata === 'object' ? (metadata as ReturnType<typeof metadataOf>) : {};
}

/** The webhook's verdict on a request; anything but a DELETE is allowed (the rules only send DELETE). */
export function revisionDeletionValidator(
  deps: RevisionDeletionValidatorDeps,
): (req: RevisionDeletionRequest) => Promise<RevisionDeletionAnswer> {
  return async (req) => {
    if (req.operation !== 'DELETE') return { allowed: true };
    const metadata = metadataOf(req.oldObject);
    const name = req.name !== '' ? req.name : (metadata.name ?? '');
    const verdict = deletionVerdict(name, await deps.usage(name), metadata.annotations);
    const involved: KubeObject = {
      apiVersion: API_GROUP_VERSION,
      kind: CONTROL_PLANE_REVISION_KIND,
      metadata: { name, ...(metadata.uid === undefined ? {} : { uid: metadata.uid }) },
    };
    switch (verdict.verdict) {
      case 'refuse':
        deps.events?.record(involved, 'Warning', 'DeletionRefused', verdict.message);
        return { allowed: false, message: verdict.message };
      case 'allow':
        if (verdict.overridden && verdict.message) {
          deps.events?.record(involved, 'Warning', 'DeletedWhileInUse', verdict.message);
        }
        return verdict.message ? { allowed: true, warnings: [verdict.message] } : { allowed: true };
      case 'unknown':
        // The finalizer holds the deletion if the revision turns out to be in use.
        return { allowed: true };
    }
  };
}

const UNUSED: DeletionUsage = { namespaces: [], pods: 0, stalePods: 0, tags: [], reasons: [] };

/**
 * A revision's usage read from the API server (namespaces and running pods as metadata only), for a replica
 * that has no usage caches of its own (a follower answering the webhook). Deletes are rare; two list calls
 * per refused or allowed delete are cheap next to keeping every pod in memory on every replica.
 */
export async function liveRevisionUsage(
  client: KubeClient,
  revision: string,
  world: UsageWorldInput,
  signal?: AbortSignal,
): Promise<DeletionUsage> {
  const [namespaces, pods] = await Promise.all([
    client.listAll({ apiVersion: 'v1', kind: 'Namespace' }, { metadataOnly: true, signal }),
    client.listAll(
      { apiVersion: 'v1', kind: 'Pod' },
      { metadataOnly: true, fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed', signal },
    ),
  ]);
  const usage = computeUsage({
    namespaces: namespaces.items.map((ns) => ({
      name: ns.metadata?.name ?? '',
      labels: ns.metadata?.labels,
    })),
    pods: pods.items.map((pod) => ({
      namespace: pod.metadata?.namespace ?? '',
      name: pod.metadata?.name ?? '',
      labels: pod.metadata?.labels,
      annotations: pod.metadata?.annotations,
    })),
    ...world,
  });
  return usage.revisions[revision] ?? UNUSED;
}

// ---------------------------------------------------------------------------------------------------------------
// The finalizer backstop, wrapped around the revision reconciler

export interface DeletionProtectionDeps {
  client: KubeClient;
  revisions: Pick<Informer, 'get'>;
  usage: (revision: string) => DeletionUsage | undefined;
  events: EventRecorder;
  fieldManager: string;
  now?: () => Date;
  /** How soon to look again while usage is unknown. */
  unknownRetryMs?: number;
}

type RevisionObject = KubeObject & { status?: { conditions?: Condition[]; [key: string]: unknown } };

/** Also enqueue revision updates that matter to deletion: a new deletionTimestamp, override or finalizer change. */
export const deletionRelevantChange: ChangeFilter = (oldObj, newObj) => {
  if (oldObj === undefined) return true;
  const before = oldObj.metadata ?? {};
  const after = newObj.metadata ?? {};
  return (
    before.deletionTimestamp !== after.deletionTimestamp ||
    before.annotations?.[ALLOW_DELETE_IN_USE_ANNOTATION] !==
      after.annotations?.[ALLOW_DELETE_IN_USE_ANNOTATION] ||
    (before.finalizers ?? []).includes(IN_USE_FINALIZER) !==
      (after.finalizers ?? []).includes(IN_USE_FINALIZER)
  );
};

/**
 * Adds the finalizer to every live revision, then runs `inner`. For a revision being deleted: removes the
 * finalizer when the verdict allows, otherwise keeps it (inner still runs, so the revision keeps serving and
 * its status stays current) and reports why in a DeletionBlocked condition and an Event.
 */
export function withDeletionProtection(inner: Reconciler, deps: DeletionProtectionDeps): Reconciler {
  return async (name: string, ctx: ReconcileContext): Promise<ReconcileResult | void> => {
    const cached = deps.revisions.get(name) as RevisionObject | undefined;
    if (cached === undefined) return inner(name, ctx);
    const finalizers = cached.metadata?.finalizers ?? [];
    const held = finalizers.includes(IN_USE_FINALIZER);

    if (!cached.metadata?.deletionTimestamp) {
      if (!held) {
        await deps.client.apply(
          {
            apiVersion: API_GROUP_VERSION,
            kind: CONTROL_PLANE_REVISION_KIND,
            metadata: { name, finalizers: [IN_USE_FINALIZER] },
          } as KubeObject,
          { fieldManager: `${deps.fieldManager}-finalizer`, force: true, signal: ctx.signal },
        );
      }
      return inner(name, ctx);
    }
    if (!held) return; // deletion not ours to hold: its objects go by garbage collection

    const verdict = deletionVerdict(name, deps.usage(name), cached.metadata.annotations);
    if (verdict.verdict === 'unknown') {
      ctx.logger.debug(verdict.message);
      return { requeueAfterMs: deps.unknownRetryMs ?? 2_000 };
    }
    if (verdict.verdict === 'allow') {
      if (verdict.overridden && verdict.message)
        deps.events.record(cached, 'Warning', 'DeletedWhileInUse', verdict.message);
      await removeFinalizer(deps.client, name, finalizers, ctx.signal);
      ctx.logger.info({ overridden: verdict.overridden }, 'revision no longer in use: released its deletion');
      return;
    }

    deps.events.record(cached, 'Warning', 'DeletionBlocked', verdict.message);
    let innerError: unknown;
    try {
      await inner(name, ctx);
    } catch (err) {
      innerError = err;
    }
    await writeDeletionBlocked(deps, name, verdict.message, ctx.signal);
    if (innerError !== undefined) throw innerError;
  };
}

async function removeFinalizer(
  client: KubeClient,
  name: string,
  finalizers: readonly string[],
  signal: AbortSignal,
): Promise<void> {
  const index = finalizers.indexOf(IN_USE_FINALIZER);
  // `test` makes the removal fail (and retry) rather than remove someone else's finalizer if the list moved.
  try {
    await client.patch(
      { apiVersion: API_GROUP_VERSION, kind: CONTROL_PLANE_REVISION_KIND, name },
      [
        { op: 'test', path: `/metadata/finalizers/${index}`, value: IN_USE_FINALIZER },
        { op: 'remove', path: `/metadata/finalizers/${index}` },
      ],
      'application/json-patch+json',
      { signal },
    );
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/** Sets DeletionBlocked (and a fresh InUse) on the live status; written only when it changes. */
async function writeDeletionBlocked(
  deps: DeletionProtectionDeps,
  name: string,
  message: string,
  signal: AbortSignal,
): Promise<void> {
  const live = await deps.client.getOptional<RevisionObject>(
    { apiVersion: API_GROUP_VERSION, kind: CONTROL_PLANE_REVISION_KIND, name },
    { signal },
  );
  if (live === undefined) return;
  const previous = live.status ?? {};
  const usage = deps.usage(name);
  const updates: ConditionUpdate[] = [
    { type: DELETION_BLOCKED_CONDITION, status: 'True', reason: 'InUse', message },
  ];
  if (usage !== undefined) {
    updates.unshift(
      determineInUseCondition({
        namespaces: usage.namespaces.length,
        pods: usage.pods,
        stalePods: usage.stalePods,
        tags: usage.tags,
      }),
    );
  }
  const conditions = setConditions(
    previous.conditions,
    updates,
    deps.now?.() ?? new Date(),
    live.metadata?.generation,
  );
  if (jsonEqual(conditions, previous.conditions ?? [])) return;
  // The whole status, as the revision reconciler writes it under the same field manager: fields left out
  // of a server-side apply would be removed.
  await deps.client.applyStatus(
    {
      apiVersion: API_GROUP_VERSION,
      kind: CONTROL_PLANE_REVISION_KIND,
      metadata: { name },
      status: { ...previous, conditions },
    } as KubeObject,
    { fieldManager: deps.fieldManager, force: true, signal },
  );
}
