import { readFileSync, readlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import type { V1Deployment, V1Service } from '@kubernetes/client-node';
import { parse } from 'yaml';

import { DEFAULT_CHANNEL_TABLE } from '../../../src/controllers/common/versions.js';
import {
  CHART_DIR,
  chartValues,
  CRD_FILES,
  DEPLOY_DIR,
  findObject,
  type KubeObject,
  kustomizeObjects,
  objectId,
  REPO_ROOT,
  renderChart,
} from './manifests.js';

const NAMESPACE = 'meshrev-system';

function byId(objects: KubeObject[]): Record<string, KubeObject> {
  return Object.fromEntries(objects.map((object) => [objectId(object), object]));
}

function deploymentOf(objects: KubeObject[], namespace = NAMESPACE): V1Deployment {
  return findObject(objects, 'Deployment', 'meshrev', namespace) as unknown as V1Deployment;
}

function operatorArgs(objects: KubeObject[], namespace = NAMESPACE): string[] {
  return deploymentOf(objects, namespace).spec!.template.spec!.containers[0]!.args ?? [];
}

const kustomized = kustomizeObjects().filter(
  (object) => object.kind !== 'CustomResourceDefinition' && object.kind !== 'Namespace',
);
const values = chartValues();

describe('the Helm chart with default values', () => {
  it('renders exactly the objects of the kustomization, apart from the Namespace and the CRDs', () => {
    expect(byId(renderChart())).toEqual(byId(kustomized));
  });

  it('renders the kustomization Namespace when asked to create it', () => {
    const rendered = renderChart({ values: { createNamespace: true } });
    expect(findObject(rendered, 'Namespace', NAMESPACE)).toEqual(
      findObject(kustomizeObjects(), 'Namespace', NAMESPACE),
    );
  });

  it('declares in values.yaml the image, replicas, resources, ports and flags the kustomize Deployment uses', () => {
    const deployment = deploymentOf(kustomized);
    const container = deployment.spec!.template.spec!.containers[0]!;
    const image = values['image'] as { repository: string; tag: string; pullPolicy: string };
    const flags = Object.fromEntries(
      (container.args ?? []).slice(1).map((arg) => arg.slice(2).split('=') as [string, string]),
    );
    expect({
      image: `${image.repository}:${image.tag}`,
      pullPolicy: image.pullPolicy,
      replicas: values['replicas'],
      resources: values['resources'],
      injectorPort: values['injectorPort'],
      metricsPort: values['metricsPort'],
      logLevel: values['logLevel'],
      leaderElection: values['leaderElection'],
      createDefaultTag: values['createDefaultTag'],
      priorityClassName: values['priorityClassName'],
      terminationGracePeriodSeconds: values['terminationGracePeriodSeconds'],
    }).toEqual({
      image: container.image,
      pullPolicy: container.imagePullPolicy,
      replicas: deployment.spec!.replicas,
      resources: container.resources,
      injectorPort: container.ports!.find((port) => port.name === 'webhook')!.containerPort,
      metricsPort: container.ports!.find((port) => port.name === 'metrics')!.containerPort,
      logLevel: flags['log-level'],
      leaderElection: flags['leader-elect'] === 'true',
      createDefaultTag: flags['create-default-tag'] === 'true',
      priorityClassName: deployment.spec!.template.spec!.priorityClassName,
      terminationGracePeriodSeconds: deployment.spec!.template.spec!.terminationGracePeriodSeconds,
    });
  });

  it('ships the built-in channel table', () => {
    expect(values['channels']).toEqual({ ...DEFAULT_CHANNEL_TABLE });
  });

  it('versions the chart and its app like the package', () => {
    const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as Record<string, string>;
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect({ version: chart['version'], appVersion: chart['appVersion'] }).toEqual({
      version: pkg.version,
      appVersion: `v${pkg.version}`,
    });
  });

  it('installs the CRDs and the ClusterRoles from the very files kustomize applies', () => {
    const linked = [...CRD_FILES, 'clusterrole.yaml'].map((file) => ({
      chart: join(CHART_DIR, file.startsWith('crds/') ? file : join('files', file)),
      deploy: join(DEPLOY_DIR, file),
    }));
    for (const { chart, deploy } of linked) {
      expect(resolve(dirname(chart), readlinkSync(chart))).toBe(deploy);
    }
  });
});

describe('the Helm chart with values set', () => {
  it('moves every namespaced object and the ServiceAccount subjects to the chosen namespace', () => {
    const rendered = renderChart({ releaseNamespace: 'mesh-operators' });
    const namespaces = new Set(
      rendered
        .filter(
          (object) =>
            object.metadata.namespace !== undefined && object.metadata.name !== 'meshrev-istiod-delegation',
        )
        .map((object) => object.metadata.namespace),
    );
    expect([...namespaces]).toEqual(['mesh-operators']);
    const subjects = rendered
      .filter((object) => object.kind.endsWith('Binding'))
      .flatMap((binding) => binding['subjects'] as Array<{ namespace: string }>);
    expect(subjects.every((subject) => subject.namespace === 'mesh-operators')).toBe(true);
    expect(deploymentOf(rendered, 'mesh-operators')).toBeDefined();
  });

  it('prefers the namespace value over the release namespace', () => {
    const rendered = renderChart({ releaseNamespace: 'default', values: { namespace: 'meshrev-system' } });
    expect(deploymentOf(rendered).metadata!.namespace).toBe('meshrev-system');
  });

  it('binds the namespaced istiod delegation in every control-plane namespace listed', () => {
    const rendered = renderChart({ values: { controlPlaneNamespaces: ['istio-system', 'istio-canary'] } });
    const bindings = rendered.filter(
      (object) => object.metadata.name === 'meshrev-istiod-delegation' && object.kind === 'RoleBinding',
    );
    expect(bindings.map((binding) => binding.metadata.namespace)).toEqual(['istio-system', 'istio-canary']);
  });

  it('drops the priority class and its ResourceQuota when priorityClassName is empty', () => {
    const rendered = renderChart({ values: { priorityClassName: '' } });
    expect(rendered.filter((object) => object.kind === 'ResourceQuota')).toEqual([]);
    expect(deploymentOf(rendered).spec!.template.spec!.priorityClassName).toBeUndefined();
  });

  it('keeps a non-system priority class without a ResourceQuota', () => {
    const rendered = renderChart({ values: { priorityClassName: 'mesh-critical' } });
    expect(rendered.filter((object) => object.kind === 'ResourceQuota')).toEqual([]);
    expect(deploymentOf(rendered).spec!.template.spec!.priorityClassName).toBe('mesh-critical');
  });

  it('passes switched-off features and other settings to the operator as flags', () => {
    const rendered = renderChart({
      values: {
        leaderElection: false,
        createDefaultTag: false,
        logLevel: 'debug',
        injectorPort: 10250,
        metricsPort: 9090,
      },
    });
    expect(operatorArgs(rendered)).toEqual([
      'operator',
      '--log-level=debug',
      '--leader-elect=false',
      '--create-default-tag=false',
      '--channel-configmap=meshrev-channels',
      '--injector-port=10250',
      '--metrics-port=9090',
    ]);
    const metrics = findObject(rendered, 'Service', 'meshrev-metrics', NAMESPACE) as unknown as V1Service;
    expect(metrics.spec!.ports![0]).toMatchObject({ port: 9090, targetPort: 'metrics' });
  });

  it('uses the image repository, tag (or the appVersion when empty) and pull policy given', () => {
    const image = (tag: string) =>
      deploymentOf(
        renderChart({
          values: { image: { repository: 'registry.example/meshrev', tag, pullPolicy: 'Always' } },
        }),
      ).spec!.template.spec!.containers[0]!;
    expect(image('v9.9.9')).toMatchObject({
      image: 'registry.example/meshrev:v9.9.9',
      imagePullPolicy: 'Always',
    });
    expect(image('').image).toBe('registry.example/meshrev:v0.1.0');
  });

  it('adds pod annotations, node selector, tolerations, pull secrets and replaces the default affinity', () => {
    const affinity = {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } },
    };
    const tolerations = [{ key: 'dedicated', operator: 'Equal', value: 'mesh', effect: 'NoSchedule' }];
    const rendered = renderChart({
      values: {
        replicas: 3,
        podAnnotations: { 'prometheus.io/scrape': 'true' },
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations,
        imagePullSecrets: [{ name: 'ghcr' }],
        affinity,
      },
    });
    const deployment = deploymentOf(rendered);
    const pod = deployment.spec!.template;
    expect(deployment.spec!.replicas).toBe(3);
    expect(pod.metadata!.annotations).toEqual({
      'kubectl.kubernetes.io/default-container': 'operator',
      'prometheus.io/scrape': 'true',
    });
    expect(pod.spec).toMatchObject({
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      tolerations,
      imagePullSecrets: [{ name: 'ghcr' }],
      affinity,
    });
  });

  it('renders the channel table given', () => {
    const channels = { stable: '1.29.6', regular: '1.30.3', rapid: '1.30.3' };
    const configMap = findObject(
      renderChart({ values: { channels } }),
      'ConfigMap',
      'meshrev-channels',
      NAMESPACE,
    );
    expect(configMap['data']).toEqual(channels);
  });
});
