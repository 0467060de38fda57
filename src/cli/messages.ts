// Error reporting shared by the commands: one line naming what failed, with the API server's own words.
import { isApiError } from '../runtime/kube.js';
import { type CliIO, ExitCode } from './io.js';

export function describeError(err: unknown): string {
  if (isApiError(err)) {
    const reason = err.reason === '' ? `HTTP ${err.code}` : err.reason;
    return `${err.message} (${reason})`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Prints a usage error with the command's help and returns exit code 2. */
export function usageError(io: CliIO, message: string, help: string): number {
  io.stderr(`error: ${message}\n\n${help}`);
  return ExitCode.Usage;
}
