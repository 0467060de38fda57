// Custom injection templates (spec.injection.templates, Istio's sidecarInjectorWebhook.templates) end to end: a
// revision carries a SPIRE template, a template that reads istiod's template data through Go template features,
// and one that does not parse. The broken one is reported in the Reconciled condition while everything else is
// applied; pods made by kube-controller-manager that name the good templates in inject.istio.io/templates get
// them merged after the sidecar; a pod that names the broken one is refused by kube-apiserver with the parse
// error, and pods that do not still get their proxy. Removing the broken template clears the condition.
import type { Condition } from '../../src/crds/condition.js';
import { ApiError, type KubeClient } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import { uniqueName, waitFor } from '../support/kube.js';
import { installCrds, startTestOperator, testClient, type TestOperator } from '../support/operator.js';
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
interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Container {
  name: string;
  image?: string;
  restartPolicy?: string;
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  [field: string]: unknown;
}
interface PodSpec {
  nodeName?: string;
  containers: Container[];
  initContainers?: Container[];
  volumes?: ({ name: string } & Record<string, unknown>)[];
  [field: string]: unknown;
}
interface Pod extends KubeObject {
  spec: PodSpec;
  status?: { phase?: string };
}
type Revision = KubeObject & {
  spec?: { injection?: { templates?: Record<string, string> } };
  status?: { conditions?: Condition[] };
};

const NAMESPACE = { apiVersion: 'v1', kind: 'Namespace' };
const POD = { apiVersion: 'v1', kind: 'Pod' };
const REVISION_NAMESPACE = 'istio-system';
const KWOK_NODE = 'kwok-node-0';
/** The webhook of a revision's configuration that matches namespaces labelled istio.io/rev=<revision>. */
const NAMESPACE_WEBHOOK = 'rev.namespace.sidecar-injector.istio.io';

/**
 * Istio's SPIRE template. With native sidecars (the KWOK node's kubelet has them) istio-proxy is an init
 * container, and istiod would leave a `containers` entry of that name beside it, so the template picks the list
 * from `.NativeSidecars`.
 */
const SPIRE = `spec:
  {{- if .NativeSidecars }}
  initContainers:
  {{- else }}
  containers:
  {{- end }}
  - name: istio-proxy
    volumeMounts:
    - name: workload-socket
      mountPath: /run/secrets/workload-spiffe-uds
      readOnly: true
  volumes:
  - name: workload-socket
    csi:
      driver: "csi.spiffe.io"
      readOnly: true
`;

/**
 * Reads istiod's template data (the workload, the pod's spec and annotations, the Helm values, the revision) and
 * istiod's environment, and calls sprig's functions on them, a regex function among them.
 */
const LABELS = `metadata:
  annotations:
    example.com/workload: {{ .DeploymentMeta.Name | quote }}
    example.com/kind: {{ .TypeMeta.Kind | quote }}
    example.com/first-container: {{ (index .Spec.Containers 0).Name | quote }}
    example.com/level: {{ annotation .ObjectMeta "example.com/level" "none" | quote }}
    example.com/hub: {{ .Values.global.hub | quote }}
    example.com/revision: {{ .Revision | quote }}
    example.com/istiod-revision: {{ env "REVISION" "none" | quote }}
    example.com/ports: "{{ applicationPorts .Spec.Containers }}"
    example.com/tags: {{ range .Spec.Containers }}{{ regexReplaceAll "^.*:" .Image "" }},{{ end }}
spec:
  containers:
  {{- range $i, $c := .Spec.Containers }}
  {{- if ne $c.Name "istio-proxy" }}
  - name: {{ $c.Name }}
    env:
    - name: MESH_CONTAINER
      value: {{ printf "%s/%s#%d" $.DeploymentMeta.Name $c.Name $i | quote }}
  {{- end }}
  {{- end }}
`;

/**
 * An action that is never closed: Go's parser refuses it with `template: inject:1: unclosed action` (istiod names
 * every template "inject"). Go's parse errors carry a line but no column, so the assertions accept either form.
 */
const BROKEN = 'spec: {{ .Spec.Containers ';

const rev = uniqueName('tmpl');
const app = 'shop';
let client: KubeClient;
let operator: TestOperator | undefined;
let namespace = '';
const namespaces: string[] = [];
const logs = <T>(fn: () => Promise<T>) => withLogs(() => operator, fn);

