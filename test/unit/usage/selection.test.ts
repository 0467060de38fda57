import type { V1LabelSelector, V1MutatingWebhook } from '@kubernetes/client-node';

import {
  DEFAULT_INJECTION_WEBHOOK_SETTINGS,
  injectionWebhooks,
} from '../../../src/controllers/common/webhooks.js';
import {
  injectedRevision,
  injectionWorld,
  type InjectionWorld,
  resolveNamespace,
  resolvePod,
} from '../../../src/controllers/usage/selection.js';

// Setup A of the reference matrix: Istio's non-revisioned default install (modelled as a revision named
// `default`), revision `canary` and tag `prod` -> canary.
const setupA = injectionWorld(['default', 'canary'], [{ name: 'prod', revision: 'canary' }]);
// Setup B: only revision `canary`, with tag `default` -> canary.
const setupB = injectionWorld(['canary'], [{ name: 'default', revision: 'canary' }]);
// No default at all: only revision `canary`.
const setupC = injectionWorld(['canary'], []);
// Setup B where canary sets injection.enableNamespacesByDefault (Istio's auto.* webhook on the default tag).
const setupAutoTag = injectionWorld(['canary'], [{ name: 'default', revision: 'canary' }], ['canary']);
// A revision named `default` that sets it, beside revision `canary` and tag `prod` -> canary.
const setupAutoRevision = injectionWorld(
  ['default', 'canary'],
  [{ name: 'prod', revision: 'canary' }],
  ['default'],
);
// canary sets it but serves no default selectors (Istio renders auto.* only for the default): no effect.
const setupAutoIdle = injectionWorld(['canary'], [], ['canary']);
// Names contested by a revision and a tag: the older tag `prod` holds its name against revision `prod`, while
// revision `default` is older than tag `default`.
const setupContested = injectionWorld(
  ['default', 'canary', 'prod'],
  [
    { name: 'prod', revision: 'canary' },
    { name: 'default', revision: 'canary' },
  ],
  [],
  ['prod'],
);
// The same names, each held by the tag.
const setupContestedTags = injectionWorld(
  ['default', 'canary', 'prod'],
  [
    { name: 'prod', revision: 'canary' },
    { name: 'default', revision: 'canary' },
  ],
  [],
  ['prod', 'default'],
);

/** Builds a label map from a matrix cell, where `-` means the label is absent. */
function labels(entries: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== '-'));
}

function nsLabels(injection: string, rev: string) {
  return labels({ 'istio-injection': injection, 'istio.io/rev': rev });
}

function podLabels(inject: string, rev: string) {
  return labels({ 'sidecar.istio.io/inject': inject, 'istio.io/rev': rev });
}

describe('resolveNamespace', () => {
  const cases: Array<[string, Record<string, string>, InjectionWorld, ReturnType<typeof resolveNamespace>]> =
    [
      ['an unlabelled namespace selects nothing by itself', {}, setupA, { via: 'none', label: '' }],
      [
        'istio-injection=enabled selects the default revision when no default tag exists',
        { 'istio-injection': 'enabled' },
        setupA,
        {
          via: 'istio-injection',
          label: 'istio-injection=enabled',
          target: 'default',
          targetKind: 'revision',
          revision: 'default',
        },
      ],
      [
        "istio-injection=enabled selects the default tag's revision",
        { 'istio-injection': 'enabled' },
        setupB,
        {
          via: 'istio-injection',
          label: 'istio-injection=enabled',
          target: 'default',
          targetKind: 'tag',
          revision: 'canary',
        },
      ],
      [
        'istio-injection=enabled without any default resolves to no revision',
        { 'istio-injection': 'enabled' },
        setupC,
        { via: 'istio-injection', label: 'istio-injection=enabled', target: 'default' },
      ],
      [
        'istio-injection=enabled wins over istio.io/rev on the same namespace',
        { 'istio-injection': 'enabled', 'istio.io/rev': 'canary' },
        setupB,
        {
          via: 'istio-injection',
          label: 'istio-injection=enabled',
          target: 'default',
          targetKind: 'tag',
          revision: 'canary',
        },
      ],
      [
        'istio-injection=disabled disables injection even with istio.io/rev',
        { 'istio-injection': 'disabled', 'istio.io/rev': 'canary' },
        setupA,
        { via: 'disabled', label: 'istio-injection=disabled' },
      ],
      [
        'any istio-injection value other than enabled disables injection',
        { 'istio-injection': 'foo' },
        setupA,
        { via: 'disabled', label: 'istio-injection=foo' },
      ],
      [
        'istio.io/rev naming a revision selects it',
        { 'istio.io/rev': 'canary' },
        setupA,
        {
          via: 'istio.io/rev',
          label: 'istio.io/rev=canary',
          target: 'canary',
          targetKind: 'revision',
          revision: 'canary',
        },
      ],
      [
        "istio.io/rev naming a tag selects the tag's revision",
        { 'istio.io/rev': 'prod' },
        setupA,
        {
          via: 'istio.io/rev',
          label: 'istio.io/rev=prod',
          target: 'prod',
          targetKind: 'tag',
          revision: 'canary',
        },
      ],
      [
        'istio.io/rev naming neither a revision nor a tag stays unresolved',
        { 'istio.io/rev': 'prod' },
        setupB,
        { via: 'istio.io/rev', label: 'istio.io/rev=prod', target: 'prod' },
      ],
    ];

  test.each(cases)('%s', (_name, namespaceLabels, world, expected) => {
    expect(resolveNamespace(namespaceLabels, world)).toEqual(expected);
  });
});

