// Custom injection templates (spec.injection.templates, Istio's sidecarInjectorWebhook.templates): Go templates
// chosen per pod, merged like the built-in ones, seeing istiod's template data and functions; a template that does
// not parse or render refuses only the pods that ask for it.
import {
  ISTIO_FUNCTIONS,
  customTemplateProblems,
  templateData,
} from '../../../../src/injector/engine/custom-templates.js';
import {
  applyJsonPatch,
  defaultInjectorSettings,
  injectPod,
  type Container,
  type InjectorSettings,
  type Pod,
} from '../../../../src/injector/engine/index.js';

function pod(
  annotations: Record<string, string> = {},
  labels: Record<string, string> = { app: 'hello' },
): Pod {
  return {
    metadata: {
      generateName: 'hello-5d4f8-',
      namespace: 'shop',
      labels: { ...labels, 'pod-template-hash': '5d4f8' },
      annotations,
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'hello-5d4f8', controller: true }],
    },
    spec: { containers: [{ name: 'hello', image: 'example/hello:1', ports: [{ containerPort: 8080 }] }] },
  };
}

function settingsWith(customTemplates: Record<string, string>): InjectorSettings {
  return defaultInjectorSettings({ hub: 'docker.io/istio', tag: '1.29.6', customTemplates });
}

function inject(settings: InjectorSettings, target: Pod) {
  return injectPod({ pod: target, namespace: 'shop', settings, nodeKubeletMinorVersions: [33] });
}

function injected(settings: InjectorSettings, target: Pod): Pod {
  const outcome = inject(settings, target);
  if (outcome.kind !== 'injected') throw new Error(`expected injection, got ${JSON.stringify(outcome)}`);
  return applyJsonPatch(target, outcome.patch) as Pod;
}

const proxyOf = (p: Pod): Container | undefined =>
  [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].find((c) => c.name === 'istio-proxy');

const SPIRE = `spec:
  containers:
  - name: istio-proxy
    volumeMounts:
    - name: workload-socket
      mountPath: /run/secrets/workload-spiffe-uds
      readOnly: true
  volumes:
  - name: workload-socket
    csi:
      driver: "csi.spiffe.io"
      readOnly: true
`;

