import {
  applyJsonPatch,
  defaultInjectorSettings,
  detectNativeSidecars,
  injectPod,
  kubeInjectDocuments,
  type Container,
  type InjectorSettings,
  type Pod,
} from '../../../../src/injector/engine/index.js';
import { proxyIds } from '../../../../src/injector/engine/inject.js';

function helloPod(extra: { annotations?: Record<string, string>; containers?: Container[] } = {}): Pod {
  return {
    metadata: {
      generateName: 'hello-5d4f8-',
      namespace: 'shop',
      labels: { app: 'hello', 'pod-template-hash': '5d4f8' },
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'hello-5d4f8', controller: true }],
    },
    spec: {
      containers: extra.containers ?? [
        {
          name: 'hello',
          image: 'example/hello:1',
          ports: [{ name: 'http', containerPort: 8080 }],
          readinessProbe: { httpGet: { path: '/ready', port: 'http' } },
        },
      ],
    },
  };
}

function injected(pod: Pod, settings: InjectorSettings = defaultInjectorSettings(), nodes = [33]): Pod {
  const outcome = injectPod({ pod, namespace: 'shop', settings, nodeKubeletMinorVersions: nodes });
  if (outcome.kind !== 'injected') throw new Error(`expected injection, got ${JSON.stringify(outcome)}`);
  return applyJsonPatch(pod, outcome.patch) as Pod;
}

function envOf(container: Container | undefined): Record<string, string | undefined> {
  return Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
}

