// An in-memory API server behind the KubeClient interface, for the controller shells' unit tests: get,
// list and watch (so real Informers and OwnedObjectCaches run on it), create, apply, status apply and
// delete, with every write recorded, injectable failures, and a hook to play kube-apiserver's defaulting.
import type { Logger } from 'pino';
import pino from 'pino';

import { OwnedObjectCaches } from '../../../src/controllers/owned.js';
import type { ReconcileContext } from '../../../src/runtime/controller.js';
import { Informer, kubeListWatcher } from '../../../src/runtime/informer.js';
import {
  ApiError,
  KubeClient,
  type ApplyOptions,
  type DeleteOptions,
  type ListOptions,
  type WatchOptions,
  type WriteOptions,
} from '../../../src/runtime/kube.js';
import type { ObjectRef, ResourceType } from '../../../src/runtime/resources.js';
import type { KubeObject, ObjectList, WatchEvent } from '../../../src/runtime/types.js';

export type Stored = KubeObject & Record<string, unknown>;

export type WriteVerb = 'create' | 'apply' | 'applyStatus' | 'delete';

export interface RecordedWrite {
  verb: WriteVerb;
  /** `apiVersion/kind/[namespace/]name`, like objectKey of desired objects. */
  key: string;
  body?: unknown;
}

interface Watcher {
  type: ResourceType;
  namespace: string | undefined;
  labelSelector: string | undefined;
  onEvent: (event: WatchEvent<KubeObject>) => void;
}

export const silentLogger: Logger = pino({ level: 'silent' });

export function keyOf(ref: {
  apiVersion?: string;
  kind?: string;
  namespace?: string | undefined;
  name?: string;
}): string {
  return `${ref.apiVersion ?? ''}/${ref.kind ?? ''}/${ref.namespace ? `${ref.namespace}/` : ''}${ref.name ?? ''}`;
}

function matchesSelector(obj: KubeObject, selector: string | undefined): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [key = '', value] = term.split('=');
    return obj.metadata?.labels?.[key] === value;
  });
}

export class FakeKube extends KubeClient {
  readonly writes: RecordedWrite[] = [];
  private readonly store = new Map<string, Stored>();
  private readonly watchers = new Set<Watcher>();
  /** Every event with the resourceVersion it happened at, so a watch resumes without losing any. */
  private readonly history: { version: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: Stored }[] =
    [];
  private readonly failures: { verb: WriteVerb | 'get'; match: (key: string) => boolean; error: Error }[] =
    [];
  private version = 100;
  private uids = 0;
  /** Plays kube-apiserver's defaulting/normalisation on every stored object (identity by default). */
  normalise: (obj: Stored) => Stored = (obj) => obj;

  constructor() {
    super({ server: 'http://fake-apiserver.invalid' });
  }

  // --- test controls (none of them counts as a write) ---

  /** Stores objects as if someone else created them (uid, resourceVersion, creationTimestamp filled in). */
  seed(...objects: KubeObject[]): Stored[] {
    return objects.map((object) => {
      const stored = structuredClone(object) as Stored;
      stored.metadata = {
        uid: `uid-${++this.uids}`,
        creationTimestamp: '2025-01-01T00:00:00Z',
        generation: 1,
        ...stored.metadata,
        resourceVersion: String(++this.version),
      };
      return this.put(stored);
    });
  }

  /** A hand edit by another actor: `edit` changes a copy, which is stored and watched. */
  edit(ref: ObjectRef, edit: (obj: Stored) => void): Stored {
    const found = this.find(ref);
    if (!found) throw new Error(`no ${keyOf(ref)} to edit`);
    const copy = structuredClone(found);
    edit(copy);
    copy.metadata = { ...copy.metadata, resourceVersion: String(++this.version) };
    return this.put(copy);
  }

  /** A hand deletion by another actor. */
  remove(ref: ObjectRef): void {
    const found = this.find(ref);
    if (!found) return;
    this.store.delete(keyOf(ref));
    this.emit('DELETED', found);
  }

  find(ref: {
    apiVersion: string;
    kind: string;
    namespace?: string | undefined;
    name: string;
  }): Stored | undefined {
    const found = this.store.get(keyOf(ref));
    return found === undefined ? undefined : structuredClone(found);
  }

  all(type: ResourceType): Stored[] {
    return [...this.store.values()].filter((o) => o.apiVersion === type.apiVersion && o.kind === type.kind);
  }

