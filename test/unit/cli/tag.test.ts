import { runTag } from '../../../src/cli/tag.js';
import { FakeKube, testIO } from './fake-kube.js';
import { defaultInjectorConfiguration, namespace, pod, revision, tag } from './fixtures.js';

const TAG_REF = { apiVersion: 'meshrev.dev/v1alpha1', kind: 'RevisionTag' };

function cluster(): FakeKube {
  return new FakeKube().add(revision('asm-1233-2'), revision('asm-1234-1'), tag('prod', 'asm-1233-2'));
}

describe('meshrev tag set', () => {
  test('creates a RevisionTag by server-side apply with the meshrev-cli field manager', async () => {
    const kube = cluster();
    const io = testIO(kube);
    expect(await runTag(['set', 'canary', '--revision', 'asm-1234-1'], io)).toBe(0);
    expect(kube.writes).toEqual([
      {
        verb: 'apply',
        ref: { ...TAG_REF, name: 'canary' },
        fieldManager: 'meshrev-cli',
        body: { ...TAG_REF, metadata: { name: 'canary' }, spec: { revision: 'asm-1234-1' } },
      },
    ]);
    expect(io.stdoutText()).toBe('tag canary created, pointing at asm-1234-1');
  });

  test('refuses to move an existing tag without --overwrite', async () => {
    const kube = cluster();
    const io = testIO(kube);
    expect(await runTag(['set', 'prod', '--revision', 'asm-1234-1'], io)).toBe(1);
    expect(io.stderrText()).toContain('tag "prod" already points at revision "asm-1233-2"; pass --overwrite');
    expect(kube.writes).toEqual([]);
  });

  test('moves an existing tag with --overwrite and says running pods need a restart', async () => {
    const kube = cluster();
    const io = testIO(kube);
    expect(await runTag(['set', 'prod', '--revision', 'asm-1234-1', '--overwrite'], io)).toBe(0);
    expect(kube.writes.map((write) => [write.verb, write.ref.name])).toEqual([['apply', 'prod']]);
    expect(io.stdoutText()).toContain(
      'tag prod moved from asm-1233-2 to asm-1234-1; running pods keep their proxy',
    );
  });

  test('setting a tag to the revision it already points at changes nothing', async () => {
    const kube = cluster();
    expect(await runTag(['set', 'prod', '--revision', 'asm-1233-2'], testIO(kube))).toBe(0);
    expect(kube.writes).toEqual([]);
  });

  test('refuses a revision that does not exist', async () => {
    const kube = cluster();
    const io = testIO(kube);
    expect(await runTag(['set', 'canary', '--revision', 'asm-9'], io)).toBe(1);
    expect(io.stderrText()).toBe('error: revision "asm-9" not found (revisions: asm-1233-2, asm-1234-1)');
    expect(kube.writes).toEqual([]);
  });

  test('refuses a tag named like a revision, whose webhooks would both match', async () => {
    const kube = cluster();
    const io = testIO(kube);
    expect(await runTag(['set', 'asm-1233-2', '--revision', 'asm-1234-1'], io)).toBe(1);
    expect(io.stderrText()).toContain('a revision has the same name');
  });

  test.each([
    [['set', '--revision', 'asm-1234-1'], 'name the tag to set'],
    [['set', 'canary'], '--revision <revision> is required'],
    [['set', 'Not_A_Label', '--revision', 'asm-1234-1'], "tag name 'Not_A_Label' is not a DNS-1123 label"],
    [['frobnicate'], 'unknown tag subcommand "frobnicate"'],
    [[], 'name a tag subcommand'],
  ])('rejects %j as a usage error with exit code 2', async (args, message) => {
    const io = testIO(cluster());
    expect(await runTag(args, io)).toBe(2);
    expect(io.stderrText()).toContain(message);
  });
});