describe('injectPod', () => {
  test('a native-sidecar pod gets istio-init then istio-proxy as init containers and keeps its app container first', () => {
    const pod = injected(helloPod());
    expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['istio-init', 'istio-proxy']);
    expect(pod.spec?.initContainers?.[1]?.['restartPolicy']).toBe('Always');
    expect(pod.spec?.containers?.map((c) => c.name)).toEqual(['hello']);
    expect(pod.metadata?.labels?.['service.istio.io/canonical-name']).toBe('hello');
    expect(envOf(pod.spec?.initContainers?.[1])['ISTIO_META_OWNER']).toBe(
      'kubernetes://apis/apps/v1/namespaces/shop/deployments/hello',
    );
  });

  test('the classic layout with holdApplicationUntilProxyStarts puts istio-proxy first and waits for it', () => {
    const settings = defaultInjectorSettings({
      nativeSidecars: 'false',
      holdApplicationUntilProxyStarts: true,
    });
    const pod = injected(helloPod(), settings);
    expect(pod.spec?.containers?.map((c) => c.name)).toEqual(['istio-proxy', 'hello']);
    expect(pod.spec?.containers?.[0]?.lifecycle).toEqual({
      postStart: { exec: { command: ['pilot-agent', 'wait'] } },
    });
    expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['istio-init']);
  });

  test('native sidecars follow the nodes in auto mode and the pod annotation overrides them', () => {
    expect(
      injected(helloPod(), defaultInjectorSettings(), [32, 34]).spec?.containers?.map((c) => c.name),
    ).toEqual(['hello', 'istio-proxy']);
    const optIn = helloPod({ annotations: { 'sidecar.istio.io/nativeSidecar': 'true' } });
    expect(
      injected(optIn, defaultInjectorSettings(), [32]).spec?.initContainers?.map((c) => c.name),
    ).toContain('istio-proxy');
  });

  test.each([
    ['false', 40, [40], false],
    ['true', 20, [20], true],
    ['auto', 33, [20], true],
    ['auto', 32, [40], false],
    ['auto', undefined, [33, 34], true],
    ['auto', undefined, [33, 28], false],
    ['auto', undefined, undefined, false],
  ] as const)(
    'mode %s with pod node %s and nodes %j detects native sidecars: %s',
    (mode, podNode, nodes, want) => {
      expect(detectNativeSidecars(mode, podNode, nodes)).toBe(want);
    },
  );

  test('probes move to the status port and their targets go to ISTIO_KUBE_APP_PROBERS with named ports resolved', () => {
    const pod = injected(helloPod());
    expect(pod.spec?.containers?.[0]?.readinessProbe).toEqual({
      httpGet: { path: '/app-health/hello/readyz', port: 15020 },
    });
    expect(envOf(pod.spec?.initContainers?.[1])['ISTIO_KUBE_APP_PROBERS']).toBe(
      '{"/app-health/hello/readyz":{"httpGet":{"path":"/ready","port":8080}}}',
    );
  });

  test('the patch addresses annotation keys with escaped pointers and leaves untouched containers alone', () => {
    const pod = helloPod({ containers: [{ name: 'plain', image: 'x' }] });
    const outcome = injectPod({
      pod,
      namespace: 'shop',
      settings: defaultInjectorSettings(),
      nodeKubeletMinorVersions: [33],
    });
    if (outcome.kind !== 'injected') throw new Error('not injected');
    const paths = outcome.patch.map((op) => op.path);
    expect(paths).toContain('/metadata/annotations');
    expect(paths).toContain('/metadata/labels/security.istio.io~1tlsMode');
    expect(paths.some((p) => p.startsWith('/spec/containers'))).toBe(false);
    expect(outcome.patch.every((op) => ['add', 'replace', 'remove'].includes(op.op))).toBe(true);
  });

  test('re-injecting an injected pod changes nothing', () => {
    const once = injected(helloPod({ annotations: { 'prometheus.io/port': '9090' } }));
    const outcome = injectPod({
      pod: once,
      namespace: 'shop',
      settings: defaultInjectorSettings(),
      nodeKubeletMinorVersions: [33],
    });
    if (outcome.kind !== 'injected') throw new Error('not injected');
    expect(applyJsonPatch(once, outcome.patch)).toEqual(once);
  });

  test('user overrides of istio-proxy win, are recorded, and survive re-injection', () => {
    const pod = helloPod({
      containers: [
        { name: 'hello', image: 'example/hello:1' },
        { name: 'istio-proxy', image: 'auto', resources: { limits: { cpu: '3000m' } } },
      ],
    });
    const once = injected(pod);
    const proxy = once.spec?.initContainers?.find((c) => c.name === 'istio-proxy');
    expect(proxy?.resources?.limits?.['cpu']).toBe('3');
    expect(proxy?.image).toBe('registry.istio.io/testing/proxyv2:latest');
    expect(once.metadata?.annotations?.['proxy.istio.io/overrides']).toBe(
      '{"initContainers":[{"name":"istio-proxy","resources":{"limits":{"cpu":"3"}}}]}',
    );
    expect(injected(once)).toEqual(once);
  });

  test('cluster and network from the request path become proxy env (sorted, last) and the network label', () => {
    const outcome = injectPod({
      pod: helloPod(),
      namespace: 'shop',
      settings: defaultInjectorSettings(),
      pathParams: { ISTIO_META_NETWORK: 'net2', ISTIO_META_CLUSTER_ID: 'remote' },
      nodeKubeletMinorVersions: [33],
    });
    if (outcome.kind !== 'injected') throw new Error('not injected');
    const proxy = outcome.pod.spec?.initContainers?.find((c) => c.name === 'istio-proxy');
    expect(proxy?.env?.slice(-3).map((e) => `${e.name}=${e.value ?? ''}`)).toEqual([
      'ISTIO_META_CLUSTER_ID=remote',
      'ISTIO_META_NETWORK=net2',
      expect.stringMatching(/^ISTIO_KUBE_APP_PROBERS=/),
    ]);
    expect(outcome.pod.metadata?.labels?.['topology.istio.io/network']).toBe('net2');
  });

  test('prometheus annotations are handed to the agent and replaced by the merged endpoint', () => {
    const pod = injected(
      helloPod({ annotations: { 'prometheus.io/port': '9090', 'prometheus.io/path': '/m' } }),
    );
    expect(pod.metadata?.annotations).toMatchObject({
      'prometheus.io/port': '15020',
      'prometheus.io/path': '/stats/prometheus',
      'prometheus.io/scrape': 'true',
    });
    expect(envOf(pod.spec?.initContainers?.[1])['ISTIO_PROMETHEUS_ANNOTATIONS']).toBe(
      '{"scrape":"","path":"/m","port":"9090"}',
    );
  });

  test('a scrape port reserved by Istio rejects the pod', () => {
    const outcome = injectPod({
      pod: helloPod({ annotations: { 'prometheus.io/port': '15090' } }),
      namespace: 'shop',
      settings: defaultInjectorSettings(),
    });
    expect(outcome).toEqual({
      kind: 'rejected',
      message: expect.stringContaining('port 15090 is reserved for Istio') as unknown as string,
    });
  });

  test('an unknown template rejects the pod naming it', () => {
    const outcome = injectPod({
      pod: helloPod({ annotations: { 'inject.istio.io/templates': 'sidecar,nope' } }),
      namespace: 'shop',
      settings: defaultInjectorSettings(),
    });
    expect(
      outcome.kind === 'rejected' && outcome.message.includes('requested template "nope" not found'),
    ).toBe(true);
  });

  test.each([
    [
      'the inject annotation is false',
      { annotations: { 'sidecar.istio.io/inject': 'false' } },
      'sidecar.istio.io/inject is "false"',
    ],
  ])('a pod is skipped when %s', (_why, extra, reason) => {
    expect(
      injectPod({ pod: helloPod(extra), namespace: 'shop', settings: defaultInjectorSettings() }),
    ).toEqual({
      kind: 'skipped',
      reason,
    });
  });

  // Its speed is measured by `make bench` (the 2,000-env pod); here, that the patch leaves the big container alone.
  test('a pod with 2000 env vars is injected without its container being rewritten', () => {
    const env = Array.from({ length: 2000 }, (_, i) => ({ name: `VAR_${i}`, value: `value-${i}` }));
    const pod = helloPod({ containers: [{ name: 'big', image: 'big', env }] });
    const outcome = injectPod({
      pod,
      namespace: 'shop',
      settings: defaultInjectorSettings(),
      nodeKubeletMinorVersions: [33],
    });
    if (outcome.kind !== 'injected') throw new Error(`expected injection, got ${JSON.stringify(outcome)}`);
    expect(outcome.patch.filter((op) => op.path.startsWith('/spec/containers'))).toEqual([]);
    expect(JSON.stringify(outcome.patch)).not.toContain('VAR_1999');
    expect((applyJsonPatch(pod, outcome.patch) as Pod).spec?.containers?.[0]?.env).toEqual(env);
  });

  test('PROXY_CONFIG leaves out what protojson and istiod`s cleaning leave out: defaults and enum zero values', () => {
    const proxyConfig = (config: string) =>
      envOf(
        injected(helloPod({ annotations: { 'proxy.istio.io/config': config } })).spec?.initContainers?.find(
          (c) => c.name === 'istio-proxy',
        ),
      )['PROXY_CONFIG'];
    expect(proxyConfig('{"interceptionMode": "REDIRECT", "statusPort": 15020}')).toBe('{}\n');
    expect(proxyConfig('{"interceptionMode": "TPROXY", "controlPlaneAuthPolicy": "NONE"}')).toBe(
      '{"interceptionMode":"TPROXY"}\n',
    );
  });

  test('a pod whose only container is istio-proxy gets ISTIO_META_APP_CONTAINERS without a value, as Go omits ""', () => {
    const out = injected(helloPod({ containers: [{ name: 'istio-proxy', image: 'auto' }] }));
    const proxy = out.spec?.initContainers?.find((c) => c.name === 'istio-proxy');
    expect(proxy?.env?.find((e) => e.name === 'ISTIO_META_APP_CONTAINERS')).toEqual({
      name: 'ISTIO_META_APP_CONTAINERS',
    });
  });

  test('proxy resources from the values go through omitNil: nils dropped, a map emptied by that dropped too', () => {
    const resourcesOf = (resources: Record<string, unknown>) =>
      injected(helloPod(), {
        ...defaultInjectorSettings(),
        resources,
      } as InjectorSettings).spec?.initContainers?.find((c) => c.name === 'istio-proxy')?.resources;
    expect(resourcesOf({ requests: { cpu: '100m', memory: null }, limits: { cpu: null } })).toEqual({
      requests: { cpu: '100m' },
    });
    expect(resourcesOf({})).toBeUndefined();
  });
});

