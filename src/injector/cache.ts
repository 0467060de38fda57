// A bounded memo of injection verdicts. Pods made by one ReplicaSet (every Deployment scale-up and rollout) reach
// the webhook identical but for one thing: their names, UIDs and timestamps are only filled in after admission,
// and the only per-pod value already there is the random suffix of the service-account token volume
// (`kube-api-access-xxxxx`, added by kube-apiserver's ServiceAccount admission plugin before any webhook). So a
// rollout of N replicas asks the engine the same question N times up to that name. The engine is a pure function
// of the pod and the revision's settings that only copies and compares volume names, so the answer can be kept and
// reused, with the token volume's name renamed (see tokenVolumeName); anything else that changes the answer (the
// settings version, node kubelet versions, the namespace, path parameters) is part of the key. Pods that arrive
// named are never keyed (InjectionService): their reviews do not repeat.
import { hash } from 'node:crypto';

import type { InjectResult } from './admission.js';

/** A kept verdict and the token volume name of the pod it was computed for. */
export interface CachedVerdict {
  result: InjectResult;
  token: string | undefined;
  /** Whether the patch mentions the token volume at all (worked out on first use); if not, it is reused as is. */
  tokenInPatch?: boolean;
}

/** What the ServiceAccount admission plugin names a pod's projected token volume: the prefix and 5 random characters. */
const TOKEN_VOLUME_NAME = /^kube-api-access-[a-z0-9]{5}$/;
/** Stands for the token volume's name in keys; JSON text never contains a raw NUL, so it cannot collide. */
const TOKEN_PLACEHOLDER = '\u0000';

interface PodShape {
  spec?: {
    volumes?: Array<{ name?: unknown; projected?: unknown }>;
    containers?: Array<{ volumeMounts?: Array<{ name?: unknown }> }>;
    initContainers?: Array<{ volumeMounts?: Array<{ name?: unknown }> }>;
    ephemeralContainers?: Array<{ volumeMounts?: Array<{ name?: unknown }> }>;
  };
}

/** The pod's single projected volume named like the ServiceAccount plugin names them, and how many mounts use it. */
function tokenVolumeCandidate(pod: unknown): { name: string; mounts: number } | undefined {
  const spec = (pod as PodShape).spec;
  const volumes = Array.isArray(spec?.volumes) ? spec.volumes : [];
  let name: string | undefined;
  for (const v of volumes) {
    if (typeof v?.name !== 'string' || !TOKEN_VOLUME_NAME.test(v.name) || v.projected === undefined) continue;
    if (name !== undefined) return undefined;
    name = v.name;
  }
  if (name === undefined) return undefined;
  let mounts = 0;
  for (const list of [spec?.containers, spec?.initContainers, spec?.ephemeralContainers]) {
    if (!Array.isArray(list)) continue;
    for (const container of list) {
      const volumeMounts = Array.isArray(container?.volumeMounts) ? container.volumeMounts : [];
      for (const mount of volumeMounts) if (mount?.name === name) mounts += 1;
    }
  }
  return { name, mounts };
}

/**
 * Where `candidate.name` occurs in `text` (outside `[skipFrom, skipTo)`), provided every occurrence is a whole JSON
 * string and there are exactly as many as the volume and its mounts account for; otherwise undefined.
 */
function tokenOccurrences(
  text: string,
  candidate: { name: string; mounts: number },
  skipFrom = -1,
  skipTo = -1,
): number[] | undefined {
  const at: number[] = [];
  for (let i = text.indexOf(candidate.name); i !== -1; i = text.indexOf(candidate.name, i + 1)) {
    if (i >= skipFrom && i < skipTo) continue;
    if (text.charCodeAt(i - 1) !== 0x22 || text.charCodeAt(i + candidate.name.length) !== 0x22)
      return undefined;
    at.push(i);
  }
  return at.length === 1 + candidate.mounts ? at : undefined;
}

/**
 * The pod's service-account token volume name when it can be renamed safely: exactly one projected volume named
 * like the plugin names them, and the name occurs in the serialised pod nowhere but as that volume's name and as
 * volume mounts' names (so renaming it cannot change an annotation, a label or anything the engine sorts).
 */
