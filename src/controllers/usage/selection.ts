/**
 * Which revision Istio's injector webhooks would pick for a namespace or a new pod, simulated from labels
 * the way the API server evaluates the webhooks' namespace and object selectors (see the selector YAML in
 * the Istio injection reference, §1.4–1.5). Pure: the world of revisions and tags is passed in.
 */
import { INJECTION_LABEL, REVISION_LABEL, SIDECAR_INJECT_LABEL } from '../common/labels.js';
import {
  AUTO_INJECTION_EXCLUDED_NAMESPACES,
  DEFAULT_SELECTOR_NAME,
  NAMESPACE_NAME_LABEL,
} from '../common/webhooks.js';

/** The tag (or, without one, the revision) that serves `istio-injection=enabled` and `sidecar.istio.io/inject=true`. */
export const DEFAULT_SELECTOR = DEFAULT_SELECTOR_NAME;

/** The annotation Istio's injector writes on a pod: the revision whose settings injected it. */
export const INJECTED_REVISION_ANNOTATION = 'istio.io/rev';
/** Istio's injection status annotation; a JSON object whose `revision` field names the injecting revision. */
export const SIDECAR_STATUS_ANNOTATION = 'sidecar.istio.io/status';

export type Labels = Readonly<Record<string, string>> | undefined;

/** The revisions and tags that exist, as lookups. */
export interface InjectionWorld {
  revisions: ReadonlySet<string>;
  /** tag name → target revision */
  tags: ReadonlyMap<string, string>;
  /**
   * Revisions whose spec sets `injection.enableNamespacesByDefault`: serving the default selectors, their webhook
   * configuration also injects pods in unlabelled namespaces (Istio's `auto.*` webhook).
   */
  autoInjecting: ReadonlySet<string>;
  /**
   * Names a tag holds although a revision has the same one: the older object keeps a contested name (claims.ts), so
   * only the tag's webhooks match it. Without this set a revision wins, as istioctl refuses such a tag.
   */
  heldByTags: ReadonlySet<string>;
}

export function injectionWorld(
  revisions: Iterable<string>,
  tags: Iterable<{ name: string; revision: string }>,
  autoInjecting: Iterable<string> = [],
  heldByTags: Iterable<string> = [],
): InjectionWorld {
  const tagMap = new Map<string, string>();
  for (const tag of tags) tagMap.set(tag.name, tag.revision);
  return {
    revisions: new Set(revisions),
    tags: tagMap,
    autoInjecting: new Set(autoInjecting),
    heldByTags: new Set(heldByTags),
  };
}

export type TargetKind = 'revision' | 'tag';

/** A selector value (an `istio.io/rev` label value, or `default`) resolved to the revision it reaches. */
export interface SelectedTarget {
  /** The revision or tag the label names. */
  target: string;
  targetKind?: TargetKind;
  /** The revision whose webhook injects; unset when no revision or tag of that name exists. */
  revision?: string;
}

/**
 * The revision or tag whose webhooks match `value`. A revision and a tag of the same name would both match, so only
 * the one holding the name renders webhooks (claims.ts): the revision, unless the world says the tag holds it.
 */
export function resolveSelectorValue(value: string, world: InjectionWorld): SelectedTarget {
  if (world.revisions.has(value) && !world.heldByTags.has(value)) {
    return { target: value, targetKind: 'revision', revision: value };
  }
  const tagged = world.tags.get(value);
  if (tagged !== undefined) return { target: value, targetKind: 'tag', revision: tagged };
  return { target: value };
}

/**
 * The legacy selectors are served by the webhooks of whatever holds the name `default`: the `default` tag, or a
 * revision of that name, which carries them like Istio's non-revisioned install.
 */
export function resolveDefault(world: InjectionWorld): SelectedTarget {
  return resolveSelectorValue(DEFAULT_SELECTOR, world);
}

/** `auto`: no injection label, but the default selectors' revision injects unlabelled namespaces. */
export type NamespaceSelection = 'istio-injection' | 'istio.io/rev' | 'auto' | 'none' | 'disabled';

export interface NamespaceResolution {
  via: NamespaceSelection;
  /** The label that decides, as `key=value`; empty when the namespace has no injection label. */
  label: string;
  /** The tag or revision the label names (`default` for istio-injection=enabled). */
  target?: string;
  targetKind?: TargetKind;
  /** The revision that injects new pods of this namespace; unset when none would. */
  revision?: string;
}

function withTarget(via: NamespaceSelection, label: string, selected: SelectedTarget): NamespaceResolution {
  return {
    via,
    label,
    target: selected.target,
    ...(selected.targetKind === undefined ? {} : { targetKind: selected.targetKind }),
    ...(selected.revision === undefined ? {} : { revision: selected.revision }),
  };
}

