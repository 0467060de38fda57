// Malformed and hostile admission traffic straight at the injector port of a real operator process: 1,000
// generated bad reviews, oversized bodies (declared and streamed), and slow clients that never finish a
// request. The process must not crash, its memory must stay bounded, and good requests sent during the storm
// must still be answered with an injection.
import * as k8s from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';

import type { KubeClient } from '../../../src/runtime/kube.js';
import { createTestNamespace, deleteNamespace, testKubeConfig, waitFor } from '../../support/kube.js';
import { installCrds, testClient } from '../../support/operator.js';
import {
  admissionReview,
  applyRevision,
  CPR,
  httpText,
  injectorAgent,
  metricValue,
  postToInjector,
  record,
  reviewResponse,
  revisionName,
  startChildOperator,
  waitForReconciled,
  withDiagnostics,
  type ChildOperator,
} from './support.js';

const BAD_REVIEWS = 1000;
const BAD_CONCURRENCY = 16;
const SLOW_CLIENTS = 100;
const SLOW_CLIENT_MS = 6_000;
const ROUNDS = Number(process.env.MESHREV_TEST_STORM_ROUNDS ?? 2);
const OVERSIZED = 6;
const MIB = 1024 * 1024;

let client: KubeClient;
let kc: k8s.KubeConfig;
let namespace: string;
let operator: ChildOperator | undefined;
const created: string[] = [];

beforeAll(async () => {
  kc = testKubeConfig();
  client = testClient();
  await installCrds(client);
  namespace = await createTestNamespace(kc, 'rs-hostile');
});

afterAll(async () => {
  await operator?.kill('SIGKILL');
  for (const name of created) await client.delete({ ...CPR, name }).catch(() => undefined);
  await deleteNamespace(kc, namespace);
  client.close();
});

const logs = (): string => operator?.logTail(40) ?? '(no operator)';

interface BadRequest {
  label: string;
  path: string;
  body: string | Buffer;
  contentType?: string;
}

/** The i-th generated bad request: a rotation through kinds of malformation, each with random content. */
function badRequest(i: number, revision: string): BadRequest {
  const review = admissionReview(namespace, `bad-${i}`) as { request: Record<string, unknown> } & Record<
    string,
    unknown
  >;
  const json = (value: unknown): string => JSON.stringify(value);
  const kinds: Array<() => BadRequest> = [
    () => ({ label: 'random bytes', path: `/inject/${revision}`, body: randomBytes(1 + (i % 2048)) }),
    () => ({
      label: 'truncated JSON',
      path: `/inject/${revision}`,
      body: json(review).slice(0, 10 + (i % 200)),
    }),
    () => ({
      label: 'wrong apiVersion',
      path: `/inject/${revision}`,
      body: json({ ...review, apiVersion: `evil/v${i}` }),
    }),
    () => ({ label: 'no kind', path: `/inject/${revision}`, body: json({ ...review, kind: undefined }) }),
    () => ({ label: 'null request', path: `/inject/${revision}`, body: json({ ...review, request: null }) }),
    () => ({
      label: 'array request',
      path: `/inject/${revision}`,
      body: json({ ...review, request: [1, 2, 3] }),
    }),
    () => ({
      label: 'numeric uid',
      path: `/inject/${revision}`,
      body: json({ ...review, request: { ...review.request, uid: i } }),
    }),
    () => ({
      label: 'string pod',
      path: `/inject/${revision}`,
      body: json({ ...review, request: { ...review.request, object: 'pod' } }),
    }),
    () => ({
      label: 'non-string labels',
      path: `/inject/${revision}`,
      body: json({
        ...review,
        request: { ...review.request, object: { metadata: { labels: { a: { b: i } } }, spec: {} } },
      }),
    }),
    () => ({
      label: 'spec is an array',
      path: `/inject/${revision}`,
      body: json({ ...review, request: { ...review.request, object: { metadata: {}, spec: [i] } } }),
    }),
    () => ({
      label: 'containers of the wrong type',
      path: `/inject/${revision}`,
      body: json({
        ...review,
        request: { ...review.request, object: { metadata: {}, spec: { containers: 'x'.repeat(i % 100) } } },
      }),
    }),
    () => ({
      label: 'deep nesting',
      path: `/inject/${revision}`,
      body: '['.repeat(50_000 + i) + ']'.repeat(50_000 + i),
    }),
    () => ({
      label: 'wrong content type',
      path: `/inject/${revision}`,
      body: json(review),
      contentType: 'text/yaml',
    }),
    () => ({ label: 'empty body', path: `/inject/${revision}`, body: '' }),
    () => ({ label: 'malformed path', path: `/inject/%zz${i}`, body: json(review) }),
    () => ({ label: 'unknown revision', path: `/inject/no-such-${i}`, body: json(review) }),
    () => ({ label: 'unknown path', path: `/admin/${i}`, body: json(review) }),
    () => ({
      label: 'a megabyte of non-string annotations',
      path: `/inject/${revision}`,
      body: json({
        ...review,
        request: {
          ...review.request,
          object: { metadata: { annotations: { big: ['x'.repeat(MIB)] } }, spec: {} },
        },
      }),
    }),
  ];
  return kinds[i % kinds.length]!();
}

