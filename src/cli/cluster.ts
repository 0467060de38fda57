/**
 * The reads the CLI commands share. Objects are narrowed structurally rather than validated against the
 * CRD schemas, so a half-written or older object still shows up instead of failing the whole command.
 */
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, REVISION_LABEL } from '../controllers/common/labels.js';
import { API_GROUP_VERSION, CONTROL_PLANE_REVISION_KIND, REVISION_TAG_KIND } from '../crds/constants.js';
import { InjectionSpecSchema } from '../crds/proxy.js';
import { DEFAULT_SELECTOR, injectionWorld, type InjectionWorld } from '../controllers/usage/selection.js';
import { computeUsage, type Usage } from '../controllers/usage/usage.js';
import type { InjectorSettings } from '../injector/engine/settings.js';
import { isNotFound } from '../runtime/kube.js';
import type { ResourceType } from '../runtime/resources.js';
import { isRecord, type KubeObject } from '../runtime/types.js';
import type { CliKube } from './io.js';

export const CONTROL_PLANE_REVISION: ResourceType = {
  apiVersion: API_GROUP_VERSION,
  kind: CONTROL_PLANE_REVISION_KIND,
};
export const REVISION_TAG: ResourceType = { apiVersion: API_GROUP_VERSION, kind: REVISION_TAG_KIND };
export const NAMESPACE: ResourceType = { apiVersion: 'v1', kind: 'Namespace' };
export const POD: ResourceType = { apiVersion: 'v1', kind: 'Pod' };
export const MUTATING_WEBHOOK_CONFIGURATION: ResourceType = {
  apiVersion: 'admissionregistration.k8s.io/v1',
  kind: 'MutatingWebhookConfiguration',
};

/** Completed and failed pods never count: they run no proxy. */
export const RUNNING_POD_FIELD_SELECTOR = 'status.phase!=Succeeded,status.phase!=Failed';

export const CLI_FIELD_MANAGER = 'meshrev-cli';

export interface RevisionSummary {
  name: string;
  /** status.version, else spec.version, else `channel:<name>`. */
  version?: string;
  /** The Ready condition's status (True/False/Unknown); unset while the operator has not reported. */
  ready?: string;
  readyMessage?: string;
  /** spec.injection.enableNamespacesByDefault: serving the default selectors, it also injects unlabelled namespaces. */
  injectsUnlabelledNamespaces?: boolean;
  /** What spec.injection sets of the rules by which its injector lets a pod through without a sidecar. */
  injectionPolicy?: InjectionPolicySpec;
}

/** spec.injection's policy and selectors; unset fields take the injector's defaults. */
export type InjectionPolicySpec = Partial<
  Pick<InjectorSettings, 'policy' | 'neverInjectSelector' | 'alwaysInjectSelector'>
>;

/** The names of the revisions that inject unlabelled namespaces when they serve the default selectors. */
export function autoInjectingRevisions(revisions: readonly RevisionSummary[]): string[] {
  return revisions.filter((revision) => revision.injectsUnlabelledNamespaces === true).map((r) => r.name);
}

export interface TagSummary {
  name: string;
  revision: string;
}

function field(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (!isRecord(current)) return undefined;
    current = current[key];
  }
  return current;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The revision's injection policy and selectors, read through the CRD's own schema (undefined if it does not parse). */
function injectionPolicyOf(object: unknown): InjectionPolicySpec | undefined {
  const injection = field(object, 'spec', 'injection');
  const parsed = InjectionSpecSchema.safeParse(injection ?? {});
  if (!parsed.success) return undefined;
  const { policy, neverInjectSelector, alwaysInjectSelector } = parsed.data;
  // Only what the spec sets: the injector's defaults apply to the rest.
  const spec: InjectionPolicySpec = {
    ...(field(injection, 'policy') === undefined ? {} : { policy }),
    ...(neverInjectSelector === undefined ? {} : { neverInjectSelector }),
    ...(alwaysInjectSelector === undefined ? {} : { alwaysInjectSelector }),
  };
  return Object.keys(spec).length === 0 ? undefined : spec;
}

export function summariseRevision(object: unknown): RevisionSummary | undefined {
  const name = text(field(object, 'metadata', 'name'));
  if (name === undefined) return undefined;
  const channel = text(field(object, 'spec', 'channel'));
  const version =
    text(field(object, 'status', 'version')) ??
    text(field(object, 'spec', 'version')) ??
    (channel === undefined ? undefined : `channel:${channel}`);
  const conditions = field(object, 'status', 'conditions');
  const ready = Array.isArray(conditions)
    ? conditions.find((condition) => field(condition, 'type') === 'Ready')
    : undefined;
  const readyStatus = text(field(ready, 'status'));
  const readyMessage = text(field(ready, 'message'));
  const injectionPolicy = injectionPolicyOf(object);
  return {
    name,
    ...(version === undefined ? {} : { version }),
    ...(readyStatus === undefined ? {} : { ready: readyStatus }),
    ...(readyMessage === undefined ? {} : { readyMessage }),
    ...(field(object, 'spec', 'injection', 'enableNamespacesByDefault') === true
      ? { injectsUnlabelledNamespaces: true }
      : {}),
    ...(injectionPolicy === undefined ? {} : { injectionPolicy }),
  };
}

