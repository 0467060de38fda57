// The ControlPlaneRevision reconciler: a thin shell around pure builders.
//   1. resolve the version (pinned, or the channel's current one)
//   2. build the desired objects (pure) and apply what differs; prune what is no longer desired
//   3. compute status from what was observed (pure) and write it only when it changed
// Status is computed and written even when step 1 or 2 fails, so users always see why.

import { parseControlPlaneRevision, type ControlPlaneRevision } from '../../crds/controlplanerevision.js';
import { API_GROUP_VERSION, CONTROL_PLANE_REVISION_KIND } from '../../crds/constants.js';
import { customTemplateProblems } from '../../injector/engine/custom-templates.js';
import type { Informer } from '../../runtime/informer.js';
import type { KubeClient } from '../../runtime/kube.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../runtime/controller.js';
import type { KubeObject } from '../../runtime/types.js';
import { applySet, CONFLICT_RECHECK_MS, OwnershipConflictError } from '../apply.js';
import { nameClaim } from '../claims.js';
import { istiodName, revisionWebhookConfigurationName } from '../common/names.js';
import { resolveRevisionVersion, type ChannelTable } from '../common/versions.js';
import { injectionEnabled, type InjectorEndpoint } from '../common/webhooks.js';
import type { EventRecorder } from '../events.js';
import type { OwnedObjectCaches } from '../owned.js';
import { desiredRevisionObjects } from './desired.js';
import {
  computeRevisionStatus,
  RevisionConditionReason,
  statusEqual,
  type DeploymentObservation,
  type ReconcileFailure,
  type RevisionUsage,
} from './status.js';

export interface RevisionReconcilerDeps {
  client: KubeClient;
  revisions: Pick<Informer, 'get'>;
  caches: OwnedObjectCaches;
  channels: () => Readonly<ChannelTable>;
  /** Why the channel table's entry for a channel is unusable, if it is. */
  channelProblem?: (channel: string) => string | undefined;
  injector: InjectorEndpoint;
  caBundle: () => string | undefined;
  usage: (revision: string) => RevisionUsage | undefined;
  /** Whether a namespace exists (from the namespace cache). */
  namespaceExists: (name: string) => boolean;
  /** Tags, to detect a tag that claims this revision's name first. */
  tags: Pick<Informer, 'get'>;
  events: EventRecorder;
  fieldManager: string;
  operatorName: string;
  now?: () => Date;
}

const CONFLICT_REASONS: ReadonlySet<string> = new Set([
  'OwnershipConflict',
  RevisionConditionReason.WebhookConflict,
]);

/** Retry transient failures with backoff; failures only a spec change can fix wait for that change. */
class TransientFailure extends Error {}

export function revisionReconciler(deps: RevisionReconcilerDeps): Reconciler {
  return async (name: string, ctx: ReconcileContext): Promise<ReconcileResult | void> => {
    const cached = deps.revisions.get(name);
    if (cached === undefined) return; // deleted: its objects go with it (ownerReference garbage collection)
    const { revision, failure: parseFailure } = readRevision(cached);

    let failure: ReconcileFailure | undefined = parseFailure;
    let applied = false;
    // An older tag of the same name keeps it: this revision then renders no webhook configuration.
    const holdsName = nameClaim(name, deps.revisions, deps.tags) !== 'tag';
    let resolved: { version: string; channel?: string | undefined } | undefined;
    const tableProblem = revision?.spec.channel ? deps.channelProblem?.(revision.spec.channel) : undefined;
    if (revision && !failure && tableProblem) {
      // Nothing is applied: the revision keeps running what it runs until the table is fixed.
      failure = {
        reason: 'InvalidChannelTable',
        message:
          `the channel table has an unusable entry for channel "${revision.spec.channel}" (${tableProblem}); ` +
          `the revision keeps its current version${revision.status?.version ? ` ${revision.status.version}` : ''} until it is fixed`,
      };
    } else if (revision && !failure) {
      const resolution = resolveRevisionVersion(revision.spec, deps.channels());
      if (resolution.ok && !deps.namespaceExists(revision.spec.namespace)) {
        resolved = { version: resolution.version, channel: resolution.channel };
        // Namespaces are the platform team's to create (GitOps declares them); meshrev never creates one
        // it would then have to decide whether to delete. The namespace watch retries when it appears.
        failure = {
          reason: 'NamespaceNotFound',
          message: `namespace "${revision.spec.namespace}" does not exist; create it (kubectl create namespace ${revision.spec.namespace})`,
        };
      } else if (resolution.ok) {
        resolved = { version: resolution.version, channel: resolution.channel };
        failure = await applyRevision(deps, revision, resolution.version, ctx, holdsName);
        applied = failure === undefined;
        if (!failure && !holdsName) failure = tagClaimsName(name);
        failure ??= templatesThatDoNotParse(revision);
      } else {
        failure = { reason: resolution.reason, message: resolution.message };
      }
    }
    if (revision && !applied && holdsName) {
      await keepWebhookTrustingTheCa(deps, revision, resolved?.version ?? revision.status?.version, ctx);
    }
    if (failure) deps.events.record(cached, 'Warning', failure.reason, failure.message);

    await writeStatus(deps, cached, {
      generation: cached.metadata?.generation,
      resolved,
      failure,
      deployment: observeDeployment(deps.caches, name, revision?.spec.namespace),
      usage: deps.usage(name),
      webhookConfiguration:
        revision && holdsName && injectionEnabled(revision.spec.injection)
          ? revisionWebhookConfigurationName(name, revision.spec.namespace)
          : undefined,
    });
    if (failure?.reason === RevisionConditionReason.ApplyFailed) throw new TransientFailure(failure.message);
    // Look again later rather than wait for the next full resync (see CONFLICT_RECHECK_MS).
    if (failure !== undefined && CONFLICT_REASONS.has(failure.reason))
      return { requeueAfterMs: CONFLICT_RECHECK_MS };
  };
}