  /** The next `verb` on an object whose key `match`es fails with `error` (once). */
  failNext(verb: WriteVerb | 'get', match: (key: string) => boolean, error: Error): void {
    this.failures.push({ verb, match, error });
  }

  writesOf(verb: WriteVerb): RecordedWrite[] {
    return this.writes.filter((w) => w.verb === verb);
  }

  override writeCount(): number {
    return this.writes.length;
  }

  // --- KubeClient ---

  override async get<T = KubeObject>(ref: ObjectRef): Promise<T> {
    this.maybeFail('get', keyOf(ref));
    const found = this.find(ref);
    if (found === undefined) throw new ApiError(404, 'NotFound', `${ref.kind} "${ref.name}" not found`);
    return found as unknown as T;
  }

  override async list<T = KubeObject>(res: ResourceType, options: ListOptions = {}): Promise<ObjectList<T>> {
    const items = this.all(res)
      .filter((o) => options.namespace === undefined || o.metadata?.namespace === options.namespace)
      .filter((o) => matchesSelector(o, options.labelSelector))
      .map((o) => {
        // Like the API server, list items carry no apiVersion/kind.
        const { apiVersion: _v, kind: _k, ...rest } = structuredClone(o);
        return rest;
      });
    return { items: items as unknown as T[], metadata: { resourceVersion: String(this.version) } };
  }