describe('custom injection templates', () => {
  test('a template chained after sidecar is merged onto the injected pod (the SPIRE pattern)', () => {
    // The classic layout: istio-proxy is a container, which the template's entry merges into. (With native
    // sidecars istiod leaves the template's `containers` entry beside the init container, and so does meshrev:
    // the conformance suite's sidecar-spire case holds that.)
    const settings = { ...settingsWith({ spire: SPIRE }), nativeSidecars: 'false' as const };
    const out = injected(settings, pod({ 'inject.istio.io/templates': 'sidecar,spire' }));
    const proxy = proxyOf(out);
    expect(proxy?.volumeMounts).toContainEqual({
      name: 'workload-socket',
      mountPath: '/run/secrets/workload-spiffe-uds',
      readOnly: true,
    });
    expect(out.spec?.volumes?.find((v) => v.name === 'workload-socket')).toMatchObject({
      csi: { driver: 'csi.spiffe.io', readOnly: true },
    });
    // Pods that do not name it get the built-in sidecar only.
    const plain = injected(settings, pod());
    expect(plain.spec?.volumes?.find((v) => v.name === 'workload-socket')).not.toHaveProperty('csi');
  });

  test('a template sees the pod, the workload, the proxy config, the values and istiod`s functions', () => {
    const settings = settingsWith({
      probe: `metadata:
  annotations:
    seen/workload: {{ .DeploymentMeta.Name }}-{{ .TypeMeta.Kind }}
    seen/level: {{ annotation .ObjectMeta "example.com/level" "default-level" }}
    seen/hub: {{ .Values.global.hub }}
    seen/revision: {{ .Revision }}
    seen/ports: "{{ applicationPorts .Spec.Containers }}"
    seen/has-level: "{{ isset .ObjectMeta.Annotations "example.com/level" }}"
spec:
  containers:
  {{- range .Spec.Containers }}
  - name: {{ .Name }}
    env:
    - name: FROM_TEMPLATE
      value: {{ .Image | quote }}
  {{- end }}
`,
    });
    const out = injected(
      settings,
      pod({ 'inject.istio.io/templates': 'probe', 'example.com/level': 'gold' }),
    );
    expect(out.metadata?.annotations).toMatchObject({
      'seen/workload': 'hello-Deployment',
      'seen/level': 'gold',
      'seen/hub': 'docker.io/istio',
      'seen/revision': 'default',
      'seen/ports': '8080',
      'seen/has-level': 'true',
    });
    expect(out.spec?.containers?.[0]?.env).toEqual([{ name: 'FROM_TEMPLATE', value: 'example/hello:1' }]);
    // Only the chosen template ran: no istio-proxy.
    expect(proxyOf(out)).toBeUndefined();
  });

  test('a custom template named like a built-in one replaces it', () => {
    const settings = settingsWith({ sidecar: 'metadata:\n  labels:\n    replaced: "yes"\n' });
    const out = injected(settings, pod());
    expect(out.metadata?.labels?.['replaced']).toBe('yes');
    expect(proxyOf(out)).toBeUndefined();
  });

  test('a template that does not parse refuses the pods that ask for it, and only those', () => {
    const settings = settingsWith({ broken: 'spec: {{ .Spec.Containers ', spire: SPIRE });
    const outcome = inject(settings, pod({ 'inject.istio.io/templates': 'sidecar,broken' }));
    expect(outcome.kind).toBe('rejected');
    expect(outcome.kind === 'rejected' ? outcome.message : '').toMatch(
      /^failed to parse injection template "broken": template: inject:1:/,
    );
    expect(inject(settings, pod({ 'inject.istio.io/templates': 'sidecar,spire' })).kind).toBe('injected');
    expect(inject(settings, pod()).kind).toBe('injected');
    expect(Object.keys(customTemplateProblems(settings.customTemplates))).toEqual(['broken']);
  });

  test.each([
    [
      'a template that fails while running',
      '{{ index .Spec.Containers 5 }}',
      /^failed to run injection template "bad": /,
    ],
    [
      'a template that renders YAML that is not YAML',
      'spec: [unclosed',
      /^injection template "bad" rendered invalid YAML: /,
    ],
    [
      'a template that renders a list',
      '- a\n- b\n',
      /^injection template "bad" must render a Pod fragment \(a YAML map\)$/,
    ],
  ])('%s refuses the pod with the reason', (_name, text, message) => {
    const outcome = inject(settingsWith({ bad: text }), pod({ 'inject.istio.io/templates': 'bad' }));
    expect(outcome.kind).toBe('rejected');
    expect(outcome.kind === 'rejected' ? outcome.message : '').toMatch(message);
  });

  test('a template that renders nothing changes nothing but the injection status', () => {
    const out = injected(
      settingsWith({ empty: '{{/* nothing */}}' }),
      pod({ 'inject.istio.io/templates': 'empty' }),
    );
    expect(out.spec?.containers).toEqual(pod().spec?.containers);
    expect(out.metadata?.annotations?.['sidecar.istio.io/status']).toBeDefined();
  });

  test('template data carries istiod`s SidecarTemplateData fields', () => {
    const settings = settingsWith({});
    const data = templateData({
      settings,
      typeMeta: { apiVersion: 'apps/v1', kind: 'Deployment' },
      deployMeta: { name: 'hello', namespace: 'shop' },
      metadata: { name: 'p' },
      spec: {},
      proxyConfig: { concurrency: 2 },
      nativeSidecars: true,
      proxyImage: 'img',
      proxyInitImage: 'init',
      proxyUid: 1337,
      proxyGid: 1337,
    });
    expect(Object.keys(data).sort()).toEqual(
      [
        'CompliancePolicy',
        'DeploymentMeta',
        'InboundTrafficPolicyMode',
        'MeshConfig',
        'NativeSidecars',
        'ObjectMeta',
        'ProxyConfig',
        'ProxyGID',
        'ProxyImage',
        'ProxyInitImage',
        'ProxyUID',
        'Revision',
        'Spec',
        'TypeMeta',
        'Values',
      ].sort(),
    );
    // istiod's ProxyConfig carries mesh.DefaultProxyConfig under what the mesh and the pod set, and Go prints an
    // unset enum by its zero value's name.
    expect(data['ProxyConfig']).toEqual({
      concurrency: 2,
      configPath: './etc/istio/proxy',
      binaryPath: '/usr/local/bin/envoy',
      serviceCluster: 'istio-proxy',
      drainDuration: '45s',
      terminationDrainDuration: '5s',
      discoveryAddress: 'istiod.istio-system.svc:15012',
      proxyAdminPort: 15000,
      statNameLength: 189,
      statusPort: 15020,
      controlPlaneAuthPolicy: 'MUTUAL_TLS',
      interceptionMode: 'REDIRECT',
    });
  });
});