// The reference matrix rows, as (ns istio-injection, ns istio.io/rev, pod inject, pod istio.io/rev) =>
// webhook and revision.
type Row = [string, string, string, string, string, string | undefined];

describe('resolvePod follows the reference decision matrix', () => {
  const setupARows: Row[] = [
    ['-', '-', '-', '-', 'none', undefined],
    ['-', '-', '-', 'canary', 'rev.object', 'canary'],
    ['-', '-', '-', 'prod', 'rev.object', 'canary'],
    ['-', '-', 'true', '-', 'object', 'default'],
    ['-', 'canary', '-', 'prod', 'rev.namespace', 'canary'],
    ['-', 'prod', 'true', 'canary', 'rev.namespace', 'canary'],
    ['enabled', 'canary', '-', 'canary', 'namespace', 'default'],
    ['disabled', 'canary', 'true', 'canary', 'none', undefined],
    ['disabled', '-', 'true', '-', 'none', undefined],
    ['foo', '-', '-', 'canary', 'none', undefined],
    ['enabled', '-', 'false', '-', 'none', undefined],
    ['-', 'canary', 'false', '-', 'none', undefined],
    ['-', '-', 'false', 'canary', 'none', undefined],
    ['-', '-', 'true', 'canary', 'rev.object', 'canary'],
    ['-', '-', 'true', 'missing', 'none', undefined],
    ['-', 'missing', '-', 'canary', 'none', undefined],
  ];
  const setupBRows: Row[] = [
    ['enabled', '-', '-', '-', 'namespace', 'canary'],
    ['-', '-', 'true', '-', 'object', 'canary'],
    ['-', 'prod', '-', '-', 'none', undefined],
    ['-', 'default', '-', '-', 'rev.namespace', 'canary'],
  ];
  const setupCRows: Row[] = [
    ['enabled', '-', '-', '-', 'none', undefined],
    ['-', '-', 'true', '-', 'none', undefined],
    ['-', '-', '-', 'canary', 'rev.object', 'canary'],
  ];

  const check = (world: InjectionWorld) => (row: Row) => {
    const [nsInjection, nsRev, podInject, podRev, webhook, revision] = row;
    const ns = resolveNamespace(nsLabels(nsInjection, nsRev), world);
    const pod = resolvePod(podLabels(podInject, podRev), ns, world);
    expect({ webhook: pod.webhook, revision: pod.revision }).toEqual({ webhook, revision });
  };

  test.each(setupARows)('setup A: ns %s/%s, pod %s/%s => %s %s', (...row) => check(setupA)(row));
  test.each(setupBRows)('setup B: ns %s/%s, pod %s/%s => %s %s', (...row) => check(setupB)(row));
  test.each(setupCRows)('no default: ns %s/%s, pod %s/%s => %s %s', (...row) => check(setupC)(row));

  test('a pod reached through a tag reports the tag as its target', () => {
    const ns = resolveNamespace({}, setupA);
    expect(resolvePod({ 'istio.io/rev': 'prod' }, ns, setupA)).toEqual({
      webhook: 'rev.object',
      target: 'prod',
      targetKind: 'tag',
      revision: 'canary',
    });
  });
});

// An independent check: evaluate the selectors of the webhook configurations meshrev renders (and Istio's
// non-revisioned default) the way the API server does, over all 144 label combinations.
function matchesSelector(selector: V1LabelSelector | undefined, subject: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) {
    if (subject[key] !== value) return false;
  }
  for (const expression of selector?.matchExpressions ?? []) {
    const present = Object.hasOwn(subject, expression.key);
    const value = subject[expression.key];
    const values = expression.values ?? [];
    switch (expression.operator) {
      case 'In':
        if (!present || !values.includes(value as string)) return false;
        break;
      case 'NotIn':
        if (present && values.includes(value as string)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        throw new Error(`unknown operator ${expression.operator}`);
    }
  }
  return true;
}

interface RenderedWebhooks {
  revision: string;
  webhooks: V1MutatingWebhook[];
}