/** A large upload, either declared up front (content-length) or streamed chunked past the limit. */
function oversizedUpload(port: number, declared: boolean): Promise<string> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(MIB, 0x20);
    const total = 8;
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path: '/inject/anything',
        method: 'POST',
        rejectUnauthorized: false,
        timeout: 20_000,
        headers: {
          'content-type': 'application/json',
          ...(declared ? { 'content-length': total * MIB } : {}),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(`HTTP ${res.statusCode}`));
      },
    );
    // The server may answer and cut the connection before the upload ends: that is a refusal too.
    req.on('error', (err) => resolve(`closed (${(err as NodeJS.ErrnoException).code ?? err.message})`));
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += 1;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

/** A client that opens TLS, starts a request and then sends one header byte a second until told to stop. */
function slowClient(port: number, stopAt: number): Promise<string> {
  return new Promise((resolve) => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      socket.write('POST /inject/slow HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n');
      const tick = setInterval(() => {
        if (Date.now() >= stopAt || socket.destroyed) {
          clearInterval(tick);
          const outcome = socket.destroyed ? 'closed by server' : 'still open at the deadline';
          socket.destroy();
          resolve(outcome);
          return;
        }
        socket.write('X');
      }, 1000);
    });
    socket.on('error', () => undefined);
    socket.setTimeout(SLOW_CLIENT_MS + 5_000, () => socket.destroy());
  });
}

