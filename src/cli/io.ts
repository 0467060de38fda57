/**
 * What a CLI command needs from the outside world. Commands take it as a parameter so tests pass fakes:
 * output sinks, a Kubernetes client built only when a command first talks to the cluster, and time.
 */
import { KubeConfig } from '@kubernetes/client-node';

import { KubeClient } from '../runtime/kube.js';

/** The parts of KubeClient the CLI uses; a KubeClient satisfies it, tests pass an in-memory fake. */
export type CliKube = Pick<
  KubeClient,
  'get' | 'getOptional' | 'list' | 'listAll' | 'patch' | 'apply' | 'delete'
>;

/** Where the cluster is, as kubectl's --kubeconfig and --context say; unset means $KUBECONFIG / ~/.kube/config. */
export interface KubeConnection {
  kubeconfig?: string | undefined;
  context?: string | undefined;
}

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** The cluster client; built on first call, so `--help` and usage errors never read a kubeconfig. */
  kube(connection?: KubeConnection): CliKube;
  now(): Date;
  /** Waits between polls; defaults to a timer. Tests advance a fake clock instead. */
  sleep?(ms: number): Promise<void>;
}

/** Exit codes scripts can rely on. */
export const ExitCode = {
  Ok: 0,
  Error: 1,
  Usage: 2,
  TimedOut: 3,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export function loadKubeConfig(connection: KubeConnection = {}): KubeConfig {
  const config = new KubeConfig();
  if (connection.kubeconfig !== undefined && connection.kubeconfig !== '') {
    config.loadFromFile(connection.kubeconfig);
  } else {
    config.loadFromDefault();
  }
  if (connection.context !== undefined && connection.context !== '') {
    if (config.getContextObject(connection.context) === null) {
      const known = config
        .getContexts()
        .map((context) => context.name)
        .join(', ');
      throw new Error(
        `context "${connection.context}" not found in kubeconfig (contexts: ${known || 'none'})`,
      );
    }
    config.setCurrentContext(connection.context);
  }
  return config;
}

function writeLine(stream: NodeJS.WriteStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** The CliIO of a real process: stdout/stderr lines, a lazily built KubeClient, wall-clock time. */
export function createProcessIO(): CliIO & { close(): void } {
  let client: KubeClient | undefined;
  return {
    stdout: (text) => writeLine(process.stdout, text),
    stderr: (text) => writeLine(process.stderr, text),
    kube(connection) {
      client ??= KubeClient.fromKubeConfig(loadKubeConfig(connection), { userAgent: 'meshrev-cli' });
      return client;
    },
    now: () => new Date(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    close: () => client?.close(),
  };
}

export function sleepOf(io: CliIO): (ms: number) => Promise<void> {
  return io.sleep?.bind(io) ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
}
