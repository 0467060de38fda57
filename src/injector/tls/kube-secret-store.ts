// The certificate manager's SecretStore backed by the API server (the operator's KubeClient).
import type { KubeClient } from '../../runtime/kube.js';
import type { KubeObject } from '../../runtime/types.js';
import type { TlsSecret } from './certificates.js';
import type { SecretStore } from './secret-store.js';

export class KubeSecretStore implements SecretStore {
  constructor(private readonly client: KubeClient) {}

  async get(namespace: string, name: string): Promise<TlsSecret | undefined> {
    return this.client.getOptional<TlsSecret>({ apiVersion: 'v1', kind: 'Secret', namespace, name });
  }

  async create(secret: TlsSecret): Promise<TlsSecret> {
    return this.client.create({
      apiVersion: 'v1',
      kind: 'Secret',
      ...secret,
    } as KubeObject) as Promise<TlsSecret>;
  }

  async update(secret: TlsSecret): Promise<TlsSecret> {
    return this.client.update({
      apiVersion: 'v1',
      kind: 'Secret',
      ...secret,
    } as KubeObject) as Promise<TlsSecret>;
  }
}
