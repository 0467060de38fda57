// The operator process: every replica serves the sidecar injector, /metrics, /healthz and /readyz;
// only the leader (a coordination.k8s.io Lease) runs the reconcilers. Stopping drains admissions,
// stops the controllers and releases the lease so a successor takes over at once.
//
// This file is the start-up and shutdown order; the parts live next to what they wire:
// src/injector/setup.ts (certificates, injection service, admission server, validation webhook),
// src/controllers/setup.ts (the leader-only controller set), src/injector/dev-routing.ts (`make run`).
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';

import type { OperatorConfig } from './config.js';
import { API_GROUP_VERSION, CONTROL_PLANE_REVISION_KIND, REVISION_TAG_KIND } from './crds/constants.js';
import { startControllers, type RunningControllers } from './controllers/setup.js';
import type { UsageTracker } from './controllers/usage-tracker.js';
import { routeInjectorServiceToLocalhost } from './injector/dev-routing.js';
import { startInjector, startServingCertificates } from './injector/setup.js';
import { HealthChecks, informersSynced, startObservabilityServer } from './observability/http.js';
import { createLogger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { Informer, kubeInformer, kubeListWatcher, optionalResource } from './runtime/informer.js';
import {
  KubeClient,
  type Impersonation,
  type KubeClientOptions,
  type RequestRecord,
} from './runtime/kube.js';
import { loadConnection } from './runtime/kubeconfig.js';
import { LeaderElector } from './runtime/leader.js';

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
  /** Told of every finished Kubernetes API request from the first on (tests count writes to one object). */
  onKubeRequest?: (record: RequestRecord) => void;
  /** The injector's render thread module, for a process running from TypeScript sources (see startInjector). */
  renderThreadModule?: URL;
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
      onRequest: overrides.onKubeRequest
        ? (record) => {
            metrics.kubeRequest(record);
            overrides.onKubeRequest?.(record);
          }
        : metrics.kubeRequest,
      userAgent: `meshrev/${config.podName}`,
      ...(overrides.impersonate ? { impersonate: overrides.impersonate } : {}),
    },
    overrides.kubeConfig,
  );
  const stopAll = new AbortController();
  const deps = { client, config, logger, metrics };

  if (config.devWebhookRouting) await routeInjectorServiceToLocalhost(client, config, logger);

  // --- every replica: certificates, shared informers, the admission server, health and metrics -------
  const certificates = await startServingCertificates(deps);
  const shared = startSharedInformers(deps);
  const leaderUsage: { tracker?: UsageTracker } = {};
  const injector = await startInjector({
    ...deps,
    certificates,
    informers: shared,
    leaderUsage: () => leaderUsage.tracker,
    ...(overrides.renderThreadModule === undefined
      ? {}
      : { renderThreadModule: overrides.renderThreadModule }),
  });
  const readiness = new HealthChecks();
  readiness.add('informers', informersSynced(shared.all));
  readiness.add('certificates', () => ({ ok: injector.certificatesLoaded() }));
  const observability = await startObservabilityServer({
    port: config.metricsPort,
    host: config.metricsHost,
    metrics,
    readiness,
    logger,
  });

  // --- leader-only: reconcilers and the informers only they need ----------------------------------
  let leaderControllers: RunningControllers | undefined;
  const leaderHooks: { caChanged?: () => void } = {};
  injector.followCertificateRotation(() => leaderHooks.caChanged?.());

  const startLeading = async (signal: AbortSignal): Promise<LeadingWork> => {
    logger.info('leading: starting controllers');
    const running = startControllers({
      ...deps,
      revisions: shared.revisions,
      tags: shared.tags,
      injector: injector.endpoint,
      caBundle: injector.caBundle,
      signal,
    });
    leaderControllers = running;
    leaderUsage.tracker = running.usage;
    // deletion protection: the leader applies meshrev-validation when it finds it missing or different (at start
    // and whenever it is deleted or edited) and whenever the CA changes, retrying until it is applied or
    // leadership ends.
    injector.guardValidationWebhook(signal);
    leaderHooks.caChanged = () => {
      running.enqueueAll();
      injector.applyValidationWebhook(signal);
    };
    const stopped = new Promise<void>((resolve) => {
      signal.addEventListener(
        'abort',
        () => {
          leaderUsage.tracker = undefined;
          resolve(running.stop());
        },
        { once: true },
      );
    });
    return { stopped };
  };
  const leadership = await lead({ ...deps, startLeading, signal: stopAll.signal });

  logger.info(
    { injectorPort: injector.port, metricsPort: observability.port, leaderElect: config.leaderElect },
    'meshrev operator started',
  );

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('stopping');
      stopAll.abort();
      await leadership.done.catch(() => undefined);
      await leaderControllers?.stop();
      await injector.stop();
      for (const informer of shared.all) await informer.stop();
      await observability.close();
      client.close();
      logger.info('stopped');
    })();
    return stopping;
  };

  return {
    injectorPort: injector.port,
    metricsPort: observability.port,
    client,
    metrics,
    isLeader: leadership.isLeader,
    resyncNow: () => leaderControllers?.enqueueAll(),
    done: leadership.done,
    stop,
  };
}

