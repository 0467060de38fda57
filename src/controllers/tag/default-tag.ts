// Revisioned installs leave `istio-injection=enabled` matching nothing until a `default` tag exists
// (users of other operators asked for this to be automatic). When the first revision appears and
// there is neither a `default` tag nor a revision named `default`, meshrev creates the tag pointing at
// the oldest revision. It never moves or deletes a tag afterwards: that is the user's decision.
import { API_GROUP_VERSION, REVISION_TAG_KIND } from '../../crds/constants.js';
import type { Reconciler } from '../../runtime/controller.js';
import type { Informer } from '../../runtime/informer.js';
import { isAlreadyExists, type KubeClient } from '../../runtime/kube.js';
import type { KubeObject } from '../../runtime/types.js';
import type { EventRecorder } from '../events.js';
import { DEFAULT_TAG } from './desired.js';

export const CREATED_BY_ANNOTATION = 'meshrev.dev/created-by';

export interface DefaultTagDeps {
  client: KubeClient;
  revisions: Pick<Informer, 'list' | 'get'>;
  tags: Pick<Informer, 'get'>;
  events: EventRecorder;
  fieldManager: string;
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

export function defaultTagReconciler(deps: DefaultTagDeps): Reconciler {
  return async (_key, ctx) => {
    if (deps.tags.get(DEFAULT_TAG) || deps.revisions.get(DEFAULT_TAG)) return;
    const target = defaultTagTarget(deps.revisions.list());
    if (!target?.metadata?.name) return;
    const tag = {
      apiVersion: API_GROUP_VERSION,
      kind: REVISION_TAG_KIND,
      metadata: { name: DEFAULT_TAG, annotations: { [CREATED_BY_ANNOTATION]: 'meshrev-operator' } },
      spec: { revision: target.metadata.name },
    };
    try {
      // create, not apply: if a user's tag appeared meanwhile, theirs wins.
      await deps.client.create(tag as KubeObject, { fieldManager: deps.fieldManager });
    } catch (err) {
      if (isAlreadyExists(err)) return;
      throw err;
    }
    ctx.logger.info({ revision: target.metadata.name }, 'created the default revision tag');
    deps.events.record(
      target,
      'Normal',
      'DefaultTagCreated',
      `Created RevisionTag "default" pointing at this revision, so namespaces labelled istio-injection=enabled are injected`,
    );
  };
}
