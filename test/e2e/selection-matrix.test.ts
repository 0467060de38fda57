// Which revision injects a pod, for the namespace/pod label combinations of Istio's decision matrix
// (istio-injection.md §1.5, Setup A/B style), decided by the real kube-apiserver evaluating meshrev's
// webhook selectors and by meshrev's injector: two revisions, the `default` tag on the first and a second
// tag on the other. Every namespace and pod is created first, then each pod's `istio.io/rev` annotation
// (written by the injector) is compared with the row.
import * as k8s from '@kubernetes/client-node';

import type { KubeClient } from '../../src/runtime/kube.js';
import {
  createTestNamespace,
  deleteNamespace,
  testKubeConfig,
  uniqueName,
  waitFor,
} from '../support/kube.js';
import { installCrds, startTestOperator, testClient, type TestOperator } from '../support/operator.js';
import {
  applyObject,
  CPR,
  deleteRevision,
  hasProxy,
  injectedBy,
  MWC,
  TAG,
  withLogs,
  type PodView,
} from './support.js';

const R1 = uniqueName('mx-one');
const R2 = uniqueName('mx-two');
const T = uniqueName('mx-tag');
const DEFAULT = 'default';

type Labels = Record<string, string>;
interface Row {
  /** Namespace labels: istio-injection, istio.io/rev. */
  ns: Labels;
  /** Pod labels: sidecar.istio.io/inject, istio.io/rev. */
  pod: Labels;
  /** The revision that must inject the pod, or undefined for none. */
  want: string | undefined;
  why: string;
}

const inject = (value: string): Labels => ({ 'sidecar.istio.io/inject': value });
const rev = (value: string): Labels => ({ 'istio.io/rev': value });
const injection = (value: string): Labels => ({ 'istio-injection': value });

// R1 ← tag `default`, R2 ← tag T.
const ROWS: Row[] = [
  { ns: {}, pod: {}, want: undefined, why: 'no label anywhere: nothing matches' },
  { ns: {}, pod: rev(R1), want: R1, why: 'unlabelled namespace, pod selects a revision (rev.object)' },
  { ns: {}, pod: rev(T), want: R2, why: 'unlabelled namespace, pod selects a tag (rev.object of the tag)' },
  { ns: {}, pod: rev(DEFAULT), want: R1, why: 'pod istio.io/rev=default selects the default tag' },
  {
    ns: {},
    pod: inject('true'),
    want: R1,
    why: 'sidecar.istio.io/inject=true goes to the default tag (object.*)',
  },
  {
    ns: {},
    pod: { ...inject('true'), ...rev(R2) },
    want: R2,
    why: 'inject=true with a pod revision: that revision',
  },
  { ns: rev(R1), pod: rev(T), want: R1, why: 'the namespace revision wins over the pod revision' },
  {
    ns: rev(T),
    pod: { ...inject('true'), ...rev(R1) },
    want: R2,
    why: 'namespace selects a tag; pod labels ignored',
  },
  {
    ns: rev(R2),
    pod: inject('false'),
    want: undefined,
    why: 'pod opts out with sidecar.istio.io/inject=false',
  },
  { ns: rev(DEFAULT), pod: {}, want: R1, why: 'namespace istio.io/rev=default selects the default tag' },
  { ns: rev('no-such-revision'), pod: {}, want: undefined, why: 'namespace names no revision or tag' },
  { ns: injection('enabled'), pod: {}, want: R1, why: 'istio-injection=enabled goes to the default tag' },
  {
    ns: { ...injection('enabled'), ...rev(R2) },
    pod: rev(R2),
    want: R1,
    why: 'istio-injection=enabled wins over any istio.io/rev',
  },
  { ns: injection('enabled'), pod: inject('false'), want: undefined, why: 'enabled namespace, pod opts out' },
  {
    ns: { ...injection('disabled'), ...rev(R1) },
    pod: { ...inject('true'), ...rev(R1) },
    want: undefined,
    why: 'istio-injection=disabled: nothing, whatever else is set',
  },
  {
    ns: injection('foo'),
    pod: { ...inject('true'), ...rev(R1) },
    want: undefined,
    why: 'any other value blocks too',
  },
];

const kc = testKubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
let client: KubeClient;
let operator: TestOperator | undefined;
const namespaces = new Map<string, string>();
let previousDefaultTag: string | undefined;

function nsKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort());
}

