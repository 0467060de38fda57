// A table of invalid ControlPlaneRevision and RevisionTag specs against the real API server and operator.
// What the schema or CEL can judge is refused at admission with a message naming the field; what only the
// operator can judge (unsupported versions, missing namespaces, tags routing nowhere, name conflicts) is
// reported as Reconciled=False with a reason. A healthy revision applied first is not disturbed: its
// resourceVersion and those of all its objects stay the same throughout.
import * as k8s from '@kubernetes/client-node';
import { execFileSync } from 'node:child_process';

import { API_GROUP_VERSION } from '../../src/crds/constants.js';
import { isApiError } from '../../src/runtime/kube.js';
import type { KubeClient } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import {
  clusterBinary,
  createTestNamespace,
  deleteNamespace,
  testKubeConfig,
  testKubeconfigPath,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import {
  installCrds,
  operatorLogTail,
  startTestOperator,
  testClient,
  type TestOperator,
} from '../support/operator.js';

type Obj = KubeObject & { spec?: unknown; status?: { conditions?: Condition[]; version?: string } };
interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

const CPR = { apiVersion: API_GROUP_VERSION, kind: 'ControlPlaneRevision' };
const TAG = { apiVersion: API_GROUP_VERSION, kind: 'RevisionTag' };
const CHANNELS_CM = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  namespace: 'meshrev-system',
  name: 'meshrev-channels',
};
const OWNED = [
  { apiVersion: 'v1', kind: 'ServiceAccount' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding' },
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'apps/v1', kind: 'Deployment' },
  { apiVersion: 'v1', kind: 'Service' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' },
  { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler' },
  { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' },
];

let client: KubeClient;
let kc: k8s.KubeConfig;
let namespace: string;
let operator: TestOperator;
let healthy: string;
let baseline: Map<string, string>;
const createdRevisions: string[] = [];
const createdTags: string[] = [];
let channelConfigMapCreated = false;

const short = (prefix: string): string => uniqueName(prefix).slice(0, 30);

async function apply(type: typeof CPR, name: string, spec: unknown): Promise<void> {
  await client.apply({ ...type, metadata: { name }, ...(spec === undefined ? {} : { spec }) } as KubeObject, {
    fieldManager: 'meshrev-tests',
    force: true,
  });
}

/** The resourceVersions of the healthy revision and of every object it controls. */
async function snapshot(): Promise<Map<string, string>> {
  const cpr = await client.get<Obj>({ ...CPR, name: healthy });
  const versions = new Map<string, string>([
    [`ControlPlaneRevision/${healthy}`, cpr.metadata?.resourceVersion ?? ''],
  ]);
  for (const type of OWNED) {
    const { items } = await client.listAll<KubeObject>(type, { labelSelector: `istio.io/rev=${healthy}` });
    for (const item of items) {
      if (!(item.metadata?.ownerReferences ?? []).some((r) => r.uid === cpr.metadata?.uid)) continue;
      versions.set(
        `${type.kind}/${item.metadata?.namespace ?? ''}/${item.metadata?.name}`,
        item.metadata?.resourceVersion ?? '',
      );
    }
  }
  return versions;
}

const same = (a: Map<string, string>, b: Map<string, string>): boolean =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

beforeAll(async () => {
  kc = testKubeConfig();
  client = testClient();
  await installCrds(client);
  namespace = await createTestNamespace(kc, 'invalid-specs');
  operator = await startTestOperator('invalid-specs', ['--create-default-tag=false']);
  healthy = short('healthy');
  createdRevisions.push(healthy);
  await apply(CPR, healthy, { version: '1.29.6', namespace });
  await waitFor(
    `${healthy} Ready`,
    async () => {
      const cpr = await client.get<Obj>({ ...CPR, name: healthy });
      const ready = cpr.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'True' && ready.observedGeneration === cpr.metadata?.generation;
    },
    { timeoutMs: 60_000 },
  );
  // Settled: two snapshots a moment apart agree (status and istiod's rollout have stopped moving).
  let previous = await snapshot();
  baseline = await waitFor(
    'the healthy revision to settle',
    async () => {
      await new Promise((r) => setTimeout(r, 500));
      const next = await snapshot();
      const settled = same(previous, next) ? next : undefined;
      previous = next;
      return settled;
    },
    { timeoutMs: 30_000 },
  );
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  for (const name of createdTags) await client.delete({ ...TAG, name }).catch(() => undefined);
  for (const name of createdRevisions) await client.delete({ ...CPR, name }).catch(() => undefined);
  if (channelConfigMapCreated) await client.delete(CHANNELS_CM).catch(() => undefined);
  await deleteNamespace(kc, namespace);
  client.close();
});

function withLogs<T>(fn: () => Promise<T>): () => Promise<T> {
  return async () => {
    try {
      return await fn();
    } catch (err) {
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}\n--- operator log ---\n${operatorLogTail(operator)}`,
      );
    }
  };
}

interface AdmissionCase {
  what: string;
  type: typeof CPR;
  name?: () => string;
  spec: () => unknown;
  /** What the API server's message must contain: the field's path and/or the rule's message. */
  expect: RegExp;
  /** Send it with kubectl (strict field validation, as users do) instead of a plain POST. */
  viaKubectl?: boolean;
}

const v = '1.29.6';
const ns = (): string => namespace;
const cpr = (spec: Record<string, unknown>) => () => ({ version: v, namespace: ns(), ...spec });
const istiod = (fields: Record<string, unknown>) => cpr({ istiod: fields });

const admissionCases: AdmissionCase[] = [
  {
    what: 'both version and channel',
    type: CPR,
    spec: cpr({ channel: 'regular' }),
    expect: /spec: Invalid value.*set exactly one of version and channel/,
  },
  {
    what: 'neither version nor channel',
    type: CPR,
    spec: () => ({ namespace: ns() }),
    expect: /spec: Invalid value.*set exactly one of version and channel/,
  },
  {
    what: 'a version without a patch number',
    type: CPR,
    spec: cpr({ version: '1.29' }),
    expect: /spec\.version/,
  },
  { what: 'a version that is a word', type: CPR, spec: cpr({ version: 'latest' }), expect: /spec\.version/ },
  {
    what: 'an unknown channel',
    type: CPR,
    spec: () => ({ channel: 'beta', namespace: ns() }),
    expect: /spec\.channel.*Unsupported value: "beta"/,
  },
  {
    what: 'a namespace that is not a DNS label',
    type: CPR,
    spec: cpr({ namespace: 'Istio_System' }),
    expect: /spec\.namespace/,
  },
  {
    what: 'a namespace longer than 63 characters',
    type: CPR,
    spec: cpr({ namespace: 'n'.repeat(64) }),
    expect: /spec\.namespace/,
  },
  { what: 'an empty hub', type: CPR, spec: cpr({ hub: '' }), expect: /spec\.hub/ },
  {
    what: 'an unknown imagePullPolicy',
    type: CPR,
    spec: cpr({ imagePullPolicy: 'Sometimes' }),
    expect: /spec\.imagePullPolicy.*Unsupported value/,
  },
  {
    what: 'an empty image pull secret name',
    type: CPR,
    spec: cpr({ imagePullSecrets: [''] }),
    expect: /spec\.imagePullSecrets\[0\]/,
  },
  {
    what: 'a negative istiod replica count',
    type: CPR,
    spec: istiod({ replicas: -1, autoscaling: { enabled: false } }),
    expect: /spec\.istiod\.replicas/,
  },
  {
    what: 'replicas while autoscaling is enabled',
    type: CPR,
    spec: istiod({ replicas: 3, autoscaling: { enabled: true } }),
    expect: /spec\.istiod: Invalid value.*replicas cannot be set while autoscaling is enabled/,
  },
  {
    what: 'minReplicas above maxReplicas',
    type: CPR,
    spec: istiod({ autoscaling: { minReplicas: 5, maxReplicas: 2 } }),
    expect: /spec\.istiod\.autoscaling: Invalid value.*minReplicas must not exceed maxReplicas/,
  },
  {
    what: 'zero minReplicas',
    type: CPR,
    spec: istiod({ autoscaling: { minReplicas: 0 } }),
    expect: /spec\.istiod\.autoscaling\.minReplicas/,
  },
  {
    what: 'a zero CPU target',
    type: CPR,
    spec: istiod({ autoscaling: { targetCPUUtilizationPercentage: 0 } }),
    expect: /spec\.istiod\.autoscaling\.targetCPUUtilizationPercentage/,
  },
  {
    what: 'both minAvailable and maxUnavailable',
    type: CPR,
    spec: istiod({ podDisruptionBudget: { minAvailable: 1, maxUnavailable: 1 } }),
    expect:
      /spec\.istiod\.podDisruptionBudget: Invalid value.*set at most one of minAvailable and maxUnavailable/,
  },
  {
    what: 'an unknown toleration operator',
    type: CPR,
    spec: istiod({ tolerations: [{ key: 'k', operator: 'Maybe' }] }),
    expect: /spec\.istiod\.tolerations\[0\]\.operator/,
  },
  {
    what: 'an env value that is not a string',
    type: CPR,
    spec: istiod({ env: { FOO: 1 } }),
    expect: /spec\.istiod\.env\.FOO/,
  },
  {
    what: 'an unknown access log encoding',
    type: CPR,
    spec: cpr({ meshConfig: { accessLogEncoding: 'XML' } }),
    expect: /spec\.meshConfig\.accessLogEncoding/,
  },
  {
    what: 'an unknown outbound traffic mode',
    type: CPR,
    spec: cpr({ meshConfig: { outboundTrafficPolicy: { mode: 'OPEN' } } }),
    expect: /spec\.meshConfig\.outboundTrafficPolicy\.mode/,
  },
  {
    what: 'an unknown proxy log level',
    type: CPR,
    spec: cpr({ proxy: { logLevel: 'loud' } }),
    expect: /spec\.proxy\.logLevel/,
  },
  {
    what: 'an unknown webhook failure policy',
    type: CPR,
    spec: cpr({ injection: { failurePolicy: 'Maybe' } }),
    expect: /spec\.injection\.failurePolicy/,
  },
  {
    what: 'a webhook timeout above 30 s',
    type: CPR,
    spec: cpr({ injection: { timeoutSeconds: 31 } }),
    expect: /spec\.injection\.timeoutSeconds/,
  },
  {
    what: 'a custom injection template with a name that is not a template name',
    type: CPR,
    spec: cpr({ injection: { templates: { 'spire template': 'spec: {}' } } }),
    expect: /template names: at most 63 characters/,
  },
  {
    what: 'more than 16 custom injection templates',
    type: CPR,
    spec: cpr({
      injection: {
        templates: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`t${i}`, 'spec: {}'])),
      },
    }),
    expect: /spec\.injection\.templates: Too many: 17: must have at most 16 items/,
  },
  {
    what: 'a misspelt field',
    type: CPR,
    spec: () => ({ versoin: v, version: v, namespace: ns() }),
    expect: /unknown field "spec\.versoin"/,
    viaKubectl: true,
  },
  {
    what: 'a revision name longer than 39 characters',
    type: CPR,
    name: () => `r${'x'.repeat(39)}`,
    spec: cpr({}),
    expect: /at most 39 characters/,
  },
  { what: 'a tag without a revision', type: TAG, spec: () => ({ revision: '' }), expect: /spec\.revision/ },
  {
    what: 'a tag pointing at a name that is not a DNS label',
    type: TAG,
    spec: () => ({ revision: 'Not_A_Name' }),
    expect: /spec\.revision/,
  },
  {
    what: 'a tag pointing at a name longer than a revision may be',
    type: TAG,
    spec: () => ({ revision: 'r'.repeat(40) }),
    expect: /spec\.revision/,
  },
  { what: 'a tag without a spec', type: TAG, spec: () => undefined, expect: /spec: Required value/ },
  {
    what: 'a tag named longer than 43 characters',
    type: TAG,
    name: () => `t${'x'.repeat(43)}`,
    spec: () => ({ revision: healthy }),
    expect: /at most 43 characters/,
  },
];

describe('invalid specs refused at admission', () => {
  test.each(admissionCases.map((c) => [c.what, c] as const))(
    '%s is refused with a message naming the field',
    (_what, c) =>
      withLogs(async () => {
        const name = c.name?.() ?? short('bad');
        const spec = c.spec();
        const obj = { ...c.type, metadata: { name }, ...(spec === undefined ? {} : { spec }) } as KubeObject;
        (c.type === TAG ? createdTags : createdRevisions).push(name);
        if (c.viaKubectl) {
          let stderr = '';
          try {
            execFileSync(
              clusterBinary('kubectl'),
              ['--kubeconfig', testKubeconfigPath(), 'create', '-f', '-'],
              {
                input: JSON.stringify(obj),
                stdio: ['pipe', 'pipe', 'pipe'],
              },
            );
          } catch (err) {
            stderr = String((err as { stderr?: Buffer }).stderr ?? err);
          }
          expect(stderr).toMatch(c.expect);
        } else {
          let refused: unknown;
          try {
            await client.create(obj);
          } catch (err) {
            refused = err;
          }
          expect(isApiError(refused)).toBe(true);
          const error = refused as { code: number; message: string };
          expect({ code: error.code, message: error.message }).toEqual({
            code: 422,
            message: expect.stringMatching(c.expect),
          });
        }
        expect(await client.getOptional({ ...c.type, name })).toBeUndefined();
      })(),
  );

  test(
    'a namespace change on an existing revision is refused as immutable',
    withLogs(async () => {
      let refused: unknown;
      try {
        await apply(CPR, healthy, { version: '1.29.6', namespace: 'somewhere-else' });
      } catch (err) {
        refused = err;
      }
      expect((refused as Error | undefined)?.message).toMatch(
        /spec\.namespace: Invalid value.*namespace is immutable/,
      );
    }),
  );
});

async function waitForReconciledFalse(type: typeof CPR, name: string, reason: string): Promise<Condition> {
  return waitFor(
    `${type.kind} ${name} Reconciled=False (${reason})`,
    async () => {
      const obj = await client.getOptional<Obj>({ ...type, name });
      const c = obj?.status?.conditions?.find((x) => x.type === 'Reconciled');
      return c?.status === 'False' &&
        c.reason === reason &&
        c.observedGeneration === obj?.metadata?.generation
        ? c
        : undefined;
    },
    { timeoutMs: 30_000 },
  );
}

async function ownedCount(name: string): Promise<number> {
  let count = 0;
  for (const type of OWNED)
    count += (await client.listAll(type, { labelSelector: `istio.io/rev=${name}` })).items.length;
  return count;
}

describe('invalid specs only the operator can judge', () => {
  test.each([
    ['a version meshrev does not support', 'UnsupportedVersion', '1.10.0', /1\.10\.0/],
    ['a future major version', 'UnsupportedVersion', '2.0.0', /2\.0\.0/],
  ] as const)(
    '%s is Reconciled=False with reason %s and renders nothing',
    (_what, reason, version, message) =>
      withLogs(async () => {
        const name = short('unsupported');
        createdRevisions.push(name);
        await apply(CPR, name, { version, namespace });
        const c = await waitForReconciledFalse(CPR, name, reason);
        expect(c.message).toMatch(message);
        expect(await ownedCount(name)).toBe(0);
      })(),
  );

  test(
    'a namespace that does not exist is Reconciled=False with reason NamespaceNotFound and renders nothing',
    withLogs(async () => {
      const name = short('nons');
      const missing = short('no-such-namespace');
      createdRevisions.push(name);
      await apply(CPR, name, { version: '1.29.6', namespace: missing });
      const c = await waitForReconciledFalse(CPR, name, 'NamespaceNotFound');
      expect(c.message).toContain(missing);
      expect(await ownedCount(name)).toBe(0);
    }),
  );

  test(
    'a tag pointing at a missing revision is Reconciled=False with reason RevisionNotFound and renders no webhook',
    withLogs(async () => {
      const name = short('tag-nowhere');
      const missing = short('missing-rev');
      createdTags.push(name);
      await apply(TAG, name, { revision: missing });
      const c = await waitForReconciledFalse(TAG, name, 'RevisionNotFound');
      expect(c.message).toContain(missing);
      expect(
        await client.getOptional({
          apiVersion: 'admissionregistration.k8s.io/v1',
          kind: 'MutatingWebhookConfiguration',
          name: `istio-revision-tag-${name}`,
        }),
      ).toBeUndefined();
    }),
  );

  test(
    'a tag with the name of an existing revision is Reconciled=False with reason NameConflict',
    withLogs(async () => {
      createdTags.push(healthy);
      await apply(TAG, healthy, { revision: short('elsewhere') });
      const c = await waitForReconciledFalse(TAG, healthy, 'NameConflict');
      expect(c.message).toContain(`ControlPlaneRevision "${healthy}" existed first`);
      await client.delete({ ...TAG, name: healthy });
    }),
  );

  test(
    'a revision with the name of an existing tag is Reconciled=False with reason NameConflict and renders no webhook',
    withLogs(async () => {
      const name = short('taken');
      createdTags.push(name);
      await apply(TAG, name, { revision: short('elsewhere') });
      await waitForReconciledFalse(TAG, name, 'RevisionNotFound');
      // creationTimestamp has one-second precision and a tie goes to the revision: create it a second later.
      const tag = await client.get<Obj>({ ...TAG, name });
      const tagCreated = Date.parse(tag.metadata?.creationTimestamp ?? '');
      await waitFor('the clock to pass the tag creation second', () => Date.now() >= tagCreated + 1000);
      createdRevisions.push(name);
      await apply(CPR, name, { version: '1.29.6', namespace });
      const c = await waitForReconciledFalse(CPR, name, 'NameConflict');
      expect(c.message).toContain(`RevisionTag "${name}" existed first`);
      const webhooks = await client.listAll(
        { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' },
        {
          labelSelector: `istio.io/rev=${name}`,
        },
      );
      expect(webhooks.items).toEqual([]);
    }),
  );

  test(
    'a channel table entry naming an unsupported version is reported, and the revision holds its version',
    withLogs(async () => {
      const existing = await client.getOptional(CHANNELS_CM);
      expect(existing).toBeUndefined();
      const configMap = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: CHANNELS_CM.name, namespace: CHANNELS_CM.namespace },
      };
      const name = short('rapid');
      createdRevisions.push(name);
      await apply(CPR, name, { channel: 'rapid', namespace });
      const reconcileState = (status: string, reason: string) =>
        waitFor(
          `${name} Reconciled=${status} (${reason})`,
          async () => {
            const obj = await client.get<Obj>({ ...CPR, name });
            const c = obj.status?.conditions?.find((x) => x.type === 'Reconciled');
            return c?.status === status &&
              c.reason === reason &&
              c.observedGeneration === obj.metadata?.generation
              ? { obj, c }
              : undefined;
          },
          { timeoutMs: 30_000 },
        );
      const before = await reconcileState('True', 'Reconciled');
      expect(before.obj.status?.version).toBe('1.30.3');

      await client.apply({ ...configMap, data: { rapid: '1.99.0' } } as KubeObject, {
        fieldManager: 'meshrev-tests',
        force: true,
      });
      channelConfigMapCreated = true;
      const held = await reconcileState('False', 'InvalidChannelTable');
      expect(held.c.message).toContain('rapid');
      expect(held.obj.status?.version).toBe('1.30.3');
      await client.delete(CHANNELS_CM);
      channelConfigMapCreated = false;
    }),
  );
});

test(
  'none of it disturbed the healthy revision: it and its objects keep their resourceVersions',
  withLogs(async () => {
    const after = await snapshot();
    const changed = [...baseline].filter(([k, rv]) => after.get(k) !== rv).map(([k]) => k);
    const added = [...after.keys()].filter((k) => !baseline.has(k));
    expect({ changed, added }).toEqual({ changed: [], added: [] });
    const cpr = await client.get<Obj>({ ...CPR, name: healthy });
    expect(cpr.status?.conditions?.find((c) => c.type === 'Reconciled')?.status).toBe('True');
    console.log(
      `[resilience] invalid specs: ${JSON.stringify({ admissionCases: admissionCases.length + 1, operatorCases: 7, healthyObjectsChecked: after.size })}`,
    );
  }),
);
