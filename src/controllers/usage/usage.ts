/**
 * What uses each revision and tag: tags pointing at it, namespaces selecting it, pods injected by it, and
 * stale pods (injected by a revision other than the one a new pod of theirs would get, so they need a
 * restart). One pass over namespaces and one over pods, with map lookups only, so a large cluster
 * (thousands of namespaces, tens of thousands of pods) costs linear time.
 */
import {
  injectedRevision,
  injectionWorld,
  type Labels,
  type NamespaceResolution,
  type NamespaceSelection,
  resolveNamespace,
  resolvePod,
  type TargetKind,
} from './selection.js';

export interface NamespaceInput {
  name: string;
  labels?: Labels;
}

/** Only pods that still run are passed in: completed and failed pods never keep a revision alive. */
export interface PodInput {
  namespace: string;
  name: string;
  labels?: Labels;
  annotations?: Labels;
}

export interface UsageInput {
  namespaces: readonly NamespaceInput[];
  pods: readonly PodInput[];
  /** Names of the ControlPlaneRevisions that exist. */
  revisions: readonly string[];
  /** Those whose spec sets injection.enableNamespacesByDefault (see InjectionWorld.autoInjecting). */
  autoInjectingRevisions?: readonly string[];
  /** Names an older tag holds against a revision of the same name (see InjectionWorld.heldByTags). */
  namesHeldByTags?: readonly string[];
  tags: readonly { name: string; revision: string }[];
}

/** The part of the input that names the revisions and tags, from their caches or a live read. */
export type UsageWorldInput = Pick<
  UsageInput,
  'revisions' | 'autoInjectingRevisions' | 'namesHeldByTags' | 'tags'
>;

export interface RevisionUse {
  /** Namespaces whose labels select this revision, directly or through a tag (sorted). */
  namespaces: string[];
  /** Tags pointing at this revision (sorted). */
  tags: string[];
  /** Running pods injected by this revision. */
  pods: number;
  /** Of those, pods whose namespace (or own labels) now select another revision: they need a restart. */
  stalePods: number;
  inUse: boolean;
  /** Why it is in use, for people; namespaces beyond the first few are summarised. */
  reasons: string[];
}

export interface TagUse {
  revision: string;
  /** Namespaces whose labels select this tag (sorted). */
  namespaces: string[];
  /** Running pods whose labels route new pods like them through this tag. */
  pods: number;
  inUse: boolean;
}

export interface NamespaceUse {
  name: string;
  via: NamespaceSelection;
  /** The deciding label as `key=value`, or empty. */
  label: string;
  target?: string;
  targetKind?: TargetKind;
  /** The revision new pods get; unset when none would be injected. */
  resolvedRevision?: string;
  /** Running pods in the namespace. */
  pods: number;
  /** Running pods per injecting revision (including revisions meshrev does not manage). */
  podsByRevision: Record<string, number>;
  /** Running pods without a sidecar. */
  uninjectedPods: number;
  stalePods: number;
}

export interface Usage {
  revisions: Record<string, RevisionUse>;
  tags: Record<string, TagUse>;
  /** Namespaces with an injection label or injected pods, sorted by name; the rest have nothing to report. */
  namespaces: NamespaceUse[];
  /** Running pods injected by revisions that are not ControlPlaneRevisions (e.g. an older Istio install). */
  unmanagedRevisions: Record<string, number>;
}

/** How many namespaces a revision's reasons name one by one. */
export const MAX_NAMESPACE_REASONS = 10;

interface NamespaceTally {
  name: string;
  resolution: NamespaceResolution;
  pods: number;
  uninjected: number;
  stale: number;
  byRevision: Map<string, number>;
}

interface RevisionTally {
  namespaces: string[];
  tags: string[];
  pods: number;
  stale: number;
}

function byKey([a]: [string, unknown], [b]: [string, unknown]): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function hasNamespaceLabel(resolution: NamespaceResolution): boolean {
  return resolution.via !== 'none';
}

function selectsVia(resolution: NamespaceResolution): string {
  const defaultKind = resolution.targetKind === 'revision' ? 'default revision' : 'default tag';
  if (resolution.via === 'istio-injection') return `${resolution.label} (${defaultKind})`;
  if (resolution.via === 'auto') return `no injection label (${defaultKind} with enableNamespacesByDefault)`;
  return resolution.targetKind === 'tag' ? `${resolution.label} (tag)` : resolution.label;
}

function revisionReasons(tally: RevisionTally, namespaces: ReadonlyMap<string, NamespaceTally>): string[] {
  const reasons = tally.tags.map((tag) => `tag "${tag}" points at it`);
  for (const name of tally.namespaces.slice(0, MAX_NAMESPACE_REASONS)) {
    const resolution = namespaces.get(name)?.resolution;
    if (resolution !== undefined)
      reasons.push(`namespace "${name}" selects it via ${selectsVia(resolution)}`);
  }
  const more = tally.namespaces.length - MAX_NAMESPACE_REASONS;
  if (more > 0) reasons.push(`${plural(more, 'more namespace')} select it`);
  if (tally.pods > 0) reasons.push(`${plural(tally.pods, 'pod')} injected by it`);
  if (tally.stale > 0) {
    reasons.push(
      `${tally.stale} of ${tally.stale === 1 ? 'them runs' : 'them run'} where another revision is now selected (restart to move)`,
    );
  }
  return reasons;
}

