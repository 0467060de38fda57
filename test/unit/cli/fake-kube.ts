// An in-memory stand-in for the KubeClient calls the CLI makes, recording every write, plus a CliIO
// with captured output and a manual clock whose sleeps drive a tiny rollout simulator.
import type { CliIO, CliKube } from '../../../src/cli/io.js';
import {
  ApiError,
  type ApplyOptions,
  type DeleteOptions,
  type ListOptions,
  type PatchContentType,
  type PatchOptions,
} from '../../../src/runtime/kube.js';
import type { ObjectRef, ResourceType } from '../../../src/runtime/resources.js';
import { isRecord, type KubeObject, type ObjectList } from '../../../src/runtime/types.js';

export interface RecordedWrite {
  verb: 'patch' | 'apply' | 'delete';
  ref: ObjectRef;
  body?: unknown;
  contentType?: PatchContentType;
  fieldManager?: string;
}

export interface RecordedList {
  kind: string;
  options: ListOptions;
}

type Stored = KubeObject & Record<string, unknown>;

function keyOf(ref: {
  apiVersion: string;
  kind: string;
  namespace?: string | undefined;
  name: string;
}): string {
  return `${ref.apiVersion}|${ref.kind}|${ref.namespace ?? ''}|${ref.name}`;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** RFC 7386 JSON merge patch (strategic merge behaves the same for the map-only patches the CLI sends). */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return clone(patch);
  const result: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

export class FakeKube implements CliKube {
  readonly objects = new Map<string, Stored>();
  readonly writes: RecordedWrite[] = [];
  readonly lists: RecordedList[] = [];
  private version = 100;

  add(...objects: KubeObject[]): this {
    for (const object of objects) {
      const stored = clone(object) as Stored;
      stored.metadata = { resourceVersion: String(++this.version), generation: 1, ...stored.metadata };
      this.objects.set(this.keyOfObject(stored), stored);
    }
    return this;
  }

  find(ref: ObjectRef): Stored | undefined {
    return this.objects.get(keyOf(ref));
  }

  all(type: ResourceType, namespace?: string): Stored[] {
    return [...this.objects.values()].filter(
      (object) =>
        object.apiVersion === type.apiVersion &&
        object.kind === type.kind &&
        (namespace === undefined || object.metadata?.namespace === namespace),
    );
  }

  remove(ref: ObjectRef): void {
    this.objects.delete(keyOf(ref));
  }

  private keyOfObject(object: KubeObject): string {
    return keyOf({
      apiVersion: object.apiVersion ?? '',
      kind: object.kind ?? '',
      namespace: object.metadata?.namespace,
      name: object.metadata?.name ?? '',
    });
  }

  private notFound(ref: ObjectRef): ApiError {
    return new ApiError(404, 'NotFound', `${ref.kind.toLowerCase()}s "${ref.name}" not found`);
  }

  async get<T = KubeObject>(ref: ObjectRef): Promise<T> {
    const found = this.find(ref);
    if (found === undefined) throw this.notFound(ref);
    return clone(found) as unknown as T;
  }

  async getOptional<T = KubeObject>(ref: ObjectRef): Promise<T | undefined> {
    const found = this.find(ref);
    return found === undefined ? undefined : (clone(found) as unknown as T);
  }

  async list<T = KubeObject>(res: ResourceType, options: ListOptions = {}): Promise<ObjectList<T>> {
    this.lists.push({ kind: res.kind, options: { ...options } });
    let items = this.all(res, options.namespace);
    // Equality-based label selectors only (`a=b,c=d`), which is all the CLI sends.
    for (const term of options.labelSelector?.split(',') ?? []) {
      const [key = '', value] = term.split('=');
      items = items.filter((item) => item.metadata?.labels?.[key] === value);
    }
    if (options.fieldSelector?.includes('status.phase!=Succeeded')) {
      items = items.filter((item) => {
        const phase = isRecord(item.status) ? item.status.phase : undefined;
        return phase !== 'Succeeded' && phase !== 'Failed';
      });
    }
    const shaped = items.map((item) =>
      options.metadataOnly
        ? { apiVersion: item.apiVersion, kind: item.kind, metadata: clone(item.metadata) }
        : clone(item),
    );
    return { items: shaped as unknown as T[], metadata: { resourceVersion: String(this.version) } };
  }

  async listAll<T = KubeObject>(
    res: ResourceType,
    options: Omit<ListOptions, 'continue'> = {},
  ): Promise<{ items: T[]; resourceVersion: string }> {
    const page = await this.list<T>(res, options);
    return { items: page.items, resourceVersion: page.metadata?.resourceVersion ?? '' };
  }

  async patch<T = KubeObject>(
    ref: ObjectRef,
    body: unknown,
    contentType: PatchContentType,
    options: PatchOptions = {},
  ): Promise<T> {
    this.writes.push({
      verb: 'patch',
      ref: { ...ref },
      body: clone(body),
      contentType,
      ...(options.fieldManager === undefined ? {} : { fieldManager: options.fieldManager }),
    });
    const found = this.find(ref);
    if (found === undefined) throw this.notFound(ref);
    const wanted = isRecord(body) && isRecord(body.metadata) ? body.metadata.resourceVersion : undefined;
    if (typeof wanted === 'string' && wanted !== found.metadata?.resourceVersion) {
      throw new ApiError(
        409,
        'Conflict',
        `the object has been modified; please apply your changes to the latest version`,
      );
    }
    const patched = mergePatch(found, body) as Stored;
    const specChanged = JSON.stringify(patched.spec) !== JSON.stringify(found.spec);
    patched.metadata = {
      ...patched.metadata,
      resourceVersion: String(++this.version),
      generation: (found.metadata?.generation ?? 1) + (specChanged ? 1 : 0),
    };
    this.objects.set(keyOf(ref), patched);
    return clone(patched) as unknown as T;
  }

  async apply<T extends KubeObject>(obj: T, options: ApplyOptions): Promise<T> {
    const ref = {
      apiVersion: obj.apiVersion ?? '',
      kind: obj.kind ?? '',
      name: obj.metadata?.name ?? '',
      ...(obj.metadata?.namespace === undefined ? {} : { namespace: obj.metadata.namespace }),
    };
    this.writes.push({ verb: 'apply', ref, body: clone(obj), fieldManager: options.fieldManager });
    const merged = mergePatch(this.find(ref) ?? {}, obj) as Stored;
    merged.metadata = { ...merged.metadata, resourceVersion: String(++this.version) };
    this.objects.set(keyOf(ref), merged);
    return clone(merged) as unknown as T;
  }

  async delete(ref: ObjectRef, _options: DeleteOptions = {}): Promise<unknown> {
    this.writes.push({ verb: 'delete', ref: { ...ref } });
    if (this.find(ref) === undefined) throw this.notFound(ref);
    this.remove(ref);
    return { kind: 'Status', status: 'Success' };
  }
}

export interface TestIO extends CliIO {
  out: string[];
  err: string[];
  /** Everything written to stdout, one line per entry joined with newlines. */
  stdoutText(): string;
  stderrText(): string;
  sleeps: number[];
}

/** A CliIO over `kube` whose clock only moves when the command sleeps; `onSleep` runs after each move. */
export function testIO(
  kube: CliKube,
  onSleep: () => void = () => {},
  start = Date.UTC(2025, 4, 6, 7, 8, 9, 123),
): TestIO {
  let now = start;
  const out: string[] = [];
  const err: string[] = [];
  const sleeps: number[] = [];
  return {
    out,
    err,
    sleeps,
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    kube: () => kube,
    now: () => new Date(now),
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
      onSleep();
    },
    stdoutText: () => out.join('\n'),
    stderrText: () => err.join('\n'),
  };
}