function revisionSpec(templates: Record<string, string>): Record<string, unknown> {
  return { ...CPR, metadata: { name: rev }, spec: { version: '1.29.6', injection: { templates } } };
}

function barePod(ns: string, annotations: Record<string, string> = {}): Pod {
  return {
    ...POD,
    metadata: { name: uniqueName('bare'), namespace: ns, labels: { app: 'bare' }, annotations },
    spec: {
      containers: [{ name: 'app', image: 'docker.io/library/busybox:1.36', command: ['sleep', '3600'] }],
    },
  };
}

const proxyOf = (p: Pod): Container | undefined =>
  [...(p.spec.initContainers ?? []), ...p.spec.containers].find((c) => c.name === 'istio-proxy');

async function reconciled(): Promise<{ revision: Revision; condition: Condition | undefined }> {
  const revision = await client.get<Revision>({ ...CPR, name: rev });
  return { revision, condition: revision.status?.conditions?.find((c) => c.type === 'Reconciled') };
}

/** The error kube-apiserver answered a pod creation with, or undefined when it created the pod. */
async function creationError(p: Pod): Promise<unknown> {
  return client.create(p).then(
    () => undefined,
    (err: unknown) => err,
  );
}

beforeAll(async () => {
  client = testClient();
  await installCrds(client);
  await applyObject(client, { ...NAMESPACE, metadata: { name: REVISION_NAMESPACE } });
  operator = await startTestOperator('custom-templates', ['--create-default-tag=false']);
  await applyObject(client, revisionSpec({ spire: SPIRE, labels: LABELS, broken: BROKEN }));
  await webhookConfigurationWithCaBundle(client, rev);
});

afterAll(async () => {
  for (const name of namespaces) await client.delete({ ...NAMESPACE, name }).catch(() => undefined);
  if (client) await deleteRevision(client, rev).catch(() => undefined);
  await operator?.stop();
  client?.close();
});