export function computeUsage(input: UsageInput): Usage {
  const world = injectionWorld(
    input.revisions,
    input.tags,
    input.autoInjectingRevisions,
    input.namesHeldByTags,
  );
  const revisionTallies = new Map<string, RevisionTally>();
  for (const revision of [...world.revisions].sort()) {
    revisionTallies.set(revision, { namespaces: [], tags: [], pods: 0, stale: 0 });
  }
  const tagTallies = new Map<string, { revision: string; namespaces: string[]; pods: number }>();
  for (const [tag, revision] of [...world.tags].sort(byKey)) {
    tagTallies.set(tag, { revision, namespaces: [], pods: 0 });
    revisionTallies.get(revision)?.tags.push(tag);
  }

  const namespaces = new Map<string, NamespaceTally>();
  const tallyFor = (name: string, labels: Labels): NamespaceTally => {
    const tally: NamespaceTally = {
      name,
      resolution: resolveNamespace(labels, world),
      pods: 0,
      uninjected: 0,
      stale: 0,
      byRevision: new Map(),
    };
    namespaces.set(name, tally);
    return tally;
  };
  for (const ns of input.namespaces) tallyFor(ns.name, ns.labels);

  const unmanaged = new Map<string, number>();
  for (const pod of input.pods) {
    // A pod can be seen before its namespace (two watches); an unseen namespace has no labels yet.
    const ns = namespaces.get(pod.namespace) ?? tallyFor(pod.namespace, undefined);
    ns.pods += 1;
    const selected = resolvePod(pod.labels, ns.resolution, world);
    if (selected.targetKind === 'tag' && selected.target !== undefined) {
      const tag = tagTallies.get(selected.target);
      if (tag !== undefined) tag.pods += 1;
    }
    const injected = injectedRevision(pod.annotations);
    if (injected === undefined) {
      ns.uninjected += 1;
      continue;
    }
    increment(ns.byRevision, injected);
    const stale = selected.revision !== undefined && selected.revision !== injected;
    if (stale) ns.stale += 1;
    const revision = revisionTallies.get(injected);
    if (revision === undefined) {
      increment(unmanaged, injected);
      continue;
    }
    revision.pods += 1;
    if (stale) revision.stale += 1;
  }

  const namespaceNames = [...namespaces.keys()].sort();
  const namespaceUses: NamespaceUse[] = [];
  for (const name of namespaceNames) {
    const ns = namespaces.get(name);
    if (ns === undefined) continue;
    const { resolution } = ns;
    if (resolution.revision !== undefined) revisionTallies.get(resolution.revision)?.namespaces.push(name);
    if (resolution.targetKind === 'tag' && resolution.target !== undefined) {
      tagTallies.get(resolution.target)?.namespaces.push(name);
    }
    if (!hasNamespaceLabel(resolution) && ns.byRevision.size === 0) continue;
    namespaceUses.push({
      name,
      via: resolution.via,
      label: resolution.label,
      ...(resolution.target === undefined ? {} : { target: resolution.target }),
      ...(resolution.targetKind === undefined ? {} : { targetKind: resolution.targetKind }),
      ...(resolution.revision === undefined ? {} : { resolvedRevision: resolution.revision }),
      pods: ns.pods,
      podsByRevision: Object.fromEntries([...ns.byRevision].sort(byKey)),
      uninjectedPods: ns.uninjected,
      stalePods: ns.stale,
    });
  }

  const revisions: Record<string, RevisionUse> = {};
  for (const [name, tally] of revisionTallies) {
    revisions[name] = {
      namespaces: tally.namespaces,
      tags: tally.tags,
      pods: tally.pods,
      stalePods: tally.stale,
      inUse: tally.tags.length > 0 || tally.namespaces.length > 0 || tally.pods > 0,
      reasons: revisionReasons(tally, namespaces),
    };
  }
  const tags: Record<string, TagUse> = {};
  for (const [name, tally] of tagTallies) {
    tags[name] = { ...tally, inUse: tally.namespaces.length > 0 || tally.pods > 0 };
  }
  return {
    revisions,
    tags,
    namespaces: namespaceUses,
    unmanagedRevisions: Object.fromEntries([...unmanaged].sort(byKey)),
  };
}

/**
 * The counts a ControlPlaneRevision's status publishes (the shape the revision controller's InUse condition
 * takes); a revision missing from `usage` is reported as unused.
 */
export function revisionUsageCounts(
  usage: Usage,
  revision: string,
): { namespaces: number; pods: number; stalePods: number; tags: string[] } {
  const use = usage.revisions[revision];
  return {
    namespaces: use?.namespaces.length ?? 0,
    pods: use?.pods ?? 0,
    stalePods: use?.stalePods ?? 0,
    tags: use?.tags ?? [],
  };
}