export function tokenVolumeName(pod: unknown, podJson: string): string | undefined {
  const candidate = tokenVolumeCandidate(pod);
  return candidate !== undefined && tokenOccurrences(podJson, candidate) !== undefined
    ? candidate.name
    : undefined;
}

/** The cached verdict as it applies to a pod whose token volume is called `token`. */
export function verdictFor(entry: CachedVerdict, token: string | undefined): InjectResult {
  const { result } = entry;
  if (
    result.kind !== 'injected' ||
    entry.token === undefined ||
    token === undefined ||
    entry.token === token
  ) {
    return result;
  }
  const original = result.patchJson ?? JSON.stringify(result.patch);
  entry.tokenInPatch ??= original.includes(entry.token);
  // The same result object again lets the reply reuse its encoding (see handleAdmission).
  if (!entry.tokenInPatch) return result;
  return injectedFromJson(original.split(entry.token).join(token));
}

/**
 * An injection verdict held as its serialised patch only: one string for the garbage collector instead of the
 * patch's object graph (a full cache of those, churning under distinct pods, made every collection slower). The
 * parsed patch is built only if someone asks for it; replies use `patchJson`.
 *
 * A class rather than an object literal with a getter: V8 gives every such literal its own getter closure, and what
 * that closure holds outlives young-generation collections (in a loop, 59% of the strings such literals captured were
 * promoted to the old generation, 4% with this class). Each verdict's patch text was promoted with it and left for a
 * mark-compact: with distinct pods at 1,000/s, about 6 KB per pod and a mark-compact every second or so.
 */
class SerialisedVerdict {
  readonly kind = 'injected';
  patchBase64?: Buffer;
  private parsed: unknown[] | undefined;

  constructor(readonly patchJson: string) {}

  get patch(): unknown[] {
    this.parsed ??= JSON.parse(this.patchJson) as unknown[];
    return this.parsed;
  }
}

export function injectedFromJson(patchJson: string): Extract<InjectResult, { kind: 'injected' }> {
  return new SerialisedVerdict(patchJson);
}

export interface InjectionCacheLimits {
  /** Most verdicts kept (keys are short digests); the least recently used goes first. */
  maxEntries: number;
  /** Reviews longer than this are never cached (hashing them would cost more than it saves). */
  maxReviewChars: number;
}

export const DEFAULT_INJECTION_CACHE_LIMITS: InjectionCacheLimits = {
  maxEntries: 256,
  maxReviewChars: 64 * 1024,
};

export interface InjectionCacheStats {
  entries: number;
  hits: number;
  misses: number;
}

/**
 * Verdicts are kept only for keys that come round a second time (a "doorkeeper"): a pod seen once (a bare pod, a
 * StatefulSet's, the first replica of a ReplicaSet) leaves just its key behind, and its verdict is kept when a
 * second identical pod asks while the key is still remembered. Keeping every first verdict cost more than it saved
 * under traffic that never repeats: each one is a patch of several KB plus its encoding that outlives a
 * young-generation collection only to be evicted, so the collector copied and promoted them all (distinct small
 * pods, closed loop, median of 3 alternating runs: 643 µs of server CPU per request with every verdict kept, 586 µs
 * with the doorkeeper). The price is one more engine run per ReplicaSet: its second replica is computed again.
 */
export class InjectionCache {
  private readonly entries = new Map<string, CachedVerdict>();
  /** Keys seen once, oldest first; as many are remembered as verdicts may be kept (maxEntries). */
  private readonly seenOnce = new Set<string>();
  private hitCount = 0;
  private missCount = 0;

  constructor(private readonly limits: InjectionCacheLimits = DEFAULT_INJECTION_CACHE_LIMITS) {}

  /** The cached verdict for `key`, marking it recently used. */
  get(key: string): CachedVerdict | undefined {
    const found = this.entries.get(key);
    if (found === undefined) {
      this.missCount += 1;
      return undefined;
    }
    this.hitCount += 1;
    this.entries.delete(key);
    this.entries.set(key, found);
    return found;
  }

