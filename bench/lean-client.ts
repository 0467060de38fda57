// A lean HTTP/1.1-over-TLS client for the load generator: a pool of keep-alive TLS connections, one request in
// flight on each, requests queued in order while every connection is busy. It writes a fixed request head and
// reads a Content-Length framed reply, nothing more. Node's https client spends as much CPU on a request as the
// server under test spends answering it (measured: ~345 µs of the generator's main thread per small-pod request
// at 1,000 req/s, against ~385 µs in the injector), and on a 2-CPU machine that CPU is taken from the core the
// server runs on. kube-apiserver's Go client, which this stands in for, runs on other machines.
import tls from 'node:tls';

export interface LeanReply {
  status: number;
  body: Buffer;
}

interface Job {
  head: Buffer;
  body: Buffer;
  resolve: (reply: LeanReply) => void;
  reject: (error: Error) => void;
}

const HEADER_END = Buffer.from('\r\n\r\n');

class LeanConnection {
  private readonly socket: tls.TLSSocket;
  private job: Job | undefined;
  /** The reply so far (a reply may arrive in several chunks). */
  private buffered: Buffer | undefined;
  private open = true;

  constructor(
    options: tls.ConnectionOptions,
    private readonly onFree: (connection: LeanConnection) => void,
    private readonly onGone: (connection: LeanConnection) => void,
  ) {
    this.socket = tls.connect(options);
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    this.socket.on('error', (error) => this.fail(error));
    this.socket.on('close', () => this.fail(new Error('connection closed')));
  }

  send(job: Job): void {
    this.job = job;
    this.buffered = undefined;
    // One write of head and body: a request leaves as one TLS record where it fits, as Go's client sends it.
    this.socket.write(Buffer.concat([job.head, job.body]));
  }

  destroy(): void {
    this.open = false;
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    if (this.job === undefined) return this.fail(new Error('data with no request in flight'));
    const data = this.buffered === undefined ? chunk : Buffer.concat([this.buffered, chunk]);
    this.buffered = data;
    const headEnd = data.indexOf(HEADER_END);
    if (headEnd === -1) return;
    const head = data.toString('latin1', 0, headEnd);
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!Number.isInteger(status) || length === null)
      return this.fail(new Error(`unframed reply: ${head.slice(0, 200)}`));
    const end = headEnd + HEADER_END.length + Number(length[1]);
    if (data.length < end) return;
    if (data.length > end) return this.fail(new Error('reply longer than its Content-Length'));
    const job = this.job;
    this.job = undefined;
    job.resolve({ status, body: data.subarray(headEnd + HEADER_END.length) });
    if (/\r\nconnection:\s*close/i.test(head)) this.destroy();
    else this.onFree(this);
  }

  private fail(error: Error): void {
    const job = this.job;
    this.job = undefined;
    if (this.open) this.destroy();
    this.onGone(this);
    job?.reject(error);
  }
}

export class LeanPool {
  private readonly idle: LeanConnection[] = [];
  private readonly all = new Set<LeanConnection>();
  private readonly queue: Job[] = [];
  private readonly options: tls.ConnectionOptions;

  constructor(
    private readonly target: { host: string; port: number; caPem: string },
    private readonly maxConnections: number,
  ) {
    this.options = { host: target.host, port: target.port, ca: target.caPem, minVersion: 'TLSv1.2' };
  }

  post(path: string, body: Buffer, contentType = 'application/json'): Promise<LeanReply> {
    const head = Buffer.from(
      `POST ${path} HTTP/1.1\r\nHost: ${this.target.host}:${this.target.port}\r\n` +
        `Content-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`,
      'latin1',
    );
    return new Promise((resolve, reject) => {
      this.queue.push({ head, body, resolve, reject });
      this.dispatch();
    });
  }

  destroy(): void {
    for (const connection of this.all) connection.destroy();
    this.all.clear();
    this.idle.length = 0;
    for (const job of this.queue.splice(0)) job.reject(new Error('pool destroyed'));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let connection = this.idle.pop();
      if (connection === undefined) {
        if (this.all.size >= this.maxConnections) return;
        connection = new LeanConnection(
          this.options,
          (c) => {
            this.idle.push(c);
            this.dispatch();
          },
          (c) => {
            this.all.delete(c);
            const at = this.idle.indexOf(c);
            if (at !== -1) this.idle.splice(at, 1);
            this.dispatch();
          },
        );
        this.all.add(connection);
      }
      connection.send(this.queue.shift()!);
    }
  }
}
