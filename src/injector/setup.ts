// Every replica's admission side: the serving certificate (one CA + leaf in a Secret shared by every
// replica), and one HTTPS server that injects sidecars (/inject/<rev>) and answers the deletion-validation
// webhook for ControlPlaneRevisions. None of it depends on leadership, so a follower keeps admitting pods.
import type { Logger } from 'pino';

import type { OperatorConfig } from '../config.js';
import type { InjectorEndpoint } from '../controllers/common/webhooks.js';
import { KubeEventRecorder } from '../controllers/events.js';
import {
  ensureValidatingWebhookConfiguration,
  liveRevisionUsage,
  VALIDATING_WEBHOOK_CONFIGURATION_NAME,
  validationWebhookDrift,
  revisionDeletionValidator,
  type DeletionUsage,
} from '../controllers/revision/deletion.js';
import { guardObject } from '../controllers/guard.js';
import { usageWorld, type UsageTracker } from '../controllers/usage-tracker.js';
import type { Metrics } from '../observability/metrics.js';
import { kubeInformer, type Informer } from '../runtime/informer.js';
import type { KubeClient } from '../runtime/kube.js';
import { retryingAction } from '../runtime/retry.js';
import { DEFAULT_INJECTION_CACHE_LIMITS, InjectionCache } from './cache.js';
import { createInjectorServer, type InjectorServer } from './server.js';
import { RenderPool } from './render-pool.js';
import { InjectionService } from './service.js';
import { CertificateManager } from './tls/certificate-manager.js';
import { caBundleBase64, certificateValidity, type TlsMaterial } from './tls/certificates.js';
import { KubeSecretStore } from './tls/kube-secret-store.js';

interface SetupDeps {
  client: KubeClient;
  config: OperatorConfig;
  logger: Logger;
  metrics: Metrics;
}

export interface ServingCertificates {
  manager: CertificateManager;
  /** The material converged at start: what the injector server starts serving. */
  initial: TlsMaterial;
}

/** One CA + serving certificate in a Secret shared by every replica; rejects if the first pass fails. */
export async function startServingCertificates({
  client,
  config,
  logger,
  metrics,
}: SetupDeps): Promise<ServingCertificates> {
  const manager = new CertificateManager({
    store: new KubeSecretStore(client),
    namespace: config.namespace,
    secretName: config.tlsSecretName,
    serviceName: config.injectorServiceName,
    extraDnsNames: config.devWebhookRouting ? ['localhost'] : [],
    extraIpAddresses: config.devWebhookRouting ? ['127.0.0.1'] : [],
    checkIntervalMs: config.tlsCheckSeconds * 1000,
    ...(config.tlsCaOverlapSeconds > 0 ? { caOverlapMs: config.tlsCaOverlapSeconds * 1000 } : {}),
    watch: (onChange) => watchTlsSecret({ client, config, logger, metrics }, onChange),
    logger: logger.child({ component: 'certificates' }),
  });
  const initial = await manager.start();
  metrics.setInjectorCertificateNotAfter(certNotAfter(initial));
  return { manager, initial };
}

export interface InjectorSetupOptions extends SetupDeps {
  certificates: ServingCertificates;
  /** The shared informers the injection service resolves revisions, tags, node versions and ProxyConfigs from. */
  informers: { revisions: Informer; tags: Informer; nodes: Informer; proxyConfigs: Informer };
  /** The leader's usage tracker while this replica leads; undefined on a follower. */
  leaderUsage: () => UsageTracker | undefined;
  /**
   * The render threads' entry module; by default the compiled render-thread.js beside render-pool.js. Running
   * from TypeScript sources (the in-process tests) there is no such file, so they point at the build.
   */
  renderThreadModule?: URL;
}

