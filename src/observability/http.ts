// Plain-HTTP endpoint for /metrics, /healthz (alias /livez) and /readyz. Readiness is built from registered
// checks such as "informers synced" and "serving certificate loaded"; it never depends on leadership, or
// standby replicas would be taken out of the injector Service.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

import type { Metrics } from './metrics.js';

export type CheckResult = boolean | { ok: boolean; message?: string };
export type Check = () => CheckResult | Promise<CheckResult>;

export interface CheckOutcome {
  name: string;
  ok: boolean;
  message?: string;
}

export class HealthChecks {
  private readonly checks = new Map<string, Check>();

  constructor(private readonly timeoutMs = 5_000) {}

  /** Adds or replaces a named check; returns a function that removes it. */
  add(name: string, check: Check): () => void {
    this.checks.set(name, check);
    return () => {
      if (this.checks.get(name) === check) this.checks.delete(name);
    };
  }

  names(): string[] {
    return [...this.checks.keys()];
  }

  async run(): Promise<{ ok: boolean; results: CheckOutcome[] }> {
    const results = await Promise.all(
      [...this.checks].map(async ([name, check]): Promise<CheckOutcome> => {
        try {
          const result = await withTimeout(Promise.resolve().then(check), this.timeoutMs);
          if (typeof result === 'boolean') return { name, ok: result };
          return result.message === undefined
            ? { name, ok: result.ok }
            : { name, ok: result.ok, message: result.message };
        } catch (err) {
          return { name, ok: false, message: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    return { ok: results.every((r) => r.ok), results };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`check timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Readiness check that passes once every informer has completed its first list. */
export function informersSynced(informers: readonly { resource: string; hasSynced(): boolean }[]): Check {
  return () => {
    const pending = informers.filter((i) => !i.hasSynced()).map((i) => i.resource);
    return pending.length === 0 ? true : { ok: false, message: `not synced: ${pending.join(', ')}` };
  };
}

/** The Kubernetes-style report: `[+]name ok` / `[-]name failed: reason`. */
export function formatCheckReport(results: CheckOutcome[], ok: boolean, endpoint: string): string {
  const lines = results.map((r) =>
    r.ok ? `[+]${r.name} ok` : `[-]${r.name} failed${r.message ? `: ${r.message}` : ''}`,
  );
  lines.push(ok ? `${endpoint} check passed` : `${endpoint} check failed`);
  return `${lines.join('\n')}\n`;
}

export interface ObservabilityServerOptions {
  port: number;
  host?: string;
  metrics?: Metrics;
  readiness: HealthChecks;
  liveness?: HealthChecks;
  logger?: Logger;
}

export interface ObservabilityServer {
  port: number;
  close(): Promise<void>;
}

async function respondToChecks(
  res: http.ServerResponse,
  checks: HealthChecks,
  endpoint: string,
  verbose: boolean,
): Promise<void> {
  const { ok, results } = await checks.run();
  res.statusCode = ok ? 200 : 503;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(ok && !verbose ? 'ok' : formatCheckReport(results, ok, endpoint));
}

export function createObservabilityHandler(
  options: Omit<ObservabilityServerOptions, 'port' | 'host'>,
): http.RequestListener {
  const liveness = options.liveness ?? new HealthChecks();
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const verbose = url.searchParams.has('verbose');
    const handle = async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.statusCode = 405;
        res.setHeader('Allow', 'GET, HEAD');
        res.end();
        return;
      }
      switch (url.pathname) {
        case '/metrics':
          if (!options.metrics) break;
          res.setHeader('Content-Type', options.metrics.contentType);
          res.end(await options.metrics.expose());
          return;
        case '/healthz':
        case '/livez':
          await respondToChecks(res, liveness, url.pathname.slice(1), verbose);
          return;
        case '/readyz':
          await respondToChecks(res, options.readiness, 'readyz', verbose);
          return;
      }
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('not found\n');
    };
    handle().catch((err: unknown) => {
      options.logger?.error({ err, path: url.pathname }, 'observability endpoint failed');
      if (!res.headersSent) res.statusCode = 500;
      res.end();
    });
  };
}

export function startObservabilityServer(options: ObservabilityServerOptions): Promise<ObservabilityServer> {
  const server = http.createServer(createObservabilityHandler(options));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      options.logger?.info({ port }, 'observability server listening');
      resolve({
        port,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            server.closeAllConnections();
          }),
      });
    });
  });
}
