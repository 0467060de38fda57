import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import type { AdmissionOutcome, InjectFn, InjectResult } from '../../../../src/injector/admission.js';
import {
  createInjectorServer,
  type InjectorServer,
  type InjectorServerOptions,
} from '../../../../src/injector/server.js';
import { CertificateManager } from '../../../../src/injector/tls/certificate-manager.js';
import { InMemorySecretStore } from '../../../../src/injector/tls/secret-store.js';
import {
  generateCertificateAuthority,
  issueServingCertificate,
  type KeyPairPem,
} from '../../../../src/injector/tls/certificates.js';

const HOST = '127.0.0.1';
const logger = pino({ level: 'silent' });
const PATCH = [{ op: 'add', path: '/metadata/annotations', value: { 'sidecar.istio.io/status': '{}' } }];

let ca: KeyPairPem;
let leaf: KeyPairPem;
let rotatedLeaf: KeyPairPem;

beforeAll(async () => {
  const now = new Date();
  ca = await generateCertificateAuthority({ now });
  const names = { dnsNames: ['localhost', 'meshrev-injector.meshrev-system.svc'], ipAddresses: [HOST] };
  leaf = await issueServingCertificate({ ca, now, ...names });
  rotatedLeaf = await issueServingCertificate({ ca, now, ...names });
});

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});

const servers: InjectorServer[] = [];
const agents: https.Agent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) agent.destroy();
  await Promise.all(servers.splice(0).map((server) => server.close(100)));
  expect(unhandled).toEqual([]);
});

/** The fake engine: skips pods annotated like istiod's skip case, injects everything else. */
const fakeInject: InjectFn = ({ pod }) => {
  const metadata = pod.metadata as { annotations?: Record<string, string> } | undefined;
  if (metadata?.annotations?.['sidecar.istio.io/inject'] === 'false') {
    return { kind: 'skipped', reason: 'annotation' };
  }
  return { kind: 'injected', patch: PATCH };
};

const resolveTarget = (name: string) =>
  ({ canary: { revision: 'canary' }, prod: { revision: 'canary' } })[name] ?? undefined;

async function startServer(overrides: Partial<InjectorServerOptions> = {}) {
  const admissions: Array<{ outcome: AdmissionOutcome; revision: string; seconds: number }> = [];
  const server = createInjectorServer({
    host: HOST,
    port: 0,
    tls: leaf,
    inject: fakeInject,
    resolveTarget,
    logger,
    hooks: { onAdmission: (outcome, revision, seconds) => admissions.push({ outcome, revision, seconds }) },
    ...overrides,
  });
  servers.push(server);
  const { port } = await server.listen();
  return { server, port, admissions };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  socket: Socket;
  peerSerial: string;
}

interface RequestOptions {
  port: number;
  path?: string;
  method?: string;
  contentType?: string | null;
  body?: Buffer | string;
  agent?: https.Agent | false;
  headers?: Record<string, string | number>;
  /** Stream the body with chunked transfer encoding instead of declaring its length. */
  chunked?: boolean;
}

function send(options: RequestOptions): Promise<Reply> {
  const {
    port,
    path = '/inject/canary?timeout=10s',
    method = 'POST',
    contentType = 'application/json',
  } = options;
  const payload = options.body === undefined ? undefined : Buffer.from(options.body);
  const headers: Record<string, string | number> = { ...options.headers };
  if (contentType !== null) headers['Content-Type'] = contentType;
  if (payload !== undefined && headers['Content-Length'] === undefined)
    headers['Content-Length'] = payload.length;
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: HOST, port, path, method, headers, ca: ca.certPem, agent: options.agent ?? false },
      (res) => {
        // Read the socket now: a keep-alive agent detaches it from the response once the body ends.
        const socket = res.socket;
        const peerSerial = (socket as tls.TLSSocket).getPeerCertificate().serialNumber;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            socket,
            peerSerial,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function review(apiVersion: string, annotations: Record<string, string> = {}, uid = 'uid-1') {
  return JSON.stringify({
    apiVersion,
    kind: 'AdmissionReview',
    request: {
      uid,
      namespace: 'shop',
      operation: 'CREATE',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', annotations },
        spec: { containers: [] },
      },
    },
  });
}

