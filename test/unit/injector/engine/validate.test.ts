import {
  defaultInjectorSettings,
  injectPod,
  validateAnnotations,
} from '../../../../src/injector/engine/index.js';

const cases: Array<{ annotation: string; value: string; mentions: string }> = [
  {
    annotation: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
    value: 'bad',
    mentions: 'includeIPRanges invalid',
  },
  {
    annotation: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
    value: '10.0.0.1',
    mentions: 'failed parsing cidr',
  },
  {
    annotation: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
    value: '*',
    mentions: 'excludeIPRanges invalid',
  },
  { annotation: 'traffic.sidecar.istio.io/excludeOutboundIPRanges', value: '010.0.0.0/8', mentions: 'cidr' },
  {
    annotation: 'traffic.sidecar.istio.io/includeInboundPorts',
    value: 'bad',
    mentions: 'includeInboundPorts invalid',
  },
  {
    annotation: 'traffic.sidecar.istio.io/excludeInboundPorts',
    value: '*',
    mentions: 'excludeInboundPorts invalid',
  },
  {
    annotation: 'traffic.sidecar.istio.io/excludeOutboundPorts',
    value: '70000',
    mentions: 'excludeOutboundPorts invalid',
  },
  { annotation: 'sidecar.istio.io/interceptionMode', value: 'MAGIC', mentions: 'use REDIRECT,TPROXY,NONE' },
  { annotation: 'status.sidecar.istio.io/port', value: '-1', mentions: "failed parsing port '-1'" },
  {
    annotation: 'readiness.status.sidecar.istio.io/periodSeconds',
    value: '1.5',
    mentions: 'unsigned integer',
  },
  {
    annotation: 'traffic.sidecar.istio.io/excludeInterfaces',
    value: 'eth0,',
    mentions: 'empty interface name',
  },
  { annotation: 'istio.io/reroute-virtual-interfaces', value: 'a-very-long-interface', mentions: 'too long' },
  { annotation: 'prometheus.istio.io/merge-metrics', value: 'yes', mentions: 'invalid syntax' },
  { annotation: 'sidecar.istio.io/proxyCPU', value: '100x', mentions: 'quantities' },
  { annotation: 'sidecar.istio.io/proxyMemory', value: '1Gi\n', mentions: 'control characters' },
  { annotation: 'proxy.istio.io/config', value: 'interceptionMode: MAGIC', mentions: 'interceptionMode' },
  { annotation: 'proxy.istio.io/config', value: 'drainDuration: 1m', mentions: 'invalid duration' },
];

describe('annotation validation', () => {
  test.each(cases)(
    '$annotation=$value is rejected naming the annotation',
    ({ annotation, value, mentions }) => {
      const errors = validateAnnotations({ [annotation]: value });
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(`'${annotation}'`);
      expect(errors[0]).toContain(mentions);
    },
  );

  test.each([
    ['traffic.sidecar.istio.io/includeOutboundIPRanges', '*'],
    ['traffic.sidecar.istio.io/includeOutboundIPRanges', '10.0.0.0/8,fd00::/8'],
    ['traffic.sidecar.istio.io/excludeOutboundIPRanges', ''],
    ['traffic.sidecar.istio.io/includeInboundPorts', '*'],
    ['traffic.sidecar.istio.io/excludeInboundPorts', ' 80, 443 '],
    ['status.sidecar.istio.io/port', '0'],
    ['sidecar.istio.io/interceptionMode', 'NONE'],
    ['sidecar.istio.io/proxyCPU', '0.5'],
    ['sidecar.istio.io/proxyMemoryLimit', '1Mi'],
    ['prometheus.istio.io/merge-metrics', 'F'],
    ['proxy.istio.io/config', '{ "holdApplicationUntilProxyStarts": true }'],
    ['traffic.sidecar.istio.io/kubevirtInterfaces', 'net1,net2.100'],
  ])('%s=%j is accepted', (annotation, value) => {
    expect(validateAnnotations({ [annotation]: value })).toEqual([]);
  });

  test('every invalid annotation is reported, not only the first', () => {
    const errors = validateAnnotations({
      'traffic.sidecar.istio.io/includeInboundPorts': 'x',
      'traffic.sidecar.istio.io/excludeInboundPorts': 'y',
      'unrelated.example.com/annotation': 'whatever',
    });
    expect(errors).toHaveLength(2);
  });

  test('an invalid annotation rejects the pod with a message naming it', () => {
    const outcome = injectPod({
      pod: {
        metadata: { name: 'p', annotations: { 'traffic.sidecar.istio.io/excludeOutboundPorts': 'bad' } },
        spec: { containers: [{ name: 'app', image: 'app' }] },
      },
      namespace: 'default',
      settings: defaultInjectorSettings(),
    });
    expect(outcome.kind).toBe('rejected');
    if (outcome.kind === 'rejected') expect(outcome.message.toLowerCase()).toContain('excludeoutboundports');
  });
});
