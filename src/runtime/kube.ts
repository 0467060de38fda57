// A thin Kubernetes REST client. client-node's KubeConfig is only used for authentication and TLS material;
// requests go through node:http(s) with one shared keep-alive agent, a per-request timeout and explicit
// content types, and watches are streamed line by line so headers and errors stay under our control.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

import type { Connection } from './kubeconfig.js';
import { collectionPath, objectPath, type ObjectRef, type ResourceType } from './resources.js';
import {
  isRecord,
  type KubeObject,
  type ObjectList,
  type Status,
  type WatchEvent,
  type WatchEventType,
} from './types.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'apply' | 'delete';

export const writeVerbs: ReadonlySet<Verb> = new Set<Verb>(['create', 'update', 'patch', 'apply', 'delete']);

export interface RequestRecord {
  verb: Verb;
  method: string;
  path: string;
  /** HTTP status, or 0 when no response arrived (network error, timeout, abort). */
  code: number;
  durationMs: number;
}

export type PatchContentType =
  | 'application/merge-patch+json'
  | 'application/json-patch+json'
  | 'application/strategic-merge-patch+json'
  | 'application/apply-patch+yaml';

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  limit?: number;
  continue?: string;
  /** Ask for PartialObjectMetadataList: only metadata travels and is kept in memory. */
  metadataOnly?: boolean;
  signal?: AbortSignal;
}

export interface WatchOptions {
  namespace?: string;
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  timeoutSeconds?: number;
  labelSelector?: string;
  fieldSelector?: string;
  metadataOnly?: boolean;
}

export interface WriteOptions {
  fieldManager?: string;
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface ApplyOptions {
  fieldManager: string;
  force?: boolean;
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface PatchOptions extends WriteOptions {
  subresource?: string;
  force?: boolean;
}

export interface DeleteOptions {
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  preconditions?: { uid?: string; resourceVersion?: string };
  gracePeriodSeconds?: number;
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface KubeClientOptions {
  /** API server base URL, e.g. https://10.0.0.1:6443 (a path prefix is kept). */
  server: string;
  /** Adds credentials and TLS material to each request (KubeConfig.applyToHTTPSOptions). */
  prepareRequest?: (options: https.RequestOptions) => Promise<void>;
  /** Per-request timeout for everything but watch streams. */
  timeoutMs?: number;
  agent?: http.Agent;
  userAgent?: string;
  onRequest?: (record: RequestRecord) => void;
  /**
   * Act as another user (`Impersonate-User`/`Impersonate-Group` headers): the caller needs `impersonate`
   * on users/groups (e.g. system:masters). Tests run the operator as its ServiceAccount this way.
   */
  impersonate?: Impersonation;
}

export interface Impersonation {
  user: string;
  groups?: string[];
}

const partialMetadataList =
  'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
const partialMetadata = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly status?: Status,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  static fromStatus(status: Status, fallbackCode = 0): ApiError {
    const code = typeof status.code === 'number' ? status.code : fallbackCode;
    return new ApiError(code, status.reason ?? '', status.message ?? `request failed with ${code}`, status);
  }

  static fromResponse(code: number, body: string): ApiError {
    const parsed = parseJson(body);
    if (isRecord(parsed) && parsed.kind === 'Status') return ApiError.fromStatus(parsed as Status, code);
    const text = body.trim().slice(0, 500);
    return new ApiError(code, reasonForCode(code), text || `request failed with HTTP ${code}`);
  }
}

function reasonForCode(code: number): string {
  switch (code) {
    case 400:
      return 'BadRequest';
    case 401:
      return 'Unauthorized';
    case 403:
      return 'Forbidden';
    case 404:
      return 'NotFound';
    case 409:
      return 'Conflict';
    case 410:
      return 'Gone';
    case 422:
      return 'Invalid';
    case 429:
      return 'TooManyRequests';
    case 500:
      return 'InternalError';
    case 503:
      return 'ServiceUnavailable';
    case 504:
      return 'Timeout';
    default:
      return '';
  }
}

export function isApiError(err: unknown): err is ApiError {
  return err instanceof ApiError;
}

export function isNotFound(err: unknown): boolean {
  return isApiError(err) && (err.code === 404 || err.reason === 'NotFound');
}

export function isConflict(err: unknown): boolean {
  return isApiError(err) && (err.code === 409 || err.reason === 'Conflict' || err.reason === 'AlreadyExists');
}

export function isAlreadyExists(err: unknown): boolean {
  return isApiError(err) && err.reason === 'AlreadyExists';
}

/** 410: the resourceVersion asked for is older than etcd's compaction window; a relist is needed. */
export function isGone(err: unknown): boolean {
  return isApiError(err) && (err.code === 410 || err.reason === 'Expired' || err.reason === 'Gone');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function refOf(obj: KubeObject): ObjectRef {
  const name = obj.metadata?.name;
  if (!obj.apiVersion || !obj.kind || !name) {
    throw new Error('object needs apiVersion, kind and metadata.name');
  }
  const ref: ObjectRef = { apiVersion: obj.apiVersion, kind: obj.kind, name };
  if (obj.metadata?.namespace) ref.namespace = obj.metadata.namespace;
  return ref;
}

function withoutManagedFields<T extends KubeObject>(obj: T): T {
  if (!obj.metadata?.managedFields) return obj;
  const { managedFields: _dropped, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}

function buildQuery(params: Record<string, string | number | boolean | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === '') continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

function combineSignals(...signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 0) return undefined;
  if (present.length === 1) return present[0];
  return AbortSignal.any(present);
}

function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('response aborted')));
  });
}

