// What the differential comparisons share: their command line, a replayable random source, and the Go side.
import { spawnSync } from 'node:child_process';

/** `--name <number>` from the command line, or `fallback`. */
export function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

/** A small deterministic generator, so a mismatch can be replayed with its seed. */
export function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
}

/** The Go binary (built from hack/differential by `make differential`), the first argument of `script`. */
export function goBinaryArgument(script: string): string {
  const binary = process.argv[2];
  if (!binary)
    throw new Error(`usage: node dist/hack/differential/${script}.js <go-binary> [--cases N] [--seed S]`);
  return binary;
}

/** Go's answers to `cases`, in order: the binary reads one JSON case per line and writes one JSON answer each. */
export function askGo<Answer>(binary: string, mode: readonly string[], cases: readonly unknown[]): Answer[] {
  const go = spawnSync(binary, mode, {
    input: `${cases.map((c) => JSON.stringify(c)).join('\n')}\n`,
    maxBuffer: 1 << 28,
  });
  if (go.status !== 0) throw new Error(`${binary} failed: ${go.stderr.toString()}`);
  return go.stdout
    .toString()
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Answer);
}