export function summariseTag(object: unknown): TagSummary | undefined {
  const name = text(field(object, 'metadata', 'name'));
  const revision = text(field(object, 'spec', 'revision'));
  return name === undefined || revision === undefined ? undefined : { name, revision };
}

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Lists a meshrev kind; a 404 on the collection means the CRD is not installed, which deserves plain words. */
async function listMeshrevKind(kube: CliKube, type: ResourceType): Promise<unknown[]> {
  try {
    return (await kube.listAll<unknown>(type)).items;
  } catch (err) {
    if (isNotFound(err)) {
      throw new Error(
        `the cluster does not serve ${type.kind} (${type.apiVersion}): install meshrev's CRDs first ` +
          `(kubectl apply -f deploy/crds/)`,
      );
    }
    throw err;
  }
}

export async function readRevisions(kube: CliKube): Promise<RevisionSummary[]> {
  const items = await listMeshrevKind(kube, CONTROL_PLANE_REVISION);
  return items.flatMap((item) => summariseRevision(item) ?? []).sort(byName);
}

export async function readTags(kube: CliKube): Promise<TagSummary[]> {
  const items = await listMeshrevKind(kube, REVISION_TAG);
  return items.flatMap((item) => summariseTag(item) ?? []).sort(byName);
}

/**
 * The MutatingWebhookConfigurations labelled `istio.io/rev=default` that meshrev does not manage, by name: a
 * non-revisioned (classic) Istio install made by istioctl or Helm, whose webhooks also match
 * `istio-injection=enabled` and `sidecar.istio.io/inject=true` (the operator's unmanagedDefaultInjector check).
 */
export async function readUnmanagedDefaultInjector(kube: CliKube): Promise<string[]> {
  const { items } = await kube.listAll<KubeObject>(MUTATING_WEBHOOK_CONFIGURATION, {
    labelSelector: `${REVISION_LABEL}=${DEFAULT_SELECTOR}`,
    metadataOnly: true,
  });
  return items
    .filter((item) => item.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE)
    .flatMap((item) => item.metadata?.name ?? [])
    .sort();
}

/** A classic Istio install the CLI counts as revision `default`, with its webhook configurations. */
export interface ClassicInjector {
  revision: string;
  configurations: readonly string[];
}

/**
 * The classic install as revision `default`, when one exists and no meshrev revision or tag holds that name:
 * it then injects `istio-injection=enabled`, `istio.io/rev=default` and `sidecar.istio.io/inject=true`, with
 * Istio's default injection policy. meshrev cannot see its readiness, so it counts as ready.
 */
export function classicInjector(
  configurations: readonly string[],
  revisions: readonly RevisionSummary[],
  tags: readonly TagSummary[],
): ClassicInjector | undefined {
  if (configurations.length === 0) return undefined;
  const held = [...revisions, ...tags].some((item) => item.name === DEFAULT_SELECTOR);
  return held ? undefined : { revision: DEFAULT_SELECTOR, configurations };
}

/** The names of the revisions pods can be injected by: meshrev's, plus a classic install's `default`. */
export function injectingRevisionNames(
  revisions: readonly RevisionSummary[],
  classic: ClassicInjector | undefined,
): string[] {
  const names = revisions.map((revision) => revision.name);
  return classic === undefined ? names : [...names, classic.revision];
}

/** What migrate and rollback decide moves with: revisions, tags, a classic install, and who would inject what. */
export interface MeshView {
  revisions: RevisionSummary[];
  tags: TagSummary[];
  classic: ClassicInjector | undefined;
  world: InjectionWorld;
}

/** Reads the revisions, tags and any classic install (one request each), and builds the injection world from them. */
export async function readMeshView(kube: CliKube): Promise<MeshView> {
  const [revisions, tags, unmanaged] = await Promise.all([
    readRevisions(kube),
    readTags(kube),
    readUnmanagedDefaultInjector(kube),
  ]);
  // A classic Istio install counts as revision `default`: its webhooks serve istio-injection=enabled.
  const classic = classicInjector(unmanaged, revisions, tags);
  const world = injectionWorld(
    injectingRevisionNames(revisions, classic),
    tags,
    autoInjectingRevisions(revisions),
  );
  return { revisions, tags, classic, world };
}

