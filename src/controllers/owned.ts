// Informer caches of every kind of object meshrev owns, so reconcilers compare desired objects with
// what exists without a single GET: a steady-state reconcile costs no API request at all.
import type { Logger } from 'pino';

import { Informer, kubeListWatcher } from '../runtime/informer.js';
import type { KubeClient } from '../runtime/kube.js';
import type { KubeObject } from '../runtime/types.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from './common/labels.js';
import { isControlledBy, liveObjectKey } from './sync.js';

/** Kinds a revision or a tag can own, in the order they are created. */
export const OWNED_KINDS: readonly { apiVersion: string; kind: string; namespaced: boolean }[] = [
  { apiVersion: 'v1', kind: 'ServiceAccount', namespaced: true },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', namespaced: false },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', namespaced: false },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', namespaced: true },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', namespaced: true },
  { apiVersion: 'v1', kind: 'ConfigMap', namespaced: true },
  { apiVersion: 'apps/v1', kind: 'Deployment', namespaced: true },
  { apiVersion: 'v1', kind: 'Service', namespaced: true },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', namespaced: true },
  { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', namespaced: true },
  { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', namespaced: false },
];

const typeKey = (apiVersion: string, kind: string): string => `${apiVersion}/${kind}`;

export class OwnedObjectCaches {
  readonly informers = new Map<string, Informer>();

  constructor(client: KubeClient, logger: Logger, onRestart?: (resource: string) => void) {
    for (const type of OWNED_KINDS) {
      const resource = typeKey(type.apiVersion, type.kind);
      // Only objects labelled as meshrev's are cached; conflicts with foreign objects of the same name
      // are found by the apply itself (see conflictCheck in the reconcilers).
      this.informers.set(
        resource,
        new Informer({
          resource,
          listWatcher: kubeListWatcher(client, type, {
            labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
          }),
          logger,
          onRestart: () => onRestart?.(resource),
        }),
      );
    }
  }

  all(): Informer[] {
    return [...this.informers.values()];
  }

  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const informer = this.informers.get(typeKey(apiVersion, kind));
    const obj = informer?.get(namespace ? `${namespace}/${name}` : name);
    if (obj === undefined) return undefined;
    // Items from list responses carry no apiVersion/kind; fill them in so keys compare.
    return { ...obj, apiVersion, kind };
  }

  /** Every cached object controlled by the owner with `uid`. */
  ownedBy(uid: string | undefined): KubeObject[] {
    const result: KubeObject[] = [];
    for (const type of OWNED_KINDS) {
      const informer = this.informers.get(typeKey(type.apiVersion, type.kind));
      for (const obj of informer?.list() ?? []) {
        if (isControlledBy(obj, uid)) result.push({ ...obj, apiVersion: type.apiVersion, kind: type.kind });
      }
    }
    return result;
  }

  keyOf(obj: KubeObject): string {
    return liveObjectKey(obj);
  }
}
