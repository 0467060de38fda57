// Istio's ProxyConfig resources (networking.istio.io/v1beta1) end to end: the operator starts while the CRD is
// not installed (the optional-resource informer lists nothing and re-polls), the CRD and resources appear, and
// pods created through kube-apiserver get the layers istiod would give them: the root namespace's mesh-wide
// ProxyConfig, then their namespace's, then the first one whose selector matches (later wins; proxyMetadata
// merged), as istio-proxy env and in PROXY_CONFIG. Updates reach new pods past the verdict cache, and resources
// labelled for another revision are ignored.
import type { KubeClient } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import { uniqueName, waitFor } from '../support/kube.js';
import { startTestOperator, testClient, installCrds, type TestOperator } from '../support/operator.js';
import {
  applyObject,
  CPR,
  deleteRevision,
  testNamespace,
  webhookConfigurationWithCaBundle,
  withLogs,
} from './support.js';

interface EnvVar {
  name: string;
  value?: string;
}
interface Container {
  name: string;
  image?: string;
  restartPolicy?: string;
  env?: EnvVar[];
}
interface Pod extends KubeObject {
  spec: { containers: Container[]; initContainers?: Container[] };
}
interface ProxyConfigJson {
  concurrency?: number;
  proxyMetadata?: Record<string, string>;
}
type Crd = KubeObject & { status?: { conditions?: { type: string; status: string }[] } };

const CRD_NAME = 'proxyconfigs.networking.istio.io';
const CRD_REF = { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: CRD_NAME };
const PROXY_CONFIG = { apiVersion: 'networking.istio.io/v1beta1', kind: 'ProxyConfig' };
const NAMESPACE = { apiVersion: 'v1', kind: 'Namespace' };
const POD = { apiVersion: 'v1', kind: 'Pod' };
const ROOT_NAMESPACE = 'istio-system';

/** A minimal ProxyConfig CRD: the kind's names and a spec the API server keeps as written. */
const PROXY_CONFIG_CRD = {
  apiVersion: CRD_REF.apiVersion,
  kind: CRD_REF.kind,
  metadata: { name: CRD_NAME, labels: { 'meshrev.dev/test': 'true' } },
  spec: {
    group: 'networking.istio.io',
    scope: 'Namespaced',
    names: {
      kind: 'ProxyConfig',
      listKind: 'ProxyConfigList',
      plural: 'proxyconfigs',
      singular: 'proxyconfig',
    },
    versions: [
      {
        name: 'v1beta1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        },
      },
    ],
  },
};

const rev = uniqueName('pxc');
const meshWide = uniqueName('mesh-wide');
let client: KubeClient;
let operator: TestOperator | undefined;
let namespace = '';
const namespaces: string[] = [];
const logs = <T>(fn: () => Promise<T>) => withLogs(() => operator, fn);

async function proxyConfig(
  ns: string,
  name: string,
  spec: Record<string, unknown>,
  labels: Record<string, string> = {},
): Promise<void> {
  await applyObject(client, { ...PROXY_CONFIG, metadata: { name, namespace: ns, labels }, spec });
}

/** A bare pod (no controller) with a generated name, so the injector may answer it from its verdict cache. */
function barePod(ns: string, labels: Record<string, string>): Pod {
  return {
    ...POD,
    metadata: { generateName: 'pxc-', namespace: ns, labels },
    spec: {
      containers: [
        { name: 'app', image: 'docker.io/library/busybox:1.36', command: ['sleep', '3600'] } as Container,
      ],
    },
  };
}

const proxyOf = (p: Pod): Container | undefined =>
  [...(p.spec.initContainers ?? []), ...p.spec.containers].find((c) => c.name === 'istio-proxy');

/** istio-proxy's literal env values by name; empty when the pod has no istio-proxy. */
function proxyEnv(p: Pod): Record<string, string> {
  return Object.fromEntries(
    (proxyOf(p)?.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value as string]),
  );
}

function proxyConfigOf(env: Record<string, string>): ProxyConfigJson {
  const raw = env['PROXY_CONFIG'];
  if (raw === undefined) throw new Error('istio-proxy has no PROXY_CONFIG env');
  return JSON.parse(raw) as ProxyConfigJson;
}

/** What a failure message shows of a proxy's env: the test's variables and PROXY_CONFIG. */
function shown(env: Record<string, string>): string {
  return JSON.stringify(
    Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('MESHREV_') || k === 'PROXY_CONFIG')),
  );
}

/**
 * Creates pods until one's istio-proxy env satisfies `seen`, deleting the others: the injector applies a ProxyConfig
 * change once its informer delivered it, up to the CRD re-poll period (5 s) after the CRD appeared.
 */
