// The leader-only controller set: the informers only the reconcilers need (owned objects, namespaces and
// pods for the in-use model, the channel ConfigMap), the usage tracker and the ControlPlaneRevision,
// RevisionTag and default-tag controllers. Started when this replica becomes the leader, stopped when it
// stops leading.
import type { Logger } from 'pino';

import type { OperatorConfig } from '../config.js';
import { API_GROUP_VERSION, CONTROL_PLANE_REVISION_KIND, REVISION_TAG_KIND } from '../crds/constants.js';
import type { Metrics } from '../observability/metrics.js';
import { Controller, generationChanged } from '../runtime/controller.js';
import { kubeInformer, type Informer } from '../runtime/informer.js';
import type { KubeClient } from '../runtime/kube.js';
import type { KubeObject } from '../runtime/types.js';
import {
  parseChannelTable,
  DEFAULT_CHANNEL_TABLE,
  type ChannelTable,
  type ChannelTableParseResult,
} from './common/versions.js';
import type { InjectorEndpoint } from './common/webhooks.js';
import { KubeEventRecorder } from './events.js';
import { OwnedObjectCaches } from './owned.js';
import { deletionRelevantChange, withDeletionProtection } from './revision/deletion.js';
import { revisionReconciler } from './revision/reconciler.js';
import { defaultTagReconciler } from './tag/default-tag.js';
import { tagReconciler } from './tag/reconciler.js';
import { slimNamespace, slimPod, UsageTracker } from './usage-tracker.js';

export interface ControllerSetOptions {
  client: KubeClient;
  config: OperatorConfig;
  logger: Logger;
  metrics: Metrics;
  /** Shared with the injector: every replica runs them, the controllers only read them. */
  revisions: Informer;
  tags: Informer;
  injector: InjectorEndpoint;
  caBundle: () => string | undefined;
  /** Aborts when this replica stops leading (or the operator stops). */
  signal: AbortSignal;
}

export interface RunningControllers {
  /** The in-use view the deletion-validation webhook answers from while this replica leads. */
  usage: UsageTracker;
  /** Enqueues every revision and tag (what the periodic resync does). */
  enqueueAll(): void;
  /** Stops the controllers, then the informers only they needed. */
  stop(): Promise<void>;
}