/** The informational line printed instead of a readiness check when the target is a classic install. */
export function classicInjectorNote(classic: ClassicInjector): string {
  return (
    `note: revision ${classic.revision} is the Istio install meshrev does not manage ` +
    `(MutatingWebhookConfiguration ${classic.configurations.join(', ')}); meshrev cannot check that it is ready`
  );
}

export interface NamespaceMeta {
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  resourceVersion?: string;
}

function metaOf(object: KubeObject): NamespaceMeta | undefined {
  const name = object.metadata?.name;
  if (name === undefined) return undefined;
  return {
    name,
    labels: object.metadata?.labels ?? {},
    annotations: object.metadata?.annotations ?? {},
    ...(object.metadata?.resourceVersion === undefined
      ? {}
      : { resourceVersion: object.metadata.resourceVersion }),
  };
}

export async function readNamespaces(kube: CliKube): Promise<NamespaceMeta[]> {
  const { items } = await kube.listAll<KubeObject>(NAMESPACE, { metadataOnly: true });
  return items.flatMap((item) => metaOf(item) ?? []);
}

export async function readNamespace(kube: CliKube, name: string): Promise<NamespaceMeta | undefined> {
  const object = await kube.getOptional<KubeObject>({ ...NAMESPACE, name });
  return object === undefined ? undefined : metaOf(object);
}

/** Running pods as metadata only (all namespaces when `namespace` is unset). */
export async function readRunningPods(kube: CliKube, namespace?: string): Promise<KubeObject[]> {
  const { items } = await kube.listAll<KubeObject>(POD, {
    metadataOnly: true,
    fieldSelector: RUNNING_POD_FIELD_SELECTOR,
    ...(namespace === undefined ? {} : { namespace }),
  });
  return items;
}

export interface ClusterView {
  revisions: RevisionSummary[];
  tags: TagSummary[];
  usage: Usage;
}

/** Everything `status` shows; pods are only read when `withPods` (tag commands only need namespaces). */
export async function readClusterView(kube: CliKube, withPods = true): Promise<ClusterView> {
  const [revisions, tags, namespaces, pods] = await Promise.all([
    readRevisions(kube),
    readTags(kube),
    readNamespaces(kube),
    withPods ? readRunningPods(kube) : Promise.resolve([]),
  ]);
  const usage = computeUsage({
    revisions: revisions.map((revision) => revision.name),
    autoInjectingRevisions: autoInjectingRevisions(revisions),
    tags,
    namespaces,
    pods: pods.flatMap((pod) => {
      const name = pod.metadata?.name;
      const namespace = pod.metadata?.namespace;
      if (name === undefined || namespace === undefined) return [];
      return [{ name, namespace, labels: pod.metadata?.labels, annotations: pod.metadata?.annotations }];
    }),
  });
  return { revisions, tags, usage };
}

/** The revision a `--to`/`--revision` value reaches: a revision of that name, else a tag's target. */
export type TargetLookup =
  | { found: true; kind: 'revision' | 'tag'; name: string; revision: string }
  | { found: false; message: string };

export function lookupTarget(
  name: string,
  revisions: readonly RevisionSummary[],
  tags: readonly TagSummary[],
  classic?: ClassicInjector,
): TargetLookup {
  if (revisions.some((revision) => revision.name === name) || classic?.revision === name) {
    return { found: true, kind: 'revision', name, revision: name };
  }
  const tag = tags.find((candidate) => candidate.name === name);
  if (tag !== undefined) {
    if (!revisions.some((revision) => revision.name === tag.revision)) {
      return {
        found: false,
        message: `tag "${name}" points at revision "${tag.revision}", which does not exist`,
      };
    }
    return { found: true, kind: 'tag', name, revision: tag.revision };
  }
  const known = (items: readonly { name: string }[]) =>
    items.length === 0 ? 'none' : items.map((item) => item.name).join(', ');
  return {
    found: false,
    message: `no revision or tag named "${name}" (revisions: ${known(revisions)}; tags: ${known(tags)})`,
  };
}

/**
 * Why pods should not be moved to `revision` yet: its Ready condition is not True, or the operator has not
 * reported one (a revision just created is not known to serve). Undefined when it is Ready, or when there is
 * no such revision (lookupTarget says so), as for a classic install's `default` (classicInjector).
 */
export function readinessProblem(
  revision: string,
  revisions: readonly RevisionSummary[],
): string | undefined {
  const summary = revisions.find((candidate) => candidate.name === revision);
  if (summary === undefined || summary.ready === 'True') return undefined;
  if (summary.ready === undefined) return `revision ${revision} has not reported a Ready condition yet`;
  const why = summary.readyMessage === undefined ? '' : `: ${summary.readyMessage}`;
  return `revision ${revision} is not Ready (Ready=${summary.ready}${why})`;
}
