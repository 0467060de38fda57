// RFC 6901 JSON pointers and RFC 6902 JSON Patch: the escaping the engine uses to address label and annotation
// keys (which contain `/`), the array edit scripts it emits, and a small applier used by tests and kube-inject.
import { boundedMemo } from './memo.js';
import { isObject, type JsonPatchOp } from './types.js';

/** The same few dozen label and annotation keys (most with a `/`) are escaped for every injected pod. */
const escapeToken = boundedMemo(1024, (token) => token.replace(/~/g, '~0').replace(/\//g, '~1'));

/** Escapes one reference token: `~` → `~0` first, then `/` → `~1` (order matters, RFC 6901 §4). */
export function escapePointerToken(token: string): string {
  return token.includes('/') || token.includes('~') ? escapeToken(token) : token;
}

export function unescapePointerToken(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

export function pointer(...tokens: Array<string | number>): string {
  return tokens.map((t) => '/' + escapePointerToken(String(t))).join('');
}

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new Error(`invalid JSON pointer ${JSON.stringify(path)}`);
  return path.slice(1).split('/').map(unescapePointerToken);
}

function arrayIndex(token: string, length: number, forAdd: boolean): number {
  if (forAdd && token === '-') return length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new Error(`invalid array index ${JSON.stringify(token)}`);
  const index = Number(token);
  if (index > length || (!forAdd && index === length)) throw new Error(`array index ${index} out of bounds`);
  return index;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/**
 * Applies a JSON Patch and returns the new document; the input is not modified. Throws on any failing
 * operation (missing parent, bad index, failed `test`), as RFC 6902 requires the whole patch to fail.
 */
export function applyJsonPatch(document: unknown, patch: readonly JsonPatchOp[]): unknown {
  let doc = clone(document);

  const resolveParent = (path: string): { parent: unknown; key: string } | undefined => {
    const tokens = parsePointer(path);
    const key = tokens.pop();
    if (key === undefined) return undefined;
    let parent: unknown = doc;
    for (const token of tokens) {
      if (Array.isArray(parent)) parent = parent[arrayIndex(token, parent.length, false)];
      else if (isObject(parent) && token in parent) parent = parent[token];
      else throw new Error(`path ${path} does not exist`);
    }
    return { parent, key };
  };

  const get = (path: string): unknown => {
    let node: unknown = doc;
    for (const token of parsePointer(path)) {
      if (Array.isArray(node)) node = node[arrayIndex(token, node.length, false)];
      else if (isObject(node) && token in node) node = node[token];
      else throw new Error(`path ${path} does not exist`);
    }
    return node;
  };

  const remove = (path: string): unknown => {
    const target = resolveParent(path);
    if (!target) throw new Error('cannot remove the document root');
    const { parent, key } = target;
    if (Array.isArray(parent)) return parent.splice(arrayIndex(key, parent.length, false), 1)[0];
    if (isObject(parent) && key in parent) {
      const old = parent[key];
      delete parent[key];
      return old;
    }
    throw new Error(`path ${path} does not exist`);
  };

  const add = (path: string, value: unknown): void => {
    const target = resolveParent(path);
    if (!target) {
      doc = value;
      return;
    }
    const { parent, key } = target;
    if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent.length, true), 0, value);
    else if (isObject(parent)) parent[key] = value;
    else throw new Error(`parent of ${path} is not a container`);
  };

  for (const op of patch) {
    switch (op.op) {
      case 'add':
        add(op.path, clone(op.value));
        break;
      case 'remove':
        remove(op.path);
        break;
      case 'replace':
        get(op.path);
        if (op.path === '') doc = clone(op.value);
        else {
          remove(op.path);
          add(op.path, clone(op.value));
        }
        break;
      case 'move': {
        const value = remove(op.from);
        add(op.path, value);
        break;
      }
      case 'copy':
        add(op.path, clone(get(op.from)));
        break;
      case 'test':
        if (!deepEqual(get(op.path), op.value)) throw new Error(`test failed at ${op.path}`);
        break;
    }
  }
  return doc;
}

/**
 * Emits the operations turning `before` into `after` for one array whose unchanged elements are the *same
 * objects* (the engine copies on write, so identity marks what it left alone). Elements that vanished or changed
 * are removed from the highest index down, then new elements are added at their final indices in ascending order.
 * Unchanged elements that the engine reordered are treated as removed and re-added. Linear in the array length.
 */
export function arrayEditOps(
  path: string,
  before: readonly unknown[] | undefined,
  after: readonly unknown[],
): JsonPatchOp[] {
  if (before === undefined) return after.length === 0 ? [] : [{ op: 'add', path, value: after }];
  const originalIndex = new Map<unknown, number>();
  before.forEach((element, index) => {
    if (!originalIndex.has(element)) originalIndex.set(element, index);
  });
  // A named element the pipeline changed (an app container whose probes were rewritten) is kept in
  // place and patched field by field, so a pod with 2,000 env vars does not get its whole container
  // removed and re-added in the response.
  const beforeByName = new Map<string, number>();
  before.forEach((element, index) => {
    const name = elementName(element);
    if (name !== undefined && !beforeByName.has(name)) beforeByName.set(name, index);
  });

  const kept = new Set<number>();
  const modified: { afterIndex: number; before: Record<string, unknown>; after: Record<string, unknown> }[] =
    [];
  let lastKept = -1;
  const keptInAfter: boolean[] = after.map((element, afterIndex) => {
    let index = originalIndex.get(element);
    if (index === undefined || index <= lastKept) {
      const name = elementName(element);
      index = name === undefined ? undefined : beforeByName.get(name);
      if (index === undefined || index <= lastKept || kept.has(index)) return false;
      modified.push({
        afterIndex,
        before: before[index] as Record<string, unknown>,
        after: element as Record<string, unknown>,
      });
    }
    kept.add(index);
    lastKept = index;
    return true;
  });

  const ops: JsonPatchOp[] = [];
  for (let i = before.length - 1; i >= 0; i--) {
    if (!kept.has(i)) ops.push({ op: 'remove', path: `${path}/${i}` });
  }
  after.forEach((element, index) => {
    if (!keptInAfter[index]) ops.push({ op: 'add', path: `${path}/${index}`, value: element });
  });
  // Once the removes and adds ran, every kept element sits at its final index.
  for (const { afterIndex, before: old, after: now } of modified) {
    const at = `${path}/${afterIndex}`;
    for (const key of Object.keys(old)) {
      if (old[key] !== undefined && now[key] === undefined) {
        ops.push({ op: 'remove', path: `${at}/${escapePointerToken(key)}` });
      }
    }
    for (const [key, value] of Object.entries(now)) {
      if (value === undefined || old[key] === value) continue;
      const op = old[key] === undefined ? 'add' : 'replace';
      ops.push({ op, path: `${at}/${escapePointerToken(key)}`, value });
    }
  }
  return ops;
}

function elementName(element: unknown): string | undefined {
  if (element === null || typeof element !== 'object' || Array.isArray(element)) return undefined;
  const name = (element as Record<string, unknown>).name;
  return typeof name === 'string' ? name : undefined;
}

/** Per-key operations for a string map such as labels or annotations, keys escaped as pointer tokens. */
export function mapEditOps(
  path: string,
  before: Readonly<Record<string, string>> | undefined,
  after: Readonly<Record<string, string>>,
): JsonPatchOp[] {
  if (before === undefined) return Object.keys(after).length === 0 ? [] : [{ op: 'add', path, value: after }];
  const ops: JsonPatchOp[] = [];
  for (const key of Object.keys(before)) {
    if (!(key in after)) ops.push({ op: 'remove', path: `${path}/${escapePointerToken(key)}` });
  }
  for (const [key, value] of Object.entries(after)) {
    if (!(key in before)) ops.push({ op: 'add', path: `${path}/${escapePointerToken(key)}`, value });
    else if (before[key] !== value)
      ops.push({ op: 'replace', path: `${path}/${escapePointerToken(key)}`, value });
  }
  return ops;
}
