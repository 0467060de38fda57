// The embedded sidecar injector's HTTPS admission server: a thin I/O shell around admission.ts. It streams the
// body under the size limit, hands complete bodies to the pure handler, writes the reply, reports the outcome,
// swaps certificates without dropping connections and drains in-flight requests on close.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import {
  MAX_ADMISSION_BODY_BYTES,
  bodyTooLargeReply,
  handleAdmission,
  handleValidation,
  parseInjectPath,
  parseValidatePath,
  textReply,
  type AdmissionOutcome,
  type HttpReply,
  type InjectFn,
  type ResolveTargetFn,
  type ValidateFn,
} from './admission.js';

export interface ServingMaterial {
  certPem: string;
  keyPem: string;
}

/**
 * Where the serving certificate comes from: fixed material, or a provider such as the CertificateManager. A
 * provider with `onChange` is followed automatically while the server listens; `reloadTls` works either way.
 */
export type TlsMaterialSource =
  | ServingMaterial
  | { current(): ServingMaterial; onChange?(listener: (material: ServingMaterial) => void): () => void };

export interface InjectorServerHooks {
  /**
   * Called once per admission request that reached the inject path; `revision` is '' when it did not resolve,
   * `status` is the HTTP status sent (a denied review is 200; 0 when the client went away first).
   */
  onAdmission?(outcome: AdmissionOutcome, revision: string, seconds: number, status: number): void;
  /** Called once per request to a `/validate/<resource>` path with the HTTP status answered (0: the client went away). */
  onValidation?(path: string, status: number, seconds: number): void;
}

export interface InjectorServerLimits {
  maxBodyBytes?: number;
  /**
   * Idle time before a kept-alive connection is closed. kube-apiserver reuses connections for up to 90 s; Node's
   * 5 s default closes them under its feet and it reports `EOF`/`connection reset` on the next admission call.
   */
  keepAliveTimeoutMs?: number;
  /**
   * How long a request's headers may take from its first byte (answered 408). Node starts this clock only when a
   * request begins, so it does not cut a kept-alive connection that is idle between requests.
   */
  headersTimeoutMs?: number;
  /**
   * Whole-request bound: a client that never finishes sending cannot hold a connection longer than this.
   * kube-apiserver gives up on a webhook call after at most 30 s (`timeoutSeconds`), so longer serves nobody.
   */
  requestTimeoutMs?: number;
  /**
   * How long a new connection may stay silent after its TLS handshake: one that never starts a request would
   * otherwise be held open indefinitely (neither timeout above starts without a request).
   */
  firstRequestTimeoutMs?: number;
  /** How often Node enforces the two timeouts above. */
  connectionsCheckingIntervalMs?: number;
  /** How long a rejected oversized upload may keep streaming after the 400 before its connection is cut. */
  oversizedDrainMs?: number;
  handshakeTimeoutMs?: number;
}

export interface InjectorServerOptions {
  host: string;
  port: number;
  tls: TlsMaterialSource;
  inject: InjectFn;
  resolveTarget: ResolveTargetFn;
  logger: Logger;
  hooks?: InjectorServerHooks;
  limits?: InjectorServerLimits;
  /** Serves `/validate/<resource>` (meshrev's ValidatingWebhookConfiguration); without it those paths are 404. */
  validate?: ValidateFn;
}

export interface InjectorServer {
  listen(): Promise<{ port: number }>;
  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes every connection. */
  close(graceMs: number): Promise<void>;
  /** Swaps the certificate for new handshakes; established connections keep theirs. Throws on unusable material. */
  reloadTls(material: ServingMaterial): void;
}

/** How long the reply to a client error may take to leave before its half-closed socket is destroyed. */
const CLIENT_ERROR_LINGER_MS = 1_000;

const DEFAULT_LIMITS: Required<InjectorServerLimits> = {
  maxBodyBytes: MAX_ADMISSION_BODY_BYTES,
  keepAliveTimeoutMs: 65_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  firstRequestTimeoutMs: 10_000,
  connectionsCheckingIntervalMs: 5_000,
  oversizedDrainMs: 5_000,
  handshakeTimeoutMs: 10_000,
};

