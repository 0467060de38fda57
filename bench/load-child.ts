// The injection load generator (load-generator.ts) as a forked child process, driven over its IPC channel: one
// run at a time, each answered with its LoadResult. The injection and scale suites share it.
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { ChildMessage, LoadResult, LoadSpec, ParentMessage } from './load-generator.js';

export class LoadChild {
  private nextId = 1;
  private readonly waiters = new Map<
    number,
    { resolve: (r: LoadResult) => void; reject: (e: Error) => void }
  >();
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (message: ChildMessage) => {
      if (message.kind === 'ready') return;
      const waiter = this.waiters.get(message.id);
      this.waiters.delete(message.id);
      if (message.kind === 'result') waiter?.resolve(message.result);
      else waiter?.reject(new Error(`load generator: ${message.message}`));
    });
    child.on('exit', (code) => {
      for (const w of this.waiters.values()) w.reject(new Error(`load generator exited (${code})`));
      this.waiters.clear();
    });
  }

  static async start(): Promise<LoadChild> {
    const script = join(dirname(fileURLToPath(import.meta.url)), 'load-generator.js');
    const child = fork(script, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`load generator exited before it was ready (${code})`)));
    });
    return new LoadChild(child);
  }

  pid(): number | undefined {
    return this.child.pid;
  }

  run(spec: LoadSpec): Promise<LoadResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiters.set(id, { resolve, reject });
      this.child.send({ kind: 'run', id, spec } satisfies ParentMessage);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ kind: 'exit' } satisfies ParentMessage);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
