import {
  defaultInjectorSettings,
  injectRequired,
  type LabelSelector,
} from '../../../../src/injector/engine/index.js';

type Row = {
  name: string;
  policy: 'enabled' | 'disabled';
  hostNetwork?: boolean;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  never?: LabelSelector[];
  always?: LabelSelector[];
  want: boolean;
};

const INJECT = 'sidecar.istio.io/inject';

// The shape of istiod's TestInjectRequired: policy × annotation/label × selectors × namespace × host network.
const rows: Row[] = [
  { name: 'enabled policy, no annotations', policy: 'enabled', annotations: {}, want: true },
  { name: 'enabled policy, no metadata at all', policy: 'enabled', want: true },
  {
    name: 'enabled policy, annotation true',
    policy: 'enabled',
    annotations: { [INJECT]: 'true' },
    want: true,
  },
  {
    name: 'enabled policy, annotation false',
    policy: 'enabled',
    annotations: { [INJECT]: 'false' },
    want: false,
  },
  { name: 'disabled policy, no annotations', policy: 'disabled', annotations: {}, want: false },
  { name: 'disabled policy, no metadata at all', policy: 'disabled', want: false },
  {
    name: 'disabled policy, annotation true',
    policy: 'disabled',
    annotations: { [INJECT]: 'true' },
    want: true,
  },
  {
    name: 'disabled policy, annotation false',
    policy: 'disabled',
    annotations: { [INJECT]: 'false' },
    want: false,
  },
  { name: 'host network is never injected', policy: 'enabled', hostNetwork: true, want: false },
  {
    name: 'host network wins over an explicit request',
    policy: 'enabled',
    hostNetwork: true,
    annotations: { [INJECT]: 'true' },
    want: false,
  },
  { name: 'kube-system is never injected', policy: 'enabled', namespace: 'kube-system', want: false },
  { name: 'kube-public is never injected', policy: 'enabled', namespace: 'kube-public', want: false },
  { name: 'kube-node-lease is never injected', policy: 'enabled', namespace: 'kube-node-lease', want: false },
  {
    name: 'ignored namespaces win over an explicit request',
    policy: 'enabled',
    namespace: 'local-path-storage',
    labels: { [INJECT]: 'true' },
    want: false,
  },
  { name: 'enabled policy, label true', policy: 'enabled', labels: { [INJECT]: 'true' }, want: true },
  { name: 'enabled policy, label false', policy: 'enabled', labels: { [INJECT]: 'false' }, want: false },
  { name: 'disabled policy, label true', policy: 'disabled', labels: { [INJECT]: 'true' }, want: true },
  {
    name: 'label true beats annotation false',
    policy: 'enabled',
    labels: { [INJECT]: 'true' },
    annotations: { [INJECT]: 'false' },
    want: true,
  },
  {
    name: 'label false beats annotation true',
    policy: 'enabled',
    labels: { [INJECT]: 'false' },
    annotations: { [INJECT]: 'true' },
    want: false,
  },
  {
    name: 'an empty label still overrides the annotation and falls back to the policy',
    policy: 'disabled',
    labels: { [INJECT]: '' },
    annotations: { [INJECT]: 'true' },
    want: false,
  },
  {
    name: 'an unknown value falls back to the enabled policy',
    policy: 'enabled',
    annotations: { [INJECT]: 'yes' },
    want: true,
  },
  {
    name: 'an unknown value falls back to the disabled policy',
    policy: 'disabled',
    labels: { [INJECT]: 'on' },
    want: false,
  },
  {
    name: 'neverInjectSelector match skips under the enabled policy',
    policy: 'enabled',
    labels: { foo: 'bar' },
    never: [{ matchLabels: { foo: 'bar' } }],
    want: false,
  },
  {
    name: 'neverInjectSelector does not override an explicit request',
    policy: 'enabled',
    labels: { foo: 'bar' },
    annotations: { [INJECT]: 'true' },
    never: [{ matchLabels: { foo: 'bar' } }],
    want: true,
  },
  {
    name: 'alwaysInjectSelector match injects under the disabled policy',
    policy: 'disabled',
    labels: { foo: 'bar' },
    always: [{ matchLabels: { foo: 'bar' } }],
    want: true,
  },
  {
    name: 'alwaysInjectSelector does not override an explicit opt-out',
    policy: 'disabled',
    labels: { foo: 'bar', [INJECT]: 'false' },
    always: [{ matchLabels: { foo: 'bar' } }],
    want: false,
  },
  {
    name: 'never wins when both selectors match',
    policy: 'disabled',
    labels: { foo: 'bar' },
    never: [{ matchLabels: { foo: 'bar' } }],
    always: [{ matchLabels: { foo: 'bar' } }],
    want: false,
  },
  {
    name: 'selectors are ORed: a later never selector still matches',
    policy: 'enabled',
    labels: { foo: 'bar' },
    never: [{ matchLabels: { other: 'x' } }, { matchExpressions: [{ key: 'foo', operator: 'Exists' }] }],
    want: false,
  },
  {
    name: 'an empty selector matches nothing',
    policy: 'disabled',
    labels: { foo: 'bar' },
    always: [{}],
    want: false,
  },
  {
    name: 'a selector with an unknown operator matches nothing',
    policy: 'disabled',
    labels: { foo: 'bar' },
    always: [{ matchExpressions: [{ key: 'foo', operator: 'Like', values: ['bar'] }] }],
    want: false,
  },
  {
    name: 'NotIn matches pods without the label',
    policy: 'disabled',
    labels: {},
    always: [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['db'] }] }],
    want: true,
  },
  {
    name: 'DoesNotExist fails when the label exists',
    policy: 'disabled',
    labels: { tier: 'web' },
    always: [{ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }],
    want: false,
  },
];

describe('injectRequired', () => {
  test.each(rows)('$name', (row) => {
    const settings = defaultInjectorSettings({
      policy: row.policy,
      neverInjectSelector: row.never ?? [],
      alwaysInjectSelector: row.always ?? [],
    });
    const decision = injectRequired(
      settings,
      { hostNetwork: row.hostNetwork ?? false },
      {
        namespace: row.namespace ?? 'test-namespace',
        ...(row.labels ? { labels: row.labels } : {}),
        ...(row.annotations ? { annotations: row.annotations } : {}),
      },
    );
    expect(decision.inject).toBe(row.want);
  });

  test('a skip explains itself', () => {
    const decision = injectRequired(defaultInjectorSettings(), { hostNetwork: true }, { namespace: 'a' });
    expect(decision).toEqual({ inject: false, reason: 'pod uses host networking' });
  });
});
