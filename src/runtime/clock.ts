// Time as a dependency, so backoff, leases and delays can be driven by a fake clock in tests.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimer(callback: () => void, ms: number): TimerHandle;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(callback, ms) {
    const timer = setTimeout(callback, Math.max(0, ms));
    timer.unref?.();
    return { cancel: () => clearTimeout(timer) };
  },
};

/** Resolves after `ms` on `clock`, or early (without rejecting) when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const timer = clock.setTimer(done, ms);
    const onAbort = () => {
      timer.cancel();
      done();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Multiplies `ms` by a random factor in [1, 1 + factor), like client-go's wait.Jitter. */
export function jitter(ms: number, factor: number, random: () => number = Math.random): number {
  return ms * (1 + random() * factor);
}
