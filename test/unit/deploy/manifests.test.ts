import { existsSync } from 'node:fs';
import { join } from 'node:path';

import type {
  V1Container,
  V1Deployment,
  V1PodDisruptionBudget,
  V1ResourceQuota,
  V1Service,
} from '@kubernetes/client-node';

import { DEFAULT_CHANNEL_TABLE, parseChannelTable } from '../../../src/controllers/common/versions.js';
import {
  CRD_FILES,
  DEPLOY_DIR,
  deployManifestFiles,
  findObject,
  type KubeObject,
  kustomizeObjects,
  readKustomization,
  readObjects,
} from './manifests.js';

const NAMESPACE = 'meshrev-system';
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
]);

const ownFiles = deployManifestFiles().filter((file) => !file.startsWith('crds/'));
const objects = kustomizeObjects();
const deployment = findObject(objects, 'Deployment', 'meshrev', NAMESPACE) as unknown as V1Deployment;
const podSpec = deployment.spec!.template.spec!;
const container = podSpec.containers.find((candidate) => candidate.name === 'operator') as V1Container;

function flag(name: string): string | undefined {
  const prefix = `--${name}=`;
  return container.args?.find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
}

function containerPort(name: string): number | undefined {
  return container.ports?.find((port) => port.name === name)?.containerPort;
}

function selects(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  const wanted = Object.entries(selector ?? {});
  return wanted.length > 0 && wanted.every(([key, value]) => labels?.[key] === value);
}