  override async watch<T = KubeObject>(
    res: ResourceType,
    options: WatchOptions,
    onEvent: (event: WatchEvent<T>) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const watcher: Watcher = {
      type: { apiVersion: res.apiVersion, kind: res.kind },
      namespace: options.namespace,
      labelSelector: options.labelSelector,
      onEvent: onEvent as (event: WatchEvent<KubeObject>) => void,
    };
    const from = Number(options.resourceVersion ?? this.version);
    for (const event of this.history) {
      if (event.version > from) this.deliver(watcher, event.type, event.object);
    }
    this.watchers.add(watcher);
    await new Promise<void>((resolve) => {
      if (signal?.aborted) resolve();
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    this.watchers.delete(watcher);
  }

  override async create<T extends KubeObject>(obj: T, options: WriteOptions = {}): Promise<T> {
    const key = keyOf({ ...obj.metadata, apiVersion: obj.apiVersion, kind: obj.kind });
    this.writes.push({ verb: 'create', key, body: structuredClone(obj) });
    this.maybeFail('create', key);
    if (this.store.has(key))
      throw new ApiError(409, 'AlreadyExists', `${obj.kind} "${obj.metadata?.name}" already exists`);
    const stored = structuredClone(obj) as unknown as Stored;
    stored.metadata = {
      ...stored.metadata,
      uid: `uid-${++this.uids}`,
      creationTimestamp: '2025-01-01T00:00:00Z',
      generation: 1,
      resourceVersion: String(++this.version),
    };
    if (options.dryRun) return stored as unknown as T;
    return this.put(stored) as unknown as T;
  }

  /** Server-side apply, simplified: the applied top-level fields replace the stored ones; metadata merges. */
  override async apply<T extends KubeObject>(obj: T, _options: ApplyOptions): Promise<T> {
    const key = keyOf({ ...obj.metadata, apiVersion: obj.apiVersion, kind: obj.kind });
    this.writes.push({ verb: 'apply', key, body: structuredClone(obj) });
    this.maybeFail('apply', key);
    const existing = this.store.get(key);
    const applied = structuredClone(obj) as unknown as Stored;
    const stored: Stored = {
      ...(existing ?? {}),
      ...applied,
      metadata: {
        ...existing?.metadata,
        ...applied.metadata,
        labels: { ...existing?.metadata?.labels, ...applied.metadata?.labels },
        annotations: { ...existing?.metadata?.annotations, ...applied.metadata?.annotations },
        uid: existing?.metadata?.uid ?? `uid-${++this.uids}`,
        creationTimestamp: existing?.metadata?.creationTimestamp ?? '2025-01-01T00:00:00Z',
        resourceVersion: String(++this.version),
      },
      ...(existing && 'status' in existing ? { status: existing.status } : {}),
    };
    return this.put(stored) as unknown as T;
  }

  override async applyStatus<T extends KubeObject>(obj: T, _options: ApplyOptions): Promise<T> {
    const key = keyOf({ ...obj.metadata, apiVersion: obj.apiVersion, kind: obj.kind });
    this.writes.push({ verb: 'applyStatus', key, body: structuredClone(obj) });
    this.maybeFail('applyStatus', key);
    const existing = this.store.get(key);
    if (!existing) throw new ApiError(404, 'NotFound', `${obj.kind} "${obj.metadata?.name}" not found`);
    const stored: Stored = {
      ...existing,
      status: structuredClone((obj as Stored).status),
      metadata: { ...existing.metadata, resourceVersion: String(++this.version) },
    };
    return this.put(stored) as unknown as T;
  }

  override async delete(ref: ObjectRef, options: DeleteOptions = {}): Promise<unknown> {
    const key = keyOf(ref);
    this.writes.push({ verb: 'delete', key });
    this.maybeFail('delete', key);
    const existing = this.store.get(key);
    if (!existing) throw new ApiError(404, 'NotFound', `${ref.kind} "${ref.name}" not found`);
    if (options.preconditions?.uid !== undefined && options.preconditions.uid !== existing.metadata?.uid) {
      throw new ApiError(409, 'Conflict', 'Precondition failed: UID in precondition does not match');
    }
    this.store.delete(key);
    this.emit('DELETED', existing);
    return { kind: 'Status', status: 'Success' };
  }

  // --- internals ---

  private maybeFail(verb: WriteVerb | 'get', key: string): void {
    const index = this.failures.findIndex((f) => f.verb === verb && f.match(key));
    if (index < 0) return;
    const [failure] = this.failures.splice(index, 1);
    if (failure) throw failure.error;
  }

  private put(obj: Stored): Stored {
    const normalised = this.normalise(obj);
    const key = keyOf({ ...normalised.metadata, apiVersion: normalised.apiVersion, kind: normalised.kind });
    const existed = this.store.has(key);
    this.store.set(key, normalised);
    this.emit(existed ? 'MODIFIED' : 'ADDED', normalised);
    return structuredClone(normalised);
  }

  private emit(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: Stored): void {
    const version =
      type === 'DELETED' ? ++this.version : Number(obj.metadata?.resourceVersion ?? this.version);
    const object =
      type === 'DELETED' ? { ...obj, metadata: { ...obj.metadata, resourceVersion: String(version) } } : obj;
    this.history.push({ version, type, object: structuredClone(object) });
    for (const w of this.watchers) this.deliver(w, type, object);
  }

  private deliver(w: Watcher, type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: Stored): void {
    if (w.type.apiVersion !== obj.apiVersion || w.type.kind !== obj.kind) return;
    if (w.namespace !== undefined && obj.metadata?.namespace !== w.namespace) return;
    if (!matchesSelector(obj, w.labelSelector)) return;
    w.onEvent({ type, object: structuredClone(obj) });
  }
}

/** A started, synced Informer of one resource on the fake API server; stop it with `stopAll`. */
export async function syncedInformer(
  kube: FakeKube,
  type: ResourceType,
  started: { stop(): Promise<void> }[],
): Promise<Informer> {
  const informer = new Informer({
    resource: `${type.apiVersion}/${type.kind}`,
    listWatcher: kubeListWatcher(kube, type),
  });
  informer.start();
  started.push(informer);
  await informer.waitForSync();
  return informer;
}

/** Waits until `condition` holds (informer events are delivered synchronously, so a few turns suffice). */
export async function eventually(condition: () => boolean, what: string, timeoutMs = 2_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for: ${what}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Real owned-object caches on the fake API server, started and synced; stop them with `stopCaches`. */
export async function startedCaches(kube: FakeKube): Promise<OwnedObjectCaches> {
  const caches = new OwnedObjectCaches(kube, silentLogger);
  for (const informer of caches.all()) informer.start();
  await Promise.all(caches.all().map((i) => i.waitForSync()));
  return caches;
}

export async function stopCaches(caches: OwnedObjectCaches | undefined): Promise<void> {
  await Promise.all((caches?.all() ?? []).map((i) => i.stop()));
}

/** A ReconcileContext for calling a reconciler directly. */
export function reconcileContext(): ReconcileContext {
  return { reconcileID: 'test', logger: silentLogger, signal: new AbortController().signal, retries: 0 };
}

/** `get` by name over the fake API server's objects of one kind, as the reconcilers read their informers. */
export function lookup(
  kube: FakeKube,
  type: ResourceType,
): { get(name: string): KubeObject | undefined; list(): KubeObject[] } {
  return {
    get: (name) => kube.find({ ...type, name }),
    list: () => kube.all(type),
  };
}