/** Renders `template` as the only template of a pod (annotations in `extra`), and returns the injected pod. */
function renderOnly(
  template: string,
  extra: Record<string, string> = {},
  settings?: Partial<InjectorSettings>,
): Pod {
  const base = settingsWith({ probe: template });
  return injected({ ...base, ...settings }, pod({ 'inject.istio.io/templates': 'probe', ...extra }));
}

const INBOUND_MODE = `metadata:
  annotations:
    inbound: "{{ .InboundTrafficPolicyMode }}"
`;

describe('what istiod hands its templates, as Istio`s own templates read it', () => {
  test('the proxy config: enums print by name (String too), and protoToJSON leaves out istiod`s defaults', () => {
    const out = renderOnly(`metadata:
  annotations:
    mode: "{{ .ProxyConfig.InterceptionMode }}/{{ .ProxyConfig.InterceptionMode.String }}"
    config: {{ protoToJSON .ProxyConfig | quote }}
    mesh-default: {{ protoToJSON .MeshConfig.DefaultConfig | quote }}
`);
    expect(out.metadata?.annotations).toMatchObject({
      mode: 'REDIRECT/REDIRECT',
      config: '{}',
      'mesh-default': '{}',
    });
    const tproxy = renderOnly(
      `metadata:
  annotations:
    config: {{ protoToJSON .ProxyConfig | quote }}
`,
      { 'proxy.istio.io/config': '{"interceptionMode": "TPROXY", "concurrency": 3}' },
    );
    expect(tproxy.metadata?.annotations?.['config']).toBe('{"concurrency":3,"interceptionMode":"TPROXY"}');
  });

  test('structToJSON writes a port in Go`s field order, as ISTIO_META_POD_PORTS needs', () => {
    const target: Pod = {
      ...pod({ 'inject.istio.io/templates': 'probe' }),
      spec: {
        containers: [
          {
            name: 'hello',
            image: 'example/hello:1',
            ports: [{ containerPort: 80, protocol: 'TCP', name: 'http' }],
          },
        ],
      },
    };
    const settings = settingsWith({
      probe: `metadata:
  annotations:
    ports: '{{ range .Spec.Containers }}{{ range .Ports }}{{ structToJSON . }}{{ end }}{{ end }}'
    list: '{{ range .Spec.Containers }}{{ structToJSON .Ports }}{{ end }}'
    plain: '{{ structToJSON (dict "b" 1 "a" 2) }}'
`,
    });
    expect(injected(settings, target).metadata?.annotations).toMatchObject({
      ports: '{"name":"http","containerPort":80,"protocol":"TCP"}',
      list: '[{"name":"http","containerPort":80,"protocol":"TCP"}]',
      plain: '{"a":2,"b":1}',
    });
  });

  test('the values the injector ConfigMap carries: token audience, mTLS certs, pilot env, gateways', () => {
    const out = renderOnly(
      `metadata:
  annotations:
    aud: "{{ .Values.global.sds.token.aud }}"
    mtls: "{{ .Values.global.mountMtlsCerts }}"
    auto: "{{ .Values.global.proxy.autoInject }}"
    bind: "{{ .Values.global.proxy.capNetBindService }}"
    bundle: "{{ eq (.Values.pilot.env).ENABLE_CLUSTER_TRUST_BUNDLE_API true }}"
    other: "{{ .Values.pilot.env.OTHER }}"
    gateways: "{{ .Values.gateways.securityContext.runAsUser }}"
    inbound: "{{ .InboundTrafficPolicyMode }}"
`,
      {},
      {
        pilotEnv: { ENABLE_CLUSTER_TRUST_BUNDLE_API: true, OTHER: 'x' },
        gatewaySecurityContext: { runAsUser: 1000 },
      },
    );
    expect(out.metadata?.annotations).toMatchObject({
      aud: 'istio-ca',
      mtls: 'false',
      auto: 'enabled',
      bind: 'false',
      bundle: 'true',
      other: 'x',
      gateways: '1000',
      inbound: 'passthrough',
    });
    const localhost = renderOnly(
      INBOUND_MODE,
      {},
      {
        mesh: { ...defaultInjectorSettings().mesh, inboundTrafficPolicyMode: 'LOCALHOST' },
      },
    );
    expect(localhost.metadata?.annotations?.['inbound']).toBe('localhost');
  });

  test('re-injected, a probe field a template writes as 0 replaces the pod`s value, then goes, as in istiod`s merge', () => {
    // "extra" came from an earlier injection (the status lists it), so the template's version is merged over it
    // rather than the pod's copy being re-applied as a user override.
    const target: Pod = {
      ...pod({
        'inject.istio.io/templates': 'probe',
        'sidecar.istio.io/status': '{"containers":["extra"],"initContainers":null,"volumes":null}',
      }),
      spec: {
        containers: [
          { name: 'hello', image: 'example/hello:1' },
          {
            name: 'extra',
            image: 'example/extra:1',
            readinessProbe: {
              httpGet: { path: '/ready', port: 8080 },
              initialDelaySeconds: 7,
              periodSeconds: 9,
            },
          },
        ],
      },
    };
    const settings = settingsWith({
      probe: `spec:
  containers:
  - name: extra
    readinessProbe:
      initialDelaySeconds: 0
`,
    });
    expect(injected(settings, target).spec?.containers?.[1]?.readinessProbe).toEqual({
      httpGet: { path: '/ready', port: 8080 },
      periodSeconds: 9,
    });
  });

  test('a key the rendered YAML repeats keeps its last value, as Go`s YAML reader does', () => {
    const out = renderOnly(`metadata:
  annotations:
    repeated: first
    repeated: last
`);
    expect(out.metadata?.annotations?.['repeated']).toBe('last');
  });

  test('rendered containers are read into Go`s structs, as istiod does: quantities canonical, omitempty zeros gone', () => {
    const out = renderOnly(`spec:
  containers:
  - name: extra
    image: example/extra:1
    resources:
      limits: {cpu: 2000m, memory: 1024Mi}
      requests: {cpu: "0.5"}
    readinessProbe:
      initialDelaySeconds: 0
      periodSeconds: 15
      httpGet: {path: /ready, port: 8080}
    env:
    - name: CPU
      valueFrom: {resourceFieldRef: {resource: limits.cpu}}
    notAContainerField: dropped
  - name: bare
    image: example/bare:1
`);
    const extra = out.spec?.containers?.find((c) => c.name === 'extra');
    expect(extra).toEqual({
      name: 'extra',
      image: 'example/extra:1',
      resources: { limits: { cpu: '2', memory: '1Gi' }, requests: { cpu: '500m' } },
      readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 15 },
      // A divisor left out is Go's zero Quantity, which it writes as "0".
      env: [{ name: 'CPU', valueFrom: { resourceFieldRef: { resource: 'limits.cpu', divisor: '0' } } }],
    });
    // Go writes `resources: {}` for a container without any; meshrev's templates leave the key out.
    expect(out.spec?.containers?.find((c) => c.name === 'bare')).toEqual({
      name: 'bare',
      image: 'example/bare:1',
    });
  });
});

