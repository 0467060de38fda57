import type { V1OwnerReference } from '@kubernetes/client-node';

/**
 * A fully specified object meshrev wants to exist, as plain JSON (string timestamps, no class
 * instances), usable directly as a server-side apply body. Assignable to client-node's KubernetesObject.
 */
export interface DesiredObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences: V1OwnerReference[];
  };
  [field: string]: unknown;
}

/** `apiVersion/kind/[namespace/]name`, for logs, maps and test assertions. */
export function objectKey(object: Pick<DesiredObject, 'apiVersion' | 'kind' | 'metadata'>): string {
  const namespace = object.metadata.namespace === undefined ? '' : `${object.metadata.namespace}/`;
  return `${object.apiVersion}/${object.kind}/${namespace}${object.metadata.name}`;
}
