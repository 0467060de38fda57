// What the differential comparisons share: their command-line options and a replayable random source.

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
