import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { KubeConfig } from '@kubernetes/client-node';

import {
  ApiError,
  isConflict,
  isGone,
  isNotFound,
  KubeClient,
  type RequestRecord,
} from '../../../src/runtime/kube.js';
import { kubeListWatcher } from '../../../src/runtime/informer.js';
import { registerResource, UnknownResourceError } from '../../../src/runtime/resources.js';
import type { KubeObject, WatchEvent } from '../../../src/runtime/types.js';
import { waitFor } from './fakes.js';

interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Responder = (req: SeenRequest, res: http.ServerResponse) => void;

class FakeApiServer {
  readonly seen: SeenRequest[] = [];
  connections = 0;
  respond: Responder = (_req, res) => json(res, 200, {});
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      this.seen.push(seen);
      this.respond(seen, res);
    });
  });

  async start(): Promise<string> {
    this.server.on('connection', () => (this.connections += 1));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  last(): SeenRequest {
    const req = this.seen.at(-1);
    if (!req) throw new Error('no request seen');
    return req;
  }
}

function json(res: http.ServerResponse, code: number, body: unknown) {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function status(code: number, reason: string, message: string) {
  return { apiVersion: 'v1', kind: 'Status', status: 'Failure', code, reason, message };
}

const cm = (name: string, namespace = 'istio-system'): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace },
});

