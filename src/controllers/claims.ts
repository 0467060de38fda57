// A revision and a tag with the same name would both render webhooks matching istio.io/rev=<name>, and
// a pod would match two webhooks. The older object keeps the name; the younger is reported and
// renders nothing until the conflict is resolved.
import type { KubeObject } from '../runtime/types.js';

interface Lookup {
  get(key: string): KubeObject | undefined;
}

export type Claimant = 'revision' | 'tag';

/** Which kind of object owns `name`, or undefined when neither exists. Ties go to the revision. */
export function nameClaim(name: string, revisions: Lookup, tags: Lookup): Claimant | undefined {
  const revision = revisions.get(name);
  const tag = tags.get(name);
  if (!revision) return tag ? 'tag' : undefined;
  if (!tag) return 'revision';
  const r = Date.parse(revision.metadata?.creationTimestamp ?? '');
  const t = Date.parse(tag.metadata?.creationTimestamp ?? '');
  return !Number.isNaN(t) && (Number.isNaN(r) || t < r) ? 'tag' : 'revision';
}