/**
 * A custom injection template the injector cannot parse (the CRD cannot check Go template syntax). Everything else
 * is applied and the other templates keep working; only pods that ask for a broken template are refused, with the
 * same error, so a typo in one template does not stop a revision's injection.
 */
function templatesThatDoNotParse(revision: ControlPlaneRevision): ReconcileFailure | undefined {
  const problems = Object.entries(customTemplateProblems(revision.spec.injection?.templates ?? {}));
  if (problems.length === 0) return undefined;
  return {
    reason: RevisionConditionReason.InvalidTemplate,
    message:
      problems
        .map(([name, problem]) => `injection template "${name}" does not parse: ${problem}`)
        .join('; ') + `; pods that ask for ${problems.length === 1 ? 'it' : 'them'} are refused`,
  };
}

function tagClaimsName(name: string): ReconcileFailure {
  return {
    reason: 'NameConflict',
    message:
      `RevisionTag "${name}" existed first and selects istio.io/rev=${name}; this revision's webhook configuration ` +
      'is not rendered so no pod matches two webhooks. Delete the tag or rename the revision.',
  };
}

function readRevision(obj: KubeObject): { revision?: ControlPlaneRevision; failure?: ReconcileFailure } {
  const parsed = parseControlPlaneRevision(obj);
  if (parsed.ok) return { revision: parsed.value };
  // The CRD schema should have refused this; an older CRD or a direct etcd write may not have.
  return { failure: { reason: RevisionConditionReason.InvalidSpec, message: parsed.error } };
}

async function applyRevision(
  deps: RevisionReconcilerDeps,
  revision: ControlPlaneRevision,
  version: string,
  ctx: ReconcileContext,
  withWebhooks: boolean,
): Promise<ReconcileFailure | undefined> {
  const desired = desiredRevisionObjects(revision, {
    resolvedVersion: version,
    injector: deps.injector,
    caBundle: deps.caBundle(),
    operatorName: deps.operatorName,
  }).filter((o) => withWebhooks || o.kind !== 'MutatingWebhookConfiguration');
  try {
    const result = await applySet({
      client: deps.client,
      caches: deps.caches,
      owner: revision as KubeObject,
      desired,
      fieldManager: deps.fieldManager,
      events: deps.events,
      logger: ctx.logger,
      signal: ctx.signal,
    });
    if (result.applied.length > 0 || result.deleted.length > 0) {
      ctx.logger.info(
        { applied: result.applied.length, deleted: result.deleted.length },
        'revision objects synced',
      );
    }
    return undefined;
  } catch (err) {
    if (err instanceof OwnershipConflictError) {
      const reason =
        err.object.kind === 'MutatingWebhookConfiguration'
          ? RevisionConditionReason.WebhookConflict
          : 'OwnershipConflict';
      return { reason, message: err.message };
    }
    ctx.logger.warn({ err }, 'applying revision objects failed');
    return { reason: RevisionConditionReason.ApplyFailed, message: summariseError(err) };
  }
}