beforeAll(async () => {
  client = testClient();
  await installCrds(client);
  await applyObject(client, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } });
  operator = await startTestOperator('matrix', ['--create-default-tag=false']);
  // The `default` tag is cluster-wide: remember where another suite left it, point it at R1 for this suite.
  const existing = await client.getOptional<{ spec?: { revision?: string } }>({ ...TAG, name: DEFAULT });
  previousDefaultTag = existing?.spec?.revision;
  await applyObject(client, { ...CPR, metadata: { name: R1 }, spec: { version: '1.29.6' } });
  await applyObject(client, { ...CPR, metadata: { name: R2 }, spec: { version: '1.30.3' } });
  await applyObject(client, { ...TAG, metadata: { name: DEFAULT }, spec: { revision: R1 } });
  await applyObject(client, { ...TAG, metadata: { name: T }, spec: { revision: R2 } });
  const webhookConfigurations = [
    `istio-sidecar-injector-${R1}`,
    `istio-sidecar-injector-${R2}`,
    `istio-revision-tag-${DEFAULT}`,
    `istio-revision-tag-${T}`,
  ];
  await waitFor(
    'the webhook configurations of both revisions and both tags, pointing where this suite says',
    async () => {
      for (const name of webhookConfigurations) {
        const mwc = await client.getOptional<{ metadata?: { labels?: Labels } }>({ ...MWC, name });
        if (!mwc) return false;
        if (name === `istio-revision-tag-${DEFAULT}` && mwc.metadata?.labels?.['istio.io/rev'] !== R1)
          return false;
      }
      return true;
    },
    { timeoutMs: 60_000 },
  );
  const distinct = [...new Map(ROWS.map((row) => [nsKey(row.ns), row.ns])).values()];
  const created = await Promise.all(distinct.map((labels) => createTestNamespace(kc, 'matrix', labels)));
  distinct.forEach((labels, i) => namespaces.set(nsKey(labels), created[i] ?? ''));
}, 120_000);

afterAll(async () => {
  await Promise.all([...namespaces.values()].map((ns) => deleteNamespace(kc, ns)));
  await client.delete({ ...TAG, name: T }).catch(() => undefined);
  if (previousDefaultTag === undefined) await client.delete({ ...TAG, name: DEFAULT }).catch(() => undefined);
  else
    await applyObject(client, {
      ...TAG,
      metadata: { name: DEFAULT },
      spec: { revision: previousDefaultTag },
    });
  for (const name of [R1, R2]) await deleteRevision(client, name).catch(() => undefined);
  await operator?.stop();
  client?.close();
}, 120_000);

test(
  'each namespace/pod label combination is injected by the revision Istio would pick, or by none',
  withLogs(
    () => operator,
    async () => {
      const results = await Promise.all(
        ROWS.map(async (row, i) => {
          const namespace = namespaces.get(nsKey(row.ns)) ?? '';
          const created = (await core.createNamespacedPod({
            namespace,
            body: {
              metadata: { name: `row-${i}`, labels: row.pod },
              spec: { containers: [{ name: 'app', image: 'docker.io/istio/examples-helloworld-v1:1.0' }] },
            },
          })) as unknown as PodView;
          return { row, injected: injectedBy(created), proxy: hasProxy(created) };
        }),
      );
      const describe = (r: (typeof results)[number]) =>
        `ns ${JSON.stringify(r.row.ns)} pod ${JSON.stringify(r.row.pod)} (${r.row.why}) => ${r.injected ?? 'NONE'}`;
      const actual = results.map((r) => ({ case: describe({ ...r, injected: r.injected }), proxy: r.proxy }));
      const expected = results.map((r) => ({
        case: describe({ ...r, injected: r.row.want }),
        proxy: r.row.want !== undefined,
      }));
      expect(actual).toEqual(expected);
    },
  ),
);

test(
  'with enableNamespacesByDefault on the default tag’s revision, unlabelled namespaces are injected, system ones are not',
  withLogs(
    () => operator,
    async () => {
      const autoWebhook = async (): Promise<boolean> => {
        const mwc = await client.getOptional<{ webhooks?: { name: string }[] }>({
          ...MWC,
          name: `istio-revision-tag-${DEFAULT}`,
        });
        return (mwc?.webhooks ?? []).some((w) => w.name === 'auto.sidecar-injector.istio.io');
      };
      const pod = async (namespace: string, name: string, labels: Labels): Promise<PodView> =>
        (await core.createNamespacedPod({
          namespace,
          body: {
            metadata: { name, labels },
            spec: { containers: [{ name: 'app', image: 'docker.io/istio/examples-helloworld-v1:1.0' }] },
          },
        })) as unknown as PodView;
      const systemPod = uniqueName('auto-system');
      await applyObject(client, {
        ...CPR,
        metadata: { name: R1 },
        spec: { version: '1.29.6', injection: { enableNamespacesByDefault: true } },
      });
      try {
        await waitFor('the auto webhook on the default tag', autoWebhook, { timeoutMs: 30_000 });
        const unlabelled = namespaces.get(nsKey({})) ?? '';
        const plain = await pod(unlabelled, 'auto-plain', {});
        const otherValue = await pod(unlabelled, 'auto-other-value', inject('yes'));
        const pinned = await pod(unlabelled, 'auto-pinned', rev(R2));
        const system = await pod('kube-system', systemPod, {});
        expect({
          plain: injectedBy(plain),
          otherValue: injectedBy(otherValue),
          pinned: injectedBy(pinned),
          system: injectedBy(system),
        }).toEqual({ plain: R1, otherValue: undefined, pinned: R2, system: undefined });
      } finally {
        await core.deleteNamespacedPod({ namespace: 'kube-system', name: systemPod }).catch(() => undefined);
        await applyObject(client, { ...CPR, metadata: { name: R1 }, spec: { version: '1.29.6' } });
        await waitFor('the auto webhook to be gone', async () => !(await autoWebhook()), {
          timeoutMs: 30_000,
        });
      }
    },
  ),
);