describe("a revision's Istio release decides the few lines its templates changed", () => {
  const proxyOf = (pod: Pod) =>
    [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
      (c) => c.name === 'istio-proxy',
    );
  const release = (tag: string, extra: Partial<InjectorSettings> = {}): InjectorSettings => ({
    ...defaultInjectorSettings(),
    tag,
    ...extra,
  });
  const resourceEnvOf = (settings: InjectorSettings) =>
    (proxyOf(injected(helloPod(), settings))?.env ?? [])
      .filter((e) => e.valueFrom?.resourceFieldRef)
      .map((e) => [e.name, (e.valueFrom?.resourceFieldRef as { divisor?: string } | undefined)?.divisor]);

  test('GOMAXPROCS up to 1.30, and the resource divisor 1.28 leaves to Go`s zero Quantity', () => {
    expect(resourceEnvOf(release('latest'))).toEqual([
      ['ISTIO_CPU_LIMIT', '1'],
      ['GOMEMLIMIT', '1'],
    ]);
    expect(resourceEnvOf(release('1.30.3'))).toEqual([
      ['ISTIO_CPU_LIMIT', '1'],
      ['GOMEMLIMIT', '1'],
      ['GOMAXPROCS', '1'],
    ]);
    expect(resourceEnvOf(release('1.28.10'))).toEqual([
      ['ISTIO_CPU_LIMIT', '0'],
      ['GOMEMLIMIT', '0'],
      ['GOMAXPROCS', '0'],
    ]);
  });

  test('GODEBUG for FIPS 140-3 only from 1.31, OpenTelemetry attributes only from 1.30', () => {
    const env = (tag: string) =>
      envOf(
        proxyOf(
          injected(
            helloPod(),
            release(tag, {
              compliancePolicy: 'fips-140-3',
              mesh: {
                ...defaultInjectorSettings().mesh,
                extensionProviders: [
                  {
                    name: 'otel',
                    opentelemetry: { serviceAttributeEnrichment: 'OTEL_SEMANTIC_CONVENTIONS' },
                  },
                ],
              },
            }),
          ),
        ),
      );
    expect(env('latest')).toMatchObject({ GODEBUG: 'fips140=only' });
    expect(env('latest')['OTEL_RESOURCE_ATTRIBUTES']).toBeDefined();
    expect(env('1.30.3')['GODEBUG']).toBeUndefined();
    expect(env('1.30.3')['OTEL_RESOURCE_ATTRIBUTES']).toBeDefined();
    expect(env('1.29.6')['OTEL_RESOURCE_ATTRIBUTES']).toBeUndefined();
  });

  test('istio-init runs the proxy image up to 1.30, unless the values name a full reference', () => {
    const initImage = (tag: string) =>
      injected(helloPod(), release(tag, { proxyInitImage: 'proxyinit' })).spec?.initContainers?.find(
        (c) => c.name === 'istio-init',
      )?.image;
    expect(initImage('latest')).toBe('registry.istio.io/testing/proxyinit:latest');
    expect(initImage('1.30.3')).toBe('registry.istio.io/testing/proxyv2:1.30.3');
  });

  test('a canonical name cut at 63 characters: one trailing "-" trimmed up to 1.30, "-_." at both ends after', () => {
    const name = `_${'a'.repeat(61)}-tail`;
    const canonical = (tag: string) =>
      injected({ ...helloPod(), metadata: { ...helloPod().metadata, labels: { app: name } } }, release(tag))
        .metadata?.labels?.['service.istio.io/canonical-name'];
    expect(canonical('latest')).toBe('a'.repeat(61));
    expect(canonical('1.30.3')).toBe(`_${'a'.repeat(61)}`);
  });

  test('the CRL ConfigMap`s name is a value from 1.29', () => {
    const crl = (tag: string) =>
      injected(helloPod(), release(tag, { crlConfigMapName: 'my-crl' })).spec?.volumes?.find(
        (v) => v.name === 'istio-ca-crl',
      );
    expect(crl('1.29.6')).toEqual({ name: 'istio-ca-crl', configMap: { name: 'my-crl', optional: true } });
    expect(crl('1.28.10')).toEqual({
      name: 'istio-ca-crl',
      configMap: { name: 'istio-ca-crl', optional: true },
    });
  });
});

