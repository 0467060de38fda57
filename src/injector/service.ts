// Glue between the admission server and the pure injection engine: resolves `/inject/<name>` (a
// revision, or a tag pointing at one) to that revision's settings, derived from its spec and cached
// per spec generation and resolved version, and feeds the engine the node kubelet versions for native-sidecar `auto`
// and the ProxyConfig resources that apply to each pod.
import { parseControlPlaneRevision } from '../crds/controlplanerevision.js';
import type { KubeObject } from '../runtime/types.js';
import type { InjectFn, InjectRequest, InjectResult, ResolveTargetFn } from './admission.js';
import {
  InjectionCache,
  injectedFromJson,
  reviewCacheKey,
  verdictFor,
  type InjectionCacheStats,
} from './cache.js';
import {
  ProxyConfigIndex,
  proxyConfigResourceFrom,
  type ChosenLayers,
  type ProxyConfigResource,
} from './engine/proxy-config-resources.js';
import type { InjectorSettings } from './engine/settings.js';
import { renderJob, type RenderedVerdict, type RenderJob } from './render-job.js';
import { injectorSettingsOf } from './revision-settings.js';
import { MAX_THREAD_REVIEW_CHARS, RenderJobTimedOut, type Renderer } from './render-pool.js';

export interface ObjectLookup {
  get(key: string): KubeObject | undefined;
  list(): KubeObject[];
}

export interface InjectionServiceDeps {
  revisions: ObjectLookup;
  tags: ObjectLookup;
  nodes: ObjectLookup;
  /** The version a revision resolved to (status.version, or spec.version). */
  versionOf?: (revision: KubeObject) => string | undefined;
  /** Memo of verdicts for identical pods (ReplicaSet replicas); `false` turns it off. Default: a new cache. */
  cache?: InjectionCache | false;
  /** Renders cache misses off the main thread (RenderPool); without it, or when it declines, they render here. */
  renderer?: Renderer;
  /** ProxyConfig resources (networking.istio.io), every namespace; without it none apply. */
  proxyConfigs?: ObjectLookup;
  /** Told once about each ProxyConfig (by uid and resourceVersion) the injector cannot use, and why. */
  onInvalidProxyConfig?: (key: string, message: string) => void;
}

