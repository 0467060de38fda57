import pino from 'pino';

import {
  ALLOW_DELETE_IN_USE_ANNOTATION,
  appliedValidatingWebhookConfiguration,
  DELETION_BLOCKED_CONDITION,
  deletionRelevantChange,
  deletionVerdict,
  desiredValidatingWebhookConfiguration,
  IN_USE_FINALIZER,
  revisionDeletionValidator,
  VALIDATE_REVISIONS_PATH,
  validationWebhookDrift,
  withDeletionProtection,
  type DeletionUsage,
} from '../../../src/controllers/revision/deletion.js';
import { MemoryEventRecorder } from '../../../src/controllers/events.js';
import { DESIRED_HASH_ANNOTATION } from '../../../src/controllers/sync.js';
import { computeUsage } from '../../../src/controllers/usage/index.js';
import { handleValidation, parseValidatePath } from '../../../src/injector/admission.js';
import type { ReconcileContext } from '../../../src/runtime/controller.js';
import type { KubeClient } from '../../../src/runtime/kube.js';
import type { KubeObject } from '../../../src/runtime/types.js';

const REV = 'asm-1233-2';

/** Usage as the tracker computes it, from namespace and pod labels. */
function usageOf(
  input: {
    namespaces?: { name: string; labels?: Record<string, string> }[];
    pods?: { namespace: string; name: string; annotations?: Record<string, string> }[];
    tags?: { name: string; revision: string }[];
  },
  revision = REV,
): DeletionUsage {
  const usage = computeUsage({
    namespaces: input.namespaces ?? [],
    pods: input.pods ?? [],
    revisions: [REV, 'asm-1234-1'],
    tags: input.tags ?? [],
  });
  const use = usage.revisions[revision];
  if (!use) throw new Error(`no usage for ${revision}`);
  return use;
}

const unused = usageOf({});
const selectedByNamespace = usageOf({
  namespaces: [{ name: 'shop', labels: { 'istio.io/rev': REV } }],
  pods: [
    { namespace: 'shop', name: 'a', annotations: { 'istio.io/rev': REV } },
    { namespace: 'shop', name: 'b', annotations: { 'istio.io/rev': REV } },
  ],
});

describe('deletionVerdict', () => {
  it('allows deleting a revision nothing uses', () => {
    expect(deletionVerdict(REV, unused, undefined)).toEqual({ verdict: 'allow', overridden: false });
  });

  it('allows deleting a revision only an unused tag points at, and warns that the tag will select nothing', () => {
    const verdict = deletionVerdict(REV, usageOf({ tags: [{ name: 'default', revision: REV }] }), {});
    expect(verdict.verdict).toBe('allow');
    expect(verdict.message).toContain('RevisionTag "default" still points at "asm-1233-2"');
  });

  it('refuses while a namespace selects it, naming the namespace, the pods and the override', () => {
    const verdict = deletionVerdict(REV, selectedByNamespace, {});
    expect(verdict.verdict).toBe('refuse');
    expect(verdict.message).toContain('ControlPlaneRevision "asm-1233-2" is still in use');
    expect(verdict.message).toContain('namespace "shop" selects it via istio.io/rev=asm-1233-2');
    expect(verdict.message).toContain('2 pods injected by it');
    expect(verdict.message).toContain('meshrev migrate shop --to <revision> --restart');
    expect(verdict.message).toContain(
      'kubectl annotate controlplanerevision asm-1233-2 meshrev.dev/allow-delete-in-use=true',
    );
  });

  it('refuses while a namespace selects it through a tag, and does not list the tag as a separate reason', () => {
    const usage = usageOf({
      namespaces: [{ name: 'shop', labels: { 'istio.io/rev': 'prod' } }],
      tags: [{ name: 'prod', revision: REV }],
    });
    const verdict = deletionVerdict(REV, usage, undefined);
    expect(verdict.verdict).toBe('refuse');
    expect(verdict.message).toContain('namespace "shop" selects it via istio.io/rev=prod (tag)');
    expect(verdict.message).not.toContain('points at it');
  });

  it('refuses while pods still run its proxy after their namespace moved away (stale pods)', () => {
    const usage = usageOf({
      namespaces: [{ name: 'shop', labels: { 'istio.io/rev': 'asm-1234-1' } }],
      pods: [{ namespace: 'shop', name: 'a', annotations: { 'istio.io/rev': REV } }],
    });
    const verdict = deletionVerdict(REV, usage, undefined);
    expect(verdict.verdict).toBe('refuse');
    expect(verdict.message).toContain('1 pod injected by it');
    expect(verdict.message).toContain('restart to move');
    expect(verdict.message).toContain('restart or remove the pods it injected');
  });

  it('allows an in-use revision when the override annotation is true, and says what it breaks', () => {
    const verdict = deletionVerdict(REV, selectedByNamespace, { [ALLOW_DELETE_IN_USE_ANNOTATION]: 'True' });
    expect(verdict).toMatchObject({ verdict: 'allow', overridden: true });
    expect(verdict.message).toContain('namespace "shop"');
  });

  it('does not treat another annotation value as the override', () => {
    expect(
      deletionVerdict(REV, selectedByNamespace, { [ALLOW_DELETE_IN_USE_ANNOTATION]: 'yes' }).verdict,
    ).toBe('refuse');
  });

  it('is unknown while usage has not been counted', () => {
    expect(deletionVerdict(REV, undefined, {}).verdict).toBe('unknown');
  });
});