function renderedWebhooks(world: InjectionWorld): RenderedWebhooks[] {
  const clientConfig = { url: 'https://injector.invalid/inject' };
  const settingsOf = (revision: string) => ({
    ...DEFAULT_INJECTION_WEBHOOK_SETTINGS,
    enableNamespacesByDefault: world.autoInjecting.has(revision),
  });
  const configurations: RenderedWebhooks[] = [];
  // Of a revision and a tag with the same name, only the one holding the name renders its configuration.
  for (const revision of world.revisions) {
    if (world.tags.has(revision) && world.heldByTags.has(revision)) continue;
    configurations.push({
      revision,
      webhooks: injectionWebhooks(revision, clientConfig, settingsOf(revision)),
    });
  }
  for (const [tag, revision] of world.tags) {
    if (world.revisions.has(tag) && !world.heldByTags.has(tag)) continue;
    configurations.push({ revision, webhooks: injectionWebhooks(tag, clientConfig, settingsOf(revision)) });
  }
  return configurations;
}

describe('resolvePod agrees with the rendered webhook selectors', () => {
  const injectionValues = ['-', 'enabled', 'disabled'];
  const revValues = ['-', 'canary', 'prod', 'missing'];
  // kube-apiserver labels every namespace with its name; `-` stands for one seen without it.
  const nameValues = ['-', 'kube-system', 'apps'];
  const injectValues = ['-', 'true', 'false', 'yes'];

  test.each([
    ['setup A', setupA],
    ['setup B', setupB],
    ['no default', setupC],
    ['default tag injecting unlabelled namespaces', setupAutoTag],
    ['default revision injecting unlabelled namespaces', setupAutoRevision],
    ['enableNamespacesByDefault without a default', setupAutoIdle],
    ['names contested by a revision and a tag', setupContested],
    ['names contested and held by the tags', setupContestedTags],
  ])('%s: every label combination matches at most one webhook, the one resolvePod names', (_, world) => {
    const configurations = renderedWebhooks(world);
    let combinations = 0;
    for (const nsInjection of injectionValues) {
      for (const nsRev of revValues) {
        for (const nsName of nameValues) {
          for (const podInject of injectValues) {
            for (const podRev of revValues) {
              combinations += 1;
              const namespace = {
                ...nsLabels(nsInjection, nsRev),
                ...labels({ 'kubernetes.io/metadata.name': nsName }),
              };
              const pod = podLabels(podInject, podRev);
              const matched = configurations.flatMap((configuration) =>
                configuration.webhooks
                  .filter(
                    (webhook) =>
                      matchesSelector(webhook.namespaceSelector, namespace) &&
                      matchesSelector(webhook.objectSelector, pod),
                  )
                  .map((webhook) => ({
                    webhook: webhook.name.replace(/\.?sidecar-injector\.istio\.io$/, ''),
                    revision: configuration.revision,
                  })),
              );
              const resolved = resolvePod(pod, resolveNamespace(namespace, world), world);
              const context = JSON.stringify({ namespace, pod });
              expect({ context, matched }).toEqual({
                context,
                matched:
                  resolved.revision === undefined
                    ? []
                    : [{ webhook: resolved.webhook, revision: resolved.revision }],
              });
            }
          }
        }
      }
    }
    expect(combinations).toBe(
      injectionValues.length * revValues.length * nameValues.length * injectValues.length * revValues.length,
    );
  });

  test('the auto webhook is rendered only where enableNamespacesByDefault is set', () => {
    const names = (world: InjectionWorld) =>
      renderedWebhooks(world).flatMap((configuration) =>
        configuration.webhooks.map((webhook) => webhook.name),
      );
    expect(names(setupB)).not.toContain('auto.sidecar-injector.istio.io');
    expect(names(setupAutoTag)).toContain('auto.sidecar-injector.istio.io');
    expect(names(setupAutoRevision)).toContain('auto.sidecar-injector.istio.io');
    expect(names(setupAutoIdle)).not.toContain('auto.sidecar-injector.istio.io');
  });
});

describe('injectedRevision', () => {
  test('reads the istio.io/rev annotation the injector writes', () => {
    expect(injectedRevision({ 'istio.io/rev': 'asm-1234-1' })).toBe('asm-1234-1');
  });

  test('falls back to the revision field of the sidecar status annotation', () => {
    const status = JSON.stringify({ initContainers: ['istio-init'], containers: null, revision: 'canary' });
    expect(injectedRevision({ 'sidecar.istio.io/status': status })).toBe('canary');
  });

  test('treats a pod without either annotation, or with a malformed status, as not injected', () => {
    expect(injectedRevision(undefined)).toBeUndefined();
    expect(injectedRevision({ 'sidecar.istio.io/inject': 'true' })).toBeUndefined();
    expect(injectedRevision({ 'sidecar.istio.io/status': '{not json' })).toBeUndefined();
    expect(injectedRevision({ 'sidecar.istio.io/status': '{"revision":""}' })).toBeUndefined();
  });
});