function isWatchEventType(value: unknown): value is WatchEventType {
  return (
    value === 'ADDED' ||
    value === 'MODIFIED' ||
    value === 'DELETED' ||
    value === 'BOOKMARK' ||
    value === 'ERROR'
  );
}

interface RawRequest {
  verb: Verb;
  method: string;
  path: string;
  accept?: string;
  contentType?: string;
  body?: unknown;
  signal?: AbortSignal;
  /** Watches have no overall deadline; only the wait for response headers is bounded. */
  streaming?: boolean;
}

export class KubeClient {
  readonly server: URL;
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly prepareRequest: ((options: https.RequestOptions) => Promise<void>) | undefined;
  private readonly impersonate: Impersonation | undefined;
  private readonly listeners = new Set<(record: RequestRecord) => void>();
  private readonly counts = new Map<Verb, number>();

  constructor(options: KubeClientOptions) {
    this.server = new URL(options.server);
    const secure = this.server.protocol === 'https:';
    this.agent =
      options.agent ??
      (secure
        ? new https.Agent({ keepAlive: true, keepAliveMsecs: 30_000, maxSockets: 64 })
        : new http.Agent({ keepAlive: true, keepAliveMsecs: 30_000, maxSockets: 64 }));
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'meshrev';
    this.prepareRequest = options.prepareRequest;
    this.impersonate = options.impersonate;
    if (options.onRequest) this.listeners.add(options.onRequest);
  }

