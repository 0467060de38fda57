import { parse } from 'yaml';

import { ApiError } from '../../../src/runtime/kube.js';
import { runStatus } from '../../../src/cli/status.js';
import { FakeKube, testIO } from './fake-kube.js';
import { deploymentWithPods, namespace, pod, revision, tag } from './fixtures.js';

function upgradeInProgress(): FakeKube {
  return new FakeKube().add(
    revision('asm-1233-2', '1.29.6'),
    revision('asm-1234-1', '1.30.3', 'False'),
    tag('prod', 'asm-1234-1'),
    namespace('shop', { 'istio.io/rev': 'prod' }),
    namespace('legacy', { 'istio-injection': 'disabled' }),
    namespace('kube-system'),
    ...deploymentWithPods('shop', 'web', 3, 'asm-1233-2'),
    pod('shop', 'new', { injectedBy: 'asm-1234-1' }),
    pod('shop', 'finished', { injectedBy: 'asm-1233-2', phase: 'Succeeded' }),
    pod('kube-system', 'dns'),
  );
}

describe('meshrev status', () => {
  test('shows revisions, tags and namespaces in aligned columns', async () => {
    const io = testIO(upgradeInProgress());
    expect(await runStatus([], io)).toBe(0);
    const text = io.stdoutText();
    expect(text).toContain(
      [
        'REVISION     VERSION   READY   IN USE   NAMESPACES   PODS   STALE   TAGS',
        'asm-1233-2   1.29.6    True    yes      0            3      3       -',
        'asm-1234-1   1.30.3    False   yes      1            1      0       prod',
      ].join('\n'),
    );
    expect(text).toContain(
      ['TAG    REVISION     IN USE   NAMESPACES   PODS', 'prod   asm-1234-1   yes      1            4'].join(
        '\n',
      ),
    );
    expect(text).toContain(
      [
        'NAMESPACE   LABEL                      REVISION                 PODS BY REVISION             NO SIDECAR   STALE',
        'legacy      istio-injection=disabled   - (injection disabled)   -                            0            0',
        'shop        istio.io/rev=prod          asm-1234-1               asm-1233-2=3, asm-1234-1=1   0            3',
      ].join('\n'),
    );
    expect(text).toContain('3 stale pods in shop run a revision their namespace no longer selects');
    expect(text).not.toContain('kube-system');
  });

  test('reads pods and namespaces as metadata only and skips completed and failed pods', async () => {
    const kube = upgradeInProgress();
    expect(await runStatus([], testIO(kube))).toBe(0);
    const podList = kube.lists.find((list) => list.kind === 'Pod');
    expect(podList?.options).toMatchObject({
      metadataOnly: true,
      fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed',
    });
    expect(kube.lists.find((list) => list.kind === 'Namespace')?.options).toMatchObject({
      metadataOnly: true,
    });
    expect(kube.writes).toEqual([]);
  });

  test('-o json gives scripts the same facts', async () => {
    const io = testIO(upgradeInProgress());
    expect(await runStatus(['-o', 'json'], io)).toBe(0);
    const report = JSON.parse(io.stdoutText()) as {
      revisions: Array<{ name: string; inUse: boolean; stalePods: number; reasons: string[] }>;
      namespaces: Array<{ name: string; revision?: string; podsByRevision: Record<string, number> }>;
    };
    expect(report.revisions.map((r) => [r.name, r.inUse, r.stalePods])).toEqual([
      ['asm-1233-2', true, 3],
      ['asm-1234-1', true, 0],
    ]);
    expect(report.revisions[1]?.reasons).toContain('namespace "shop" selects it via istio.io/rev=prod (tag)');
    expect(report.namespaces.find((ns) => ns.name === 'shop')).toMatchObject({
      revision: 'asm-1234-1',
      podsByRevision: { 'asm-1233-2': 3, 'asm-1234-1': 1 },
    });
  });

  test('-o yaml parses back to the JSON report', async () => {
    const jsonIO = testIO(upgradeInProgress());
    const yamlIO = testIO(upgradeInProgress());
    await runStatus(['-o', 'json'], jsonIO);
    await runStatus(['--output=yaml'], yamlIO);
    expect(parse(yamlIO.stdoutText())).toEqual(JSON.parse(jsonIO.stdoutText()));
  });

  test('an empty cluster says so instead of printing empty tables', async () => {
    const io = testIO(new FakeKube());
    expect(await runStatus([], io)).toBe(0);
    expect(io.stdoutText()).toBe(
      'No ControlPlaneRevisions found.\n\nNo namespace has an injection label or injected pods.',
    );
  });

  test('a tag or namespace pointing at a missing revision is marked', async () => {
    const kube = new FakeKube().add(
      revision('r1'),
      tag('stale', 'gone'),
      namespace('a', { 'istio.io/rev': 'stale' }),
      namespace('b', { 'istio.io/rev': 'nothing' }),
    );
    const io = testIO(kube);
    await runStatus([], io);
    expect(io.stdoutText()).toMatch(/stale\s+gone \(missing\)/);
    expect(io.stdoutText()).toMatch(/a\s+istio\.io\/rev=stale\s+gone \(missing\)/);
    expect(io.stdoutText()).toMatch(/b\s+istio\.io\/rev=nothing\s+- \(no revision or tag "nothing"\)/);
  });

  test('rejects an unknown output format with exit code 2', async () => {
    const io = testIO(new FakeKube());
    expect(await runStatus(['-o', 'wide'], io)).toBe(2);
    expect(io.stderrText()).toContain('unknown output format "wide"');
  });

  test('reports API errors with exit code 1', async () => {
    const kube = new FakeKube();
    kube.listAll = () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6443'));
    const io = testIO(kube);
    expect(await runStatus([], io)).toBe(1);
    expect(io.stderrText()).toBe('error: connect ECONNREFUSED 127.0.0.1:6443');
  });

  test('explains a missing CRD instead of passing on a bare 404', async () => {
    const kube = new FakeKube();
    const listAll = kube.listAll.bind(kube);
    kube.listAll = (type, options) =>
      type.apiVersion.startsWith('meshrev.dev/')
        ? Promise.reject(new ApiError(404, 'NotFound', '404 page not found'))
        : listAll(type, options);
    const io = testIO(kube);
    expect(await runStatus([], io)).toBe(1);
    expect(io.stderrText()).toContain(
      "the cluster does not serve ControlPlaneRevision (meshrev.dev/v1alpha1): install meshrev's CRDs first",
    );
  });
});
