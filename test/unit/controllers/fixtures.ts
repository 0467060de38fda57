// Builders for the custom resources the controller tests start from (parsed, so schema defaults apply).
import {
  type ControlPlaneRevision,
  ControlPlaneRevisionSchema,
  type ControlPlaneRevisionSpecInput,
} from '../../../src/crds/controlplanerevision.js';
import { type RevisionTag, RevisionTagSchema } from '../../../src/crds/revisiontag.js';
import type { DesiredObject } from '../../../src/controllers/common/objects.js';

export function revision(
  name: string,
  spec: Partial<ControlPlaneRevisionSpecInput> = {},
): ControlPlaneRevision {
  return ControlPlaneRevisionSchema.parse({
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'ControlPlaneRevision',
    metadata: { name, uid: `uid-${name}`, generation: 1 },
    spec: { version: '1.29.6', ...spec },
  });
}

export function tag(name: string, target: string): RevisionTag {
  return RevisionTagSchema.parse({
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'RevisionTag',
    metadata: { name, uid: `uid-tag-${name}`, generation: 1 },
    spec: { revision: target },
  });
}

export const INJECTOR = { serviceName: 'meshrev-injector', serviceNamespace: 'meshrev-system', port: 443 };

export function only(objects: DesiredObject[], kind: string): DesiredObject {
  const matching = objects.filter((object) => object.kind === kind);
  if (matching.length !== 1) throw new Error(`expected exactly one ${kind}, found ${matching.length}`);
  return matching[0]!;
}

/** Reads a nested field of a desired object by path, for assertions. */
export function at(object: unknown, ...path: Array<string | number>): unknown {
  let current: unknown = object;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}
