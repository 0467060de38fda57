// A write that must eventually happen, asked for from event handlers that cannot wait for it (leadership start,
// a CA rotation). One run at a time; asks that arrive during a run coalesce into one more run, so the last ask
// always wins with the state current at that moment; a failed run is retried with exponential backoff until it
// succeeds or the ask's signal aborts (leadership lost, operator stopping).
import { setTimeout as sleepFor } from 'node:timers/promises';

export interface RetryingActionOptions {
  /** Called with each failure and the delay before the next attempt. */
  onError(error: unknown, retryInMs: number): void;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Waits `ms` unless `signal` aborts first (then rejects); injectable for tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface RetryingAction {
  /** Asks for a run; returns at once. Retries stop when `signal` aborts. */
  request(signal: AbortSignal): void;
  /** Resolves when no run is in progress or pending (tests wait on it). */
  idle(): Promise<void>;
}

const defaultSleep = (ms: number, signal: AbortSignal): Promise<void> =>
  sleepFor(ms, undefined, { signal }).then(() => undefined);

/**
 * `action` gets the signal of the ask it runs for: a write still in flight when that ask is withdrawn (leadership
 * lost) is cancelled rather than left to land after a new leader's.
 */
export function retryingAction(
  action: (signal: AbortSignal) => Promise<void>,
  options: RetryingActionOptions,
): RetryingAction {
  const initialDelayMs = options.initialDelayMs ?? 1000;
  const maxDelayMs = options.maxDelayMs ?? 60_000;
  const sleep = options.sleep ?? defaultSleep;
  let pending: AbortSignal | undefined;
  let loop: Promise<void> | undefined;

  const run = async (): Promise<void> => {
    let delay = initialDelayMs;
    while (pending !== undefined) {
      const signal = pending;
      pending = undefined;
      if (signal.aborted) continue;
      try {
        await action(signal);
        delay = initialDelayMs;
      } catch (error) {
        options.onError(error, delay);
        // A newer ask made during the failed run carries its own signal; otherwise retry under this one.
        pending ??= signal;
        try {
          await sleep(delay, pending);
        } catch {
          // aborted: the loop sees the aborted signal and stops unless a newer ask arrived
        }
        delay = Math.min(delay * 2, maxDelayMs);
      }
    }
  };

  return {
    request(signal) {
      pending = signal;
      loop ??= run().finally(() => {
        loop = undefined;
      });
    },
    async idle() {
      while (loop !== undefined) await loop;
    },
  };
}