test(
  'a storm of malformed, oversized and never-finished admission requests crashes nothing and good requests are still answered',
  withDiagnostics(logs, async () => {
    const op = await startChildOperator('resilience-hostile', ['--log-level=info']);
    operator = op;
    const port = op.injectorPort;
    const rev = revisionName('hostile');
    created.push(rev);
    await applyRevision(client, rev, { version: '1.29.6', namespace });
    await waitForReconciled(client, rev);

    const goodAgent = injectorAgent(2);
    const good = async (uid: string): Promise<number> => {
      const started = Date.now();
      const reply = await postToInjector(port, `/inject/${rev}`, admissionReview(namespace, uid), {
        agent: goodAgent,
      });
      const response = reviewResponse(reply);
      if (reply.status !== 200 || response.allowed !== true || !response.patch) {
        throw new Error(`good request ${uid} got HTTP ${reply.status}: ${reply.body.slice(0, 300)}`);
      }
      return Date.now() - started;
    };
    await waitFor('the injector to inject a good request', async () => (await good('warm-up')) >= 0, {
      timeoutMs: 30_000,
    });
    for (let i = 0; i < 20; i++) await good(`warm-${i}`);
    const rssBefore = op.rssBytes();

    interface StormResult {
      summary: Record<string, number>;
      unanswered: string[];
      oversizedOutcomes: string[];
      slowOutcomes: string[];
      goodLatencies: number[];
      stormMs: number;
    }
    const storm = async (): Promise<StormResult> => {
      const stormStarted = Date.now();
      let stormOver = false;

      // Slow clients, bounded in count and time.
      const slowUntil = Date.now() + SLOW_CLIENT_MS;
      const slow = Promise.all(Array.from({ length: SLOW_CLIENTS }, () => slowClient(port, slowUntil)));

      // Good requests throughout the storm.
      const goodLatencies: number[] = [];
      const goodLoop = (async () => {
        let i = 0;
        while (!stormOver) {
          goodLatencies.push(await good(`during-${i++}`));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();

      // Oversized bodies.
      const oversized = Promise.all(
        Array.from({ length: OVERSIZED }, (_, i) => oversizedUpload(port, i % 2 === 0)),
      );

      // 1,000 generated bad reviews, BAD_CONCURRENCY at a time.
      const statuses = new Map<string, number>();
      const unanswered: string[] = [];
      const badAgent = injectorAgent(BAD_CONCURRENCY);
      let next = 0;
      await Promise.all(
        Array.from({ length: BAD_CONCURRENCY }, async () => {
          while (next < BAD_REVIEWS) {
            const i = next++;
            const bad = badRequest(i, rev);
            try {
              const reply = await postToInjector(port, bad.path, bad.body, {
                agent: badAgent,
                headers: { 'content-type': bad.contentType ?? 'application/json' },
                timeoutMs: 15_000,
              });
              let verdict = `${reply.status}`;
              if (reply.status === 200) {
                const response = reviewResponse(reply);
                verdict += response.allowed === false ? ' denied' : ` allowed(${bad.label})`;
              }
              statuses.set(verdict, (statuses.get(verdict) ?? 0) + 1);
            } catch (err) {
              unanswered.push(`${bad.label}: ${err instanceof Error ? err.message : String(err)}`);
            }
          }
        }),
      );
      badAgent.destroy();
      const oversizedOutcomes = await oversized;
      const slowOutcomes = await slow;
      stormOver = true;
      await goodLoop;
      const stormMs = Date.now() - stormStarted;
      return {
        summary: Object.fromEntries([...statuses.entries()].sort()),
        unanswered,
        oversizedOutcomes,
        slowOutcomes,
        goodLatencies,
        stormMs,
      };
    };
    const rounds: StormResult[] = [];
    const rss: number[] = [];
    const heap: { usedMiB: number; externalMiB: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      rounds.push(await storm());
      expect(op.alive()).toBe(true);
      rss.push(op.rssBytes());
      const m = await op.metrics();
      heap.push({
        usedMiB: Math.round(metricValue(m, 'nodejs_heap_size_used_bytes') / MIB),
        externalMiB: Math.round(metricValue(m, 'nodejs_external_memory_bytes') / MIB),
      });
    }

    // Still alive, healthy and injecting; memory back within bounds.
    expect(op.alive()).toBe(true);
    await httpText(`http://127.0.0.1:${op.metricsPort}/healthz`);
    await good('after-storm');
    goodAgent.destroy();

    record('hostile admission traffic', {
      rounds: rounds.map((r, i) => ({
        badReviews: BAD_REVIEWS,
        replies: r.summary,
        unanswered: r.unanswered.length,
        oversized: r.oversizedOutcomes,
        slowClients: SLOW_CLIENTS,
        slowClientSeconds: SLOW_CLIENT_MS / 1000,
        slowOutcomes: [...new Set(r.slowOutcomes)],
        goodDuringStorm: r.goodLatencies.length,
        goodMaxLatencyMs: Math.max(...r.goodLatencies),
        stormMs: r.stormMs,
        rssAfterMiB: Math.round((rss[i] ?? 0) / MIB),
        heapAfter: heap[i],
      })),
      rssBeforeMiB: Math.round(rssBefore / MIB),
    });

    for (const r of rounds) {
      // Every bad request got an answer, and none of them was let through as an injection.
      expect(r.unanswered).toEqual([]);
      expect(Object.keys(r.summary).filter((k) => !/^(200 denied|400|404|415)$/.test(k))).toEqual([]);
      for (const outcome of r.oversizedOutcomes) expect(outcome).toMatch(/^HTTP 400$|^closed/);
      expect(r.goodLatencies.length).toBeGreaterThan(0);
    }
    // Bounded memory. The JavaScript heap is where a leak of requests, sockets or bodies would show: it must
    // not keep growing from storm to storm. RSS also carries allocator fragmentation from ~70 MiB of bodies
    // per storm, so it only gets an absolute ceiling.
    const firstHeap = heap[0]?.usedMiB ?? 0;
    const lastHeap = heap[heap.length - 1]?.usedMiB ?? 0;
    expect(lastHeap - firstHeap).toBeLessThan(64);
    expect(Math.max(...rss)).toBeLessThan(512 * MIB);
  }),
  120_000,
);
