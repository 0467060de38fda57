// Revisioned installs leave `istio-injection=enabled` matching nothing until a `default` tag exists
// (users of other operators asked for this to be automatic). When the first revision appears and
// there is neither a `default` tag nor a revision named `default`, meshrev creates the tag pointing at
// the oldest revision — once. It never moves or deletes a tag afterwards, and a `default` tag deleted
// afterwards (by a user or a GitOps prune) stays deleted: that is the user's decision.
//
// "Once" has to survive restarts and leader changes, so it is recorded in the cluster: the ConfigMap
// `meshrev-default-tag` in the operator's namespace (the marker), written right after the tag, saying
// which revision the tag was created for and when. Chosen over a status field because no status outlives
// the objects involved (the tag can be deleted, and so can the first revision in a canary upgrade), and
// meshrev writes nothing in a ControlPlaneRevision's spec or metadata, which GitOps owns. The ConfigMap is
// meshrev's own object, outside anything a user syncs, and needs no RBAC beyond what the ClusterRole grants.
//
// - The marker is also written (without a tag) when the first revision finds a `default` tag or a revision
//   named `default` already there, e.g. the tag of an earlier meshrev release: the moment has passed either
//   way, and a user who deletes that tag later is not overruled either.
// - Tag first, then marker: a failure in between leaves a tag without a marker, which the retry records;
//   the other order could leave a marker without the tag it promises.
// - Once no ControlPlaneRevision is left at all (not even one being deleted), the marker is deleted: the
//   next revision is a first revision again, as on a fresh install, and gets a tag if none exists.
// - Deleting the ConfigMap by hand re-arms the creation; this replica reads it again when it next becomes
//   leader (it remembers having seen it, so the steady state costs no API reads).
import { API_GROUP_VERSION, REVISION_TAG_KIND } from '../../crds/constants.js';
import type { Reconciler } from '../../runtime/controller.js';
import type { Informer } from '../../runtime/informer.js';
import { isAlreadyExists, isNotFound, type KubeClient } from '../../runtime/kube.js';
import type { KubeObject } from '../../runtime/types.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, REVISION_LABEL } from '../common/labels.js';
import type { EventRecorder } from '../events.js';
import { DEFAULT_TAG } from './desired.js';

export const CREATED_BY_ANNOTATION = 'meshrev.dev/created-by';
/** The ConfigMap, in the operator's namespace, recording that the automatic `default` tag was handled. */
export const DEFAULT_TAG_MARKER = 'meshrev-default-tag';

export interface DefaultTagDeps {
  client: KubeClient;
  revisions: Pick<Informer, 'list' | 'get'>;
  tags: Pick<Informer, 'get'>;
  events: EventRecorder;
  fieldManager: string;
  /** The operator's namespace, where the marker lives. */
  namespace: string;
  now?: () => Date;
}