function secureContextOptions(material: ServingMaterial): SecureContextOptions {
  return { key: material.keyPem, cert: material.certPem, minVersion: 'TLSv1.2' };
}

function currentMaterial(source: TlsMaterialSource): ServingMaterial {
  return 'current' in source ? source.current() : source;
}

type BodyRead = { kind: 'complete'; body: Buffer } | { kind: 'too-large' } | { kind: 'aborted' };

/** Collects the body, but never holds more than `limit` bytes: past it, the rest is left for Node to discard. */
function readBodyWithinLimit(req: IncomingMessage, limit: number): Promise<BodyRead> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ kind: 'too-large' });

  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (result: BodyRead) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) {
        chunks.length = 0;
        finish({ kind: 'too-large' });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish({ kind: 'complete', body: Buffer.concat(chunks, received) });
    const onClose = () => finish({ kind: 'aborted' });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
  });
}

export function createInjectorServer(options: InjectorServerOptions): InjectorServer {
  const { host, inject, resolveTarget, logger, hooks } = options;
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const sockets = new Set<Socket>();
  let inFlight = 0;
  let closing = false;
  let unsubscribeTls: (() => void) | undefined;
  let closePromise: Promise<void> | undefined;

  const server = https.createServer({
    ...secureContextOptions(currentMaterial(options.tls)),
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: limits.connectionsCheckingIntervalMs,
    noDelay: true,
  });
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;

  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // Until its first request starts, a connection is bounded by this idle timeout (Node destroys a socket that times
  // out with no request); from then on the request timeouts and, between requests, the keep-alive timeout apply.
  const awaitingFirstRequest = new WeakSet<Socket>();
  server.on('secureConnection', (socket: Socket) => {
    awaitingFirstRequest.add(socket);
    socket.setTimeout(limits.firstRequestTimeoutMs);
  });
  server.on('tlsClientError', (error: Error) => {
    logger.debug({ err: error }, 'injector TLS handshake failed');
  });
  server.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
    logger.debug({ err: error }, 'injector closed a connection after a client error');
    // A reply already on the wire (e.g. the 400 to an oversized upload that then stalls) must not get a second one.
    const responseStarted = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage
      ?.headersSent;
    if (!socket.writable || responseStarted === true) {
      socket.destroy();
      return;
    }
    const status =
      error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? '408 Request Timeout'
        : error.code === 'HPE_HEADER_OVERFLOW'
          ? '431 Request Header Fields Too Large'
          : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    // end() only half-closes: a client that never closes its side would keep the socket, and the request and body
    // it was reading, forever (no timeout applies any more). Give the reply a moment to leave, then cut it.
    setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS).unref();
  });

  function report(
    outcome: AdmissionOutcome | undefined,
    revision: string,
    startedAt: bigint,
    status: number,
  ): void {
    if (outcome === undefined || hooks?.onAdmission === undefined) return;
    const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
    try {
      hooks.onAdmission(outcome, revision, seconds, status);
    } catch (error) {
      logger.warn({ err: error }, 'injector admission hook failed');
    }
  }

  /** Writes the reply; returns the HTTP status sent, or 0 when the client had gone away (nothing was sent). */
  function send(res: ServerResponse, reply: HttpReply): number {
    if (res.headersSent || res.destroyed) return 0;
    const body = typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
    const headers: Record<string, string | number> = {
      'Content-Type': reply.contentType,
      'Content-Length': body.length,
    };
    if (closing) headers.Connection = 'close';
    res.writeHead(reply.status, headers);
    res.end(body);
    return reply.status;
  }

  /** Lets a rejected oversized upload finish streaming (so the client reads the 400), but not forever. */
  function boundDrain(req: IncomingMessage): void {
    if (req.complete) return;
    const cut = setTimeout(() => req.socket.destroy(), limits.oversizedDrainMs);
    cut.unref();
    req.once('end', () => clearTimeout(cut));
    req.once('close', () => clearTimeout(cut));
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startedAt = process.hrtime.bigint();
    const validateResource = options.validate ? parseValidatePath(req.url ?? '/') : undefined;
    if (validateResource !== undefined && options.validate) {
      return serveValidation(req, res, validateResource, options.validate, startedAt);
    }
    const path = parseInjectPath(req.url ?? '/');
    if (path.kind === 'not-found') {
      send(res, textReply(404, '404 page not found'));
      return;
    }
    if (path.kind === 'malformed') {
      send(res, textReply(400, path.message));
      return;
    }

    const read = await readBodyWithinLimit(req, limits.maxBodyBytes);
    if (read.kind === 'aborted') {
      report('error', '', startedAt, 0);
      return;
    }
    if (read.kind === 'too-large') {
      const reply = bodyTooLargeReply(limits.maxBodyBytes);
      const status = send(res, reply);
      boundDrain(req);
      report(reply.outcome, reply.revision, startedAt, status);
      return;
    }

    const reply = await handleAdmission(
      { path, contentType: req.headers['content-type'], body: read.body },
      { inject, resolveTarget },
    );
    logger.debug(
      { path: path.revisionName, status: reply.status, outcome: reply.outcome, revision: reply.revision },
      'injector handled admission request',
    );
    report(reply.outcome, reply.revision, startedAt, send(res, reply));
  }

  async function serveValidation(
    req: IncomingMessage,
    res: ServerResponse,
    resource: string,
    validate: ValidateFn,
    startedAt: bigint,
  ): Promise<void> {
    const read = await readBodyWithinLimit(req, limits.maxBodyBytes);
    if (read.kind === 'aborted') return;
    const reply =
      read.kind === 'too-large'
        ? bodyTooLargeReply(limits.maxBodyBytes)
        : await handleValidation(
            { resource, contentType: req.headers['content-type'], body: read.body },
            validate,
          );
    const status = send(res, reply);
    if (read.kind === 'too-large') boundDrain(req);
    try {
      hooks?.onValidation?.(
        `/validate/${resource}`,
        status,
        Number(process.hrtime.bigint() - startedAt) / 1e9,
      );
    } catch (error) {
      logger.warn({ err: error }, 'injector validation hook failed');
    }
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (awaitingFirstRequest.delete(req.socket)) req.socket.setTimeout(0);
    inFlight += 1;
    req.on('error', (error: Error) => logger.debug({ err: error }, 'injector request stream failed'));
    res.on('error', (error: Error) => logger.debug({ err: error }, 'injector response stream failed'));
    serve(req, res)
      .catch((error: unknown) => {
        logger.error({ err: error }, 'injector failed to handle a request');
        send(res, textReply(500, 'internal error'));
      })
      .finally(() => {
        inFlight -= 1;
        if (closing && inFlight === 0) server.closeIdleConnections();
      });
  });

  function reloadTls(material: ServingMaterial): void {
    const contextOptions = secureContextOptions(material);
    // Build once up front so bad material throws here and the previous certificate stays in service.
    createSecureContext(contextOptions);
    server.setSecureContext(contextOptions);
    logger.info('injector serving certificate reloaded');
  }

  return {
    listen() {
      return new Promise((resolve, reject) => {
        const onError = (error: Error) => reject(error);
        server.once('error', onError);
        server.listen(options.port, host, () => {
          server.off('error', onError);
          server.on('error', (error: Error) => logger.error({ err: error }, 'injector server error'));
          const source = options.tls;
          if ('current' in source && source.onChange !== undefined) {
            unsubscribeTls = source.onChange((material) => {
              try {
                reloadTls(material);
              } catch (error) {
                logger.error(
                  { err: error },
                  'injector kept its previous certificate: the new one is unusable',
                );
              }
            });
          }
          const address = server.address();
          resolve({ port: typeof address === 'object' && address !== null ? address.port : options.port });
        });
      });
    },

    close(graceMs: number) {
      closePromise ??= new Promise<void>((resolve) => {
        closing = true;
        unsubscribeTls?.();
        const forceClose = setTimeout(() => {
          server.closeAllConnections();
          for (const socket of sockets) socket.destroy();
        }, graceMs);
        forceClose.unref();
        server.close(() => {
          clearTimeout(forceClose);
          resolve();
        });
        server.closeIdleConnections();
        // Connections that have not sent a byte yet are unknown to the HTTP layer's idle tracking.
        for (const socket of sockets) {
          if (socket.bytesRead === 0) socket.destroy();
        }
      });
      return closePromise;
    },

    reloadTls,
  };
}