  /**
   * Offers the verdict computed after a miss on `key`: kept if the key was seen before, otherwise only the key is
   * remembered (`verdict` is not called). Returns whether the verdict was kept.
   */
  offer(key: string, verdict: () => CachedVerdict): boolean {
    if (!this.entries.has(key) && !this.seenOnce.delete(key)) {
      this.seenOnce.add(key);
      if (this.seenOnce.size > this.limits.maxEntries) {
        for (const oldest of this.seenOnce) {
          this.seenOnce.delete(oldest);
          break;
        }
      }
      return false;
    }
    this.entries.delete(key);
    this.entries.set(key, verdict());
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.limits.maxEntries) break;
      this.entries.delete(oldest);
    }
    return true;
  }

  acceptsReview(chars: number): boolean {
    return chars <= this.limits.maxReviewChars && this.limits.maxEntries > 0;
  }

  stats(): InjectionCacheStats {
    return { entries: this.entries.size, hits: this.hitCount, misses: this.missCount };
  }
}

/** The end (exclusive) of the JSON value starting at `start` in `text`, or -1; strings and escapes are skipped. */
function endOfJsonValue(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i += 1; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) depth += 1;
    else if (c === 0x5d || c === 0x7d) {
      depth -= 1;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** The only index of `needle` in `text`, or -1 when it occurs never or more than once. */
function onlyIndexOf(text: string, needle: string): number {
  const first = text.indexOf(needle);
  if (first === -1 || text.indexOf(needle, first + 1) !== -1) return -1;
  return first;
}

/**
 * The cache key of an AdmissionReview, computed from its text rather than by serialising the parsed pod again
 * (which cost as much as parsing it). Two reviews get the same key only if their texts are equal once three spans
 * are cut out, at the same offsets: the request uid (new for every request), the pod's `managedFields` (their
 * timestamps differ between replicas created in different seconds; the engine never reads them) and the token
 * volume's name (renamed in the verdict). Anything else that differs, even whitespace, is a miss. When a span
 * cannot be found unambiguously (the uid or `"managedFields":` occurring more than once) the review is not cached.
 * The text is hashed (SHA-256) so the key stays short; the review has already been parsed and validated.
 */
export function reviewCacheKey(
  text: string,
  requestUid: string,
  pod: unknown,
  /**
   * Whether the token volume's name is cut out (and renamed in a cached verdict). Not with custom templates: they
   * may transform the name (`upper`, `sha256sum`, `sortAlpha` over the volumes…) where the rename cannot follow.
   */
  renameToken = true,
): { digest: string; token: string | undefined } | undefined {
  const uidField = `"uid":${JSON.stringify(requestUid)}`;
  const uidAt = onlyIndexOf(text, uidField);
  if (uidAt === -1) return undefined;
  // Cuts as [from, to, replacement], in text order once sorted.
  const cuts: Array<[number, number, string]> = [[uidAt, uidAt + uidField.length, '\u0001']];
  const managedFields = '"managedFields":';
  let fieldsFrom = -1;
  let fieldsTo = -1;
  const fieldAt = text.indexOf(managedFields);
  if (fieldAt !== -1) {
    if (text.indexOf(managedFields, fieldAt + 1) !== -1) return undefined;
    fieldsFrom = fieldAt + managedFields.length;
    // metadata.managedFields is a list; the key spelled anywhere else (a string-valued map) is left alone.
    if (text.charCodeAt(fieldsFrom) !== 0x5b) return undefined;
    fieldsTo = endOfJsonValue(text, fieldsFrom);
    if (fieldsTo === -1) return undefined;
    cuts.push([fieldsFrom, fieldsTo, '\u0002']);
  }
  const candidate = renameToken ? tokenVolumeCandidate(pod) : undefined;
  let token: string | undefined;
  if (candidate !== undefined) {
    const occurrences = tokenOccurrences(text, candidate, fieldsFrom, fieldsTo);
    if (occurrences !== undefined) {
      token = candidate.name;
      for (const at of occurrences) cuts.push([at, at + candidate.name.length, TOKEN_PLACEHOLDER]);
    }
  }
  cuts.sort((a, b) => a[0] - b[0]);
  let residue = '';
  let from = 0;
  for (const [cutFrom, cutTo, replacement] of cuts) {
    residue += text.slice(from, cutFrom) + replacement;
    from = cutTo;
  }
  residue += text.slice(from);
  // One-shot hashing: a Hash object per review (a native handle the collector must finalise) cost more than the copy.
  return { digest: `${uidAt}/${fieldsFrom}:${hash('sha256', residue, 'base64')}`, token };
}
