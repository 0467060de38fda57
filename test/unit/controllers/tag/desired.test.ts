import { parse } from 'yaml';

import { objectKey } from '../../../../src/controllers/common/objects.js';
import { readInjectionWebhookSettings } from '../../../../src/controllers/common/webhooks.js';
import { desiredTagObjects, type TagBuildContext } from '../../../../src/controllers/tag/desired.js';
import { at, INJECTOR, only, tag } from '../fixtures.js';

const CONTEXT: TagBuildContext = { injector: INJECTOR, caBundle: undefined, operatorName: 'meshrev' };

const selectorsOf = (webhooks: unknown) =>
  (webhooks as Array<Record<string, unknown>>).map(({ name, namespaceSelector, objectSelector }) => ({
    name,
    namespaceSelector,
    objectSelector,
  }));

// Istio's revision-tags-mwc.yaml selectors for tag T (reference istio-injection.md §1.4).
const TAG_SELECTORS = (value: string) =>
  parse(`
- name: rev.namespace.sidecar-injector.istio.io
  namespaceSelector:
    matchExpressions:
    - { key: istio.io/rev, operator: In, values: ["${value}"] }
    - { key: istio-injection, operator: DoesNotExist }
  objectSelector:
    matchExpressions:
    - { key: sidecar.istio.io/inject, operator: NotIn, values: ["false"] }
- name: rev.object.sidecar-injector.istio.io
  namespaceSelector:
    matchExpressions:
    - { key: istio.io/rev, operator: DoesNotExist }
    - { key: istio-injection, operator: DoesNotExist }
  objectSelector:
    matchExpressions:
    - { key: sidecar.istio.io/inject, operator: NotIn, values: ["false"] }
    - { key: istio.io/rev, operator: In, values: ["${value}"] }
`) as unknown[];

// The default revision's legacy selectors, appended for the tag named default.
const LEGACY_SELECTORS = parse(`
- name: namespace.sidecar-injector.istio.io
  namespaceSelector:
    matchExpressions:
    - key: istio-injection
      operator: In
      values:
      - enabled
  objectSelector:
    matchExpressions:
    - key: sidecar.istio.io/inject
      operator: NotIn
      values:
      - "false"
- name: object.sidecar-injector.istio.io
  namespaceSelector:
    matchExpressions:
    - key: istio-injection
      operator: DoesNotExist
    - key: istio.io/rev
      operator: DoesNotExist
  objectSelector:
    matchExpressions:
    - key: sidecar.istio.io/inject
      operator: In
      values:
      - "true"
    - key: istio.io/rev
      operator: DoesNotExist
`) as unknown[];

// Istio's auto.* webhook (enableNamespacesByDefault), reference istio-injection.md §1.4 special case 3.
const AUTO_SELECTOR = parse(`
- name: auto.sidecar-injector.istio.io
  namespaceSelector:
    matchExpressions:
    - key: istio-injection
      operator: DoesNotExist
    - key: istio.io/rev
      operator: DoesNotExist
    - key: "kubernetes.io/metadata.name"
      operator: "NotIn"
      values: ["kube-system","kube-public","kube-node-lease","local-path-storage"]
  objectSelector:
    matchExpressions:
    - key: sidecar.istio.io/inject
      operator: DoesNotExist
    - key: istio.io/rev
      operator: DoesNotExist
`) as unknown[];

/** The selectors of the webhooks tag `name` (pointing at canary) renders. */
const webhookSelectors = (name: string, context: TagBuildContext = CONTEXT) =>
  selectorsOf(
    only(desiredTagObjects(tag(name, 'canary'), context), 'MutatingWebhookConfiguration')['webhooks'],
  );

/** A target revision that sets injection.enableNamespacesByDefault. */
const AUTO_INJECTING: TagBuildContext = {
  ...CONTEXT,
  webhookSettings: readInjectionWebhookSettings({ enableNamespacesByDefault: true }),
};

describe('desiredTagObjects', () => {
  it('renders one webhook configuration named istio-revision-tag-<tag>', () => {
    expect(desiredTagObjects(tag('prod', 'canary'), CONTEXT).map(objectKey)).toEqual([
      'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration/istio-revision-tag-prod',
    ]);
  });

  it('labels it with the tag and the target revision, and makes the tag its controller', () => {
    const configuration = only(
      desiredTagObjects(tag('prod', 'canary'), { ...CONTEXT, targetVersion: '1.30.3' }),
      'MutatingWebhookConfiguration',
    );
    expect(configuration.metadata.labels).toMatchObject({
      app: 'sidecar-injector',
      'istio.io/rev': 'canary',
      'istio.io/tag': 'prod',
      'app.kubernetes.io/managed-by': 'meshrev',
      'app.kubernetes.io/version': '1.30.3',
    });
    expect(configuration.metadata.ownerReferences).toEqual([
      {
        apiVersion: 'meshrev.dev/v1alpha1',
        kind: 'RevisionTag',
        name: 'prod',
        uid: 'uid-tag-prod',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
  });

  it('selects the tag name with the two revision webhooks of a non-default tag', () => {
    expect(webhookSelectors('prod')).toEqual(TAG_SELECTORS('prod'));
  });

  it('adds the legacy istio-injection=enabled and sidecar.istio.io/inject=true webhooks for the default tag', () => {
    expect(webhookSelectors('default')).toEqual([...TAG_SELECTORS('default'), ...LEGACY_SELECTORS]);
  });

  it("adds Istio's auto webhook for unlabelled namespaces when the target sets enableNamespacesByDefault", () => {
    expect(webhookSelectors('default', AUTO_INJECTING)).toEqual([
      ...TAG_SELECTORS('default'),
      ...LEGACY_SELECTORS,
      ...AUTO_SELECTOR,
    ]);
  });

  it('ignores enableNamespacesByDefault on a tag other than default, as Istio does', () => {
    expect(webhookSelectors('prod', AUTO_INJECTING)).toEqual(TAG_SELECTORS('prod'));
  });

  it("routes every webhook to the target revision's injector path with Istio's fixed fields", () => {
    const configuration = only(
      desiredTagObjects(tag('default', 'canary'), CONTEXT),
      'MutatingWebhookConfiguration',
    );
    for (const webhook of configuration['webhooks'] as Array<Record<string, unknown>>) {
      expect(webhook).toMatchObject({
        clientConfig: {
          service: {
            name: 'meshrev-injector',
            namespace: 'meshrev-system',
            path: '/inject/canary',
            port: 443,
          },
        },
        sideEffects: 'None',
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
        failurePolicy: 'Fail',
        reinvocationPolicy: 'Never',
        admissionReviewVersions: ['v1'],
      });
      expect(at(webhook, 'clientConfig', 'caBundle')).toBeUndefined();
      expect('caBundle' in (webhook['clientConfig'] as object)).toBe(false);
    }
  });

  it("uses the target revision's webhook settings and the injector CA when given", () => {
    const configuration = only(
      desiredTagObjects(tag('prod', 'canary'), {
        ...CONTEXT,
        caBundle: 'Q0E=',
        webhookSettings: { failurePolicy: 'Ignore', reinvocationPolicy: 'IfNeeded', timeoutSeconds: 3 },
      }),
      'MutatingWebhookConfiguration',
    );
    for (const webhook of configuration['webhooks'] as Array<Record<string, unknown>>) {
      expect(webhook).toMatchObject({
        clientConfig: { caBundle: 'Q0E=' },
        failurePolicy: 'Ignore',
        reinvocationPolicy: 'IfNeeded',
        timeoutSeconds: 3,
      });
    }
  });
});
