// The operator process: every replica serves the sidecar injector, /metrics, /healthz and /readyz;
// only the leader (a coordination.k8s.io Lease) runs the reconcilers. Stopping drains admissions,
// stops the controllers and releases the lease so a successor takes over at once.
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';

import type { OperatorConfig } from './config.js';
import { API_GROUP_VERSION, CONTROL_PLANE_REVISION_KIND, REVISION_TAG_KIND } from './crds/constants.js';
import {
  parseChannelTable,
  DEFAULT_CHANNEL_TABLE,
  type ChannelTable,
  type ChannelTableParseResult,
} from './controllers/common/versions.js';
import type { InjectorEndpoint } from './controllers/common/webhooks.js';
import { defaultTagReconciler } from './controllers/tag/default-tag.js';
import { KubeEventRecorder } from './controllers/events.js';
import { OwnedObjectCaches } from './controllers/owned.js';
import {
  deletionRelevantChange,
  ensureValidatingWebhookConfiguration,
  liveRevisionUsage,
  revisionDeletionValidator,
  withDeletionProtection,
  type DeletionUsage,
} from './controllers/revision/deletion.js';
import { revisionReconciler } from './controllers/revision/reconciler.js';
import { tagReconciler } from './controllers/tag/reconciler.js';
import { slimNamespace, slimPod, UsageTracker } from './controllers/usage-tracker.js';
import { DEFAULT_INJECTION_CACHE_LIMITS, InjectionCache } from './injector/cache.js';
import { createInjectorServer, type InjectorServer } from './injector/server.js';
import { InjectionService } from './injector/service.js';
import { CertificateManager } from './injector/tls/certificate-manager.js';
import {
  caBundleBase64,
  certificateValidity,
  type TlsMaterial,
  type TlsSecret,
} from './injector/tls/certificates.js';
import type { SecretStore } from './injector/tls/secret-store.js';
import {
  HealthChecks,
  informersSynced,
  startObservabilityServer,
  type ObservabilityServer,
} from './observability/http.js';
import { createLogger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { Controller, generationChanged } from './runtime/controller.js';
import { Informer, kubeListWatcher } from './runtime/informer.js';
import { KubeClient, type Impersonation, type KubeClientOptions } from './runtime/kube.js';
import { loadConnection } from './runtime/kubeconfig.js';
import { LeaderElector } from './runtime/leader.js';
import type { KubeObject } from './runtime/types.js';

export interface OperatorHandle {
  injectorPort: number;
  metricsPort: number;
  client: KubeClient;
  metrics: Metrics;
  isLeader(): boolean;
  /** Enqueues every revision and tag (what the periodic resync does); a no-op on a follower. */
  resyncNow(): void;
  /** Resolves when the operator stops by itself (lost leadership); the process should then exit. */
  done: Promise<void>;
  stop(): Promise<void>;
}

export interface OperatorOverrides {
  kubeConfig?: k8s.KubeConfig;
  logger?: Logger;
  /** Run as another identity, e.g. the operator's ServiceAccount, to prove its RBAC suffices. */
  impersonate?: Impersonation;
}

const REVISION_TYPE = { apiVersion: API_GROUP_VERSION, kind: CONTROL_PLANE_REVISION_KIND };
const TAG_TYPE = { apiVersion: API_GROUP_VERSION, kind: REVISION_TAG_KIND };

/**
 * The API client: from the light loader for in-cluster and certificate/token kubeconfigs (the common
 * case, and ~80 MiB less resident memory), else through client-node's KubeConfig, loaded only then.
 */
export async function createKubeClient(
  config: Pick<OperatorConfig, 'kubeconfig' | 'context'>,
  options: Omit<KubeClientOptions, 'server' | 'prepareRequest'>,
  kubeConfig?: k8s.KubeConfig,
): Promise<KubeClient> {
  if (!kubeConfig) {
    const light = loadConnection({ kubeconfig: config.kubeconfig, context: config.context });
    if (light.ok) return KubeClient.fromConnection(light.connection, options);
  }
  const { KubeConfig } = await import('@kubernetes/client-node');
  let kc = kubeConfig;
  if (!kc) {
    kc = new KubeConfig();
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
    if (config.context) kc.setCurrentContext(config.context);
  }
  return KubeClient.fromKubeConfig(kc, options);
}

export async function startOperator(
  config: OperatorConfig,
  overrides: OperatorOverrides = {},
): Promise<OperatorHandle> {
  const logger = overrides.logger ?? createLogger({ component: 'meshrev', level: config.logLevel });
  const metrics = new Metrics();
  const client = await createKubeClient(
    config,
    {
      onRequest: metrics.kubeRequest,
      userAgent: `meshrev/${config.podName}`,
      ...(overrides.impersonate ? { impersonate: overrides.impersonate } : {}),
    },
    overrides.kubeConfig,
  );
  const stopAll = new AbortController();

  if (config.devWebhookRouting) await routeInjectorServiceToLocalhost(client, config, logger);

  // --- TLS: one CA + serving certificate in a Secret shared by every replica ---------------------
  const certificates = new CertificateManager({
    store: new KubeSecretStore(client),
    namespace: config.namespace,
    secretName: config.tlsSecretName,
    serviceName: config.injectorServiceName,
    extraDnsNames: config.devWebhookRouting ? ['localhost'] : [],
    extraIpAddresses: config.devWebhookRouting ? ['127.0.0.1'] : [],
    checkIntervalMs: config.tlsCheckSeconds * 1000,
    logger: logger.child({ component: 'certificates' }),
  });
  let material: TlsMaterial = await certificates.start();
  let caBundle = caBundleBase64(material);
  metrics.setInjectorCertificateNotAfter(certNotAfter(material));

  // --- shared informers: every replica needs them to serve injections -----------------------------
  const informerOf = (resource: string, type: { apiVersion: string; kind: string }, opts = {}): Informer =>
    new Informer({
      resource,
      listWatcher: kubeListWatcher(client, type, opts),
      logger,
      onRestart: metrics.informerRestartHook(resource),
    });
  const revisions = informerOf('controlplanerevisions', REVISION_TYPE);
  const tags = informerOf('revisiontags', TAG_TYPE);
  const nodes = informerOf('nodes', { apiVersion: 'v1', kind: 'Node' });
  const shared = [revisions, tags, nodes];
  for (const informer of shared) informer.start();

  const injection = new InjectionService({
    revisions,
    tags,
    nodes,
    cache:
      config.injectionCacheEntries === 0
        ? false
        : new InjectionCache({ ...DEFAULT_INJECTION_CACHE_LIMITS, maxEntries: config.injectionCacheEntries }),
  });
  metrics.watchInjectionCache(() => injection.cacheStats());
  const nodesChanged = injection.cacheNodeVersions();
  nodes.addHandlers({ onAdd: nodesChanged, onUpdate: nodesChanged, onDelete: nodesChanged });

  // --- deletion protection (src/controllers/revision/deletion.ts): every replica answers the webhook ---
  // The leader answers from its usage caches; a follower (or a leader whose caches are still syncing)
  // reads namespaces and pods from the API server.
  const leaderUsage: { tracker?: UsageTracker } = {};
  const validateRevisionDeletion = revisionDeletionValidator({
    usage: async (name): Promise<DeletionUsage | undefined> => {
      const usage = leaderUsage.tracker?.current();
      if (usage)
        return usage.revisions[name] ?? { namespaces: [], pods: 0, stalePods: 0, tags: [], reasons: [] };
      return liveRevisionUsage(
        client,
        name,
        {
          revisions: revisions.keys(),
          tags: tags.list().map((t) => ({
            name: t.metadata?.name ?? '',
            revision: (t as KubeObject & { spec?: { revision?: string } }).spec?.revision ?? '',
          })),
        },
        AbortSignal.timeout(4_000),
      );
    },
    events: new KubeEventRecorder({ client, component: 'meshrev', instance: config.podName, logger }),
  });
  const server: InjectorServer = createInjectorServer({
    host: config.injectorHost,
    port: config.injectorPort,
    tls: { certPem: material.certPem, keyPem: material.keyPem },
    inject: injection.inject,
    resolveTarget: injection.resolveTarget,
    logger: logger.child({ component: 'injector' }),
    // deletion protection: DELETE of a ControlPlaneRevision (ValidatingWebhookConfiguration meshrev-validation)
    validate: (req) =>
      req.resource === 'controlplanerevisions' ? validateRevisionDeletion(req) : { allowed: true },
    hooks: {
      onValidation: (path, status, seconds) => metrics.webhookRequest(path, status, seconds),
      onAdmission: (outcome, _revision, seconds, status) => {
        metrics.webhookRequest('/inject', status, seconds);
        metrics.injection(
          outcome === 'injected' ? 'success' : outcome === 'skipped' ? 'skip' : 'failure',
          seconds,
        );
      },
    },
  });
  const listening = await server.listen();

  // --- the injector endpoint that webhook configurations point at ---------------------------------
  // Through a real Service the port is the Service's; with dev routing (ExternalName to localhost)
  // kube-apiserver dials the port in the webhook configuration directly, so it is ours.
  const injector: InjectorEndpoint = {
    serviceName: config.injectorServiceName,
    serviceNamespace: config.namespace,
    port: config.devWebhookRouting ? listening.port : config.injectorServicePort,
  };

  const readiness = new HealthChecks();
  readiness.add('informers', informersSynced(shared));
  readiness.add('certificates', () => ({ ok: material !== undefined }));
  const observability: ObservabilityServer = await startObservabilityServer({
    port: config.metricsPort,
    host: config.metricsHost,
    metrics,
    readiness,
    logger,
  });

  // --- leader-only: reconcilers and the informers only they need ----------------------------------
  let leaderControllers: { stop(): Promise<void>; enqueueAll(): void } | undefined;
  const onCertificateChange = certificates.onChange((next) => {
    material = next;
    metrics.setInjectorCertificateNotAfter(certNotAfter(next));
    try {
      server.reloadTls({ certPem: next.certPem, keyPem: next.keyPem });
    } catch (err) {
      logger.error({ err }, 'could not load the rotated serving certificate; keeping the previous one');
    }
    const nextBundle = caBundleBase64(next);
    if (nextBundle !== caBundle) {
      caBundle = nextBundle;
      leaderHooks.caChanged?.();
    }
  });
  const leaderHooks: { caChanged?: () => void } = {};

  const startLeading = async (signal: AbortSignal): Promise<void> => {
    logger.info('leading: starting controllers');
    const running = startControllers({
      client,
      config,
      logger,
      metrics,
      revisions,
      tags,
      injector,
      caBundle: () => caBundle,
      signal,
    });
    leaderControllers = running;
    leaderUsage.tracker = running.usage;
    // deletion protection: the leader (re)applies meshrev-validation at start and whenever the CA changes.
    const applyValidation = (): void => {
      ensureValidatingWebhookConfiguration(client, injector, caBundle, config.fieldManager).catch(
        (err: unknown) =>
          logger.error({ err }, 'could not apply ValidatingWebhookConfiguration meshrev-validation'),
      );
    };
    applyValidation();
    leaderHooks.caChanged = () => {
      running.enqueueAll();
      applyValidation();
    };
    signal.addEventListener(
      'abort',
      () => {
        leaderUsage.tracker = undefined;
        void running.stop();
      },
      { once: true },
    );
  };

  let elector: LeaderElector | undefined;
  let done: Promise<void>;
  if (config.leaderElect) {
    elector = new LeaderElector({
      store: client,
      namespace: config.namespace,
      name: config.leaseName,
      identity: config.podName,
      releaseOnCancel: true,
      logger: logger.child({ component: 'leader-election' }),
      onStartedLeading: startLeading,
      onStoppedLeading: () => {
        metrics.setLeader(false);
        logger.warn('stopped leading');
      },
      onNewLeader: (identity) => logger.info({ leader: identity }, 'leader observed'),
    });
    // A replica that lost its lease stops reconciling at once (the controllers' signal aborts) and
    // exits, so it restarts with fresh state instead of acting on a stale view.
    done = elector.run(stopAll.signal).then(() => {
      if (!stopAll.signal.aborted) logger.error('leadership lost; exiting');
    });
    void done.then(() => metrics.setLeader(elector?.isLeader() ?? false));
    const electorRef = elector;
    const leaderGauge = setInterval(() => metrics.setLeader(electorRef.isLeader()), 1000);
    leaderGauge.unref();
    stopAll.signal.addEventListener('abort', () => clearInterval(leaderGauge), { once: true });
  } else {
    metrics.setLeader(true);
    await startLeading(stopAll.signal);
    done = new Promise((resolve) =>
      stopAll.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
  }

  logger.info(
    { injectorPort: listening.port, metricsPort: observability.port, leaderElect: config.leaderElect },
    'meshrev operator started',
  );

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('stopping');
      stopAll.abort();
      await done.catch(() => undefined);
      await leaderControllers?.stop();
      onCertificateChange();
      certificates.stop();
      await server.close(20_000);
      for (const informer of shared) await informer.stop();
      await observability.close();
      client.close();
      logger.info('stopped');
    })();
    return stopping;
  };

  return {
    injectorPort: listening.port,
    metricsPort: observability.port,
    client,
    metrics,
    isLeader: () => (elector ? elector.isLeader() : true),
    resyncNow: () => leaderControllers?.enqueueAll(),
    done,
    stop,
  };
}