function podSeeing(
  ns: string,
  labels: Record<string, string>,
  what: string,
  seen: (env: Record<string, string>) => boolean,
): Promise<Pod> {
  return waitFor(
    `a pod labelled ${JSON.stringify(labels)} in ${ns} whose istio-proxy has ${what}`,
    async () => {
      const created = await client.create(barePod(ns, labels));
      const env = proxyEnv(created);
      if (seen(env)) return created;
      const name = created.metadata?.name ?? '';
      await client.delete({ ...POD, namespace: ns, name }, { gracePeriodSeconds: 0 }).catch(() => undefined);
      throw new Error(`pod ${name} was given istio-proxy env ${shown(env)}`);
    },
    { timeoutMs: 30_000, intervalMs: 500 },
  );
}

/** The operator's meshrev_injection_cache_lookups_total{result}. */
async function cacheLookups(result: 'hit' | 'miss'): Promise<number> {
  const text = (await operator?.metrics.expose()) ?? '';
  const match = new RegExp(
    `^meshrev_injection_cache_lookups_total\\{result="${result}"\\} (\\d+)$`,
    'm',
  ).exec(text);
  if (!match) throw new Error(`no meshrev_injection_cache_lookups_total{result="${result}"} in /metrics`);
  return Number(match[1]);
}

beforeAll(async () => {
  client = testClient();
  await installCrds(client);
  await applyObject(client, { ...NAMESPACE, metadata: { name: ROOT_NAMESPACE } });
  // The operator must start without the CRD, so its ProxyConfig informer takes the optional-resource path.
  if (await client.getOptional(CRD_REF)) {
    await client.delete(CRD_REF);
    await waitFor(
      `CRD ${CRD_NAME} to be gone`,
      async () => (await client.getOptional(CRD_REF)) === undefined,
      {
        timeoutMs: 60_000,
        intervalMs: 250,
      },
    );
  }
  operator = await startTestOperator('proxy-config', ['--create-default-tag=false']);
  await applyObject(client, { ...CPR, metadata: { name: rev }, spec: { version: '1.29.6' } });
  await webhookConfigurationWithCaBundle(client, rev);
});

afterAll(async () => {
  for (const name of namespaces) await client.delete({ ...NAMESPACE, name }).catch(() => undefined);
  await client?.delete({ ...PROXY_CONFIG, namespace: ROOT_NAMESPACE, name: meshWide }).catch(() => undefined);
  await client?.delete(CRD_REF).catch(() => undefined);
  if (client) await deleteRevision(client, rev).catch(() => undefined);
  await operator?.stop();
  client?.close();
});

