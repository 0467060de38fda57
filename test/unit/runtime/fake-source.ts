// An in-memory list/watch source that plays the API server for informer and controller tests.
import { ApiError } from '../../../src/runtime/kube.js';
import type { ListWatcher } from '../../../src/runtime/informer.js';
import { objectKey, type KubeObject, type ObjectList, type WatchEvent } from '../../../src/runtime/types.js';

export interface ActiveWatch {
  resourceVersion: string;
  allowWatchBookmarks: boolean;
  timeoutSeconds: number;
  emit(event: WatchEvent<KubeObject>): void;
  end(): void;
  fail(err: unknown): void;
}

export function obj(name: string, resourceVersion: string, extra: Partial<KubeObject> = {}): KubeObject {
  const namespace = extra.metadata?.namespace;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    ...extra,
    metadata: { ...extra.metadata, name, resourceVersion, ...(namespace ? { namespace } : {}) },
  };
}

export const gone = () => new ApiError(410, 'Expired', 'too old resource version: 1 (100)');

export class FakeListWatcher implements ListWatcher<KubeObject> {
  readonly objects = new Map<string, KubeObject>();
  resourceVersion = 1;
  pageSize = Infinity;
  listCalls = 0;
  watchCalls: ActiveWatch[] = [];
  private listFailures: unknown[] = [];
  private watchFailures: unknown[] = [];
  private current: ActiveWatch | undefined;

  set(...items: KubeObject[]): void {
    for (const item of items) this.objects.set(objectKey(item), item);
  }

  remove(key: string): void {
    this.objects.delete(key);
  }

  failNextList(err: unknown): void {
    this.listFailures.push(err);
  }

  failNextWatch(err: unknown): void {
    this.watchFailures.push(err);
  }

  get activeWatch(): ActiveWatch | undefined {
    return this.current;
  }

  async list(options: { limit?: number; continue?: string }): Promise<ObjectList<KubeObject>> {
    this.listCalls += 1;
    const failure = this.listFailures.shift();
    if (failure !== undefined) throw failure;
    const all = [...this.objects.values()].sort((a, b) => objectKey(a).localeCompare(objectKey(b)));
    const start = options.continue ? Number(options.continue) : 0;
    const size = Math.min(options.limit ?? Infinity, this.pageSize);
    const end = start + size;
    const items = all.slice(start, end);
    const metadata: ObjectList<KubeObject>['metadata'] = { resourceVersion: String(this.resourceVersion) };
    if (end < all.length) metadata.continue = String(end);
    return { items, metadata };
  }

  watch(
    options: { resourceVersion: string; allowWatchBookmarks: boolean; timeoutSeconds: number },
    onEvent: (event: WatchEvent<KubeObject>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const failure = this.watchFailures.shift();
    return new Promise<void>((resolve, reject) => {
      let open = true;
      const close = () => {
        open = false;
        if (this.current === watch) this.current = undefined;
      };
      const watch: ActiveWatch = {
        ...options,
        emit: (event) => {
          if (open) onEvent(event);
        },
        end: () => {
          close();
          resolve();
        },
        fail: (err) => {
          close();
          reject(err);
        },
      };
      this.watchCalls.push(watch);
      if (failure !== undefined) {
        watch.fail(failure);
        return;
      }
      this.current = watch;
      signal.addEventListener('abort', () => watch.end(), { once: true });
    });
  }
}
