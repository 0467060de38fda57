// `meshrev kube-inject`: the injection engine offline, from a file or standard input, with the settings
// of a revision file or of a revision read from the cluster.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';

import { ExitCode } from '../../../src/cli/io.js';
import { runKubeInject } from '../../../src/cli/kube-inject.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { FakeKube, testIO } from './fake-kube.js';

interface Container {
  name: string;
  image?: string;
  restartPolicy?: string;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
}
type Doc = {
  kind: string;
  metadata?: { name?: string; namespace?: string; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  items?: Doc[];
} & Record<string, unknown>;

let dir: string;

const REVISION = {
  apiVersion: 'meshrev.dev/v1alpha1',
  kind: 'ControlPlaneRevision',
  metadata: { name: 'blue', uid: 'uid-blue' },
  spec: { version: '1.29.6', hub: 'registry.example/istio' },
};

const deployment = (
  name: string,
  extra: Record<string, unknown> = {},
  annotations: Record<string, string> = {},
): Doc => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: 'shop' },
  spec: {
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name }, annotations },
      spec: { containers: [{ name: 'web', image: 'nginx' }], ...extra },
    },
  },
});

const SERVICE: Doc = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { ports: [{ port: 80 }] },
};

function file(name: string, docs: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, docs.map((d) => stringify(d)).join('---\n'));
  return path;
}

function outputDocs(text: string): Doc[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Doc)
    .filter((d) => d !== null);
}

function podSpecOf(doc: Doc): PodSpec {
  return (doc.spec as { template: { spec: PodSpec } }).template.spec;
}

const proxyOf = (spec: PodSpec): Container | undefined =>
  [...(spec.initContainers ?? []), ...spec.containers].find((c) => c.name === 'istio-proxy');

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'meshrev-kube-inject-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function run(args: string[], options: { kube?: FakeKube; stdin?: string } = {}) {
  const io = testIO(options.kube ?? new FakeKube());
  const code = await runKubeInject(args, io, () => options.stdin ?? '');
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

