import type { V1OwnerReference } from '@kubernetes/client-node';

export interface OwnerIdentity {
  apiVersion: string;
  kind: string;
  metadata: { name: string; uid?: string | undefined };
}

/** The controller reference that lets the garbage collector delete what meshrev created for `owner`. */
export function controllerOwnerReference(owner: OwnerIdentity): V1OwnerReference {
  const uid = owner.metadata.uid;
  if (uid === undefined || uid === '') {
    // An owner reference without a uid is rejected by the API server; fail here with a clearer message.
    throw new Error(
      `${owner.kind} ${owner.metadata.name} has no uid: owners must be objects read from the API server`,
    );
  }
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}