export function resolveNamespace(nsLabels: Labels, world: InjectionWorld): NamespaceResolution {
  const injection = nsLabels?.[INJECTION_LABEL];
  if (injection !== undefined) {
    const label = `${INJECTION_LABEL}=${injection}`;
    // Only the default webhooks select istio-injection, and only its value `enabled`; any other value
    // fails every webhook's `istio-injection DoesNotExist` term, so nothing is injected at all.
    if (injection !== 'enabled') return { via: 'disabled', label };
    return withTarget('istio-injection', label, resolveDefault(world));
  }
  const rev = nsLabels?.[REVISION_LABEL];
  if (rev !== undefined)
    return withTarget('istio.io/rev', `${REVISION_LABEL}=${rev}`, resolveSelectorValue(rev, world));
  const auto = autoInjectingDefault(nsLabels, world);
  if (auto !== undefined) return withTarget('auto', '', auto);
  return { via: 'none', label: '' };
}

/**
 * The default selectors' target when its revision injects unlabelled namespaces and this one is not a system
 * namespace. The `auto.*` webhook tests the name through the label kube-apiserver sets; `NotIn` also matches
 * a namespace without it, as when a pod is seen before its namespace.
 */
function autoInjectingDefault(nsLabels: Labels, world: InjectionWorld): SelectedTarget | undefined {
  if (world.autoInjecting.size === 0) return undefined;
  const name = nsLabels?.[NAMESPACE_NAME_LABEL];
  if (name !== undefined && AUTO_INJECTION_EXCLUDED_NAMESPACES.includes(name)) return undefined;
  const selected = resolveDefault(world);
  return selected.revision !== undefined && world.autoInjecting.has(selected.revision) ? selected : undefined;
}

/** The webhook (by Istio's name prefix) that would inject a new pod, or `none`. */
export type InjectingWebhook = 'namespace' | 'object' | 'auto' | 'rev.namespace' | 'rev.object' | 'none';

export interface PodResolution extends Partial<SelectedTarget> {
  webhook: InjectingWebhook;
}

const notInjected: PodResolution = { webhook: 'none' };

function podResolution(webhook: InjectingWebhook, selected: SelectedTarget): PodResolution {
  if (selected.revision === undefined) return notInjected;
  return { webhook, ...selected };
}

/**
 * Which revision's webhook would inject a NEW pod with these labels. Selectors see labels only: a pod
 * annotated `sidecar.istio.io/inject: "false"` still reaches the webhook (the server then skips it).
 */
export function resolvePod(podLabels: Labels, ns: NamespaceResolution, world: InjectionWorld): PodResolution {
  const podInject = podLabels?.[SIDECAR_INJECT_LABEL];
  if (podInject === 'false') return notInjected;
  switch (ns.via) {
    case 'disabled':
      return notInjected;
    case 'istio-injection':
    case 'istio.io/rev': {
      // The namespace label wins over the pod's istio.io/rev (istio/istio#37088).
      const selected = namespaceTarget(ns);
      if (selected === undefined) return notInjected;
      return podResolution(ns.via === 'istio-injection' ? 'namespace' : 'rev.namespace', selected);
    }
    case 'auto':
    case 'none': {
      const podRev = podLabels?.[REVISION_LABEL];
      if (podRev !== undefined) return podResolution('rev.object', resolveSelectorValue(podRev, world));
      if (podInject === 'true') return podResolution('object', resolveDefault(world));
      // auto.* wants neither pod label; any other sidecar.istio.io/inject value matches no webhook.
      const selected = ns.via === 'auto' && podInject === undefined ? namespaceTarget(ns) : undefined;
      return selected === undefined ? notInjected : podResolution('auto', selected);
    }
  }
}

/** What the namespace's resolution selects, when it selects a revision. */
function namespaceTarget(ns: NamespaceResolution): SelectedTarget | undefined {
  if (ns.revision === undefined || ns.target === undefined) return undefined;
  return {
    target: ns.target,
    revision: ns.revision,
    ...(ns.targetKind === undefined ? {} : { targetKind: ns.targetKind }),
  };
}

function statusRevision(status: string | undefined): string | undefined {
  if (status === undefined || status === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(status);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      const revision = (parsed as Record<string, unknown>).revision;
      if (typeof revision === 'string' && revision !== '') return revision;
    }
  } catch {
    // A malformed status annotation tells nothing about the revision.
  }
  return undefined;
}

/** The revision that injected a running pod, from the annotations Istio's injector writes; unset if not injected. */
export function injectedRevision(podAnnotations: Labels): string | undefined {
  const annotated = podAnnotations?.[INJECTED_REVISION_ANNOTATION];
  if (annotated !== undefined && annotated !== '') return annotated;
  return statusRevision(podAnnotations?.[SIDECAR_STATUS_ANNOTATION]);
}