function responseOf(reply: Reply) {
  return JSON.parse(reply.body) as {
    apiVersion: string;
    kind: string;
    response: {
      uid: string;
      allowed: boolean;
      patch?: string;
      patchType?: string;
      status?: { message: string };
    };
  };
}

function keepAliveAgent(maxSockets = 1): https.Agent {
  const agent = new https.Agent({ keepAlive: true, maxSockets, ca: ca.certPem });
  agents.push(agent);
  return agent;
}

async function connectedTls(port: number): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: HOST, port, ca: ca.certPem });
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  return socket;
}

/** What the server sent until it closed the connection, and how long that took. */
async function untilClosed(socket: tls.TLSSocket): Promise<{ received: string; afterMs: number }> {
  const started = Date.now();
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { received, afterMs: Date.now() - started };
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('injector HTTPS server: istiod TestRunAndServe cases', () => {
  const sevenMiB = Buffer.alloc(7 * 1024 * 1024, 0x20);
  const cases: Array<{
    name: string;
    body?: string | Buffer;
    contentType?: string;
    chunked?: boolean;
    status: number;
    allowed?: boolean;
    patched?: boolean;
    apiVersion?: string;
  }> = [
    {
      name: 'a valid v1beta1 review is injected',
      body: review('admission.k8s.io/v1beta1'),
      status: 200,
      allowed: true,
      patched: true,
      apiVersion: 'admission.k8s.io/v1beta1',
    },
    {
      name: 'a valid v1 review is injected',
      body: review('admission.k8s.io/v1'),
      status: 200,
      allowed: true,
      patched: true,
      apiVersion: 'admission.k8s.io/v1',
    },
    {
      name: 'a pod annotated inject=false is allowed without a patch',
      body: review('admission.k8s.io/v1', { 'sidecar.istio.io/inject': 'false' }),
      status: 200,
      allowed: true,
      patched: false,
      apiVersion: 'admission.k8s.io/v1',
    },
    {
      name: 'application/yaml is refused with 415',
      body: review('admission.k8s.io/v1'),
      contentType: 'application/yaml',
      status: 415,
    },
    {
      name: 'random bytes are denied with 200 and allowed false',
      body: Buffer.from([0x8f, 0x00, 0xff, 0x13, 0x37, 0x7b]),
      status: 200,
      allowed: false,
      patched: false,
      apiVersion: 'admission.k8s.io/v1',
    },
    { name: 'a missing body is refused with 400', status: 400 },
    { name: 'a body declared over 6 MiB is refused with 400', body: sevenMiB, status: 400 },
    {
      name: 'a chunked body growing over 6 MiB is refused with 400',
      body: sevenMiB,
      chunked: true,
      status: 400,
    },
  ];

  it.each(cases)('$name', async ({ body, contentType, chunked, status, allowed, patched, apiVersion }) => {
    const { port } = await startServer();
    const reply = await send({
      port,
      body,
      contentType,
      chunked,
    });
    expect(reply.status).toBe(status);
    if (allowed === undefined) return;
    const parsed = responseOf(reply);
    expect(parsed.apiVersion).toBe(apiVersion);
    expect(parsed.kind).toBe('AdmissionReview');
    expect(parsed.response.allowed).toBe(allowed);
    expect(parsed.response.patch !== undefined).toBe(patched);
  });

  it('explains the size limit the way istiod does', async () => {
    const { port } = await startServer();
    const reply = await send({ port, body: sevenMiB });
    expect(reply.body).toBe('Request entity too large: limit is 6291456\n');
  });

  it('echoes the request uid and returns the engine’s patch as base64 JSON Patch', async () => {
    const { port } = await startServer();
    const reply = await send({ port, body: review('admission.k8s.io/v1', {}, 'c0ffee-42') });
    const { response } = responseOf(reply);
    expect(response.uid).toBe('c0ffee-42');
    expect(response.patchType).toBe('JSONPatch');
    expect(JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8'))).toEqual(PATCH);
  });

  it('answers paths outside /inject with 404 and serves tags through their revision', async () => {
    const { port, admissions } = await startServer();
    expect((await send({ port, path: '/healthz', body: review('admission.k8s.io/v1') })).status).toBe(404);
    expect((await send({ port, path: '/', method: 'GET' })).status).toBe(404);
    const viaTag = await send({ port, path: '/inject/prod/net/n1', body: review('admission.k8s.io/v1') });
    expect(responseOf(viaTag).response.allowed).toBe(true);
    expect(admissions.map(({ outcome, revision }) => [outcome, revision])).toEqual([['injected', 'canary']]);
    expect(admissions[0]?.seconds).toBeGreaterThanOrEqual(0);
  });

  it('denies a review for an unknown revision with a readable message', async () => {
    const { port, admissions } = await startServer();
    const reply = await send({ port, path: '/inject/asm-0000-0', body: review('admission.k8s.io/v1') });
    expect(reply.status).toBe(200);
    expect(responseOf(reply).response.status?.message).toContain('"asm-0000-0"');
    expect(admissions.map(({ outcome, revision }) => [outcome, revision])).toEqual([['error', '']]);
  });
});

describe('injector HTTPS server robustness', () => {
  it('survives a storm of 1,200 malformed reviews without a 5xx or a dropped connection', async () => {
    const { port } = await startServer();
    let seed = 0x5eed;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const valid = review('admission.k8s.io/v1');
    const wrongValues = [null, 0, -1.5, true, 'str', [], {}, [1, 'x'], { nested: { deep: [null] } }];
    const fields = [
      'apiVersion',
      'kind',
      'request',
      'request.uid',
      'request.namespace',
      'request.object',
      'request.object.metadata',
      'request.object.metadata.labels',
      'request.object.metadata.annotations',
      'request.object.metadata.name',
      'request.object.spec',
      'request.object.metadata.managedFields',
    ];

    const setPath = (target: Record<string, unknown>, path: string, value: unknown, remove: boolean) => {
      const keys = path.split('.');
      let cursor: Record<string, unknown> = target;
      for (const key of keys.slice(0, -1)) {
        const next = cursor[key];
        if (typeof next !== 'object' || next === null) return;
        cursor = next as Record<string, unknown>;
      }
      const last = keys[keys.length - 1] ?? '';
      if (remove) delete cursor[last];
      else cursor[last] = value;
    };

    const generators: Array<() => { body: Buffer | string; contentType?: string }> = [
      () => ({ body: valid.slice(0, Math.floor(random() * valid.length)) }),
      () => {
        const doc = JSON.parse(valid) as Record<string, unknown>;
        setPath(doc, pick(fields), pick(wrongValues), false);
        return { body: JSON.stringify(doc) };
      },
      () => {
        const doc = JSON.parse(valid) as Record<string, unknown>;
        setPath(doc, pick(fields), undefined, true);
        return { body: JSON.stringify(doc) };
      },
      () => ({
        body: Buffer.from(
          Array.from({ length: 1 + Math.floor(random() * 2048) }, () => Math.floor(random() * 256)),
        ),
      }),
      () => ({ body: '['.repeat(50_000) + ']'.repeat(50_000) }),
      () => ({ body: '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000) }),
      () => ({ body: JSON.stringify(pick(wrongValues)) }),
      () => ({ body: valid.replace('"uid-1"', JSON.stringify('\u0000\ud800\uffff'.repeat(10))) }),
      () => ({
        body: valid,
        contentType: pick([
          'text/plain',
          'application/json; charset=latin1',
          '',
          'application/x-www-form-urlencoded',
        ]),
      }),
      () => ({
        body: valid.replace(
          '"object":{',
          '"object":{"__proto__":{"polluted":true},"constructor":{"prototype":{}},',
        ),
      }),
    ];

    const agent = keepAliveAgent(8);
    const statuses = new Map<number, number>();
    const total = 1200;
    let next = 0;
    const worker = async () => {
      while (next < total) {
        next += 1;
        const generated = pick(generators)();
        const reply = await send({
          port,
          agent,
          body: generated.body,
          contentType: generated.contentType ?? 'application/json',
        });
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        if (reply.status === 200) expect(typeof responseOf(reply).response.allowed).toBe('boolean');
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));

    // A handful of oversized uploads on their own connections, declared and streamed.
    const huge = Buffer.alloc(6 * 1024 * 1024 + 1, 0x7b);
    for (const chunked of [false, true, false]) {
      const reply = await send({
        port,
        body: huge,
        chunked,
      });
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
    }

    expect(statuses.get(200)).toBeGreaterThan(500);
    expect(statuses.get(400)).toBeGreaterThanOrEqual(3);
    expect(statuses.get(415)).toBeGreaterThan(0);
    const seen = [...statuses.keys()].sort();
    expect(seen.every((status) => [200, 400, 415].includes(status))).toBe(true);
    expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(total + 3);
    expect(Object.prototype).not.toHaveProperty('polluted');
    const healthy = await send({ port, body: review('admission.k8s.io/v1') });
    expect(responseOf(healthy).response.allowed).toBe(true);
  }, 60_000);

  it('reuses one keep-alive connection across requests and advertises a long keep-alive timeout', async () => {
    const { port } = await startServer();
    const agent = keepAliveAgent(1);
    const sockets = new Set<Socket>();
    for (let i = 0; i < 5; i++) {
      const reply = await send({ port, agent, body: review('admission.k8s.io/v1') });
      expect(reply.status).toBe(200);
      expect(reply.headers['keep-alive']).toBe('timeout=65');
      sockets.add(reply.socket);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(sockets.size).toBe(1);
  });

  it('cuts off a client that never finishes its request', async () => {
    const { port } = await startServer({
      limits: {
        headersTimeoutMs: 200,
        requestTimeoutMs: 300,
        connectionsCheckingIntervalMs: 50,
        keepAliveTimeoutMs: 100,
      },
    });
    const socket = await connectedTls(port);
    socket.write(
      'POST /inject/canary HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"',
    );
    const { received, afterMs } = await untilClosed(socket);
    expect(afterMs).toBeLessThan(3000);
    expect(received).toMatch(/^HTTP\/1.1 408 Request Timeout\r\n/);
  });

  it('closes the connection of a timed-out client that never closes its own side, and reports the request', async () => {
    const { port, admissions } = await startServer({
      limits: { headersTimeoutMs: 200, requestTimeoutMs: 300, connectionsCheckingIntervalMs: 50 },
    });
    // allowHalfOpen reaches the underlying net.Socket; @types/node leaves it out of tls.ConnectionOptions.
    const halfOpen = { host: HOST, port, ca: ca.certPem, allowHalfOpen: true } as tls.ConnectionOptions;
    const socket = tls.connect(halfOpen);
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    socket.write(
      'POST /inject/canary HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"',
    );
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    // The request is settled (and reported) only once the server has let go of the socket: with the client's
    // side left open, that takes the server closing it.
    await waitFor(() => admissions.length === 1);
    expect(received).toMatch(/^HTTP\/1.1 408 Request Timeout\r\n/);
    expect(admissions[0]?.outcome).toBe('error');
    socket.destroy();
  });

  it('cuts off a client that trickles its headers', async () => {
    const { port } = await startServer({
      limits: { headersTimeoutMs: 200, requestTimeoutMs: 300, connectionsCheckingIntervalMs: 50 },
    });
    const socket = await connectedTls(port);
    socket.write('POST /inject/canary HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => socket.write('X'), 50);
    const { received, afterMs } = await untilClosed(socket);
    clearInterval(trickle);
    expect(afterMs).toBeLessThan(3000);
    expect(received).toMatch(/^HTTP\/1.1 408 Request Timeout\r\n/);
  });

  it('closes a connection that completes the TLS handshake but never starts a request', async () => {
    const { port } = await startServer({ limits: { firstRequestTimeoutMs: 200 } });
    const socket = await connectedTls(port);
    const { received, afterMs } = await untilClosed(socket);
    expect(afterMs).toBeLessThan(3000);
    expect(received).toBe('');
  });

  it('keeps serving a kept-alive connection idle for longer than the headers and first-request timeouts', async () => {
    const { port } = await startServer({
      limits: {
        headersTimeoutMs: 100,
        requestTimeoutMs: 200,
        firstRequestTimeoutMs: 100,
        connectionsCheckingIntervalMs: 20,
        keepAliveTimeoutMs: 10_000,
      },
    });
    const socket = await connectedTls(port);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    const statusLines = (): number => received.match(/HTTP\/1\.1 \d{3} /g)?.length ?? 0;
    const request = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    socket.write(request);
    await waitFor(() => statusLines() === 1);
    // Idle between requests for several times both timeouts (and their checking interval): the idle time is
    // what is under test, so this waits on the clock.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(socket.destroyed).toBe(false);
    socket.write(request);
    await waitFor(() => statusLines() === 2);
    socket.destroy();
  });
});

describe('injector HTTPS server TLS', () => {
  it('refuses TLS 1.1 that a permissive server would accept, and accepts TLS 1.2', async () => {
    const { port } = await startServer();
    const handshake = (targetPort: number, version: tls.SecureVersion) =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({
          host: HOST,
          port: targetPort,
          ca: ca.certPem,
          minVersion: version,
          maxVersion: version,
          ciphers: 'DEFAULT@SECLEVEL=0',
        });
        socket.once('secureConnect', () => {
          resolve(socket.getProtocol() ?? '');
          socket.destroy();
        });
        socket.once('error', reject);
      });

    const permissive = https.createServer({
      key: leaf.keyPem,
      cert: leaf.certPem,
      minVersion: 'TLSv1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    await new Promise<void>((resolve) => permissive.listen(0, HOST, () => resolve()));
    try {
      const permissivePort = (permissive.address() as { port: number }).port;
      await expect(handshake(permissivePort, 'TLSv1.1')).resolves.toBe('TLSv1.1');
      await expect(handshake(port, 'TLSv1.1')).rejects.toThrow();
      await expect(handshake(port, 'TLSv1.2')).resolves.toBe('TLSv1.2');
    } finally {
      await new Promise((resolve) => permissive.close(resolve));
    }
  });

  it('reloads the certificate while requests flow, without a single failure', async () => {
    const { server, port } = await startServer();
    const keepAlive = keepAliveAgent(4);
    const failures: unknown[] = [];
    const serials = new Set<string>();
    let running = true;
    const traffic = async (agent: https.Agent | false) => {
      while (running) {
        try {
          const reply = await send({ port, agent, body: review('admission.k8s.io/v1') });
          if (reply.status !== 200 || !responseOf(reply).response.allowed) failures.push(reply.status);
          serials.add(reply.peerSerial);
        } catch (error) {
          failures.push(error);
        }
      }
    };
    const flows = [traffic(false), traffic(false), traffic(keepAlive), traffic(keepAlive)];
    for (let i = 0; i < 6; i++) {
      await new Promise((resolve) => setTimeout(resolve, 40));
      server.reloadTls(i % 2 === 0 ? rotatedLeaf : leaf);
    }
    await new Promise((resolve) => setTimeout(resolve, 40));
    running = false;
    await Promise.all(flows);

    expect(failures).toEqual([]);
    const fresh = await send({ port, body: review('admission.k8s.io/v1') });
    expect(fresh.peerSerial).toBe(serialOf(leaf));
    expect(serials.has(serialOf(rotatedLeaf))).toBe(true);
  });

  it('keeps the previous certificate when handed unusable material', async () => {
    const { server, port } = await startServer();
    expect(() => server.reloadTls({ certPem: 'garbage', keyPem: 'garbage' })).toThrow();
    expect(() => server.reloadTls({ certPem: rotatedLeaf.certPem, keyPem: leaf.keyPem })).toThrow();
    const reply = await send({ port, body: review('admission.k8s.io/v1') });
    expect(reply.peerSerial).toBe(serialOf(leaf));
  });

  it('follows a material source that announces changes', async () => {
    const listeners: Array<(material: KeyPairPem) => void> = [];
    let current = leaf;
    const source = {
      current: () => current,
      onChange: (listener: (material: KeyPairPem) => void) => {
        listeners.push(listener);
        return () => listeners.splice(listeners.indexOf(listener), 1);
      },
    };
    const { port } = await startServer({ tls: source });
    expect((await send({ port, body: review('admission.k8s.io/v1') })).peerSerial).toBe(serialOf(leaf));
    current = rotatedLeaf;
    for (const listener of listeners) listener(rotatedLeaf);
    expect((await send({ port, body: review('admission.k8s.io/v1') })).peerSerial).toBe(
      serialOf(rotatedLeaf),
    );
  });
});

describe('injector HTTPS server with the CertificateManager', () => {
  it('serves the managed certificate and switches to the rotated leaf under the same CA', async () => {
    // The manager's clock starts 300 days back so that real-time TLS clients accept both leaves.
    let nowMs = Date.now() - 300 * 24 * 60 * 60 * 1000;
    const manager = new CertificateManager({
      store: new InMemorySecretStore(),
      now: () => new Date(nowMs),
      extraDnsNames: ['localhost'],
      extraIpAddresses: [HOST],
    });
    const initial = await manager.start();
    try {
      const { port } = await startServer({ tls: manager });
      const before = await sendTrusting(port, initial.caCertPem);
      expect(before.peerSerial).toBe(serialOf(initial));

      nowMs = Date.now();
      const rotated = await manager.refresh();
      const after = await sendTrusting(port, initial.caCertPem);

      expect(rotated.caCertPem).toBe(initial.caCertPem);
      expect(after.peerSerial).toBe(serialOf(rotated));
      expect(after.peerSerial).not.toBe(before.peerSerial);
    } finally {
      manager.stop();
    }
  });
});

describe('injector HTTPS server shutdown', () => {
  function gatedInject() {
    let release: (result: InjectResult) => void = () => undefined;
    let entered = 0;
    const gate = new Promise<InjectResult>((resolve) => (release = resolve));
    const inject: InjectFn = () => {
      entered += 1;
      return gate;
    };
    return { inject, release: (result: InjectResult) => release(result), entered: () => entered };
  }

  it('drains an in-flight request on close while refusing new connections', async () => {
    const gated = gatedInject();
    const { server, port } = await startServer({ inject: gated.inject });
    const inFlight = send({ port, body: review('admission.k8s.io/v1') });
    await waitFor(() => gated.entered() === 1);

    let closed = false;
    const closing = server.close(5000).then(() => (closed = true));
    await expect(send({ port, body: review('admission.k8s.io/v1') })).rejects.toThrow(/ECONNREFUSED/);
    expect(closed).toBe(false);

    gated.release({ kind: 'injected', patch: PATCH });
    const reply = await inFlight;
    expect(reply.status).toBe(200);
    expect(responseOf(reply).response.allowed).toBe(true);
    expect(reply.headers.connection).toBe('close');
    await closing;
    expect(closed).toBe(true);
  });

  it('closes idle keep-alive connections at once and forces stuck ones after the grace period', async () => {
    const idle = await startServer();
    const agent = keepAliveAgent(1);
    await send({ port: idle.port, agent, body: review('admission.k8s.io/v1') });
    const started = Date.now();
    await idle.server.close(10_000);
    expect(Date.now() - started).toBeLessThan(2000);

    const gated = gatedInject();
    const stuck = await startServer({ inject: gated.inject });
    const request = send({ port: stuck.port, body: review('admission.k8s.io/v1') });
    await waitFor(() => gated.entered() === 1);
    const forcedAt = Date.now();
    await stuck.server.close(150);
    expect(Date.now() - forcedAt).toBeGreaterThanOrEqual(140);
    await expect(request).rejects.toThrow(/socket hang up|ECONNRESET/);
  });
});

/** One admission request trusting the given CA, reporting the serial of the certificate the server presented. */
function sendTrusting(port: number, caPem: string): Promise<{ status: number; peerSerial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: HOST,
        port,
        path: '/inject/canary',
        method: 'POST',
        ca: caPem,
        agent: false,
        headers: { 'Content-Type': 'application/json' },
      },
      (res) => {
        const peerSerial = (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, peerSerial }));
      },
    );
    req.on('error', reject);
    req.end(review('admission.k8s.io/v1'));
  });
}

function serialOf(pair: { certPem: string }): string {
  return new X509Certificate(pair.certPem).serialNumber;
}