describe('meshrev kube-inject', () => {
  test('injects the Deployments of a file and passes other objects through unchanged', async () => {
    const input = file('app.yaml', [
      deployment('web'),
      SERVICE,
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: '1' } },
    ]);
    const revisionFile = file('cpr.yaml', [REVISION]);
    const { code, stdout, stderr } = await run(['-f', input, '--revision-file', revisionFile]);
    expect(stderr).toBe('');
    expect(code).toBe(ExitCode.Ok);
    const [injected, service, configMap] = outputDocs(stdout);
    const spec = podSpecOf(injected!);
    expect(proxyOf(spec)).toMatchObject({
      image: 'registry.example/istio/proxyv2:1.29.6',
      restartPolicy: 'Always',
    });
    expect(spec.initContainers?.map((c) => c.name)).toEqual(['istio-init', 'istio-proxy']);
    const template = (injected!.spec as { template: { metadata: { annotations: Record<string, string> } } })
      .template;
    expect(JSON.parse(template.metadata.annotations['sidecar.istio.io/status'] ?? '{}')).toMatchObject({
      revision: 'blue',
    });
    expect(service).toEqual(SERVICE);
    expect(configMap).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c' },
      data: { a: '1' },
    });
  });

  test('reads the manifests from standard input with -f -', async () => {
    const revisionFile = file('cpr.yaml', [REVISION]);
    const { code, stdout } = await run(['-f', '-', '--revision-file', revisionFile], {
      stdin: stringify(deployment('api')),
    });
    expect(code).toBe(ExitCode.Ok);
    expect(proxyOf(podSpecOf(outputDocs(stdout)[0]!))).toBeDefined();
  });

  test('reads the revision from the cluster with --revision', async () => {
    const kube = new FakeKube().add({ ...REVISION, status: { version: '1.29.6' } } as KubeObject);
    const { code, stdout } = await run(['-f', '-', '--revision', 'blue'], {
      kube,
      stdin: stringify(deployment('api')),
    });
    expect(code).toBe(ExitCode.Ok);
    expect(proxyOf(podSpecOf(outputDocs(stdout)[0]!))?.image).toBe('registry.example/istio/proxyv2:1.29.6');
  });

  test('injects the items of a List and a bare Pod', async () => {
    const revisionFile = file('cpr.yaml', [REVISION]);
    const list = { apiVersion: 'v1', kind: 'List', items: [deployment('a'), SERVICE] };
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'shop' },
      spec: { containers: [{ name: 'app', image: 'busybox' }] },
    };
    const { code, stdout } = await run([
      '-f',
      file('list.yaml', [list, pod]),
      '--revision-file',
      revisionFile,
    ]);
    expect(code).toBe(ExitCode.Ok);
    const [outList, outPod] = outputDocs(stdout);
    expect(proxyOf(podSpecOf(outList!.items![0]!))).toBeDefined();
    expect(outList!.items![1]).toEqual(SERVICE);
    expect(proxyOf(outPod!.spec as unknown as PodSpec)).toBeDefined();
  });

  test('uses the classic layout for an older kubelet', async () => {
    const revisionFile = file('cpr.yaml', [REVISION]);
    const { stdout } = await run(['-f', '-', '--revision-file', revisionFile, '--kubelet-minor', '28'], {
      stdin: stringify(deployment('api')),
    });
    const spec = podSpecOf(outputDocs(stdout)[0]!);
    expect(spec.containers.map((c) => c.name)).toEqual(['web', 'istio-proxy']);
    expect(spec.initContainers?.map((c) => c.name)).toEqual(['istio-init']);
  });

  test('leaves a host-network workload alone and says so on stderr', async () => {
    const revisionFile = file('cpr.yaml', [REVISION]);
    const input = deployment('node-agent', { hostNetwork: true });
    const { code, stdout, stderr } = await run(['-f', '-', '--revision-file', revisionFile], {
      stdin: stringify(input),
    });
    expect(code).toBe(ExitCode.Ok);
    expect(outputDocs(stdout)[0]).toEqual(input);
    expect(stderr).toContain(
      'warning: ===> Skipping injection because Deployment "shop/node-agent" has host networking enabled',
    );
  });

  test.each<{
    name: string;
    args: (files: { revision: string; app: string }) => string[];
    stdin?: string;
    code: number;
    message: RegExp;
  }>([
    {
      name: 'no -f',
      args: (f) => ['--revision-file', f.revision],
      code: ExitCode.Usage,
      message: /give -f and exactly one of --revision-file or --revision/,
    },
    {
      name: 'no revision',
      args: (f) => ['-f', f.app],
      code: ExitCode.Usage,
      message: /exactly one of --revision-file or --revision/,
    },
    {
      name: 'both revision sources',
      args: (f) => ['-f', f.app, '--revision-file', f.revision, '--revision', 'blue'],
      code: ExitCode.Usage,
      message: /exactly one/,
    },
    {
      name: 'a kubelet minor that is no number',
      args: (f) => ['-f', f.app, '--revision-file', f.revision, '--kubelet-minor', 'new'],
      code: ExitCode.Usage,
      message: /--kubelet-minor must be a whole number/,
    },
    {
      name: 'an unknown flag',
      args: (f) => ['-f', f.app, '--revison', 'blue'],
      code: ExitCode.Usage,
      message: /revison/,
    },
    {
      name: 'a missing manifest file',
      args: (f) => ['-f', join(dir, 'nope.yaml'), '--revision-file', f.revision],
      code: ExitCode.Error,
      message: /nope\.yaml/,
    },
    {
      name: 'a missing revision file',
      args: (f) => ['-f', f.app, '--revision-file', join(dir, 'nope.yaml')],
      code: ExitCode.Error,
      message: /nope\.yaml/,
    },
    {
      name: 'a revision not in the cluster',
      args: (f) => ['-f', f.app, '--revision', 'green'],
      code: ExitCode.Error,
      message: /green/,
    },
    {
      name: 'manifests that are not YAML',
      args: (f) => ['-f', '-', '--revision-file', f.revision],
      stdin: 'kind: [unclosed',
      code: ExitCode.Error,
      message: /^error: -: /,
    },
  ])('exits $code for $name', async ({ args, stdin, code, message }) => {
    const files = { revision: file('cpr.yaml', [REVISION]), app: file('app.yaml', [deployment('web')]) };
    const result = await run(args(files), stdin === undefined ? {} : { stdin });
    expect(result.code).toBe(code);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
  });

  test('exits 1 for an invalid revision file, naming the problem', async () => {
    const revisionFile = file('cpr.yaml', [{ ...REVISION, spec: { version: 'one' } }]);
    const { code, stderr } = await run([
      '-f',
      file('app.yaml', [deployment('web')]),
      '--revision-file',
      revisionFile,
    ]);
    expect(code).toBe(ExitCode.Error);
    expect(stderr).toMatch(/the ControlPlaneRevision is not valid:[\s\S]*version/);
  });

  test('exits 1 for a channel revision that has not resolved a version', async () => {
    const revisionFile = file('cpr.yaml', [{ ...REVISION, spec: { channel: 'stable' } }]);
    const { code, stderr } = await run([
      '-f',
      file('app.yaml', [deployment('web')]),
      '--revision-file',
      revisionFile,
    ]);
    expect(code).toBe(ExitCode.Error);
    expect(stderr).toContain('revision "blue" follows channel "stable" and has not resolved a version yet');
  });

  test('exits 1 for a workload with an invalid traffic annotation, naming the annotation', async () => {
    const input = deployment(
      'web',
      {},
      { 'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.0.0.0/33' },
    );
    const { code, stdout, stderr } = await run(['-f', '-', '--revision-file', file('cpr.yaml', [REVISION])], {
      stdin: stringify(input),
    });
    expect(code).toBe(ExitCode.Error);
    expect(stdout).toBe('');
    expect(stderr).toContain('traffic.sidecar.istio.io/includeOutboundIPRanges');
  });

  test('prints its help with --help', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(ExitCode.Ok);
    expect(stdout).toMatch(/^usage: meshrev kube-inject -f <file\|->/);
  });
});