describe('the meshrev-validation webhook configuration', () => {
  it('sends only DELETE of controlplanerevisions to the injector Service, ignoring failures', () => {
    const vwc = desiredValidatingWebhookConfiguration(
      { serviceName: 'meshrev-injector', serviceNamespace: 'meshrev-system', port: 443 },
      'Q0E=',
    );
    expect(vwc.metadata?.name).toBe('meshrev-validation');
    const [webhook] = vwc.webhooks ?? [];
    expect(webhook?.clientConfig).toEqual({
      service: {
        name: 'meshrev-injector',
        namespace: 'meshrev-system',
        path: VALIDATE_REVISIONS_PATH,
        port: 443,
      },
      caBundle: 'Q0E=',
    });
    expect(webhook?.rules).toEqual([
      {
        operations: ['DELETE'],
        apiGroups: ['meshrev.dev'],
        apiVersions: ['v1alpha1'],
        resources: ['controlplanerevisions'],
        scope: 'Cluster',
      },
    ]);
    expect(webhook).toMatchObject({
      sideEffects: 'None',
      failurePolicy: 'Ignore',
      admissionReviewVersions: ['v1'],
    });
  });
});

describe('validationWebhookDrift: when the leader applies meshrev-validation again', () => {
  const endpoint = { serviceName: 'meshrev-injector', serviceNamespace: 'meshrev-system', port: 443 };
  // The live object as kube-apiserver returns it: what was applied plus server-side fields.
  const live = (obj: KubeObject): KubeObject => {
    const copy = structuredClone(obj) as KubeObject & { metadata: Record<string, unknown> };
    copy.metadata = { ...copy.metadata, uid: 'u-9', resourceVersion: '7', generation: 1 };
    return copy;
  };

  it('finds nothing to do when the live object is what meshrev applies', () => {
    const applied = appliedValidatingWebhookConfiguration(endpoint, 'Q0E=');
    expect(applied.metadata.annotations?.[DESIRED_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{16}$/);
    expect(validationWebhookDrift(live(applied as KubeObject), endpoint, 'Q0E=')).toBeUndefined();
  });

  it('names the field someone changed, and a CA that is no longer current', () => {
    const applied = live(
      appliedValidatingWebhookConfiguration(endpoint, 'Q0E=') as KubeObject,
    ) as KubeObject & {
      webhooks: { failurePolicy: string }[];
    };
    applied.webhooks[0]!.failurePolicy = 'Fail';
    expect(validationWebhookDrift(applied, endpoint, 'Q0E=')).toMatch(/failurePolicy$/);
    const current = live(appliedValidatingWebhookConfiguration(endpoint, 'Q0E=') as KubeObject);
    expect(validationWebhookDrift(current, endpoint, 'TkVX')).toMatch(/caBundle$/);
  });

  it('tells apart a configuration left by a meshrev that set more (or no hash), though every field matches', () => {
    const older = live(
      appliedValidatingWebhookConfiguration(endpoint, 'Q0E=') as KubeObject,
    ) as KubeObject & {
      webhooks: Record<string, unknown>[];
    };
    delete older.metadata?.annotations?.[DESIRED_HASH_ANNOTATION];
    older.webhooks[0]!['namespaceSelector'] = { matchLabels: { retired: 'field' } };
    expect(validationWebhookDrift(older, endpoint, 'Q0E=')).toBe(
      `meshrev's desired configuration changed (${DESIRED_HASH_ANNOTATION})`,
    );
  });
});

describe('revisionDeletionValidator', () => {
  const cpr = (annotations: Record<string, string> = {}) => ({
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'ControlPlaneRevision',
    metadata: { name: REV, uid: 'u-1', annotations },
  });

  it('refuses an in-use revision and records a Warning event', async () => {
    const events = new MemoryEventRecorder();
    const validate = revisionDeletionValidator({ usage: () => selectedByNamespace, events });
    const answer = await validate({ operation: 'DELETE', name: REV, oldObject: cpr() });
    expect(answer.allowed).toBe(false);
    expect(events.events).toEqual([
      expect.objectContaining({ type: 'Warning', reason: 'DeletionRefused', name: REV }),
    ]);
  });

  it('allows with a warning when overridden, and allows when usage is unknown (the finalizer decides)', async () => {
    const events = new MemoryEventRecorder();
    const overridden = await revisionDeletionValidator({ usage: () => selectedByNamespace, events })({
      operation: 'DELETE',
      name: REV,
      oldObject: cpr({ [ALLOW_DELETE_IN_USE_ANNOTATION]: 'true' }),
    });
    expect(overridden).toEqual({
      allowed: true,
      warnings: [expect.stringContaining('deleted although it is in use')],
    });
    expect(events.events[0]?.reason).toBe('DeletedWhileInUse');
    const unknown = await revisionDeletionValidator({ usage: () => undefined })({
      operation: 'DELETE',
      name: REV,
      oldObject: cpr(),
    });
    expect(unknown).toEqual({ allowed: true });
  });
});

describe('the /validate admission path', () => {
  const review = (request: Record<string, unknown>) =>
    Buffer.from(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request }));

  it('parses /validate/<resource> and nothing else', () => {
    expect(parseValidatePath('/validate/controlplanerevisions?timeout=5s')).toBe('controlplanerevisions');
    expect(parseValidatePath('/inject/asm-1233-2')).toBeUndefined();
    expect(parseValidatePath('/validate/../x')).toBeUndefined();
  });

  it('answers a refusal with 403 Forbidden and the message, echoing the uid', async () => {
    const reply = await handleValidation(
      {
        resource: 'controlplanerevisions',
        contentType: 'application/json',
        body: review({ uid: 'abc', operation: 'DELETE', name: REV, oldObject: { metadata: { name: REV } } }),
      },
      (req) =>
        req.operation === 'DELETE' && req.name === REV
          ? { allowed: false, message: 'still in use' }
          : { allowed: true },
    );
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body.toString())).toEqual({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: {
        uid: 'abc',
        allowed: false,
        status: { metadata: {}, code: 403, reason: 'Forbidden', message: 'still in use' },
      },
    });
  });

  it('passes warnings of an allowed request through, and refuses bodies that are not reviews', async () => {
    const allowed = await handleValidation(
      { resource: 'controlplanerevisions', contentType: 'application/json', body: review({ uid: 'x' }) },
      () => ({ allowed: true, warnings: ['careful'] }),
    );
    expect(JSON.parse(allowed.body.toString()).response).toEqual({
      uid: 'x',
      allowed: true,
      warnings: ['careful'],
    });
    const empty = await handleValidation(
      { resource: 'controlplanerevisions', contentType: 'application/json', body: Buffer.alloc(0) },
      () => ({ allowed: true }),
    );
    expect(empty.status).toBe(400);
  });
});