describe('meshrev tag set default with a non-revisioned Istio install', () => {
  test('refuses with exit code 1 naming the install, which meshrev does not edit, and changes nothing', async () => {
    const kube = cluster().add(defaultInjectorConfiguration());
    const io = testIO(kube);
    expect(await runTag(['set', 'default', '--revision', 'asm-1234-1'], io)).toBe(1);
    expect(io.stderrText()).toContain(
      'error: MutatingWebhookConfiguration istio-sidecar-injector (istio.io/rev=default, not managed by meshrev)',
    );
    expect(io.stderrText()).toContain(
      'Deactivate or remove that install first (meshrev never edits objects it does not own), or pass --force',
    );
    expect(kube.writes).toEqual([]);
    expect(kube.lists.filter((list) => list.kind === 'MutatingWebhookConfiguration')).toEqual([
      {
        kind: 'MutatingWebhookConfiguration',
        options: { labelSelector: 'istio.io/rev=default', metadataOnly: true },
      },
    ]);
  });

  test('also refuses to move an existing default tag with --overwrite', async () => {
    const kube = cluster().add(defaultInjectorConfiguration(), tag('default', 'asm-1233-2'));
    const io = testIO(kube);
    expect(await runTag(['set', 'default', '--revision', 'asm-1234-1', '--overwrite'], io)).toBe(1);
    expect(io.stderrText()).toContain('MutatingWebhookConfiguration istio-sidecar-injector');
    expect(kube.writes).toEqual([]);
  });

  test('creates the tag with --force, with a warning', async () => {
    const kube = cluster().add(defaultInjectorConfiguration());
    const io = testIO(kube);
    expect(await runTag(['set', 'default', '--revision', 'asm-1234-1', '--force'], io)).toBe(0);
    expect(io.stderrText()).toMatch(
      /^warning: MutatingWebhookConfiguration istio-sidecar-injector .*; setting the tag anyway \(--force\)$/,
    );
    expect(kube.writes.map((write) => [write.verb, write.ref.name])).toEqual([['apply', 'default']]);
    expect(io.stdoutText()).toBe('tag default created, pointing at asm-1234-1');
  });

  test("meshrev's own istio.io/rev=default configuration does not count", async () => {
    const kube = cluster().add(defaultInjectorConfiguration('istio-revision-tag-default', true));
    const io = testIO(kube);
    expect(await runTag(['set', 'default', '--revision', 'asm-1234-1'], io)).toBe(0);
    expect(io.stderrText()).toBe('');
    expect(kube.writes.map((write) => [write.verb, write.ref.name])).toEqual([['apply', 'default']]);
  });

  test('without one, the default tag is created as before', async () => {
    const kube = cluster();
    const io = testIO(kube);
    expect(await runTag(['set', 'default', '--revision', 'asm-1234-1'], io)).toBe(0);
    expect(io.stderrText()).toBe('');
    expect(io.stdoutText()).toBe('tag default created, pointing at asm-1234-1');
  });

  test('other tags are not checked against it', async () => {
    const kube = cluster().add(defaultInjectorConfiguration());
    expect(await runTag(['set', 'canary', '--revision', 'asm-1234-1'], testIO(kube))).toBe(0);
    expect(kube.lists.map((list) => list.kind)).not.toContain('MutatingWebhookConfiguration');
  });

  test('documents --force for set in its help', async () => {
    const io = testIO(cluster());
    expect(await runTag(['--help'], io)).toBe(0);
    expect(io.stdoutText()).toContain('meshrev tag set <tag> --revision <revision> [--overwrite] [--force]');
  });
});

describe('meshrev tag list', () => {
  test('lists tags with their revision and the namespaces selecting them', async () => {
    const kube = cluster().add(
      tag('broken', 'gone'),
      namespace('shop', { 'istio.io/rev': 'prod' }),
      namespace('cart', { 'istio.io/rev': 'prod' }),
    );
    const io = testIO(kube);
    expect(await runTag(['list'], io)).toBe(0);
    expect(io.stdoutText()).toBe(
      [
        'TAG      REVISION         NAMESPACES',
        'broken   gone (missing)   -',
        'prod     asm-1233-2       cart,shop',
      ].join('\n'),
    );
  });

  test('-o json lists the same rows for scripts', async () => {
    const io = testIO(cluster());
    expect(await runTag(['list', '-o', 'json'], io)).toBe(0);
    expect(JSON.parse(io.stdoutText())).toEqual([
      { name: 'prod', revision: 'asm-1233-2', revisionExists: true, namespaces: [] },
    ]);
  });
});

describe('meshrev tag remove', () => {
  test('deletes an unused tag', async () => {
    const kube = cluster();
    expect(await runTag(['remove', 'prod'], testIO(kube))).toBe(0);
    expect(kube.writes).toEqual([{ verb: 'delete', ref: { ...TAG_REF, name: 'prod' } }]);
  });

  test('refuses while namespaces still select the tag, naming them', async () => {
    const kube = cluster().add(
      namespace('shop', { 'istio.io/rev': 'prod' }),
      pod('shop', 'web', { injectedBy: 'asm-1233-2' }),
    );
    const io = testIO(kube);
    expect(await runTag(['remove', 'prod'], io)).toBe(1);
    expect(io.stderrText()).toContain('tag "prod" is still selected by 1 namespace (shop) and 1 running pod');
    expect(io.stderrText()).toContain('or pass --force');
    expect(kube.writes).toEqual([]);
  });

  test('refuses while pods in unlabelled namespaces select the tag by their own label', async () => {
    const kube = cluster().add(
      namespace('team'),
      pod('team', 'worker', { labels: { 'istio.io/rev': 'prod' } }),
    );
    const io = testIO(kube);
    expect(await runTag(['remove', 'prod'], io)).toBe(1);
    expect(io.stderrText()).toContain('still selected by 1 running pod');
  });

  test('removes a used tag with --force, with a warning', async () => {
    const kube = cluster().add(namespace('shop', { 'istio.io/rev': 'prod' }));
    const io = testIO(kube);
    expect(await runTag(['remove', 'prod', '--force'], io)).toBe(0);
    expect(io.stderrText()).toContain(
      'warning: removing tag "prod", which is still selected by 1 namespace (shop)',
    );
    expect(kube.writes.map((write) => write.verb)).toEqual(['delete']);
  });

  test('fails with exit code 1 for a tag that does not exist', async () => {
    const io = testIO(cluster());
    expect(await runTag(['remove', 'nope'], io)).toBe(1);
    expect(io.stderrText()).toBe('error: tag "nope" not found');
  });
});
