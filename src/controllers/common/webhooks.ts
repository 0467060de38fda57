// The sidecar-injector webhook entries Istio renders (istio-discovery chart `mutatingwebhook.yaml` and
// `revision-tags-mwc.yaml`), pointed at meshrev's embedded injector instead of istiod.
import type {
  AdmissionregistrationV1WebhookClientConfig,
  V1LabelSelector,
  V1MutatingWebhook,
} from '@kubernetes/client-node';

import { INJECTION_LABEL, REVISION_LABEL, SIDECAR_INJECT_LABEL } from './labels.js';

export interface InjectorEndpoint {
  serviceName: string;
  serviceNamespace: string;
  port: number;
}

export interface InjectionWebhookSettings {
  failurePolicy: 'Fail' | 'Ignore';
  reinvocationPolicy: 'Never' | 'IfNeeded';
  /** Unset leaves the API server's default (10 s), as Istio does. */
  timeoutSeconds?: number | undefined;
  /**
   * `spec.injection.enableNamespacesByDefault`: the default selectors' configuration also injects pods in unlabelled
   * namespaces (Istio's `auto.*` webhook). Like Istio's, it only means something where those selectors are rendered.
   */
  enableNamespacesByDefault?: boolean | undefined;
}

export const DEFAULT_INJECTION_WEBHOOK_SETTINGS: InjectionWebhookSettings = {
  failurePolicy: 'Fail',
  reinvocationPolicy: 'Never',
};

function field(source: unknown, key: string): unknown {
  return source !== null && typeof source === 'object' ? (source as Record<string, unknown>)[key] : undefined;
}

/**
 * Reads the webhook settings from `spec.injection` without depending on the exact shape of its schema
 * (owned by the injector work); values of the wrong type fall back to Istio's defaults.
 */
export function readInjectionWebhookSettings(injection: unknown): InjectionWebhookSettings {
  const failurePolicy = field(injection, 'failurePolicy');
  const reinvocationPolicy = field(injection, 'reinvocationPolicy');
  const timeoutSeconds = field(injection, 'timeoutSeconds');
  return {
    failurePolicy: failurePolicy === 'Ignore' ? 'Ignore' : 'Fail',
    reinvocationPolicy: reinvocationPolicy === 'IfNeeded' ? 'IfNeeded' : 'Never',
    timeoutSeconds:
      typeof timeoutSeconds === 'number' && Number.isInteger(timeoutSeconds) ? timeoutSeconds : undefined,
    enableNamespacesByDefault: field(injection, 'enableNamespacesByDefault') === true,
  };
}

/** Whether `spec.injection.enabled` asks for a webhook configuration (default true). */
export function injectionEnabled(injection: unknown): boolean {
  return field(injection, 'enabled') !== false;
}

export function injectorClientConfig(
  endpoint: InjectorEndpoint,
  path: string,
  caBundle: string | undefined,
): AdmissionregistrationV1WebhookClientConfig {
  return {
    service: { name: endpoint.serviceName, namespace: endpoint.serviceNamespace, path, port: endpoint.port },
    ...(caBundle === undefined ? {} : { caBundle }),
  };
}

function webhook(
  name: string,
  clientConfig: AdmissionregistrationV1WebhookClientConfig,
  settings: InjectionWebhookSettings,
  namespaceSelector: V1LabelSelector,
  objectSelector: V1LabelSelector,
): V1MutatingWebhook {
  return {
    name,
    clientConfig,
    sideEffects: 'None',
    rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
    failurePolicy: settings.failurePolicy,
    reinvocationPolicy: settings.reinvocationPolicy,
    admissionReviewVersions: ['v1'],
    ...(settings.timeoutSeconds === undefined ? {} : { timeoutSeconds: settings.timeoutSeconds }),
    namespaceSelector,
    objectSelector,
  };
}

const podNotOptedOut = { key: SIDECAR_INJECT_LABEL, operator: 'NotIn', values: ['false'] };

/**
 * `rev.namespace.*` (namespace labelled istio.io/rev=<value>, pod not opted out) and `rev.object.*`
 * (namespace without injection labels, pod labelled istio.io/rev=<value>); `value` is a revision or a tag.
 */