export interface RunningInjector {
  port: number;
  /** The injector endpoint that webhook configurations point at. */
  endpoint: InjectorEndpoint;
  /** The CA bundle (base64 PEM) webhook configurations carry; follows rotations once followed. */
  caBundle(): string;
  /** Whether serving material is loaded (a readiness check). */
  certificatesLoaded(): boolean;
  /**
   * From now on, a rotated certificate is served at once (and exported as a metric); `onCaBundleChange`
   * runs when the rotation changed the CA bundle, which webhook configurations must then carry.
   */
  followCertificateRotation(onCaBundleChange: () => void): void;
  /**
   * Deletion protection: (re)applies ValidatingWebhookConfiguration meshrev-validation with the current CA bundle,
   * retrying with backoff (failures logged) until it is applied or `signal` aborts (leadership lost).
   */
  applyValidationWebhook(signal: AbortSignal): void;
  /**
   * Applies meshrev-validation whenever it is missing or a field meshrev sets differs (edited by hand, pruned by a
   * tool that does not know it, or left from an older CA), until `signal` aborts: the leader keeps deletion
   * protection in place. Found as desired when leadership starts, it costs no write.
   */
  guardValidationWebhook(signal: AbortSignal): void;
  /** Stops following rotations, stops the certificate checks and drains admissions. */
  stop(): Promise<void>;
}