// istiod's own template functions; each expected value is what istiod's Go implementation gives (toYaml's were
// printed by sigs.k8s.io/yaml, through `make differential`).
describe("istiod's template functions", () => {
  const call = (name: string, ...args: unknown[]) =>
    (ISTIO_FUNCTIONS[name] as (...a: unknown[]) => unknown)(...args);

  test.each<[string, unknown, string]>([
    [
      'quotes what YAML 1.1 would read as another type, sorts keys',
      { n: 'y', v: 'on', t: 'true', num: '12', f: 1.5, i: 3 },
      'f: 1.5\ni: 3\n"n": "y"\nnum: "12"\nt: "true"\nv: "on"\n',
    ],
    ['writes several lines as a literal block', { s: 'a\nb' }, 's: |-\n  a\n  b\n'],
    ['does not indent sequences', { b: [1, { c: 'yes' }], a: 'x' }, 'a: x\nb:\n- 1\n- c: "yes"\n'],
    [
      "chooses go-yaml's quotes",
      {
        colon: 'a: b',
        dash: '- x',
        comma: ',',
        space: ' ',
        empty: '',
        tab: 'a\tb',
        b60: '1:20',
        null: 'null',
      },
      'b60: "1:20"\ncolon: \'a: b\'\ncomma: \',\'\ndash: \'- x\'\nempty: ""\n"null": "null"\nspace: \' \'\ntab: "a\\tb"\n',
    ],
    ['escapes characters beyond the Basic Multilingual Plane', 'αβγ-😀', '"αβγ-\\U0001F600"\n'],
    ['writes a scalar, nil, an empty list and map', 'x', 'x\n'],
    ['writes nil as null', null, 'null\n'],
    [
      'writes resources as the injection template uses them',
      { requests: { memory: '128Mi', cpu: '100m' }, limits: { memory: '1Gi', cpu: '2' } },
      'limits:\n  cpu: "2"\n  memory: 1Gi\nrequests:\n  cpu: 100m\n  memory: 128Mi\n',
    ],
  ])('toYaml %s', (_name, value, expected) => {
    expect(call('toYaml', value)).toBe(expected);
  });

  test('fromJSON gives the string "{}" for text that is not JSON, as istiod`s does', () => {
    expect(call('fromJSON', '{"a":[1]}')).toEqual({ a: [1] });
    expect(call('fromJSON', 'not json')).toBe('{}');
  });

  test('the map[string]string functions: omit, strdict, mergeMaps and toJsonMap', () => {
    expect(call('omit', { a: '1', b: '2', c: '3' }, 'a', 'c')).toEqual({ b: '2' });
    expect(call('omit', undefined, 'a')).toEqual({});
    // An odd count leaves the last key with an empty value.
    expect(call('strdict', 'a', '1', 'b')).toEqual({ a: '1', b: '' });
    expect(call('mergeMaps', { a: '1', b: '2' }, { b: '3' })).toEqual({ a: '1', b: '3' });
    expect(call('mergeMaps')).toBeNull();
    expect(call('toJsonMap', { z: '1', a: '<' }, { m: '2' })).toBe('{"a":"\\u003c","m":"2","z":"1"}');
    expect(call('toJsonMap')).toBe('null');
    expect(call('excludeInterfaces', 'eth1,eth2')).toBe('eth1,eth2');
  });

  test('omitNil drops nils; a map or list emptied by that becomes nil, one that held none stays as it is', () => {
    expect(call('omitNil', { limits: { cpu: null, memory: '1Gi' }, requests: {} })).toEqual({
      limits: { memory: '1Gi' },
      requests: {},
    });
    expect(call('omitNil', { limits: { cpu: null }, requests: { cpu: '1' } })).toEqual({
      requests: { cpu: '1' },
    });
    expect(call('omitNil', { a: [null, 1, null], b: [null] })).toEqual({ a: [1] });
    expect(call('omitNil', { a: null })).toBeNull();
    expect(call('omitNil', {})).toEqual({});
  });

  test('otelResourceAttributes enriches only for an OpenTelemetry provider asking for semantic conventions', () => {
    const mesh = {
      extensionProviders: [
        { name: 'otel', opentelemetry: { serviceAttributeEnrichment: 'OTEL_SEMANTIC_CONVENTIONS' } },
      ],
    };
    const containers = [{ name: 'app', image: 'registry:5000/shop/app:1.2@sha256:abc' }];
    expect(
      call('otelResourceAttributes', mesh, {}, { 'app.kubernetes.io/version': 'v9' }, 'shop', containers),
    ).toBe('service.namespace=shop,service.version=v9,service.instance.id=shop.$(POD_NAME).app');
    expect(call('otelResourceAttributes', mesh, {}, {}, 'shop', containers)).toBe(
      'service.namespace=shop,service.version=1.2@sha256:abc,service.instance.id=shop.$(POD_NAME).app',
    );
    expect(call('otelResourceAttributes', { extensionProviders: [] }, {}, {}, 'shop', containers)).toBe('');
  });

  test('includeInboundPorts and applicationPorts list ports in order, repeats kept, UDP and SCTP left out', () => {
    const containers = [
      {
        name: 'a',
        ports: [{ containerPort: 80 }, { containerPort: 53, protocol: 'UDP' }, { containerPort: 80 }],
      },
      { name: 'istio-proxy', ports: [{ containerPort: 15090, protocol: 'TCP' }] },
      {
        name: 'b',
        ports: [
          { containerPort: 9000, protocol: 'SCTP' },
          { containerPort: 8080, protocol: 'TCP' },
        ],
      },
    ];
    expect(call('applicationPorts', containers)).toBe('80,80,8080');
    expect(call('includeInboundPorts', containers)).toBe('80,80,15090,8080');
  });

  test('indent pads every line but the first, by the width Sprintf reads from "% <n>s"', () => {
    expect(call('indent', 2, 'a\nb\nc')).toBe('a\n  b\n  c');
    expect(call('indent', 0, 'a\nb')).toBe('a\nb');
    expect(call('indent', -3, 'a\nb')).toBe('a\n   b');
    expect(() => call('indent', '4', 'a\nb')).toThrow('expected int');
  });
});