describe('what istiod`s Go structs and merge leave', () => {
  test('a gRPC probe without a service is handed to the agent with "service": null, as Go writes the pointer', () => {
    const pod = helloPod({
      containers: [{ name: 'app', image: 'app', readinessProbe: { grpc: { port: 7070 } } } as Container],
    });
    const proxy = injected(pod).spec?.initContainers?.find((c) => c.name === 'istio-proxy');
    expect(envOf(proxy)['ISTIO_KUBE_APP_PROBERS']).toBe(
      '{"/app-health/app/readyz":{"grpc":{"port":7070,"service":null}}}',
    );
  });

  test('re-injecting an istio-proxy the pod already has: probe fields the template writes as 0 replace the pod`s', () => {
    const classic = { ...defaultInjectorSettings(), nativeSidecars: 'false' as const };
    const first = injected(helloPod(), classic);
    const edited: Pod = {
      ...first,
      spec: {
        ...first.spec,
        containers: (first.spec?.containers ?? []).map((c) =>
          c.name === 'istio-proxy'
            ? { ...c, readinessProbe: { ...c.readinessProbe, initialDelaySeconds: 1, successThreshold: 2 } }
            : c,
        ),
      },
    };
    const probe = injected(edited, classic).spec?.containers?.find(
      (c) => c.name === 'istio-proxy',
    )?.readinessProbe;
    // The template writes initialDelaySeconds (0) but not successThreshold, which the merge keeps.
    expect(probe?.['initialDelaySeconds']).toBeUndefined();
    expect(probe?.['successThreshold']).toBe(2);
  });
});