/** The revision a new default tag should point at: the oldest live one (pure). */
export function defaultTagTarget(revisions: KubeObject[]): KubeObject | undefined {
  const live = revisions.filter((r) => !r.metadata?.deletionTimestamp);
  live.sort(
    (a, b) =>
      Date.parse(a.metadata?.creationTimestamp ?? '') - Date.parse(b.metadata?.creationTimestamp ?? '') ||
      (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
  );
  return live[0];
}

export interface DefaultTagState {
  /** Every ControlPlaneRevision, those being deleted included. */
  revisions: KubeObject[];
  defaultTagExists: boolean;
  markerExists: boolean;
}

export type DefaultTagDecision =
  | { action: 'none'; why: string }
  /** Create the tag pointing at `target`, then the marker. */
  | { action: 'create'; target: KubeObject }
  /** Write the marker only: a default was already there when the first revision appeared. */
  | { action: 'record'; target: KubeObject; why: string }
  /** Delete the marker: no revision is left, so the next one is a first revision again. */
  | { action: 'forget' };

/** Whether the automatic `default` tag should be created now (pure). */
export function decideDefaultTag(state: DefaultTagState): DefaultTagDecision {
  if (state.revisions.length === 0) {
    return state.markerExists ? { action: 'forget' } : { action: 'none', why: 'no revision' };
  }
  if (state.markerExists) return { action: 'none', why: 'handled once already' };
  const target = defaultTagTarget(state.revisions);
  if (!target) return { action: 'none', why: 'every revision is being deleted' };
  if (state.defaultTagExists) return { action: 'record', target, why: 'a default tag exists' };
  if (state.revisions.some((r) => r.metadata?.name === DEFAULT_TAG)) {
    return { action: 'record', target, why: 'a revision is named default' };
  }
  return { action: 'create', target };
}

/**
 * A webhook configuration for `istio.io/rev=default` that meshrev does not manage: a non-revisioned Istio install,
 * whose webhooks also match `istio-injection=enabled` (istioctl deactivates it before setting a default tag).
 */
async function unmanagedDefaultInjector(
  client: KubeClient,
  signal: AbortSignal,
): Promise<string | undefined> {
  const configurations = await client.list(
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' },
    { labelSelector: `${REVISION_LABEL}=${DEFAULT_TAG}`, signal },
  );
  const unmanaged = configurations.items.find(
    (configuration) => configuration.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE,
  );
  return unmanaged?.metadata?.name;
}

export function defaultTagReconciler(deps: DefaultTagDeps): Reconciler {
  const markerRef = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    namespace: deps.namespace,
    name: DEFAULT_TAG_MARKER,
  };
  const now = deps.now ?? (() => new Date());
  // Only this controller deletes the marker, so once seen it need not be read again in this leader term.
  let markerSeen = false;

  const writeMarker = async (revision: string, outcome: 'created' | 'already-present') => {
    const marker = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: DEFAULT_TAG_MARKER,
        namespace: deps.namespace,
        labels: { 'app.kubernetes.io/name': 'meshrev', 'app.kubernetes.io/part-of': 'meshrev' },
        annotations: {
          'meshrev.dev/description':
            'meshrev handled the automatic default RevisionTag once; it does not create one again while this exists',
        },
      },
      data: { revision, outcome, time: now().toISOString() },
    };
    try {
      await deps.client.create(marker as KubeObject, { fieldManager: deps.fieldManager });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    markerSeen = true;
  };

  return async (_key, ctx) => {
    const markerExists =
      markerSeen || (await deps.client.getOptional(markerRef, { signal: ctx.signal })) !== undefined;
    markerSeen = markerExists;
    const decision = decideDefaultTag({
      revisions: deps.revisions.list(),
      defaultTagExists: deps.tags.get(DEFAULT_TAG) !== undefined,
      markerExists,
    });

    switch (decision.action) {
      case 'none':
        return;
      case 'forget':
        try {
          await deps.client.delete(markerRef, { signal: ctx.signal });
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        markerSeen = false;
        ctx.logger.info('no revision left: the next first revision gets a default tag again');
        return;
      case 'record':
        await writeMarker(decision.target.metadata?.name ?? '', 'already-present');
        ctx.logger.info(
          { why: decision.why },
          'default tag not needed; recorded so it is never created later',
        );
        return;
      case 'create':
        break;
    }

    const target = decision.target;
    const revision = target.metadata?.name ?? '';
    const installed = await unmanagedDefaultInjector(deps.client, ctx.signal);
    if (installed !== undefined) {
      // Not recorded: once that install is gone, the next reconcile creates the tag.
      const message =
        `Did not create RevisionTag "default": MutatingWebhookConfiguration ${installed}, not managed by meshrev, ` +
        'already injects namespaces labelled istio-injection=enabled (a non-revisioned Istio install); two ' +
        'webhooks would inject the same pods. Remove that install, or create the tag yourself once it is deactivated.';
      ctx.logger.warn(
        { webhookConfiguration: installed },
        'default tag not created: another injector serves it',
      );
      deps.events.record(target, 'Warning', 'DefaultTagSkipped', message);
      return;
    }
    const tag = {
      apiVersion: API_GROUP_VERSION,
      kind: REVISION_TAG_KIND,
      metadata: { name: DEFAULT_TAG, annotations: { [CREATED_BY_ANNOTATION]: 'meshrev-operator' } },
      spec: { revision },
    };
    let created = true;
    try {
      // create, not apply: if a user's tag appeared meanwhile, theirs wins.
      await deps.client.create(tag as KubeObject, { fieldManager: deps.fieldManager });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      created = false;
    }
    if (created) {
      ctx.logger.info({ revision }, 'created the default revision tag');
      deps.events.record(
        target,
        'Normal',
        'DefaultTagCreated',
        `Created RevisionTag "default" pointing at this revision, so namespaces labelled istio-injection=enabled are injected`,
      );
    }
    await writeMarker(revision, created ? 'created' : 'already-present');
  };
}
