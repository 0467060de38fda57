// Label keys Istio and meshrev give meaning to, and the label sets every managed object carries.

export const REVISION_LABEL = 'istio.io/rev';
export const TAG_LABEL = 'istio.io/tag';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'meshrev';
export const INJECTION_LABEL = 'istio-injection';
export const SIDECAR_INJECT_LABEL = 'sidecar.istio.io/inject';

export interface LabelContext {
  revision: string;
  /** The resolved Istio version, published as app.kubernetes.io/version like Istio's charts do. */
  version?: string | undefined;
  /** Identifies the meshrev instance, in the label Istio's charts fill with the Helm release name. */
  operatorName: string;
  /** The owning custom resource, in the label Istio's operator filled with the IstioOperator's name. */
  ownerName: string;
}

/** Istio's `istio.labels` helper, with meshrev as the manager and the revision as the instance. */
export function istioCommonLabels(context: LabelContext): Record<string, string> {
  return {
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    'app.kubernetes.io/instance': context.revision,
    'app.kubernetes.io/part-of': 'istio',
    ...(context.version === undefined ? {} : { 'app.kubernetes.io/version': context.version }),
  };
}

/** Labels Istio's chart puts on istiod's objects (`app: istiod`, release, name) plus the common ones. */
export function istiodObjectLabels(context: LabelContext): Record<string, string> {
  return {
    app: 'istiod',
    release: context.operatorName,
    'app.kubernetes.io/name': 'istiod',
    ...istioCommonLabels(context),
    [REVISION_LABEL]: context.revision,
  };
}

/** Labels of the objects Istio marks as belonging to the Pilot component of a revision. */
export function pilotComponentLabels(context: LabelContext): Record<string, string> {
  return {
    [REVISION_LABEL]: context.revision,
    'install.operator.istio.io/owning-resource': context.ownerName,
    'operator.istio.io/component': 'Pilot',
    release: context.operatorName,
    'app.kubernetes.io/name': 'istiod',
    ...istioCommonLabels(context),
  };
}
