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
 * The legacy selectors of the default revision: `namespace.*` (istio-injection=enabled) and `object.*`
 * (unlabelled namespace, pod labelled sidecar.istio.io/inject=true without istio.io/rev).
 */
export function defaultSelectorWebhooks(
  clientConfig: AdmissionregistrationV1WebhookClientConfig,
  settings: InjectionWebhookSettings,
): V1MutatingWebhook[] {
  return [
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
      {
        matchExpressions: [
          { key: INJECTION_LABEL, operator: 'DoesNotExist' },
          { key: REVISION_LABEL, operator: 'DoesNotExist' },
        ],
      },
      {
        matchExpressions: [
          { key: SIDECAR_INJECT_LABEL, operator: 'In', values: ['true'] },
          { key: REVISION_LABEL, operator: 'DoesNotExist' },
        ],
      },
    ),
  ];
}
