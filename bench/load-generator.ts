// The injection benchmark's load generator. It runs as a CHILD PROCESS (forked by injection.ts, talking over
// the IPC channel) so its event loop, TLS work and heap never share the server's thread or its RSS figure.
// Open loop: requests leave on a fixed schedule whatever the server does (latency measured from the moment a
// request is written, and separately from its scheduled time); closed loop: N keep-alive connections, each
// sending its next request as soon as the previous answer arrives. Requests go through LeanPool (lean-client.ts),
// not Node's https client, which cost the generator as much CPU per request as the server under test.
import { LeanPool } from './lean-client.js';
import { summarize, type LatencySummary } from './common.js';
import { payloadVariants, type PayloadName, type PodVariety } from './payloads.js';

export interface LoadSpec {
  port: number;
  caPem: string;
  path: string;
  payloads: { name: PayloadName; weight: number }[];
  mode: 'open' | 'closed';
  /** Requests per second (open loop). */
  rate?: number;
  /** Keep-alive connections (closed loop: concurrent requests; open loop: the pool size). */
  connections: number;
  durationMs: number;
  warmupMs: number;
  /** Check that every 2xx body is an allowed AdmissionReview response with the request's uid. */
  expectAllowed: boolean;
  /** How pods differ between requests (payloadVariants), and how many different reviews are cycled through. */
  variety: PodVariety;
  varieties: number;
}

export interface LoadResult {
  sent: number;
  completed: number;
  errors: number;
  badResponses: number;
  firstProblem?: string;
  elapsedMs: number;
  throughput: number;
  /** From the request's write to the end of its response. */
  latency: LatencySummary;
  /** Open loop: from the request's scheduled time (includes any delay of the generator itself). */
  latencyFromSchedule?: LatencySummary;
  /** Open loop: how late the generator sent requests behind schedule. */
  sendLag?: LatencySummary;
  perPayload: Record<string, LatencySummary>;
}

export type ParentMessage = { kind: 'run'; id: number; spec: LoadSpec } | { kind: 'exit' };
export type ChildMessage =
  | { kind: 'ready' }
  | { kind: 'result'; id: number; result: LoadResult }
  | { kind: 'error'; id: number; message: string };

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

interface Shot {
  payload: PayloadName;
  sentAt: number;
  latency: number;
  ok: boolean;
  problem?: string;
}

async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const bodies = new Map<PayloadName, Buffer[]>();
  for (const p of spec.payloads) {
    bodies.set(p.name, payloadVariants(p.name, spec.variety, spec.varieties));
  }
  let sequence = 0;
  const pool = new LeanPool({ host: '127.0.0.1', port: spec.port, caPem: spec.caPem }, spec.connections);
  const totalWeight = spec.payloads.reduce((a, p) => a + p.weight, 0);
  let pick = 0;
  // Deterministic weighted round robin.
  const choose = (): PayloadName => {
    let slot = pick++ % totalWeight;
    for (const p of spec.payloads) {
      if (slot < p.weight) return p.name;
      slot -= p.weight;
    }
    return spec.payloads[0]!.name;
  };

  const fire = (payload: PayloadName): Promise<Shot> => {
    const variants = bodies.get(payload)!;
    const body = variants[sequence++ % variants.length]!;
    const sentAt = now();
    const shot = (ok: boolean, problem?: string): Shot => ({
      payload,
      sentAt,
      latency: now() - sentAt,
      ok,
      ...(problem === undefined ? {} : { problem }),
    });
    return pool.post(spec.path, body).then(
      (reply) => {
        if (reply.status !== 200) return shot(false, `HTTP ${reply.status}`);
        if (!spec.expectAllowed) return shot(true);
        const text = reply.body.toString('utf8');
        // A cheap check on every reply; injection.ts validates one full reply per payload before measuring.
        if (!text.includes('"allowed":true')) return shot(false, `not allowed: ${text.slice(0, 200)}`);
        return shot(true);
      },
      (error: Error) => shot(false, error.message),
    );
  };

  const shots: Shot[] = [];
  const scheduled: number[] = [];
  let sent = 0;

  const openLoop = async (durationMs: number, record: boolean): Promise<number> => {
    const rate = spec.rate ?? 100;
    const total = Math.floor((durationMs / 1000) * rate);
    const start = now();
    const pending: Promise<void>[] = [];
    let issued = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const due = Math.min(total, Math.floor(((now() - start) * rate) / 1000) + 1);
        while (issued < due) {
          const at = start + (issued * 1000) / rate;
          issued += 1;
          const p = fire(choose()).then((shot) => {
            if (record) {
              shots.push(shot);
              scheduled.push(at);
            }
          });
          pending.push(p);
        }
        if (issued >= total) resolve();
        else setTimeout(tick, Math.max(0, start + (issued * 1000) / rate - now() - 0.5));
      };
      tick();
    });
    if (record) sent += issued;
    await Promise.all(pending);
    return now() - start;
  };

  const closedLoop = async (durationMs: number, record: boolean): Promise<number> => {
    const start = now();
    const deadline = start + durationMs;
    const worker = async (): Promise<void> => {
      while (now() < deadline) {
        const shot = await fire(choose());
        if (record) {
          sent += 1;
          shots.push(shot);
        }
      }
    };
    await Promise.all(Array.from({ length: spec.connections }, worker));
    return now() - start;
  };

  const run = spec.mode === 'open' ? openLoop : closedLoop;
  if (spec.warmupMs > 0) await run(spec.warmupMs, false);
  const elapsedMs = await run(spec.durationMs, true);
  pool.destroy();

  const ok = shots.filter((s) => s.ok);
  const perPayload: Record<string, LatencySummary> = {};
  for (const p of spec.payloads)
    perPayload[p.name] = summarize(ok.filter((s) => s.payload === p.name).map((s) => s.latency));
  const bad = shots.filter((s) => !s.ok);
  const result: LoadResult = {
    sent,
    completed: ok.length,
    errors: bad.filter((s) => !s.problem?.startsWith('HTTP') && !s.problem?.startsWith('not allowed')).length,
    badResponses: bad.filter((s) => s.problem?.startsWith('HTTP') || s.problem?.startsWith('not allowed'))
      .length,
    elapsedMs,
    throughput: (ok.length / elapsedMs) * 1000,
    latency: summarize(ok.map((s) => s.latency)),
    perPayload,
  };
  if (bad[0]?.problem !== undefined) result.firstProblem = bad[0].problem;
  if (spec.mode === 'open') {
    result.latencyFromSchedule = summarize(
      shots
        .map((s, i) => (s.ok ? s.sentAt + s.latency - (scheduled[i] ?? s.sentAt) : Number.NaN))
        .filter(Number.isFinite),
    );
    result.sendLag = summarize(shots.map((s, i) => Math.max(0, s.sentAt - (scheduled[i] ?? s.sentAt))));
  }
  return result;
}

const send = (message: ChildMessage): void => {
  process.send?.(message);
};

process.on('message', (message: ParentMessage) => {
  if (message.kind === 'exit') {
    process.disconnect?.();
    return;
  }
  runLoad(message.spec).then(
    (result) => send({ kind: 'result', id: message.id, result }),
    (err: unknown) =>
      send({ kind: 'error', id: message.id, message: err instanceof Error ? err.message : String(err) }),
  );
});
send({ kind: 'ready' });
