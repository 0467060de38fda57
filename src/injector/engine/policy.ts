// Whether a pod gets a sidecar once the webhook has been called (istiod's injectRequired). The webhook's label
// selectors decide which revision is asked; this decides whether that revision injects or lets the pod through.
import type { InjectorSettings } from './settings.js';
import type { LabelSelector, ObjectMeta, PodSpec } from './types.js';

export type InjectDecision = { inject: true } | { inject: false; reason: string };

/** Kubernetes label-selector semantics; an invalid selector matches nothing (istiod logs and skips it). */
export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, key);
    const value = labels[key];
    switch (operator) {
      case 'In':
        if (values.length === 0 || !has || !values.includes(value ?? '')) return false;
        break;
      case 'NotIn':
        if (values.length === 0 || (has && values.includes(value ?? ''))) return false;
        break;
      case 'Exists':
        if (values.length > 0 || !has) return false;
        break;
      case 'DoesNotExist':
        if (values.length > 0 || has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

function isEmptySelector(selector: LabelSelector): boolean {
  return (
    Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0
  );
}

type PolicySettings = Pick<
  InjectorSettings,
  'policy' | 'neverInjectSelector' | 'alwaysInjectSelector' | 'ignoredNamespaces'
>;

/**
 * Decision order: host network → ignored namespace → `sidecar.istio.io/inject` (the label wins over the
 * annotation; only "true"/"false" count) → neverInjectSelector → alwaysInjectSelector → policy.
 */
export function injectRequired(
  settings: PolicySettings,
  spec: Pick<PodSpec, 'hostNetwork'>,
  metadata: Pick<ObjectMeta, 'namespace' | 'labels' | 'annotations'>,
): InjectDecision {
  if (spec.hostNetwork === true) return { inject: false, reason: 'pod uses host networking' };
  const namespace = metadata.namespace ?? '';
  if (settings.ignoredNamespaces.includes(namespace)) {
    return { inject: false, reason: `namespace ${namespace} is never injected` };
  }
  const labels = metadata.labels ?? {};
  const annotations = metadata.annotations ?? {};
  let requested = annotations['sidecar.istio.io/inject'] ?? '';
  if (Object.prototype.hasOwnProperty.call(labels, 'sidecar.istio.io/inject')) {
    requested = labels['sidecar.istio.io/inject'] ?? '';
  }

  let useDefault = requested !== 'true' && requested !== 'false';
  let inject = requested === 'true';
  let why = `sidecar.istio.io/inject is "${requested}"`;
  if (useDefault) {
    const never = settings.neverInjectSelector.find((s) => !isEmptySelector(s) && selectorMatches(s, labels));
    if (never) {
      useDefault = false;
      inject = false;
      why = 'pod labels match neverInjectSelector';
    }
  }
  if (useDefault) {
    const always = settings.alwaysInjectSelector.find(
      (s) => !isEmptySelector(s) && selectorMatches(s, labels),
    );
    if (always) {
      useDefault = false;
      inject = true;
    }
  }
  switch (settings.policy) {
    case 'enabled':
      return useDefault || inject ? { inject: true } : { inject: false, reason: why };
    case 'disabled':
      if (useDefault) return { inject: false, reason: 'injection policy is disabled' };
      return inject ? { inject: true } : { inject: false, reason: why };
    default:
      return { inject: false, reason: `invalid injection policy ${String(settings.policy)}` };
  }
}