describe('deploy/ manifests', () => {
  it.each(ownFiles)('%s parses into Kubernetes objects', (file) => {
    expect(readObjects(join(DEPLOY_DIR, file)).length).toBeGreaterThan(0);
  });

  it('lists every manifest in deploy/ in the kustomization, and only the generated CRDs may be missing', () => {
    const resources = readKustomization().resources;
    expect([...resources].sort()).toEqual([...new Set([...deployManifestFiles(), ...CRD_FILES])].sort());
    const missing = resources.filter((resource) => !existsSync(join(DEPLOY_DIR, resource)));
    expect(missing.filter((resource) => !CRD_FILES.includes(resource))).toEqual([]);
  });

  it('does not set a kustomize namespace: each file states its own, so applying single files gives the same objects', () => {
    expect(readKustomization().namespace).toBeUndefined();
  });

  it.each(ownFiles)('labels every object in %s as part of meshrev', (file) => {
    for (const object of readObjects(join(DEPLOY_DIR, file))) {
      expect(object.metadata.labels).toMatchObject({
        'app.kubernetes.io/name': 'meshrev',
        'app.kubernetes.io/part-of': 'meshrev',
      });
    }
  });

  it('puts every namespaced object in meshrev-system', () => {
    const placement = objects
      .filter((object) => !CLUSTER_SCOPED.has(object.kind))
      .map((object) => `${object.kind}/${object.metadata.name} in ${object.metadata.namespace ?? '(none)'}`);
    expect(placement.filter((entry) => !entry.endsWith(` in ${NAMESPACE}`))).toEqual([]);
    expect(
      objects.filter((object) => CLUSTER_SCOPED.has(object.kind) && object.metadata.namespace !== undefined),
    ).toEqual([]);
  });

  it('keeps meshrev-system out of sidecar injection and under the restricted pod security standard', () => {
    expect(findObject(objects, 'Namespace', NAMESPACE).metadata.labels).toMatchObject({
      'istio-injection': 'disabled',
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
    expect(deployment.spec!.template.metadata!.labels!['sidecar.istio.io/inject']).toBe('false');
  });
});

describe('the meshrev Deployment', () => {
  it('runs two replicas of the placeholder image with the operator subcommand', () => {
    expect(deployment.spec!.replicas).toBe(2);
    expect(container.image).toBe('ghcr.io/meshrev/meshrev:v0.1.0');
    expect(container.args?.[0]).toBe('operator');
    expect(container.command).toBeUndefined();
  });

  it('passes every operator flag as --name=value with the documented defaults', () => {
    expect({
      logLevel: flag('log-level'),
      leaderElect: flag('leader-elect'),
      createDefaultTag: flag('create-default-tag'),
      channelConfigMap: flag('channel-configmap'),
      injectorPort: flag('injector-port'),
      metricsPort: flag('metrics-port'),
      injectionCacheEntries: flag('injection-cache-entries'),
      injectorRenderThreads: flag('injector-render-threads'),
      injectorRenderOffload: flag('injector-render-offload'),
    }).toEqual({
      logLevel: 'info',
      leaderElect: 'true',
      createDefaultTag: 'true',
      channelConfigMap: 'meshrev-channels',
      injectorPort: '9443',
      metricsPort: '8080',
      injectionCacheEntries: '256',
      injectorRenderThreads: '1',
      injectorRenderOffload: 'when-busy',
    });
    expect(container.args!.slice(1).every((arg) => /^--[a-z-]+=.+$/.test(arg))).toBe(true);
  });

  it('hardens the pod and the container', () => {
    expect(podSpec.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(podSpec.hostNetwork ?? false).toBe(false);
    expect((podSpec.volumes ?? []).filter((volume) => volume.hostPath !== undefined)).toEqual([]);
  });

  it('gives in-flight admission requests time to drain before the pod is killed', () => {
    expect(podSpec.terminationGracePeriodSeconds).toBe(60);
    const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
    expect(preStop).toBeGreaterThan(0);
    expect(preStop).toBeLessThan(podSpec.terminationGracePeriodSeconds!);
    expect(deployment.spec!.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
  });

  it('requests resources, limits memory and leaves CPU unthrottled', () => {
    expect(container.resources).toEqual({
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '512Mi' },
    });
  });

  it('learns its pod name and namespace from the downward API', () => {
    const fieldPaths = Object.fromEntries(
      (container.env ?? []).map((variable) => [variable.name, variable.valueFrom?.fieldRef?.fieldPath]),
    );
    expect(fieldPaths).toMatchObject({
      POD_NAME: 'metadata.name',
      POD_NAMESPACE: 'metadata.namespace',
      MESHREV_NAMESPACE: 'metadata.namespace',
    });
  });

  it('prefers spreading replicas over nodes', () => {
    const preferred =
      podSpec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
    expect(preferred).toHaveLength(1);
    expect(preferred[0]!.podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
    expect(
      selects(
        preferred[0]!.podAffinityTerm.labelSelector?.matchLabels,
        deployment.spec!.template.metadata!.labels,
      ),
    ).toBe(true);
    expect(podSpec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
  });

  it('probes /healthz and /readyz on the metrics port', () => {
    expect(container.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
  });

  it('selects its own pods', () => {
    expect(selects(deployment.spec!.selector.matchLabels, deployment.spec!.template.metadata!.labels)).toBe(
      true,
    );
  });

  it('has a priority class that the ResourceQuota admits', () => {
    const quota = findObject(
      objects,
      'ResourceQuota',
      'meshrev-critical-pods',
      NAMESPACE,
    ) as unknown as V1ResourceQuota;
    expect(podSpec.priorityClassName).toBe('system-cluster-critical');
    expect(quota.spec?.scopeSelector?.matchExpressions).toEqual([
      { operator: 'In', scopeName: 'PriorityClass', values: [podSpec.priorityClassName] },
    ]);
    expect(Number(quota.spec?.hard?.['pods'])).toBeGreaterThan(deployment.spec!.replicas!);
  });
});

describe('Services and the disruption budget', () => {
  const service = (name: string) => findObject(objects, 'Service', name, NAMESPACE) as unknown as V1Service;

  it('exposes the injector as meshrev-injector:443 on the container port the operator listens on', () => {
    const [port] = service('meshrev-injector').spec!.ports!;
    expect(port).toMatchObject({ port: 443, targetPort: 'webhook' });
    expect(containerPort('webhook')).toBe(Number(flag('injector-port')));
  });

  it('exposes metrics as meshrev-metrics:8080 on the container port the operator listens on', () => {
    const [port] = service('meshrev-metrics').spec!.ports!;
    expect(port).toMatchObject({ port: 8080, targetPort: 'metrics' });
    expect(containerPort('metrics')).toBe(Number(flag('metrics-port')));
  });

  it.each(['meshrev-injector', 'meshrev-metrics'])('routes %s to the operator pods', (name) => {
    expect(selects(service(name).spec!.selector, deployment.spec!.template.metadata!.labels)).toBe(true);
  });

  it('keeps at least one injector replica through voluntary disruptions', () => {
    const budget = findObject(
      objects,
      'PodDisruptionBudget',
      'meshrev',
      NAMESPACE,
    ) as unknown as V1PodDisruptionBudget;
    // With two replicas that keeps one; with one, a node drain can still evict it.
    expect(budget.spec?.maxUnavailable).toBe(1);
    expect(budget.spec?.minAvailable).toBeUndefined();
    expect(selects(budget.spec?.selector?.matchLabels, deployment.spec!.template.metadata!.labels)).toBe(
      true,
    );
  });
});

describe('the channels ConfigMap', () => {
  const configMap: KubeObject = findObject(objects, 'ConfigMap', 'meshrev-channels', NAMESPACE);

  it('is the ConfigMap the operator is told to read', () => {
    expect(configMap.metadata.name).toBe(flag('channel-configmap'));
  });

  it('holds a channel table meshrev accepts, equal to the built-in one', () => {
    const parsed = parseChannelTable(configMap['data'] as Record<string, string>);
    expect(parsed.problems).toEqual([]);
    expect(configMap['data']).toEqual({ ...DEFAULT_CHANNEL_TABLE });
  });
});
