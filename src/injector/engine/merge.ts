// The subset of Kubernetes strategic merge patch istiod relies on when it overlays injection templates and user
// container overrides onto a Pod: maps merge recursively, `null` deletes, lists of objects merge by their patch
// merge key (containers/volumes/env by name, ports by containerPort, mounts by mountPath), other lists are
// replaced. Results are copy-on-write: untouched subtrees keep their identity, which the patch builder relies on.
import { isObject, type JsonObject } from './types.js';

/** Patch merge keys of corev1.Pod lists, by the name of the field holding the list. */
const MERGE_KEYS: Readonly<Record<string, string>> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  imagePullSecrets: 'name',
  env: 'name',
  ports: 'containerPort',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  resizePolicy: 'resourceName',
  hostAliases: 'ip',
  resourceClaims: 'name',
  schedulingGates: 'name',
  ownerReferences: 'uid',
};

/**
 * Merges a list by its merge key the way apimachinery orders the result: patch items in patch order,
 * interleaved with the items only the original has (in original order) so that an original-only item goes
 * before a patch item that also existed in the original and came later there; new patch items go first.
 */
function mergeList(original: readonly unknown[], patch: readonly unknown[], mergeKey: string): unknown[] {
  if (patch.length === 0) return original as unknown[];
  const merged: unknown[] = original.slice();
  const position = new Map<unknown, number>();
  const originalIndex = new Map<unknown, number>();
  original.forEach((element, index) => {
    if (!isObject(element)) return;
    const key = element[mergeKey];
    if (!position.has(key)) {
      position.set(key, index);
      originalIndex.set(key, index);
    }
  });
  const patchKeys: unknown[] = [];
  const inPatch = new Set<unknown>();
  const deleted = new Set<unknown>();
  for (const element of patch) {
    if (!isObject(element)) continue;
    const key = element[mergeKey];
    if (element['$patch'] === 'delete') {
      deleted.add(key);
      continue;
    }
    if (!inPatch.has(key)) {
      inPatch.add(key);
      patchKeys.push(key);
    }
    const at = position.get(key);
    if (at !== undefined && isObject(merged[at])) {
      merged[at] = strategicMerge(merged[at] as JsonObject, element);
    } else {
      position.set(key, merged.length);
      merged.push(stripDirectives(element));
    }
  }
  const keyOf = (element: unknown): unknown => (isObject(element) ? element[mergeKey] : undefined);
  const right = patchKeys.filter((k) => !deleted.has(k)).map((k) => merged[position.get(k) ?? -1]);
  const left = original.filter((e) => !inPatch.has(keyOf(e)) && !deleted.has(keyOf(e)));
  const result: unknown[] = [];
  let i = 0;
  let j = 0;
  while (i < left.length || j < right.length) {
    if (j >= right.length) result.push(left[i++]);
    else if (i >= left.length) result.push(right[j++]);
    else {
      const li = originalIndex.get(keyOf(left[i]));
      const ri = originalIndex.get(keyOf(right[j]));
      if (li !== undefined && ri !== undefined && li < ri) result.push(left[i++]);
      else result.push(right[j++]);
    }
  }
  return result;
}

function stripDirectives(value: JsonObject): JsonObject {
  if (!Object.keys(value).some((k) => k.startsWith('$') || value[k] === null)) return value;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value)) if (!k.startsWith('$') && v !== null) out[k] = v;
  return out;
}

/** Returns `original` with `patch` strategically merged in. Neither input is modified. */
export function strategicMerge<T extends JsonObject>(original: T, patch: JsonObject): T {
  if (patch['$patch'] === 'replace') return stripDirectives(patch) as T;
  let out: JsonObject | undefined;
  const write = (key: string, value: unknown): void => {
    out ??= { ...original };
    if (value === undefined) delete out[key];
    else out[key] = value;
  };
  for (const [key, patchValue] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    const current = original[key];
    if (patchValue === null) {
      if (key in original) write(key, undefined);
      continue;
    }
    if (Array.isArray(patchValue)) {
      const mergeKey = MERGE_KEYS[key];
      if (mergeKey !== undefined && Array.isArray(current)) {
        const merged = mergeList(current, patchValue, mergeKey);
        if (merged !== current) write(key, merged);
      } else if (mergeKey !== undefined) {
        write(
          key,
          patchValue.map((e) => (isObject(e) ? stripDirectives(e) : e)),
        );
      } else {
        write(key, patchValue);
      }
      continue;
    }
    if (isObject(patchValue)) {
      write(key, isObject(current) ? strategicMerge(current, patchValue) : stripDirectives(patchValue));
      continue;
    }
    if (current !== patchValue) write(key, patchValue);
  }
  return (out ?? original) as T;
}