describe('annotations the templates range over with fromJSON', () => {
  const proxyOf = (pod: Pod) =>
    [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
      (c) => c.name === 'istio-proxy',
    );
  const outcome = (annotations: Record<string, string>, settings = defaultInjectorSettings()) =>
    injectPod({
      pod: helloPod({ annotations }),
      namespace: 'shop',
      settings,
      nodeKubeletMinorVersions: [33],
    });
  const userVolumes = (value: string) =>
    injected(helloPod({ annotations: { 'sidecar.istio.io/userVolume': value } })).spec?.volumes?.filter(
      (v) => !v.name.startsWith('istio') && !/^(workload|credential)-/.test(v.name),
    );

  test('user volumes come from an object by name, from a list by index or their own name, from null not at all', () => {
    expect(userVolumes('{"b":{"emptyDir":{}},"a":{"name":"renamed","emptyDir":{}}}')).toEqual([
      { name: 'renamed', emptyDir: {} },
      { name: 'b', emptyDir: {} },
    ]);
    expect(userVolumes('[{"emptyDir":{}},{"name":"named","emptyDir":{}}]')).toEqual([
      { name: '0', emptyDir: {} },
      { name: 'named', emptyDir: {} },
    ]);
    expect(userVolumes('null')).toEqual([]);
  });

  test.each([
    ['sidecar.istio.io/userVolume', 'not json', 'annotation sidecar.istio.io/userVolume is not JSON'],
    [
      'sidecar.istio.io/userVolume',
      '5',
      'annotation sidecar.istio.io/userVolume is not a JSON object or list',
    ],
    ['sidecar.istio.io/userVolumeMount', '{"e":{}}', 'entry "e" is not a JSON object with fields'],
  ])('%s: %s fails the injection as the template does', (name, value, message) => {
    const result = outcome({ [name]: value });
    expect(result.kind).toBe('rejected');
    if (result.kind === 'rejected') expect(result.message).toContain(message);
  });

  test('with the datadog tracer, apm.datadoghq.com/env becomes env printed as Go prints it, and bad JSON fails', () => {
    const datadog = { ...defaultInjectorSettings(), tracer: 'datadog' };
    const env = envOf(
      proxyOf(
        injected(
          helloPod({ annotations: { 'apm.datadoghq.com/env': '{"DD_ENV":"prod","DD_TRACE":true}' } }),
          datadog,
        ),
      ),
    );
    expect(env).toMatchObject({ DD_ENV: 'prod', DD_TRACE: 'true' });
    expect(outcome({ 'apm.datadoghq.com/env': 'nope' }, datadog).kind).toBe('rejected');
    // Without the datadog tracer the template never reads it.
    expect(outcome({ 'apm.datadoghq.com/env': 'nope' }).kind).toBe('injected');
  });

  test('grpc-agent with the status port off writes the user`s mounts into env, as istiod`s template does', () => {
    const annotations = {
      'inject.istio.io/templates': 'grpc-agent',
      'status.sidecar.istio.io/port': '0',
      'sidecar.istio.io/userVolumeMount': '{"extra":{"mountPath":"/x"}}',
    };
    const proxy = proxyOf(injected(helloPod({ annotations })));
    expect(proxy?.volumeMounts).toBeUndefined();
    expect(proxy?.env?.at(-1)).toEqual({ name: 'extra' });
    expect(outcome(annotations, { ...defaultInjectorSettings(), imagePullPolicy: 'Always' }).kind).toBe(
      'rejected',
    );
  });
});

