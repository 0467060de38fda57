// @peculiar/x509 registers its algorithm providers through tsyringe, which refuses to load unless the
// `reflect-metadata` API exists on `Reflect`. That package is not a dependency, and x509 only needs the
// metadata store to exist (it emits no design-time type metadata), so this installs a minimal WeakMap-backed
// store when — and only when — no polyfill is present. Call it before loading '@peculiar/x509'.

type MetadataKey = unknown;
type MetadataTarget = object;

interface ReflectMetadataApi {
  defineMetadata(key: MetadataKey, value: unknown, target: MetadataTarget, property?: PropertyKey): void;
  getOwnMetadata(key: MetadataKey, target: MetadataTarget, property?: PropertyKey): unknown;
  getMetadata(key: MetadataKey, target: MetadataTarget, property?: PropertyKey): unknown;
  hasOwnMetadata(key: MetadataKey, target: MetadataTarget, property?: PropertyKey): boolean;
  hasMetadata(key: MetadataKey, target: MetadataTarget, property?: PropertyKey): boolean;
  metadata(key: MetadataKey, value: unknown): (target: MetadataTarget, property?: PropertyKey) => void;
}

export function installReflectMetadataShim(): void {
  const reflect = Reflect as typeof Reflect & Partial<ReflectMetadataApi>;
  if (typeof reflect.getMetadata === 'function') return;

  const store = new WeakMap<MetadataTarget, Map<PropertyKey | undefined, Map<MetadataKey, unknown>>>();
  const ownMap = (target: MetadataTarget, property: PropertyKey | undefined, create: boolean) => {
    let byProperty = store.get(target);
    if (byProperty === undefined) {
      if (!create) return undefined;
      byProperty = new Map();
      store.set(target, byProperty);
    }
    let entries = byProperty.get(property);
    if (entries === undefined && create) {
      entries = new Map();
      byProperty.set(property, entries);
    }
    return entries;
  };
  const findInChain = (key: MetadataKey, target: MetadataTarget, property?: PropertyKey) => {
    for (let current: object | null = target; current !== null; current = Object.getPrototypeOf(current)) {
      const entries = ownMap(current, property, false);
      if (entries?.has(key)) return { found: true as const, value: entries.get(key) };
    }
    return { found: false as const, value: undefined };
  };

  const api: ReflectMetadataApi = {
    defineMetadata: (key, value, target, property) => void ownMap(target, property, true)?.set(key, value),
    getOwnMetadata: (key, target, property) => ownMap(target, property, false)?.get(key),
    getMetadata: (key, target, property) => findInChain(key, target, property).value,
    hasOwnMetadata: (key, target, property) => ownMap(target, property, false)?.has(key) ?? false,
    hasMetadata: (key, target, property) => findInChain(key, target, property).found,
    metadata: (key, value) => (target, property) => api.defineMetadata(key, value, target, property),
  };
  Object.assign(reflect, api);
}
