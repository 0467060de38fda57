// Proves the local control plane is real: kube-controller-manager turns a Deployment into a
// ReplicaSet and Pods, kube-scheduler binds them to the KWOK node, KWOK makes them Running and
// Ready, and kube-apiserver calls a MutatingWebhookConfiguration through an ExternalName Service
// over TLS it verifies against the caBundle.
import * as k8s from '@kubernetes/client-node';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAKE_NODE_NAME } from '../../hack/cluster/local-cluster.js';
import { generateServingCert } from '../../hack/cluster/pki.js';
import {
  clusterBinary,
  componentLogs,
  createTestNamespace,
  deleteNamespace,
  testKubeConfig,
  testKubeconfigPath,
  uniqueName,
  waitFor,
} from '../support/kube.js';

const kc = testKubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);
const admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);

describe('the local control plane', () => {
  let namespace: string;

  beforeAll(async () => {
    namespace = await createTestNamespace(kc, 'cluster');
  });

  afterAll(async () => {
    await deleteNamespace(kc, namespace);
  });

  test('kubectl shows the KWOK node Ready and the real server version', () => {
    const kubectl = clusterBinary('kubectl');
    const nodes = execFileSync(
      kubectl,
      ['--kubeconfig', testKubeconfigPath(), 'get', 'nodes', '--no-headers'],
      {
        encoding: 'utf8',
      },
    );
    expect(nodes).toMatch(new RegExp(`^${FAKE_NODE_NAME}\\s+Ready\\s`, 'm'));
    const version = JSON.parse(
      execFileSync(kubectl, ['--kubeconfig', testKubeconfigPath(), 'version', '-o', 'json'], {
        encoding: 'utf8',
      }),
    ) as { serverVersion: { gitVersion: string; major: string } };
    expect(version.serverVersion.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(version.serverVersion.major).toBe('1');
  });

  test('a Deployment becomes a ReplicaSet whose Pods are bound to the fake node, Running and Ready', async () => {
    const name = 'web';
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: { containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
          },
        },
      },
    });
    try {
      const rs = await waitFor('a ReplicaSet owned by the Deployment', async () => {
        const list = await apps.listNamespacedReplicaSet({ namespace });
        return list.items.find((r) =>
          r.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment' && o.name === name),
        );
      });
      expect(rs.spec?.replicas).toBe(2);

      const pods = await waitFor(
        'two Running and Ready pods on the fake node',
        async () => {
          const list = await core.listNamespacedPod({ namespace, labelSelector: `app=${name}` });
          const ready = list.items.filter(
            (p) =>
              p.spec?.nodeName === FAKE_NODE_NAME &&
              p.status?.phase === 'Running' &&
              p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
          );
          return ready.length === 2 ? ready : undefined;
        },
        { timeoutMs: 60_000 },
      );
      for (const pod of pods) {
        expect(pod.metadata?.ownerReferences?.[0]?.name).toBe(rs.metadata?.name);
      }

      await waitFor('the Deployment to be Available', async () => {
        const d = await apps.readNamespacedDeployment({ name, namespace });
        return d.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True') &&
          d.status.readyReplicas === 2
          ? d
          : undefined;
      });
    } catch (err) {
      throw new Error(`${String(err)}\n${componentLogs()}`);
    }
  });

  describe('admission webhooks', () => {
    let server: Server;
    let port = 0;
    const calls: { path: string; uid: string; kind: string }[] = [];
    const webhookName = uniqueName('meshrev-test-webhook');
    const serviceName = 'test-webhook';

    beforeAll(async () => {
      const certDir = mkdtempSync(join(tmpdir(), 'meshrev-webhook-'));
      const cert = generateServingCert(certDir, [`${serviceName}.${namespace}.svc`]);
      server = createServer({ cert: cert.certPem, key: cert.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => (body += chunk));
        req.on('end', () => {
          const review = JSON.parse(body) as { request: { uid: string; kind: { kind: string } } };
          calls.push({ path: req.url ?? '', uid: review.request.uid, kind: review.request.kind.kind });
          const patch = [{ op: 'add', path: '/metadata/labels/webhook-saw-this', value: 'yes' }];
          res.setHeader('content-type', 'application/json');
          res.end(
            JSON.stringify({
              apiVersion: 'admission.k8s.io/v1',
              kind: 'AdmissionReview',
              response: {
                uid: review.request.uid,
                allowed: true,
                patchType: 'JSONPatch',
                patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
              },
            }),
          );
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const address = server.address();
      port = typeof address === 'object' && address ? address.port : 0;

      await core.createNamespacedService({
        namespace,
        body: { metadata: { name: serviceName }, spec: { type: 'ExternalName', externalName: 'localhost' } },
      });
      await admission.createMutatingWebhookConfiguration({
        body: {
          metadata: { name: webhookName },
          webhooks: [
            {
              name: 'pods.test.meshrev.dev',
              admissionReviewVersions: ['v1'],
              sideEffects: 'None',
              failurePolicy: 'Fail',
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
              rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
              clientConfig: {
                service: { name: serviceName, namespace, port, path: '/inject/test' },
                caBundle: Buffer.from(cert.caPem).toString('base64'),
              },
            },
          ],
        },
      });
    });

    afterAll(async () => {
      await admission.deleteMutatingWebhookConfiguration({ name: webhookName }).catch(() => undefined);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });

    test('kube-apiserver calls a service webhook on Pod CREATE over verified TLS and applies its patch', async () => {
      // The webhook configuration is picked up by the API server asynchronously; retry until it is.
      const pod = await waitFor(
        'a pod patched by the webhook',
        async () => {
          const created = await core.createNamespacedPod({
            namespace,
            body: {
              metadata: { generateName: 'hooked-', labels: { app: 'hooked' } },
              spec: { containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
            },
          });
          if (created.metadata?.labels?.['webhook-saw-this'] === 'yes') return created;
          await core.deleteNamespacedPod({ name: created.metadata?.name ?? '', namespace });
          return undefined;
        },
        { timeoutMs: 30_000, intervalMs: 250 },
      );
      expect(pod.metadata?.labels?.['webhook-saw-this']).toBe('yes');
      const call = calls.at(-1);
      expect(call?.path).toBe('/inject/test?timeout=10s');
      expect(call?.kind).toBe('Pod');
    });

    test('a webhook whose caBundle does not match the serving certificate is refused by kube-apiserver', async () => {
      const otherCa = generateServingCert(mkdtempSync(join(tmpdir(), 'meshrev-other-ca-')), [
        'unrelated',
      ]).caPem;
      const failingName = uniqueName('meshrev-test-badca');
      const labelledNamespace = await createTestNamespace(kc, 'badca');
      try {
        await admission.createMutatingWebhookConfiguration({
          body: {
            metadata: { name: failingName },
            webhooks: [
              {
                name: 'pods.badca.meshrev.dev',
                admissionReviewVersions: ['v1'],
                sideEffects: 'None',
                failurePolicy: 'Fail',
                namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': labelledNamespace } },
                rules: [
                  { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] },
                ],
                clientConfig: {
                  service: { name: serviceName, namespace, port, path: '/inject/badca' },
                  caBundle: Buffer.from(otherCa).toString('base64'),
                },
              },
            ],
          },
        });
        const message = await waitFor(
          'pod creation to be refused for an unverifiable webhook certificate',
          async () => {
            try {
              const created = await core.createNamespacedPod({
                namespace: labelledNamespace,
                body: {
                  metadata: { generateName: 'refused-' },
                  spec: { containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
                },
              });
              await core.deleteNamespacedPod({
                name: created.metadata?.name ?? '',
                namespace: labelledNamespace,
              });
              return undefined;
            } catch (err) {
              return String((err as { body?: string }).body ?? err);
            }
          },
          { timeoutMs: 30_000, intervalMs: 250 },
        );
        expect(message).toMatch(/x509|certificate/);
        expect(calls.some((c) => c.path.startsWith('/inject/badca'))).toBe(false);
      } finally {
        await admission.deleteMutatingWebhookConfiguration({ name: failingName }).catch(() => undefined);
        await deleteNamespace(kc, labelledNamespace);
      }
    });
  });
});