describe('ProxyConfig resources in the sidecar injector', () => {
  test(
    'injects pods while the ProxyConfig CRD is not installed',
    logs(async () => {
      namespace = await testNamespace(client, 'pxc', { 'istio.io/rev': rev }, namespaces);
      expect(await client.getOptional(CRD_REF)).toBeUndefined();
      const created = await client.create(barePod(namespace, { app: 'plain' }));
      expect(created.metadata?.annotations?.['istio.io/rev']).toBe(rev);
      const env = proxyEnv(created);
      expect(proxyOf(created)).toBeDefined();
      expect(Object.keys(env).filter((k) => k.startsWith('MESHREV_'))).toEqual([]);
      expect(
        Object.keys(proxyConfigOf(env).proxyMetadata ?? {}).filter((k) => k.startsWith('MESHREV_')),
      ).toEqual([]);
    }),
  );

  test(
    'applies the mesh-wide and the namespace ProxyConfig to a pod no selector matches, once the CRD is installed',
    logs(async () => {
      await applyObject(client, PROXY_CONFIG_CRD);
      await waitFor(
        `CRD ${CRD_NAME} to be Established`,
        async () =>
          (await client.get<Crd>(CRD_REF)).status?.conditions?.some(
            (c) => c.type === 'Established' && c.status === 'True',
          ),
        { timeoutMs: 30_000 },
      );
      // Mesh-wide: in the root namespace without a selector (labelled for this revision only, so that no other
      // suite's revision sees it).
      await proxyConfig(
        ROOT_NAMESPACE,
        meshWide,
        { concurrency: 1, environmentVariables: { MESHREV_MESH: 'mesh', MESHREV_NS: 'from-mesh' } },
        { 'istio.io/rev': rev },
      );
      await proxyConfig(namespace, 'workload', {
        selector: { matchLabels: { app: 'special' } },
        concurrency: 4,
        environmentVariables: { MESHREV_WL: 'workload' },
      });
      // Created last: once a pod shows it, the informer has delivered the others too.
      await proxyConfig(namespace, 'namespace-wide', {
        concurrency: 2,
        environmentVariables: { MESHREV_NS: 'namespace' },
      });

      const created = await podSeeing(
        namespace,
        { app: 'plain' },
        'MESHREV_NS=namespace',
        (env) => env['MESHREV_NS'] === 'namespace',
      );
      const env = proxyEnv(created);
      expect(env['MESHREV_NS']).toBe('namespace');
      expect(env['MESHREV_MESH']).toBe('mesh');
      expect(env).not.toHaveProperty('MESHREV_WL');
      const config = proxyConfigOf(env);
      expect(config.concurrency).toBe(2);
      expect(config.proxyMetadata?.['MESHREV_NS']).toBe('namespace');
      expect(config.proxyMetadata?.['MESHREV_MESH']).toBe('mesh');
      expect(config.proxyMetadata).not.toHaveProperty('MESHREV_WL');
    }),
  );

  test(
    'layers the ProxyConfig whose selector matches the pod over the namespace one',
    logs(async () => {
      const created = await podSeeing(
        namespace,
        { app: 'special' },
        'MESHREV_WL=workload',
        (env) => env['MESHREV_WL'] === 'workload',
      );
      const env = proxyEnv(created);
      expect(env['MESHREV_NS']).toBe('namespace');
      expect(env['MESHREV_WL']).toBe('workload');
      expect(env['MESHREV_MESH']).toBe('mesh');
      const config = proxyConfigOf(env);
      expect(config.concurrency).toBe(4);
      expect(config.proxyMetadata).toMatchObject({
        MESHREV_MESH: 'mesh',
        MESHREV_NS: 'namespace',
        MESHREV_WL: 'workload',
      });
    }),
  );

  test(
    'gives new pods an updated ProxyConfig rather than a verdict cached before the update',
    logs(async () => {
      // Identical pods: the first leaves its key, the second's verdict is kept and the third is a cache hit.
      const labels = { app: 'cached' };
      const hitsBefore = await cacheLookups('hit');
      for (let i = 0; i < 3; i += 1) {
        expect(proxyEnv(await client.create(barePod(namespace, labels)))['MESHREV_NS']).toBe('namespace');
      }
      expect((await cacheLookups('hit')) - hitsBefore).toBeGreaterThanOrEqual(1);

      await proxyConfig(namespace, 'namespace-wide', {
        concurrency: 2,
        environmentVariables: { MESHREV_NS: 'changed' },
      });
      const created = await podSeeing(
        namespace,
        labels,
        'MESHREV_NS=changed',
        (env) => env['MESHREV_NS'] === 'changed',
      );
      const env = proxyEnv(created);
      expect(env['MESHREV_NS']).toBe('changed');
      expect(proxyConfigOf(env).proxyMetadata?.['MESHREV_NS']).toBe('changed');
    }),
  );

  test(
    'ignores a ProxyConfig labelled for another revision and applies one labelled for this revision',
    logs(async () => {
      await proxyConfig(
        namespace,
        'other-revision',
        {
          selector: { matchLabels: { app: 'other' } },
          concurrency: 7,
          environmentVariables: { MESHREV_OTHER: 'other-revision' },
        },
        { 'istio.io/rev': 'some-other-revision' },
      );
      // Created after the other revision's: once a pod shows this one, the injector has seen both.
      await proxyConfig(
        namespace,
        'this-revision',
        {
          selector: { matchLabels: { app: 'mine' } },
          concurrency: 3,
          environmentVariables: { MESHREV_OWN: 'this-revision' },
          image: { imageType: 'distroless' },
        },
        { 'istio.io/rev': rev },
      );
      const mine = await podSeeing(
        namespace,
        { app: 'mine' },
        'MESHREV_OWN=this-revision',
        (env) => env['MESHREV_OWN'] === 'this-revision',
      );
      expect(proxyConfigOf(proxyEnv(mine)).concurrency).toBe(3);
      expect(proxyOf(mine)?.image).toBe('docker.io/istio/proxyv2:1.29.6-distroless');

      const other = await client.create(barePod(namespace, { app: 'other' }));
      const env = proxyEnv(other);
      expect(env['MESHREV_NS']).toBe('changed');
      expect(env).not.toHaveProperty('MESHREV_OTHER');
      const config = proxyConfigOf(env);
      expect(config.concurrency).toBe(2);
      expect(config.proxyMetadata).not.toHaveProperty('MESHREV_OTHER');
      expect(proxyOf(other)?.image).toBe('docker.io/istio/proxyv2:1.29.6');
    }),
  );
});
