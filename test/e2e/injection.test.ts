// The embedded sidecar injector end to end: kube-apiserver calls the in-process injector over TLS it
// verifies against the caBundle meshrev wrote into the revision's webhook configuration; pods made by
// kube-controller-manager from a Deployment and bound to the KWOK node carry the sidecar. `meshrev
// kube-inject` renders the same Deployment offline with the same engine and the same result.
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import { join } from 'node:path';
import { stringify, parse } from 'yaml';

import { API_GROUP_VERSION } from '../../src/crds/constants.js';
import { ApiError, type KubeClient } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import { componentLogs, testKubeconfigPath, uniqueName, waitFor } from '../support/kube.js';
import {
  installCrds,
  operatorLogTail,
  repoRoot,
  startTestOperator,
  testClient,
  type TestOperator,
} from '../support/operator.js';
import { testNamespace, webhookConfigurationWithCaBundle } from './support.js';

interface Container {
  name: string;
  image?: string;
  restartPolicy?: string;
  volumeMounts?: { name: string }[];
  [field: string]: unknown;
}
interface PodSpec {
  nodeName?: string;
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string }[];
  [field: string]: unknown;
}
interface Pod extends KubeObject {
  spec: PodSpec;
  status?: { phase?: string };
}
interface Deployment extends KubeObject {
  spec: {
    template: {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
  };
}

const CPR = { apiVersion: API_GROUP_VERSION, kind: 'ControlPlaneRevision' };
const NAMESPACE = { apiVersion: 'v1', kind: 'Namespace' };
const FIELD_MANAGER = 'meshrev-tests';
const KWOK_NODE = 'kwok-node-0';

const rev = uniqueName('inj');
const revisionNamespace = 'istio-system';
let client: KubeClient;
let operator: TestOperator;
let caBundle = '';
const namespaces: string[] = [];

function withLogs<T>(fn: () => Promise<T>): () => Promise<T> {
  return async () => {
    try {
      return await fn();
    } catch (err) {
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}\n--- operator log ---\n${operatorLogTail(operator)}\n` +
          `--- components ---\n${componentLogs()}`,
      );
    }
  };
}

function deployment(name: string, namespace: string): Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name, version: 'v1' } },
        spec: {
          containers: [
            {
              name: 'web',
              image: 'docker.io/library/nginx:1.27',
              ports: [{ name: 'http', containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/ready', port: 8080 } },
            },
          ],
        },
      },
    },
  } as Deployment;
}

function pod(
  name: string,
  namespace: string,
  labels: Record<string, string> = {},
  annotations: Record<string, string> = {},
): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name, ...labels }, annotations },
    spec: {
      containers: [{ name: 'app', image: 'docker.io/library/busybox:1.36', command: ['sleep', '3600'] }],
    },
  };
}

const proxyOf = (p: Pod): Container | undefined =>
  [...(p.spec.initContainers ?? []), ...p.spec.containers].find((c) => c.name === 'istio-proxy');

/** A counter of the operator's /metrics with one `result` label. */
async function counter(name: string, result: string): Promise<number> {
  const text = await operator.metrics.expose();
  const match = new RegExp(`^${name}\\{result="${result}"\\} (\\d+)$`, 'm').exec(text);
  if (!match) throw new Error(`no ${name}{result="${result}"} in /metrics`);
  return Number(match[1]);
}

const cacheLookups = (result: 'hit' | 'miss') => counter('meshrev_injection_cache_lookups_total', result);

async function podsOf(namespace: string, app: string): Promise<Pod[]> {
  const list = await client.list<Pod>(
    { apiVersion: 'v1', kind: 'Pod' },
    { namespace, labelSelector: `app=${app}` },
  );
  return list.items;
}

beforeAll(async () => {
  client = testClient();
  await installCrds(client);
  await client.apply({ ...NAMESPACE, metadata: { name: revisionNamespace } } as KubeObject, {
    fieldManager: FIELD_MANAGER,
    force: true,
  });
  operator = await startTestOperator('injection', ['--create-default-tag=false']);
  await client.apply({ ...CPR, metadata: { name: rev }, spec: { version: '1.29.6' } } as KubeObject, {
    fieldManager: FIELD_MANAGER,
    force: true,
  });
  // The webhook configuration carries the injector's CA once meshrev has applied it.
  const mwc = await webhookConfigurationWithCaBundle(client, rev);
  caBundle = mwc.webhooks?.[0]?.clientConfig.caBundle ?? '';
});

afterAll(async () => {
  for (const name of namespaces) await client.delete({ ...NAMESPACE, name }).catch(() => undefined);
  await client?.delete({ ...CPR, name: rev }).catch(() => undefined);
  await operator?.stop();
  client?.close();
});

describe('the sidecar injector behind kube-apiserver', () => {
  let injectedNamespace = '';
  const app = 'reviews';
  let injectedPod: Pod;

  test(
    'injects the pods kube-controller-manager makes for a Deployment in a namespace labelled with the revision',
    withLogs(async () => {
      injectedNamespace = await testNamespace(client, 'inj-rev', { 'istio.io/rev': rev }, namespaces);
      await client.create(deployment(app, injectedNamespace));
      injectedPod = await waitFor(
        `a Running pod of Deployment ${app} on ${KWOK_NODE}`,
        async () =>
          (await podsOf(injectedNamespace, app)).find(
            (p) => p.spec.nodeName === KWOK_NODE && p.status?.phase === 'Running',
          ),
        { timeoutMs: 45_000 },
      );
      const proxy = proxyOf(injectedPod);
      expect(proxy).toBeDefined();
      // The KWOK node's kubelet is recent enough for native sidecars: istio-proxy is an init container
      // that keeps running, placed after istio-init.
      expect(injectedPod.spec.initContainers?.map((c) => c.name)).toEqual(['istio-init', 'istio-proxy']);
      expect(proxy?.restartPolicy).toBe('Always');
      expect(proxy?.image).toBe('docker.io/istio/proxyv2:1.29.6');
      expect(injectedPod.spec.containers.map((c) => c.name)).toEqual(['web']);
      const annotations = injectedPod.metadata?.annotations ?? {};
      expect(annotations['istio.io/rev']).toBe(rev);
      const status = JSON.parse(annotations['sidecar.istio.io/status'] ?? '{}') as {
        revision?: string;
        initContainers?: string[];
      };
      expect(status.revision).toBe(rev);
      expect(status.initContainers).toEqual(['istio-init', 'istio-proxy']);
      expect(injectedPod.metadata?.labels).toMatchObject({
        'security.istio.io/tlsMode': 'istio',
        'service.istio.io/canonical-name': app,
        'service.istio.io/canonical-revision': 'v1',
      });
      // The pod was a cache miss, rendered by the operator's render thread (not the main thread's fallback).
      expect(await counter('meshrev_injector_render_jobs_total', 'rendered')).toBeGreaterThanOrEqual(1);
      for (const fallback of ['lost', 'failed']) {
        expect(await counter('meshrev_injector_render_jobs_total', fallback)).toBe(0);
      }
    }),
  );

  test(
    'answers the further replicas of a scaled Deployment from the verdict cache with the same sidecar',
    withLogs(async () => {
      // A ReplicaSet's pods reach the webhook identical but for their token volume's name (names are generated
      // after admission). The first replica leaves its key and the second's verdict is kept, so the third and
      // fourth are cache hits; they must still carry the same sidecar.
      const hitsBefore = await cacheLookups('hit');
      await client.patch(
        { apiVersion: 'apps/v1', kind: 'Deployment', namespace: injectedNamespace, name: app },
        { spec: { replicas: 4 } },
        'application/merge-patch+json',
      );
      const pods = await waitFor(
        `4 Running pods of Deployment ${app}`,
        async () => {
          const running = (await podsOf(injectedNamespace, app)).filter((p) => p.status?.phase === 'Running');
          return running.length === 4 ? running : undefined;
        },
        { timeoutMs: 45_000 },
      );
      // Each replica has its own service-account token volume name; everything else must be identical.
      const sidecarOf = (p: Pod) =>
        JSON.stringify({ init: p.spec.initContainers, volumes: p.spec.volumes }).replace(
          /kube-api-access-[a-z0-9]{5}/g,
          'kube-api-access-*',
        );
      for (const replica of pods) expect(sidecarOf(replica)).toBe(sidecarOf(injectedPod));
      expect((await cacheLookups('hit')) - hitsBefore).toBeGreaterThanOrEqual(2);
      await client.patch(
        { apiVersion: 'apps/v1', kind: 'Deployment', namespace: injectedNamespace, name: app },
        { spec: { replicas: 1 } },
        'application/merge-patch+json',
      );
    }),
  );

  test(
    'leaves a pod labelled sidecar.istio.io/inject=false alone',
    withLogs(async () => {
      const name = uniqueName('opted-out');
      const created = await client.create(
        pod(name, injectedNamespace, { 'sidecar.istio.io/inject': 'false' }),
      );
      expect(proxyOf(created)).toBeUndefined();
      expect(created.spec.initContainers ?? []).toEqual([]);
      expect(created.metadata?.annotations?.['sidecar.istio.io/status']).toBeUndefined();
    }),
  );

  test(
    'injects nothing in a namespace labelled istio-injection=disabled, even for a pod asking for the revision',
    withLogs(async () => {
      const disabled = await testNamespace(
        client,
        'inj-off',
        { 'istio-injection': 'disabled', 'istio.io/rev': rev },
        namespaces,
      );
      const created = await client.create(pod(uniqueName('plain'), disabled, { 'istio.io/rev': rev }));
      expect(proxyOf(created)).toBeUndefined();
      expect(created.metadata?.annotations?.['sidecar.istio.io/status']).toBeUndefined();
    }),
  );

  test(
    'refuses a pod with an invalid traffic annotation with a message naming the annotation',
    withLogs(async () => {
      const bad = pod(
        uniqueName('bad-ranges'),
        injectedNamespace,
        {},
        {
          'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.0.0.0/33',
        },
      );
      const error = await client.create(bad).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(ApiError);
      const message = (error as ApiError).message;
      expect(message).toContain('rev.namespace.sidecar-injector.istio.io');
      expect(message).toContain('traffic.sidecar.istio.io/includeOutboundIPRanges');
      expect(
        await client.getOptional({
          apiVersion: 'v1',
          kind: 'Pod',
          namespace: injectedNamespace,
          name: bad.metadata?.name ?? '',
        }),
      ).toBeUndefined();
    }),
  );

  test(
    'refuses a review for a revision that does not exist, answered over the TLS meshrev serves',
    withLogs(async () => {
      const uid = '2c7d6e1a-0000-4000-8000-000000000001';
      const review = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid,
          kind: { group: '', version: 'v1', kind: 'Pod' },
          resource: { group: '', version: 'v1', resource: 'pods' },
          namespace: injectedNamespace,
          operation: 'CREATE',
          object: pod('direct', injectedNamespace),
        },
      };
      const reply = await postReview(operator.injectorPort, '/inject/nope', review);
      expect(reply.status).toBe(200);
      const body = JSON.parse(reply.body) as {
        apiVersion: string;
        response: { uid: string; allowed: boolean; patch?: string; status?: { message?: string } };
      };
      expect(body.apiVersion).toBe('admission.k8s.io/v1');
      expect(body.response.uid).toBe(uid);
      expect(body.response.allowed).toBe(false);
      expect(body.response.patch).toBeUndefined();
      expect(body.response.status?.message).toContain('"nope"');
    }),
  );

  test(
    'meshrev kube-inject renders the same Deployment into the pod template the webhook produced',
    withLogs(async () => {
      // The Deployment as stored (`kubectl get deploy -o yaml | meshrev kube-inject -f -`): the webhook saw
      // its pod with kube-apiserver's defaults (port protocols, probe schemes and timeouts), which end up in
      // ISTIO_META_POD_PORTS and ISTIO_KUBE_APP_PROBERS, so kube-inject must see them too.
      const stored = await client.get<Deployment>({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        namespace: injectedNamespace,
        name: app,
      });
      const manifest = stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: app, namespace: injectedNamespace },
        spec: stored.spec,
      });
      const output = execFileSync(
        process.execPath,
        [
          join(repoRoot, 'dist', 'src', 'cli', 'main.js'),
          'kube-inject',
          '-f',
          '-',
          '--revision',
          rev,
          '--kubelet-minor',
          String(await kwokKubeletMinor()),
          '--kubeconfig',
          testKubeconfigPath(),
        ],
        { input: manifest, encoding: 'utf8' },
      );
      const rendered = parse(output) as Deployment;
      expect(rendered.metadata?.name).toBe(app);
      // Let kube-apiserver default the rendered template the way it defaulted the webhook's pod, without
      // storing anything (under another name, as the Deployment exists; the template is already rendered):
      // then both went through the same defaulting and can be compared field by field.
      const defaulted = await client.create(
        { ...rendered, metadata: { ...rendered.metadata, name: `${app}-kube-inject` } },
        { dryRun: true, fieldManager: FIELD_MANAGER },
      );
      expect(comparablePod(defaulted.spec.template)).toEqual(comparablePod(injectedPod));
    }),
  );
});

async function kwokKubeletMinor(): Promise<number> {
  const node = await client.get<KubeObject & { status?: { nodeInfo?: { kubeletVersion?: string } } }>({
    apiVersion: 'v1',
    kind: 'Node',
    name: KWOK_NODE,
  });
  const match = /^v?1\.(\d+)/.exec(node.status?.nodeInfo?.kubeletVersion ?? '');
  if (!match) throw new Error(`node ${KWOK_NODE} reports no kubelet version`);
  return Number(match[1]);
}

/**
 * The documented normalisation for comparing a pod template with a created pod: drop what only a Pod gets
 * after the webhooks (the ServiceAccount token volume and its mounts, scheduling and the ServiceAccount,
 * default tolerations and priority, the pod-template-hash label), empty lists, and the `fieldRef.apiVersion`
 * kube-apiserver fills in.
 */
function comparablePod(source: { metadata?: KubeObject['metadata']; spec: PodSpec }): unknown {
  const isTokenVolume = (name: string): boolean => name.startsWith('kube-api-access-');
  const containers = (list: Container[] | undefined): Container[] | undefined =>
    list?.map((c) => ({ ...c, volumeMounts: c.volumeMounts?.filter((m) => !isTokenVolume(m.name)) }));
  const {
    nodeName: _node,
    serviceAccount: _sa,
    serviceAccountName: _san,
    tolerations: _tolerations,
    priority: _priority,
    preemptionPolicy: _preemption,
    enableServiceLinks: _links,
    ...spec
  } = source.spec;
  const { 'pod-template-hash': _hash, ...labels } = source.metadata?.labels ?? {};
  return scrub({
    labels,
    annotations: source.metadata?.annotations ?? {},
    spec: {
      ...spec,
      containers: containers(spec.containers),
      initContainers: containers(spec.initContainers),
      volumes: spec.volumes?.filter((v) => !isTokenVolume(v.name)),
    },
  });
}

function scrub(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map((v) => scrub(v));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => !(key === 'fieldRef' && k === 'apiVersion'))
        .map(([k, v]) => [k, scrub(v, k)])
        .filter(([, v]) => v !== undefined),
    );
  }
  return value;
}

function postReview(port: number, path: string, review: unknown): Promise<{ status: number; body: string }> {
  const payload = JSON.stringify(review);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        servername: 'localhost',
        // Trust exactly the CA meshrev wrote into the webhook configuration, as kube-apiserver does.
        ca: Buffer.from(caBundle, 'base64').toString('utf8'),
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
