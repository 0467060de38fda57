/**
 * The MutatingWebhookConfiguration a RevisionTag becomes, as pure data: Istio's `revision-tags-mwc.yaml`
 * (and `istioctl tag set`) for tag `<tag>` pointing at revision `<target>`, routed to meshrev's embedded
 * injector with the target revision's settings.
 */
import type { V1MutatingWebhookConfiguration } from '@kubernetes/client-node';

import type { RevisionTag } from '../../crds/revisiontag.js';
import { pilotComponentLabels, TAG_LABEL } from '../common/labels.js';
import { injectionPath, tagWebhookConfigurationName } from '../common/names.js';
import type { DesiredObject } from '../common/objects.js';
import { controllerOwnerReference } from '../common/owner.js';
import {
  DEFAULT_INJECTION_WEBHOOK_SETTINGS,
  DEFAULT_SELECTOR_NAME,
  injectionWebhooks,
  injectorClientConfig,
  type InjectionWebhookSettings,
  type InjectorEndpoint,
} from '../common/webhooks.js';

/** The tag that also serves the legacy `istio-injection=enabled` and `sidecar.istio.io/inject=true` selectors. */
export const DEFAULT_TAG = DEFAULT_SELECTOR_NAME;

export interface TagBuildContext {
  /** The injector Service in front of meshrev's embedded injector. */
  injector: InjectorEndpoint;
  /** Base64 PEM of the injector's CA; the key is left out of the webhooks while it is unknown. */
  caBundle: string | undefined;
  /** Name of this meshrev instance, shown where Istio's charts show the Helm release. */
  operatorName: string;
  /** The target revision's webhook settings (read with readInjectionWebhookSettings); Istio's defaults if unset. */
  webhookSettings?: InjectionWebhookSettings | undefined;
  /** The target revision's resolved version, for the app.kubernetes.io/version label when known. */
  targetVersion?: string | undefined;
}

export function desiredTagObjects(tag: RevisionTag, context: TagBuildContext): DesiredObject[] {
  const tagName = tag.metadata.name;
  const target = tag.spec.revision;
  const settings = context.webhookSettings ?? DEFAULT_INJECTION_WEBHOOK_SETTINGS;
  const clientConfig = injectorClientConfig(context.injector, injectionPath(target), context.caBundle);
  const body: Omit<V1MutatingWebhookConfiguration, 'apiVersion' | 'kind' | 'metadata'> = {
    webhooks: injectionWebhooks(tagName, clientConfig, settings),
  };
  return [
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: {
        name: tagWebhookConfigurationName(tagName),
        labels: {
          [TAG_LABEL]: tagName,
          ...pilotComponentLabels({
            revision: target,
            version: context.targetVersion,
            operatorName: context.operatorName,
            ownerName: tagName,
          }),
          app: 'sidecar-injector',
        },
        ownerReferences: [controllerOwnerReference(tag)],
      },
      ...body,
    },
  ];
}
