import { parse } from 'yaml';

import { objectKey } from '../../../../src/controllers/common/objects.js';
import {
  desiredRevisionObjects,
  type RevisionBuildContext,
} from '../../../../src/controllers/revision/desired.js';
import { at, INJECTOR, only, revision } from '../fixtures.js';

const CONTEXT: RevisionBuildContext = {
  resolvedVersion: '1.29.6',
  injector: INJECTOR,
  caBundle: undefined,
  operatorName: 'meshrev',
};

// The revision webhooks of Istio's mutatingwebhook.yaml (reference istio-injection.md §1.3-1.4), with
// clientConfig pointing at meshrev's injector instead of istiod.
const EXPECTED_REVISION_WEBHOOKS = (value: string, path: string) =>
  parse(`
- name: rev.namespace.sidecar-injector.istio.io
  clientConfig:
    service: { name: meshrev-injector, namespace: meshrev-system, path: "${path}", port: 443 }
  sideEffects: None
  rules:
  - operations: [ "CREATE" ]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods"]
  failurePolicy: Fail
  reinvocationPolicy: Never
  admissionReviewVersions: ["v1"]
  namespaceSelector:
    matchExpressions:
    - key: istio.io/rev
      operator: In
      values:
      - "${value}"
    - key: istio-injection
      operator: DoesNotExist
  objectSelector:
    matchExpressions:
    - key: sidecar.istio.io/inject
      operator: NotIn
      values:
      - "false"
- name: rev.object.sidecar-injector.istio.io
  clientConfig:
    service: { name: meshrev-injector, namespace: meshrev-system, path: "${path}", port: 443 }
  sideEffects: None
  rules:
  - operations: [ "CREATE" ]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods"]
  failurePolicy: Fail
  reinvocationPolicy: Never
  admissionReviewVersions: ["v1"]
  namespaceSelector:
    matchExpressions:
    - key: istio.io/rev
      operator: DoesNotExist
    - key: istio-injection
      operator: DoesNotExist
  objectSelector:
    matchExpressions:
    - key: sidecar.istio.io/inject
      operator: NotIn
      values:
      - "false"
    - key: istio.io/rev
      operator: In
      values:
      - "${value}"
`) as unknown;

function envOf(objects: ReturnType<typeof desiredRevisionObjects>): Array<{ name: string; value?: string }> {
  return at(only(objects, 'Deployment'), 'spec', 'template', 'spec', 'containers', 0, 'env') as Array<{
    name: string;
    value?: string;
  }>;
}

function envMap(objects: ReturnType<typeof desiredRevisionObjects>): Map<string, string | undefined> {
  return new Map(envOf(objects).map((variable) => [variable.name, variable.value]));
}

