// Deciding whether an owned object needs a write, without writing. Steady state must cost zero writes,
// so the reconcilers apply an object only when
//   - it does not exist,
//   - the desired object changed (a hash of it is kept in an annotation, so fields meshrev stopped
//     setting are removed by the next server-side apply), or
//   - someone edited a field meshrev sets (drift): every desired field must be present in the live object
//     with an equal value; fields added by the API server's defaulting or by other managers are ignored.
import { createHash } from 'node:crypto';

import type { DesiredObject } from './common/objects.js';
import type { KubeObject } from '../runtime/types.js';

export const DESIRED_HASH_ANNOTATION = 'meshrev.dev/desired-hash';

/** Stable JSON: object keys sorted, so equal objects hash equally whatever their construction order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** What the hash annotation is kept on: any desired object (owned objects, and meshrev-validation, which has none). */
type Hashable = Pick<DesiredObject, 'apiVersion' | 'kind'> & {
  metadata: { annotations?: Record<string, string> | undefined };
};

export function desiredHash(obj: Hashable): string {
  return createHash('sha256').update(canonicalJson(obj)).digest('hex').slice(0, 16);
}

/** The desired object with its hash annotation, ready to apply. */
export function withDesiredHash<T extends Hashable>(obj: T): T {
  const hash = desiredHash(obj);
  return {
    ...obj,
    metadata: {
      ...obj.metadata,
      annotations: { ...(obj.metadata.annotations ?? {}), [DESIRED_HASH_ANNOTATION]: hash },
    },
  };
}

export type ApplyReason = 'create' | 'changed' | 'drift';

/** Why `desired` (already carrying its hash) must be applied over `live`, or undefined when it need not be. */
export function applyReason(desired: Hashable, live: KubeObject | undefined): ApplyReason | undefined {
  if (live === undefined) return 'create';
  const want = desired.metadata.annotations?.[DESIRED_HASH_ANNOTATION];
  if (live.metadata?.annotations?.[DESIRED_HASH_ANNOTATION] !== want) return 'changed';
  // List responses carry no apiVersion/kind on their items; the informer's key already matched them.
  const { apiVersion: _apiVersion, kind: _kind, ...fields } = desired;
  return isSubset(fields, live) ? undefined : 'drift';
}

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei))?$/;
const SUFFIX: Record<string, number> = {
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** Kubernetes re-serialises quantities canonically (`2048Mi` → `2Gi`); compare their values. */
export function quantityValue(text: string): number | undefined {
  const m = QUANTITY.exec(text);
  if (!m) return undefined;
  const base = Number(m[1]);
  if (m[2]) return base * 10 ** Number(m[2].slice(1));
  return base * (m[3] ? (SUFFIX[m[3]] ?? 1) : 1);
}

function scalarEqual(desired: unknown, live: unknown): boolean {
  if (desired === live) return true;
  if (typeof desired === 'string' && typeof live === 'string') {
    const a = quantityValue(desired);
    const b = quantityValue(live);
    return a !== undefined && b !== undefined && Math.abs(a - b) <= Math.abs(a) * 1e-9;
  }
  return false;
}

function isZeroValue(value: unknown): boolean {
  return value === null || value === '' || value === 0 || value === false || isEmptyContainer(value);
}

function isEmptyContainer(value: unknown): boolean {
  if (Array.isArray(value)) return value.length === 0;
  return value !== null && typeof value === 'object' && Object.keys(value).length === 0;
}

function keyedByName(list: unknown[]): Map<string, unknown> | undefined {
  const map = new Map<string, unknown>();
  for (const item of list) {
    if (item === null || typeof item !== 'object') return undefined;
    const name = (item as Record<string, unknown>).name;
    if (typeof name !== 'string' || map.has(name)) return undefined;
    map.set(name, item);
  }
  return map;
}

/**
 * Whether every field of `desired` is in `live` with an equal value. Lists of named items (containers,
 * env, ports, webhooks) match by name, so items other managers add are ignored; other lists match by
 * position and length.
 */
export function isSubset(desired: unknown, live: unknown): boolean {
  return firstDifference(desired, live) === undefined;
}

/** The path of the first desired field `live` lacks or differs in (for drift logs), or undefined. */
export function firstDifference(desired: unknown, live: unknown, path = ''): string | undefined {
  if (desired === undefined) return undefined;
  // The API server omits zero values (Go `omitempty`): `value: ""` comes back as no value at all.
  if (live === undefined || live === null) return isZeroValue(desired) ? undefined : path || '.';
  if (Array.isArray(desired)) {
    if (!Array.isArray(live)) return path;
    const desiredByName = keyedByName(desired);
    const liveByName = desiredByName && keyedByName(live);
    if (desiredByName && liveByName) {
      for (const [name, item] of desiredByName) {
        const diff = firstDifference(item, liveByName.get(name), `${path}[${name}]`);
        if (diff !== undefined) return diff;
      }
      return undefined;
    }
    if (desired.length !== live.length) return `${path}.length`;
    for (let i = 0; i < desired.length; i++) {
      const diff = firstDifference(desired[i], live[i], `${path}[${i}]`);
      if (diff !== undefined) return diff;
    }
    return undefined;
  }
  if (desired !== null && typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return path;
    const liveRecord = live as Record<string, unknown>;
    for (const [k, v] of Object.entries(desired as Record<string, unknown>)) {
      const diff = firstDifference(v, liveRecord[k], `${path}.${k}`);
      if (diff !== undefined) return diff;
    }
    return undefined;
  }
  return scalarEqual(desired, live) ? undefined : path;
}

/** `apiVersion/kind/[namespace/]name` of a live object, matching `objectKey` of desired objects. */
export function liveObjectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace ? `${obj.metadata.namespace}/` : '';
  return `${obj.apiVersion ?? ''}/${obj.kind ?? ''}/${ns}${obj.metadata?.name ?? ''}`;
}

/** Whether `live` is controlled by the owner with `uid` (so meshrev may change or delete it). */
export function isControlledBy(live: KubeObject, uid: string | undefined): boolean {
  return (live.metadata?.ownerReferences ?? []).some((ref) => ref.controller === true && ref.uid === uid);
}