/** `v1.34.2` → 34; undefined for anything unparsable. */
export function kubeletMinor(version: string | undefined): number | undefined {
  const m = /^v?1\.(\d+)/.exec(version ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * What a revision's settings are derived from: its spec (tracked by `metadata.generation`, which status writes do
 * not move) and the version it resolved to. Keying on resourceVersion instead would rebuild the settings, and
 * invalidate every cached verdict, on each status update, and InUse counts change throughout a rollout.
 * Objects without a generation (never the case for API objects) fall back to their resourceVersion. The uid is
 * part of it because a revision deleted and created again under the same name starts again at generation 1.
 */
function settingsStamp(obj: KubeObject, versionOf: InjectionServiceDeps['versionOf']): string {
  const raw = obj as KubeObject & { spec?: { version?: unknown }; status?: { version?: unknown } };
  const version = versionOf?.(obj) ?? (raw.spec?.version || raw.status?.version || '');
  const generation = obj.metadata?.generation;
  const spec = generation === undefined ? `rv:${obj.metadata?.resourceVersion ?? ''}` : `gen:${generation}`;
  return `${obj.metadata?.uid ?? ''}|${spec}|${String(version)}`;
}

/**
 * Whether the pod arrives already named. Names are unique in a namespace, so such a review comes round again only
 * if the same pod is deleted and created unchanged; the pods that reach the webhook identical in numbers (a
 * ReplicaSet's, a Job's) are named by kube-apiserver after admission and carry only `generateName` here, while
 * StatefulSet pods and bare pods are named. Keying a named pod would cost a hash of its review and a place in the
 * cache's window of keys seen once (pushing out a ReplicaSet's key) for a hit that practically never comes.
 */
function hasOwnName(pod: unknown): boolean {
  const name = (pod as { metadata?: { name?: unknown } }).metadata?.name;
  return typeof name === 'string' && name !== '';
}

/**
 * How long a render thread may hold one of a revision's pods before the pool treats it as stuck (RenderPool's
 * watchdog): half the webhook timeout kube-apiserver applies to the revision's webhook (its default, 10 s, when the
 * spec sets none). The other half is for the request's queue, its connection and kube-apiserver itself, so the
 * stuck pod gets meshrev's refusal, and the pods queued behind it their verdicts, before kube-apiserver gives up.
 */
function renderTimeoutMs(webhookTimeoutSeconds: number | undefined): number {
  return (webhookTimeoutSeconds ?? 10) * 500;
}

interface DerivedSettings {
  stamp: string;
  settings: InjectorSettings;
  renderTimeoutMs: number;
}

export class InjectionService {
  private readonly settingsCache = new Map<string, DerivedSettings>();
  private nodeCacheEnabled = false;
  private nodeMinors: { value: number[] | undefined } | undefined;
  private readonly cache: InjectionCache | undefined;
  private proxyConfigCacheEnabled = false;
  /** By revision and root namespace; dropped whenever a ProxyConfig changes (see cacheProxyConfigs). */
  private readonly proxyConfigIndexes = new Map<string, ProxyConfigIndex>();
  private readonly reportedInvalid = new Set<string>();

  constructor(private readonly deps: InjectionServiceDeps) {
    this.cache = deps.cache === false ? undefined : (deps.cache ?? new InjectionCache());
  }

  cacheStats(): InjectionCacheStats | undefined {
    return this.cache?.stats();
  }

  readonly resolveTarget: ResolveTargetFn = (name) => {
    if (this.deps.revisions.get(name)) return { revision: name };
    const tag = this.deps.tags.get(name) as (KubeObject & { spec?: { revision?: string } }) | undefined;
    const target = tag?.spec?.revision;
    if (target && this.deps.revisions.get(target)) return { revision: target };
    return undefined;
  };

  /** Settings of a revision, or an error message naming what is wrong with its spec. */
  settingsFor(revision: string): InjectorSettings | string {
    const derived = this.derivedSettings(revision);
    return typeof derived === 'string' ? derived : derived.settings;
  }

  private derivedSettings(revision: string): DerivedSettings | string {
    const obj = this.deps.revisions.get(revision);
    if (!obj) return `revision "${revision}" does not exist`;
    const stamp = settingsStamp(obj, this.deps.versionOf);
    const cached = this.settingsCache.get(revision);
    if (cached && cached.stamp === stamp) return cached;
    try {
      const parsed = parseControlPlaneRevision(obj);
      if (!parsed.ok) return `revision "${revision}" has an invalid spec: ${parsed.error}`;
      const cpr = parsed.value;
      // A pinned version is the intent; a channel revision injects the version its reconcile resolved.
      // Until then the pod is refused (and retried by its controller) rather than given a guessed image.
      const version = this.deps.versionOf?.(obj) ?? (cpr.spec.version || cpr.status?.version || undefined);
      if (version === undefined) {
        return `revision "${revision}" follows channel "${cpr.spec.channel}" and has not resolved a version yet; retry shortly`;
      }
      const derived: DerivedSettings = {
        stamp,
        settings: injectorSettingsOf(cpr, version),
        renderTimeoutMs: renderTimeoutMs(cpr.spec.injection.timeoutSeconds),
      };
      this.settingsCache.set(revision, derived);
      return derived;
    } catch (err) {
      return `revision "${revision}" has settings the injector cannot use: ${err instanceof Error ? err.message : String(err)}`;
    }
  }

  /**
   * From now on node versions are computed once and kept until the returned function is called (the
   * operator calls it from the node informer), instead of a pass over every node on each admission.
   */
  cacheNodeVersions(): () => void {
    this.nodeCacheEnabled = true;
    return () => {
      this.nodeMinors = undefined;
    };
  }

  /**
   * From now on a revision's ProxyConfig index is built once and kept until the returned function is called (the
   * operator calls it from the ProxyConfig informer), instead of once per admission.
   */
  cacheProxyConfigs(): () => void {
    this.proxyConfigCacheEnabled = true;
    return () => this.proxyConfigIndexes.clear();
  }

  /**
   * The ProxyConfig resources that apply to a pod of `revision`: those without an `istio.io/rev` label and those
   * labelled with the revision (istiod's LabelsInRevision), chosen as istiod does (ProxyConfigIndex).
   */
  proxyConfigLayers(
    revision: string,
    settings: InjectorSettings,
    namespace: string,
    labels: Readonly<Record<string, string>>,
  ): ChosenLayers | undefined {
    const source = this.deps.proxyConfigs;
    if (source === undefined) return undefined;
    const rootNamespace = settings.mesh.rootNamespace ?? settings.istioNamespace;
    const indexKey = `${revision}\n${rootNamespace}`;
    let index = this.proxyConfigIndexes.get(indexKey);
    if (index === undefined) {
      const resources: ProxyConfigResource[] = [];
      for (const obj of source.list()) {
        const rev = obj.metadata?.labels?.['istio.io/rev'];
        if (rev !== undefined && rev !== revision) continue;
        const parsed = proxyConfigResourceFrom(obj);
        if (parsed.ok) resources.push(parsed.resource);
        else this.reportInvalid(obj, parsed.message);
      }
      index = new ProxyConfigIndex(resources, rootNamespace);
      if (this.proxyConfigCacheEnabled) this.proxyConfigIndexes.set(indexKey, index);
    }
    return index.layersFor(namespace, labels);
  }

  private reportInvalid(obj: KubeObject, message: string): void {
    const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    const seen = `${obj.metadata?.uid ?? key}@${obj.metadata?.resourceVersion ?? ''}`;
    if (this.reportedInvalid.has(seen)) return;
    if (this.reportedInvalid.size >= 10_000) this.reportedInvalid.clear();
    this.reportedInvalid.add(seen);
    this.deps.onInvalidProxyConfig?.(key, message);
  }

  nodeKubeletMinors(): number[] | undefined {
    if (this.nodeCacheEnabled && this.nodeMinors) return this.nodeMinors.value;
    const value = this.computeNodeKubeletMinors();
    if (this.nodeCacheEnabled) this.nodeMinors = { value };
    return value;
  }

  private computeNodeKubeletMinors(): number[] | undefined {
    const nodes = this.deps.nodes.list();
    if (nodes.length === 0) return undefined;
    const minors: number[] = [];
    for (const node of nodes) {
      const minor = kubeletMinor(
        (node as { status?: { nodeInfo?: { kubeletVersion?: string } } }).status?.nodeInfo?.kubeletVersion,
      );
      if (minor !== undefined) minors.push(minor);
    }
    return minors;
  }

  readonly inject: InjectFn = (req) => {
    const derived = this.derivedSettings(req.revision);
    if (typeof derived === 'string') return { kind: 'rejected', message: derived };
    const { settings } = derived;
    const pod = req.pod;
    const nodeName = (pod as { spec?: { nodeName?: string } }).spec?.nodeName;
    const podNode = nodeName ? this.deps.nodes.get(nodeName) : undefined;
    const podNodeMinor = kubeletMinor(
      (podNode as { status?: { nodeInfo?: { kubeletVersion?: string } } } | undefined)?.status?.nodeInfo
        ?.kubeletVersion,
    );
    const nodeMinors = this.nodeKubeletMinors();
    const podMeta = (pod as { metadata?: { namespace?: string; labels?: Record<string, string> } }).metadata;
    const proxyConfigs = this.proxyConfigLayers(
      req.revision,
      settings,
      podMeta?.namespace || req.namespace,
      podMeta?.labels ?? {},
    );
    const lookup = this.cacheKey(req, derived, nodeMinors, podNodeMinor, proxyConfigs);
    const cached = lookup === undefined ? undefined : this.cache?.get(lookup.key);
    if (cached !== undefined) return verdictFor(cached, lookup?.token);

    const job: RenderJob = {
      input: { pod },
      namespace: req.namespace,
      pathParams: req.pathParams,
      ...(nodeMinors === undefined ? {} : { nodeKubeletMinorVersions: nodeMinors }),
      ...(podNodeMinor === undefined ? {} : { podNodeKubeletMinor: podNodeMinor }),
      ...(proxyConfigs === undefined ? {} : { proxyConfigLayers: proxyConfigs.layers }),
    };
    // A render thread is handed the review's text (cheaper to send than the pod) and decodes the pod from it. A
    // large review stays here: parsing it twice costs more than the thread saves (in the bench, 2,000-env and 1 MiB
    // pods fell from 83% and 97% of echo's throughput to 68% and 69% with them sent), and it bounds what a thread
    // holds.
    const offThread =
      req.review === undefined || req.review.text.length > MAX_THREAD_REVIEW_CHARS
        ? undefined
        : this.deps.renderer?.render(
            req.revision,
            settings,
            { ...job, input: { reviewText: req.review.text } },
            derived.renderTimeoutMs,
          );
    if (offThread === undefined) return this.settle(renderJob(job, settings), lookup);
    // Whatever keeps a thread from answering (a failure, a thread that exited), this thread renders the pod: an
    // engine error then surfaces here as it would have without threads. The exception is a pod the engine got stuck
    // on (the pool's watchdog gave up on it): rendering it here would stall every admission, so it is refused.
    return offThread.then(
      (verdict) => this.settle(verdict, lookup),
      (error: unknown) => {
        if (error instanceof RenderJobTimedOut) throw error;
        return this.settle(renderJob(job, settings), lookup);
      },
    );
  };

  /** The reply's verdict, offered to the verdict cache when the pod was keyed. */
  private settle(
    verdict: RenderedVerdict,
    lookup: { key: string; token: string | undefined } | undefined,
  ): InjectResult {
    let result: InjectResult;
    if (verdict.kind === 'injected') {
      // One object for the reply and the cache: the patch is kept as its serialised text only, encoded once.
      const injected = injectedFromJson(verdict.patchJson);
      injected.patchBase64 = Buffer.from(verdict.patchBase64, 'latin1');
      result = injected;
    } else {
      result = verdict;
    }
    if (lookup !== undefined) this.cache?.offer(lookup.key, () => ({ result, token: lookup.token }));
    return result;
  }

  /**
   * Everything the engine's answer depends on, or undefined when the pod is not cached: the revision's settings
   * version, node kubelet versions, path parameters, what the ProxyConfig resources that apply set, and the review
   * the pod came in (namespace and pod included) up to its request uid, managedFields and token volume name (see
   * reviewCacheKey).
   */
  private cacheKey(
    req: InjectRequest,
    derived: DerivedSettings,
    nodeMinors: number[] | undefined,
    podNodeMinor: number | undefined,
    proxyConfigs: ChosenLayers | undefined,
  ): { key: string; token: string | undefined } | undefined {
    if (this.cache === undefined || req.review === undefined || hasOwnName(req.pod)) return undefined;
    if (!this.cache.acceptsReview(req.review.text.length)) return undefined;
    const review = reviewCacheKey(
      req.review.text,
      req.review.uid,
      req.pod,
      Object.keys(derived.settings.customTemplates).length === 0,
    );
    if (review === undefined) return undefined;
    // The stamp the settings were derived from (spec generation and resolved version) names their version.
    const nodes = nodeMinors === undefined ? '-' : nodeMinors.join(',');
    const key =
      `${req.revision}\n${derived.stamp}\n${nodes}\n${podNodeMinor ?? '-'}\n${req.namespace}\n` +
      `${JSON.stringify(req.pathParams)}\n${proxyConfigs?.key ?? '-'}\n` +
      review.digest;
    return { key, token: review.token };
  }
}