describe("env reads the revision's istiod environment", () => {
  const ENV = `metadata:
  annotations:
    example.com/trace: {{ env "PILOT_TRACE" "off" | quote }}
    example.com/empty: {{ env "EMPTY" "fallback" | quote }}
    example.com/unset: {{ env "UNSET" "fallback" | quote }}
`;

  test('a set variable, and the default for an empty or unset one (os.Getenv gives "" for both)', () => {
    const settings = defaultInjectorSettings({
      hub: 'docker.io/istio',
      tag: '1.29.6',
      customTemplates: { env: ENV },
      istiodEnvironment: new Map([
        ['PILOT_TRACE', 'on'],
        ['EMPTY', ''],
      ]),
    });
    const out = injected(settings, pod({ 'inject.istio.io/templates': 'sidecar,env' }));
    expect(out.metadata?.annotations).toMatchObject({
      'example.com/trace': 'on',
      'example.com/empty': 'fallback',
      'example.com/unset': 'fallback',
    });
  });

  test("each revision's templates read that revision's environment", () => {
    const of = (trace: string) =>
      injected(
        defaultInjectorSettings({
          customTemplates: { env: ENV },
          istiodEnvironment: new Map([['PILOT_TRACE', trace]]),
        }),
        pod({ 'inject.istio.io/templates': 'sidecar,env' }),
      ).metadata?.annotations?.['example.com/trace'];
    expect(of('1')).toBe('1');
    expect(of('2')).toBe('2');
  });
});