describe('custom injection templates behind kube-apiserver', () => {
  test(
    'reports a template that does not parse in Reconciled and applies the revision anyway',
    logs(async () => {
      const { condition } = await waitFor(
        `revision ${rev} to report InvalidTemplate`,
        async () => {
          const seen = await reconciled();
          return seen.condition?.reason === 'InvalidTemplate' ? seen : undefined;
        },
        { timeoutMs: 30_000 },
      );
      expect(condition).toMatchObject({ status: 'False', reason: 'InvalidTemplate' });
      expect(condition?.message).toMatch(
        /^injection template "broken" does not parse: template: inject:1:(\d+:)? unclosed action; pods that ask for it are refused$/,
      );
      // Only the broken template is named.
      expect(condition?.message).not.toContain('"spire"');
      expect(condition?.message).not.toContain('"labels"');
      // The status is written after everything was applied: istiod exists.
      const istiod = await client.getOptional({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        namespace: REVISION_NAMESPACE,
        name: `istiod-${rev}`,
      });
      expect(istiod).toBeDefined();
    }),
  );

  test(
    'merges the templates a Deployment`s pods name after the sidecar, rendered from the pod`s data',
    logs(async () => {
      namespace = await testNamespace(client, 'tmpl', { 'istio.io/rev': rev }, namespaces);
      await client.create({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: app, namespace },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app } },
          template: {
            metadata: {
              labels: { app },
              annotations: {
                'inject.istio.io/templates': 'sidecar,spire,labels',
                'example.com/level': 'gold',
              },
            },
            spec: {
              containers: [
                {
                  name: 'storefront',
                  image: 'docker.io/library/nginx:1.27',
                  ports: [{ name: 'http', containerPort: 8080 }],
                },
                {
                  name: 'cache',
                  image: 'docker.io/library/redis:7',
                  ports: [{ name: 'redis', containerPort: 6379 }],
                },
              ],
            },
          },
        },
      });
      const created = await waitFor(
        `a Running pod of Deployment ${app} on ${KWOK_NODE}`,
        async () => {
          const list = await client.list<Pod>(POD, { namespace, labelSelector: `app=${app}` });
          return list.items.find((p) => p.spec.nodeName === KWOK_NODE && p.status?.phase === 'Running');
        },
        { timeoutMs: 45_000 },
      );

      // The sidecar: istio-proxy is a native sidecar (an init container that keeps running).
      const proxy = proxyOf(created);
      expect(created.spec.initContainers?.map((c) => c.name)).toEqual(['istio-init', 'istio-proxy']);
      expect(proxy?.restartPolicy).toBe('Always');
      expect(created.spec.containers.map((c) => c.name)).toEqual(['storefront', 'cache']);
      expect(created.metadata?.annotations?.['istio.io/rev']).toBe(rev);

      // spire: the mount on istio-proxy (beside the sidecar's own) and the CSI volume in place of the sidecar's.
      expect(proxy?.volumeMounts).toContainEqual({
        name: 'workload-socket',
        mountPath: '/run/secrets/workload-spiffe-uds',
        readOnly: true,
      });
      expect(proxy?.volumeMounts).toContainEqual(
        expect.objectContaining({
          name: 'workload-socket',
          mountPath: '/var/run/secrets/workload-spiffe-uds',
        }),
      );
      const socket = created.spec.volumes?.filter((v) => v.name === 'workload-socket');
      expect(socket).toEqual([{ name: 'workload-socket', csi: { driver: 'csi.spiffe.io', readOnly: true } }]);

      // labels: what istiod's template data holds for this pod.
      expect(created.metadata?.annotations).toMatchObject({
        'example.com/workload': app,
        'example.com/kind': 'Deployment',
        'example.com/first-container': 'storefront',
        'example.com/level': 'gold',
        'example.com/hub': 'docker.io/istio',
        'example.com/revision': rev,
        'example.com/istiod-revision': rev,
        'example.com/ports': '8080,6379',
        'example.com/tags': '1.27,7,',
      });
      const envOf = (name: string) =>
        created.spec.containers.find((c) => c.name === name)?.env?.find((e) => e.name === 'MESH_CONTAINER');
      expect(envOf('storefront')).toEqual({ name: 'MESH_CONTAINER', value: `${app}/storefront#0` });
      expect(envOf('cache')).toEqual({ name: 'MESH_CONTAINER', value: `${app}/cache#1` });
      expect(proxy?.env?.some((e) => e.name === 'MESH_CONTAINER')).toBe(false);
    }),
  );

  test(
    'refuses a pod that names the broken template and still injects one that does not',
    logs(async () => {
      const refused = barePod(namespace, { 'inject.istio.io/templates': 'sidecar,broken' });
      const error = await creationError(refused);
      expect(error).toBeInstanceOf(ApiError);
      expect((error as ApiError).message).toMatch(
        new RegExp(
          `admission webhook "${NAMESPACE_WEBHOOK.replaceAll('.', '\\.')}" denied the request: ` +
            'failed to parse injection template "broken": template: inject:1:(\\d+:)? unclosed action$',
        ),
      );
      expect(
        await client.getOptional({ ...POD, namespace, name: refused.metadata?.name ?? '' }),
      ).toBeUndefined();

      // One broken template does not stop the revision's injection: a pod that does not name it gets its proxy.
      const plain = await client.create(barePod(namespace));
      expect(plain.metadata?.annotations?.['istio.io/rev']).toBe(rev);
      expect(proxyOf(plain)).toBeDefined();
      // The default templates (sidecar) only.
      expect(plain.spec.volumes?.find((v) => v.name === 'workload-socket')).not.toHaveProperty('csi');
      expect(plain.metadata?.annotations).not.toHaveProperty('example.com/workload');
    }),
  );

  test(
    'clears InvalidTemplate once the broken template is removed from the revision',
    logs(async () => {
      await applyObject(client, revisionSpec({ spire: SPIRE, labels: LABELS }));
      const { revision, condition } = await waitFor(
        `revision ${rev} to be Reconciled again`,
        async () => {
          const seen = await reconciled();
          return seen.condition?.status === 'True' &&
            seen.condition.observedGeneration === seen.revision.metadata?.generation
            ? seen
            : undefined;
        },
        { timeoutMs: 30_000 },
      );
      expect(condition?.reason).toBe('Reconciled');
      expect(Object.keys(revision.spec?.injection?.templates ?? {}).sort()).toEqual(['labels', 'spire']);

      // The injector has the new templates too: a pod naming "broken" now asks for a template that is not there.
      const message = await waitFor(
        'the injector to drop the broken template',
        async () => {
          const error = await creationError(
            barePod(namespace, { 'inject.istio.io/templates': 'sidecar,broken' }),
          );
          if (!(error instanceof ApiError)) throw new Error(`pod not refused: ${String(error)}`);
          return error.message.includes('requested template "broken" not found') ? error.message : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 250 },
      );
      expect(message).toContain(`admission webhook "${NAMESPACE_WEBHOOK}" denied the request`);
    }),
  );
});