  static fromKubeConfig(kc: KubeConfig, options: Omit<KubeClientOptions, 'server' | 'prepareRequest'> = {}) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    return new KubeClient({
      ...options,
      server: cluster.server,
      prepareRequest: (requestOptions) => kc.applyToHTTPSOptions(requestOptions),
    });
  }

  /** A client for a connection read by the light loader in kubeconfig.ts (no client-node needed). */
  static fromConnection(
    connection: Connection,
    options: Omit<KubeClientOptions, 'server' | 'prepareRequest'> = {},
  ): KubeClient {
    let token = connection.token;
    let tokenReadAt = 0;
    const currentToken = (): string | undefined => {
      // Projected ServiceAccount tokens rotate; re-read the file every minute like client-go.
      if (connection.tokenFile && Date.now() - tokenReadAt > 60_000) {
        token = readFileSync(connection.tokenFile, 'utf8').trim();
        tokenReadAt = Date.now();
      }
      return token;
    };
    return new KubeClient({
      ...options,
      server: connection.server,
      prepareRequest: async (requestOptions) => {
        if (connection.ca) requestOptions.ca = connection.ca;
        if (connection.cert) requestOptions.cert = connection.cert;
        if (connection.key) requestOptions.key = connection.key;
        if (connection.insecureSkipTlsVerify) requestOptions.rejectUnauthorized = false;
        if (connection.tlsServerName) requestOptions.servername = connection.tlsServerName;
        const bearer = currentToken();
        if (bearer) requestOptions.headers = { ...requestOptions.headers, Authorization: `Bearer ${bearer}` };
      },
    });
  }

  /** Registers a listener for every finished request; returns a function that removes it. */
  onRequest(listener: (record: RequestRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  requestCount(verb?: Verb): number {
    if (verb) return this.counts.get(verb) ?? 0;
    let total = 0;
    for (const n of this.counts.values()) total += n;
    return total;
  }

  writeCount(): number {
    let total = 0;
    for (const verb of writeVerbs) total += this.counts.get(verb) ?? 0;
    return total;
  }

  resetCounts(): void {
    this.counts.clear();
  }

  /** Closes idle keep-alive sockets so a process or test can exit promptly. */
  close(): void {
    this.agent.destroy();
  }

  async get<T = KubeObject>(ref: ObjectRef, options: { signal?: AbortSignal } = {}): Promise<T> {
    return this.requestJson<T>({ verb: 'get', method: 'GET', path: objectPath(ref), signal: options.signal });
  }

  /** Like get, but resolves to undefined on 404. */
  async getOptional<T = KubeObject>(ref: ObjectRef, options: { signal?: AbortSignal } = {}) {
    try {
      return await this.get<T>(ref, options);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list<T = KubeObject>(res: ResourceType, options: ListOptions = {}): Promise<ObjectList<T>> {
    const query = buildQuery({
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
      resourceVersion: options.resourceVersion,
      limit: options.limit,
      continue: options.continue,
    });
    const list = await this.requestJson<ObjectList<T>>({
      verb: 'list',
      method: 'GET',
      path: collectionPath(res, options.namespace) + query,
      accept: options.metadataOnly ? partialMetadataList : 'application/json',
      signal: options.signal,
    });
    // An empty PartialObjectMetadataList arrives with `items: null`.
    return { ...list, items: list.items ?? [] };
  }

  /** Follows continue tokens until the whole collection is read. */
  async listAll<T = KubeObject>(
    res: ResourceType,
    options: Omit<ListOptions, 'continue'> = {},
  ): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.list<T>(res, {
        ...options,
        limit: options.limit ?? 500,
        continue: continueToken,
      });
      items.push(...page.items);
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken);
    return { items, resourceVersion };
  }

  async create<T extends KubeObject>(obj: T, options: WriteOptions = {}): Promise<T> {
    const ref = refOf({ ...obj, metadata: { ...obj.metadata, name: obj.metadata?.name ?? 'new' } });
    const query = buildQuery({
      fieldManager: options.fieldManager,
      dryRun: options.dryRun ? 'All' : undefined,
    });
    return this.requestJson<T>({
      verb: 'create',
      method: 'POST',
      path: collectionPath(ref, ref.namespace) + query,
      contentType: 'application/json',
      body: obj,
      signal: options.signal,
    });
  }

  /** PUT: an optimistic-concurrency replace, guarded by metadata.resourceVersion when set. */
  async update<T extends KubeObject>(
    obj: T,
    options: WriteOptions & { subresource?: string } = {},
  ): Promise<T> {
    const query = buildQuery({
      fieldManager: options.fieldManager,
      dryRun: options.dryRun ? 'All' : undefined,
    });
    return this.requestJson<T>({
      verb: 'update',
      method: 'PUT',
      path: objectPath(refOf(obj), options.subresource) + query,
      contentType: 'application/json',
      body: obj,
      signal: options.signal,
    });
  }

  async patch<T = KubeObject>(
    ref: ObjectRef,
    body: unknown,
    contentType: PatchContentType,
    options: PatchOptions = {},
  ): Promise<T> {
    const query = buildQuery({
      fieldManager: options.fieldManager,
      force: options.force,
      dryRun: options.dryRun ? 'All' : undefined,
    });
    return this.requestJson<T>({
      verb: contentType === 'application/apply-patch+yaml' ? 'apply' : 'patch',
      method: 'PATCH',
      path: objectPath(ref, options.subresource) + query,
      contentType,
      body,
      signal: options.signal,
    });
  }

  /** Server-side apply. JSON is valid YAML, so the body is sent as JSON under the apply content type. */
  async apply<T extends KubeObject>(obj: T, options: ApplyOptions): Promise<T> {
    return this.patch<T>(refOf(obj), withoutManagedFields(obj), 'application/apply-patch+yaml', {
      fieldManager: options.fieldManager,
      force: options.force ?? true,
      dryRun: options.dryRun,
      signal: options.signal,
    });
  }

  /** Server-side apply on the status subresource. */
  async applyStatus<T extends KubeObject>(obj: T, options: ApplyOptions): Promise<T> {
    return this.patch<T>(refOf(obj), withoutManagedFields(obj), 'application/apply-patch+yaml', {
      fieldManager: options.fieldManager,
      force: options.force ?? true,
      dryRun: options.dryRun,
      subresource: 'status',
      signal: options.signal,
    });
  }

  async delete(ref: ObjectRef, options: DeleteOptions = {}): Promise<unknown> {
    const body: Record<string, unknown> = { apiVersion: 'v1', kind: 'DeleteOptions' };
    if (options.propagationPolicy) body.propagationPolicy = options.propagationPolicy;
    if (options.preconditions) body.preconditions = options.preconditions;
    if (options.gracePeriodSeconds !== undefined) body.gracePeriodSeconds = options.gracePeriodSeconds;
    if (options.dryRun) body.dryRun = ['All'];
    return this.requestJson<unknown>({
      verb: 'delete',
      method: 'DELETE',
      path: objectPath(ref),
      contentType: 'application/json',
      body,
      signal: options.signal,
    });
  }

  /**
   * Streams a watch. Resolves when the server ends the stream (e.g. after timeoutSeconds) or when `signal`
   * aborts; rejects with an ApiError on a non-200 answer or an ERROR event (410 Expired among them).
   */
  async watch<T = KubeObject>(
    res: ResourceType,
    options: WatchOptions,
    onEvent: (event: WatchEvent<T>) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const query = buildQuery({
      watch: 'true',
      resourceVersion: options.resourceVersion,
      allowWatchBookmarks: options.allowWatchBookmarks ? 'true' : undefined,
      timeoutSeconds: options.timeoutSeconds,
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
    });
    const request: RawRequest = {
      verb: 'watch',
      method: 'GET',
      path: collectionPath(res, options.namespace) + query,
      accept: options.metadataOnly ? partialMetadata : 'application/json',
      signal,
      streaming: true,
    };
    const started = performance.now();
    let code = 0;
    try {
      const response = await this.open(request);
      code = response.statusCode ?? 0;
      if (code !== 200) throw ApiError.fromResponse(code, await readBody(response));
      await this.consumeWatchStream(response, onEvent, signal);
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    } finally {
      this.record(request, code, started);
    }
  }

  private consumeWatchStream<T>(
    response: http.IncomingMessage,
    onEvent: (event: WatchEvent<T>) => void,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let buffered = '';
      let settled = false;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (err !== undefined) {
          response.destroy();
          reject(err);
        } else {
          resolve();
        }
      };
      const onAbort = () => {
        response.destroy();
        finish();
      };
      const handleLine = (line: string) => {
        if (!line.trim()) return;
        const parsed = parseJson(line);
        if (!isRecord(parsed) || !isWatchEventType(parsed.type)) {
          finish(new Error(`malformed watch event: ${line.slice(0, 200)}`));
          return;
        }
        if (parsed.type === 'ERROR') {
          const status = isRecord(parsed.object) ? (parsed.object as Status) : {};
          finish(ApiError.fromStatus(status, 500));
          return;
        }
        onEvent({ type: parsed.type, object: parsed.object as T });
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffered += chunk;
        let newline = buffered.indexOf('\n');
        while (newline >= 0 && !settled) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          try {
            handleLine(line);
          } catch (err) {
            finish(err);
          }
          newline = buffered.indexOf('\n');
        }
      });
      response.on('end', () => {
        if (!settled && buffered.trim()) {
          try {
            handleLine(buffered);
          } catch (err) {
            finish(err);
          }
        }
        finish();
      });
      response.on('error', (err) => finish(signal?.aborted ? undefined : err));
      response.on('aborted', () => finish(signal?.aborted ? undefined : new Error('watch stream aborted')));
    });
  }

  // LeaseStore, so leader election runs on this client.
  async getLease(namespace: string, name: string, signal?: AbortSignal): Promise<Lease | undefined> {
    return this.getOptional<Lease>(
      { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace, name },
      { signal },
    );
  }

  async createLease(lease: Lease, signal?: AbortSignal): Promise<Lease> {
    return this.create<Lease>({ ...lease, apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' }, { signal });
  }

  async updateLease(lease: Lease, signal?: AbortSignal): Promise<Lease> {
    return this.update<Lease>({ ...lease, apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' }, { signal });
  }

  private async requestJson<T>(request: RawRequest): Promise<T> {
    const started = performance.now();
    let code = 0;
    try {
      const response = await this.open(request);
      code = response.statusCode ?? 0;
      const text = await readBody(response);
      if (code < 200 || code >= 300) throw ApiError.fromResponse(code, text);
      return (text ? JSON.parse(text) : undefined) as T;
    } finally {
      this.record(request, code, started);
    }
  }

  private record(request: RawRequest, code: number, started: number): void {
    this.counts.set(request.verb, (this.counts.get(request.verb) ?? 0) + 1);
    const record: RequestRecord = {
      verb: request.verb,
      method: request.method,
      path: request.path,
      code,
      durationMs: performance.now() - started,
    };
    for (const listener of this.listeners) {
      try {
        listener(record);
      } catch {
        // a faulty metrics hook must not fail API calls
      }
    }
  }

  private async open(request: RawRequest): Promise<http.IncomingMessage> {
    const secure = this.server.protocol === 'https:';
    const basePath = this.server.pathname.replace(/\/$/, '');
    const headers: http.OutgoingHttpHeaders = {
      Accept: request.accept ?? 'application/json',
      'User-Agent': this.userAgent,
    };
    if (this.impersonate) {
      headers['Impersonate-User'] = this.impersonate.user;
      // Node sends an array header as one header line per value, as the API server expects.
      if (this.impersonate.groups?.length) headers['Impersonate-Group'] = this.impersonate.groups;
    }
    let payload: string | undefined;
    if (request.body !== undefined) {
      payload = JSON.stringify(request.body);
      headers['Content-Type'] = request.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(payload);
    }
    const options: https.RequestOptions = {
      method: request.method,
      protocol: this.server.protocol,
      hostname: this.server.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: this.server.port || (secure ? 443 : 80),
      path: basePath + request.path,
      headers,
    };
    if (this.prepareRequest) await this.prepareRequest(options);
    // Credentials may have added headers; ours win for the content negotiation ones.
    options.headers = { ...options.headers, ...headers };
    options.agent = this.agent;

    const deadline = request.streaming ? undefined : AbortSignal.timeout(this.timeoutMs);
    const signal = combineSignals(deadline, request.signal);
    const transport = secure ? https : http;
    return new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = transport.request(options, (res) => {
        clearTimeout(headersTimer);
        resolve(res);
      });
      // For a watch only the wait for response headers is bounded; the stream itself lives on.
      const headersTimer = request.streaming
        ? setTimeout(
            () => req.destroy(new Error(`watch ${request.path}: no response headers`)),
            this.timeoutMs,
          )
        : undefined;
      const onAbort = () => req.destroy(abortReason(signal as AbortSignal));
      req.on('error', (err) => {
        clearTimeout(headersTimer);
        reject(signal?.aborted ? abortReason(signal) : err);
      });
      req.on('close', () => signal?.removeEventListener('abort', onAbort));
      if (signal?.aborted) {
        onAbort();
      } else {
        signal?.addEventListener('abort', onAbort, { once: true });
      }
      req.end(payload);
    });
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new Error(typeof reason === 'string' ? reason : 'request aborted');
}

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease extends KubeObject {
  spec?: LeaseSpec;
}
