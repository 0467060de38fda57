// Glue between the admission server and the pure injection engine: resolves `/inject/<name>` (a
// revision, or a tag pointing at one) to that revision's settings, derived from its spec and cached
// per resourceVersion, and feeds the engine the node kubelet versions for native-sidecar `auto`.
import { parseControlPlaneRevision } from '../crds/controlplanerevision.js';
import { settingsFromRevision } from '../crds/proxy.js';
import type { KubeObject } from '../runtime/types.js';
import type { InjectFn, ResolveTargetFn } from './admission.js';
import { injectPod, type InjectionOutcome } from './engine/index.js';
import type { InjectorSettings } from './engine/settings.js';
import type { Pod } from './engine/types.js';

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
}

/** `v1.34.2` → 34; undefined for anything unparsable. */
export function kubeletMinor(version: string | undefined): number | undefined {
  const m = /^v?1\.(\d+)/.exec(version ?? '');
  return m ? Number(m[1]) : undefined;
}

export class InjectionService {
  private readonly settingsCache = new Map<string, { resourceVersion: string; settings: InjectorSettings }>();
  private nodeCacheEnabled = false;
  private nodeMinors: { value: number[] | undefined } | undefined;

  constructor(private readonly deps: InjectionServiceDeps) {}

  readonly resolveTarget: ResolveTargetFn = (name) => {
    if (this.deps.revisions.get(name)) return { revision: name };
    const tag = this.deps.tags.get(name) as (KubeObject & { spec?: { revision?: string } }) | undefined;
    const target = tag?.spec?.revision;
    if (target && this.deps.revisions.get(target)) return { revision: target };
    return undefined;
  };

  /** Settings of a revision, or an error message naming what is wrong with its spec. */
  settingsFor(revision: string): InjectorSettings | string {
    const obj = this.deps.revisions.get(revision);
    if (!obj) return `revision "${revision}" does not exist`;
    const rv = obj.metadata?.resourceVersion ?? '';
    const cached = this.settingsCache.get(revision);
    if (cached && cached.resourceVersion === rv) return cached.settings;
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
      const settings = settingsFromRevision(revision, { ...cpr.spec, version });
      this.settingsCache.set(revision, { resourceVersion: rv, settings });
      return settings;
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
    const settings = this.settingsFor(req.revision);
    if (typeof settings === 'string') return { kind: 'rejected', message: settings };
    const pod = req.pod as Pod;
    const nodeName = (pod as { spec?: { nodeName?: string } }).spec?.nodeName;
    const podNode = nodeName ? this.deps.nodes.get(nodeName) : undefined;
    const podNodeMinor = kubeletMinor(
      (podNode as { status?: { nodeInfo?: { kubeletVersion?: string } } } | undefined)?.status?.nodeInfo
        ?.kubeletVersion,
    );
    const outcome: InjectionOutcome = injectPod({
      pod,
      namespace: req.namespace,
      settings,
      pathParams: req.pathParams,
      nodeKubeletMinorVersions: this.nodeKubeletMinors(),
      ...(podNodeMinor === undefined ? {} : { podNodeKubeletMinor: podNodeMinor }),
    });
    if (outcome.kind === 'injected') return { kind: 'injected', patch: outcome.patch };
    return outcome;
  };
}