/**
 * Keeps the revision's webhook configuration trusting the injector's current CA while the revision itself cannot be
 * applied (a channel table or namespace problem, a conflict on another of its objects, a failed apply). The CA
 * rotates on its own schedule: once the overlap ends a new CA signs the serving certificate, and a configuration
 * still carrying only the old bundle would then fail every pod of the revision's namespaces. Only the webhook
 * configuration is applied (as the revision's own apply would render it, with the last version it ran), and only
 * when its bundle is behind; nothing is pruned.
 */
async function keepWebhookTrustingTheCa(
  deps: RevisionReconcilerDeps,
  revision: ControlPlaneRevision,
  version: string | undefined,
  ctx: ReconcileContext,
): Promise<void> {
  const caBundle = deps.caBundle();
  if (caBundle === undefined || version === undefined || !injectionEnabled(revision.spec.injection)) return;
  const name = revisionWebhookConfigurationName(revision.metadata.name, revision.spec.namespace);
  const live = deps.caches.get(
    'admissionregistration.k8s.io/v1',
    'MutatingWebhookConfiguration',
    undefined,
    name,
  ) as (KubeObject & { webhooks?: Array<{ clientConfig?: { caBundle?: string } }> }) | undefined;
  if (live === undefined || (live.webhooks ?? []).every((w) => w.clientConfig?.caBundle === caBundle)) return;
  const webhookConfiguration = desiredRevisionObjects(revision, {
    resolvedVersion: version,
    injector: deps.injector,
    caBundle,
    operatorName: deps.operatorName,
  }).filter((o) => o.kind === 'MutatingWebhookConfiguration');
  try {
    await applySet({
      client: deps.client,
      caches: deps.caches,
      owner: revision as KubeObject,
      desired: webhookConfiguration,
      prune: false,
      fieldManager: deps.fieldManager,
      events: deps.events,
      logger: ctx.logger,
      signal: ctx.signal,
    });
    ctx.logger.info(
      { webhookConfiguration: name },
      "brought the webhook configuration's CA bundle up to date",
    );
  } catch (err) {
    // The revision's own failure is what the status reports; this is retried with the next reconcile.
    ctx.logger.warn({ err }, "could not bring the webhook configuration's CA bundle up to date");
  }
}

function observeDeployment(
  caches: OwnedObjectCaches,
  revision: string,
  namespace: string | undefined,
): DeploymentObservation | undefined {
  if (!namespace) return undefined;
  const deployment = caches.get('apps/v1', 'Deployment', namespace, istiodName(revision)) as
    | (KubeObject & {
        status?: {
          replicas?: number;
          readyReplicas?: number;
          conditions?: { type: string; status: string; reason?: string; message?: string }[];
        };
      })
    | undefined;
  if (!deployment) return undefined;
  return {
    name: istiodName(revision),
    replicas: deployment.status?.replicas,
    readyReplicas: deployment.status?.readyReplicas,
    conditions: deployment.status?.conditions,
  };
}

async function writeStatus(
  deps: RevisionReconcilerDeps,
  cached: KubeObject & { status?: unknown },
  observed: Omit<Parameters<typeof computeRevisionStatus>[1], 'now'>,
): Promise<void> {
  const previous = (cached.status ?? undefined) as Parameters<typeof computeRevisionStatus>[0];
  const status = computeRevisionStatus(previous, { ...observed, now: kubeTime(deps.now?.() ?? new Date()) });
  if (statusEqual(status, previous)) return;
  await deps.client.applyStatus(
    {
      apiVersion: API_GROUP_VERSION,
      kind: CONTROL_PLANE_REVISION_KIND,
      metadata: { name: cached.metadata?.name ?? '' },
      status,
    } as KubeObject,
    { fieldManager: deps.fieldManager, force: true },
  );
}

/** metav1.Time has second precision; writing milliseconds would make every comparison differ. */
export function kubeTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function summariseError(err: unknown): string {
  if (
    err &&
    typeof err === 'object' &&
    'issues' in err &&
    Array.isArray((err as { issues: unknown[] }).issues)
  ) {
    return (err as { issues: { path?: unknown[]; message?: string }[] }).issues
      .map((i) => `${(i.path ?? []).join('.') || 'spec'}: ${i.message ?? 'invalid'}`)
      .join('; ');
  }
  return err instanceof Error ? err.message : String(err);
}
