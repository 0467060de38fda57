import { z } from 'zod';

import { InjectionSpecSchema, ProxySpecSchema, settingsFromRevision } from '../../../../src/crds/proxy.js';
import { applyJsonPatch, injectPod, type Pod } from '../../../../src/injector/engine/index.js';

function walk(
  schema: unknown,
  visit: (node: Record<string, unknown>, path: string) => void,
  path = '',
): void {
  if (typeof schema !== 'object' || schema === null) return;
  const node = schema as Record<string, unknown>;
  visit(node, path);
  const props = node['properties'];
  if (typeof props === 'object' && props !== null) {
    for (const [k, v] of Object.entries(props)) walk(v, visit, `${path}.${k}`);
  }
  if (node['items']) walk(node['items'], visit, `${path}[]`);
}

describe('spec.proxy and spec.injection schemas', () => {
  test.each([
    ['proxy', ProxySpecSchema],
    ['injection', InjectionSpecSchema],
  ])('the %s schema describes every field and uses no combinators or references', (_name, schema) => {
    const json = z.toJSONSchema(schema, { io: 'input' });
    const problems: string[] = [];
    walk(json, (node, path) => {
      if (path !== '' && !path.endsWith('[]') && typeof node['description'] !== 'string')
        problems.push(`${path} has no description`);
      for (const k of ['anyOf', 'oneOf', 'allOf', 'not', '$ref'])
        if (k in node) problems.push(`${path} uses ${k}`);
    });
    expect(problems).toEqual([]);
  });

  test('defaults apply where the API shows them', () => {
    expect(InjectionSpecSchema.parse({})).toEqual({
      enabled: true,
      failurePolicy: 'Fail',
      reinvocationPolicy: 'Never',
      policy: 'enabled',
      rewriteAppHTTPProbe: true,
      enableNamespacesByDefault: false,
    });
    expect(ProxySpecSchema.parse({})).toEqual({ nativeSidecars: 'auto' });
  });

  test.each([
    [InjectionSpecSchema, { timeoutSeconds: 31 }],
    [InjectionSpecSchema, { failurePolicy: 'Maybe' }],
    [ProxySpecSchema, { statusPort: 70000 }],
    [ProxySpecSchema, { nativeSidecars: 'yes' }],
  ])('invalid input %# is refused', (schema, input) => {
    expect(schema.safeParse(input).success).toBe(false);
  });
});

describe('settingsFromRevision', () => {
  const pod: Pod = { metadata: { name: 'p' }, spec: { containers: [{ name: 'app', image: 'app' }] } };

  test('a revision injects its own image, CA address and discovery address', () => {
    const settings = settingsFromRevision('asm-1233-2', {
      version: '1.23.3',
      hub: 'registry.example/istio',
      namespace: 'mesh',
      proxy: { resources: { requests: { cpu: '50m' } }, proxyMetadata: { ISTIO_META_DNS_CAPTURE: 'true' } },
      injection: { injectedAnnotations: { team: 'mesh' } },
    });
    const outcome = injectPod({ pod, namespace: 'default', settings, nodeKubeletMinorVersions: [33] });
    if (outcome.kind !== 'injected') throw new Error('not injected');
    const out = applyJsonPatch(pod, outcome.patch) as Pod;
    const proxy = out.spec?.initContainers?.find((c) => c.name === 'istio-proxy');
    const env = Object.fromEntries((proxy?.env ?? []).map((e) => [e.name, e.value]));
    expect(proxy?.image).toBe('registry.example/istio/proxyv2:1.23.3');
    expect(env['CA_ADDR']).toBe('istiod-asm-1233-2.mesh.svc:15012');
    expect(env['PROXY_CONFIG']).toBe(
      '{"discoveryAddress":"istiod-asm-1233-2.mesh.svc:15012","proxyMetadata":{"ISTIO_META_DNS_CAPTURE":"true"}}\n',
    );
    expect(env['ISTIO_META_DNS_CAPTURE']).toBe('true');
    expect(proxy?.resources).toEqual({ requests: { cpu: '50m' } });
    expect(out.metadata?.annotations?.['istio.io/rev']).toBe('asm-1233-2');
    expect(out.metadata?.annotations?.['team']).toBe('mesh');
  });

  test('injection policy and selectors come from spec.injection', () => {
    const settings = settingsFromRevision('canary', {
      version: '1.24.0',
      injection: { policy: 'disabled', alwaysInjectSelector: [{ matchLabels: { mesh: 'yes' } }] },
    });
    expect(injectPod({ pod, namespace: 'default', settings }).kind).toBe('skipped');
    const labelled: Pod = { ...pod, metadata: { name: 'p', labels: { mesh: 'yes' } } };
    expect(injectPod({ pod: labelled, namespace: 'default', settings }).kind).toBe('injected');
  });
});