const PROXY_CONFIG_TYPE = { apiVersion: 'networking.istio.io/v1beta1', kind: 'ProxyConfig' };

/** What leading started: `stopped` settles once the controllers have stopped after leadership ended. */
interface LeadingWork {
  stopped: Promise<void>;
}

interface OperatorDeps {
  client: KubeClient;
  config: OperatorConfig;
  logger: Logger;
  metrics: Metrics;
}

interface SharedInformers {
  revisions: Informer;
  tags: Informer;
  nodes: Informer;
  /** Istio's ProxyConfig resources; empty while Istio's CRDs are not installed. */
  proxyConfigs: Informer;
  /** In start (and stop) order. */
  all: Informer[];
}

/** Every replica needs these to serve injections; the leader's controllers read them too. */
function startSharedInformers(deps: OperatorDeps): SharedInformers {
  const revisions = kubeInformer(deps, 'controlplanerevisions', REVISION_TYPE);
  const tags = kubeInformer(deps, 'revisiontags', TAG_TYPE);
  const nodes = kubeInformer(deps, 'nodes', { apiVersion: 'v1', kind: 'Node' });
  const proxyConfigs = new Informer({
    resource: 'proxyconfigs',
    listWatcher: optionalResource(kubeListWatcher(deps.client, PROXY_CONFIG_TYPE)),
    logger: deps.logger,
    onRestart: deps.metrics.informerRestartHook('proxyconfigs'),
  });
  const all = [revisions, tags, nodes, proxyConfigs];
  for (const informer of all) informer.start();
  return { revisions, tags, nodes, proxyConfigs, all };
}

interface Leadership {
  isLeader(): boolean;
  /** Resolves when the operator stops by itself (lost leadership), or once it is stopped. */
  done: Promise<void>;
}

/**
 * Runs `startLeading` while this replica holds the Lease, or at once without leader election, and keeps
 * the leader gauge current.
 */
async function lead({
  client,
  config,
  logger,
  metrics,
  startLeading,
  signal,
}: OperatorDeps & {
  startLeading: (signal: AbortSignal) => Promise<LeadingWork>;
  signal: AbortSignal;
}): Promise<Leadership> {
  if (!config.leaderElect) {
    metrics.setLeader(true);
    await startLeading(signal);
    return {
      isLeader: () => true,
      done: new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })),
    };
  }
  const elector = new LeaderElector({
    store: client,
    namespace: config.namespace,
    name: config.leaseName,
    identity: config.podName,
    releaseOnCancel: true,
    logger: logger.child({ component: 'leader-election' }),
    // The elector releases the Lease once this settles: only after the controllers have stopped, so a successor
    // never leads while this replica's writes are still in flight.
    onStartedLeading: async (leading) => (await startLeading(leading)).stopped,
    onStoppedLeading: () => {
      metrics.setLeader(false);
      logger.warn('stopped leading');
    },
    onNewLeader: (identity) => logger.info({ leader: identity }, 'leader observed'),
  });
  // A replica that lost its lease stops reconciling at once (the controllers' signal aborts) and
  // exits, so it restarts with fresh state instead of acting on a stale view.
  const done = elector.run(signal).then(() => {
    if (!signal.aborted) logger.error('leadership lost; exiting');
  });
  void done.then(() => metrics.setLeader(elector.isLeader()));
  const leaderGauge = setInterval(() => metrics.setLeader(elector.isLeader()), 1000);
  leaderGauge.unref();
  signal.addEventListener('abort', () => clearInterval(leaderGauge), { once: true });
  return { isLeader: () => elector.isLeader(), done };
}
