// Who uses each revision and tag, from the namespace and pod caches. computeUsage (pure) is one pass
// over every cached pod, so its result is memoised until a namespace, pod, revision or tag changes:
// a burst of reconciles after one change computes it once.
import type { Informer } from '../runtime/informer.js';
import type { KubeObject } from '../runtime/types.js';
import type { RevisionUsage } from './revision/status.js';
import type { TagUsage } from './tag/status.js';
import { computeUsage, injectedRevision, type Usage, type UsageWorldInput } from './usage/index.js';
import { INJECTION_LABEL, REVISION_LABEL, SIDECAR_INJECT_LABEL } from './common/labels.js';
import { nameClaim } from './claims.js';
import { NAMESPACE_NAME_LABEL, readInjectionWebhookSettings } from './common/webhooks.js';

const POD_SELECTOR_LABELS = [REVISION_LABEL, SIDECAR_INJECT_LABEL] as const;
// The name label too: the auto.* webhook (enableNamespacesByDefault) excludes system namespaces by it.
const NAMESPACE_SELECTOR_LABELS = [REVISION_LABEL, INJECTION_LABEL, NAMESPACE_NAME_LABEL] as const;

function pick(source: Record<string, string> | undefined, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of keys) {
    const value = source?.[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * What the pod cache keeps of a pod: identity, the two labels Istio's selectors read, and the revision
 * that injected it (from `istio.io/rev` or the `sidecar.istio.io/status` annotation). About 200 bytes
 * instead of a few kilobytes, which is what keeps 50,000 pods affordable.
 */
export function slimPod(pod: KubeObject): KubeObject {
  const meta = pod.metadata ?? {};
  const injected = injectedRevision(meta.annotations);
  return {
    metadata: {
      name: meta.name,
      namespace: meta.namespace,
      uid: meta.uid,
      resourceVersion: meta.resourceVersion,
      labels: pick(meta.labels, POD_SELECTOR_LABELS),
      annotations: injected === undefined ? {} : { [REVISION_LABEL]: injected },
    },
  };
}

/** What the namespace cache keeps: identity and the labels the webhooks' namespace selectors read. */
export function slimNamespace(ns: KubeObject): KubeObject {
  const meta = ns.metadata ?? {};
  return {
    metadata: {
      name: meta.name,
      uid: meta.uid,
      resourceVersion: meta.resourceVersion,
      labels: pick(meta.labels, NAMESPACE_SELECTOR_LABELS),
    },
  };
}

export interface UsageSources {
  namespaces: Informer;
  pods: Informer;
  revisions: Informer;
  tags: Informer;
}

function injectsUnlabelledNamespaces(revision: KubeObject): boolean {
  const spec = (revision as KubeObject & { spec?: { injection?: unknown } }).spec;
  return readInjectionWebhookSettings(spec?.injection).enableNamespacesByDefault === true;
}

/** The revisions and tags computeUsage needs, from their caches. */
export function usageWorld(
  revisions: Pick<Informer, 'keys' | 'list' | 'get'>,
  tags: Pick<Informer, 'list' | 'get'>,
): UsageWorldInput {
  return {
    revisions: revisions.keys(),
    namesHeldByTags: tags
      .list()
      .map((t) => t.metadata?.name ?? '')
      .filter((name) => nameClaim(name, revisions, tags) === 'tag' && revisions.get(name) !== undefined),
    autoInjectingRevisions: revisions
      .list()
      .filter(injectsUnlabelledNamespaces)
      .map((r) => r.metadata?.name ?? ''),
    tags: tags.list().map((t) => ({
      name: t.metadata?.name ?? '',
      revision: (t as KubeObject & { spec?: { revision?: string } }).spec?.revision ?? '',
    })),
  };
}

export class UsageTracker {
  private epoch = 0;
  private computedAt = -1;
  private cached: Usage | undefined;

  constructor(private readonly sources: UsageSources) {
    const bump = { onAdd: () => this.epoch++, onUpdate: () => this.epoch++, onDelete: () => this.epoch++ };
    for (const informer of Object.values(sources)) informer.addHandlers(bump);
  }

  /** Undefined until the namespace and pod caches are complete: InUse stays Unknown rather than False. */
  current(): Usage | undefined {
    const { namespaces, pods, revisions, tags } = this.sources;
    if (!namespaces.hasSynced() || !pods.hasSynced() || !revisions.hasSynced() || !tags.hasSynced())
      return undefined;
    if (this.cached && this.computedAt === this.epoch) return this.cached;
    const at = this.epoch;
    this.cached = computeUsage({
      namespaces: namespaces
        .list()
        .map((ns) => ({ name: ns.metadata?.name ?? '', labels: ns.metadata?.labels })),
      pods: pods.list().map((pod) => ({
        namespace: pod.metadata?.namespace ?? '',
        name: pod.metadata?.name ?? '',
        labels: pod.metadata?.labels,
        annotations: pod.metadata?.annotations,
      })),
      ...usageWorld(revisions, tags),
    });
    this.computedAt = at;
    return this.cached;
  }

  revisionUsage(revision: string): RevisionUsage | undefined {
    const usage = this.current();
    if (!usage) return undefined;
    const use = usage.revisions[revision];
    if (!use) return { namespaces: 0, pods: 0, stalePods: 0, tags: [] };
    return { namespaces: use.namespaces.length, pods: use.pods, stalePods: use.stalePods, tags: use.tags };
  }

  /** Human-readable reasons a revision is in use (for refusing its deletion). */
  revisionReasons(revision: string): string[] | undefined {
    const usage = this.current();
    return usage ? (usage.revisions[revision]?.reasons ?? []) : undefined;
  }

  tagUsage(tag: string): TagUsage | undefined {
    const usage = this.current();
    if (!usage) return undefined;
    const use = usage.tags[tag];
    return use ? { namespaces: use.namespaces.length, pods: use.pods } : { namespaces: 0, pods: 0 };
  }

  injectedRevisionOf(pod: KubeObject): string | undefined {
    return injectedRevision(pod.metadata?.annotations);
  }
}
