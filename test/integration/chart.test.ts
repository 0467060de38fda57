// The Helm chart rendered by a real helm (built from its Go module by hack/build-k8s.sh, like kubectl):
// with default values it renders the very objects `kubectl kustomize deploy/` does, `helm lint` accepts it,
// the API server accepts what it renders, and each value users change lands where it should.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { V1Deployment, V1Service } from '@kubernetes/client-node';
import { stringify } from 'yaml';

import { clusterBinary, componentLogs, testKubeconfigPath } from '../support/kube.js';
import { repoRoot, testClient } from '../support/operator.js';
import { findObject, type KubeObject, objectId, parseObjects } from '../unit/deploy/manifests.js';

const CHART = join(repoRoot, 'deploy', 'charts', 'meshrev');
const NAMESPACE = 'meshrev-system';

/** Helm's own state (plugins, repositories, cache) goes to a scratch directory, not the user's home. */
const helmHome = mkdtempSync(join(tmpdir(), 'meshrev-helm-'));

function run(binary: string, args: string[]): string {
  try {
    return execFileSync(clusterBinary(binary), args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        HELM_CACHE_HOME: join(helmHome, 'cache'),
        HELM_CONFIG_HOME: join(helmHome, 'config'),
        HELM_DATA_HOME: join(helmHome, 'data'),
      },
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${binary} ${args.join(' ')} failed: ${e.stderr || e.message}\n${e.stdout ?? ''}`);
  }
}

interface RenderOptions {
  values?: Record<string, unknown>;
  namespace?: string;
  includeCrds?: boolean;
}

let valuesFiles = 0;

/** `helm template meshrev deploy/charts/meshrev -n <namespace> [--include-crds] [-f values]`, parsed. */
function helmTemplate(options: RenderOptions = {}): KubeObject[] {
  const args = ['template', 'meshrev', CHART, '-n', options.namespace ?? NAMESPACE];
  if (options.includeCrds) args.push('--include-crds');
  if (options.values !== undefined) {
    const file = join(helmHome, `values-${++valuesFiles}.yaml`);
    writeFileSync(file, stringify(options.values));
    args.push('-f', file);
  }
  return parseObjects(run('helm', args), 'helm template');
}

function kustomize(): KubeObject[] {
  return parseObjects(run('kubectl', ['kustomize', join(repoRoot, 'deploy')]), 'kubectl kustomize');
}

function byId(objects: KubeObject[]): Record<string, KubeObject> {
  const result: Record<string, KubeObject> = {};
  for (const object of objects) {
    const id = `${object.apiVersion}/${objectId(object)}`;
    if (id in result) throw new Error(`${id} rendered twice`);
    result[id] = object;
  }
  return result;
}

function deploymentOf(objects: KubeObject[], namespace = NAMESPACE): V1Deployment {
  return findObject(objects, 'Deployment', 'meshrev', namespace) as unknown as V1Deployment;
}

function operatorContainer(objects: KubeObject[], namespace = NAMESPACE) {
  return deploymentOf(objects, namespace).spec!.template.spec!.containers[0]!;
}

afterAll(() => {
  rmSync(helmHome, { recursive: true, force: true });
});

describe('the Helm chart rendered by helm', () => {
  test('with createNamespace renders exactly the objects of kubectl kustomize deploy/, CRDs included', () => {
    // No normalisation: the chart adds none of Helm's bookkeeping labels (helm.sh/chart,
    // app.kubernetes.io/managed-by: Helm), so both object sets must be equal as parsed. Helm's `# Source:`
    // comments and the documents' order are lost in parsing and keying by apiVersion/kind/namespace/name.
    const rendered = helmTemplate({ includeCrds: true, values: { createNamespace: true } });
    const reference = kustomize();
    expect(Object.keys(byId(rendered)).sort()).toEqual(Object.keys(byId(reference)).sort());
    expect(byId(rendered)).toEqual(byId(reference));
  });

  test('with default values renders the same objects except the Namespace, which Helm creates itself', () => {
    const rendered = helmTemplate({ includeCrds: true });
    const reference = kustomize().filter((object) => object.kind !== 'Namespace');
    expect(byId(rendered)).toEqual(byId(reference));
  });

  test('passes helm lint, with default and with changed values', () => {
    expect(run('helm', ['lint', CHART])).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    const file = join(helmHome, 'lint-values.yaml');
    writeFileSync(file, stringify({ namespace: 'mesh-operators', createNamespace: true, replicas: 3 }));
    expect(run('helm', ['lint', CHART, '-f', file])).toMatch(/0 chart\(s\) failed/);
  });

  test('renders what the API server accepts in a server-side dry run', async () => {
    const client = testClient();
    try {
      if (!(await client.getOptional({ apiVersion: 'v1', kind: 'Namespace', name: NAMESPACE }))) {
        await client
          .create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } })
          .catch(() => undefined);
      }
    } finally {
      client.close();
    }
    const file = join(helmHome, 'rendered.yaml');
    writeFileSync(file, run('helm', ['template', 'meshrev', CHART, '-n', NAMESPACE, '--include-crds']));
    // --force-conflicts: on this shared cluster the injector Service may be the ExternalName that dev
    // webhook routing owns; a real install takes the Service over the same way.
    let out: string;
    try {
      out = run('kubectl', [
        '--kubeconfig',
        testKubeconfigPath(),
        'apply',
        '--server-side',
        '--force-conflicts',
        '--dry-run=server',
        '-f',
        file,
      ]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${componentLogs(['kube-apiserver'])}`);
    }
    const lines = out.trim().split('\n');
    expect(lines.filter((line) => !line.endsWith('serverside-applied (server dry run)'))).toEqual([]);
    expect(lines).toHaveLength(helmTemplate({ includeCrds: true }).length);
  });
});

describe('the Helm chart with values set', () => {
  test('uses the image repository, tag (or the appVersion when empty) and pull policy given', () => {
    const image = (tag: string) =>
      operatorContainer(
        helmTemplate({
          values: { image: { repository: 'registry.example/meshrev', tag, pullPolicy: 'Always' } },
        }),
      );
    expect(image('v9.9.9')).toMatchObject({
      image: 'registry.example/meshrev:v9.9.9',
      imagePullPolicy: 'Always',
    });
    expect(image('').image).toBe('registry.example/meshrev:v0.1.0');
  });

  test('refuses several replicas without leader election, which would run several reconcilers at once', () => {
    expect(() => helmTemplate({ values: { leaderElection: false, replicas: 2 } })).toThrow(
      /leaderElection: false with more than one replica/,
    );
    expect(
      deploymentOf(helmTemplate({ values: { leaderElection: false, replicas: 1 } })).spec!.replicas,
    ).toBe(1);
  });

  test('runs the replicas and resources given', () => {
    const resources = { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } };
    const rendered = helmTemplate({ values: { replicas: 3, resources } });
    expect(deploymentOf(rendered).spec!.replicas).toBe(3);
    expect(operatorContainer(rendered).resources).toEqual(resources);
  });

  test('moves every namespaced object and the ServiceAccount subjects to the chosen namespace', () => {
    const rendered = helmTemplate({ namespace: 'mesh-operators', values: { createNamespace: true } });
    const namespaces = new Set(
      rendered.filter((object) => object.metadata.namespace !== undefined).map((o) => o.metadata.namespace),
    );
    expect([...namespaces]).toEqual(['mesh-operators']);
    expect(findObject(rendered, 'Namespace', 'mesh-operators')).toBeDefined();
    const subjects = rendered
      .filter((object) => object.kind.endsWith('Binding'))
      .flatMap((binding) => binding['subjects'] as Array<{ namespace: string }>);
    expect(subjects.map((subject) => subject.namespace)).toEqual(['mesh-operators', 'mesh-operators']);
    expect(deploymentOf(rendered, 'mesh-operators')).toBeDefined();
  });

  test('prefers the namespace value over the release namespace', () => {
    const rendered = helmTemplate({ namespace: 'default', values: { namespace: NAMESPACE } });
    expect(deploymentOf(rendered).metadata!.namespace).toBe(NAMESPACE);
  });

  test('passes the log level, switched-off features, ports and injector tuning to the operator as flags', () => {
    const rendered = helmTemplate({
      values: {
        // Without leader election the chart runs one replica only.
        replicas: 1,
        leaderElection: false,
        createDefaultTag: false,
        logLevel: 'debug',
        injectorPort: 10250,
        metricsPort: 9090,
        injectionCacheEntries: 0,
        injectorRenderThreads: 2,
        injectorRenderOffload: 'always',
      },
    });
    expect(operatorContainer(rendered).args).toEqual([
      'operator',
      '--log-level=debug',
      '--leader-elect=false',
      '--create-default-tag=false',
      '--channel-configmap=meshrev-channels',
      '--injector-port=10250',
      '--metrics-port=9090',
      '--injection-cache-entries=0',
      '--injector-render-threads=2',
      '--injector-render-offload=always',
    ]);
    const metrics = findObject(rendered, 'Service', 'meshrev-metrics', NAMESPACE) as unknown as V1Service;
    expect(metrics.spec!.ports![0]).toMatchObject({ port: 9090, targetPort: 'metrics' });
  });

  test('drops the priority class and its ResourceQuota when priorityClassName is empty', () => {
    const rendered = helmTemplate({ values: { priorityClassName: '' } });
    expect(rendered.filter((object) => object.kind === 'ResourceQuota')).toEqual([]);
    expect(deploymentOf(rendered).spec!.template.spec!.priorityClassName).toBeUndefined();
  });

  test('keeps a non-system priority class without a ResourceQuota', () => {
    const rendered = helmTemplate({ values: { priorityClassName: 'mesh-critical' } });
    expect(rendered.filter((object) => object.kind === 'ResourceQuota')).toEqual([]);
    expect(deploymentOf(rendered).spec!.template.spec!.priorityClassName).toBe('mesh-critical');
  });

  test('adds pod annotations, node selector, tolerations, pull secrets and replaces the default affinity', () => {
    const affinity = {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } },
    };
    const tolerations = [{ key: 'dedicated', operator: 'Equal', value: 'mesh', effect: 'NoSchedule' }];
    const rendered = helmTemplate({
      values: {
        podAnnotations: { 'prometheus.io/scrape': 'true' },
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations,
        imagePullSecrets: [{ name: 'ghcr' }],
        affinity,
      },
    });
    const pod = deploymentOf(rendered).spec!.template;
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

  test('renders the channel table given', () => {
    const channels = { stable: '1.29.6', regular: '1.30.3', rapid: '1.30.3' };
    const configMap = findObject(
      helmTemplate({ values: { channels } }),
      'ConfigMap',
      'meshrev-channels',
      NAMESPACE,
    );
    expect(configMap['data']).toEqual(channels);
  });
});
