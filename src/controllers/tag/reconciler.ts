// The RevisionTag reconciler: render `istio-revision-tag-<tag>` routed to the target revision's
// injector path, with the target's webhook settings. A tag whose target does not exist, or whose name
// a revision claimed first, renders nothing (its webhook configuration is removed) and says why.
import { parseControlPlaneRevision } from '../../crds/controlplanerevision.js';
import { API_GROUP_VERSION, REVISION_TAG_KIND } from '../../crds/constants.js';
import { parseRevisionTag, type RevisionTag } from '../../crds/revisiontag.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../runtime/controller.js';
import type { Informer } from '../../runtime/informer.js';
import type { KubeClient } from '../../runtime/kube.js';
import type { KubeObject } from '../../runtime/types.js';
import { applySet, CONFLICT_RECHECK_MS, OwnershipConflictError } from '../apply.js';
import { nameClaim } from '../claims.js';
import type { DesiredObject } from '../common/objects.js';
import { tagWebhookConfigurationName } from '../common/names.js';
import { readInjectionWebhookSettings, type InjectorEndpoint } from '../common/webhooks.js';
import type { EventRecorder } from '../events.js';
import type { OwnedObjectCaches } from '../owned.js';
import { kubeTime } from '../revision/reconciler.js';
import { desiredTagObjects } from './desired.js';
import {
  computeTagStatus,
  TagConditionReason,
  tagStatusEqual,
  type TagReconcileFailure,
  type TagUsage,
} from './status.js';

export interface TagReconcilerDeps {
  client: KubeClient;
  tags: Pick<Informer, 'get'>;
  revisions: Pick<Informer, 'get'>;
  caches: OwnedObjectCaches;
  injector: InjectorEndpoint;
  caBundle: () => string | undefined;
  usage: (tag: string) => TagUsage | undefined;
  events: EventRecorder;
  fieldManager: string;
  operatorName: string;
  now?: () => Date;
}

class TransientFailure extends Error {}

export function tagReconciler(deps: TagReconcilerDeps): Reconciler {
  return async (name: string, ctx: ReconcileContext): Promise<ReconcileResult | void> => {
    const cached = deps.tags.get(name);
    if (cached === undefined) return;
    const parsed = parseRevisionTag(cached);

    let failure: TagReconcileFailure | undefined;
    let desired: DesiredObject[] = [];
    let routedTo: string | undefined;
    if (!parsed.ok) {
      failure = { reason: 'InvalidSpec', message: parsed.error };
    } else {
      const planned = planTag(deps, parsed.value);
      failure = planned.failure;
      desired = planned.desired;
      routedTo = planned.revision;
    }
    // With nothing desired the apply prunes the tag's webhook configuration, so a tag that cannot
    // route never leaves webhooks that match pods and fail them.
    let applied = true;
    try {
      await applySet({
        client: deps.client,
        caches: deps.caches,
        owner: cached,
        desired,
        fieldManager: deps.fieldManager,
        events: deps.events,
        logger: ctx.logger,
        signal: ctx.signal,
      });
    } catch (err) {
      applied = false;
      failure =
        err instanceof OwnershipConflictError
          ? { reason: TagConditionReason.WebhookConflict, message: err.message }
          : {
              reason: TagConditionReason.ApplyFailed,
              message: err instanceof Error ? err.message : String(err),
            };
    }
    if (failure) deps.events.record(cached, 'Warning', failure.reason, failure.message);

    const previous = (cached as { status?: Parameters<typeof computeTagStatus>[0] }).status;
    // A failed apply changed nothing: the webhooks still route where the last applied state says.
    const routing = applied
      ? {
          revision: routedTo,
          webhookConfiguration: desired.length > 0 ? tagWebhookConfigurationName(name) : undefined,
        }
      : { revision: previous?.revision, webhookConfiguration: previous?.webhookConfiguration };
    const status = computeTagStatus(previous, {
      generation: cached.metadata?.generation,
      ...routing,
      failure,
      usage: deps.usage(name),
      now: kubeTime(deps.now?.() ?? new Date()),
    });
    if (!tagStatusEqual(status, previous)) {
      await deps.client.applyStatus(
        { apiVersion: API_GROUP_VERSION, kind: REVISION_TAG_KIND, metadata: { name }, status } as KubeObject,
        { fieldManager: deps.fieldManager, force: true },
      );
    }
    if (failure?.reason === TagConditionReason.ApplyFailed) throw new TransientFailure(failure.message);
    if (failure?.reason === TagConditionReason.WebhookConflict)
      return { requeueAfterMs: CONFLICT_RECHECK_MS };
  };
}

function planTag(
  deps: TagReconcilerDeps,
  tag: RevisionTag,
): { desired: DesiredObject[]; failure?: TagReconcileFailure; revision?: string } {
  const name = tag.metadata.name;
  if (nameClaim(name, deps.revisions, deps.tags) === 'revision') {
    return {
      desired: [],
      failure: {
        reason: TagConditionReason.NameConflict,
        message:
          `ControlPlaneRevision "${name}" existed first and already selects istio.io/rev=${name}; ` +
          'a tag of the same name would make pods match two webhooks. Choose another tag name.',
      },
    };
  }
  const targetObject = deps.revisions.get(tag.spec.revision);
  if (!targetObject) {
    return {
      desired: [],
      failure: {
        reason: TagConditionReason.RevisionNotFound,
        message: `ControlPlaneRevision "${tag.spec.revision}" does not exist; the tag routes nowhere until it does`,
      },
    };
  }
  const target = parseControlPlaneRevision(targetObject);
  const desired = desiredTagObjects(tag, {
    injector: deps.injector,
    caBundle: deps.caBundle(),
    operatorName: deps.operatorName,
    webhookSettings: target.ok ? readInjectionWebhookSettings(target.value.spec.injection) : undefined,
    targetVersion: target.ok ? (target.value.status?.version ?? target.value.spec.version) : undefined,
  });
  return { desired, revision: tag.spec.revision };
}
