// The narrow Secret access the certificate manager needs, and an in-memory implementation for tests and local
// runs. The production implementation wraps CoreV1Api (readNamespacedSecret / createNamespacedSecret /
// replaceNamespacedSecret) and lets the client's ApiException through: its `code` of 409 is what
// {@link isConflictError} looks for.
import type { TlsSecret } from './certificates.js';

export interface SecretStore {
  /** The Secret, or undefined when it does not exist (404). */
  get(namespace: string, name: string): Promise<TlsSecret | undefined>;
  /** Creates the Secret; rejects with a 409-coded error (AlreadyExists) if it exists. Resolves to the stored object. */
  create(secret: TlsSecret): Promise<TlsSecret>;
  /**
   * Replaces the Secret guarded by `metadata.resourceVersion`; rejects with a 409-coded error (Conflict) when the
   * stored version differs, and with a 404-coded error when it no longer exists.
   */
  update(secret: TlsSecret): Promise<TlsSecret>;
}

export class SecretStoreError extends Error {
  constructor(
    message: string,
    readonly code: 404 | 409,
  ) {
    super(message);
    this.name = 'SecretStoreError';
  }
}

function httpCodeOf(error: unknown): unknown {
  if (typeof error !== 'object' || error === null) return undefined;
  const record = error as Record<string, unknown>;
  return record.code ?? record.statusCode;
}

/** AlreadyExists on create or a resourceVersion Conflict on update (both HTTP 409 in the Kubernetes API). */
export function isConflictError(error: unknown): boolean {
  return httpCodeOf(error) === 409;
}

export function isNotFoundError(error: unknown): boolean {
  return httpCodeOf(error) === 404;
}

export type SecretStoreOperation = 'get' | 'create' | 'update';

/**
 * Keeps Secrets in a Map with API-server semantics for the three calls: create fails on an existing name,
 * update fails on a stale resourceVersion, every successful write bumps the resourceVersion, and callers get
 * copies so nobody mutates the stored object by accident.
 */
export class InMemorySecretStore implements SecretStore {
  private readonly secrets = new Map<string, TlsSecret>();
  private nextResourceVersion = 1;
  /** Every call in order, so tests can assert how the manager used the store. */
  readonly calls: Array<{ operation: SecretStoreOperation; namespace: string; name: string }> = [];
  /** Runs before each call; a test can inject latency, a concurrent writer, or a failure by throwing. */
  beforeOperation?: (
    operation: SecretStoreOperation,
    namespace: string,
    name: string,
  ) => Promise<void> | void;

  async get(namespace: string, name: string): Promise<TlsSecret | undefined> {
    await this.enter('get', namespace, name);
    const stored = this.secrets.get(`${namespace}/${name}`);
    return stored === undefined ? undefined : structuredClone(stored);
  }

  async create(secret: TlsSecret): Promise<TlsSecret> {
    const { namespace, name } = secret.metadata;
    await this.enter('create', namespace, name);
    const key = `${namespace}/${name}`;
    if (this.secrets.has(key)) throw new SecretStoreError(`secrets "${name}" already exists`, 409);
    return this.store(key, secret);
  }

  async update(secret: TlsSecret): Promise<TlsSecret> {
    const { namespace, name, resourceVersion } = secret.metadata;
    await this.enter('update', namespace, name);
    const key = `${namespace}/${name}`;
    const stored = this.secrets.get(key);
    if (stored === undefined) throw new SecretStoreError(`secrets "${name}" not found`, 404);
    if (resourceVersion !== stored.metadata.resourceVersion) {
      throw new SecretStoreError(
        `Operation cannot be fulfilled on secrets "${name}": the object has been modified; ` +
          'please apply your changes to the latest version and try again',
        409,
      );
    }
    return this.store(key, secret);
  }

  /** Direct write for test setup (no conflict checks, not recorded in `calls`). */
  put(secret: TlsSecret): TlsSecret {
    return this.store(`${secret.metadata.namespace}/${secret.metadata.name}`, secret);
  }

  delete(namespace: string, name: string): void {
    this.secrets.delete(`${namespace}/${name}`);
  }

  private async enter(operation: SecretStoreOperation, namespace: string, name: string): Promise<void> {
    this.calls.push({ operation, namespace, name });
    await this.beforeOperation?.(operation, namespace, name);
  }

  private store(key: string, secret: TlsSecret): TlsSecret {
    const stored = structuredClone(secret);
    stored.metadata.resourceVersion = String(this.nextResourceVersion++);
    this.secrets.set(key, stored);
    return structuredClone(stored);
  }
}