describe('desiredRevisionObjects', () => {
  it('renders the objects of a single-replica revision in istio-system, dependencies first', () => {
    const objects = desiredRevisionObjects(revision('canary'), CONTEXT);
    expect(objects.map(objectKey)).toEqual([
      'v1/ServiceAccount/istio-system/istiod-canary',
      'rbac.authorization.k8s.io/v1/ClusterRoleBinding/istiod-clusterrole-canary-istio-system',
      'rbac.authorization.k8s.io/v1/RoleBinding/istio-system/istiod-canary',
      'v1/ConfigMap/istio-system/istio-canary',
      'v1/Service/istio-system/istiod-canary',
      'apps/v1/Deployment/istio-system/istiod-canary',
      'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration/istio-sidecar-injector-canary',
    ]);
  });

  it('suffixes the webhook configuration and cluster RBAC with the namespace outside istio-system', () => {
    const objects = desiredRevisionObjects(revision('asm-1233-2', { namespace: 'mesh-a' }), CONTEXT);
    expect(only(objects, 'MutatingWebhookConfiguration').metadata.name).toBe(
      'istio-sidecar-injector-asm-1233-2-mesh-a',
    );
    expect(only(objects, 'ClusterRoleBinding').metadata.name).toBe('istiod-clusterrole-asm-1233-2-mesh-a');
    expect(at(only(objects, 'ClusterRoleBinding'), 'subjects')).toEqual([
      { kind: 'ServiceAccount', name: 'istiod-asm-1233-2', namespace: 'mesh-a' },
    ]);
    expect(only(objects, 'Deployment').metadata.namespace).toBe('mesh-a');
  });

  it('labels every object as managed by meshrev for the revision and makes the revision its controller', () => {
    for (const object of desiredRevisionObjects(revision('canary'), CONTEXT)) {
      expect(object.metadata.labels).toMatchObject({
        'app.kubernetes.io/managed-by': 'meshrev',
        'istio.io/rev': 'canary',
      });
      expect(object.metadata.ownerReferences).toEqual([
        {
          apiVersion: 'meshrev.dev/v1alpha1',
          kind: 'ControlPlaneRevision',
          name: 'canary',
          uid: 'uid-canary',
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
    }
  });

  it('produces plain JSON objects with apiVersion and kind, usable as apply bodies', () => {
    const objects = desiredRevisionObjects(revision('canary', { istiod: { replicas: 2 } }), CONTEXT);
    expect(JSON.parse(JSON.stringify(objects))).toEqual(objects);
  });

  it('refuses an owner without a uid, which the API server would reject', () => {
    const withoutUid = revision('canary');
    delete withoutUid.metadata.uid;
    expect(() => desiredRevisionObjects(withoutUid, CONTEXT)).toThrow(/uid/);
  });

  describe('webhook configuration', () => {
    it("has exactly Istio's two revision webhooks, routed to the embedded injector's /inject/<rev>", () => {
      const configuration = only(
        desiredRevisionObjects(revision('canary'), CONTEXT),
        'MutatingWebhookConfiguration',
      );
      expect(configuration['webhooks']).toEqual(EXPECTED_REVISION_WEBHOOKS('canary', '/inject/canary'));
    });

    it("adds the legacy selectors for a revision named default, as Istio's default revision carries them", () => {
      const webhooks = only(
        desiredRevisionObjects(
          revision('default', { injection: { enableNamespacesByDefault: true } }),
          CONTEXT,
        ),
        'MutatingWebhookConfiguration',
      )['webhooks'] as Array<{ name: string; clientConfig: { service?: { path?: string } } }>;
      expect(webhooks.map((webhook) => webhook.name)).toEqual([
        'rev.namespace.sidecar-injector.istio.io',
        'rev.object.sidecar-injector.istio.io',
        'namespace.sidecar-injector.istio.io',
        'object.sidecar-injector.istio.io',
        'auto.sidecar-injector.istio.io',
      ]);
      expect(new Set(webhooks.map((webhook) => webhook.clientConfig.service?.path))).toEqual(
        new Set(['/inject/default']),
      );
    });

    it('ignores enableNamespacesByDefault on a revision that does not serve the default selectors', () => {
      const configuration = only(
        desiredRevisionObjects(
          revision('canary', { injection: { enableNamespacesByDefault: true } }),
          CONTEXT,
        ),
        'MutatingWebhookConfiguration',
      );
      expect(configuration['webhooks']).toEqual(EXPECTED_REVISION_WEBHOOKS('canary', '/inject/canary'));
    });

    it("carries Istio's labels, with app=sidecar-injector and the revision", () => {
      const configuration = only(
        desiredRevisionObjects(revision('canary'), CONTEXT),
        'MutatingWebhookConfiguration',
      );
      expect(configuration.metadata.labels).toMatchObject({
        app: 'sidecar-injector',
        'istio.io/rev': 'canary',
        'operator.istio.io/component': 'Pilot',
        'app.kubernetes.io/name': 'istiod',
        'app.kubernetes.io/part-of': 'istio',
        'app.kubernetes.io/version': '1.29.6',
      });
      expect(configuration.metadata.labels['istio.io/tag']).toBeUndefined();
    });

    it.each([
      ['without a known CA', undefined],
      ['with the injector CA', 'LS0tLS1CRUdJTi0tLS0t'],
    ])('sets caBundle only when it is known (%s)', (_name, caBundle) => {
      const configuration = only(
        desiredRevisionObjects(revision('canary'), { ...CONTEXT, caBundle }),
        'MutatingWebhookConfiguration',
      );
      for (const webhook of configuration['webhooks'] as Array<{ clientConfig: Record<string, unknown> }>) {
        expect('caBundle' in webhook.clientConfig).toBe(caBundle !== undefined);
        expect(webhook.clientConfig['caBundle']).toBe(caBundle);
      }
    });

    it('takes failurePolicy, reinvocationPolicy and timeoutSeconds from spec.injection', () => {
      const configuration = only(
        desiredRevisionObjects(
          revision('canary', {
            injection: { failurePolicy: 'Ignore', reinvocationPolicy: 'IfNeeded', timeoutSeconds: 5 },
          }),
          CONTEXT,
        ),
        'MutatingWebhookConfiguration',
      );
      for (const webhook of configuration['webhooks'] as Array<Record<string, unknown>>) {
        expect(webhook).toMatchObject({
          failurePolicy: 'Ignore',
          reinvocationPolicy: 'IfNeeded',
          timeoutSeconds: 5,
        });
      }
    });

    it('leaves timeoutSeconds to the API server by default', () => {
      const configuration = only(
        desiredRevisionObjects(revision('canary'), CONTEXT),
        'MutatingWebhookConfiguration',
      );
      for (const webhook of configuration['webhooks'] as Array<Record<string, unknown>>) {
        expect('timeoutSeconds' in webhook).toBe(false);
      }
    });

    it('is not rendered when injection is disabled', () => {
      const objects = desiredRevisionObjects(revision('canary', { injection: { enabled: false } }), CONTEXT);
      expect(objects.filter((object) => object.kind === 'MutatingWebhookConfiguration')).toEqual([]);
      expect(objects.some((object) => object.kind === 'Deployment')).toBe(true);
    });
  });

  describe('istiod Deployment', () => {
    it('runs <hub>/pilot:<resolved version> with the pull policy and the revision service account', () => {
      const objects = desiredRevisionObjects(
        revision('stable-a', {
          channel: 'stable',
          version: undefined,
          hub: 'gcr.io/mirror',
          imagePullPolicy: 'Always',
        }),
        { ...CONTEXT, resolvedVersion: '1.28.10' },
      );
      const podSpec = at(only(objects, 'Deployment'), 'spec', 'template', 'spec');
      expect(at(podSpec, 'serviceAccountName')).toBe('istiod-stable-a');
      expect(at(podSpec, 'containers', 0)).toMatchObject({
        name: 'discovery',
        image: 'gcr.io/mirror/pilot:1.28.10',
        imagePullPolicy: 'Always',
      });
    });

    it('labels pods the way Istio does for a revision, so kubectl get pods -l app=istiod shows it', () => {
      const deployment = only(
        desiredRevisionObjects(
          revision('canary', { istiod: { podLabels: { app: 'x', team: 'mesh' } } }),
          CONTEXT,
        ),
        'Deployment',
      );
      expect(at(deployment, 'spec', 'selector')).toEqual({
        matchLabels: { app: 'istiod', 'istio.io/rev': 'canary' },
      });
      expect(at(deployment, 'spec', 'template', 'metadata', 'labels')).toMatchObject({
        app: 'istiod',
        'istio.io/rev': 'canary',
        istio: 'istiod',
        'sidecar.istio.io/inject': 'false',
        'istio.io/dataplane-mode': 'none',
        'operator.istio.io/component': 'Pilot',
        team: 'mesh',
      });
      expect(at(deployment, 'spec', 'template', 'metadata', 'annotations')).toMatchObject({
        'prometheus.io/port': '15014',
        'prometheus.io/scrape': 'true',
        'sidecar.istio.io/inject': 'false',
      });
    });

    it('exposes 8080, 15010, 15012, 15017 and 15014 and probes /ready', () => {
      const container = at(
        only(desiredRevisionObjects(revision('canary'), CONTEXT), 'Deployment'),
        'spec',
        'template',
        'spec',
        'containers',
        0,
      );
      expect(
        (at(container, 'ports') as Array<{ containerPort: number }>).map((port) => port.containerPort),
      ).toEqual([8080, 15010, 15012, 15017, 15014]);
      expect(at(container, 'readinessProbe')).toEqual({
        httpGet: { path: '/ready', port: 8080 },
        initialDelaySeconds: 1,
        periodSeconds: 3,
        timeoutSeconds: 5,
      });
    });

    it('mounts the projected istio-token with the istio-ca audience', () => {
      const podSpec = at(
        only(desiredRevisionObjects(revision('canary'), CONTEXT), 'Deployment'),
        'spec',
        'template',
        'spec',
      );
      expect(
        (at(podSpec, 'volumes') as Array<{ name: string }>).find((volume) => volume.name === 'istio-token'),
      ).toEqual({
        name: 'istio-token',
        projected: {
          sources: [
            { serviceAccountToken: { audience: 'istio-ca', expirationSeconds: 43200, path: 'istio-token' } },
          ],
        },
      });
      expect(at(podSpec, 'containers', 0, 'volumeMounts', 0)).toEqual({
        name: 'istio-token',
        mountPath: '/var/run/secrets/tokens',
        readOnly: true,
      });
    });

    it('reads the CA from the istio-ca-root-cert ConfigMap, or from the ClusterTrustBundle when istiod publishes one', () => {
      const caVolume = (cpr: ReturnType<typeof revision>) =>
        (
          at(
            only(desiredRevisionObjects(cpr, CONTEXT), 'Deployment'),
            'spec',
            'template',
            'spec',
            'volumes',
          ) as Array<{
            name: string;
          }>
        ).find((volume) => volume.name === 'istio-csr-ca-configmap');
      expect(caVolume(revision('canary'))).toEqual({
        name: 'istio-csr-ca-configmap',
        configMap: { name: 'istio-ca-root-cert', defaultMode: 420, optional: true },
      });
      expect(
        caVolume(revision('canary', { istiod: { env: { ENABLE_CLUSTER_TRUST_BUNDLE_API: 'true' } } })),
      ).toEqual({
        name: 'istio-csr-ca-configmap',
        projected: {
          sources: [
            {
              clusterTrustBundle: {
                name: 'istio.io:istiod-ca:root-cert',
                path: 'root-cert.pem',
                optional: true,
              },
            },
          ],
        },
      });
    });

    it("switches off istiod's injector and its webhook patching so it never fights meshrev", () => {
      const env = envMap(desiredRevisionObjects(revision('canary'), CONTEXT));
      expect(env.get('REVISION')).toBe('canary');
      expect(env.get('INJECT_ENABLED')).toBe('false');
      expect(env.get('INJECTION_WEBHOOK_CONFIG_NAME')).toBe('');
      expect(env.get('VALIDATION_WEBHOOK_CONFIG_NAME')).toBe('');
      expect(env.get('PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER')).toBe('false');
    });

    it('lets spec.istiod.env change chart defaults but not the variables meshrev depends on', () => {
      const objects = desiredRevisionObjects(
        revision('canary', {
          istiod: {
            env: {
              CLUSTER_ID: 'east',
              REVISION: 'other',
              INJECTION_WEBHOOK_CONFIG_NAME: 'x',
              PILOT_TRACE: '1',
            },
          },
        }),
        CONTEXT,
      );
      const env = envMap(objects);
      expect(env.get('CLUSTER_ID')).toBe('east');
      expect(env.get('PILOT_TRACE')).toBe('1');
      expect(env.get('REVISION')).toBe('canary');
      expect(env.get('INJECTION_WEBHOOK_CONFIG_NAME')).toBe('');
      const names = envOf(objects).map((variable) => variable.name);
      expect(new Set(names).size).toBe(names.length);
    });

    it.each([
      ['1.28.10', ['GOMEMLIMIT', 'GOMAXPROCS']],
      ['1.29.6', ['GOMAXPROCS']],
      ['1.30.3', ['GOMAXPROCS']],
    ])('derives Go runtime limits from the container limits as the %s chart does', (version, expected) => {
      const env = envOf(
        desiredRevisionObjects(revision('canary', { version }), { ...CONTEXT, resolvedVersion: version }),
      );
      expect(
        env.filter((variable) => variable.name.startsWith('GOM')).map((variable) => variable.name),
      ).toEqual(expected);
    });

    it("requests the chart's default resources unless spec.istiod.resources is set", () => {
      const resourcesOf = (objects: ReturnType<typeof desiredRevisionObjects>) =>
        at(only(objects, 'Deployment'), 'spec', 'template', 'spec', 'containers', 0, 'resources');
      expect(resourcesOf(desiredRevisionObjects(revision('canary'), CONTEXT))).toEqual({
        requests: { cpu: '500m', memory: '2048Mi' },
      });
      expect(
        resourcesOf(
          desiredRevisionObjects(
            revision('canary', {
              istiod: { resources: { limits: { cpu: 2 }, requests: { memory: '1Gi' } } },
            }),
            CONTEXT,
          ),
        ),
      ).toEqual({ limits: { cpu: '2' }, requests: { memory: '1Gi' } });
    });

    it('keeps the CNI not-ready toleration ahead of user tolerations and passes scheduling fields through', () => {
      const podSpec = at(
        only(
          desiredRevisionObjects(
            revision('canary', {
              istiod: {
                nodeSelector: { pool: 'system' },
                tolerations: [{ key: 'dedicated', operator: 'Exists' }],
                affinity: { nodeAffinity: { x: 1 } },
              },
            }),
            CONTEXT,
          ),
          'Deployment',
        ),
        'spec',
        'template',
        'spec',
      );
      expect(at(podSpec, 'tolerations')).toEqual([
        { key: 'cni.istio.io/not-ready', operator: 'Exists' },
        { key: 'dedicated', operator: 'Exists' },
      ]);
      expect(at(podSpec, 'nodeSelector')).toEqual({ pool: 'system' });
      expect(at(podSpec, 'affinity')).toEqual({ nodeAffinity: { x: 1 } });
    });
  });

  describe('replicas, autoscaling and disruption budget', () => {
    const kindsOf = (objects: ReturnType<typeof desiredRevisionObjects>) =>
      objects.map((object) => object.kind);

    it('sets replicas and renders no HPA and no PDB for a single replica', () => {
      const objects = desiredRevisionObjects(revision('canary'), CONTEXT);
      expect(at(only(objects, 'Deployment'), 'spec', 'replicas')).toBe(1);
      expect(kindsOf(objects)).not.toContain('HorizontalPodAutoscaler');
      expect(kindsOf(objects)).not.toContain('PodDisruptionBudget');
    });

    it('leaves replicas to the HPA when autoscaling is enabled', () => {
      const objects = desiredRevisionObjects(
        revision('canary', {
          istiod: { autoscaling: { minReplicas: 2, maxReplicas: 7, targetCPUUtilizationPercentage: 60 } },
        }),
        CONTEXT,
      );
      expect(at(only(objects, 'Deployment'), 'spec')).not.toHaveProperty('replicas');
      const autoscaler = only(objects, 'HorizontalPodAutoscaler');
      expect(autoscaler.apiVersion).toBe('autoscaling/v2');
      expect(autoscaler['spec']).toEqual({
        minReplicas: 2,
        maxReplicas: 7,
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'istiod-canary' },
        metrics: [
          {
            type: 'Resource',
            resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } },
          },
        ],
      });
      expect(at(only(objects, 'PodDisruptionBudget'), 'spec')).toEqual({
        minAvailable: 1,
        selector: { matchLabels: { app: 'istiod', 'istio.io/rev': 'canary' } },
      });
    });

    it('keeps fixed replicas when autoscaling is present but disabled', () => {
      const objects = desiredRevisionObjects(
        revision('canary', { istiod: { replicas: 3, autoscaling: { enabled: false } } }),
        CONTEXT,
      );
      expect(at(only(objects, 'Deployment'), 'spec', 'replicas')).toBe(3);
      expect(kindsOf(objects)).not.toContain('HorizontalPodAutoscaler');
    });

    it.each([
      ['minAvailable by default', {}, { minAvailable: 1 }],
      ['the given minAvailable', { minAvailable: '50%' }, { minAvailable: '50%' }],
      ['the given maxUnavailable', { maxUnavailable: 1 }, { maxUnavailable: 1 }],
    ])('renders a PDB with %s when more than one replica runs', (_name, budget, expected) => {
      const objects = desiredRevisionObjects(
        revision('canary', { istiod: { replicas: 3, podDisruptionBudget: budget } }),
        CONTEXT,
      );
      const pdb = only(objects, 'PodDisruptionBudget');
      expect(pdb.apiVersion).toBe('policy/v1');
      expect(pdb['spec']).toEqual({
        ...expected,
        selector: { matchLabels: { app: 'istiod', 'istio.io/rev': 'canary' } },
      });
    });

    it('renders no PDB when it is disabled', () => {
      const objects = desiredRevisionObjects(
        revision('canary', { istiod: { replicas: 3, podDisruptionBudget: { enabled: false } } }),
        CONTEXT,
      );
      expect(kindsOf(objects)).not.toContain('PodDisruptionBudget');
    });
  });

  describe('RBAC', () => {
    const roleRef = (name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name });
    const bindings = (objects: ReturnType<typeof desiredRevisionObjects>) =>
      objects
        .filter((object) => object.kind.endsWith('Binding'))
        .map((object) => ({
          kind: object.kind,
          namespace: object.metadata.namespace,
          name: object.metadata.name,
          roleRef: object['roleRef'],
        }));

    it('renders no roles of its own: istiod`s permissions are the shared ClusterRoles shipped in deploy/', () => {
      const objects = desiredRevisionObjects(
        revision('canary', {
          istiod: {
            env: { PILOT_ENABLE_ANALYSIS: 'true', PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER: 'true' },
          },
        }),
        CONTEXT,
      );
      expect(objects.filter((object) => object.kind === 'ClusterRole' || object.kind === 'Role')).toEqual([]);
    });

    it('binds the shared istiod ClusterRoles to the revision service account, under the chart`s names', () => {
      const objects = desiredRevisionObjects(revision('canary'), CONTEXT);
      expect(bindings(objects)).toEqual([
        {
          kind: 'ClusterRoleBinding',
          namespace: undefined,
          name: 'istiod-clusterrole-canary-istio-system',
          roleRef: roleRef('meshrev-istiod'),
        },
        {
          kind: 'RoleBinding',
          namespace: 'istio-system',
          name: 'istiod-canary',
          roleRef: roleRef('meshrev-istiod-namespace'),
        },
      ]);
      for (const binding of objects.filter((object) => object.kind.endsWith('Binding'))) {
        expect(binding['subjects']).toEqual([
          { kind: 'ServiceAccount', name: 'istiod-canary', namespace: 'istio-system' },
        ]);
      }
    });

    it('binds the namespaced role in the revision`s own namespace', () => {
      const objects = desiredRevisionObjects(revision('canary', { namespace: 'mesh-a' }), CONTEXT);
      expect(only(objects, 'RoleBinding').metadata.namespace).toBe('mesh-a');
      expect(at(only(objects, 'RoleBinding'), 'subjects')).toEqual([
        { kind: 'ServiceAccount', name: 'istiod-canary', namespace: 'mesh-a' },
      ]);
    });

    it('binds the gateway-controller role only when the gateway deployment controller is turned back on', () => {
      const objects = desiredRevisionObjects(
        revision('canary', { istiod: { env: { PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER: 'true' } } }),
        CONTEXT,
      );
      expect(bindings(objects).filter((binding) => binding.kind === 'ClusterRoleBinding')).toEqual([
        {
          kind: 'ClusterRoleBinding',
          namespace: undefined,
          name: 'istiod-clusterrole-canary-istio-system',
          roleRef: roleRef('meshrev-istiod'),
        },
        {
          kind: 'ClusterRoleBinding',
          namespace: undefined,
          name: 'istiod-gateway-controller-canary-istio-system',
          roleRef: roleRef('meshrev-istiod-gateway-controller'),
        },
      ]);
    });

    it('binds the analysis role only when analysis is enabled', () => {
      const objects = desiredRevisionObjects(
        revision('canary', { istiod: { env: { PILOT_ENABLE_ANALYSIS: 'true' } } }),
        CONTEXT,
      );
      expect(bindings(objects).filter((binding) => binding.kind === 'ClusterRoleBinding')).toEqual([
        {
          kind: 'ClusterRoleBinding',
          namespace: undefined,
          name: 'istiod-clusterrole-canary-istio-system',
          roleRef: roleRef('meshrev-istiod'),
        },
        {
          kind: 'ClusterRoleBinding',
          namespace: undefined,
          name: 'istiod-analysis-canary-istio-system',
          roleRef: roleRef('meshrev-istiod-analysis'),
        },
      ]);
    });

    it('gives image pull secrets to the service account, as the chart does', () => {
      const account = only(
        desiredRevisionObjects(
          revision('canary', { imagePullSecrets: ['registry-a', 'registry-b'] }),
          CONTEXT,
        ),
        'ServiceAccount',
      );
      expect(account['imagePullSecrets']).toEqual([{ name: 'registry-a' }, { name: 'registry-b' }]);
    });
  });

  describe('Service and mesh ConfigMap', () => {
    it('serves 15010, 15012, 443 to 15017 and 15014 for the revision pods only', () => {
      const service = only(desiredRevisionObjects(revision('canary'), CONTEXT), 'Service');
      expect(service['spec']).toEqual({
        ports: [
          { port: 15010, name: 'grpc-xds', protocol: 'TCP' },
          { port: 15012, name: 'https-dns', protocol: 'TCP' },
          { port: 443, name: 'https-webhook', targetPort: 15017, protocol: 'TCP' },
          { port: 15014, name: 'http-monitoring', protocol: 'TCP' },
        ],
        selector: { app: 'istiod', 'istio.io/rev': 'canary' },
      });
    });

    it("writes Istio's default mesh config for the revision", () => {
      const configMap = only(desiredRevisionObjects(revision('canary'), CONTEXT), 'ConfigMap');
      expect(parse(at(configMap, 'data', 'mesh') as string)).toEqual({
        defaultConfig: { discoveryAddress: 'istiod-canary.istio-system.svc:15012' },
        defaultProviders: { metrics: ['prometheus'] },
        enablePrometheusMerge: true,
        rootNamespace: 'istio-system',
        trustDomain: 'cluster.local',
      });
      expect(parse(at(configMap, 'data', 'meshNetworks') as string)).toEqual({ networks: {} });
    });

    it("quotes values a YAML 1.1 reader such as istiod's would take for booleans", () => {
      const configMap = only(
        desiredRevisionObjects(revision('canary', { meshConfig: { ingressControllerMode: 'OFF' } }), CONTEXT),
        'ConfigMap',
      );
      expect(at(configMap, 'data', 'mesh')).toContain('ingressControllerMode: "OFF"');
    });

    it('merges spec.meshConfig over the defaults like Helm, keys sorted', () => {
      const configMap = only(
        desiredRevisionObjects(
          revision('canary', {
            meshConfig: {
              accessLogFile: '/dev/stdout',
              defaultConfig: { holdApplicationUntilProxyStarts: true },
              defaultProviders: { tracing: ['otel'] },
              extensionProviders: [
                { name: 'otel', opentelemetry: { service: 'otel.observability', port: 4317 } },
              ],
            },
          }),
          CONTEXT,
        ),
        'ConfigMap',
      );
      const mesh = at(configMap, 'data', 'mesh') as string;
      expect(parse(mesh)).toEqual({
        accessLogFile: '/dev/stdout',
        defaultConfig: {
          discoveryAddress: 'istiod-canary.istio-system.svc:15012',
          holdApplicationUntilProxyStarts: true,
        },
        defaultProviders: { tracing: ['otel'] },
        enablePrometheusMerge: true,
        extensionProviders: [{ name: 'otel', opentelemetry: { service: 'otel.observability', port: 4317 } }],
        rootNamespace: 'istio-system',
        trustDomain: 'cluster.local',
      });
      const topLevelKeys = mesh
        .split('\n')
        .filter((line) => /^\S/.test(line))
        .map((line) => line.split(':')[0]);
      expect(topLevelKeys).toEqual([...topLevelKeys].sort());
    });
  });
});
