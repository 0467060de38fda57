// A bounded memo for the small pure string functions the engine calls on every admission.

/**
 * Wraps a pure string function with a memo. The inputs worth remembering (field names, label and annotation keys,
 * quantities) repeat on every admission, but they come from users' pods, so the memo is cleared once it holds
 * `limit` entries rather than growing with whatever a client sends.
 */
export function boundedMemo(limit: number, compute: (input: string) => string): (input: string) => string {
  const memo = new Map<string, string>();
  return (input) => {
    let output = memo.get(input);
    if (output === undefined) {
      output = compute(input);
      if (memo.size >= limit) memo.clear();
      memo.set(input, output);
    }
    return output;
  };
}