/** Starts the leader-only informers and controllers; returns how to stop them. */
export function startControllers(opts: ControllerSetOptions): RunningControllers {
  const { client, config, logger, metrics, revisions, tags } = opts;
  const informerOf = (
    resource: string,
    type: { apiVersion: string; kind: string },
    extra = {},
    transform?: (obj: KubeObject) => KubeObject,
  ): Informer => kubeInformer({ client, logger, metrics }, resource, type, extra, transform);
  const caches = new OwnedObjectCaches(client, logger, (resource) =>
    metrics.informerRestartHook(resource)('error'),
  );
  // Metadata only, slimmed to what the usage model reads: on a cluster with 50,000 pods the operator
  // keeps a few hundred bytes per pod, and completed or failed pods never arrive (they cannot keep a
  // revision in use).
  const namespaces = informerOf(
    'namespaces',
    { apiVersion: 'v1', kind: 'Namespace' },
    { metadataOnly: true },
    slimNamespace,
  );
  const pods = informerOf(
    'pods',
    { apiVersion: 'v1', kind: 'Pod' },
    { metadataOnly: true, fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed' },
    slimPod,
  );
  const channelConfigMaps = informerOf(
    'channel-configmap',
    { apiVersion: 'v1', kind: 'ConfigMap' },
    { namespace: config.namespace, fieldSelector: `metadata.name=${config.channelConfigMap}` },
  );
  const channelTable = channelTableReader(channelConfigMaps, config, logger);
  const channels = (): Readonly<ChannelTable> => channelTable().table;
  const channelProblem = (channel: string): string | undefined =>
    (channelTable().invalid as Record<string, string | undefined>)[channel];

  const usage = new UsageTracker({ namespaces, pods, revisions, tags });
  const events = new KubeEventRecorder({
    client,
    component: 'meshrev',
    instance: config.podName,
    logger,
  });
  const common = { client, caches, events, fieldManager: config.fieldManager, operatorName: 'meshrev' };

  const revisionController = new Controller({
    name: 'controlplanerevision',
    primary: revisions,
    // deletion protection also reacts to a deletionTimestamp, the override annotation and the finalizer
    primaryFilter: (oldObj, newObj) =>
      generationChanged(oldObj, newObj) || deletionRelevantChange(oldObj, newObj),
    owns: caches.all().map((source) => ({
      source,
      ownerKind: CONTROL_PLANE_REVISION_KIND,
      ownerApiVersion: API_GROUP_VERSION,
      ownerNamespaced: false,
    })),
    watches: [
      { source: channelConfigMaps, map: () => revisions.keys() },
      { source: namespaces, map: () => revisions.keys() },
      { source: tags, map: () => revisions.keys() },
      {
        source: pods,
        map: (pod) => {
          const rev = usage.injectedRevisionOf(pod);
          return rev && revisions.get(rev) ? [rev] : [];
        },
      },
    ],
    // deletion protection: the in-use finalizer wraps the revision reconciler
    reconcile: withDeletionProtection(
      revisionReconciler({
        ...common,
        revisions,
        channels,
        channelProblem,
        injector: opts.injector,
        caBundle: opts.caBundle,
        usage: (name) => usage.revisionUsage(name),
        namespaceExists: (name) => namespaces.get(name) !== undefined,
        tags,
      }),
      {
        client,
        revisions,
        usage: (name) => {
          const current = usage.current();
          if (!current) return undefined;
          return current.revisions[name] ?? { namespaces: [], pods: 0, stalePods: 0, tags: [], reasons: [] };
        },
        events,
        fieldManager: config.fieldManager,
      },
    ),
    workers: config.workers,
    logger: logger.child({ controller: 'controlplanerevision' }),
    metrics: metrics.controller('controlplanerevision'),
    resyncPeriodMs: config.resyncSeconds * 1000,
  });

  const tagController = new Controller({
    name: 'revisiontag',
    primary: tags,
    primaryFilter: generationChanged,
    owns: caches.all().map((source) => ({
      source,
      ownerKind: REVISION_TAG_KIND,
      ownerApiVersion: API_GROUP_VERSION,
      ownerNamespaced: false,
    })),
    watches: [
      { source: revisions, map: () => tags.keys() },
      { source: namespaces, map: () => tags.keys() },
    ],
    reconcile: tagReconciler({
      ...common,
      tags,
      revisions,
      injector: opts.injector,
      caBundle: opts.caBundle,
      usage: (name) => usage.tagUsage(name),
    }),
    workers: Math.max(1, Math.floor(config.workers / 2)),
    logger: logger.child({ controller: 'revisiontag' }),
    metrics: metrics.controller('revisiontag'),
    resyncPeriodMs: config.resyncSeconds * 1000,
  });

  const controllers: Controller[] = [revisionController, tagController];
  if (config.createDefaultTag) {
    controllers.push(
      new Controller({
        name: 'default-tag',
        primary: revisions,
        watches: [{ source: tags, map: () => ['default'] }],
        reconcile: defaultTagReconciler({
          client,
          revisions,
          tags,
          events,
          fieldManager: config.fieldManager,
          namespace: config.namespace,
        }),
        workers: 1,
        logger: logger.child({ controller: 'default-tag' }),
        metrics: metrics.controller('default-tag'),
      }),
    );
  }
  for (const controller of controllers) {
    controller
      .start(opts.signal)
      .catch((err: unknown) => logger.error({ err, controller: controller.name }, 'controller failed'));
  }

  return {
    usage,
    enqueueAll: () => {
      for (const key of revisions.keys()) revisionController.enqueue(key);
      for (const key of tags.keys()) tagController.enqueue(key);
    },
    stop: async () => {
      await Promise.all(controllers.map((c) => c.stop()));
      const informers = [...caches.all(), namespaces, pods, channelConfigMaps];
      await Promise.all(informers.map((i) => i.stop()));
    },
  };
}

/**
 * The channel table from the channel ConfigMap (the built-in table while it is missing). Parsed once per
 * ConfigMap version; problems are logged once, and a revision whose channel entry is unusable holds its
 * version and says so (a typo must not move a whole channel).
 */
function channelTableReader(
  channelConfigMaps: Informer,
  config: Pick<OperatorConfig, 'namespace' | 'channelConfigMap'>,
  logger: Logger,
): () => ChannelTableParseResult {
  let channelState: { rv: string | undefined; parsed: ChannelTableParseResult } = {
    rv: undefined,
    parsed: { table: DEFAULT_CHANNEL_TABLE, problems: [], invalid: {} },
  };
  return () => {
    const cm = channelConfigMaps.get(`${config.namespace}/${config.channelConfigMap}`) as
      (KubeObject & { data?: Record<string, string> }) | undefined;
    const rv = cm?.metadata?.resourceVersion;
    if (rv === channelState.rv) return channelState.parsed;
    const parsed = cm
      ? parseChannelTable(cm.data)
      : { table: DEFAULT_CHANNEL_TABLE, problems: [], invalid: {} };
    for (const problem of parsed.problems) logger.warn({ configMap: config.channelConfigMap }, problem);
    channelState = { rv, parsed };
    return parsed;
  };
}