describe('deletionRelevantChange', () => {
  const base: KubeObject = { metadata: { name: REV, generation: 1, finalizers: [IN_USE_FINALIZER] } };
  it('passes a deletionTimestamp, the override annotation and a removed finalizer, not other metadata', () => {
    expect(deletionRelevantChange(base, { metadata: { ...base.metadata, deletionTimestamp: 'now' } })).toBe(
      true,
    );
    expect(
      deletionRelevantChange(base, {
        metadata: { ...base.metadata, annotations: { [ALLOW_DELETE_IN_USE_ANNOTATION]: 'true' } },
      }),
    ).toBe(true);
    expect(deletionRelevantChange(base, { metadata: { ...base.metadata, finalizers: [] } })).toBe(true);
    expect(deletionRelevantChange(base, { metadata: { ...base.metadata, labels: { a: 'b' } } })).toBe(false);
  });
});

describe('withDeletionProtection', () => {
  interface Call {
    verb: string;
    body: unknown;
  }
  function fakeClient(live: KubeObject | undefined): { client: KubeClient; calls: Call[] } {
    const calls: Call[] = [];
    const client = {
      apply: async (obj: KubeObject) => {
        calls.push({ verb: 'apply', body: obj });
        return obj;
      },
      applyStatus: async (obj: KubeObject) => {
        calls.push({ verb: 'applyStatus', body: obj });
        return obj;
      },
      patch: async (_ref: unknown, body: unknown) => {
        calls.push({ verb: 'patch', body });
        return {};
      },
      getOptional: async () => live,
    };
    return { client: client as unknown as KubeClient, calls };
  }
  const ctx: ReconcileContext = {
    reconcileID: 'r',
    logger: pino({ level: 'silent' }),
    signal: new AbortController().signal,
    retries: 0,
  };
  const revision = (metadata: KubeObject['metadata']): KubeObject => ({
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'ControlPlaneRevision',
    metadata: { name: REV, generation: 2, ...metadata },
  });

  function setup(obj: KubeObject, usage: DeletionUsage | undefined) {
    const { client, calls } = fakeClient(obj);
    const events = new MemoryEventRecorder();
    let innerRuns = 0;
    const reconcile = withDeletionProtection(
      async () => {
        innerRuns += 1;
      },
      { client, revisions: { get: () => obj }, usage: () => usage, events, fieldManager: 'meshrev' },
    );
    return { reconcile, calls, events, innerRuns: () => innerRuns };
  }

  it('adds the finalizer to a live revision once, then reconciles it', async () => {
    const fresh = setup(revision({}), unused);
    await fresh.reconcile(REV, ctx);
    expect(fresh.calls).toEqual([
      {
        verb: 'apply',
        body: expect.objectContaining({ metadata: { name: REV, finalizers: [IN_USE_FINALIZER] } }),
      },
    ]);
    expect(fresh.innerRuns()).toBe(1);

    const steady = setup(revision({ finalizers: [IN_USE_FINALIZER] }), unused);
    await steady.reconcile(REV, ctx);
    expect(steady.calls).toEqual([]);
    expect(steady.innerRuns()).toBe(1);
  });

  it('releases an unused revision being deleted by removing only its own finalizer', async () => {
    const deleting = setup(
      revision({ deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: ['other/keep', IN_USE_FINALIZER] }),
      unused,
    );
    await deleting.reconcile(REV, ctx);
    expect(deleting.calls).toEqual([
      {
        verb: 'patch',
        body: [
          { op: 'test', path: '/metadata/finalizers/1', value: IN_USE_FINALIZER },
          { op: 'remove', path: '/metadata/finalizers/1' },
        ],
      },
    ]);
    expect(deleting.innerRuns()).toBe(0);
  });

  it('holds an in-use revision being deleted, with a DeletionBlocked condition and an Event', async () => {
    const held = setup(
      revision({ deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: [IN_USE_FINALIZER] }),
      selectedByNamespace,
    );
    await held.reconcile(REV, ctx);
    expect(held.calls.map((c) => c.verb)).toEqual(['applyStatus']);
    const status = (
      held.calls[0]?.body as { status: { conditions: { type: string; status: string; message: string }[] } }
    ).status;
    expect(status.conditions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'InUse', status: 'True' }),
        expect.objectContaining({
          type: DELETION_BLOCKED_CONDITION,
          status: 'True',
          message: expect.stringContaining('namespace "shop"'),
        }),
      ]),
    );
    expect(held.events.events).toEqual([
      expect.objectContaining({ reason: 'DeletionBlocked', type: 'Warning' }),
    ]);
    expect(held.innerRuns()).toBe(1);
  });

  it('releases an in-use revision being deleted when the override annotation is set', async () => {
    const overridden = setup(
      revision({
        deletionTimestamp: '2026-01-01T00:00:00Z',
        finalizers: [IN_USE_FINALIZER],
        annotations: { [ALLOW_DELETE_IN_USE_ANNOTATION]: 'true' },
      }),
      selectedByNamespace,
    );
    await overridden.reconcile(REV, ctx);
    expect(overridden.calls.map((c) => c.verb)).toEqual(['patch']);
    expect(overridden.events.events[0]?.reason).toBe('DeletedWhileInUse');
  });

  it('waits, writing nothing, while usage is unknown', async () => {
    const waiting = setup(
      revision({ deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: [IN_USE_FINALIZER] }),
      undefined,
    );
    expect(await waiting.reconcile(REV, ctx)).toEqual({ requeueAfterMs: 2_000 });
    expect(waiting.calls).toEqual([]);
  });
});