/** Builds the injection service (with its verdict cache) and starts the HTTPS admission server. */
export async function startInjector(opts: InjectorSetupOptions): Promise<RunningInjector> {
  const { client, config, logger, metrics, certificates } = opts;
  const { revisions, tags, nodes, proxyConfigs } = opts.informers;
  let material: TlsMaterial = certificates.initial;
  let caBundle = caBundleBase64(material);

  const renderPool =
    config.injectorRenderThreads === 0
      ? undefined
      : new RenderPool({
          threads: config.injectorRenderThreads,
          offload: config.injectorRenderOffload,
          logger: logger.child({ component: 'injector' }),
          ...(opts.renderThreadModule === undefined ? {} : { entry: { module: opts.renderThreadModule } }),
        });
  if (renderPool) metrics.watchRenderPool(() => renderPool.stats());
  const injection = new InjectionService({
    revisions,
    tags,
    nodes,
    proxyConfigs,
    onInvalidProxyConfig: (resource, message) =>
      logger.warn(
        { component: 'injector', proxyConfig: resource },
        `ProxyConfig ${resource} is ignored: ${message}`,
      ),
    ...(renderPool === undefined ? {} : { renderer: renderPool }),
    cache:
      config.injectionCacheEntries === 0
        ? false
        : new InjectionCache({ ...DEFAULT_INJECTION_CACHE_LIMITS, maxEntries: config.injectionCacheEntries }),
  });
  metrics.watchInjectionCache(() => injection.cacheStats());
  const nodesChanged = injection.cacheNodeVersions();
  nodes.addHandlers({ onAdd: nodesChanged, onUpdate: nodesChanged, onDelete: nodesChanged });
  const proxyConfigsChanged = injection.cacheProxyConfigs();
  proxyConfigs.addHandlers({
    onAdd: proxyConfigsChanged,
    onUpdate: proxyConfigsChanged,
    onDelete: proxyConfigsChanged,
  });

  // --- deletion protection (src/controllers/revision/deletion.ts): every replica answers the webhook ---
  // The leader answers from its usage caches; a follower (or a leader whose caches are still syncing)
  // reads namespaces and pods from the API server.
  const validateRevisionDeletion = revisionDeletionValidator({
    usage: async (name): Promise<DeletionUsage | undefined> => {
      const usage = opts.leaderUsage()?.current();
      if (usage)
        return usage.revisions[name] ?? { namespaces: [], pods: 0, stalePods: 0, tags: [], reasons: [] };
      return liveRevisionUsage(client, name, usageWorld(revisions, tags), AbortSignal.timeout(4_000));
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
  let listening: { port: number };
  try {
    listening = await server.listen();
  } catch (err) {
    await renderPool?.close();
    throw err;
  }

  // Through a real Service the port is the Service's; with dev routing (ExternalName to localhost)
  // kube-apiserver dials the port in the webhook configuration directly, so it is ours.
  const endpoint: InjectorEndpoint = {
    serviceName: config.injectorServiceName,
    serviceNamespace: config.namespace,
    port: config.devWebhookRouting ? listening.port : config.injectorServicePort,
  };

  // One apply at a time, always with the CA bundle current when it runs; a failure (say kube-apiserver briefly
  // unavailable as this replica starts leading) is retried rather than leaving deletions unprotected until the
  // next restart or rotation.
  const validationWebhook = retryingAction(
    (signal) => ensureValidatingWebhookConfiguration(client, endpoint, caBundle, config.fieldManager, signal),
    {
      onError: (err, retryInMs) =>
        logger.error(
          { err, retryInMs },
          'could not apply ValidatingWebhookConfiguration meshrev-validation; retrying',
        ),
    },
  );

  let unfollow: (() => void) | undefined;
  return {
    port: listening.port,
    endpoint,
    caBundle: () => caBundle,
    certificatesLoaded: () => material !== undefined,
    followCertificateRotation: (onCaBundleChange) => {
      // `material` is what the server started with: the manager has been converging since, and a change it adopted
      // before this subscription is delivered now rather than lost.
      unfollow = certificates.manager.onChange((next) => {
        const leafChanged = next.certPem !== material.certPem || next.keyPem !== material.keyPem;
        material = next;
        metrics.setInjectorCertificateNotAfter(certNotAfter(next));
        // A CA staged or retired changes only the bundle; the served leaf stays.
        if (leafChanged) {
          try {
            server.reloadTls({ certPem: next.certPem, keyPem: next.keyPem });
          } catch (err) {
            logger.error({ err }, 'could not load the rotated serving certificate; keeping the previous one');
          }
        }
        const nextBundle = caBundleBase64(next);
        if (nextBundle !== caBundle) {
          caBundle = nextBundle;
          onCaBundleChange();
        }
      }, material);
    },
    applyValidationWebhook: (signal) => validationWebhook.request(signal),
    guardValidationWebhook: (signal) => {
      const resource = VALIDATING_WEBHOOK_CONFIGURATION_NAME;
      guardObject({
        informer: kubeInformer(
          { client, logger, metrics },
          resource,
          { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration' },
          { fieldSelector: `metadata.name=${resource}` },
        ),
        difference: (live) => validationWebhookDrift(live, endpoint, caBundle),
        apply: () => validationWebhook.request(signal),
        onDrift: (difference, atStart) => {
          if (atStart) logger.info({ difference }, `applying ${resource} (missing or out of date)`);
          else
            logger.warn({ difference }, `${resource} differs from what meshrev applies; applying it again`);
        },
        signal,
      });
    },
    stop: async () => {
      unfollow?.();
      certificates.manager.stop();
      await server.close(20_000);
      await renderPool?.close();
    },
  };
}

/**
 * Calls `onChange` whenever the TLS Secret is created, changed or deleted, by any replica or by hand (metadata
 * only: the certificate manager reads the Secret itself). Returns a function that stops watching.
 */
function watchTlsSecret(deps: SetupDeps, onChange: () => void): () => void {
  const { namespace, tlsSecretName } = deps.config;
  const informer = kubeInformer(
    deps,
    'injector-tls-secret',
    { apiVersion: 'v1', kind: 'Secret' },
    { namespace, fieldSelector: `metadata.name=${tlsSecretName}`, metadataOnly: true },
  );
  informer.addHandlers({ onAdd: onChange, onUpdate: onChange, onDelete: onChange });
  informer.start();
  return () => void informer.stop();
}

function certNotAfter(material: TlsMaterial): Date {
  return certificateValidity(material.certPem)?.notAfter ?? new Date(0);
}
