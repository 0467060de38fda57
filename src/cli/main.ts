#!/usr/bin/env node
// meshrev — also usable as a kubectl plugin (`kubectl meshrev …` with the binary named kubectl-meshrev).
import type { createProcessIO } from './io.js';

// io.js pulls in @kubernetes/client-node (~80 MiB resident); the operator does not need it, so it is
// loaded only for the commands that do.
const ExitCode = { Ok: 0, Usage: 2 } as const;

const HELP = `meshrev — revision-aware control-plane operator for Istio-style meshes

usage: meshrev <command> [flags]

Commands:
  status        revisions, tags and what each namespace runs (the screen for an upgrade)
  migrate       move namespaces to a revision or tag (relabel, optionally restart, wait)
  rollback      move namespaces back to the revision recorded by the last migrate
  tag           set | list | remove revision tags
  kube-inject   inject sidecars into manifests offline
  operator      run the operator (controllers, sidecar injector, metrics)
  version       print the version

Run 'meshrev <command> --help' for a command's flags.`;

type Command = (args: string[], io: ReturnType<typeof createProcessIO>) => Promise<number>;

/** Commands load lazily: `meshrev status` does not pay for the operator's modules. */
const commands: Record<string, () => Promise<Command>> = {
  status: async () => (await import('./status.js')).runStatus,
  migrate: async () => (await import('./migrate.js')).runMigrate,
  rollback: async () => (await import('./rollback.js')).runRollback,
  tag: async () => (await import('./tag.js')).runTag,
  'kube-inject': async () => (await import('./kube-inject.js')).runKubeInject,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '-h' || name === '--help') {
    console.log(HELP);
    return name === undefined ? ExitCode.Usage : ExitCode.Ok;
  }
  if (name === 'version' || name === '--version') {
    console.log('meshrev 0.1.0');
    return ExitCode.Ok;
  }
  if (name === 'operator') return (await import('./operator.js')).runOperator(rest);
  const load = commands[name];
  if (!load) {
    console.error(`meshrev: unknown command "${name}"\n\n${HELP}`);
    return ExitCode.Usage;
  }
  const io = (await import('./io.js')).createProcessIO();
  try {
    return await (
      await load()
    )(rest, io);
  } finally {
    io.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`meshrev: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  },
);