describe('kubeInjectDocuments', () => {
  test('workloads are injected, other objects and host-network pods pass through with a warning', () => {
    const warnings: string[] = [];
    const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc' } };
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'shop' },
      spec: {
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { containers: [{ name: 'web', image: 'w' }] },
        },
      },
    };
    const hostNet = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'h' },
      spec: { hostNetwork: true, containers: [{ name: 'h', image: 'h' }] },
    };
    const [svcOut, depOut, hostOut] = kubeInjectDocuments(
      [service, deployment, hostNet],
      defaultInjectorSettings(),
      {
        nodeKubeletMinorVersions: [33],
        warn: (m) => warnings.push(m),
      },
    ) as Array<Record<string, unknown>>;
    expect(svcOut).toBe(service);
    expect(hostOut).toBe(hostNet);
    expect(warnings).toEqual(['===> Skipping injection because Pod "h" has host networking enabled']);
    const template = (depOut?.['spec'] as { template: Pod }).template;
    expect(template.spec?.initContainers?.map((c) => c.name)).toEqual(['istio-init', 'istio-proxy']);
    expect(deployment.spec.template.spec).toEqual({ containers: [{ name: 'web', image: 'w' }] });
  });

  test('invalid annotations fail kube-inject with the validation message', () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', annotations: { 'traffic.sidecar.istio.io/includeInboundPorts': 'x' } },
      spec: { containers: [{ name: 'p', image: 'p' }] },
    };
    expect(() => kubeInjectDocuments([pod], defaultInjectorSettings())).toThrow(/includeInboundPorts/);
  });
});

describe('OpenShift proxy identity', () => {
  test.each([
    [{ 'openshift.io/sa.scc.uid-range': '1000620000/10000' }, { uid: 1000629999, gid: 1000629999 }],
    [
      {
        'openshift.io/sa.scc.uid-range': '1000620000-1000620099',
        'openshift.io/sa.scc.supplemental-groups': '5000/10,6000/10',
      },
      { uid: 1000620099, gid: 5009 },
    ],
    [{}, { uid: 1337, gid: 1337 }],
  ])('namespace annotations %j give the proxy %j', (annotations, ids) => {
    expect(proxyIds('openshift', annotations)).toEqual(ids);
  });

  test('outside OpenShift the namespace ranges are ignored', () => {
    expect(proxyIds('kubernetes', { 'openshift.io/sa.scc.uid-range': '1/10' })).toEqual({
      uid: 1337,
      gid: 1337,
    });
  });
});