interface ControllerSetOptions {
  client: KubeClient;
  config: OperatorConfig;
  logger: Logger;
  metrics: Metrics;
  revisions: Informer;
  tags: Informer;
  injector: InjectorEndpoint;
  caBundle: () => string | undefined;
  signal: AbortSignal;
}

/** Starts the leader-only informers and controllers; returns how to stop them. */
function startControllers(opts: ControllerSetOptions): {
  stop(): Promise<void>;
  enqueueAll(): void;
  usage: UsageTracker;
} {
  const { client, config, logger, metrics, revisions, tags } = opts;
  const informerOf = (
    resource: string,
    type: { apiVersion: string; kind: string },
    extra = {},
    transform?: (obj: KubeObject) => KubeObject,
  ): Informer =>
    new Informer({
      resource,
      listWatcher: kubeListWatcher(client, type, extra),
      logger,
      onRestart: metrics.informerRestartHook(resource),
      ...(transform ? { transform } : {}),
    });
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

  // Parsed once per ConfigMap version; problems are logged once, and a revision whose channel entry is
  // unusable holds its version and says so (a typo must not move a whole channel).
  let channelState: { rv: string | undefined; parsed: ChannelTableParseResult } = {
    rv: undefined,
    parsed: { table: DEFAULT_CHANNEL_TABLE, problems: [], invalid: {} },
  };
  const channelTable = (): ChannelTableParseResult => {
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
 * For local runs against a cluster without kube-proxy: the injector Service becomes an ExternalName
 * to localhost, so kube-apiserver calls this process at https://localhost:<injector port>.
 */
async function routeInjectorServiceToLocalhost(
  client: KubeClient,
  config: OperatorConfig,
  logger: Logger,
): Promise<void> {
  // Only when missing: the operator's ClusterRole may read namespaces but not patch them.
  if (!(await client.getOptional({ apiVersion: 'v1', kind: 'Namespace', name: config.namespace }))) {
    await client.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: config.namespace } },
      { fieldManager: `${config.fieldManager}-dev`, force: true },
    );
  }
  await client.apply(
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: config.injectorServiceName,
        namespace: config.namespace,
        labels: { 'app.kubernetes.io/name': 'meshrev', 'meshrev.dev/dev-routing': 'true' },
      },
      spec: { type: 'ExternalName', externalName: 'localhost' },
    } as KubeObject,
    { fieldManager: `${config.fieldManager}-dev`, force: true },
  );
  logger.info(
    { service: `${config.namespace}/${config.injectorServiceName}`, port: config.injectorPort },
    'dev webhook routing: injector Service points at localhost',
  );
}

class KubeSecretStore implements SecretStore {
  constructor(private readonly client: KubeClient) {}

  async get(namespace: string, name: string): Promise<TlsSecret | undefined> {
    return this.client.getOptional<TlsSecret>({ apiVersion: 'v1', kind: 'Secret', namespace, name });
  }

  async create(secret: TlsSecret): Promise<TlsSecret> {
    return this.client.create({
      apiVersion: 'v1',
      kind: 'Secret',
      ...secret,
    } as KubeObject) as Promise<TlsSecret>;
  }

  async update(secret: TlsSecret): Promise<TlsSecret> {
    return this.client.update({
      apiVersion: 'v1',
      kind: 'Secret',
      ...secret,
    } as KubeObject) as Promise<TlsSecret>;
  }
}

function certNotAfter(material: TlsMaterial): Date {
  return certificateValidity(material.certPem)?.notAfter ?? new Date(0);
}
