// The benchmark's load generator sends every request through LeanPool, so a reply it misreads would corrupt every
// figure in bench/README.md. These tests hold it to a real HTTPS server (node:https, certificates from meshrev's own
// CA code) on loopback.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from '@jest/globals';

import { LeanPool } from '../../../bench/lean-client.js';
import {
  generateCertificateAuthority,
  issueServingCertificate,
  type KeyPairPem,
} from '../../../src/injector/tls/certificates.js';

const HOST = '127.0.0.1';
let ca: KeyPairPem;
let leaf: KeyPairPem;

beforeAll(async () => {
  const now = new Date();
  ca = await generateCertificateAuthority({ now });
  leaf = await issueServingCertificate({ ca, now, dnsNames: ['localhost'], ipAddresses: [HOST] });
});

interface TestServer {
  port: number;
  /** TLS connections accepted so far. */
  connections: () => number;
  /** Requests being answered right now, most seen at once. */
  peakInFlight: () => number;
}

const closers: Array<() => Promise<void>> = [];
const pools: LeanPool[] = [];
afterEach(async () => {
  for (const pool of pools.splice(0)) pool.destroy();
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<TestServer> {
  const server = https.createServer({ key: leaf.keyPem, cert: leaf.certPem });
  let connections = 0;
  let inFlight = 0;
  let peak = 0;
  server.on('secureConnection', () => {
    connections += 1;
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    inFlight += 1;
    peak = Math.max(peak, inFlight);
    res.on('close', () => {
      inFlight -= 1;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    peakInFlight: () => peak,
  };
}

function poolFor(server: TestServer, connections: number): LeanPool {
  const pool = new LeanPool({ host: HOST, port: server.port, caPem: ca.certPem }, connections);
  pools.push(pool);
  return pool;
}

/** Echoes the request as JSON so a test can see exactly what arrived. */
const echoRequest = (req: IncomingMessage, res: ServerResponse, body: string): void => {
  const reply = JSON.stringify({
    method: req.method,
    url: req.url,
    contentType: req.headers['content-type'],
    body,
  });
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(reply) });
  res.end(reply);
};

describe('LeanPool', () => {
  it('posts the body with its path and content type and returns the status and the whole reply', async () => {
    const server = await serve(echoRequest);
    const pool = poolFor(server, 2);
    const body = Buffer.from(JSON.stringify({ kind: 'AdmissionReview', text: 'ü'.repeat(5000) }));

    const reply = await pool.post('/inject/rev-1', body);

    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body.toString('utf8'))).toEqual({
      method: 'POST',
      url: '/inject/rev-1',
      contentType: 'application/json',
      body: body.toString('utf8'),
    });
  });

  it('reuses one kept-alive connection for requests sent one after another', async () => {
    const server = await serve(echoRequest);
    const pool = poolFor(server, 4);

    for (let i = 0; i < 5; i++) expect((await pool.post('/x', Buffer.from(`{"i":${i}}`))).status).toBe(200);

    expect(server.connections()).toBe(1);
  });

  it('never has more requests in flight than connections, and answers every queued one in order', async () => {
    const server = await serve((req, res, body) => {
      // Answer in a later turn so requests overlap at the server.
      setImmediate(() => echoRequest(req, res, body));
    });
    const pool = poolFor(server, 3);

    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => pool.post(`/r/${i}`, Buffer.from(`{"i":${i}}`))),
    );

    expect(replies.map((r) => (JSON.parse(r.body.toString('utf8')) as { url: string }).url)).toEqual(
      Array.from({ length: 20 }, (_, i) => `/r/${i}`),
    );
    expect(server.connections()).toBeLessThanOrEqual(3);
    expect(server.peakInFlight()).toBeLessThanOrEqual(3);
  });

  it('reads a reply that arrives in several pieces', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': 6 });
      res.flushHeaders();
      res.write('abc', () => setTimeout(() => res.end('def'), 20));
    });

    const reply = await poolFor(server, 1).post('/x', Buffer.from('{}'));

    expect(reply.body.toString()).toBe('abcdef');
  });

  it('passes on a non-200 status with its body', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(415, { 'Content-Length': 5 });
      res.end('nope!');
    });

    const reply = await poolFor(server, 1).post('/x', Buffer.from('{}'));

    expect(reply.status).toBe(415);
    expect(reply.body.toString()).toBe('nope!');
  });

  it('opens a new connection after a reply that closes its own', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': 2, Connection: 'close' });
      res.end('ok');
    });
    const pool = poolFor(server, 1);

    const first = await pool.post('/x', Buffer.from('{}'));
    const second = await pool.post('/x', Buffer.from('{}'));

    expect([first.status, second.status]).toEqual([200, 200]);
    expect(server.connections()).toBe(2);
  });

  it('rejects a reply it cannot frame instead of guessing where it ends', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }); // no Content-Length: chunked
      res.write('{"a":');
      res.end('1}');
    });

    await expect(poolFor(server, 1).post('/x', Buffer.from('{}'))).rejects.toThrow(/unframed reply/);
  });

  it('rejects the request in flight when the server drops the connection, and recovers on a new one', async () => {
    let calls = 0;
    const server = await serve((req, res, body) => {
      calls += 1;
      if (calls === 1) req.socket.destroy();
      else echoRequest(req, res, body);
    });
    const pool = poolFor(server, 1);

    await expect(pool.post('/x', Buffer.from('{}'))).rejects.toThrow(/connection closed|ECONNRESET/);
    expect((await pool.post('/x', Buffer.from('{}'))).status).toBe(200);
    expect(server.connections()).toBe(2);
  });

  it('rejects queued requests when destroyed', async () => {
    const server = await serve(() => {
      // never answers
    });
    const pool = poolFor(server, 1);
    const inFlight = pool.post('/x', Buffer.from('{}'));
    const queued = pool.post('/y', Buffer.from('{}'));

    pool.destroy();

    await expect(queued).rejects.toThrow(/pool destroyed/);
    await expect(inFlight).rejects.toThrow(/connection closed/);
  });
});