describe('what a custom template may change', () => {
  test('sprig`s set changes only the template`s copy: not the pod, nor the values the next pod sees', () => {
    const settings = settingsWith({
      mutate: `{{- $_ := set .ObjectMeta.Annotations "mutated" "yes" -}}
{{- $_ := set .Values.global "hub" "evil.example" -}}
metadata:
  annotations:
    seen/hub: {{ .Values.global.hub }}
`,
      read: 'metadata:\n  annotations:\n    seen/hub: {{ .Values.global.hub }}\n',
    });
    const target = pod({ 'inject.istio.io/templates': 'mutate' });
    const before = JSON.stringify(target);
    const out = injected(settings, target);
    expect(JSON.stringify(target)).toBe(before);
    expect(out.metadata?.annotations?.['seen/hub']).toBe('evil.example');
    expect(out.metadata?.annotations).not.toHaveProperty('mutated');
    const next = injected(settings, pod({ 'inject.istio.io/templates': 'read' }));
    expect(next.metadata?.annotations?.['seen/hub']).toBe('docker.io/istio');
  });
});

describe('chained templates with native sidecars', () => {
  test('a template that customises istio-proxy under containers, followed by another, lands in the native proxy', () => {
    const settings = settingsWith({
      spire: SPIRE,
      labels: 'metadata:\n  labels:\n    chained: "yes"\n',
    });
    const out = injected(settings, pod({ 'inject.istio.io/templates': 'sidecar,spire,labels' }));
    expect(out.spec?.initContainers?.filter((c) => c.name === 'istio-proxy')).toHaveLength(1);
    expect(out.spec?.containers?.map((c) => c.name)).toEqual(['hello']);
    const proxy = proxyOf(out);
    expect(proxy?.image).toBe('docker.io/istio/proxyv2:1.29.6');
    expect(proxy?.volumeMounts).toContainEqual({
      name: 'workload-socket',
      mountPath: '/run/secrets/workload-spiffe-uds',
      readOnly: true,
    });
    expect(out.metadata?.labels?.['chained']).toBe('yes');
  });
});