export function revisionSelectorWebhooks(
  value: string,
  clientConfig: AdmissionregistrationV1WebhookClientConfig,
  settings: InjectionWebhookSettings,
): V1MutatingWebhook[] {
  return [
    webhook(
      'rev.namespace.sidecar-injector.istio.io',
      clientConfig,
      settings,
      {
        matchExpressions: [
          { key: REVISION_LABEL, operator: 'In', values: [value] },
          { key: INJECTION_LABEL, operator: 'DoesNotExist' },
        ],
      },
      { matchExpressions: [podNotOptedOut] },
    ),
    webhook(
      'rev.object.sidecar-injector.istio.io',
      clientConfig,
      settings,
      {
        matchExpressions: [
          { key: REVISION_LABEL, operator: 'DoesNotExist' },
          { key: INJECTION_LABEL, operator: 'DoesNotExist' },
        ],
      },
      { matchExpressions: [podNotOptedOut, { key: REVISION_LABEL, operator: 'In', values: [value] }] },
    ),
  ];
}

/**
 * The namespaces Istio's `auto.*` webhook leaves alone even with enableNamespacesByDefault, matched by the
 * `kubernetes.io/metadata.name` label kube-apiserver puts on every namespace.
 */
export const AUTO_INJECTION_EXCLUDED_NAMESPACES: readonly string[] = [
  'kube-system',
  'kube-public',
  'kube-node-lease',
  'local-path-storage',
];

/** The label kube-apiserver sets on every namespace to its name (immutable). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/** The name whose webhook configuration also serves the legacy selectors: the `default` tag, or a revision so named. */
export const DEFAULT_SELECTOR_NAME = 'default';

/**
 * The legacy selectors of the default revision: `namespace.*` (istio-injection=enabled), `object.*`
 * (unlabelled namespace, pod labelled sidecar.istio.io/inject=true without istio.io/rev) and, with
 * enableNamespacesByDefault, `auto.*` (unlabelled namespace outside the system ones, pod without either label).
 */
export function defaultSelectorWebhooks(
  clientConfig: AdmissionregistrationV1WebhookClientConfig,
  settings: InjectionWebhookSettings,
): V1MutatingWebhook[] {
  const unlabelledNamespace = [
    { key: INJECTION_LABEL, operator: 'DoesNotExist' },
    { key: REVISION_LABEL, operator: 'DoesNotExist' },
  ];
  const webhooks = [
    webhook(
      'namespace.sidecar-injector.istio.io',
      clientConfig,
      settings,
      { matchExpressions: [{ key: INJECTION_LABEL, operator: 'In', values: ['enabled'] }] },
      { matchExpressions: [podNotOptedOut] },
    ),
    webhook(
      'object.sidecar-injector.istio.io',
      clientConfig,
      settings,
      { matchExpressions: unlabelledNamespace },
      {
        matchExpressions: [
          { key: SIDECAR_INJECT_LABEL, operator: 'In', values: ['true'] },
          { key: REVISION_LABEL, operator: 'DoesNotExist' },
        ],
      },
    ),
  ];
  if (settings.enableNamespacesByDefault === true) {
    webhooks.push(
      webhook(
        'auto.sidecar-injector.istio.io',
        clientConfig,
        settings,
        {
          matchExpressions: [
            ...unlabelledNamespace,
            { key: NAMESPACE_NAME_LABEL, operator: 'NotIn', values: [...AUTO_INJECTION_EXCLUDED_NAMESPACES] },
          ],
        },
        {
          matchExpressions: [
            { key: SIDECAR_INJECT_LABEL, operator: 'DoesNotExist' },
            { key: REVISION_LABEL, operator: 'DoesNotExist' },
          ],
        },
      ),
    );
  }
  return webhooks;
}

/**
 * Every webhook a revision's or a tag's configuration carries for `name`: the `rev.*` pair, and for the name
 * `default` the legacy selectors too, as Istio renders them for its default revision and its `default` tag.
 */
export function injectionWebhooks(
  name: string,
  clientConfig: AdmissionregistrationV1WebhookClientConfig,
  settings: InjectionWebhookSettings,
): V1MutatingWebhook[] {
  return [
    ...revisionSelectorWebhooks(name, clientConfig, settings),
    ...(name === DEFAULT_SELECTOR_NAME ? defaultSelectorWebhooks(clientConfig, settings) : []),
  ];
}