describe('KubeClient', () => {
  let api: FakeApiServer;
  let client: KubeClient;
  let records: RequestRecord[];

  beforeEach(async () => {
    api = new FakeApiServer();
    const server = await api.start();
    records = [];
    client = new KubeClient({
      server,
      timeoutMs: 500,
      prepareRequest: async (opts) => {
        opts.headers = { ...opts.headers, Authorization: 'Bearer test-token' };
      },
      onRequest: (r) => records.push(r),
    });
  });

  afterEach(async () => {
    client.close();
    await api.stop();
  });

  it.each([
    [{ apiVersion: 'v1', kind: 'Pod', namespace: 'default', name: 'p' }, '/api/v1/namespaces/default/pods/p'],
    [{ apiVersion: 'v1', kind: 'Namespace', name: 'istio-system' }, '/api/v1/namespaces/istio-system'],
    [
      { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'istio-system', name: 'istiod-asm-1' },
      '/apis/apps/v1/namespaces/istio-system/deployments/istiod-asm-1',
    ],
    [
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        name: 'istio-sidecar-injector-asm-1',
      },
      '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar-injector-asm-1',
    ],
    [
      { apiVersion: 'meshrev.dev/v1alpha1', kind: 'ControlPlaneRevision', name: 'asm-1233-2' },
      '/apis/meshrev.dev/v1alpha1/controlplanerevisions/asm-1233-2',
    ],
    [
      { apiVersion: 'meshrev.dev/v1alpha1', kind: 'RevisionTag', name: 'default' },
      '/apis/meshrev.dev/v1alpha1/revisiontags/default',
    ],
  ])('gets %j from %s with credentials and a JSON Accept header', async (ref, path) => {
    api.respond = (_req, res) => json(res, 200, { metadata: { name: ref.name } });
    const got = await client.get(ref);
    expect(got.metadata?.name).toBe(ref.name);
    expect(api.last()).toMatchObject({ method: 'GET', url: path });
    expect(api.last().headers.authorization).toBe('Bearer test-token');
    expect(api.last().headers.accept).toBe('application/json');
  });

  it('lists with selectors and pagination, and asks for PartialObjectMetadataList when only metadata is needed', async () => {
    api.respond = (_req, res) => json(res, 200, { items: [], metadata: { resourceVersion: '42' } });
    const list = await client.list(
      { apiVersion: 'v1', kind: 'Pod' },
      {
        namespace: 'apps',
        labelSelector: 'istio.io/rev=asm-1',
        fieldSelector: 'status.phase!=Succeeded',
        limit: 100,
        continue: 'tok',
        metadataOnly: true,
      },
    );
    expect(list.metadata?.resourceVersion).toBe('42');
    const url = new URL(api.last().url, 'http://x');
    expect(url.pathname).toBe('/api/v1/namespaces/apps/pods');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      labelSelector: 'istio.io/rev=asm-1',
      fieldSelector: 'status.phase!=Succeeded',
      limit: '100',
      continue: 'tok',
    });
    expect(api.last().headers.accept).toBe(
      'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json',
    );
  });

  it('follows continue tokens in listAll', async () => {
    api.respond = (req, res) => {
      const token = new URL(req.url, 'http://x').searchParams.get('continue');
      if (!token) json(res, 200, { items: [cm('a')], metadata: { continue: 'p2', resourceVersion: '5' } });
      else json(res, 200, { items: [cm('b')], metadata: { resourceVersion: '5' } });
    };
    const all = await client.listAll({ apiVersion: 'v1', kind: 'ConfigMap' });
    expect(all.items.map((i) => i.metadata?.name)).toEqual(['a', 'b']);
    expect(all.resourceVersion).toBe('5');
  });

  it('applies server-side with the apply content type, field manager and force, without managedFields', async () => {
    api.respond = (req, res) => json(res, 200, JSON.parse(req.body));
    const obj = { ...cm('istio-asm-1'), metadata: { ...cm('istio-asm-1').metadata, managedFields: [{}] } };
    await client.apply(obj, { fieldManager: 'meshrev', force: true, dryRun: true });
    const req = api.last();
    expect(req.method).toBe('PATCH');
    expect(req.headers['content-type']).toBe('application/apply-patch+yaml');
    const url = new URL(req.url, 'http://x');
    expect(url.pathname).toBe('/api/v1/namespaces/istio-system/configmaps/istio-asm-1');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      fieldManager: 'meshrev',
      force: 'true',
      dryRun: 'All',
    });
    expect(JSON.parse(req.body).metadata).toEqual({ name: 'istio-asm-1', namespace: 'istio-system' });
  });

  it('applies status on the status subresource', async () => {
    api.respond = (req, res) => json(res, 200, JSON.parse(req.body));
    await client.applyStatus(
      { apiVersion: 'meshrev.dev/v1alpha1', kind: 'ControlPlaneRevision', metadata: { name: 'asm-1' } },
      { fieldManager: 'meshrev' },
    );
    expect(new URL(api.last().url, 'http://x').pathname).toBe(
      '/apis/meshrev.dev/v1alpha1/controlplanerevisions/asm-1/status',
    );
  });

  it('sends patches with the content type it is given', async () => {
    await client.patch(
      { apiVersion: 'v1', kind: 'Namespace', name: 'apps' },
      { metadata: { labels: { 'istio.io/rev': 'asm-2' } } },
      'application/merge-patch+json',
      { fieldManager: 'meshrev' },
    );
    expect(api.last().headers['content-type']).toBe('application/merge-patch+json');
    expect(records.at(-1)?.verb).toBe('patch');
  });

  it('creates into the collection and updates by name', async () => {
    api.respond = (req, res) => json(res, req.method === 'POST' ? 201 : 200, JSON.parse(req.body));
    await client.create(cm('a'));
    expect(api.last()).toMatchObject({ method: 'POST', url: '/api/v1/namespaces/istio-system/configmaps' });
    await client.update({ ...cm('a'), metadata: { ...cm('a').metadata, resourceVersion: '7' } });
    expect(api.last()).toMatchObject({ method: 'PUT', url: '/api/v1/namespaces/istio-system/configmaps/a' });
    expect(JSON.parse(api.last().body).metadata.resourceVersion).toBe('7');
  });

  it('deletes with propagation policy and preconditions in DeleteOptions', async () => {
    await client.delete(
      { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'istio-system', name: 'istiod-asm-1' },
      { propagationPolicy: 'Foreground', preconditions: { uid: 'u-1' } },
    );
    expect(api.last().method).toBe('DELETE');
    expect(JSON.parse(api.last().body)).toEqual({
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      propagationPolicy: 'Foreground',
      preconditions: { uid: 'u-1' },
    });
  });

  it.each([
    [404, 'NotFound', isNotFound],
    [409, 'Conflict', isConflict],
    [409, 'AlreadyExists', isConflict],
    [410, 'Expired', isGone],
  ])(
    'turns a %i %s Status into an ApiError with code, reason and message',
    async (code, reason, predicate) => {
      api.respond = (_req, res) => json(res, code, status(code, reason, 'something went wrong'));
      const err: unknown = await client
        .get({ apiVersion: 'v1', kind: 'Secret', namespace: 'n', name: 's' })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect(err).toMatchObject({ code, reason, message: 'something went wrong' });
      expect(predicate(err)).toBe(true);
    },
  );

  it('reports a non-Status error body with the HTTP code and a reason derived from it', async () => {
    api.respond = (_req, res) => {
      res.writeHead(503);
      res.end('upstream connect error');
    };
    const err = await client.list({ apiVersion: 'v1', kind: 'Pod' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 503, reason: 'ServiceUnavailable', message: 'upstream connect error' });
  });

  it('answers getOptional with undefined for a missing object', async () => {
    api.respond = (_req, res) => json(res, 404, status(404, 'NotFound', 'not found'));
    expect(await client.getOptional({ apiVersion: 'v1', kind: 'Node', name: 'n1' })).toBeUndefined();
  });

  it('gives up on a request that exceeds its timeout', async () => {
    api.respond = () => {};
    const started = Date.now();
    const err = await client.get({ apiVersion: 'v1', kind: 'Node', name: 'n1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(records.at(-1)).toMatchObject({ verb: 'get', code: 0 });
  });

  it('gives up on a response whose body stalls past the timeout', async () => {
    api.respond = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"items":');
    };
    const err = await client.list({ apiVersion: 'v1', kind: 'Pod' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
  });

  it('reuses one keep-alive connection for consecutive requests', async () => {
    for (let i = 0; i < 5; i += 1) await client.get({ apiVersion: 'v1', kind: 'Node', name: `n${i}` });
    expect(api.connections).toBe(1);
  });

  it('counts requests by verb so tests can assert that a steady state writes nothing', async () => {
    api.respond = (req, res) => json(res, 200, req.body ? JSON.parse(req.body) : { items: [] });
    await client.get({ apiVersion: 'v1', kind: 'Node', name: 'n' });
    await client.list({ apiVersion: 'v1', kind: 'Node' });
    expect(client.writeCount()).toBe(0);
    await client.apply(cm('a'), { fieldManager: 'meshrev' });
    await client.delete({ apiVersion: 'v1', kind: 'Node', name: 'n' });
    expect(client.requestCount('get')).toBe(1);
    expect(client.requestCount('apply')).toBe(1);
    expect(client.writeCount()).toBe(2);
    expect(records.map((r) => [r.verb, r.code])).toEqual([
      ['get', 200],
      ['list', 200],
      ['apply', 200],
      ['delete', 200],
    ]);
    client.resetCounts();
    expect(client.requestCount()).toBe(0);
  });

  it('refuses kinds that are not in the resource table until they are registered', async () => {
    const ref = { apiVersion: 'example.dev/v1', kind: 'Widget', name: 'w' };
    await expect(client.get(ref)).rejects.toBeInstanceOf(UnknownResourceError);
    registerResource({ apiVersion: 'example.dev/v1', kind: 'Widget', plural: 'widgets', namespaced: false });
    await client.get(ref);
    expect(api.last().url).toBe('/apis/example.dev/v1/widgets/w');
  });

  it('gives list items their apiVersion and kind when read through kubeListWatcher', async () => {
    api.respond = (_req, res) => json(res, 200, { items: [{ metadata: { name: 'a' } }], metadata: {} });
    const source = kubeListWatcher(
      client,
      { apiVersion: 'apps/v1', kind: 'Deployment' },
      { namespace: 'ns' },
    );
    const list = await source.list({ limit: 10 });
    expect(list.items).toEqual([{ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'a' } }]);
    expect(api.last().url).toBe('/apis/apps/v1/namespaces/ns/deployments?limit=10');
  });

  describe('watch', () => {
    it('streams events split across chunks, with watch parameters in the query', async () => {
      api.respond = (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const a = JSON.stringify({ type: 'ADDED', object: cm('a') });
        const b = JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '12' } } });
        res.write(a.slice(0, 10));
        setTimeout(() => {
          res.write(`${a.slice(10)}\n${b.slice(0, 5)}`);
          setTimeout(() => res.end(`${b.slice(5)}\n`), 5);
        }, 5);
      };
      const events: WatchEvent<KubeObject>[] = [];
      await client.watch(
        { apiVersion: 'v1', kind: 'ConfigMap' },
        {
          namespace: 'istio-system',
          resourceVersion: '10',
          allowWatchBookmarks: true,
          timeoutSeconds: 290,
          metadataOnly: true,
        },
        (e) => events.push(e),
      );
      expect(events.map((e) => e.type)).toEqual(['ADDED', 'BOOKMARK']);
      const url = new URL(api.last().url, 'http://x');
      expect(url.pathname).toBe('/api/v1/namespaces/istio-system/configmaps');
      expect(Object.fromEntries(url.searchParams)).toEqual({
        watch: 'true',
        resourceVersion: '10',
        allowWatchBookmarks: 'true',
        timeoutSeconds: '290',
      });
      expect(api.last().headers.accept).toBe(
        'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json',
      );
    });

    it('rejects with a Gone ApiError when the stream carries a 410 ERROR event', async () => {
      api.respond = (_req, res) => {
        res.writeHead(200);
        res.write(
          `${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', 'too old resource version') })}\n`,
        );
      };
      const err = await client
        .watch({ apiVersion: 'v1', kind: 'Pod' }, { resourceVersion: '1' }, () => {})
        .catch((e: unknown) => e);
      expect(isGone(err)).toBe(true);
    });

    it('rejects with an ApiError when the watch is refused', async () => {
      api.respond = (_req, res) => json(res, 403, status(403, 'Forbidden', 'pods is forbidden'));
      const err = await client
        .watch({ apiVersion: 'v1', kind: 'Pod' }, {}, () => {})
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 403, reason: 'Forbidden' });
    });

    it('resolves quietly when aborted, while the stream stays open and outlives the request timeout', async () => {
      api.respond = (_req, res) => {
        res.writeHead(200);
        res.write(`${JSON.stringify({ type: 'ADDED', object: cm('a') })}\n`);
        // Later than the client's 500 ms request timeout, which must not apply to a watch stream.
        setTimeout(() => res.write(`${JSON.stringify({ type: 'MODIFIED', object: cm('a') })}\n`), 700);
      };
      const abort = new AbortController();
      const events: string[] = [];
      const watching = client.watch(
        { apiVersion: 'v1', kind: 'ConfigMap' },
        {},
        (e) => events.push(e.type),
        abort.signal,
      );
      await waitFor(() => events.length === 2, 'event sent after the request timeout');
      abort.abort();
      await expect(watching).resolves.toBeUndefined();
      expect(records.at(-1)).toMatchObject({ verb: 'watch', code: 200 });
    });
  });
});

describe('KubeClient.fromKubeConfig', () => {
  it('uses the current cluster server and the kubeconfig credentials', async () => {
    const api = new FakeApiServer();
    const server = await api.start();
    const kc = new KubeConfig();
    kc.loadFromOptions({
      // client-node refuses plain HTTP unless TLS verification is explicitly skipped.
      clusters: [{ name: 'c', server, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'kc-token' }],
      contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
      currentContext: 'ctx',
    });
    const client = KubeClient.fromKubeConfig(kc);
    try {
      await client.get({ apiVersion: 'v1', kind: 'Namespace', name: 'default' });
      expect(api.last().headers.authorization).toBe('Bearer kc-token');
    } finally {
      client.close();
      await api.stop();
    }
  });
});
